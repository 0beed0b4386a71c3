#include "trace/cka.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "util/checked_math.h"
#include "util/error.h"

namespace referee::trace {
namespace {

// Σ a[k]·b[k] over float arrays, accumulated in double (OpenBLAS's dsdot), in chunks that fit
// BLAS's 32-bit lengths.
double dot_in_double(const float* a, const float* b, size_t count) {
  constexpr size_t kChunk = size_t{1} << 30;
  double sum = 0;
  for (size_t start = 0; start < count; start += kChunk) {
    const size_t len = std::min(kChunk, count - start);
    sum += cblas_dsdot(static_cast<blasint>(len), a + start, 1, b + start, 1);
  }
  return sum;
}

void check_gram_size(int64_t n, int64_t p) {
  if (n < 4) throw invalid_argument("CKA", "needs at least 4 samples, got {}", n);
  if (p < 1) throw invalid_argument("CKA", "needs at least one feature, got {}", p);
  if (n > INT_MAX || p > INT_MAX || !checked_mul(static_cast<uint64_t>(n), static_cast<uint64_t>(p)) ||
      !checked_mul(static_cast<uint64_t>(n), static_cast<uint64_t>(n))) {
    throw invalid_argument("CKA", "the representation is too large ({} samples x {} features)", n,
                           p);
  }
}

void check_finite(float v, int64_t sample, int64_t feature) {
  if (!std::isfinite(v)) {
    throw invalid_argument("CKA", "value ({}, {}) of the representation is not finite ({})", sample,
                           feature, v);
  }
}

// The Gram's strictly upper triangle, row sums, total and self-HSIC, from the full n x n matrix
// whose upper triangle syrk filled.
CenteredGram finish_gram(const std::vector<float>& full, int64_t n) {
  const auto un = static_cast<size_t>(n);
  CenteredGram g;
  g.n = n;
  g.upper.resize(un * (un - 1) / 2);
  g.row_sums.assign(un, 0.0);
  size_t k = 0;
  for (size_t i = 0; i < un; ++i) {
    double row_sum = 0;  // K̃[i][j] for j > i; the j < i part was added by the earlier rows
    for (size_t j = i + 1; j < un; ++j, ++k) {
      const float v = full[i * un + j];
      g.upper[k] = v;
      row_sum += v;
      g.row_sums[j] += v;
    }
    g.row_sums[i] += row_sum;
  }
  for (double r : g.row_sums) g.total += r;
  g.self_hsic = hsic_unbiased(g, g);
  return g;
}

}  // namespace

CenteredGram make_gram(const float* x, int64_t n, int64_t p) {
  check_gram_size(n, p);
  // Centre each feature (in double). The unbiased HSIC is unchanged by adding a constant vector to
  // every sample, but a float Gram of uncentred data would carry a large common part whose
  // rounding swamps the differences the estimator is made of.
  std::vector<double> mean(static_cast<size_t>(p), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = x + i * p;
    for (int64_t f = 0; f < p; ++f) {
      check_finite(row[f], i, f);
      mean[static_cast<size_t>(f)] += row[f];
    }
  }
  for (double& m : mean) m /= static_cast<double>(n);
  std::vector<float> centred(static_cast<size_t>(n * p));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t f = 0; f < p; ++f) {
      centred[static_cast<size_t>(i * p + f)] =
          static_cast<float>(x[i * p + f] - mean[static_cast<size_t>(f)]);
    }
  }
  // K = X Xᵀ: only the upper triangle is computed (syrk) and kept.
  std::vector<float> full(static_cast<size_t>(n * n));
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<blasint>(n),
              static_cast<blasint>(p), 1.0f, centred.data(), static_cast<blasint>(p), 0.0f,
              full.data(), static_cast<blasint>(n));
  return finish_gram(full, n);
}

CenteredGram make_gram_of_features(const float* features, int64_t n, int64_t p) {
  check_gram_size(n, p);
  // Each feature is a row here, so centring it is a pass along the row.
  std::vector<float> centred(static_cast<size_t>(n * p));
  for (int64_t f = 0; f < p; ++f) {
    const float* row = features + f * n;
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) {
      check_finite(row[i], i, f);
      mean += row[i];
    }
    mean /= static_cast<double>(n);
    float* out = centred.data() + f * n;
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(row[i] - mean);
  }
  // K = Fᵀ F for the p x n matrix F.
  std::vector<float> full(static_cast<size_t>(n * n));
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<blasint>(n),
              static_cast<blasint>(p), 1.0f, centred.data(), static_cast<blasint>(n), 0.0f,
              full.data(), static_cast<blasint>(n));
  return finish_gram(full, n);
}

double hsic_unbiased(const CenteredGram& k, const CenteredGram& l) {
  if (k.n != l.n) {
    throw invalid_argument(
        "CKA", "the representations have different numbers of samples ({} and {})", k.n, l.n);
  }
  // Song et al. (2012), eq. 5, with K̃ and L̃ symmetric and zero on the diagonal:
  //   HSIC_1 = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n-1)(n-2)) - 2/(n-2)·1ᵀK̃L̃1] / (n(n-3))
  // tr(K̃L̃) = Σ_ij K̃_ij L̃_ij = 2 Σ_{i<j} K̃_ij L̃_ij, and 1ᵀK̃L̃1 = (K̃1)·(L̃1).
  const double n = static_cast<double>(k.n);
  const double trace = 2 * dot_in_double(k.upper.data(), l.upper.data(), k.upper.size());
  double rows = 0;
  for (size_t i = 0; i < k.row_sums.size(); ++i) rows += k.row_sums[i] * l.row_sums[i];
  return (trace + k.total * l.total / ((n - 1) * (n - 2)) - 2 / (n - 2) * rows) / (n * (n - 3));
}

double cka(const CenteredGram& a, const CenteredGram& b) {
  const double ab = hsic_unbiased(a, b);
  if (!(a.self_hsic > 0) || !(b.self_hsic > 0)) return 0;
  return ab / std::sqrt(a.self_hsic * b.self_hsic);
}

}  // namespace referee::trace
