#include "trace/weight_evidence.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "trace/assignment.h"
#include "trace/cka.h"
#include "trace/statistics.h"
#include "util/cpu_clones.h"
#include "util/thread_pool.h"

namespace referee::trace {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct SharedProbes {
  std::vector<int64_t> a_columns, b_columns;
  int64_t size() const { return static_cast<int64_t>(a_columns.size()); }
};

SharedProbes shared_probes(const Fingerprint& a, const Fingerprint& b) {
  std::unordered_map<std::string_view, int64_t> in_b;
  for (int64_t i = 0; i < b.probe_count(); ++i) in_b.emplace(b.probe_tokens[static_cast<size_t>(i)], i);
  SharedProbes s;
  for (int64_t i = 0; i < a.probe_count(); ++i) {
    auto it = in_b.find(a.probe_tokens[static_cast<size_t>(i)]);
    if (it == in_b.end()) continue;
    s.a_columns.push_back(i);
    s.b_columns.push_back(it->second);
  }
  return s;
}

// Rows of `r` restricted to the shared probe columns, each centred and scaled to unit length, so
// that the dot product of two rows is their Pearson correlation across the shared probes. (A
// neuron's scale is arbitrary — the rescaling obfuscation multiplies it — its pattern is not.)
// Only the first `max_rows` rows when given.
REFEREE_AVX2_CLONE std::vector<float> standardized_rows(const Responses& r, int64_t probes,
                                                        const std::vector<int64_t>& columns, int64_t max_rows = -1) {
  const int64_t n = static_cast<int64_t>(columns.size());
  const int64_t rows = max_rows >= 0 ? std::min(max_rows, r.units) : r.units;
  std::vector<float> out(static_cast<size_t>(rows * n));
  for (int64_t u = 0; u < rows; ++u) {
    const float* src = r.values.data() + u * probes;
    float* dst = out.data() + u * n;
    double mean = 0;
    for (int64_t c = 0; c < n; ++c) mean += src[columns[static_cast<size_t>(c)]];
    mean /= static_cast<double>(n);
    double ss = 0;
    for (int64_t c = 0; c < n; ++c) {
      const double v = src[columns[static_cast<size_t>(c)]] - mean;
      dst[c] = static_cast<float>(v);
      ss += v * v;
    }
    const float inv = ss > 0 ? static_cast<float>(1.0 / std::sqrt(ss)) : 0.0f;
    for (int64_t c = 0; c < n; ++c) dst[c] *= inv;
  }
  return out;
}

// Units x probes (features x samples) for CKA: the responses of one or more tensors stacked, each
// row restricted to the shared probe columns (a copy along each row; the probes-major transpose
// this replaced wrote a cache line per value).
REFEREE_AVX2_CLONE std::vector<float> units_by_samples(const std::vector<const Responses*>& parts, int64_t probes,
                                                       const std::vector<int64_t>& columns, int64_t& width) {
  width = 0;
  for (const auto* p : parts) width += p->units;
  const int64_t n = static_cast<int64_t>(columns.size());
  std::vector<float> out(static_cast<size_t>(n * width));
  float* dst = out.data();
  for (const auto* p : parts) {
    for (int64_t u = 0; u < p->units; ++u, dst += n) {
      const float* src = p->values.data() + u * probes;
      for (int64_t c = 0; c < n; ++c) dst[c] = src[columns[static_cast<size_t>(c)]];
    }
  }
  return out;
}

// A float matrix whose values are written before they are read: no zero fill (the correlation
// matrices of the neuron tests are megabytes, and filling them cost as much as a third of the
// product that overwrites them).
struct Scores {
  std::unique_ptr<float[]> values;
  size_t size = 0;
  explicit Scores(size_t n) : values(std::make_unique_for_overwrite<float[]>(n)), size(n) {}
  float* data() { return values.get(); }
  const float* data() const { return values.get(); }
  float& operator[](size_t k) { return values[k]; }
  float operator[](size_t k) const { return values[k]; }
};

// to[i] += from[i].
REFEREE_AVX2_CLONE void add_in_place(float* __restrict to, const float* __restrict from, size_t count) {
  for (size_t i = 0; i < count; ++i) to[i] += from[i];
}

// a (m x n) times b (k x n) transposed: m x k.
Scores correlations(const std::vector<float>& a, int64_t m, const std::vector<float>& b, int64_t k, int64_t n) {
  Scores out(static_cast<size_t>(m * k));
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(k),
              static_cast<int>(n), 1.0f, a.data(), static_cast<int>(n), b.data(), static_cast<int>(n),
              0.0f, out.data(), static_cast<int>(k));
  return out;
}

// Pairs (row, column) of a maximum-score assignment.
std::vector<std::pair<int64_t, int64_t>> matched_pairs(const float* score, int64_t rows, int64_t cols) {
  const std::vector<int64_t> col_of_row = max_score_assignment(score, rows, cols);
  std::vector<std::pair<int64_t, int64_t>> pairs;
  for (int64_t r = 0; r < rows; ++r) {
    if (col_of_row[static_cast<size_t>(r)] >= 0) pairs.emplace_back(r, col_of_row[static_cast<size_t>(r)]);
  }
  return pairs;
}

double spearman_of_pairs(const std::vector<std::pair<int64_t, int64_t>>& pairs) {
  std::vector<double> x, y;
  for (const auto& [r, c] : pairs) x.push_back(static_cast<double>(r)), y.push_back(static_cast<double>(c));
  return x.size() >= 3 ? spearman(x, y) : 0.0;
}

// The neuron-order and gate/up tests on one MLP of A against one MLP of B: the first
// `a_units` neurons of A (a set fixed before the weights are seen) matched among all of B's.
// The null stays exact with a subset: whichever model was initialised on its own, its labels
// are exchangeable, so the matched labels of a fixed set of rows are in uniformly random order
// and Spearman's rho has a random permutation's distribution. The subset bounds the cost at
// a_units x B's neurons per layer, where all pairs would grow with the square of the width, and
// leaves the power far beyond what a verdict needs (a derived layer's 256 matched neurons give
// rho ~ 1, p ~ 1e-57; the weakest derived pair of the standard zoo, a pruned model against a
// continued-pretraining sibling, still has p ~ 1e-50 over its layers).
NeuronTest neuron_test(const Responses& gate_a, const Responses& up_a, const Responses& gate_b,
                       const Responses& up_b, int64_t probes_a, int64_t probes_b, const SharedProbes& shared,
                       int64_t a_units) {
  NeuronTest t;
  const int64_t n = shared.size();
  const int64_t rows = std::min({gate_a.units, up_a.units, a_units}), cols = std::min(gate_b.units, up_b.units);
  // Both sides must have the same units for gate and up; they always do in a real MLP.
  if (gate_a.units != up_a.units || gate_b.units != up_b.units || rows < 1) return t;
  const auto ga = standardized_rows(gate_a, probes_a, shared.a_columns, rows);
  const auto ua = standardized_rows(up_a, probes_a, shared.a_columns, rows);
  const auto gb = standardized_rows(gate_b, probes_b, shared.b_columns);
  const auto ub = standardized_rows(up_b, probes_b, shared.b_columns);
  Scores sg = correlations(ga, rows, gb, cols, n);
  Scores su = correlations(ua, rows, ub, cols, n);

  // Zhu et al.'s robust variant: do the gate-only and up-only matchings agree?
  const auto by_gate = max_score_assignment(sg.data(), rows, cols);
  const auto by_up = max_score_assignment(su.data(), rows, cols);
  std::vector<double> x, y;
  for (int64_t r = 0; r < rows; ++r) {
    if (by_gate[static_cast<size_t>(r)] < 0 || by_up[static_cast<size_t>(r)] < 0) continue;
    x.push_back(static_cast<double>(by_gate[static_cast<size_t>(r)]));
    y.push_back(static_cast<double>(by_up[static_cast<size_t>(r)]));
  }

  // The order test on gate and up together: their correlations summed (into sg, done with).
  Scores& both = sg;
  add_in_place(both.data(), su.data(), both.size);
  const auto pairs = matched_pairs(both.data(), rows, cols);
  t.matched = static_cast<int64_t>(pairs.size());
  t.rho_identity = spearman_of_pairs(pairs);
  t.log_p_identity = log_p_spearman_upper(t.rho_identity, t.matched);
  double sum = 0;
  for (const auto& [r, c] : pairs) sum += both[static_cast<size_t>(r * cols + c)] / 2.0;
  t.mean_matched_correlation = pairs.empty() ? 0.0 : sum / static_cast<double>(pairs.size());

  t.rho_gate_up = x.size() >= 3 ? spearman(x, y) : 0.0;
  t.log_p_gate_up = x.size() >= 3 ? log_normal_sf(t.rho_gate_up * std::sqrt(static_cast<double>(x.size()) - 1.0)) : 0.0;
  return t;
}

struct LayerResponses {
  const Responses* query = nullptr;
  const Responses* key = nullptr;
  const Responses* gate = nullptr;  // dense MLP
  const Responses* up = nullptr;
  std::map<int32_t, std::pair<const Responses*, const Responses*>> experts;  // gate, up
  const Responses* router = nullptr;
};

std::map<int32_t, LayerResponses> by_layer(const Fingerprint& f) {
  std::map<int32_t, LayerResponses> out;
  for (const auto& r : f.responses) {
    auto& l = out[r.layer];
    switch (r.kind) {
      case ResponseKind::kQuery: if (r.expert < 0) l.query = &r; break;
      case ResponseKind::kKey: if (r.expert < 0) l.key = &r; break;
      case ResponseKind::kRouter: l.router = &r; break;
      case ResponseKind::kGate:
        if (r.expert < 0) l.gate = &r; else l.experts[r.expert].first = &r;
        break;
      case ResponseKind::kUp:
        if (r.expert < 0) l.up = &r; else l.experts[r.expert].second = &r;
        break;
    }
  }
  return out;
}

std::vector<const Responses*> mlp_parts(const LayerResponses& l) {
  std::vector<const Responses*> parts;
  if (l.gate) parts.push_back(l.gate);
  if (l.up) parts.push_back(l.up);
  for (const auto& [e, gu] : l.experts) {
    if (gu.first) parts.push_back(gu.first);
    if (gu.second) parts.push_back(gu.second);
  }
  return parts;
}

std::optional<CenteredGram> gram_of(const std::vector<const Responses*>& parts, int64_t probes,
                                    const std::vector<int64_t>& columns) {
  if (parts.empty() || columns.size() < 4) return std::nullopt;
  int64_t width = 0;
  auto x = units_by_samples(parts, probes, columns, width);
  return make_gram_of_features_in_place(x.data(), static_cast<int64_t>(columns.size()), width);
}

double norm_of(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

double raw_cosine(const std::vector<float>& a, const std::vector<float>& b) {
  double dot = 0;
  for (size_t i = 0; i < a.size(); ++i) dot += static_cast<double>(a[i]) * b[i];
  const double na = norm_of(a), nb = norm_of(b);
  return na > 0 && nb > 0 ? dot / (na * nb) : 0.0;
}

double pearson_of(const std::vector<float>& a, const std::vector<float>& b) {
  std::vector<double> x(a.begin(), a.end()), y(b.begin(), b.end());
  return pearson(x, y);
}

void compare_copies(const Fingerprint& a, const Fingerprint& b, const WeightEvidenceOptions& o, WeightEvidence& w) {
  std::map<std::vector<int64_t>, std::vector<const TensorDigest*>> a_by_shape;
  for (const auto& t : a.tensors) {
    if (t.shape.size() >= 2) a_by_shape[t.shape].push_back(&t);
  }
  for (const auto& tb : b.tensors) {
    // Vectors (norm gains, biases) are left out: independent models' norm gains are all near 1
    // and so near each other by any raw distance (the norm-vector trap).
    if (tb.shape.size() < 2) continue;
    ++w.b_matrices;
    auto it = a_by_shape.find(tb.shape);
    if (it == a_by_shape.end()) continue;
    std::optional<TensorMatch> best;
    for (const TensorDigest* ta : it->second) {
      TensorMatch m;
      m.a_name = ta->name, m.b_name = tb.name;
      m.identical = ta->content == tb.content && ta->dtype == tb.dtype;
      if (m.identical) {
        m.relative_distance = 0, m.cosine = 1;
      } else if (!ta->sketch.empty() && ta->sketch.size() == tb.sketch.size() && ta->norm > 0 && tb.norm > 0) {
        double diff = 0, dot = 0;
        for (size_t k = 0; k < tb.sketch.size(); ++k) {
          const double d = static_cast<double>(ta->sketch[k]) - tb.sketch[k];
          diff += d * d;
          dot += static_cast<double>(ta->sketch[k]) * tb.sketch[k];
        }
        m.relative_distance = std::sqrt(diff) / std::sqrt(ta->norm * tb.norm);
        m.cosine = dot / (ta->norm * tb.norm);
      } else {
        continue;
      }
      if (!best || m.relative_distance < best->relative_distance) best = m;
      if (m.identical) break;
    }
    if (!best) continue;
    best->b_role = tb.role;
    for (const TensorDigest* ta : it->second) {
      if (ta->name == best->a_name) best->a_role = ta->role;
    }
    if (best->identical) {
      ++w.b_identical;
    } else if (best->relative_distance <= o.near_identical_distance) {
      best->near_identical = true;
      ++w.b_near_identical;
    } else if (best->cosine >= o.similar_cosine) {
      ++w.b_similar;
    } else {
      continue;
    }
    w.copies.push_back(*best);
  }
}

void compare_norms(const Fingerprint& a, const Fingerprint& b, WeightEvidence& w) {
  auto find = [](const Fingerprint& f, int32_t layer, io::Role role) -> const NormVector* {
    for (const auto& n : f.norms) {
      if (n.layer == layer && n.role == role) return &n;
    }
    return nullptr;
  };
  for (const auto& m : w.layer_matches) {
    for (io::Role role : {io::Role::kAttnNorm, io::Role::kMlpNorm}) {
      const NormVector* na = find(a, m.best_a_layer, role);
      const NormVector* nb = find(b, m.b_layer, role);
      if (!na || !nb || na->values.size() != nb->values.size() || na->values.size() < 3) continue;
      w.norms.push_back({m.best_a_layer, m.b_layer, std::string(io::role_name(role)),
                         raw_cosine(na->values, nb->values), pearson_of(na->values, nb->values)});
    }
  }
  // Within A: how alike are two different layers' gains of one model? The baseline that shows
  // raw cosine near 1 means nothing.
  double p_sum = 0, c_sum = 0;
  int count = 0;
  std::vector<const NormVector*> attn;
  for (const auto& n : a.norms) {
    if (n.role == io::Role::kAttnNorm && n.values.size() >= 3) attn.push_back(&n);
  }
  for (size_t i = 0; i + 1 < attn.size(); ++i) {
    p_sum += pearson_of(attn[i]->values, attn[i + 1]->values);
    c_sum += raw_cosine(attn[i]->values, attn[i + 1]->values);
    ++count;
  }
  if (count > 0) w.norm_pearson_within_a = p_sum / count, w.norm_raw_cosine_within_a = c_sum / count;
}

// Columns of `e` (rows x cols, restricted to `rows_used`) centred and scaled to unit length;
// returned as cols x rows (one row per hidden dimension) so that correlations are one sgemm.
REFEREE_AVX2_CLONE std::vector<float> standardized_columns(const std::vector<float>& e, int64_t cols, const std::vector<int64_t>& rows_used) {
  const int64_t n = static_cast<int64_t>(rows_used.size());
  std::vector<float> out(static_cast<size_t>(cols * n));
  for (int64_t c = 0; c < cols; ++c) {
    double mean = 0;
    for (int64_t r = 0; r < n; ++r) mean += e[static_cast<size_t>(rows_used[static_cast<size_t>(r)] * cols + c)];
    mean /= static_cast<double>(n);
    double ss = 0;
    for (int64_t r = 0; r < n; ++r) {
      const double v = e[static_cast<size_t>(rows_used[static_cast<size_t>(r)] * cols + c)] - mean;
      out[static_cast<size_t>(c * n + r)] = static_cast<float>(v);
      ss += v * v;
    }
    const float inv = ss > 0 ? static_cast<float>(1.0 / std::sqrt(ss)) : 0.0f;
    for (int64_t r = 0; r < n; ++r) out[static_cast<size_t>(c * n + r)] *= inv;
  }
  return out;
}

void compare_awm(const Fingerprint& a, const Fingerprint& b, const SharedProbes& shared, ThreadPool& pool, WeightEvidence& w) {
  const size_t na = w.a_layers.size(), nb = w.b_layers.size();
  w.awm_map.assign(na * nb, kNaN);
  if (a.probe_embeddings.empty() || b.probe_embeddings.empty() || a.hidden_sketches.empty() || b.hidden_sketches.empty()) {
    w.missing.push_back("AWM: embedding rows or attention sketches missing on one side; the AWM map was not computed");
    return;
  }
  const int64_t n = shared.size(), da = a.hidden, db = b.hidden;
  const auto za = standardized_columns(a.probe_embeddings, da, shared.a_columns);
  const auto zb = standardized_columns(b.probe_embeddings, db, shared.b_columns);
  const Scores corr = correlations(za, da, zb, db, n);
  Scores magnitude(corr.size);
  for (size_t k = 0; k < corr.size; ++k) magnitude[k] = std::abs(corr[k]);
  const auto pairs = matched_pairs(magnitude.data(), da, db);
  if (pairs.size() < 4) return;
  double sum = 0;
  for (const auto& [i, j] : pairs) sum += magnitude[static_cast<size_t>(i * db + j)];
  w.awm_aligned_dims = static_cast<int64_t>(pairs.size());
  w.awm_alignment = sum / static_cast<double>(pairs.size());

  // Grams over the aligned dimensions, A's rows moved to B's order with their signs: one pool task
  // per attention sketch of either model (each is an n x n Gram, the bulk of AWM's cost).
  struct SketchJob {
    const HiddenSketch* sketch;
    bool is_a;
  };
  std::vector<SketchJob> jobs;
  for (const bool is_a : {true, false}) {  // (by flag, not address: a model may be compared with itself)
    const Fingerprint& f = is_a ? a : b;
    for (const auto& h : f.hidden_sketches) {
      if (h.hidden == f.hidden) jobs.push_back({&h, is_a});
    }
  }
  std::vector<std::optional<CenteredGram>> job_grams(jobs.size());
  pool.parallel_for(jobs.size(), [&](size_t k, unsigned) {
    const HiddenSketch& h = *jobs[k].sketch;
    const bool is_a = jobs[k].is_a;
    std::vector<float> x(pairs.size() * static_cast<size_t>(h.features));
    for (size_t m = 0; m < pairs.size(); ++m) {
      const auto [i, j] = pairs[m];
      const int64_t row = is_a ? i : j;
      const float sign = is_a && corr[static_cast<size_t>(i * db + j)] < 0 ? -1.0f : 1.0f;
      for (int64_t c = 0; c < h.features; ++c) x[m * static_cast<size_t>(h.features) + static_cast<size_t>(c)] = sign * h.values[static_cast<size_t>(row * h.features + c)];
    }
    job_grams[k] = make_gram(x.data(), static_cast<int64_t>(pairs.size()), h.features);
  });
  std::map<std::pair<int32_t, ResponseKind>, const CenteredGram*> ga, gb;
  for (size_t k = 0; k < jobs.size(); ++k) {
    (jobs[k].is_a ? ga : gb).emplace(std::make_pair(jobs[k].sketch->layer, jobs[k].sketch->kind), &*job_grams[k]);
  }
  // Per kind, every A layer against every B layer that has its sketch; then the map averages Q and K.
  std::vector<double> total(na * nb, 0.0);
  std::vector<int> parts(na * nb, 0);
  for (ResponseKind kind : {ResponseKind::kQuery, ResponseKind::kKey}) {
    std::vector<const CenteredGram*> xs, ys;
    std::vector<size_t> x_index, y_index;
    for (size_t i = 0; i < na; ++i) {
      if (auto it = ga.find({w.a_layers[i], kind}); it != ga.end()) xs.push_back(it->second), x_index.push_back(i);
    }
    for (size_t j = 0; j < nb; ++j) {
      if (auto it = gb.find({w.b_layers[j], kind}); it != gb.end()) ys.push_back(it->second), y_index.push_back(j);
    }
    const auto values = cka_matrix(xs, ys, &pool);
    for (size_t x = 0; x < xs.size(); ++x) {
      for (size_t y = 0; y < ys.size(); ++y) {
        const size_t k = x_index[x] * nb + y_index[y];
        total[k] += values[x * ys.size() + y];
        ++parts[k];
      }
    }
  }
  for (size_t k = 0; k < total.size(); ++k) {
    if (parts[k]) w.awm_map[k] = total[k] / parts[k];
  }
}

}  // namespace

WeightEvidence compare_weights(const Fingerprint& a, const Fingerprint& b, const WeightEvidenceOptions& o) {
  WeightEvidence w;
  w.probes_a = a.probe_count(), w.probes_b = b.probe_count();
  compare_copies(a, b, o, w);
  for (const auto& n : a.notes) w.missing.push_back(fmt::format("{}: {}", a.name, n));
  for (const auto& n : b.notes) w.missing.push_back(fmt::format("{}: {}", b.name, n));

  const SharedProbes shared = shared_probes(a, b);
  w.shared_probes = shared.size();
  const auto la = by_layer(a), lb = by_layer(b);
  if (la.empty() || lb.empty()) {
    w.missing.push_back("probe responses are missing on one side: the neuron tests and the layer map were not computed");
    return w;
  }
  if (shared.size() < o.min_shared_probes) {
    w.missing.push_back(fmt::format(
        "only {} probe tokens are shared (at least {} needed): the vocabularies barely overlap, so the "
        "neuron tests and the layer map were not computed", shared.size(), o.min_shared_probes));
    return w;
  }
  w.computable = true;

  // The layer x layer map.
  for (const auto& [l, _] : la) w.a_layers.push_back(l);
  for (const auto& [l, _] : lb) w.b_layers.push_back(l);
  const size_t na = w.a_layers.size(), nb = w.b_layers.size();
  // Every pool task below is independent; results are gathered by index, so nothing depends on
  // the thread count. BLAS runs single-threaded inside the pool's tasks: its own threads would
  // compete with the pool's for the same cores (and spin in sched_yield between calls).
  ThreadPool pool(o.threads);
  openblas_set_num_threads(1);
  // The Gram matrices of every layer's attention (Q and K) and MLP responses, both models.
  struct GramSource {
    const LayerResponses* layer;
    const Fingerprint* model;
    const std::vector<int64_t>* columns;
    bool attention;
  };
  std::vector<GramSource> sources;
  for (const bool attention : {true, false}) {
    for (const auto& [l, r] : la) sources.push_back({&r, &a, &shared.a_columns, attention});
    for (const auto& [l, r] : lb) sources.push_back({&r, &b, &shared.b_columns, attention});
  }
  std::vector<std::optional<CenteredGram>> all_grams(sources.size());
  pool.parallel_for(sources.size(), [&](size_t k, unsigned) {
    const GramSource& src = sources[k];
    std::vector<const Responses*> parts;
    if (src.attention) {
      if (src.layer->query) parts.push_back(src.layer->query);
      if (src.layer->key) parts.push_back(src.layer->key);
    } else {
      parts = mlp_parts(*src.layer);
    }
    all_grams[k] = gram_of(parts, src.model->probe_count(), *src.columns);
  });
  // In `sources` order: attention of A's layers, then B's, then the MLPs likewise.
  const auto slice = [&](size_t first, size_t count) {
    return std::vector<std::optional<CenteredGram>>(std::make_move_iterator(all_grams.begin() + static_cast<std::ptrdiff_t>(first)),
                                                    std::make_move_iterator(all_grams.begin() + static_cast<std::ptrdiff_t>(first + count)));
  };
  const auto att_a = slice(0, na), att_b = slice(na, nb);
  const auto mlp_a = slice(na + nb, na), mlp_b = slice(2 * na + nb, nb);
  w.attention_map.assign(na * nb, kNaN);
  w.mlp_map.assign(na * nb, kNaN);
  w.combined_map.assign(na * nb, kNaN);
  // One map per kind, over the layers whose Grams exist on each side.
  const auto fill_map = [&](const std::vector<std::optional<CenteredGram>>& grams_a,
                            const std::vector<std::optional<CenteredGram>>& grams_b, std::vector<double>& map) {
    std::vector<const CenteredGram*> xs, ys;
    std::vector<size_t> x_index, y_index;
    for (size_t i = 0; i < na; ++i) {
      if (grams_a[i]) xs.push_back(&*grams_a[i]), x_index.push_back(i);
    }
    for (size_t j = 0; j < nb; ++j) {
      if (grams_b[j]) ys.push_back(&*grams_b[j]), y_index.push_back(j);
    }
    const auto values = cka_matrix(xs, ys, &pool);
    for (size_t x = 0; x < xs.size(); ++x) {
      for (size_t y = 0; y < ys.size(); ++y) map[x_index[x] * nb + y_index[y]] = values[x * ys.size() + y];
    }
  };
  fill_map(att_a, att_b, w.attention_map);
  fill_map(mlp_a, mlp_b, w.mlp_map);
  for (size_t k = 0; k < na * nb; ++k) {
    double sum = 0;
    int parts = 0;
    if (!std::isnan(w.attention_map[k])) sum += w.attention_map[k], ++parts;
    if (!std::isnan(w.mlp_map[k])) sum += w.mlp_map[k], ++parts;
    if (parts) w.combined_map[k] = sum / parts;
  }
  // Layers are paired by the map, and by copies where there are any: a layer copied into a model
  // whose embedding is its own (a borrowed layer) sees other inputs, so its responses differ from
  // the donor's although its weights are the donor's.
  std::vector<double> pairing = w.combined_map;
  {
    std::map<std::pair<int32_t, int32_t>, int> copied;  // (A layer, B layer) -> matrices
    std::map<int32_t, int> b_matrices;
    for (const auto& t : b.tensors) {
      if (t.shape.size() >= 2 && t.role.layer >= 0) ++b_matrices[t.role.layer];
    }
    for (const auto& c : w.copies) {
      if (c.a_role.layer >= 0 && c.b_role.layer >= 0) ++copied[{c.a_role.layer, c.b_role.layer}];
    }
    for (size_t i = 0; i < na; ++i) {
      for (size_t j = 0; j < nb; ++j) {
        auto it = copied.find({w.a_layers[i], w.b_layers[j]});
        if (it == copied.end()) continue;
        const double fraction = static_cast<double>(it->second) / std::max(1, b_matrices[w.b_layers[j]]);
        pairing[i * nb + j] = (std::isnan(pairing[i * nb + j]) ? 0.0 : pairing[i * nb + j]) + 2.0 * fraction;
      }
    }
  }
  for (size_t j = 0; j < nb; ++j) {
    LayerMatch m;
    m.b_layer = w.b_layers[j];
    double best = -2, second = -2;
    for (size_t i = 0; i < na; ++i) {
      const double v = pairing[i * nb + j];
      if (std::isnan(v)) continue;
      if (v > best) second = best, best = v, m.best_a_layer = w.a_layers[i];
      else if (v > second) second = v;
    }
    if (m.best_a_layer < 0) continue;
    const size_t bi = static_cast<size_t>(std::find(w.a_layers.begin(), w.a_layers.end(), m.best_a_layer) - w.a_layers.begin());
    m.best = w.combined_map[bi * nb + j];  // the map's value; copies only decide ties of meaning
    m.margin = second > -2 ? best - second : 0.0;
    w.layer_matches.push_back(m);
  }

  compare_awm(a, b, shared, pool, w);

  // One-to-one layer pairs for the tests (each A layer used once, so the per-layer p-values are
  // independent under the null and Fisher's method applies). The pairing reads only the CKA map,
  // which ignores the order of neurons, so it does not disturb the tests' null distribution.
  std::vector<float> score(na * nb);
  for (size_t k = 0; k < score.size(); ++k) score[k] = std::isnan(pairing[k]) ? -1.0f : static_cast<float>(pairing[k]);
  const auto layer_pairs = matched_pairs(score.data(), static_cast<int64_t>(na), static_cast<int64_t>(nb));
  // Each layer pair's tests are independent of the others': one task per pair on the pool, the
  // results gathered in pair order so the report does not depend on the thread count.
  struct PairOutcome {
    std::vector<NeuronTest> tests;
    std::optional<RouterTest> router;
  };
  std::vector<PairOutcome> outcomes(layer_pairs.size());
  pool.parallel_for(layer_pairs.size(), [&](size_t pair_index, unsigned) {
    const int64_t i = layer_pairs[pair_index].first, j = layer_pairs[pair_index].second;
    PairOutcome& outcome = outcomes[pair_index];
    const LayerResponses& ra = la.at(w.a_layers[static_cast<size_t>(i)]);
    const LayerResponses& rb = lb.at(w.b_layers[static_cast<size_t>(j)]);
    auto record = [&](NeuronTest t, int32_t ea, int32_t eb) {
      t.a_layer = w.a_layers[static_cast<size_t>(i)], t.b_layer = w.b_layers[static_cast<size_t>(j)];
      t.a_expert = ea, t.b_expert = eb;
      if (t.matched >= 3) outcome.tests.push_back(t);
    };
    if (ra.gate && ra.up && rb.gate && rb.up) {
      record(neuron_test(*ra.gate, *ra.up, *rb.gate, *rb.up, a.probe_count(), b.probe_count(), shared, o.test_units), -1, -1);
    }
    // Mixture of experts: pair experts one-to-one by the CKA of their responses (order-blind, so
    // again harmless to the null), then test each pair's neurons.
    std::vector<std::pair<int32_t, std::optional<CenteredGram>>> ea, eb;
    for (const auto& [e, gu] : ra.experts) {
      if (gu.first && gu.second) ea.emplace_back(e, gram_of({gu.first, gu.second}, a.probe_count(), shared.a_columns));
    }
    for (const auto& [e, gu] : rb.experts) {
      if (gu.first && gu.second) eb.emplace_back(e, gram_of({gu.first, gu.second}, b.probe_count(), shared.b_columns));
    }
    // A dense MLP against a mixture of experts (upcycling copies a dense MLP into experts): the
    // dense MLP against the one expert whose responses are most like it (order-blind choice).
    auto dense_vs_experts = [&](const LayerResponses& dense, const Fingerprint& fd, const std::vector<int64_t>& dense_cols,
                                const std::vector<std::pair<int32_t, std::optional<CenteredGram>>>& experts,
                                const LayerResponses& moe, const Fingerprint& fm,
                                bool dense_is_a) {
      const auto g = gram_of({dense.gate, dense.up}, fd.probe_count(), dense_cols);
      if (!g) return;
      int32_t best_expert = -1;
      double best = -2;
      for (const auto& [e, eg] : experts) {
        if (!eg) continue;
        const double c = cka(*g, *eg);
        if (c > best) best = c, best_expert = e;
      }
      if (best_expert < 0) return;
      const auto& gu = moe.experts.at(best_expert);
      if (dense_is_a) {
        record(neuron_test(*dense.gate, *dense.up, *gu.first, *gu.second, fd.probe_count(), fm.probe_count(), shared, o.test_units), -1, best_expert);
      } else {
        record(neuron_test(*gu.first, *gu.second, *dense.gate, *dense.up, fm.probe_count(), fd.probe_count(), shared, o.test_units), best_expert, -1);
      }
    };
    if (ra.gate && ra.up && !(rb.gate && rb.up) && !eb.empty()) {
      dense_vs_experts(ra, a, shared.a_columns, eb, rb, b, true);
    } else if (rb.gate && rb.up && !(ra.gate && ra.up) && !ea.empty()) {
      dense_vs_experts(rb, b, shared.b_columns, ea, ra, a, false);
    }
    if (ra.router && rb.router && ra.router->units >= 2 && rb.router->units >= 2) {
      const auto za = standardized_rows(*ra.router, a.probe_count(), shared.a_columns);
      const auto zb = standardized_rows(*rb.router, b.probe_count(), shared.b_columns);
      const auto c = correlations(za, ra.router->units, zb, rb.router->units, shared.size());
      const auto experts = matched_pairs(c.data(), ra.router->units, rb.router->units);
      RouterTest t;
      t.a_layer = w.a_layers[static_cast<size_t>(i)], t.b_layer = w.b_layers[static_cast<size_t>(j)];
      t.matched = static_cast<int64_t>(experts.size());
      t.rho_identity = spearman_of_pairs(experts);
      t.log_p_identity = log_p_spearman_upper(t.rho_identity, t.matched);
      double total = 0;
      for (const auto& [x, y] : experts) total += c[static_cast<size_t>(x * rb.router->units + y)];
      t.mean_matched_correlation = experts.empty() ? 0.0 : total / static_cast<double>(experts.size());
      outcome.router = t;
    }
    if (!ea.empty() && !eb.empty()) {
      std::vector<float> s(ea.size() * eb.size(), -1.0f);
      for (size_t x = 0; x < ea.size(); ++x) {
        for (size_t y = 0; y < eb.size(); ++y) {
          if (ea[x].second && eb[y].second) s[x * eb.size() + y] = static_cast<float>(cka(*ea[x].second, *eb[y].second));
        }
      }
      for (const auto& [x, y] : matched_pairs(s.data(), static_cast<int64_t>(ea.size()), static_cast<int64_t>(eb.size()))) {
        const auto& ga = ra.experts.at(ea[static_cast<size_t>(x)].first);
        const auto& gb = rb.experts.at(eb[static_cast<size_t>(y)].first);
        record(neuron_test(*ga.first, *ga.second, *gb.first, *gb.second, a.probe_count(), b.probe_count(), shared, o.test_units),
               ea[static_cast<size_t>(x)].first, eb[static_cast<size_t>(y)].first);
      }
    }
  });
  std::vector<double> log_p_identity, log_p_gate_up;
  for (auto& outcome : outcomes) {
    for (const auto& t : outcome.tests) {
      log_p_identity.push_back(t.log_p_identity);
      log_p_gate_up.push_back(t.log_p_gate_up);
      w.neuron_tests.push_back(t);
    }
    if (outcome.router) w.router_tests.push_back(*outcome.router);
  }
  w.tests_combined = static_cast<int64_t>(log_p_identity.size());
  if (!log_p_identity.empty()) {
    w.log_p_identity = fisher_combine_log(log_p_identity);
    w.log_p_gate_up = fisher_combine_log(log_p_gate_up);
  } else {
    w.missing.push_back("no MLP of A could be paired with an MLP of B (gate and up responses needed): the neuron tests were not computed");
  }
  compare_norms(a, b, w);
  return w;
}

}  // namespace referee::trace
