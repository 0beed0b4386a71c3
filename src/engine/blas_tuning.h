// Setting OpenBLAS up before any work: one thread, and its fastest kernels for this CPU.
//
// OpenBLAS reads its settings from the environment only when the library is loaded, so a program
// that wants other settings sets the variables and executes itself again, once, before doing any
// work. Two settings matter:
// - OPENBLAS_NUM_THREADS=1. referee parallelises with its own pool and calls BLAS single-threaded
//   inside its tasks; a pthreads OpenBLAS starts worker threads anyway when it is loaded, and they
//   spin in sched_yield for their first ~0.1 s: on two cores, a third of a short `referee trace`.
// - OPENBLAS_CORETYPE=SKYLAKEX on AVX-512 CPUs. OpenBLAS 0.3.21 (Debian 12) does not recognise
//   recent AVX-512 processors (AMD Zen 4 and 5) and runs its Haswell (AVX2) kernels on them, at
//   about half the speed of its SkylakeX kernels (measured: 70 vs 125 GFLOP/s per core for the
//   engine's matrix shapes).
#pragma once

namespace referee::engine {

// Sets OPENBLAS_NUM_THREADS=1 when it is unset, and OPENBLAS_CORETYPE=SKYLAKEX when the CPU has
// AVX-512, OpenBLAS chose its Haswell kernels and OPENBLAS_CORETYPE is unset; if either changed,
// re-executes the program with the same arguments (does not return). REFEREE_KEEP_BLAS_KERNELS
// (any value) leaves OpenBLAS as it is. Returns and changes nothing when all is already set.
void configure_blas(char** argv);

// The kernel set OpenBLAS is using ("Haswell", "SkylakeX", ...).
const char* blas_kernel_name();

}  // namespace referee::engine
