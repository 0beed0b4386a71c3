// From evidence to a verdict an evaluator can act on: per pair and per module, with the p-value
// or score that drove it, the evidence behind it in words, and the evidence that could not be
// computed. Missing evidence never yields a confident verdict: without probe responses or copies
// the answer is "inconclusive", whatever else is known.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trace/fingerprint.h"
#include "trace/tokenizer_evidence.h"
#include "trace/weight_evidence.h"

namespace referee::trace {

enum class Relation : uint8_t {
  kIndependent,        // no evidence of shared weights at the stated level
  kDerived,            // fine-tune, continued pretraining, copy, dtype conversion, obfuscated copy
  kUpscaled,           // derived, with layers repeated (depth up-scaling)
  kPruned,             // derived, with layers or widths removed
  kPartiallyBorrowed,  // some modules or layers shared, the rest not
  kInconclusive,       // evidence missing or between the levels
};
std::string_view relation_name(Relation r);

// "p = 0.0312", "p = 2.4e-17" from log10 p (capped at 1).
std::string p_value_text(double log10_p);

struct ModuleVerdict {
  std::string module;    // "language model", "layer 3", "embedding", "vision", ...
  Relation relation = Relation::kInconclusive;
  std::string evidence;  // one line, plain words
};

struct VerdictOptions {
  double derived_p = 1e-6;        // combined p below which the weights are judged derived
  double independent_p = 0.01;    // combined p above which (and no copies) they are independent
  double layer_p = 1e-6;          // per-layer level (Bonferroni over the pair's layer tests): a
                                  // single layer is enough to call a layer borrowed, so it must
                                  // not fire by chance over many pairs and layers
  double robust_p = 1e-12;        // stricter level for the approximate gate/up test (combined)
  double robust_layer_p = 1e-9;   // and per layer
  int64_t comparisons = 1;        // pairs judged together (one-against-many): Bonferroni factor
};

struct PairVerdict {
  Relation relation = Relation::kInconclusive;
  double log10_p = 0;            // log10 of the (multiplicity-adjusted) p-value that decided
  std::string decided_by;        // which statistic
  std::string summary;           // the verdict in one or two plain sentences
  std::vector<std::string> reasons;  // the evidence that drove it
  std::vector<std::string> missing;  // evidence that could not be computed
  std::vector<ModuleVerdict> modules;
  std::vector<std::string> borrowed;  // named shared modules/layers (partially borrowed)
};

PairVerdict decide(const Fingerprint& a, const Fingerprint& b, const WeightEvidence& w,
                   const std::optional<TokenizerComparison>& tokenizer, const VerdictOptions& options);

}  // namespace referee::trace
