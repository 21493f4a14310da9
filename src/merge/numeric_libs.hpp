// The numeric libraries of the merge layer (BLAS, LAPACKE, FFTW3), loaded on first use.
//
// They are not linked: they are mapped (core/shared_library.hpp) the first time a merge needs
// one, so every program and command that does not merge starts without them. Linked, they cost
// ~9 ms per process, and OpenBLAS's thread pool, started by its constructor, spun in
// sched_yield in commands that never multiply (docs/library.md §7).
//
// Each library's file name defaults to the SONAME Debian's packages install and can be
// overridden by an environment variable (PEFTCPP_BLAS_LIBRARY, PEFTCPP_LAPACKE_LIBRARY,
// PEFTCPP_FFTW_LIBRARY): a path or a name the loader searches for.
#pragma once

#include <cblas.h>
#include <fftw3.h>
#include <lapacke.h>

namespace peft::merge::numeric {

struct Blas {
  decltype(&cblas_sgemm) sgemm = nullptr;
  decltype(&cblas_dgemm) dgemm = nullptr;
  // OpenBLAS's thread-count controls; null for a BLAS that has none.
  decltype(&openblas_get_num_threads) get_num_threads = nullptr;
  decltype(&openblas_set_num_threads) set_num_threads = nullptr;
  // OpenBLAS's blas_thread_shutdown_ (not in its headers); null for another BLAS.
  int (*thread_shutdown)() = nullptr;
};

struct Lapack {
  decltype(&LAPACKE_dgetrf) dgetrf = nullptr;
  decltype(&LAPACKE_dgetri) dgetri = nullptr;
  decltype(&LAPACKE_dgesv) dgesv = nullptr;
  decltype(&LAPACKE_dgesdd) dgesdd = nullptr;
};

struct Fftw {
  decltype(&fftw_malloc) malloc = nullptr;
  decltype(&fftw_free) free = nullptr;
  decltype(&fftw_plan_dft_c2r_2d) plan_dft_c2r_2d = nullptr;
  decltype(&fftw_execute) execute = nullptr;
  decltype(&fftw_destroy_plan) destroy_plan = nullptr;
};

// Loaded once per process (thread-safe); throws peft::Error (Unsupported) when the library or
// one of its functions is missing, and again on every later call.
const Blas& blas();
// The BLAS if a call of blas() has loaded it, else null; never loads it.
const Blas* blas_if_loaded() noexcept;
const Lapack& lapack();
const Fftw& fftw();

}  // namespace peft::merge::numeric
