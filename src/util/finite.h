// Whether every float of an array is finite, in one pass the compiler vectorises: the exponent
// bits are all ones exactly for an infinity or a NaN. Callers that must name the culprit search
// for it only when this fails (std::isfinite element by element, with an early exit, does not
// vectorise and cost a pass as slow as the work it guarded).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace referee {

inline bool all_finite(const float* x, size_t count) {
  uint32_t non_finite = 0;
  for (size_t k = 0; k < count; ++k) {
    uint32_t bits;
    std::memcpy(&bits, x + k, sizeof bits);
    non_finite |= (bits & 0x7f800000u) == 0x7f800000u;
  }
  return non_finite == 0;
}

}  // namespace referee
