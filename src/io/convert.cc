#include "io/convert.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "io/convert_kernels.h"
#include "io/ggml_quants.h"
#include "util/cpu_features.h"
#include "util/error.h"
#include "util/float16.h"

namespace referee::io {
namespace {

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void numbers_to_f32(const uint8_t* src, uint64_t n, float* dst) {
  for (uint64_t i = 0; i < n; ++i) dst[i] = static_cast<float>(load<T>(src + i * sizeof(T)));
}

// Half floats: AVX2 and F16C convert eight at a time. Every x86-64 CPU since 2013 has them, but
// the baseline target does not assume them, so the choice is made at run time.
const bool kFastHalves = cpu_features().avx2 && cpu_features().f16c;

void bf16_to_f32_run(const uint8_t* src, uint64_t n, float* dst) {
  if (kFastHalves) return detail::bf16_to_f32_avx2(src, n, dst);
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t bits = static_cast<uint32_t>(load<uint16_t>(src + 2 * i)) << 16;
    std::memcpy(dst + i, &bits, 4);
  }
}

void f16_to_f32_run(const uint8_t* src, uint64_t n, float* dst) {
  if (kFastHalves) return detail::f16_to_f32_avx2(src, n, dst);
  for (uint64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(load<uint16_t>(src + 2 * i));
}

void bytes_to_f32(float (*decode)(uint8_t), const uint8_t* src, uint64_t n, float* dst) {
  // 256-entry table: one lookup per element instead of the bit arithmetic.
  float table[256];
  for (int b = 0; b < 256; ++b) table[b] = decode(static_cast<uint8_t>(b));
  for (uint64_t i = 0; i < n; ++i) dst[i] = table[src[i]];
}

template <typename T>
void f32_to_integers(const float* src, uint64_t n, uint8_t* dst) {
  for (uint64_t i = 0; i < n; ++i) {
    double v = std::nearbyint(static_cast<double>(src[i]));
    if (std::isnan(v)) v = 0;
    v = std::clamp(v, static_cast<double>(std::numeric_limits<T>::lowest()),
                   static_cast<double>(std::numeric_limits<T>::max()));
    // The clamp to T's range leaves values that convert exactly, except at the 64-bit limits
    // where double rounding can land one past max; the comparison catches it.
    T out = v >= static_cast<double>(std::numeric_limits<T>::max()) ? std::numeric_limits<T>::max()
                                                                     : static_cast<T>(v);
    std::memcpy(dst + i * sizeof(T), &out, sizeof(T));
  }
}

// OCP E4M3FN: round to nearest even, saturate at +-448 (the format has no infinity).
uint8_t f32_to_f8_e4m3(float f) {
  if (std::isnan(f)) return 0x7f;
  const uint8_t sign = std::signbit(f) ? 0x80 : 0;
  const float a = std::fabs(f);
  if (a >= 448.0f) return sign | 0x7e;
  if (a < 0x1p-6f) {
    // Subnormals count multiples of 2^-9; a result of 8 is the smallest normal, whose code is 8.
    return sign | static_cast<uint8_t>(std::nearbyint(a * 0x1p9f));
  }
  int exp;
  std::frexp(a, &exp);
  int binade = exp - 1;  // a = 1.m * 2^binade
  int mantissa = static_cast<int>(std::nearbyint((std::ldexp(a, -binade) - 1.0f) * 8.0f));
  if (mantissa == 8) {
    mantissa = 0;
    ++binade;
  }
  const int field = binade + 7;
  if (field > 15 || (field == 15 && mantissa > 6)) return sign | 0x7e;
  return sign | static_cast<uint8_t>((field << 3) | mantissa);
}

}  // namespace

bool can_convert_to_f32(DType t) {
  if (is_block_quantised(t)) return ggml_can_dequantize(t);
  return true;
}

void convert_to_f32(DType t, const uint8_t* src, uint64_t elems, float* dst) {
  switch (t) {
    case DType::kF32: std::memcpy(dst, src, elems * 4); return;
    case DType::kF64: return numbers_to_f32<double>(src, elems, dst);
    case DType::kF16: return f16_to_f32_run(src, elems, dst);
    case DType::kBF16: return bf16_to_f32_run(src, elems, dst);
    case DType::kF8_E4M3: return bytes_to_f32(f8_e4m3_to_f32, src, elems, dst);
    case DType::kF8_E5M2: return bytes_to_f32(f8_e5m2_to_f32, src, elems, dst);
    case DType::kF8_E8M0: return bytes_to_f32(f8_e8m0_to_f32, src, elems, dst);
    case DType::kI64: return numbers_to_f32<int64_t>(src, elems, dst);
    case DType::kI32: return numbers_to_f32<int32_t>(src, elems, dst);
    case DType::kI16: return numbers_to_f32<int16_t>(src, elems, dst);
    case DType::kI8: return numbers_to_f32<int8_t>(src, elems, dst);
    case DType::kU64: return numbers_to_f32<uint64_t>(src, elems, dst);
    case DType::kU32: return numbers_to_f32<uint32_t>(src, elems, dst);
    case DType::kU16: return numbers_to_f32<uint16_t>(src, elems, dst);
    case DType::kU8: return numbers_to_f32<uint8_t>(src, elems, dst);
    case DType::kBool:
      for (uint64_t i = 0; i < elems; ++i) dst[i] = src[i] != 0 ? 1.0f : 0.0f;
      return;
    default: {
      const auto& info = dtype_info(t);
      if (elems % info.block_elems != 0) {
        throw Error::invalid_argument(
            "convert_to_f32", fmt::format("{} elements is not a whole number of {} blocks of {}",
                                          elems, info.name, info.block_elems));
      }
      return ggml_dequantize(t, src, elems / info.block_elems, dst);
    }
  }
}

bool can_convert_from_f32(DType t) {
  if (is_block_quantised(t)) return ggml_can_quantize(t);
  return t != DType::kF8_E8M0;
}

void convert_from_f32(DType t, const float* src, uint64_t elems, uint8_t* dst) {
  switch (t) {
    case DType::kF32: std::memcpy(dst, src, elems * 4); return;
    case DType::kF64:
      for (uint64_t i = 0; i < elems; ++i) {
        const double v = src[i];
        std::memcpy(dst + 8 * i, &v, 8);
      }
      return;
    case DType::kF16:
      if (kFastHalves) return detail::f32_to_f16_avx2(src, elems, dst);
      for (uint64_t i = 0; i < elems; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        std::memcpy(dst + 2 * i, &h, 2);
      }
      return;
    case DType::kBF16:
      for (uint64_t i = 0; i < elems; ++i) {
        const uint16_t b = f32_to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &b, 2);
      }
      return;
    case DType::kF8_E4M3:
      for (uint64_t i = 0; i < elems; ++i) dst[i] = f32_to_f8_e4m3(src[i]);
      return;
    case DType::kF8_E5M2:
      // E5M2 is the top byte of an f16; round the f16 to 2 mantissa bits, nearest even.
      for (uint64_t i = 0; i < elems; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) {
          dst[i] = static_cast<uint8_t>((h >> 8) | 0x02);  // NaN stays NaN
          continue;
        }
        dst[i] = static_cast<uint8_t>((h + 0x7fu + ((h >> 8) & 1u)) >> 8);
      }
      return;
    case DType::kI64: return f32_to_integers<int64_t>(src, elems, dst);
    case DType::kI32: return f32_to_integers<int32_t>(src, elems, dst);
    case DType::kI16: return f32_to_integers<int16_t>(src, elems, dst);
    case DType::kI8: return f32_to_integers<int8_t>(src, elems, dst);
    case DType::kU64: return f32_to_integers<uint64_t>(src, elems, dst);
    case DType::kU32: return f32_to_integers<uint32_t>(src, elems, dst);
    case DType::kU16: return f32_to_integers<uint16_t>(src, elems, dst);
    case DType::kU8: return f32_to_integers<uint8_t>(src, elems, dst);
    case DType::kBool:
      for (uint64_t i = 0; i < elems; ++i) dst[i] = src[i] != 0.0f ? 1 : 0;
      return;
    default: {
      const auto& info = dtype_info(t);
      if (!can_convert_from_f32(t)) {
        throw Error::not_supported("convert_from_f32",
                                   fmt::format("encoding to {}", info.name));
      }
      if (elems % info.block_elems != 0) {
        throw Error::invalid_argument(
            "convert_from_f32", fmt::format("{} elements is not a whole number of {} blocks of {}",
                                            elems, info.name, info.block_elems));
      }
      return ggml_quantize(t, src, elems / info.block_elems, dst);
    }
  }
}

}  // namespace referee::io
