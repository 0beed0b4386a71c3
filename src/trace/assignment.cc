#include "trace/assignment.h"

#include <algorithm>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "util/checked_math.h"
#include "util/cpu_clones.h"
#include "util/error.h"
#include "util/finite.h"

namespace referee::trace {
namespace {

constexpr double kUnreached = std::numeric_limits<double>::infinity();

// Throws naming the first score of rows [first, first + count) that is not finite.
REFEREE_AVX2_CLONE void check_finite_rows(const float* score, size_t first, size_t count, size_t cols) {
  const float* x = score + first * cols;
  if (all_finite(x, count * cols)) return;
  for (size_t k = 0; k < count * cols; ++k) {
    if (!std::isfinite(x[k])) {
      throw invalid_argument("assignment", "score ({}, {}) is not finite ({})", first + k / cols, k % cols, x[k]);
    }
  }
}

// Minimum-cost assignment of every row of the n x m matrix cost(i, j) = -score[i·m + j], n <= m,
// by shortest augmenting paths: rows are added one at a time, and each new row reaches a free
// column along the cheapest alternating path, found by Dijkstra's algorithm on reduced costs
// c(i, j) - u(i) - v(j) >= 0 (Jonker and Volgenant, Computing 38, 1987; the rectangular form and
// the potential updates follow Crouse, IEEE Trans. Aerospace and Electronic Systems 52, 2016).
// Potentials are doubles: the scores are floats, and sums of many of them must not round.
class ShortestAugmentingPath {
 public:
  ShortestAugmentingPath(const float* score, size_t n, size_t m)
      : score_(score),
        n_(n),
        m_(m),
        u_(n, 0.0),
        v_(m, 0.0),
        col_of_row_(n, kNone),
        row_of_col_(m, kNone),
        dist_(m),
        pred_(m),
        todo_(m) {
    scanned_.reserve(m);
  }

  // For each row, its column (every row is matched, as n <= m).
  REFEREE_AVX2_CLONE std::vector<size_t> solve() {
    for (size_t row = 0; row < n_; ++row) {
      check_finite_rows(score_, row, 1, m_);
      augment(row);
    }
    return std::move(col_of_row_);
  }

 private:
  static constexpr size_t kNone = SIZE_MAX;

  // The search's first step alone, without its bookkeeping: when the column nearest to `row`
  // (the lowest reduced cost c(row, j) - v(j)) is free, Dijkstra would settle it first and stop, so
  // the row is matched to it with u(row) raised to that cost and nothing else changes. On easy
  // scores, such as a derived model's, nearly every row ends here: a read-only pass over the row
  // for the minimum, then a second pass to find the first column at that minimum. Returns false,
  // changing nothing, when no free column is at the minimum; the full search then starts over.
  bool try_nearest_free_column(size_t row) {
    const float* c = score_ + row * m_;
    const double* v = v_.data();
    const double base = -u_[row];
    const auto reduced = [&](size_t j) { return base - static_cast<double>(c[j]) - v[j]; };
    double lowest = kUnreached;
    size_t j = 0;
#if defined(__SSE2__)
    // Eight columns a step, in four independent chains of two doubles (SSE2 is part of x86-64).
    // min_pd(r, low) is r < low ? r : low, the scalar loop's choice exactly.
    {
      const __m128d b = _mm_set1_pd(base);
      __m128d low0 = _mm_set1_pd(kUnreached), low1 = low0, low2 = low0, low3 = low0;
      for (; j + 8 <= m_; j += 8) {
        const __m128 c0 = _mm_loadu_ps(c + j), c1 = _mm_loadu_ps(c + j + 4);
        const __m128d r0 = _mm_sub_pd(_mm_sub_pd(b, _mm_cvtps_pd(c0)), _mm_loadu_pd(v + j));
        const __m128d r1 = _mm_sub_pd(_mm_sub_pd(b, _mm_cvtps_pd(_mm_movehl_ps(c0, c0))), _mm_loadu_pd(v + j + 2));
        const __m128d r2 = _mm_sub_pd(_mm_sub_pd(b, _mm_cvtps_pd(c1)), _mm_loadu_pd(v + j + 4));
        const __m128d r3 = _mm_sub_pd(_mm_sub_pd(b, _mm_cvtps_pd(_mm_movehl_ps(c1, c1))), _mm_loadu_pd(v + j + 6));
        low0 = _mm_min_pd(r0, low0), low1 = _mm_min_pd(r1, low1);
        low2 = _mm_min_pd(r2, low2), low3 = _mm_min_pd(r3, low3);
      }
      const __m128d low = _mm_min_pd(_mm_min_pd(low0, low1), _mm_min_pd(low2, low3));
      lowest = std::min(_mm_cvtsd_f64(low), _mm_cvtsd_f64(_mm_unpackhi_pd(low, low)));
    }
#endif
    for (; j < m_; ++j) {
      const double r = reduced(j);
      lowest = r < lowest ? r : lowest;
    }
    for (j = 0; j < m_; ++j) {
      if (reduced(j) == lowest && row_of_col_[j] == kNone) break;
    }
    if (j == m_) return false;
    // Reduced costs from `row` are now >= 0 and 0 at j, which joins the matching.
    u_[row] += lowest;
    col_of_row_[row] = j;
    row_of_col_[j] = row;
    return true;
  }

  // Adds `row` to the matching: Dijkstra from it over the columns until the nearest free column
  // (the sink) is settled, then updates the potentials and flips the path.
  void augment(size_t row) {
    if (try_nearest_free_column(row)) return;
    scanned_.clear();
    // The first step, from `row` itself, reaches every column directly: one plain pass over the
    // row (no index list to follow, no earlier distance to beat), fused with the reset of the
    // per-row state.
    double lowest = kUnreached;
    size_t best = 0;
    {
      const float* c = score_ + row * m_;
      const double base = -u_[row];
      for (size_t j = 0; j < m_; ++j) {
        todo_[j] = j;
        const double r = base - static_cast<double>(c[j]) - v_[j];  // cost = -score
        dist_[j] = r, pred_[j] = row;
        if (r < lowest || (r == lowest && row_of_col_[j] == kNone)) lowest = r, best = j;
      }
    }
    size_t todo_count = m_;
    double settled = 0;  // distance of the column settled last
    size_t i = row, sink = kNone;
    for (bool first = true; sink == kNone; first = false) {
      if (!first) {
        // Relax every unsettled column through row i, and pick the nearest; among equals prefer
        // a free column, which ends the search sooner.
        const float* c = score_ + i * m_;
        const double base = settled - u_[i];
        lowest = kUnreached;
        best = 0;
        for (size_t t = 0; t < todo_count; ++t) {
          const size_t j = todo_[t];
          const double r = base - static_cast<double>(c[j]) - v_[j];  // cost = -score
          if (r < dist_[j]) dist_[j] = r, pred_[j] = i;
          if (dist_[j] < lowest || (dist_[j] == lowest && row_of_col_[j] == kNone)) {
            lowest = dist_[j], best = t;
          }
        }
      }
      // Finite scores keep every distance finite, so some column is always settled.
      settled = lowest;
      const size_t j = todo_[best];
      todo_[best] = todo_[--todo_count];
      scanned_.push_back(j);
      if (row_of_col_[j] == kNone) {
        sink = j;
      } else {
        i = row_of_col_[j];
      }
    }

    // Potentials: keep reduced costs >= 0 everywhere and 0 on the matching (and on the new path).
    u_[row] += settled;
    for (size_t j : scanned_) {
      if (j == sink) continue;
      const double delta = settled - dist_[j];
      u_[row_of_col_[j]] += delta;
      v_[j] -= delta;
    }
    // Flip the alternating path from the sink back to `row`.
    for (size_t j = sink;;) {
      const size_t r = pred_[j];
      row_of_col_[j] = r;
      const size_t previous = col_of_row_[r];
      col_of_row_[r] = j;
      if (r == row) break;
      j = previous;
    }
  }

  const float* score_;
  size_t n_, m_;
  std::vector<double> u_, v_;  // row and column potentials
  std::vector<size_t> col_of_row_, row_of_col_;
  std::vector<double> dist_;     // shortest reduced distance from the new row, per column
  std::vector<size_t> pred_;     // the row the shortest path reaches each column from
  std::vector<size_t> todo_;     // columns not settled yet (the first todo_count entries)
  std::vector<size_t> scanned_;  // columns settled, in order
};

}  // namespace

std::vector<int64_t> max_score_assignment(const float* score, int64_t rows, int64_t cols) {
  if (rows < 0 || cols < 0) {
    throw invalid_argument("assignment", "the score matrix has a negative size ({} x {})", rows,
                           cols);
  }
  const auto size = checked_mul(static_cast<uint64_t>(rows), static_cast<uint64_t>(cols));
  if (!size || *size > static_cast<uint64_t>(INT64_MAX) / sizeof(float)) {
    throw invalid_argument("assignment", "the score matrix is too large ({} x {})", rows, cols);
  }
  const auto n_rows = static_cast<size_t>(rows), n_cols = static_cast<size_t>(cols);
  std::vector<int64_t> col_of_row(n_rows, -1);
  if (rows == 0 || cols == 0) return col_of_row;
  if (rows <= cols) {
    // Each row is checked as it joins the matching, while it is in cache for its first pass.
    const auto matched = ShortestAugmentingPath(score, n_rows, n_cols).solve();
    for (size_t r = 0; r < n_rows; ++r) col_of_row[r] = static_cast<int64_t>(matched[r]);
    return col_of_row;
  }
  // More rows than columns: match every column to a row, on the transposed matrix (checked first,
  // so that an error names the caller's row and column).
  check_finite_rows(score, 0, n_rows, n_cols);
  std::vector<float> transposed(*size);
  for (size_t r = 0; r < n_rows; ++r) {
    for (size_t c = 0; c < n_cols; ++c) transposed[c * n_rows + r] = score[r * n_cols + c];
  }
  const auto row_of_col = ShortestAugmentingPath(transposed.data(), n_cols, n_rows).solve();
  for (size_t c = 0; c < n_cols; ++c) col_of_row[row_of_col[c]] = static_cast<int64_t>(c);
  return col_of_row;
}

}  // namespace referee::trace
