// Unbiased linear CKA (centred kernel alignment): how similar two representations of the same n
// samples are, ignoring any rotation and isotropic scaling of their features — so it compares
// layers whose units are permuted, rotated or of different widths. Linear CKA is from Kornblith et
// al. (ICML 2019); the unbiased HSIC estimator (Song et al., JMLR 2012) removes the positive bias
// that plain CKA has at small n (Nguyen, Raghu and Kornblith, ICLR 2021; used for model lineage
// by AWM, Zeng et al., ICLR 2026): two independent representations score about 0, not about p/n.
//
// A Gram matrix is built once per representation (O(n²·p), BLAS) and then compared with any number
// of others at O(n²) each. CenteredGram is immutable after make_gram; cka() is thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace referee {
class ThreadPool;
}

namespace referee::trace {

// The Gram matrix K = X Xᵀ of n samples with its diagonal set to zero (K̃ in Song et al.), stored as
// its strictly upper triangle, plus what the unbiased HSIC needs besides the elementwise product.
struct CenteredGram {
  int64_t n = 0;
  std::vector<float> upper;      // K̃[i][j] for i < j, row by row: n(n-1)/2 values
  std::vector<double> row_sums;  // K̃ 1
  double total = 0;              // 1ᵀ K̃ 1
  double self_hsic = 0;          // HSIC_1(K, K), for the normalisation
};

// x is n x p, row-major (one row per sample). Features are centred first (the unbiased HSIC does
// not change, and the float Gram keeps its precision). Throws referee::Error when n < 4, p < 1 or a
// value is not finite.
CenteredGram make_gram(const float* x, int64_t n, int64_t p);
// The same Gram from the transposed layout: `features` is p x n, one row per feature (how probe
// responses are stored: a row per unit), so no transpose has to be built.
CenteredGram make_gram_of_features(const float* features, int64_t n, int64_t p);
// The same, centring `features` in place instead of in a copy (it is left centred).
CenteredGram make_gram_of_features_in_place(float* features, int64_t n, int64_t p);

// Unbiased HSIC_1(K, L) (Song et al. 2012, eq. 5). Throws referee::Error when the sample counts
// differ.
double hsic_unbiased(const CenteredGram& k, const CenteredGram& l);

// HSIC_1(K, L) / sqrt(HSIC_1(K, K) · HSIC_1(L, L)): 1 for representations equal up to rotation and
// scale, about 0 (either sign) for independent ones. 0 when either side has no variance (its self
// HSIC is not positive). Throws referee::Error when the sample counts differ.
double cka(const CenteredGram& a, const CenteredGram& b);

// cka(*a[i], *b[j]) for every pair, row-major (a.size() x b.size()): the same values up to
// rounding (the products are summed in double a tile at a time, as one dgemm per tile), with each
// Gram read from memory once. With a pool, fixed chunks of tiles run in parallel and their sums are
// added in order, so the values do not depend on the pool or its size. Throws referee::Error when
// sample counts differ.
std::vector<double> cka_matrix(const std::vector<const CenteredGram*>& a, const std::vector<const CenteredGram*>& b,
                               ThreadPool* pool = nullptr);

}  // namespace referee::trace
