// Small dense linear algebra for trace, on LAPACK (from OpenBLAS). Pure and thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace referee::trace {

// Orthogonal Procrustes (Schönemann 1966): the orthogonal d x d matrix R minimising ||A R - B||_F
// for A and B n x d, row-major. R = U Vᵀ from the SVD AᵀB = U Σ Vᵀ. Returned row-major. Undoes a
// rotation or permutation of a residual stream when matching one model's embeddings to another's.
// Throws referee::Error when n < 1, d < 1 or a value is not finite.
std::vector<float> orthogonal_procrustes(const float* a, const float* b, int64_t n, int64_t d);

}  // namespace referee::trace
