#include "trace/cka.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <memory>

#include "util/checked_math.h"
#include "util/cpu_clones.h"
#include "util/error.h"
#include "util/finite.h"
#include "util/thread_pool.h"

namespace referee::trace {
namespace {

// Σ a[k]·b[k] over float arrays, each product and the sums in double: eight independent partial
// sums, which the compiler vectorises (OpenBLAS's dsdot, which this replaced, ran at a third of
// the speed).
REFEREE_AVX2_CLONE double dot_in_double(const float* a, const float* b, size_t count) {
  double partial[8] = {};
  size_t k = 0;
  for (; k + 8 <= count; k += 8) {
    for (size_t l = 0; l < 8; ++l) partial[l] += static_cast<double>(a[k + l]) * static_cast<double>(b[k + l]);
  }
  double sum = 0;
  for (; k < count; ++k) sum += static_cast<double>(a[k]) * static_cast<double>(b[k]);
  for (double p : partial) sum += p;
  return sum;
}

// to[k] = from[k] as a double, for k < count.
REFEREE_AVX2_CLONE void widen(const float* from, size_t count, double* to) {
  for (size_t k = 0; k < count; ++k) to[k] = from[k];
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

double hsic_from_trace(const CenteredGram& k, const CenteredGram& l, double trace);

// The Gram's strictly upper triangle, row sums, total and self-HSIC, from the full n x n matrix
// whose upper triangle syrk filled. One pass: the copy also sums each row and its squares.
REFEREE_AVX2_CLONE CenteredGram finish_gram(const float* full, int64_t n) {
  const auto un = static_cast<size_t>(n);
  CenteredGram g;
  g.n = n;
  g.upper.resize(un * (un - 1) / 2);
  g.row_sums.assign(un, 0.0);
  double squares[4] = {};  // Σ K̃[i][j]² over i < j, for tr(K̃K̃)
  size_t k = 0;
  for (size_t i = 0; i < un; ++i) {
    // K̃[i][j] for j > i (in four partial sums: one running sum is a chain of dependent additions
    // that cost more than the copy); the j < i part was added by the earlier rows.
    const float* row = full + i * un;
    float* upper = g.upper.data() + k;
    double* column_sums = g.row_sums.data();
    double partial[4] = {};
    const size_t first = i + 1, count = un - first;
    size_t j = 0;
    for (; j + 4 <= count; j += 4) {
      for (size_t l = 0; l < 4; ++l) {
        const float v = row[first + j + l];
        upper[j + l] = v;
        partial[l] += v;
        squares[l] += static_cast<double>(v) * v;
        column_sums[first + j + l] += v;
      }
    }
    for (; j < count; ++j) {
      const float v = row[first + j];
      upper[j] = v;
      partial[0] += v;
      squares[0] += static_cast<double>(v) * v;
      column_sums[first + j] += v;
    }
    k += count;
    g.row_sums[i] += (partial[0] + partial[1]) + (partial[2] + partial[3]);
  }
  for (double r : g.row_sums) g.total += r;
  g.self_hsic = hsic_from_trace(g, g, 2 * ((squares[0] + squares[1]) + (squares[2] + squares[3])));
  return g;
}

// x (n samples x p features, row-major) with each feature's mean (taken in double) subtracted.
REFEREE_AVX2_CLONE void centre_columns(const float* x, size_t n, size_t p, float* centred) {
  std::vector<double> mean(p, 0.0);
  for (size_t i = 0; i < n; ++i) {
    const float* row = x + i * p;
    for (size_t f = 0; f < p; ++f) mean[f] += row[f];
  }
  for (double& m : mean) m /= static_cast<double>(n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t f = 0; f < p; ++f) centred[i * p + f] = static_cast<float>(x[i * p + f] - mean[f]);
  }
}

// Each of the p rows of `features` (p x n) with its mean subtracted, in place.
REFEREE_AVX2_CLONE void centre_rows_in_place(float* features, size_t p, size_t n) {
  for (size_t f = 0; f < p; ++f) {
    float* row = features + f * n;
    double partial[4] = {};
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
      for (size_t l = 0; l < 4; ++l) partial[l] += row[i + l];
    }
    double mean = (partial[0] + partial[1]) + (partial[2] + partial[3]);
    for (; i < n; ++i) mean += row[i];
    mean /= static_cast<double>(n);
    for (i = 0; i < n; ++i) row[i] = static_cast<float>(row[i] - mean);
  }
}

}  // namespace

CenteredGram make_gram(const float* x, int64_t n, int64_t p) {
  check_gram_size(n, p);
  const auto un = static_cast<size_t>(n), up = static_cast<size_t>(p);
  if (!all_finite(x, un * up)) {
    for (size_t k = 0; k < un * up; ++k) check_finite(x[k], static_cast<int64_t>(k / up), static_cast<int64_t>(k % up));
  }
  // Centre each feature (in double). The unbiased HSIC is unchanged by adding a constant vector to
  // every sample, but a float Gram of uncentred data would carry a large common part whose
  // rounding swamps the differences the estimator is made of.
  auto centred = std::make_unique_for_overwrite<float[]>(un * up);
  centre_columns(x, un, up, centred.get());
  // K = X Xᵀ: only the upper triangle is computed (syrk) and read.
  auto full = std::make_unique_for_overwrite<float[]>(un * un);
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, static_cast<blasint>(n),
              static_cast<blasint>(p), 1.0f, centred.get(), static_cast<blasint>(p), 0.0f,
              full.get(), static_cast<blasint>(n));
  return finish_gram(full.get(), n);
}

CenteredGram make_gram_of_features(const float* features, int64_t n, int64_t p) {
  check_gram_size(n, p);
  std::vector<float> copy(features, features + static_cast<size_t>(n * p));
  return make_gram_of_features_in_place(copy.data(), n, p);
}

CenteredGram make_gram_of_features_in_place(float* features, int64_t n, int64_t p) {
  check_gram_size(n, p);
  const auto un = static_cast<size_t>(n), up = static_cast<size_t>(p);
  if (!all_finite(features, un * up)) {
    for (size_t k = 0; k < un * up; ++k) check_finite(features[k], static_cast<int64_t>(k % un), static_cast<int64_t>(k / un));
  }
  // Each feature is a row here, so centring it is a pass along the row.
  centre_rows_in_place(features, up, un);
  // K = Fᵀ F for the p x n matrix F.
  auto full = std::make_unique_for_overwrite<float[]>(un * un);
  cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, static_cast<blasint>(n),
              static_cast<blasint>(p), 1.0f, features, static_cast<blasint>(n), 0.0f,
              full.get(), static_cast<blasint>(n));
  return finish_gram(full.get(), n);
}

namespace {

// Song et al. (2012), eq. 5, with K̃ and L̃ symmetric and zero on the diagonal:
//   HSIC_1 = [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n-1)(n-2)) - 2/(n-2)·1ᵀK̃L̃1] / (n(n-3))
// given tr(K̃L̃) = Σ_ij K̃_ij L̃_ij = 2 Σ_{i<j} K̃_ij L̃_ij; 1ᵀK̃L̃1 = (K̃1)·(L̃1).
double hsic_from_trace(const CenteredGram& k, const CenteredGram& l, double trace) {
  const double n = static_cast<double>(k.n);
  double rows = 0;
  for (size_t i = 0; i < k.row_sums.size(); ++i) rows += k.row_sums[i] * l.row_sums[i];
  return (trace + k.total * l.total / ((n - 1) * (n - 2)) - 2 / (n - 2) * rows) / (n * (n - 3));
}

void check_same_samples(const CenteredGram& k, const CenteredGram& l) {
  if (k.n != l.n) {
    throw invalid_argument(
        "CKA", "the representations have different numbers of samples ({} and {})", k.n, l.n);
  }
}

double normalised(double ab, const CenteredGram& a, const CenteredGram& b) {
  if (!(a.self_hsic > 0) || !(b.self_hsic > 0)) return 0;
  return ab / std::sqrt(a.self_hsic * b.self_hsic);
}

}  // namespace

double hsic_unbiased(const CenteredGram& k, const CenteredGram& l) {
  check_same_samples(k, l);
  return hsic_from_trace(k, l, 2 * dot_in_double(k.upper.data(), l.upper.data(), k.upper.size()));
}

std::vector<double> cka_matrix(const std::vector<const CenteredGram*>& a, const std::vector<const CenteredGram*>& b,
                               ThreadPool* pool) {
  for (const auto* x : a) {
    for (const auto* y : b) check_same_samples(*x, *y);
  }
  std::vector<double> traces(a.size() * b.size(), 0.0);
  if (a.empty() || b.empty()) return traces;
  // The element-wise products of every pair, summed a tile of the upper triangles at a time: the
  // tile of every Gram is widened to double (each float product is exact there) and the sums for
  // all pairs are one small dgemm, added to the running totals. So each Gram is read from memory
  // once (pair by pair, the 32 Grams of AWM, 512 KB each, were streamed again for every pair), and
  // the arithmetic runs at dgemm's speed (a dot product per pair cost a tenth of judging a pair).
  // Chunks of a fixed number of tiles run on the pool, and their totals are added in chunk order:
  // the chunks do not depend on the pool, so neither do the sums.
  constexpr size_t kTile = 2048;
  constexpr size_t kTilesPerChunk = 8;
  constexpr size_t kChunk = kTile * kTilesPerChunk;
  const size_t length = a.front()->upper.size();
  const size_t chunks = (length + kChunk - 1) / kChunk;
  const size_t pairs = a.size() * b.size();
  std::vector<double> chunk_traces(chunks * pairs, 0.0);
  const auto run_chunk = [&](size_t chunk, unsigned) {
    std::vector<double> wide_a(a.size() * kTile), wide_b(b.size() * kTile);
    double* sums = chunk_traces.data() + chunk * pairs;
    for (size_t start = chunk * kChunk; start < std::min(length, (chunk + 1) * kChunk); start += kTile) {
      const size_t count = std::min(kTile, length - start);
      for (size_t i = 0; i < a.size(); ++i) widen(a[i]->upper.data() + start, count, wide_a.data() + i * count);
      for (size_t j = 0; j < b.size(); ++j) widen(b[j]->upper.data() + start, count, wide_b.data() + j * count);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(a.size()), static_cast<blasint>(b.size()),
                  static_cast<blasint>(count), 1.0, wide_a.data(), static_cast<blasint>(count), wide_b.data(),
                  static_cast<blasint>(count), 1.0, sums, static_cast<blasint>(b.size()));
    }
  };
  if (pool != nullptr && chunks > 1) {
    pool->parallel_for(chunks, run_chunk);
  } else {
    for (size_t chunk = 0; chunk < chunks; ++chunk) run_chunk(chunk, 0);
  }
  for (size_t chunk = 0; chunk < chunks; ++chunk) {
    for (size_t k = 0; k < pairs; ++k) traces[k] += chunk_traces[chunk * pairs + k];
  }
  std::vector<double> out(traces.size());
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < b.size(); ++j) {
      const double ab = hsic_from_trace(*a[i], *b[j], 2 * traces[i * b.size() + j]);
      out[i * b.size() + j] = normalised(ab, *a[i], *b[j]);
    }
  }
  return out;
}

double cka(const CenteredGram& a, const CenteredGram& b) { return normalised(hsic_unbiased(a, b), a, b); }

}  // namespace referee::trace
