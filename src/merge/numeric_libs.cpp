#include "merge/numeric_libs.hpp"

#include <atomic>

#include "core/shared_library.hpp"

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

constexpr LibrarySpec kBlas{"PEFTCPP_BLAS_LIBRARY", PEFTCPP_BLAS_SONAME, "libopenblas0",
                            "merging (matrix products, BLAS)"};
constexpr LibrarySpec kLapack{"PEFTCPP_LAPACKE_LIBRARY", PEFTCPP_LAPACKE_SONAME, "liblapacke",
                              "merging (inverses, solves and SVDs, LAPACKE)"};
constexpr LibrarySpec kFftw{"PEFTCPP_FFTW_LIBRARY", PEFTCPP_FFTW_SONAME, "libfftw3-double3",
                            "merging FourierFT (inverse FFT, FFTW3)"};

std::atomic<const Blas*> loaded_blas{nullptr};

Blas load_blas() {
  const LoadedLibrary library(kBlas);
  Blas blas;
  library.bind("cblas_sgemm", blas.sgemm);
  library.bind("cblas_dgemm", blas.dgemm);
  library.bind("openblas_get_num_threads", blas.get_num_threads, false);
  library.bind("openblas_set_num_threads", blas.set_num_threads, false);
  library.bind("blas_thread_shutdown_", blas.thread_shutdown, false);
  // OpenBLAS's constructor starts a pool of threads that spin in sched_yield for about 0.1 s
  // of CPU waiting for work (a tenth of a 1 GB merge on two cores), and again whenever its
  // thread count is raised. Merges parallelise themselves and run one BLAS thread each: set
  // OpenBLAS to one thread for the process and stop the pool. A program that uses OpenBLAS
  // itself may raise the count again (SingleThreadedBlas lowers it during merges).
  if (blas.set_num_threads != nullptr) blas.set_num_threads(1);
  if (blas.thread_shutdown != nullptr) blas.thread_shutdown();
  return blas;
}

Lapack load_lapack() {
  const LoadedLibrary library(kLapack);
  Lapack lapack;
  library.bind("LAPACKE_dgetrf", lapack.dgetrf);
  library.bind("LAPACKE_dgetri", lapack.dgetri);
  library.bind("LAPACKE_dgesv", lapack.dgesv);
  library.bind("LAPACKE_dgesdd", lapack.dgesdd);
  return lapack;
}

Fftw load_fftw() {
  const LoadedLibrary library(kFftw);
  Fftw fftw;
  library.bind("fftw_malloc", fftw.malloc);
  library.bind("fftw_free", fftw.free);
  library.bind("fftw_plan_dft_c2r_2d", fftw.plan_dft_c2r_2d);
  library.bind("fftw_execute", fftw.execute);
  library.bind("fftw_destroy_plan", fftw.destroy_plan);
  return fftw;
}

}  // namespace

// A function-local static initialised by a throwing call is retried by the next caller, so a
// missing library is reported every time, and loaded once it is there.
const Blas& blas() {
  static const Blas loaded = load_blas();
  loaded_blas.store(&loaded, std::memory_order_release);
  return loaded;
}

const Blas* blas_if_loaded() noexcept {
  return loaded_blas.load(std::memory_order_acquire);
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
