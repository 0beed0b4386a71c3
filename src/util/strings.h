// Small string helpers shared by several rooms.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace referee {

// A hash for unordered containers keyed by std::string that also accepts std::string_view
// lookups without building a temporary string (use with std::equal_to<>).
struct TransparentStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// An integer with its digits grouped in threes for reading: -1234567 -> "-1,234,567".
std::string group_digits(int64_t n);

}  // namespace referee
