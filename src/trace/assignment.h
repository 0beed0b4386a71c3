// Linear assignment: match the rows of a score matrix to its columns, one to one, so that the total
// score of the matched pairs is as large as possible. trace uses it to pair the MLP neurons of one
// model with those of another by the correlation of their responses (Zhu et al., ICML 2025).
// Pure and thread-safe.
#pragma once

#include <cstdint>
#include <vector>

namespace referee::trace {

// `score` is rows x cols, row-major. Returns, for each row, the column it is matched to, or -1.
// Exactly min(rows, cols) pairs are made (every row when rows <= cols, every column otherwise), and
// no other set of that many disjoint pairs has a larger total score. Among equal optima the choice
// is deterministic. Shortest augmenting paths (Jonker and Volgenant 1987, in the rectangular form
// of Crouse 2016): O(rows² · cols) worst case, far less on typical scores. One core: 2048 x 2048
// uniform random scores ~0.2 s, 4096 x 4096 ~1.2 s; adversarial rank-one scores (s_ij = a_i b_j)
// reach the cubic bound, ~5 s at 2048. Throws referee::Error on a negative size or a non-finite
// score.
std::vector<int64_t> max_score_assignment(const float* score, int64_t rows, int64_t cols);

}  // namespace referee::trace
