#include "core/shared_library.hpp"

#include <dlfcn.h>

#include <cstdlib>

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft {
namespace {

std::string file_name(const LibrarySpec& spec) {
  const char* chosen = std::getenv(spec.env);
  return chosen != nullptr && *chosen != '\0' ? chosen : spec.soname;
}

[[noreturn]] void unavailable(const LibrarySpec& spec, const std::string& file,
                              const std::string& why) {
  throw Error(ErrorCode::Unsupported, file,
              fmt::format("{} needs {}, which could not be loaded ({}); install the Debian "
                          "package {} or point {} at the library",
                          spec.purpose, file, why, spec.package, spec.env));
}

}  // namespace

LoadedLibrary::LoadedLibrary(const LibrarySpec& spec) : spec_(spec), file_(file_name(spec)) {
  handle_ = ::dlopen(file_.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle_ == nullptr) {
    const char* why = ::dlerror();
    unavailable(spec_, file_, why != nullptr ? why : "unknown reason");
  }
}

void* LoadedLibrary::symbol(const char* name, bool required) const {
  void* address = ::dlsym(handle_, name);
  if (address == nullptr && required) {
    unavailable(spec_, file_, fmt::format("it has no function {}", name));
  }
  return address;
}

}  // namespace peft
