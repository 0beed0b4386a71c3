// `referee trace A B [C ...]` (every pair), `referee trace CANDIDATE --library DIR` (one against
// many) and `referee fingerprint MODEL -o FILE`: parsing and printing only; the work is in trace/.
#include <fmt/format.h>

#include "cli/commands.h"
#include "trace/report.h"
#include "trace/trace.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace referee::cli {
namespace {

namespace fs = std::filesystem;

struct TraceCliOptions {
  std::vector<std::string> models;
  std::string library;
  bool json = false;
  std::string html;
  unsigned threads = 0;
  int64_t probes = trace::FingerprintOptions{}.probe_tokens;
};

trace::FingerprintOptions fingerprint_options(unsigned threads, int64_t probes) {
  trace::FingerprintOptions o;
  o.threads = threads;
  o.probe_tokens = probes;
  return o;
}

int run_trace(const TraceCliOptions& o) {
  trace::TraceOptions options;
  options.fingerprint = fingerprint_options(o.threads, o.probes);
  trace::TraceReport report;
  if (!o.library.empty()) {
    if (o.models.size() != 1) {
      throw Error::invalid_argument("--library", "give exactly one candidate model with --library DIR");
    }
    std::vector<trace::Fingerprint> library;
    for (const auto& f : trace::library_files(o.library)) library.push_back(trace::load_fingerprint(f));
    report = trace::trace_library(trace::fingerprint_of(o.models[0], options.fingerprint), library, options);
  } else {
    if (o.models.size() < 2) {
      throw Error::invalid_argument("trace", "give at least two models (or one model and --library DIR)");
    }
    const std::vector<fs::path> paths(o.models.begin(), o.models.end());
    report = trace::trace_pairs(trace::fingerprints_of(paths, options.fingerprint), options);
  }
  if (!o.html.empty()) write_file_atomically(o.html, trace::report_html(report));
  if (o.json) {
    fmt::print("{}\n", trace::report_json(report).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  } else {
    fmt::print("{}", trace::report_text(report));
  }
  return 0;
}

struct FingerprintCliOptions {
  std::string model;
  std::string output;
  unsigned threads = 0;
  int64_t probes = trace::FingerprintOptions{}.probe_tokens;
};

int run_fingerprint(const FingerprintCliOptions& o) {
  const auto fp = trace::take_fingerprint(io::Model::open(o.model), fingerprint_options(o.threads, o.probes));
  trace::save_fingerprint(fp, o.output);
  std::error_code ec;
  const auto size = fs::file_size(o.output, ec);
  fmt::print("{}: fingerprint of {} ({} probe tokens, {} response blocks, {} tensors) written, {} bytes\n",
             o.output, fp.name, fp.probe_count(), fp.responses.size(), fp.tensors.size(), ec ? 0 : size);
  for (const auto& n : fp.notes) fmt::print("  note: {}\n", n);
  return 0;
}

}  // namespace

void register_trace(CLI::App& app) {
  auto options = std::make_shared<TraceCliOptions>();
  auto* sub = app.add_subcommand(
      "trace", "Originality verification: was a model derived from another? Tokenizer and weight "
               "evidence, per-module verdicts with p-values");
  sub->add_option("models", options->models,
                  "Model directories, .safetensors or .gguf files, tokenizer-only directories, or saved "
                  "fingerprints; every pair is judged")
      ->required();
  sub->add_option("--library", options->library,
                  "Judge the one model given against every fingerprint in this folder (ranked, "
                  "corrected for the number of comparisons)");
  sub->add_flag("--json", options->json, "Print the report as JSON (docs/json/trace.md)");
  sub->add_option("--html", options->html, "Also write a self-contained HTML report to this file");
  sub->add_option("--threads", options->threads, "Worker threads (default: one per core)");
  sub->add_option("--probes", options->probes, fmt::format("Probe tokens per model (default {})", trace::FingerprintOptions{}.probe_tokens))->check(CLI::Range(8, 65536));
  set_runner(sub, [options] { return run_trace(*options); });

  auto fo = std::make_shared<FingerprintCliOptions>();
  auto* fsub = app.add_subcommand(
      "fingerprint", "Save what trace needs of a model (megabytes, not the model) for a reference library");
  fsub->add_option("model", fo->model, "Model directory, .safetensors or .gguf file")->required();
  fsub->add_option("-o,--output", fo->output, "Fingerprint file to write (.safetensors)")->required();
  fsub->add_option("--threads", fo->threads, "Worker threads (default: one per core)");
  fsub->add_option("--probes", fo->probes, fmt::format("Probe tokens (default {})", trace::FingerprintOptions{}.probe_tokens))->check(CLI::Range(8, 65536));
  set_runner(fsub, [fo] { return run_fingerprint(*fo); });
}

}  // namespace referee::cli
