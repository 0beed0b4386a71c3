#include "trace/trace.h"

#include <algorithm>
#include <cmath>
#include <future>
#include <optional>

#include "util/error.h"
#include "util/progress.h"

namespace referee::trace {
namespace fs = std::filesystem;

ModelSummary summary_of(const Fingerprint& f) {
  ModelSummary s;
  s.name = f.name, s.source = f.source, s.format = f.format, s.arch = f.arch;
  s.has_tokenizer = f.tokenizer && !f.tokenizer->vocab.empty();
  s.has_weights = !f.tensors.empty();
  s.notes = f.notes;
  return s;
}

PairResult judge_pair(const Fingerprint& a, const Fingerprint& b, const TraceOptions& options) {
  PairResult r;
  // The tokenizer evidence is serial work (sorting and hashing vocabularies): it runs beside the
  // weight evidence, filling the cores while that waits on its own serial steps.
  auto tokenizer = std::async(std::launch::async, [&]() -> std::optional<TokenizerComparison> {
    if (a.tokenizer && b.tokenizer) return compare_tokenizers(*a.tokenizer, *b.tokenizer);
    return std::nullopt;
  });
  WeightEvidenceOptions weights = options.weights;
  weights.threads = options.fingerprint.threads;
  r.weights = compare_weights(a, b, weights);
  r.tokenizer = tokenizer.get();
  if (a.tensors.empty() || b.tensors.empty()) {
    r.weights.missing.insert(r.weights.missing.begin(),
                             "weights are missing on one side (a tokenizer alone was given): only tokenizer evidence is reported");
  }
  if (!r.tokenizer) r.weights.missing.push_back("a tokenizer is missing on one side: no tokenizer evidence");
  r.verdict = decide(a, b, r.weights, r.tokenizer, options.verdict);
  return r;
}

TraceReport trace_pairs(const std::vector<Fingerprint>& models, const TraceOptions& options) {
  TraceReport report;
  report.mode = "pairs";
  for (const auto& m : models) report.models.push_back(summary_of(m));
  Progress progress("comparing", models.size() * (models.size() - std::min<size_t>(models.size(), 1)) / 2,
                    Progress::Unit::kItems, options.fingerprint.progress ? -1 : 0);
  for (size_t i = 0; i < models.size(); ++i) {
    for (size_t j = i + 1; j < models.size(); ++j) {
      PairResult r = judge_pair(models[i], models[j], options);
      r.a = i, r.b = j;
      report.pairs.push_back(std::move(r));
      progress.add(1);
    }
  }
  progress.finish();
  return report;
}

TraceReport trace_library(const Fingerprint& candidate, const std::vector<Fingerprint>& library,
                          const TraceOptions& options) {
  TraceReport report;
  report.mode = "library";
  report.comparisons = static_cast<int64_t>(library.size());
  TraceOptions o = options;
  o.verdict.comparisons = report.comparisons;
  report.models.push_back(summary_of(candidate));
  for (const auto& f : library) report.models.push_back(summary_of(f));
  Progress progress("comparing", library.size(), Progress::Unit::kItems, options.fingerprint.progress ? -1 : 0);
  for (size_t i = 0; i < library.size(); ++i) {
    PairResult r = judge_pair(library[i], candidate, o);
    r.a = i + 1, r.b = 0;
    report.pairs.push_back(std::move(r));
    progress.add(1);
  }
  progress.finish();
  std::stable_sort(report.pairs.begin(), report.pairs.end(), [](const PairResult& x, const PairResult& y) {
    return x.verdict.log10_p < y.verdict.log10_p;
  });
  return report;
}

std::vector<fs::path> library_files(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error::not_found(dir.string(), "library folder (a folder of fingerprints made by `referee fingerprint`)");
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file() && is_fingerprint_file(e.path())) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  if (out.empty()) throw Error::not_found(dir.string(), "fingerprints in the library folder (make them with `referee fingerprint MODEL -o DIR/NAME.safetensors`)");
  return out;
}

}  // namespace referee::trace
