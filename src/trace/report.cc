#include "trace/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>

#include "util/version.h"

namespace referee::trace {
namespace {

using ordered_json = nlohmann::ordered_json;

// JSON has no infinities or NaN: a p-value below double range is reported through log10_p, and a
// map cell that could not be computed is null.
ordered_json number(double x) { return std::isfinite(x) ? ordered_json(x) : ordered_json(nullptr); }
ordered_json p_value(double log10_p) {
  if (!std::isfinite(log10_p)) return 0.0;
  return log10_p < -300 ? ordered_json(0.0) : ordered_json(std::pow(10.0, log10_p));
}

ordered_json matrix(const std::vector<double>& m, size_t rows, size_t cols) {
  ordered_json out = ordered_json::array();
  for (size_t i = 0; i < rows; ++i) {
    ordered_json row = ordered_json::array();
    for (size_t j = 0; j < cols; ++j) row.push_back(number(m[i * cols + j]));
    out.push_back(std::move(row));
  }
  return out;
}

ordered_json weights_json(const WeightEvidence& w) {
  ordered_json j;
  j["computable"] = w.computable;
  j["probes"] = {{"a", w.probes_a}, {"b", w.probes_b}, {"shared", w.shared_probes}};
  ordered_json matches = ordered_json::array();
  for (const auto& c : w.copies) {
    matches.push_back({{"a", c.a_name}, {"b", c.b_name}, {"identical", c.identical},
                       {"near_identical", c.near_identical}, {"relative_distance", number(c.relative_distance)},
                       {"cosine", number(c.cosine)}});
  }
  j["copies"] = {{"b_matrices", w.b_matrices}, {"identical", w.b_identical},
                 {"near_identical", w.b_near_identical}, {"similar", w.b_similar}, {"matches", matches}};
  ordered_json layers = ordered_json::array();
  for (const auto& t : w.neuron_tests) {
    layers.push_back({{"a_layer", t.a_layer}, {"b_layer", t.b_layer}, {"a_expert", t.a_expert},
                      {"b_expert", t.b_expert}, {"matched", t.matched},
                      {"rho_identity", number(t.rho_identity)}, {"log10_p_identity", number(t.log_p_identity / std::numbers::ln10)},
                      {"rho_gate_up", number(t.rho_gate_up)}, {"log10_p_gate_up", number(t.log_p_gate_up / std::numbers::ln10)},
                      {"mean_matched_correlation", number(t.mean_matched_correlation)}});
  }
  ordered_json routers = ordered_json::array();
  for (const auto& t : w.router_tests) {
    routers.push_back({{"a_layer", t.a_layer}, {"b_layer", t.b_layer}, {"matched", t.matched},
                       {"rho_identity", number(t.rho_identity)}, {"log10_p_identity", number(t.log_p_identity / std::numbers::ln10)},
                       {"mean_matched_correlation", number(t.mean_matched_correlation)}});
  }
  j["router_tests"] = routers;
  j["neuron_tests"] = {{"tests", w.tests_combined},
                       {"log10_p_identity", number(w.log_p_identity / std::numbers::ln10)},
                       {"log10_p_gate_up", number(w.log_p_gate_up / std::numbers::ln10)},
                       {"layers", layers}};
  ordered_json best = ordered_json::array();
  for (const auto& m : w.layer_matches) {
    best.push_back({{"b_layer", m.b_layer}, {"best_a_layer", m.best_a_layer}, {"value", number(m.best)}, {"margin", number(m.margin)}});
  }
  const size_t na = w.a_layers.size(), nb = w.b_layers.size();
  j["layer_map"] = {{"statistic", "unbiased linear CKA of probe responses"},
                    {"a_layers", w.a_layers}, {"b_layers", w.b_layers},
                    {"attention", matrix(w.attention_map, na, nb)}, {"mlp", matrix(w.mlp_map, na, nb)},
                    {"combined", matrix(w.combined_map, na, nb)}, {"best", best}};
  j["awm"] = {{"statistic", "unbiased linear CKA of Q and K weights over hidden dimensions aligned through shared-token embeddings (Zeng et al., ICLR 2026)"},
              {"aligned_dimensions", w.awm_aligned_dims}, {"alignment", number(w.awm_alignment)},
              {"map", w.awm_map.empty() ? ordered_json(nullptr) : matrix(w.awm_map, na, nb)}};
  ordered_json norms = ordered_json::array();
  for (const auto& n : w.norms) {
    norms.push_back({{"a_layer", n.a_layer}, {"b_layer", n.b_layer}, {"role", n.role},
                     {"pearson", number(n.pearson)}, {"raw_cosine", number(n.raw_cosine)}});
  }
  j["norms"] = {{"low_evidence", true},
                {"within_a", {{"pearson", number(w.norm_pearson_within_a)}, {"raw_cosine", number(w.norm_raw_cosine_within_a)}}},
                {"pairs", norms}};
  j["missing"] = w.missing;
  return j;
}

ordered_json verdict_json(const PairVerdict& v) {
  ordered_json modules = ordered_json::array();
  for (const auto& m : v.modules) {
    modules.push_back({{"module", m.module}, {"relation", relation_name(m.relation)}, {"evidence", m.evidence}});
  }
  return {{"relation", relation_name(v.relation)}, {"p", p_value(v.log10_p)}, {"log10_p", number(v.log10_p)},
          {"decided_by", v.decided_by}, {"summary", v.summary}, {"reasons", v.reasons},
          {"missing", v.missing}, {"borrowed", v.borrowed}, {"modules", modules}};
}

std::string p_short(double log10_p) { return p_value_text(log10_p); }

}  // namespace

ordered_json report_json(const TraceReport& r) {
  ordered_json j;
  j["schema"] = "referee.trace/1";
  j["referee"] = {{"version", kVersion}, {"git", kGitHash}};
  j["mode"] = r.mode;
  j["comparisons"] = r.comparisons;
  ordered_json models = ordered_json::array();
  for (const auto& m : r.models) {
    models.push_back({{"name", m.name}, {"source", m.source}, {"format", m.format},
                      {"architecture", {{"architecture", m.arch.architecture}, {"layers", m.arch.layers},
                                        {"hidden", m.arch.hidden}, {"ffn", m.arch.ffn}, {"vocab", m.arch.vocab},
                                        {"heads", m.arch.heads}, {"kv_heads", m.arch.kv_heads},
                                        {"experts", m.arch.experts}, {"parameters", m.arch.parameters}}},
                      {"has_tokenizer", m.has_tokenizer}, {"has_weights", m.has_weights}, {"notes", m.notes}});
  }
  j["models"] = models;
  ordered_json pairs = ordered_json::array();
  for (const auto& p : r.pairs) {
    pairs.push_back({{"a", r.models[p.a].name}, {"b", r.models[p.b].name},
                     {"verdict", verdict_json(p.verdict)},
                     {"tokenizer", p.tokenizer ? tokenizer_comparison_json(*p.tokenizer) : ordered_json(nullptr)},
                     {"weights", weights_json(p.weights)}});
  }
  j["pairs"] = pairs;
  return j;
}

std::string report_text(const TraceReport& r) {
  std::string out;
  if (r.mode == "library") {
    out += fmt::format("candidate {} against {} reference fingerprints (p-values Bonferroni-corrected for {} comparisons)\n\n",
                       r.models[0].name, r.models.size() - 1, r.comparisons);
    out += fmt::format("  {:<4} {:<28} {:<20} {}\n", "rank", "reference", "verdict", "evidence");
    int rank = 1;
    for (const auto& p : r.pairs) {
      out += fmt::format("  {:<4} {:<28} {:<20} {} ({})\n", rank++, r.models[p.a].name,
                         relation_name(p.verdict.relation), p_short(p.verdict.log10_p), p.verdict.decided_by);
    }
    out += "\n";
  }
  for (const auto& p : r.pairs) {
    const auto& A = r.models[p.a];
    const auto& B = r.models[p.b];
    const auto& v = p.verdict;
    out += fmt::format("== {}  vs  {}\n", A.name, B.name);
    out += fmt::format("verdict     {}  ({}; {})\n", relation_name(v.relation), p_short(v.log10_p), v.decided_by);
    out += fmt::format("            {}\n", v.summary);
    for (const auto& reason : v.reasons) out += fmt::format("  because   {}\n", reason);
    if (!v.borrowed.empty()) out += fmt::format("  borrowed  {}\n", fmt::join(v.borrowed, ", "));
    if (p.tokenizer) out += tokenizer_comparison_text(*p.tokenizer);
    const auto& w = p.weights;
    if (w.computable) {
      out += fmt::format("probes      {} shared of {} / {}\n", w.shared_probes, w.probes_a, w.probes_b);
      out += "layers      B layer <- best A layer (CKA, margin) | neuron order rho, p | gate/up rho\n";
      for (const auto& m : w.layer_matches) {
        std::string tests;
        for (const auto& t : w.neuron_tests) {
          if (t.b_layer != m.b_layer) continue;
          tests += fmt::format(" | A{}{}: {:.3f}, {} | {:.3f}", t.a_layer,
                               t.a_expert >= 0 ? fmt::format("e{}->e{}", t.a_expert, t.b_expert) : "",
                               t.rho_identity, p_short(t.log_p_identity / std::numbers::ln10), t.rho_gate_up);
        }
        out += fmt::format("            {:>3} <- {:>3}  ({:.3f}, {:+.3f}){}\n", m.b_layer, m.best_a_layer, m.best, m.margin, tests);
      }
      if (!w.awm_map.empty() && w.awm_aligned_dims > 0) {
        // AWM's own reading: the diagonal of the map under the best layer pairing shown above.
        std::string cells;
        for (const auto& m : w.layer_matches) {
          const auto ia = std::find(w.a_layers.begin(), w.a_layers.end(), m.best_a_layer) - w.a_layers.begin();
          const auto jb = std::find(w.b_layers.begin(), w.b_layers.end(), m.b_layer) - w.b_layers.begin();
          const double v = w.awm_map[static_cast<size_t>(ia) * w.b_layers.size() + static_cast<size_t>(jb)];
          cells += std::isfinite(v) ? fmt::format(" {:.3f}", v) : " n/a";
        }
        out += fmt::format("awm         hidden dims aligned through embeddings: {} (mean |r| {:.3f}); Q/K CKA at those layers:{}\n",
                           w.awm_aligned_dims, w.awm_alignment, cells);
      }
    }
    for (const auto& t : w.router_tests) {
      out += fmt::format("router      layer {} <- {}: {} experts matched (mean r {:.2f}), expert order rho {:.3f}, {}\n",
                         t.b_layer, t.a_layer, t.matched, t.mean_matched_correlation, t.rho_identity, p_short(t.log_p_identity / std::numbers::ln10));
    }
    out += fmt::format("copies      {} of {} matrices identical, {} equal up to rounding, {} strongly aligned\n",
                       w.b_identical, w.b_matrices, w.b_near_identical, w.b_similar);
    if (!w.norms.empty()) {
      double pearson = 0, cosine = 0;
      for (const auto& n : w.norms) pearson += n.pearson, cosine += n.raw_cosine;
      pearson /= static_cast<double>(w.norms.size()), cosine /= static_cast<double>(w.norms.size());
      out += fmt::format("norms       low evidence: Pearson {:.3f} between matched layers (within {}: {:.3f}); raw cosine {:.3f} "
                         "(within {}: {:.3f}) — raw cosine of gains that start at 1 is near 1 for any two models\n",
                         pearson, A.name, w.norm_pearson_within_a, cosine, A.name, w.norm_raw_cosine_within_a);
    }
    for (const auto& m : v.modules) out += fmt::format("  module    {:<24} {:<20} {}\n", m.module, relation_name(m.relation), m.evidence);
    for (const auto& m : v.missing) out += fmt::format("  missing   {}\n", m);
    out += "\n";
  }
  return out;
}

}  // namespace referee::trace
