// `referee trace`: every pair of a set of models, or one candidate against a library of reference
// fingerprints. Each model is fingerprinted once (or its saved fingerprint loaded); every pair is
// then judged from the two fingerprints: tokenizer evidence, weight evidence, verdict.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "trace/fingerprint.h"
#include "trace/tokenizer_evidence.h"
#include "trace/verdict.h"
#include "trace/weight_evidence.h"

namespace referee::trace {

struct TraceOptions {
  FingerprintOptions fingerprint;
  WeightEvidenceOptions weights;
  VerdictOptions verdict;
};

struct ModelSummary {
  std::string name, source, format;
  ArchitectureSummary arch;
  bool has_tokenizer = false;
  bool has_weights = false;
  std::vector<std::string> notes;
};

struct PairResult {
  size_t a = 0, b = 0;  // indices into TraceReport::models; B is judged against A
  std::optional<TokenizerComparison> tokenizer;
  WeightEvidence weights;
  PairVerdict verdict;
};

struct TraceReport {
  std::string mode;  // "pairs" or "library"
  std::vector<ModelSummary> models;
  std::vector<PairResult> pairs;  // library mode: ranked, strongest evidence of derivation first
  int64_t comparisons = 1;        // the multiplicity correction applied
};

ModelSummary summary_of(const Fingerprint& f);

// Judges B against A.
PairResult judge_pair(const Fingerprint& a, const Fingerprint& b, const TraceOptions& options);

// Every unordered pair of `models` (the earlier one as A).
TraceReport trace_pairs(const std::vector<Fingerprint>& models, const TraceOptions& options);

// The candidate (as B) against each library fingerprint (as A); p-values corrected for the number
// of comparisons (Bonferroni); pairs ranked by evidence.
TraceReport trace_library(const Fingerprint& candidate, const std::vector<Fingerprint>& library,
                          const TraceOptions& options);

// The fingerprints of a library folder (every *.safetensors fingerprint file in it, sorted by
// name); throws Error if the folder holds none.
std::vector<std::filesystem::path> library_files(const std::filesystem::path& dir);

}  // namespace referee::trace
