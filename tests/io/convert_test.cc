// Float formats: the bulk converters agree with the scalar definitions for every 16- and 8-bit
// pattern, and encoding rounds to nearest even.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "io/byte_level.h"
#include "io/convert.h"
#include "io/convert_kernels.h"
#include "io/ggml_decoder_variants.h"
#include "testing/helpers.h"
#include "util/cpu_features.h"
#include "util/float16.h"

namespace referee::io {
namespace {

bool same_float(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

TEST(Convert, EveryHalfPatternDecodesLikeTheScalarDefinition) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> f16(65536), bf16(65536);
  convert_to_f32(DType::kF16, reinterpret_cast<const uint8_t*>(all.data()), all.size(), f16.data());
  convert_to_f32(DType::kBF16, reinterpret_cast<const uint8_t*>(all.data()), all.size(), bf16.data());
  for (uint32_t i = 0; i < 65536; ++i) {
    ASSERT_TRUE(same_float(f16[i], f16_to_f32(static_cast<uint16_t>(i)))) << i;
    ASSERT_TRUE(same_float(bf16[i], bf16_to_f32(static_cast<uint16_t>(i)))) << i;
  }
  // Spot values of the definition itself.
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), 0x1p-24f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
}

TEST(Convert, HalfEncodingRoundsToNearestEvenAndBackExactly) {
  for (uint32_t i = 0; i < 65536; ++i) {
    const auto h = static_cast<uint16_t>(i);
    const float f = f16_to_f32(h);
    if (std::isnan(f)) continue;
    ASSERT_EQ(f32_to_f16(f), h) << i;
    const auto b = static_cast<uint16_t>(i);
    if (!std::isnan(bf16_to_f32(b))) {
      ASSERT_EQ(f32_to_bf16(bf16_to_f32(b)), b) << i;
    }
  }
  EXPECT_EQ(f32_to_f16(1.0f + 0x1p-11f), 0x3c00) << "tie rounds to even";
  EXPECT_EQ(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02) << "tie rounds to even (up)";
  EXPECT_EQ(f32_to_f16(70000.0f), 0x7c00) << "overflow to infinity";
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
}

TEST(Convert, Fp8FormatsRoundTripEveryCode) {
  for (int code = 0; code < 256; ++code) {
    const auto c = static_cast<uint8_t>(code);
    const float e4 = f8_e4m3_to_f32(c);
    const float e5 = f8_e5m2_to_f32(c);
    uint8_t back;
    if (!std::isnan(e4)) {
      convert_from_f32(DType::kF8_E4M3, &e4, 1, &back);
      EXPECT_EQ(back, c == 0x80 ? 0x80 : c) << "E4M3 " << code;
    }
    if (!std::isnan(e5) && !std::isinf(e5)) {
      convert_from_f32(DType::kF8_E5M2, &e5, 1, &back);
      EXPECT_EQ(back, c) << "E5M2 " << code;
    }
  }
  EXPECT_EQ(f8_e4m3_to_f32(0x7e), 448.0f);
  EXPECT_TRUE(std::isnan(f8_e4m3_to_f32(0x7f)));
  EXPECT_EQ(f8_e4m3_to_f32(0x01), 0x1p-9f);
  const float big = 1000.0f;
  uint8_t out;
  convert_from_f32(DType::kF8_E4M3, &big, 1, &out);
  EXPECT_EQ(out, 0x7e) << "E4M3 saturates at 448";
  EXPECT_EQ(f8_e8m0_to_f32(127), 1.0f);
}

TEST(ByteLevel, MapsEveryByteToOneCharacterAndBack) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string text = to_byte_level(all);
  EXPECT_EQ(from_byte_level(text), all);
  EXPECT_EQ(byte_level_char(' '), "Ġ");
  EXPECT_EQ(byte_level_char('\n'), "Ċ");
  EXPECT_EQ(byte_level_char('A'), "A");
  EXPECT_EQ(to_byte_level("안"), "ìķĪ");
  EXPECT_FALSE(from_byte_level("한"));
}

}  // namespace
}  // namespace referee::io

namespace referee::io {
namespace {

// The decoders are built twice (baseline x86-64 and AVX2+F16C) and picked at run time; both
// builds must turn any bytes into the same floats, bit for bit.
TEST(Convert, BothDecoderBuildsAgreeBitForBit) {
  if (!cpu_features().avx2 || !cpu_features().f16c) GTEST_SKIP() << "no AVX2/F16C on this CPU";
  testing::SplitMix64 rng(42);
  for (int i = 0; i < kDTypeCount; ++i) {
    const auto t = static_cast<DType>(i);
    const auto baseline = ggml_decoder_baseline(t);
    const auto avx2 = ggml_decoder_avx2(t);
    ASSERT_EQ(baseline == nullptr, avx2 == nullptr) << dtype_name(t);
    if (baseline == nullptr) continue;
    const auto& info = dtype_info(t);
    const size_t blocks = 64;
    std::vector<uint8_t> bytes(blocks * info.block_bytes);
    for (auto& b : bytes) b = static_cast<uint8_t>(rng.next());
    std::vector<float> a(blocks * info.block_elems), b(a.size());
    baseline(bytes.data(), blocks, a.data());
    avx2(bytes.data(), blocks, b.data());
    for (size_t k = 0; k < a.size(); ++k) {
      ASSERT_TRUE(same_float(a[k], b[k])) << dtype_name(t) << " element " << k;
    }
  }
  // And the half-float kernels against the scalar definitions.
  std::vector<uint16_t> halves(1000);
  for (auto& h : halves) h = static_cast<uint16_t>(rng.next());
  std::vector<float> out(halves.size());
  detail::bf16_to_f32_avx2(reinterpret_cast<const uint8_t*>(halves.data()), halves.size(), out.data());
  for (size_t k = 0; k < halves.size(); ++k) ASSERT_TRUE(same_float(out[k], bf16_to_f32(halves[k])));
  detail::f16_to_f32_avx2(reinterpret_cast<const uint8_t*>(halves.data()), halves.size(), out.data());
  for (size_t k = 0; k < halves.size(); ++k) {
    // F16C quiets signalling NaNs; every other value must match exactly.
    ASSERT_TRUE(same_float(out[k], f16_to_f32(halves[k]))) << k;
  }
  // The f16 encoder against the scalar rounding: random bit patterns (every exponent, NaNs and
  // infinities included), halfway cases, and the overflow and subnormal edges.
  std::vector<float> floats;
  for (int k = 0; k < 4000; ++k) floats.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng.next())));
  for (uint32_t h = 0; h < 0x7c00u; h += 7) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    const float next = f16_to_f32(static_cast<uint16_t>(h + 1));
    floats.insert(floats.end(), {f, -f, (f + next) / 2, -(f + next) / 2});
  }
  floats.insert(floats.end(), {65504.0f, 65519.99f, 65520.0f, 0x1p-25f, 0x1p-24f * 1.5f, 0x1p-14f,
                               std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::quiet_NaN()});
  std::vector<uint16_t> encoded(floats.size());
  detail::f32_to_f16_avx2(floats.data(), floats.size(), reinterpret_cast<uint8_t*>(encoded.data()));
  for (size_t k = 0; k < floats.size(); ++k) {
    ASSERT_EQ(encoded[k], f32_to_f16(floats[k])) << "element " << k << " = " << floats[k];
  }
}

}  // namespace
}  // namespace referee::io
