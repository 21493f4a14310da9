#include "merge/numeric_libs.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include <fmt/format.h>

#include "peft/error.hpp"

#ifndef PEFTCPP_BLAS_SONAME
#define PEFTCPP_BLAS_SONAME "libopenblas.so.0"
#endif
#ifndef PEFTCPP_LAPACKE_SONAME
#define PEFTCPP_LAPACKE_SONAME "liblapacke.so.3"
#endif
#ifndef PEFTCPP_FFTW_SONAME
#define PEFTCPP_FFTW_SONAME "libfftw3.so.3"
#endif

namespace peft::merge::numeric {
namespace {

// What to load and what to tell a user who lacks it.
struct LibrarySpec {
  const char* env;      // overrides the file name
  const char* soname;   // default file name
  const char* package;  // the Debian package that installs it
  const char* purpose;  // what the merge uses it for
};

constexpr LibrarySpec kBlas{"PEFTCPP_BLAS_LIBRARY", PEFTCPP_BLAS_SONAME, "libopenblas0",
                            "matrix products (BLAS)"};
constexpr LibrarySpec kLapack{"PEFTCPP_LAPACKE_LIBRARY", PEFTCPP_LAPACKE_SONAME, "liblapacke",
                              "inverses, solves and SVDs (LAPACKE)"};
constexpr LibrarySpec kFftw{"PEFTCPP_FFTW_LIBRARY", PEFTCPP_FFTW_SONAME, "libfftw3-double3",
                            "FourierFT's inverse FFT (FFTW3)"};

std::string file_name(const LibrarySpec& spec) {
  const char* chosen = std::getenv(spec.env);
  return chosen != nullptr && *chosen != '\0' ? chosen : spec.soname;
}

[[noreturn]] void unavailable(const LibrarySpec& spec, const std::string& file,
                              const std::string& why) {
  throw Error(ErrorCode::Unsupported, file,
              fmt::format("merging needs {} from {}, which could not be loaded ({}); install the "
                          "Debian package {} or point {} at the library",
                          spec.purpose, file, why, spec.package, spec.env));
}

// The library stays mapped until the process exits: the functions taken from it may be in use
// on any thread, and unloading OpenBLAS with its thread pool running is not safe.
void* open(const LibrarySpec& spec) {
  const std::string file = file_name(spec);
  void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    unavailable(spec, file, why != nullptr ? why : "unknown reason");
  }
  return handle;
}

template <class Function>
void bind(const LibrarySpec& spec, void* handle, const char* name, Function& into,
          bool required = true) {
  // POSIX guarantees that a function's address from dlsym converts to a function pointer.
  into = reinterpret_cast<Function>(::dlsym(handle, name));
  if (into == nullptr && required) {
    unavailable(spec, file_name(spec), fmt::format("it has no function {}", name));
  }
}

Blas load_blas() {
  void* handle = open(kBlas);
  Blas blas;
  bind(kBlas, handle, "cblas_sgemm", blas.sgemm);
  bind(kBlas, handle, "cblas_dgemm", blas.dgemm);
  bind(kBlas, handle, "openblas_get_num_threads", blas.get_num_threads, false);
  bind(kBlas, handle, "openblas_set_num_threads", blas.set_num_threads, false);
  return blas;
}

Lapack load_lapack() {
  void* handle = open(kLapack);
  Lapack lapack;
  bind(kLapack, handle, "LAPACKE_dgetrf", lapack.dgetrf);
  bind(kLapack, handle, "LAPACKE_dgetri", lapack.dgetri);
  bind(kLapack, handle, "LAPACKE_dgesv", lapack.dgesv);
  bind(kLapack, handle, "LAPACKE_dgesdd", lapack.dgesdd);
  return lapack;
}

Fftw load_fftw() {
  void* handle = open(kFftw);
  Fftw fftw;
  bind(kFftw, handle, "fftw_malloc", fftw.malloc);
  bind(kFftw, handle, "fftw_free", fftw.free);
  bind(kFftw, handle, "fftw_plan_dft_c2r_2d", fftw.plan_dft_c2r_2d);
  bind(kFftw, handle, "fftw_execute", fftw.execute);
  bind(kFftw, handle, "fftw_destroy_plan", fftw.destroy_plan);
  return fftw;
}

}  // namespace

// A function-local static initialised by a throwing call is retried by the next caller, so a
// missing library is reported every time, and loaded once it is there.
const Blas& blas() {
  static const Blas loaded = load_blas();
  return loaded;
}

const Lapack& lapack() {
  static const Lapack loaded = load_lapack();
  return loaded;
}

const Fftw& fftw() {
  static const Fftw loaded = load_fftw();
  return loaded;
}

}  // namespace peft::merge::numeric
