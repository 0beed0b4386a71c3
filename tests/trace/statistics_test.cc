// trace/statistics: log-space tail probabilities, Fisher's method, rank correlation and the exact
// null of Zhu et al.'s neuron-order test, multiple-comparison adjustments. Reference values are
// from mpmath at 50 digits unless a closed form is given.
#include "trace/statistics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "util/error.h"

namespace referee::trace {
namespace {

// Spearman's rho of the permutation `perm` against the identity, for a ranking without ties.
double rho_of_permutation(const std::vector<int>& perm) {
  const double n = static_cast<double>(perm.size());
  double d = 0;
  for (size_t i = 0; i < perm.size(); ++i)
    d += (static_cast<double>(i) - perm[i]) * (static_cast<double>(i) - perm[i]);
  return 1 - 6 * d / (n * (n * n - 1));
}

TEST(StatisticsNormal, MatchesHighPrecisionValuesFromTheBodyToTheFarTail) {
  const std::pair<double, double> cases[] = {
      {-10, -7.619853024160526066e-24}, {-3, -0.0013508099647481937988},
      {0, -0.69314718055994530942},     {1.5, -2.705944400823889807},
      {4.9, -14.551182689355312642},    {5, -15.064998393988725736},
      {5.1, -15.588487091871465665},    {8, -35.013437159914549896},
      {20, -203.91715537109726394},     {37, -689.0305855768905936},
      {40, -804.60844201375378817},     {100, -5005.5242086942050886},
      {1e4, -50000010.129278915181},
  };
  for (const auto& [z, expected] : cases) {
    EXPECT_NEAR(log_normal_sf(z), expected, 1e-13 * std::abs(expected)) << "z = " << z;
  }
}

TEST(StatisticsNormal, IsMonotoneAndSmoothAcrossTheMethodBoundaries) {
  double previous = 0;
  for (double z = -40; z <= 60; z += 0.001) {
    const double v = log_normal_sf(z);
    ASSERT_TRUE(std::isfinite(v)) << z;
    ASSERT_LE(v, previous) << z;
    previous = v;
  }
  // Either side of the switch from erfc to the continued fraction (z = 5).
  EXPECT_NEAR(log_normal_sf(std::nextafter(5.0, 0.0)), log_normal_sf(5.0), 1e-13);
  EXPECT_EQ(log_normal_sf(-INFINITY), 0.0);
  EXPECT_EQ(log_normal_sf(INFINITY), -INFINITY);
  EXPECT_TRUE(std::isnan(log_normal_sf(NAN)));
}

TEST(StatisticsChiSquare, MatchesClosedFormsAndStaysFiniteForHugeX) {
  // dof = 2: Q = e^{-x/2}.
  for (double x : {0.1, 1.0, 10.0, 1e3, 1e6, 1e300})
    EXPECT_DOUBLE_EQ(log_chi2_sf_even_dof(x, 2), -x / 2);
  // dof = 4: Q = e^{-x/2} (1 + x/2).
  EXPECT_NEAR(log_chi2_sf_even_dof(10, 4), std::log(std::exp(-5.0) * 6), 1e-14);
  // dof = 10, x = 1e6: far below the smallest double, but its log is finite.
  EXPECT_NEAR(log_chi2_sf_even_dof(1e6, 10), -499950.68859232071463, 1e-9);
  // dof = 100, x = 60 (Q near 1) and x = 600 (Q ~ 1e-72).
  EXPECT_NEAR(log_chi2_sf_even_dof(60, 100), -0.00051902613331134146371, 1e-13);
  EXPECT_NEAR(log_chi2_sf_even_dof(600, 100), -164.90284332906424108, 1e-11);
  EXPECT_EQ(log_chi2_sf_even_dof(0, 6), 0.0);
  EXPECT_EQ(log_chi2_sf_even_dof(-1, 6), 0.0);
  EXPECT_THROW(log_chi2_sf_even_dof(1, 3), Error);
  EXPECT_THROW(log_chi2_sf_even_dof(1, 0), Error);
}

TEST(StatisticsFisher, CombinesPValues) {
  // One p-value combines to itself.
  for (double p : {0.9, 0.05, 1e-10, 1e-300}) {
    const double lp = std::log(p);
    EXPECT_NEAR(fisher_combine_log(std::vector<double>{lp}), lp, 1e-12 * std::abs(lp));
  }
  // Two p = 0.05: X = -4 ln 0.05, Q = e^{-X/2} (1 + X/2).
  const double x = -4 * std::log(0.05);
  const double l05 = std::log(0.05);
  EXPECT_NEAR(fisher_combine_log(std::vector<double>{l05, l05}),
              std::log(std::exp(-x / 2) * (1 + x / 2)), 1e-12);
  // p-values beyond a double's range still combine to a finite, smaller log p.
  const std::vector<double> tiny(100, -1000.0);
  const double combined = fisher_combine_log(tiny);
  EXPECT_TRUE(std::isfinite(combined));
  EXPECT_LT(combined, -1000.0);
  // All p = 1: no evidence.
  EXPECT_NEAR(fisher_combine_log(std::vector<double>(5, 0.0)), 0.0, 1e-15);
  EXPECT_EQ(fisher_combine_log({}), 0.0);
  EXPECT_THROW(fisher_combine_log(std::vector<double>{NAN}), Error);
}

TEST(StatisticsCorrelation, AverageRanksShareTies) {
  const std::vector<double> x = {10, 20, 20, 5, 20};
  EXPECT_EQ(average_ranks(x), (std::vector<double>{2, 4, 4, 1, 4}));
  EXPECT_TRUE(average_ranks({}).empty());
}

TEST(StatisticsCorrelation, PearsonAndSpearman) {
  const std::vector<double> x = {1, 2, 3, 4, 5, 6};
  const std::vector<double> cubed = {1, 8, 27, 64, 125, 216};
  const std::vector<double> reversed = {6, 5, 4, 3, 2, 1};
  EXPECT_NEAR(spearman(x, cubed), 1.0, 1e-15);  // monotone: ranks agree exactly
  EXPECT_LT(pearson(x, cubed), 0.99);
  EXPECT_NEAR(pearson(x, reversed), -1.0, 1e-15);
  EXPECT_NEAR(spearman(x, reversed), -1.0, 1e-15);
  // Known value: x = 1..5, y = {2, 1, 4, 3, 5}: sum d² = 4, rho = 1 - 24/120 = 0.8.
  EXPECT_NEAR(spearman(std::vector<double>{1, 2, 3, 4, 5}, std::vector<double>{2, 1, 4, 3, 5}), 0.8,
              1e-15);
  // Far from zero: the two-pass formula keeps its digits.
  std::vector<double> shifted_x, shifted_y;
  for (double v : x) shifted_x.push_back(1e9 + v), shifted_y.push_back(1e9 - 2 * v);
  EXPECT_NEAR(pearson(shifted_x, shifted_y), -1.0, 1e-12);
  // No variance, or too few values: no evidence.
  EXPECT_EQ(pearson(x, std::vector<double>(6, 3.0)), 0.0);
  EXPECT_EQ(spearman(std::vector<double>{1}, std::vector<double>{2}), 0.0);
  EXPECT_THROW(pearson(x, std::vector<double>{1, 2}), Error);
  EXPECT_THROW(spearman(x, std::vector<double>{1, 2, 3, 4, 5, NAN}), Error);
}

// For n <= 9 the p-value is exact: compare with a count over all n! permutations, at every value
// rho takes.
TEST(StatisticsSpearmanNull, IsExactForSmallN) {
  for (int n = 7; n <= 9; ++n) {
    std::vector<int> perm(static_cast<size_t>(n));
    std::iota(perm.begin(), perm.end(), 0);
    std::vector<double> rhos;
    do rhos.push_back(rho_of_permutation(perm));
    while (std::next_permutation(perm.begin(), perm.end()));
    std::sort(rhos.begin(), rhos.end());
    const double total = static_cast<double>(rhos.size());
    for (size_t i = 0; i < rhos.size();) {
      size_t j = i;
      while (j < rhos.size() && rhos[j] - rhos[i] < 1e-12) ++j;
      const double exact = static_cast<double>(rhos.size() - i) / total;  // P(rho' >= rhos[i])
      ASSERT_NEAR(std::exp(log_p_spearman_upper(rhos[i], n)), exact, 1e-12 * exact)
          << "n " << n << " rho " << rhos[i];
      i = j;
    }
    EXPECT_NEAR(log_p_spearman_upper(1.0, n), -std::lgamma(n + 1.0), 1e-12);
    EXPECT_EQ(log_p_spearman_upper(-1.0, n), 0.0);
  }
  // The table agrees with spearman() itself on a random permutation.
  std::mt19937_64 rng(7);
  std::vector<double> x(9), y(9);
  std::iota(x.begin(), x.end(), 0.0);
  std::iota(y.begin(), y.end(), 0.0);
  std::shuffle(y.begin(), y.end(), rng);
  std::vector<int> perm(y.begin(), y.end());
  EXPECT_NEAR(spearman(x, y), rho_of_permutation(perm), 1e-14);
}

// For n > 9, the normal approximation against a Monte Carlo of the exact null, at moderate rho.
TEST(StatisticsSpearmanNull, NormalApproximationMatchesMonteCarloAtN50) {
  constexpr int n = 50, draws = 200000;
  std::mt19937_64 rng(2025);
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  std::vector<double> rhos(draws);
  for (double& r : rhos) {
    std::shuffle(perm.begin(), perm.end(), rng);
    r = rho_of_permutation(perm);
  }
  for (double rho : {0.0, 0.1, 0.2, 0.3, 0.4, 0.5}) {
    const double mc = static_cast<double>(std::count_if(
                          rhos.begin(), rhos.end(), [&](double r) { return r >= rho - 1e-12; })) /
                      draws;
    const double se = std::sqrt(mc * (1 - mc) / draws);
    const double approx = std::exp(log_p_spearman_upper(rho, n));
    if (rho <= 0.3) {
      // Up to z = rho·sqrt(n - 1) ~ 2: four standard errors of the Monte Carlo plus 5% for the
      // approximation itself (measured: within 2-4%).
      EXPECT_NEAR(approx, mc, 4 * se + 0.05 * mc) << "rho " << rho;
    } else {
      // Further out the exact null has the lighter tail: the approximation overstates p
      // (conservative), by less than a factor of 2 here.
      EXPECT_GT(approx, mc) << "rho " << rho;
      EXPECT_LT(approx, 2 * mc) << "rho " << rho;
    }
  }
}

TEST(StatisticsSpearmanNull, NormalApproximationIsConservativeAtPerfectOrder) {
  // The exact p of rho = 1 is 1/n!; the approximation must never claim more than that.
  for (int n = 10; n <= 1000; n += 10)
    EXPECT_GT(log_p_spearman_upper(1.0, n), -std::lgamma(n + 1.0)) << n;
  EXPECT_EQ(log_p_spearman_upper(0.5, 1), 0.0);
  EXPECT_NEAR(log_p_spearman_upper(1.0, 2), std::log(0.5), 1e-15);
  EXPECT_THROW(log_p_spearman_upper(NAN, 20), Error);
}

TEST(StatisticsAdjust, HolmIsMonotoneAndCapped) {
  // Sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 = 0.04 -> 0.06 (monotone).
  const std::vector<double> p = {0.01, 0.04, 0.03, 0.005};
  const auto adjusted = holm_adjust(p);
  const std::vector<double> expected = {0.03, 0.06, 0.06, 0.02};
  ASSERT_EQ(adjusted.size(), expected.size());
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(adjusted[i], expected[i], 1e-15);
  EXPECT_EQ(holm_adjust(std::vector<double>{0.5, 0.6}), (std::vector<double>{1.0, 1.0}));
  EXPECT_TRUE(holm_adjust({}).empty());
  EXPECT_THROW(holm_adjust(std::vector<double>{NAN}), Error);

  // The log-space form agrees, and works where p underflows.
  std::vector<double> log_p;
  for (double v : p) log_p.push_back(std::log(v));
  const auto log_adjusted = holm_adjust_log(log_p);
  for (size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(log_adjusted[i], std::log(expected[i]), 1e-13);
  const auto deep = holm_adjust_log(std::vector<double>{-2000, -3000, -1});
  EXPECT_NEAR(deep[1], -3000 + std::log(3.0), 1e-9);
  EXPECT_NEAR(deep[0], -2000 + std::log(2.0), 1e-9);
  EXPECT_NEAR(deep[2], -1.0, 1e-15);  // the largest p is multiplied by 1
}

TEST(StatisticsAdjust, Bonferroni) {
  EXPECT_DOUBLE_EQ(bonferroni(0.01, 3), 0.03);
  EXPECT_EQ(bonferroni(0.5, 3), 1.0);
  EXPECT_NEAR(bonferroni_log(-1000, 10), -1000 + std::log(10.0), 1e-12);
  EXPECT_EQ(bonferroni_log(-0.1, 10), 0.0);
  EXPECT_THROW(bonferroni(0.1, 0), Error);
}

TEST(StatisticsSummary, MeanSdMinMax) {
  const auto s = summarize(std::vector<double>{2, 4, 4, 4, 5, 5, 7, 9});
  EXPECT_EQ(s.n, 8);
  EXPECT_DOUBLE_EQ(s.mean, 5.0);
  EXPECT_NEAR(s.sd, std::sqrt(32.0 / 7), 1e-14);
  EXPECT_EQ(s.min, 2.0);
  EXPECT_EQ(s.max, 9.0);
  // A large common offset does not cost the sd its digits.
  const auto shifted = summarize(std::vector<double>{1e9 + 1, 1e9 + 2, 1e9 + 3});
  EXPECT_NEAR(shifted.sd, 1.0, 1e-9);
  const auto one = summarize(std::vector<double>{3});
  EXPECT_EQ(one.sd, 0.0);
  const auto none = summarize({});
  EXPECT_EQ(none.n, 0);
  EXPECT_TRUE(std::isnan(none.mean));
}

}  // namespace
}  // namespace referee::trace
