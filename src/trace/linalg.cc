#include "trace/linalg.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "util/checked_math.h"
#include "util/error.h"

// LAPACK's SVD, exported by libopenblas (there is no LAPACKE header to include). Fortran calling
// convention: everything by pointer, column-major, and the hidden lengths of the two character
// arguments appended (gfortran passes them as size_t).
extern "C" void dgesvd_(const char* jobu, const char* jobvt, const int* m, const int* n, double* a,
                        const int* lda, double* s, double* u, const int* ldu, double* vt,
                        const int* ldvt, double* work, const int* lwork, int* info, size_t jobu_len,
                        size_t jobvt_len);

namespace referee::trace {

std::vector<float> orthogonal_procrustes(const float* a, const float* b, int64_t n, int64_t d) {
  if (n < 1 || d < 1)
    throw invalid_argument("Procrustes", "needs a non-empty matrix, got {} x {}", n, d);
  const auto size = checked_mul(static_cast<uint64_t>(n), static_cast<uint64_t>(d));
  if (n > INT_MAX || d > INT_MAX || !size ||
      !checked_mul(static_cast<uint64_t>(d), static_cast<uint64_t>(d))) {
    throw invalid_argument("Procrustes", "the matrices are too large ({} x {})", n, d);
  }
  for (uint64_t k = 0; k < *size; ++k) {
    if (!std::isfinite(a[k]) || !std::isfinite(b[k])) {
      throw invalid_argument("Procrustes", "value ({}, {}) is not finite",
                             k / static_cast<uint64_t>(d), k % static_cast<uint64_t>(d));
    }
  }
  // In double: the SVD of a d x d matrix is cheap, and AᵀB sums n products per entry.
  const std::vector<double> ad(a, a + *size), bd(b, b + *size);
  const int dd = static_cast<int>(d);
  const auto ud = static_cast<size_t>(d);
  // A row-major n x d is Aᵀ column-major (d x n, leading dimension d); so M = AᵀB, column-major,
  // is (Aᵀ)(Bᵀ)ᵀ of those two column-major views.
  std::vector<double> m(ud * ud), s(ud), u(ud * ud), vt(ud * ud);
  cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, dd, dd, static_cast<int>(n), 1.0, ad.data(),
              dd, bd.data(), dd, 0.0, m.data(), dd);

  // M = U Σ Vᵀ; workspace size by query first.
  int info = 0, lwork = -1;
  double query = 0;
  dgesvd_("A", "A", &dd, &dd, m.data(), &dd, s.data(), u.data(), &dd, vt.data(), &dd, &query,
          &lwork, &info, 1, 1);
  lwork = static_cast<int>(query);
  std::vector<double> work(static_cast<size_t>(std::max(lwork, 1)));
  dgesvd_("A", "A", &dd, &dd, m.data(), &dd, s.data(), u.data(), &dd, vt.data(), &dd, work.data(),
          &lwork, &info, 1, 1);
  if (info != 0)
    throw invalid_argument("Procrustes", "the SVD did not converge (LAPACK info {})", info);

  // R = U Vᵀ, wanted row-major. Read row-major, the column-major arrays u and vt hold Uᵀ and V, so
  // R = (Uᵀ)ᵀ · Vᵀ is the product of both transposed.
  std::vector<double> r(ud * ud);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasTrans, dd, dd, dd, 1.0, u.data(), dd, vt.data(), dd,
              0.0, r.data(), dd);
  return std::vector<float>(r.begin(), r.end());
}

}  // namespace referee::trace
