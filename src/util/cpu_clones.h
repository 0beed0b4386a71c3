// REFEREE_AVX2_CLONE marks a hot loop-heavy function to be compiled twice, for x86-64's baseline
// (SSE2) and for AVX2, the copy chosen once at load time from what the CPU has (GCC and Clang's
// target_clones, resolved through an ifunc). One binary thus runs everywhere and uses 256-bit
// vectors where it can: the trace statistics' loops (count sketches, Gram matrices, CKA,
// standardisation) ran 5-9% faster this way on an AVX2 machine (old and new binaries alternated on
// bench/trace_bench.cc's pair).
//
// Both copies compute the same floats. AVX2 does not imply FMA, so no multiply-add is contracted,
// and the compilers never reorder floating-point sums without -ffast-math: a vectorised reduction
// keeps the lanes the source spells out (the explicit partial sums in these functions), whatever
// the vector width.
//
// Off in the sanitized build (CMake defines REFEREE_NO_CPU_CLONES there): ifunc resolvers run
// before the sanitizers' runtime is set up.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(REFEREE_NO_CPU_CLONES)
#define REFEREE_AVX2_CLONE __attribute__((target_clones("avx2", "default")))
#else
#define REFEREE_AVX2_CLONE
#endif
