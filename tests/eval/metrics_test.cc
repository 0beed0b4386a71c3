// lm-evaluation-harness's metric arithmetic, checked against values worked out by hand.
#include "eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace referee::eval {
namespace {

TEST(Aggregation, MeanAndStderrAsLmEval) {
  // [1, 0, 1, 0]: mean 0.5; sample stddev sqrt(1 / 3); stderr sqrt(1 / 3) / 2.
  Aggregate a = aggregate_mean({1, 0, 1, 0});
  EXPECT_DOUBLE_EQ(a.value, 0.5);
  ASSERT_TRUE(a.stderr_value.has_value());
  EXPECT_DOUBLE_EQ(*a.stderr_value, std::sqrt(1.0 / 3.0) / 2.0);
  EXPECT_EQ(a.n, 4u);
  // One value: no stderr (lm-eval prints N/A).
  EXPECT_FALSE(aggregate_mean({1}).stderr_value.has_value());
}

TEST(Aggregation, Perplexities) {
  EXPECT_DOUBLE_EQ(perplexity({-1, -3}), std::exp(2.0));
  EXPECT_DOUBLE_EQ(weighted_perplexity({-4, -2}, {2, 1}), std::exp(2.0));
  EXPECT_DOUBLE_EQ(bits_per_byte({-4, -2}, {3, 3}), 1.0 / std::log(2.0));
}

TEST(ExactMatchMetric, OptionsAsHfEvaluate) {
  EXPECT_EQ(ExactMatch({}, "t")("42", "42"), 1.0);
  EXPECT_EQ(ExactMatch({}, "t")("42", "42 "), 0.0);
  ExactMatchOptions o;
  o.ignore_case = true;
  EXPECT_EQ(ExactMatch(o, "t")("Paris", "paris"), 1.0);
  o = {};
  o.ignore_punctuation = true;
  EXPECT_EQ(ExactMatch(o, "t")("hello, world!", "hello world"), 1.0);
  o = {};
  o.ignore_numbers = true;
  EXPECT_EQ(ExactMatch(o, "t")("a1b2", "ab"), 1.0);
  // gsm8k's regexes_to_ignore: the reasoning before "#### ", commas, dollars, a final dot.
  o = {};
  o.regexes_to_ignore = {",", "\\$", "(?s).*#### ", "\\.$"};
  EXPECT_EQ(ExactMatch(o, "t")("$1,200.", "Janet pays 12 * 100 = 1200\n#### 1200"), 1.0);
}

TEST(Lengths, CodePointsAndWords) {
  EXPECT_EQ(code_point_length("abc"), 3u);
  EXPECT_EQ(code_point_length("\xc3\xa9t\xc3\xa9"), 3u);  // "été"
  EXPECT_EQ(count_words("a b  c"), 3u);
  EXPECT_EQ(count_words(" a b "), 4u);  // re.split gives ['', 'a', 'b', '']
}

}  // namespace
}  // namespace referee::eval
