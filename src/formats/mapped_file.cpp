#include "formats/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "peft/error.hpp"

namespace peft::formats {
namespace {

struct Mapping {
  void* address = nullptr;
  std::size_t length = 0;
  Mapping(void* a, std::size_t n) : address(a), length(n) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { ::munmap(address, length); }
};

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

[[noreturn]] void fail(const std::filesystem::path& path, const char* what, int err) {
  const ErrorCode code = (err == ENOENT || err == ENOTDIR) ? ErrorCode::NotFound : ErrorCode::Io;
  throw Error(code, path.string(), fmt::format("{}: {}", what, std::strerror(err)));
}

FileBytes read_whole(int fd, const std::filesystem::path& path, std::size_t size_hint) {
  auto buffer = std::make_shared<std::vector<std::byte>>();
  buffer->resize(size_hint);
  std::size_t filled = 0;
  for (;;) {
    if (filled == buffer->size()) buffer->resize(buffer->size() * 2 + 4096);
    const ssize_t got = ::read(fd, buffer->data() + filled, buffer->size() - filled);
    if (got < 0) {
      if (errno == EINTR) continue;
      fail(path, "read failed", errno);
    }
    if (got == 0) break;
    filled += static_cast<std::size_t>(got);
  }
  buffer->resize(filled);
  FileBytes out;
  out.bytes = std::span<const std::byte>(buffer->data(), buffer->size());
  out.owner = std::move(buffer);
  return out;
}

}  // namespace

FileBytes map_file(const std::filesystem::path& path, bool allow_mmap) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail(path, "cannot open", errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail(path, "cannot stat", errno);
  if (S_ISDIR(st.st_mode)) throw Error(ErrorCode::Io, path.string(), "is a folder, not a file");

  const auto size = static_cast<std::size_t>(st.st_size);
  if (allow_mmap && S_ISREG(st.st_mode) && size > 0) {
    void* address = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd.get(), 0);
    if (address != MAP_FAILED) {
      FileBytes out;
      out.bytes = std::span<const std::byte>(static_cast<const std::byte*>(address), size);
      out.owner = std::make_shared<Mapping>(address, size);
      out.mapped = true;
      return out;
    }
  }
  // Pipes, special files and file systems that refuse mmap are read instead.
  return read_whole(fd.get(), path, S_ISREG(st.st_mode) ? size : 0);
}

}  // namespace peft::formats
