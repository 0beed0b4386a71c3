// Vector kernels of io/convert.cc, each built with the instruction-set flags it needs and called
// only when util/cpu_features.h reports them. Internal to io/.
#pragma once

#include <cstddef>
#include <cstdint>

namespace referee::io::detail {

void bf16_to_f32_avx2(const uint8_t* src, uint64_t n, float* dst);
void f16_to_f32_avx2(const uint8_t* src, uint64_t n, float* dst);
// Rounds to nearest even like util/float16.h's f32_to_f16, NaNs included (sign | 0x7e00).
void f32_to_f16_avx2(const float* src, uint64_t n, uint8_t* dst);

}  // namespace referee::io::detail
