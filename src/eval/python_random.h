// CPython's `random.Random`, bit for bit, for the part lm-evaluation-harness uses to pick few-shot
// examples: seeding from an integer (init_by_array over the seed's 32-bit words, least
// significant first), getrandbits(k), _randbelow(n) (rejection sampling on getrandbits of n's bit
// length) and sample(population, k) with both of its branches (a shrinking pool when the
// population is small, a set of chosen indices when it is large). Same seed, same draws as
// `random.Random(seed)` in CPython 3.x, so referee shows a model the same few-shot examples lm-eval
// would. Not thread-safe (one generator per sequence of draws).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace referee::eval {

class PythonRandom {
 public:
  explicit PythonRandom(uint64_t seed);  // random.Random(seed) for a non-negative int seed

  uint32_t genrand_uint32();  // one output of MT19937
  // getrandbits(k) for 0 <= k <= 64 (Python allows more; few-shot sampling never needs it).
  uint64_t getrandbits(int k);
  // Python's _randbelow_with_getrandbits: uniform in [0, n); 0 when n is 0.
  uint64_t randbelow(uint64_t n);
  // random.sample(range(n), k): the chosen indices, in the order Python returns them.
  // Throws Error::invalid_argument when k > n (Python's ValueError).
  std::vector<size_t> sample(size_t n, size_t k);

 private:
  void init_genrand(uint32_t s);
  void init_by_array(const std::vector<uint32_t>& key);
  static constexpr int kN = 624;
  uint32_t mt_[kN];
  int mti_ = kN + 1;
};

}  // namespace referee::eval
