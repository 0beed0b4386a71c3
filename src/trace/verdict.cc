#include "trace/verdict.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numbers>
#include <set>

namespace referee::trace {
namespace {

double adjusted_log10(double log_p, int64_t comparisons) {
  const double l = log_p / std::numbers::ln10 + std::log10(static_cast<double>(std::max<int64_t>(comparisons, 1)));
  return std::min(l, 0.0);
}

}  // namespace

std::string p_value_text(double log10_p) {
  log10_p = std::min(log10_p, 0.0);  // a Bonferroni-corrected p is capped at 1
  if (!std::isfinite(log10_p)) return "p = 0";
  if (log10_p > -3) return fmt::format("p = {:.3g}", std::pow(10.0, log10_p));
  const double exponent = std::floor(log10_p);
  return fmt::format("p = {:.1f}e{}", std::pow(10.0, log10_p - exponent), static_cast<int>(exponent));
}

namespace {

std::string p_text(double log10_p) { return p_value_text(log10_p); }

// Where a tensor of B belongs, for per-module verdicts: a language-model layer, the embedding or
// output head, or a whole non-language module (vision, audio, projector).
std::string module_key(const io::TensorRole& r) {
  if (r.module == io::Module::kLanguage) {
    if (r.layer >= 0) return fmt::format("layer {}", r.layer);
    if (r.role == io::Role::kEmbedding) return "embedding";
    if (r.role == io::Role::kLmHead) return "output head";
    return "language model (other)";
  }
  return std::string(io::module_name(r.module));
}

std::string tensor_prefix(const std::string& name, const io::TensorRole& r) {
  // "model.layers.0.self_attn.q_proj.weight" -> "model.layers.0."
  if (r.layer >= 0) {
    const std::string needle = fmt::format(".{}.", r.layer);
    const size_t at = name.find(needle);
    if (at != std::string::npos) return name.substr(0, at + needle.size());
  }
  return name;
}

// Tokenizer evidence as a module verdict. A shared or extended tokenizer is derived as a
// tokenizer; it says nothing on its own about the weights.
Relation tokenizer_module_relation(const TokenizerComparison& t) {
  switch (t.relation) {
    case TokenizerRelation::kIdentical:
    case TokenizerRelation::kExtension:
    case TokenizerRelation::kSameLineage: return Relation::kDerived;
    case TokenizerRelation::kUnrelated: return Relation::kIndependent;
    case TokenizerRelation::kInconclusive: return Relation::kInconclusive;
  }
  return Relation::kInconclusive;
}

std::string tokenizer_explanation(const TokenizerComparison& t) {
  return fmt::format("{}: {}", tokenizer_relation_name(t.relation), t.explanation);
}

}  // namespace

std::string_view relation_name(Relation r) {
  switch (r) {
    case Relation::kIndependent: return "independent";
    case Relation::kDerived: return "derived";
    case Relation::kUpscaled: return "up-scaled";
    case Relation::kPruned: return "pruned";
    case Relation::kPartiallyBorrowed: return "partially borrowed";
    case Relation::kInconclusive: return "inconclusive";
  }
  return "?";
}

PairVerdict decide(const Fingerprint& a, const Fingerprint& b, const WeightEvidence& w,
                   const std::optional<TokenizerComparison>& tokenizer, const VerdictOptions& o) {
  PairVerdict v;
  v.missing = w.missing;
  const std::string A = a.name, B = b.name;

  // --- copies, grouped by B module -------------------------------------------------------------
  std::map<std::string, int64_t> matrices_by_module, copied_by_module, similar_by_module;
  std::map<std::string, std::set<std::string>> copied_prefixes;
  for (const auto& t : b.tensors) {
    if (t.shape.size() >= 2) ++matrices_by_module[module_key(t.role)];
  }
  for (const auto& c : w.copies) {
    const std::string key = module_key(c.b_role);
    copied_prefixes[key].insert(tensor_prefix(c.b_name, c.b_role));
    if (c.identical || c.near_identical) {
      ++copied_by_module[key];
    } else {
      ++similar_by_module[key];
    }
  }
  const int64_t copied = w.b_identical + w.b_near_identical;
  const double copied_fraction = w.b_matrices ? static_cast<double>(copied) / static_cast<double>(w.b_matrices) : 0.0;

  // --- the neuron tests --------------------------------------------------------------------------
  const int64_t tests = static_cast<int64_t>(w.neuron_tests.size());
  // Two tests are read (the exact order test and the approximate gate/up test), so each is
  // Bonferroni-corrected for two on top of the number of pairs judged together.
  const double log10_identity = adjusted_log10(w.log_p_identity, 2 * o.comparisons);
  const double log10_gate_up = adjusted_log10(w.log_p_gate_up, 2 * o.comparisons);
  std::set<int32_t> significant_b_layers;
  std::map<int32_t, std::string> layer_evidence;
  for (const auto& t : w.neuron_tests) {
    const double bonf = std::log10(static_cast<double>(std::max<int64_t>(tests, 1)));
    const double l_id = t.log_p_identity / std::numbers::ln10 + bonf, l_gu = t.log_p_gate_up / std::numbers::ln10 + bonf;
    const bool sig = l_id < std::log10(o.layer_p) || l_gu < std::log10(o.robust_layer_p);
    if (sig) significant_b_layers.insert(t.b_layer);
    layer_evidence[t.b_layer] = fmt::format(
        "matched to {}'s layer {}{}: neuron order rho = {:.3f} ({}), gate/up agreement rho = {:.3f}, "
        "matched neurons' mean r = {:.2f}",
        A, t.a_layer, t.a_expert >= 0 ? fmt::format(" (expert {} to {})", t.a_expert, t.b_expert) : "",
        t.rho_identity, p_text(l_id), t.rho_gate_up, t.mean_matched_correlation);
  }
  std::set<int32_t> tested_b_layers;
  for (const auto& t : w.neuron_tests) tested_b_layers.insert(t.b_layer);
  const double significant_fraction =
      tested_b_layers.empty() ? 0.0 : static_cast<double>(significant_b_layers.size()) / static_cast<double>(tested_b_layers.size());
  const bool identity_strong = tests > 0 && log10_identity < std::log10(o.derived_p);
  const bool robust_strong = tests > 0 && log10_gate_up < std::log10(o.robust_p);

  // --- structure: repeated or missing layers -----------------------------------------------------
  std::map<int32_t, int> b_layers_per_a_layer;
  for (const auto& m : w.layer_matches) ++b_layers_per_a_layer[m.best_a_layer];
  int repeated = 0;
  for (const auto& [al, n] : b_layers_per_a_layer) repeated += n > 1 ? 1 : 0;

  // --- the decision ------------------------------------------------------------------------------
  const bool most_layers = significant_fraction >= 0.5;
  if (copied_fraction >= 0.9) {
    v.relation = Relation::kDerived;
    v.decided_by = "copies";
    v.log10_p = -std::numeric_limits<double>::infinity();
    v.reasons.push_back(fmt::format("{} of {}'s {} weight matrices are copies of {}'s ({} byte-identical, {} equal up to rounding)",
                                    copied, B, w.b_matrices, A, w.b_identical, w.b_near_identical));
  } else if (tests > 0 && most_layers && (identity_strong || robust_strong)) {
    v.decided_by = identity_strong ? "neuron-order test (exact)" : "gate/up agreement test (approximate)";
    v.log10_p = identity_strong ? log10_identity : log10_gate_up;
    const int64_t la = static_cast<int64_t>(w.a_layers.size()), lb = static_cast<int64_t>(w.b_layers.size());
    if (lb > la && repeated > 0) {
      v.relation = Relation::kUpscaled;
      v.reasons.push_back(fmt::format("{} has {} layers to {}'s {}; {} of {}'s layers are the best match of more than one of {}'s layers (repeated layers, as depth up-scaling makes)",
                                      B, lb, A, la, repeated, A, B));
    } else if (la > lb && repeated == 0) {
      v.relation = Relation::kPruned;
      v.reasons.push_back(fmt::format("{} keeps {} of {}'s {} layers", B, lb, A, la));
    } else if (b.arch.hidden > 0 && a.arch.hidden > 0 && b.arch.hidden != a.arch.hidden) {
      v.relation = Relation::kPruned;
      v.reasons.push_back(fmt::format("hidden size {} vs {}: widths were cut", a.arch.hidden, b.arch.hidden));
    } else {
      v.relation = Relation::kDerived;
    }
    v.reasons.push_back(fmt::format(
        "{} of {} matched layers share their MLP neurons with {}'s (combined over {} tests: neuron-order {}, gate/up agreement {}); "
        "independently initialised models cannot share neurons",
        significant_b_layers.size(), tested_b_layers.size(), A, tests, p_text(log10_identity), p_text(log10_gate_up)));
    if (!identity_strong) {
      v.reasons.push_back("the neurons were permuted (order test not significant) but gate and up projections still agree on the same matching: an obfuscated copy");
    }
  } else if (!significant_b_layers.empty() || copied > 0 || w.b_similar > 0) {
    v.relation = Relation::kPartiallyBorrowed;
    v.decided_by = !significant_b_layers.empty() ? "per-layer neuron tests" : "copies";
    // Byte-identical or rounding-equal matrices of a thousand values or more do not arise by
    // chance: the borrowed part's p-value is 0 for all practical purposes.
    v.log10_p = copied > 0 ? -std::numeric_limits<double>::infinity()
                           : (tests > 0 ? std::min(log10_identity, log10_gate_up) : 0.0);
    for (const auto& [key, prefixes] : copied_prefixes) {
      for (const auto& p : prefixes) v.borrowed.push_back(p);
    }
    for (int32_t l : significant_b_layers) {
      const std::string key = fmt::format("layer {}", l);
      if (!copied_prefixes.count(key)) v.borrowed.push_back(key + " (neuron order shared)");
    }
    v.reasons.push_back(fmt::format("{} of {}'s {} weight matrices are copies of {}'s and {} more are modified copies in the same basis; {} of {} tested layers share neuron order",
                                    copied, B, w.b_matrices, A, w.b_similar, significant_b_layers.size(), tested_b_layers.size()));
  } else if (tests > 0 && log10_identity > std::log10(o.independent_p) && log10_gate_up > std::log10(o.independent_p)) {
    v.relation = Relation::kIndependent;
    v.decided_by = "neuron-order test (exact)";
    v.log10_p = log10_identity;
    v.reasons.push_back(fmt::format(
        "no layer's MLP neurons keep {}'s order ({} over {} tests) and the gate/up matchings do not agree ({}); no weight matrix is a copy",
        A, p_text(log10_identity), tests, p_text(log10_gate_up)));
  } else {
    v.relation = Relation::kInconclusive;
    v.decided_by = tests > 0 ? "neuron-order test (between levels)" : "no weight test could be run";
    v.log10_p = tests > 0 ? std::min(log10_identity, log10_gate_up) : 0.0;
    if (tests > 0) {
      v.reasons.push_back(fmt::format("combined {} lies between the derived level ({}) and the independent level ({})",
                                      p_text(std::min(log10_identity, log10_gate_up)), o.derived_p, o.independent_p));
    }
  }
  if (w.b_similar > 0 && v.relation != Relation::kDerived) {
    v.reasons.push_back(fmt::format("{} of {}'s matrices are strongly aligned with {}'s in the same basis (sketch cosine >= 0.5), as in a fine-tuned copy",
                                    w.b_similar, B, A));
  }

  // --- per module ----------------------------------------------------------------------------------
  const bool language_related = v.relation == Relation::kDerived || v.relation == Relation::kUpscaled ||
                                v.relation == Relation::kPruned;
  for (const auto& [key, total] : matrices_by_module) {
    ModuleVerdict m;
    m.module = key;
    const int64_t c = copied_by_module.count(key) ? copied_by_module[key] : 0;
    const int64_t s = similar_by_module.count(key) ? similar_by_module[key] : 0;
    const bool is_layer = key.rfind("layer ", 0) == 0;
    const int32_t layer = is_layer ? std::stoi(key.substr(6)) : -1;
    std::string ev = fmt::format("{} of {} matrices copied", c, total);
    if (s > 0) ev += fmt::format(", {} strongly aligned (fine-tuned copy)", s);
    if (is_layer && layer_evidence.count(layer)) ev += "; " + layer_evidence[layer];
    if (c * 10 >= total * 9 && total > 0) {
      m.relation = Relation::kDerived;
    } else if (is_layer && significant_b_layers.count(layer)) {
      m.relation = Relation::kDerived;
    } else if (c > 0 || s * 2 >= total) {
      m.relation = s * 2 >= total && c == 0 ? Relation::kDerived : Relation::kPartiallyBorrowed;
    } else if (language_related && is_layer) {
      m.relation = Relation::kDerived;
    } else if (is_layer && layer_evidence.count(layer)) {
      m.relation = Relation::kIndependent;
    } else if (!is_layer && key != "embedding" && key != "output head" && key != "language model (other)") {
      // Non-language modules are compared by copies only.
      m.relation = Relation::kInconclusive;
      ev += " (only copies, exact or fine-tuned in the same basis, are tested for this module)";
    } else {
      // Embedding and output head: tested for copies (exact, rounded, or fine-tuned in the same
      // basis); none found while the rest is judged independent or partly borrowed.
      m.relation = language_related ? Relation::kDerived
                   : (v.relation == Relation::kIndependent || v.relation == Relation::kPartiallyBorrowed)
                       ? Relation::kIndependent
                       : Relation::kInconclusive;
    }
    m.evidence = ev;
    v.modules.push_back(std::move(m));
  }
  if (tokenizer) {
    v.modules.push_back({"tokenizer", tokenizer_module_relation(*tokenizer), tokenizer_explanation(*tokenizer)});
  }

  // --- the summary in plain words -------------------------------------------------------------------
  switch (v.relation) {
    case Relation::kDerived:
      v.summary = fmt::format("{} and {} share their weights: one was derived from the other (fine-tuning, continued pretraining, a copy or an obfuscated copy). {}.",
                              A, B, p_text(v.log10_p));
      break;
    case Relation::kUpscaled:
      v.summary = fmt::format("{} was built from {} by repeating its layers (depth up-scaling) and training further. {}.", B, A, p_text(v.log10_p));
      break;
    case Relation::kPruned:
      v.summary = fmt::format("{} was cut down from {} (layers or widths removed) and trained further. {}.", B, A, p_text(v.log10_p));
      break;
    case Relation::kPartiallyBorrowed:
      v.summary = fmt::format("{} borrows part of its weights from {} — {} — while the rest shows no shared lineage.",
                              B, A, v.borrowed.empty() ? std::string("see the modules below") : fmt::format("{}", fmt::join(v.borrowed, ", ")));
      break;
    case Relation::kIndependent:
      v.summary = fmt::format("No evidence that {} and {} share weights: their neurons' order and values are as unrelated as two independently trained models' ({}). This says nothing about shared training data or distillation, which weights cannot show.",
                              A, B, p_text(v.log10_p));
      break;
    case Relation::kInconclusive:
      v.summary = fmt::format("The evidence does not settle whether {} and {} share weights{}.", A, B,
                              v.missing.empty() ? "" : ": some of it could not be computed (see below)");
      break;
  }
  return v;
}

}  // namespace referee::trace
