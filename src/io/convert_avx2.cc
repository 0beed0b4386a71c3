// Half-float runs decoded (and f16 encoded) eight at a time with AVX2 and F16C. Built with -mavx2 -mf16c (see
// CMakeLists.txt); io/convert.cc calls these only when util/cpu_features.h reports both.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "io/convert_kernels.h"
#include "util/float16.h"

namespace referee::io::detail {

void bf16_to_f32_avx2(const uint8_t* src, uint64_t n, float* dst) {
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    const __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), w);
  }
  for (; i < n; ++i) {
    uint16_t b;
    std::memcpy(&b, src + 2 * i, 2);
    dst[i] = bf16_to_f32(b);
  }
}

void f16_to_f32_avx2(const uint8_t* src, uint64_t n, float* dst) {
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = f16_to_f32(h);
  }
}

void f32_to_f16_avx2(const float* src, uint64_t n, uint8_t* dst) {
  // The hardware keeps a NaN's payload where the scalar definition writes the canonical quiet NaN;
  // NaN lanes are replaced first by the float whose conversion is that NaN (payload 0, same sign).
  const __m256 sign_mask = _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int>(0x80000000u)));
  const __m256 quiet_nan = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fc00000));
  uint64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(src + i);
    const __m256 is_nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    x = _mm256_blendv_ps(x, _mm256_or_ps(_mm256_and_ps(x, sign_mask), quiet_nan), is_nan);
    const __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 2 * i), h);
  }
  for (; i < n; ++i) {
    const uint16_t h = f32_to_f16(src[i]);
    std::memcpy(dst + 2 * i, &h, 2);
  }
}

}  // namespace referee::io::detail
