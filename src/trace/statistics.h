// Statistics for originality verification: tail probabilities in log space, Fisher's combination,
// rank correlation and its exact null, multiple-comparison adjustments, summaries.
//
// p-values here are tiny (a copied model gives p ~ 1e-300 and below), so every tail probability is
// returned as a natural logarithm and computed so that it stays finite far past where the
// probability itself underflows a double. All functions are pure and thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace referee::trace {

// ln P(Z > z) for a standard normal Z. Accurate (relative error ~1e-15) for all finite z: 0 - ε for
// very negative z, about -804.6 at z = 40, and finite up to |z| ~ 1e150.
double log_normal_sf(double z);

// ln P(X > x) for X ~ chi-square with an even number of degrees of freedom `dof` (>= 2). Finite
// for every finite x >= 0 (x <= 0 gives 0). Throws referee::Error for odd or non-positive dof.
double log_chi2_sf_even_dof(double x, int64_t dof);

// Fisher's method: given the natural logs of k independent p-values, X = -2 Σ ln p_i is chi-square
// with 2k degrees of freedom under the joint null; returns ln P(χ²(2k) > X). An empty input gives 0
// (p = 1, no evidence). Values above 0 (rounding) count as 0; NaN throws referee::Error.
double fisher_combine_log(std::span<const double> log_p);

// Ranks 1..n, ties sharing the average of the ranks they span ({10, 20, 20} -> {1, 2.5, 2.5}).
std::vector<double> average_ranks(std::span<const double> x);

// Pearson's correlation. 0 when either input is constant or has fewer than 2 values (no evidence
// of association, rather than NaN). Throws referee::Error on unequal lengths or non-finite values.
double pearson(std::span<const double> x, std::span<const double> y);

// Spearman's rho: Pearson's correlation of the average ranks. Same conventions as pearson().
double spearman(std::span<const double> x, std::span<const double> y);

// One-sided ln P(rho' >= rho) where rho' is Spearman's rho between a fixed ranking without ties and
// a uniformly random permutation of n items — the exact null of Zhu et al.'s independence test
// ("Independence Tests for Language Models", ICML 2025). Exact for n <= 9 (all n! permutations),
// the normal approximation rho·sqrt(n-1) ~ N(0, 1) above. n < 2 gives 0.
double log_p_spearman_upper(double rho, int64_t n);

// Holm–Bonferroni step-down adjusted p-values, in the input's order: monotone in the sorted order
// and capped at 1. Reject hypothesis i at family-wise level α iff adjusted[i] <= α.
std::vector<double> holm_adjust(std::span<const double> p);
// The same on natural logs of p-values (for p-values that underflow); results are <= 0.
std::vector<double> holm_adjust_log(std::span<const double> log_p);

// Bonferroni: min(1, p·m) for one of m comparisons, and its log-space form min(0, ln p + ln m).
double bonferroni(double p, int64_t m);
double bonferroni_log(double log_p, int64_t m);

struct Summary {
  double mean = 0;
  double sd = 0;  // sample standard deviation (n - 1 denominator); 0 when n < 2
  double min = 0;
  double max = 0;
  int64_t n = 0;
};
// Mean, sample sd, min and max; all NaN (n = 0) for an empty input.
Summary summarize(std::span<const double> x);

}  // namespace referee::trace
