// trace/cka and trace/linalg: unbiased linear CKA against a direct double-precision implementation
// of Song et al.'s estimator, its invariances, its unbiasedness; orthogonal Procrustes.
#include "trace/cka.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "trace/linalg.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace referee::trace {
namespace {

using Matrix = std::vector<float>;  // row-major

Matrix gaussian(int64_t rows, int64_t cols, std::mt19937_64& rng, double sd = 1.0) {
  std::normal_distribution<double> g(0.0, sd);
  Matrix m(static_cast<size_t>(rows * cols));
  for (float& v : m) v = static_cast<float>(g(rng));
  return m;
}

// a (rows x inner) times b (inner x cols), in double, rounded to float.
Matrix multiply(const Matrix& a, const Matrix& b, int64_t rows, int64_t inner, int64_t cols) {
  Matrix out(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      double s = 0;
      for (int64_t k = 0; k < inner; ++k)
        s += static_cast<double>(a[static_cast<size_t>(i * inner + k)]) *
             b[static_cast<size_t>(k * cols + j)];
      out[static_cast<size_t>(i * cols + j)] = static_cast<float>(s);
    }
  }
  return out;
}

// A random d x d orthogonal matrix: Gram–Schmidt on the rows of a Gaussian matrix, in double.
Matrix random_orthogonal(int64_t d, std::mt19937_64& rng) {
  std::normal_distribution<double> g;
  std::vector<double> q(static_cast<size_t>(d * d));
  for (double& v : q) v = g(rng);
  for (int64_t i = 0; i < d; ++i) {
    double* row = q.data() + i * d;
    for (int pass = 0; pass < 2; ++pass) {  // twice, for orthogonality to rounding level
      for (int64_t j = 0; j < i; ++j) {
        const double* prev = q.data() + j * d;
        double dot = 0;
        for (int64_t k = 0; k < d; ++k) dot += row[k] * prev[k];
        for (int64_t k = 0; k < d; ++k) row[k] -= dot * prev[k];
      }
    }
    double norm = 0;
    for (int64_t k = 0; k < d; ++k) norm += row[k] * row[k];
    for (int64_t k = 0; k < d; ++k) row[k] /= std::sqrt(norm);
  }
  return Matrix(q.begin(), q.end());
}

// Song et al. (2012) eq. 5 written out directly: uncentred linear Grams in double, zeroed
// diagonals, explicit sums.
double reference_hsic(const Matrix& x, int64_t p, const Matrix& y, int64_t q, int64_t n) {
  auto gram = [n](const Matrix& m, int64_t w) {
    std::vector<double> k(static_cast<size_t>(n * n), 0.0);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        if (i == j) continue;
        double s = 0;
        for (int64_t f = 0; f < w; ++f)
          s += static_cast<double>(m[static_cast<size_t>(i * w + f)]) *
               m[static_cast<size_t>(j * w + f)];
        k[static_cast<size_t>(i * n + j)] = s;
      }
    }
    return k;
  };
  const auto k = gram(x, p), l = gram(y, q);
  double trace = 0, sum_k = 0, sum_l = 0, one_kl_one = 0;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      trace += k[static_cast<size_t>(i * n + j)] * l[static_cast<size_t>(j * n + i)];
      sum_k += k[static_cast<size_t>(i * n + j)];
      sum_l += l[static_cast<size_t>(i * n + j)];
    }
  }
  for (int64_t j = 0; j < n; ++j) {  // 1ᵀ K L 1 = Σ_j (Σ_i K_ij)(Σ_m L_jm)
    double col_k = 0, row_l = 0;
    for (int64_t i = 0; i < n; ++i)
      col_k += k[static_cast<size_t>(i * n + j)], row_l += l[static_cast<size_t>(j * n + i)];
    one_kl_one += col_k * row_l;
  }
  const double dn = static_cast<double>(n);
  return (trace + sum_k * sum_l / ((dn - 1) * (dn - 2)) - 2 / (dn - 2) * one_kl_one) /
         (dn * (dn - 3));
}

double reference_cka(const Matrix& x, int64_t p, const Matrix& y, int64_t q, int64_t n) {
  return reference_hsic(x, p, y, q, n) /
         std::sqrt(reference_hsic(x, p, x, p, n) * reference_hsic(y, q, y, q, n));
}

double cka_of(const Matrix& x, int64_t p, const Matrix& y, int64_t q, int64_t n) {
  return cka(make_gram(x.data(), n, p), make_gram(y.data(), n, q));
}

TEST(Cka, AgreesWithADirectDoublePrecisionReference) {
  std::mt19937_64 rng(11);
  const int64_t n = 60, p = 20, q = 30;
  const Matrix x = gaussian(n, p, rng);
  // Related: Y = X W + noise, with an offset so the features are not centred. And unrelated.
  Matrix related = multiply(x, gaussian(p, q, rng), n, p, q);
  const Matrix noise = gaussian(n, q, rng, 2.0);
  for (size_t i = 0; i < related.size(); ++i) related[i] += noise[i] + 3.0f;
  const Matrix unrelated = gaussian(n, q, rng);
  for (const Matrix* y : {static_cast<const Matrix*>(&related), &unrelated}) {
    const double expected = reference_cka(x, p, *y, q, n);
    EXPECT_NEAR(cka_of(x, p, *y, q, n), expected, 1e-6);
    const auto gx = make_gram(x.data(), n, p), gy = make_gram(y->data(), n, q);
    EXPECT_NEAR(hsic_unbiased(gx, gy), reference_hsic(x, p, *y, q, n),
                1e-6 * std::abs(reference_hsic(x, p, x, p, n)));
  }
  EXPECT_GT(reference_cka(x, p, related, q, n), 0.3);  // the two cases really differ
  EXPECT_LT(std::abs(reference_cka(x, p, unrelated, q, n)), 0.3);
}

TEST(Cka, IsInvariantToRotationScalingAndTranslation) {
  std::mt19937_64 rng(12);
  const int64_t n = 80, p = 16, q = 24;
  const Matrix x = gaussian(n, p, rng);
  Matrix y = multiply(x, gaussian(p, q, rng), n, p, q);
  const Matrix noise = gaussian(n, q, rng, 3.0);
  for (size_t i = 0; i < y.size(); ++i) y[i] += noise[i];
  const double base = cka_of(x, p, y, q, n);

  EXPECT_NEAR(cka_of(x, p, x, p, n), 1.0, 1e-12);
  const Matrix rotated = multiply(x, random_orthogonal(p, rng), n, p, p);
  EXPECT_NEAR(cka_of(rotated, p, y, q, n), base, 1e-6);
  EXPECT_NEAR(cka_of(x, p, rotated, p, n), 1.0, 1e-6);
  Matrix scaled = x, shifted = x;
  for (float& v : scaled) v *= 37.5f;
  for (size_t i = 0; i < shifted.size(); ++i)
    shifted[i] += static_cast<float>(i % static_cast<size_t>(p)) * 10.0f;
  EXPECT_NEAR(cka_of(scaled, p, y, q, n), base, 1e-6);
  EXPECT_NEAR(cka_of(shifted, p, y, q, n), base, 1e-6);
  // Symmetric, and a permutation of the features is a rotation too.
  EXPECT_EQ(cka_of(x, p, y, q, n), cka_of(y, q, x, p, n));
}

// The unbiased estimator has expectation ~0 for independent representations (plain linear CKA
// would be clearly positive at n = 64, p = q = 16).
TEST(Cka, IsNearZeroForIndependentRepresentations) {
  std::mt19937_64 rng(13);
  const int64_t n = 64, p = 16, q = 16, draws = 50;
  double sum = 0, sum_sq = 0;
  for (int d = 0; d < draws; ++d) {
    const double c = cka_of(gaussian(n, p, rng), p, gaussian(n, q, rng), q, n);
    sum += c, sum_sq += c * c;
  }
  const double mean = sum / draws, sd = std::sqrt((sum_sq - draws * mean * mean) / (draws - 1));
  EXPECT_LT(std::abs(mean), 4 * sd / std::sqrt(static_cast<double>(draws)))
      << "mean " << mean << " sd " << sd;
  EXPECT_LT(sd, 0.1);
}

TEST(Cka, FeatureMajorLayoutGivesTheSameGram) {
  std::mt19937_64 rng(21);
  const int64_t n = 37, p = 11;
  Matrix x = gaussian(n, p, rng);
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i * p + 3)] += 50.0f;  // an offset to centre away
  Matrix xt(x.size());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t f = 0; f < p; ++f) xt[static_cast<size_t>(f * n + i)] = x[static_cast<size_t>(i * p + f)];
  }
  const CenteredGram a = make_gram(x.data(), n, p), b = make_gram_of_features(xt.data(), n, p);
  ASSERT_EQ(a.upper.size(), b.upper.size());
  for (size_t k = 0; k < a.upper.size(); ++k) EXPECT_NEAR(a.upper[k], b.upper[k], 1e-4) << k;
  EXPECT_NEAR(a.total, b.total, 1e-3);
  EXPECT_NEAR(a.self_hsic, b.self_hsic, 1e-6 * std::abs(a.self_hsic));
  EXPECT_NEAR(cka(a, b), 1.0, 1e-6);
  EXPECT_THROW(make_gram_of_features(xt.data(), 3, p), Error);
  EXPECT_THROW(make_gram_of_features(xt.data(), n, 0), Error);
  xt[5] = INFINITY;
  EXPECT_THROW(make_gram_of_features(xt.data(), n, p), Error);
}

// Every pair at once, over Grams larger than one tile (n = 120: 7140 upper entries), with one
// side sharing a representation with the other (CKA 1) and a constant one (CKA 0).
TEST(Cka, MatrixOfPairsEqualsPairByPair) {
  std::mt19937_64 rng(33);
  const int64_t n = 120;
  std::vector<CenteredGram> as, bs;
  for (int k = 0; k < 3; ++k) as.push_back(make_gram(gaussian(n, 5 + k, rng).data(), n, 5 + k));
  for (int k = 0; k < 4; ++k) bs.push_back(make_gram(gaussian(n, 7, rng).data(), n, 7));
  bs.push_back(as[1]);
  const Matrix constant(static_cast<size_t>(n * 2), 1.5f);
  bs.push_back(make_gram(constant.data(), n, 2));
  std::vector<const CenteredGram*> pa, pb;
  for (const auto& g : as) pa.push_back(&g);
  for (const auto& g : bs) pb.push_back(&g);
  const auto m = cka_matrix(pa, pb);
  ASSERT_EQ(m.size(), as.size() * bs.size());
  for (size_t i = 0; i < as.size(); ++i) {
    for (size_t j = 0; j < bs.size(); ++j) EXPECT_NEAR(m[i * bs.size() + j], cka(as[i], bs[j]), 1e-12) << i << ", " << j;
  }
  EXPECT_NEAR(m[1 * bs.size() + 4], 1.0, 1e-9);
  EXPECT_EQ(m[0 * bs.size() + 5], 0.0);
  // On a pool: blocks of A's rows in parallel, the same values to the last bit, whatever its size.
  for (unsigned threads : {1u, 2u, 3u}) {
    ThreadPool pool(threads);
    EXPECT_EQ(cka_matrix(pa, pb, &pool), m) << threads << " threads";
  }
  EXPECT_TRUE(cka_matrix({}, pb).empty());
  const CenteredGram other = make_gram(gaussian(n - 1, 3, rng).data(), n - 1, 3);
  EXPECT_THROW(cka_matrix(pa, {&other}), Error);
}

TEST(Cka, RejectsBadInput) {
  std::mt19937_64 rng(14);
  const Matrix x = gaussian(10, 3, rng);
  EXPECT_THROW(make_gram(x.data(), 3, 3), Error);
  EXPECT_THROW(make_gram(x.data(), 10, 0), Error);
  Matrix bad = x;
  bad[7] = NAN;
  EXPECT_THROW(make_gram(bad.data(), 10, 3), Error);
  EXPECT_THROW(cka(make_gram(x.data(), 10, 3), make_gram(x.data(), 9, 3)), Error);
  // No variance: CKA 0 rather than NaN.
  const Matrix constant(30, 2.5f);
  EXPECT_EQ(cka(make_gram(constant.data(), 10, 3), make_gram(x.data(), 10, 3)), 0.0);
}

TEST(CkaProcrustes, RecoversARandomRotation) {
  std::mt19937_64 rng(15);
  const int64_t n = 200, d = 12;
  const Matrix a = gaussian(n, d, rng);
  const Matrix q = random_orthogonal(d, rng);
  const Matrix b = multiply(a, q, n, d, d);
  const auto r = orthogonal_procrustes(a.data(), b.data(), n, d);
  ASSERT_EQ(r.size(), q.size());
  for (size_t i = 0; i < q.size(); ++i) EXPECT_NEAR(r[i], q[i], 1e-4) << i;
  // With noise, still orthogonal and close.
  Matrix noisy = b;
  const Matrix noise = gaussian(n, d, rng, 0.05);
  for (size_t i = 0; i < noisy.size(); ++i) noisy[i] += noise[i];
  const auto r2 = orthogonal_procrustes(a.data(), noisy.data(), n, d);
  for (size_t i = 0; i < q.size(); ++i) EXPECT_NEAR(r2[i], q[i], 0.02) << i;
  // R Rᵀ = I.
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < d; ++k)
        dot += static_cast<double>(r2[static_cast<size_t>(i * d + k)]) *
               r2[static_cast<size_t>(j * d + k)];
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-5);
    }
  }
  EXPECT_THROW(orthogonal_procrustes(a.data(), b.data(), 0, d), Error);
}

}  // namespace
}  // namespace referee::trace
