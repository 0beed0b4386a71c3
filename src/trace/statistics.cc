#include "trace/statistics.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>

#include "util/error.h"

namespace referee::trace {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kLogSqrt2Pi = 0.91893853320467274178;  // ln sqrt(2π)

void require_finite(std::span<const double> x, const char* where) {
  for (double v : x) {
    if (!std::isfinite(v)) throw invalid_argument(where, "a value is not finite ({})", v);
  }
}

// The Mills ratio R(z) = Q(z) / φ(z) for z > 0 by its continued fraction
//   R(z) = 1 / (z + 1/(z + 2/(z + 3/(z + ...))))
// (Abramowitz and Stegun 26.2.14), evaluated with Lentz's method. It converges in a few dozen
// terms for z >= 5, where it is used, and needs no exp() — so ln Q(z) = -z²/2 - ln sqrt(2π) -
// ln(1/R) stays finite long after Q(z) itself underflows (z > 38).
double inverse_mills_ratio(double z) {
  constexpr double kTiny = 1e-300;
  double f = z, c = z, d = 0;
  for (int k = 1; k < 1000; ++k) {
    d = z + k * d;
    if (d == 0) d = kTiny;
    d = 1 / d;
    c = z + k / c;
    if (c == 0) c = kTiny;
    const double delta = c * d;
    f *= delta;
    if (std::abs(delta - 1) < 3e-16) break;
  }
  return f;
}

// Cumulative counts of D = Σ (i - π(i))² over all n! permutations π of n items, n = 2..9:
// table[n][d] = #{π : D(π) <= d}. Spearman's rho of a permutation against the identity is
// 1 - 6D / (n(n² - 1)), so these give rho's exact null distribution. Built once (~4 million steps).
const std::array<std::vector<uint64_t>, 10>& spearman_d_tables() {
  static const auto tables = [] {
    std::array<std::vector<uint64_t>, 10> t;
    for (int n = 2; n <= 9; ++n) {
      const int max_d = n * (n * n - 1) / 3;  // the reversed order
      std::vector<uint64_t> count(static_cast<size_t>(max_d) + 1, 0);
      std::array<int, 9> perm{};
      std::iota(perm.begin(), perm.begin() + n, 0);
      do {
        size_t d = 0;
        for (int i = 0; i < n; ++i) {
          const int diff = i - perm[static_cast<size_t>(i)];
          d += static_cast<size_t>(diff * diff);
        }
        ++count[d];
      } while (std::next_permutation(perm.begin(), perm.begin() + n));
      std::partial_sum(count.begin(), count.end(), count.begin());
      t[static_cast<size_t>(n)] = std::move(count);
    }
    return t;
  }();
  return tables;
}

}  // namespace

double log_normal_sf(double z) {
  constexpr double kSqrt1_2 = 0.70710678118654752440;
  if (std::isnan(z)) return kNaN;
  // Below the mean, Q(z) = 1 - Q(-z) with Q(-z) small: log1p keeps its digits (ln(1 - 1e-20) is
  // -1e-20, not 0).
  if (z < -1) return std::log1p(-0.5 * std::erfc(-z * kSqrt1_2));
  // erfc is accurate to a few ulp in relative terms until it underflows near z = 38.
  if (z < 5) return std::log(0.5 * std::erfc(z * kSqrt1_2));
  if (z == kInf) return -kInf;
  return -0.5 * z * z - kLogSqrt2Pi - std::log(inverse_mills_ratio(z));
}

double log_chi2_sf_even_dof(double x, int64_t dof) {
  if (dof < 2 || dof % 2 != 0) {
    throw invalid_argument("chi-square", "degrees of freedom must be even and positive, got {}",
                           dof);
  }
  if (std::isnan(x)) return kNaN;
  if (x <= 0) return 0;
  if (x == kInf) return -kInf;
  // With h = x/2 and m = dof/2, Q = P(Poisson(h) < m) = e^{-h} Σ_{k<m} h^k / k!. The sum is taken
  // as a log-sum-exp of the terms' logs, ln t_k = ln t_{k-1} + ln h - ln k, so neither e^{-h} nor
  // h^k is ever formed: x = 1e6 gives ln Q ~ -5e5 rather than ln 0.
  const double h = x / 2, log_h = std::log(h);
  const int64_t m = dof / 2;
  double log_term = 0, log_max = 0, scaled_sum = 1;  // k = 0: t_0 = 1
  for (int64_t k = 1; k < m; ++k) {
    log_term += log_h - std::log(static_cast<double>(k));
    if (log_term > log_max) {
      scaled_sum = scaled_sum * std::exp(log_max - log_term) + 1;
      log_max = log_term;
    } else {
      scaled_sum += std::exp(log_term - log_max);
    }
  }
  return std::min(0.0, -h + log_max + std::log(scaled_sum));
}

double fisher_combine_log(std::span<const double> log_p) {
  if (log_p.empty()) return 0;
  double x = 0;
  for (double lp : log_p) {
    if (std::isnan(lp)) throw Error::invalid_argument("Fisher's method", "a log p-value is NaN");
    x -= 2 * std::min(lp, 0.0);
  }
  return log_chi2_sf_even_dof(x, 2 * static_cast<int64_t>(log_p.size()));
}

std::vector<double> average_ranks(std::span<const double> x) {
  require_finite(x, "ranks");
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> rank(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i + 1;
    while (j < order.size() && x[order[j]] == x[order[i]]) ++j;
    // Positions i..j-1 hold ranks i+1..j; each gets their mean.
    const double mean_rank = 0.5 * static_cast<double>(i + 1 + j);
    for (size_t k = i; k < j; ++k) rank[order[k]] = mean_rank;
    i = j;
  }
  return rank;
}

double pearson(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size()) {
    throw invalid_argument("correlation", "the two samples differ in length ({} and {})", x.size(),
                           y.size());
  }
  require_finite(x, "correlation");
  require_finite(y, "correlation");
  if (x.size() < 2) return 0;
  // Two passes (means first): the one-pass Σxy - n·x̄·ȳ loses every digit for data far from 0.
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n;
  const double my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxx = 0, syy = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double dx = x[i] - mx, dy = y[i] - my;
    sxx += dx * dx, syy += dy * dy, sxy += dx * dy;
  }
  if (sxx <= 0 || syy <= 0) return 0;
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

double spearman(std::span<const double> x, std::span<const double> y) {
  if (x.size() != y.size()) {
    throw invalid_argument("correlation", "the two samples differ in length ({} and {})", x.size(),
                           y.size());
  }
  const auto rx = average_ranks(x), ry = average_ranks(y);
  return pearson(rx, ry);
}

double log_p_spearman_upper(double rho, int64_t n) {
  if (std::isnan(rho)) throw Error::invalid_argument("Spearman test", "rho is NaN");
  if (n < 2 || rho <= -1) return 0;
  rho = std::min(rho, 1.0);
  if (n <= 9) {
    // Exact: P(rho' >= rho) = P(D <= D*) with D* = (1 - rho) n(n² - 1) / 6. D is an even integer;
    // the small allowance absorbs the rounding of a rho computed in floating point.
    const auto& cum = spearman_d_tables()[static_cast<size_t>(n)];
    const double d_star = (1 - rho) * static_cast<double>(n * (n * n - 1)) / 6;
    const auto d = static_cast<size_t>(
        std::min(std::floor(d_star + 1e-6), static_cast<double>(cum.size() - 1)));
    return std::log(static_cast<double>(cum[d])) - std::log(static_cast<double>(cum.back()));
  }
  // Normal approximation: under the null E[rho] = 0 and Var[rho] = 1/(n - 1) exactly, and
  // rho·sqrt(n - 1) tends to N(0, 1). Measured against a Monte Carlo at n = 50 (the test): up to
  // z ~ 2 the normal p is within ~2% (slightly small); beyond, the exact null has the lighter tail
  // and the normal p is the larger one (x1.2 at z = 2.8, x1.5 at z = 3.5). At rho -> 1 it is very
  // conservative: the exact p is 1/n! (ln ~ -n ln n) while the normal gives ~e^{-(n-1)/2}, so the
  // evidence of a copied neuron order is understated, never overstated.
  return log_normal_sf(rho * std::sqrt(static_cast<double>(n - 1)));
}

std::vector<double> holm_adjust(std::span<const double> p) {
  for (double v : p) {
    if (!(v >= 0)) throw invalid_argument("Holm adjustment", "p-value {} is not in [0, 1]", v);
  }
  // Sorted ascending, the i-th smallest (0-based) is multiplied by m - i; a running maximum makes
  // the adjusted values monotone (Holm 1979).
  std::vector<size_t> order(p.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] < p[b]; });
  std::vector<double> adjusted(p.size());
  const size_t m = p.size();
  double running = 0;
  for (size_t i = 0; i < m; ++i) {
    running = std::max(running, std::min(1.0, static_cast<double>(m - i) * p[order[i]]));
    adjusted[order[i]] = running;
  }
  return adjusted;
}

std::vector<double> holm_adjust_log(std::span<const double> log_p) {
  for (double v : log_p) {
    if (std::isnan(v)) throw Error::invalid_argument("Holm adjustment", "a log p-value is NaN");
  }
  std::vector<size_t> order(log_p.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return log_p[a] < log_p[b]; });
  std::vector<double> adjusted(log_p.size());
  const size_t m = log_p.size();
  double running = -kInf;
  for (size_t i = 0; i < m; ++i) {
    const double value = std::min(0.0, log_p[order[i]] + std::log(static_cast<double>(m - i)));
    running = std::max(running, value);
    adjusted[order[i]] = running;
  }
  return adjusted;
}

double bonferroni(double p, int64_t m) {
  if (m < 1)
    throw invalid_argument("Bonferroni adjustment", "needs at least one comparison, got {}", m);
  return std::min(1.0, p * static_cast<double>(m));
}

double bonferroni_log(double log_p, int64_t m) {
  if (m < 1)
    throw invalid_argument("Bonferroni adjustment", "needs at least one comparison, got {}", m);
  return std::min(0.0, log_p + std::log(static_cast<double>(m)));
}

Summary summarize(std::span<const double> x) {
  Summary s;
  if (x.empty()) {
    s.mean = s.sd = s.min = s.max = kNaN;
    return s;
  }
  // Welford's update: stable for data with a large mean.
  double mean = 0, m2 = 0;
  s.min = s.max = x[0];
  for (double v : x) {
    ++s.n;
    const double delta = v - mean;
    mean += delta / static_cast<double>(s.n);
    m2 += delta * (v - mean);
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
  }
  s.mean = mean;
  s.sd = s.n > 1 ? std::sqrt(m2 / static_cast<double>(s.n - 1)) : 0.0;
  return s;
}

}  // namespace referee::trace
