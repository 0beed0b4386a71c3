// bench_trace A B [--reps N]: the cost of `referee trace A B` (fingerprint both models, judge the
// pair) against (1) the I/O floor, a plain sequential read of both models' files from a warm page
// cache, and (2) bench/trace_numpy.py, a straightforward NumPy/SciPy implementation of the same
// statistics run on the same files with the same number of threads. The three run in turn within
// each repetition. Before any speed is compared, the two implementations' numbers are checked to
// agree (layer maps, AWM map, per-layer neuron tests, combined p-values).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "bench_util.h"
#include "io/model.h"
#include "trace/report.h"
#include "trace/trace.h"
#include "util/allocator.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace fs = std::filesystem;
using namespace referee;
using nlohmann::json;

namespace {

// What the NumPy baseline needs to find each tensor's bytes, and the probe tokens referee chose.
json plan_for(const io::Model& m, const trace::Fingerprint& fp, int64_t max_units) {
  auto where = [](const io::TensorInfo& t) {
    return json{{"file", t.file->path().string()}, {"offset", t.file_offset},
                {"dtype", std::string(io::dtype_name(t.dtype))}, {"shape", t.shape}};
  };
  json j;
  j["max_units"] = max_units;
  j["probe_tokens"] = fp.probe_tokens;
  std::unordered_map<std::string, int64_t> id_of;
  for (const auto& e : m.tokenizer->vocab) id_of.emplace(e.token, e.id);
  json ids = json::array();
  for (const auto& p : fp.probe_tokens) ids.push_back(id_of.at(p));
  j["probe_ids"] = ids;
  j["norms"] = json::array();
  j["matrices"] = json::array();
  for (const auto& t : m.tensors) {
    if (!t.file || t.row_permutation.active()) throw Error::not_supported(t.name, "the baseline reads Hugging Face safetensors models only");
    const auto& r = t.role;
    const bool language = r.module == io::Module::kLanguage && !r.is_bias;
    if (language && r.role == io::Role::kEmbedding) j["embedding"] = where(t);
    if (language && t.shape.size() == 1 && (r.role == io::Role::kAttnNorm || r.role == io::Role::kMlpNorm)) {
      json n = where(t);
      n["layer"] = r.layer;
      n["role"] = std::string(io::role_name(r.role));
      j["norms"].push_back(n);
    }
    if (t.shape.size() < 2) continue;
    json x = where(t);
    x["name"] = t.name;
    x["layer"] = r.module == io::Module::kLanguage ? r.layer : -1;
    x["kind"] = nullptr;
    if (language && r.layer >= 0 && r.expert < 0 && !r.all_experts) {
      if (r.role == io::Role::kAttnQ) x["kind"] = "attn_q";
      if (r.role == io::Role::kAttnK) x["kind"] = "attn_k";
      if (r.role == io::Role::kMlpGate) x["kind"] = "mlp_gate";
      if (r.role == io::Role::kMlpUp) x["kind"] = "mlp_up";
    }
    j["matrices"].push_back(x);
  }
  return j;
}

uint64_t read_files(const std::vector<fs::path>& files) {
  std::vector<uint8_t> buf(4 << 20);
  uint64_t total = 0;
  for (const auto& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) throw Error::io(f.string(), "cannot open");
    ssize_t n;
    while ((n = ::read(fd, buf.data(), buf.size())) > 0) total += static_cast<uint64_t>(n);
    ::close(fd);
  }
  return total;
}

double max_abs_difference(const json& a, const json& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t j = 0; j < a[i].size(); ++j) {
      const bool na = a[i][j].is_null() || (a[i][j].is_number() && std::isnan(a[i][j].get<double>()));
      const bool nb = b[i][j].is_null() || (b[i][j].is_number() && std::isnan(b[i][j].get<double>()));
      if (na != nb) return INFINITY;
      if (!na) worst = std::max(worst, std::abs(a[i][j].get<double>() - b[i][j].get<double>()));
    }
  }
  return worst;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: bench_trace MODEL_A MODEL_B [--reps N] [--probes N] [--test-units N]\n");
    return 2;
  }
  keep_freed_memory_for_reuse();  // as the `referee` command does, so this times its work
  int reps = 5;
  int64_t probes = trace::FingerprintOptions{}.probe_tokens;
  int64_t test_units = trace::WeightEvidenceOptions{}.test_units;
  for (int i = 3; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == "--reps") reps = std::atoi(argv[i + 1]);
    if (std::string(argv[i]) == "--probes") probes = std::atoll(argv[i + 1]);
    if (std::string(argv[i]) == "--test-units") test_units = std::atoll(argv[i + 1]);
  }
  try {
    const fs::path source = fs::path(__FILE__).parent_path();
    const io::Model ma = io::Model::open(argv[1]), mb = io::Model::open(argv[2]);
    std::vector<fs::path> files;
    for (const auto* m : {&ma, &mb}) {
      for (const auto& f : m->files) files.push_back(f->path());
    }
    trace::TraceOptions options;
    options.fingerprint.progress = false;
    options.fingerprint.threads = 2;
    options.fingerprint.probe_tokens = probes;
    options.weights.test_units = test_units;
    const uint64_t bytes = read_files(files);  // warms the page cache

    // The plan for the baseline, from referee's own probe choice.
    const trace::Fingerprint fa = trace::take_fingerprint(ma, options.fingerprint);
    const trace::Fingerprint fb = trace::take_fingerprint(mb, options.fingerprint);
    const fs::path work = fs::temp_directory_path() / fmt::format("bench_trace.{}", ::getpid());
    fs::create_directories(work);
    {
      json plan;
      plan["models"] = {plan_for(ma, fa, options.fingerprint.max_units), plan_for(mb, fb, options.fingerprint.max_units)};
      plan["test_units"] = options.weights.test_units;
      std::ofstream(work / "plan.json") << plan.dump();
    }
    const std::string python = "/usr/bin/python3";
    const bool have_numpy = std::system((python + " -c 'import numpy, scipy' 2>/dev/null").c_str()) == 0;
    const std::string numpy_command = fmt::format(
        "OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 {} {} {} {}", python, (source / "trace_numpy.py").string(),
        (work / "plan.json").string(), (work / "numpy.json").string());

    fmt::print("machine      {}\n", bench::machine_description());
    fmt::print("models       {} ({} tensors) and {} ({} tensors): {:.1f} MB of files\n", argv[1], ma.tensors.size(), argv[2],
               mb.tensors.size(), static_cast<double>(bytes) / 1e6);
    fmt::print("threads      2 on each side; referee: OpenBLAS single-threaded inside its own pool; NumPy: OPENBLAS_NUM_THREADS=2\n");

    // Agreement first.
    const trace::PairResult pair = trace::judge_pair(fa, fb, options);
    const json ours = json::parse(trace::report_json(trace::trace_pairs({fa, fb}, options)).dump())["pairs"][0]["weights"];
    if (have_numpy) {
      if (std::system(numpy_command.c_str()) != 0) throw Error::io("trace_numpy.py", "the baseline failed");
      json theirs;
      std::ifstream(work / "numpy.json") >> theirs;
      const auto& map = ours["layer_map"];
      const double d_att = max_abs_difference(map["attention"], theirs["attention"]);
      const double d_mlp = max_abs_difference(map["mlp"], theirs["mlp"]);
      const double d_comb = max_abs_difference(map["combined"], theirs["combined"]);
      const double d_awm = max_abs_difference(ours["awm"]["map"], theirs["awm"]);
      double d_rho = 0, d_corr = 0;
      size_t matched_tests = 0;
      for (const auto& t : ours["neuron_tests"]["layers"]) {
        for (const auto& u : theirs["neuron_tests"]) {
          if (t["a_layer"] != u["a_layer"] || t["b_layer"] != u["b_layer"]) continue;
          ++matched_tests;
          d_rho = std::max({d_rho, std::abs(t["rho_identity"].get<double>() - u["rho_identity"].get<double>()),
                            std::abs(t["rho_gate_up"].get<double>() - u["rho_gate_up"].get<double>())});
          d_corr = std::max(d_corr, std::abs(t["mean_matched_correlation"].get<double>() - u["mean_matched_correlation"].get<double>()));
        }
      }
      const auto number = [](const json& v) { return v.is_number() ? v.get<double>() : -INFINITY; };
      const double p_ours = number(ours["neuron_tests"]["log10_p_identity"]);
      const double p_theirs = number(theirs["log10_p_identity"]);
      fmt::print("agreement    max |difference|: attention map {:.2e}, MLP map {:.2e}, combined {:.2e}, AWM map {:.2e};\n"
                 "             neuron tests paired the same layers: {} of {}; rho {:.2e}, matched r {:.2e}; "
                 "combined log10 p {:.6g} vs {:.6g}\n",
                 d_att, d_mlp, d_comb, d_awm, matched_tests, ours["neuron_tests"]["layers"].size(), d_rho, d_corr, p_ours, p_theirs);
      // The combined p-value, relative to its size (it reaches -1e3 in log10 for a derived pair).
      const double d_p = p_ours == p_theirs ? 0.0 : std::abs(p_ours - p_theirs) / std::max(1.0, std::abs(p_ours));
      const bool agree = std::max({d_att, d_mlp, d_comb, d_awm, d_rho, d_corr, d_p}) <= 1e-4 &&
                         matched_tests == ours["neuron_tests"]["layers"].size();
      fmt::print("             {} (tolerance 1e-4)\n", agree ? "the two implementations agree" : "DISAGREE");
    } else {
      fmt::print("baseline     NumPy/SciPy not found for {}: run bench/setup-numpy.sh; timing referee alone\n", python);
    }
    (void)pair;

    std::vector<double> numpy_seconds;
    // Both fingerprints side by side, as `referee trace A B` takes them.
    const std::vector<const io::Model*> models = {&ma, &mb};
    std::vector<std::function<void()>> sides = {
        [&] { read_files(files); },
        [&] {
          const auto both = trace::take_fingerprints(models, options.fingerprint);
          (void)trace::judge_pair(both[0], both[1], options);
        }};
    // Where referee's time goes: the two fingerprints, and the pair judged from fingerprints in
    // memory (what a library comparison costs per reference model).
    sides.push_back([&] { (void)trace::take_fingerprints(models, options.fingerprint); });
    sides.push_back([&] { (void)trace::judge_pair(fa, fb, options); });
    if (have_numpy) {
      sides.push_back([&] {
        if (std::system(numpy_command.c_str()) != 0) throw Error::io("trace_numpy.py", "the baseline failed");
        json r;
        std::ifstream(work / "numpy.json") >> r;
        numpy_seconds.push_back(r["seconds"].get<double>());
      });
    }
    const auto timings = bench::measure_interleaved(1, reps, sides);
    if (!numpy_seconds.empty()) numpy_seconds.erase(numpy_seconds.begin());  // the warm-up round
    const auto& floor = timings[0];
    const auto& trace_time = timings[1];
    fmt::print("\n{} repetitions after a warm-up, warm page cache; median (min-max)\n", reps);
    fmt::print("read floor   {:.4f} s ({:.4f}-{:.4f})  {}\n", floor.median(), floor.min(), floor.max(),
               bench::rate_text(static_cast<double>(bytes), floor));
    fmt::print("referee      {:.4f} s ({:.4f}-{:.4f})  fingerprint both + judge the pair: {:.1f}x the read floor\n",
               trace_time.median(), trace_time.min(), trace_time.max(), trace_time.median() / floor.median());
    fmt::print("  of which   fingerprints {:.4f} s ({:.4f}-{:.4f}), judging the pair {:.4f} s ({:.4f}-{:.4f})\n",
               timings[2].median(), timings[2].min(), timings[2].max(), timings[3].median(), timings[3].min(),
               timings[3].max());
    if (have_numpy) {
      bench::Timing inner{numpy_seconds};
      const auto& wall = timings[4];
      fmt::print("NumPy        {:.4f} s ({:.4f}-{:.4f}) computing (reads included), {:.4f} s wall with interpreter start-up\n",
                 inner.median(), inner.min(), inner.max(), wall.median());
      fmt::print("speed-up     {:.1f}x against NumPy's computing time, {:.1f}x against its wall time\n",
                 inner.median() / trace_time.median(), wall.median() / trace_time.median());
    }
    rusage self{}, children{};
    getrusage(RUSAGE_SELF, &self);
    getrusage(RUSAGE_CHILDREN, &children);
    fmt::print("peak memory  referee (this process, both fingerprints held) {:.0f} MB; NumPy {:.0f} MB; models {:.0f} MB\n",
               static_cast<double>(self.ru_maxrss) / 1024.0, static_cast<double>(children.ru_maxrss) / 1024.0,
               static_cast<double>(bytes) / 1e6);
    fs::remove_all(work);
  } catch (const Error& e) {
    fmt::print(stderr, "bench_trace: error: {}\n", e.what());
    return 2;
  }
  return 0;
}
