// trace/assignment: the maximum-score one-to-one matching, checked against brute force on small
// matrices (every injective map), planted permutations, rectangular shapes, ties and bad input.
#include "trace/assignment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "util/error.h"

namespace referee::trace {
namespace {

std::vector<float> random_scores(int64_t rows, int64_t cols, std::mt19937_64& rng, float lo = -1,
                                 float hi = 1) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> s(static_cast<size_t>(rows * cols));
  for (float& v : s) v = u(rng);
  return s;
}

// Checks the shape of a matching: min(rows, cols) pairs, each column at most once.
void expect_valid(const std::vector<int64_t>& col_of_row, int64_t rows, int64_t cols) {
  ASSERT_EQ(col_of_row.size(), static_cast<size_t>(rows));
  std::vector<int> used(static_cast<size_t>(cols), 0);
  int64_t pairs = 0;
  for (int64_t c : col_of_row) {
    if (c < 0) {
      ASSERT_EQ(c, -1);
      continue;
    }
    ASSERT_LT(c, cols);
    ASSERT_EQ(used[static_cast<size_t>(c)]++, 0) << "column " << c << " used twice";
    ++pairs;
  }
  EXPECT_EQ(pairs, std::min(rows, cols));
}

double total(const std::vector<float>& s, int64_t cols, const std::vector<int64_t>& col_of_row) {
  double t = 0;
  for (size_t r = 0; r < col_of_row.size(); ++r) {
    if (col_of_row[r] >= 0)
      t += s[r * static_cast<size_t>(cols) + static_cast<size_t>(col_of_row[r])];
  }
  return t;
}

// The best total over every one-to-one matching of min(rows, cols) pairs (rows, cols <= 7).
double brute_force_best(const std::vector<float>& s, int64_t rows, int64_t cols) {
  double best = -std::numeric_limits<double>::infinity();
  if (rows <= cols) {
    std::vector<int64_t> perm(static_cast<size_t>(cols));
    std::iota(perm.begin(), perm.end(), 0);
    do {  // the first `rows` entries of every permutation of the columns: every injective map
      double t = 0;
      for (int64_t r = 0; r < rows; ++r)
        t += s[static_cast<size_t>(r * cols + perm[static_cast<size_t>(r)])];
      best = std::max(best, t);
    } while (std::next_permutation(perm.begin(), perm.end()));
  } else {
    std::vector<int64_t> perm(static_cast<size_t>(rows));
    std::iota(perm.begin(), perm.end(), 0);
    do {
      double t = 0;
      for (int64_t c = 0; c < cols; ++c)
        t += s[static_cast<size_t>(perm[static_cast<size_t>(c)] * cols + c)];
      best = std::max(best, t);
    } while (std::next_permutation(perm.begin(), perm.end()));
  }
  return best;
}

TEST(Assignment, MatchesBruteForceOnSmallSquareMatrices) {
  std::mt19937_64 rng(1);
  for (int64_t n = 1; n <= 7; ++n) {
    for (int trial = 0; trial < 30; ++trial) {
      const auto s = random_scores(n, n, rng);
      const auto a = max_score_assignment(s.data(), n, n);
      expect_valid(a, n, n);
      EXPECT_NEAR(total(s, n, a), brute_force_best(s, n, n), 1e-9)
          << "n " << n << " trial " << trial;
    }
  }
}

TEST(Assignment, MatchesBruteForceOnRectangularMatrices) {
  std::mt19937_64 rng(2);
  for (int64_t rows = 1; rows <= 7; ++rows) {
    for (int64_t cols = 1; cols <= 7; ++cols) {
      for (int trial = 0; trial < 5; ++trial) {
        const auto s = random_scores(rows, cols, rng, -5, 3);
        const auto a = max_score_assignment(s.data(), rows, cols);
        expect_valid(a, rows, cols);
        EXPECT_NEAR(total(s, cols, a), brute_force_best(s, rows, cols), 1e-9)
            << rows << " x " << cols;
      }
    }
  }
}

TEST(Assignment, HandlesTiesAndDegenerateScores) {
  std::mt19937_64 rng(3);
  // Small integer scores: many optimal matchings, and ties inside the shortest-path search.
  std::uniform_int_distribution<int> small(0, 2);
  for (int64_t rows = 2; rows <= 7; ++rows) {
    for (int64_t cols = 2; cols <= 7; ++cols) {
      std::vector<float> s(static_cast<size_t>(rows * cols));
      for (float& v : s) v = static_cast<float>(small(rng));
      const auto a = max_score_assignment(s.data(), rows, cols);
      expect_valid(a, rows, cols);
      EXPECT_EQ(total(s, cols, a), brute_force_best(s, rows, cols)) << rows << " x " << cols;
    }
  }
  // All equal, all zero, and large magnitudes.
  for (float value : {0.0f, 1.0f, -3.0f, 1e30f, -1e30f}) {
    const std::vector<float> s(50 * 40, value);
    const auto a = max_score_assignment(s.data(), 50, 40);
    expect_valid(a, 50, 40);
    const auto b = max_score_assignment(s.data(), 40, 50);
    expect_valid(b, 40, 50);
  }
  // Deterministic: the same input gives the same matching.
  const std::vector<float> ones(30 * 30, 1.0f);
  EXPECT_EQ(max_score_assignment(ones.data(), 30, 30), max_score_assignment(ones.data(), 30, 30));
}

// A planted permutation plus noise smaller than the gap: the permutation is the unique optimum
// (every row another matching changes loses its 1 and gains at most 0.4 of noise).
TEST(Assignment, RecoversAPlantedPermutation) {
  std::mt19937_64 rng(4);
  for (int64_t n : {10, 100, 400}) {
    std::vector<int64_t> perm(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), rng);
    auto s = random_scores(n, n, rng, 0, 0.4f);
    for (int64_t r = 0; r < n; ++r)
      s[static_cast<size_t>(r * n + perm[static_cast<size_t>(r)])] += 1;
    EXPECT_EQ(max_score_assignment(s.data(), n, n), perm) << n;
  }
  // Rectangular: rows planted among more columns, and columns planted among more rows.
  const int64_t rows = 120, cols = 300;
  std::vector<int64_t> target(static_cast<size_t>(cols));
  std::iota(target.begin(), target.end(), 0);
  std::shuffle(target.begin(), target.end(), rng);
  target.resize(static_cast<size_t>(rows));
  auto wide = random_scores(rows, cols, rng, 0, 0.4f);
  for (int64_t r = 0; r < rows; ++r)
    wide[static_cast<size_t>(r * cols + target[static_cast<size_t>(r)])] += 1;
  EXPECT_EQ(max_score_assignment(wide.data(), rows, cols), target);
  std::vector<float> tall(
      static_cast<size_t>(rows * cols));  // the transpose: 300 rows, 120 columns
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      tall[static_cast<size_t>(c * rows + r)] = wide[static_cast<size_t>(r * cols + c)];
  }
  const auto t = max_score_assignment(tall.data(), cols, rows);
  expect_valid(t, cols, rows);
  for (int64_t r = 0; r < rows; ++r)
    EXPECT_EQ(t[static_cast<size_t>(target[static_cast<size_t>(r)])], r);
}

// Larger random matrices: the matching and the one found on the transpose have the same total,
// and no single swap of two rows' columns improves it (a necessary condition of optimality).
TEST(Assignment, LargerRandomMatricesAreConsistent) {
  std::mt19937_64 rng(5);
  const int64_t rows = 200, cols = 260;
  const auto s = random_scores(rows, cols, rng);
  const auto a = max_score_assignment(s.data(), rows, cols);
  expect_valid(a, rows, cols);
  std::vector<float> tr(s.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c)
      tr[static_cast<size_t>(c * rows + r)] = s[static_cast<size_t>(r * cols + c)];
  }
  const auto b = max_score_assignment(tr.data(), cols, rows);
  expect_valid(b, cols, rows);
  EXPECT_NEAR(total(s, cols, a), total(tr, rows, b), 1e-6);
  auto at = [&](int64_t r, int64_t c) {
    return static_cast<double>(s[static_cast<size_t>(r * cols + c)]);
  };
  std::vector<bool> used(static_cast<size_t>(cols), false);
  for (int64_t c : a) used[static_cast<size_t>(c)] = true;
  for (int64_t r1 = 0; r1 < rows; ++r1) {
    const int64_t c1 = a[static_cast<size_t>(r1)];
    for (int64_t r2 = r1 + 1; r2 < rows; ++r2) {
      const int64_t c2 = a[static_cast<size_t>(r2)];
      ASSERT_GE(at(r1, c1) + at(r2, c2), at(r1, c2) + at(r2, c1) - 1e-9);
    }
    for (int64_t c = 0; c < cols; ++c) {  // nor moving a row to a free column
      if (!used[static_cast<size_t>(c)]) {
        ASSERT_GE(at(r1, c1), at(r1, c) - 1e-9);
      }
    }
  }
}

TEST(Assignment, RejectsNonFiniteScoresAndBadSizes) {
  std::vector<float> s(16, 1.0f);
  s[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(max_score_assignment(s.data(), 4, 4), Error);
  s[5] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(max_score_assignment(s.data(), 4, 4), Error);
  s[5] = -std::numeric_limits<float>::infinity();
  EXPECT_THROW(max_score_assignment(s.data(), 2, 8), Error);
  // Rows are checked as they join the matching: a bad value in the last row, after the others are
  // matched, is still an error naming it; so is one in a matrix with more rows than columns.
  std::vector<float> wide(3 * 20);
  for (size_t k = 0; k < wide.size(); ++k) wide[k] = static_cast<float>((k * 7919) % 101);
  wide[2 * 20 + 13] = std::numeric_limits<float>::quiet_NaN();
  try {
    max_score_assignment(wide.data(), 3, 20);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(2, 13)"), std::string::npos) << e.what();
  }
  try {
    max_score_assignment(wide.data(), 20, 3);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("(17, 2)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(max_score_assignment(s.data(), -1, 4), Error);
  EXPECT_THROW(max_score_assignment(s.data(), INT64_MAX, 4), Error);
  // Empty: nothing to match.
  EXPECT_EQ(max_score_assignment(nullptr, 3, 0), (std::vector<int64_t>{-1, -1, -1}));
  EXPECT_TRUE(max_score_assignment(nullptr, 0, 5).empty());
}

}  // namespace
}  // namespace referee::trace
