// PythonRandom must draw exactly what CPython's random.Random draws, so referee shows a model the
// same few-shot examples lm-evaluation-harness would. Expected values printed by CPython 3.11.
#include <gtest/gtest.h>

#include "eval/python_random.h"
#include "util/error.h"

namespace referee::eval {
namespace {

using Indices = std::vector<size_t>;

TEST(PythonRandom, GetrandbitsMatchesCPython) {
  // r = random.Random(1234); [r.getrandbits(32) for _ in range(3)], r.getrandbits(64),
  // r.getrandbits(33), r.getrandbits(1)
  PythonRandom r(1234);
  EXPECT_EQ(r.getrandbits(32), 4150886329u);
  EXPECT_EQ(r.getrandbits(32), 3342196574u);
  EXPECT_EQ(r.getrandbits(32), 1892932127u);
  EXPECT_EQ(r.getrandbits(64), 138193304849869414ull);
  EXPECT_EQ(r.getrandbits(33), 4684278597ull);
  EXPECT_EQ(r.getrandbits(1), 1u);
}

TEST(PythonRandom, RandbelowMatchesCPython) {
  // [r._randbelow(10) for _ in range(8)]
  PythonRandom r(1234);
  std::vector<uint64_t> got;
  for (int i = 0; i < 8; ++i) got.push_back(r.randbelow(10));
  EXPECT_EQ(got, (std::vector<uint64_t>{7, 1, 0, 1, 9, 0, 1, 1}));
}

TEST(PythonRandom, SampleSetBranchMatchesCPython) {
  // random.Random(1234).sample(range(100), 5): a large population, so the set-based branch.
  EXPECT_EQ(PythonRandom(1234).sample(100, 5), (Indices{99, 56, 14, 0, 11}));
  // random.Random(0).sample(range(1000), 30)
  EXPECT_EQ(PythonRandom(0).sample(1000, 30),
            (Indices{864, 394, 776, 911, 430, 41,  265, 988, 523, 497, 414, 940, 802, 849, 310,
                     991, 488, 366, 597, 913, 929, 223, 516, 142, 288, 143, 773, 97,  633, 818}));
}

TEST(PythonRandom, SamplePoolBranchMatchesCPython) {
  // A seed wider than 32 bits (two key words): random.Random(2**40 + 5).sample(range(10), 10)
  EXPECT_EQ(PythonRandom((1ull << 40) + 5).sample(10, 10), (Indices{8, 9, 4, 5, 0, 7, 6, 3, 2, 1}));
  // r = random.Random(42); r.sample(range(3), 2), r.sample(range(50), 7): one generator advanced.
  PythonRandom r(42);
  EXPECT_EQ(r.sample(3, 2), (Indices{2, 0}));
  EXPECT_EQ(r.sample(50, 7), (Indices{1, 47, 17, 15, 14, 8, 6}));
}

TEST(PythonRandom, SampleLargerThanPopulationIsAnError) {
  PythonRandom r(1);
  EXPECT_THROW(r.sample(3, 4), Error);
  EXPECT_TRUE(r.sample(0, 0).empty());
}

}  // namespace
}  // namespace referee::eval
