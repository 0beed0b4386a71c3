// `referee eval`: lm-evaluation-harness-compatible benchmarks against OpenAI-compatible endpoints
// or the in-process engine (eval/runner.h does the work; this file parses and prints).
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "eval/engine_backend.h"
#include "eval/executor.h"
#include "eval/openai_backend.h"
#include "eval/runner.h"
#include "util/error.h"

namespace referee::cli {
namespace {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

struct EvalArgs {
  std::vector<std::string> tasks;
  std::vector<std::string> task_dirs;
  std::vector<std::string> data_dirs;
  std::vector<std::string> model_urls;
  std::string model;
  std::string engine;
  std::string api = "completions";
  std::string api_key_env;
  size_t concurrency = 8;
  double timeout_s = 600;
  unsigned threads = 0;
  std::optional<int64_t> num_fewshot;
  uint64_t fewshot_seed = 1234;
  std::optional<int64_t> limit;
  std::string output;
  std::string cache;
  bool no_cache = false;
  std::string reference;
  int max_retries = 6;
  bool list = false;
  std::optional<int64_t> dry_run;
  bool json = false;
};

// Where bundled things live: next to the source tree the binary was built from (build/referee ->
// ./tasks), or the working directory's.
std::optional<fs::path> bundled(const std::string& relative) {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  std::vector<fs::path> candidates = {fs::current_path(ec) / relative};
  if (!ec && !exe.empty()) candidates.push_back(exe.parent_path().parent_path() / relative);
  for (const auto& c : candidates) {
    if (fs::is_directory(c, ec)) return fs::weakly_canonical(c, ec);
  }
  return std::nullopt;
}

std::vector<fs::path> task_dirs(const EvalArgs& a) {
  std::vector<fs::path> dirs(a.task_dirs.begin(), a.task_dirs.end());
  if (const char* env = std::getenv("REFEREE_TASKS_DIR"); env && *env) dirs.emplace_back(env);
  if (dirs.empty()) {
    if (auto b = bundled("tasks")) dirs.push_back(*b);
  }
  if (dirs.empty()) throw Error::invalid_argument("--tasks-dir", "no task directory: give --tasks-dir DIR (a folder of lm-evaluation-harness YAML files)");
  for (const auto& d : dirs) {
    if (!fs::is_directory(d)) throw Error::not_found(d.string(), "task directory does not exist");
  }
  return dirs;
}

std::vector<fs::path> data_roots(const EvalArgs& a) {
  std::vector<fs::path> roots(a.data_dirs.begin(), a.data_dirs.end());
  if (const char* env = std::getenv("REFEREE_DATA_DIR"); env && *env) roots.emplace_back(env);
  // The bundled sample items come last: a user's own copy of a benchmark always wins.
  if (auto b = bundled("data/eval/samples")) roots.push_back(*b);
  for (const auto& r : roots) {
    if (!fs::is_directory(r)) throw Error::not_found(r.string(), "data directory does not exist");
  }
  return roots;
}

eval::EvalOptions eval_options(const EvalArgs& a) {
  eval::EvalOptions o;
  o.tasks = a.tasks;
  o.task_dirs = task_dirs(a);
  o.data_roots = data_roots(a);
  o.num_fewshot = a.num_fewshot;
  o.fewshot_seed = a.fewshot_seed;
  o.limit = a.limit;
  o.max_retries = a.max_retries;
  if (!a.reference.empty()) o.reference = a.reference;
  return o;
}

void print_list(const EvalArgs& a) {
  eval::TaskRegistry registry;
  for (const auto& d : task_dirs(a)) registry.add_directory(d);
  const ordered_json rows = registry.list();
  if (a.json) {
    fmt::print("{}\n", rows.dump(2));
    return;
  }
  size_t w_name = 4, w_type = 11, w_data = 7;
  for (const auto& r : rows) {
    w_name = std::max(w_name, r.value("name", "").size());
    w_type = std::max(w_type, r.value("output_type", "").size());
    w_data = std::max(w_data, r.value("dataset", "").size());
  }
  fmt::print("{:<{}}  {:<{}}  {:<{}}  {:<7}  {}\n", "task", w_name, "output_type", w_type, "dataset", w_data, "version", "tags");
  for (const auto& r : rows) {
    std::string tags;
    if (r.contains("tags") && r["tags"].is_array()) {
      for (const auto& t : r["tags"]) tags += (tags.empty() ? "" : ", ") + t.get<std::string>();
    }
    const std::string version = r.contains("version") && !r["version"].is_null()
                                    ? (r["version"].is_string() ? r["version"].get<std::string>() : r["version"].dump())
                                    : "-";
    fmt::print("{:<{}}  {:<{}}  {:<{}}  {:<7}  {}\n", r.value("name", ""), w_name, r.value("output_type", ""), w_type,
               r.value("dataset", ""), w_data, version, tags);
  }
  for (const auto& w : registry.warnings()) fmt::print(stderr, "referee: warning: {}\n", w);
}

void print_dry_run(const EvalArgs& a, int64_t shown) {
  const auto prepared = eval::prepare_tasks(eval_options(a));
  size_t total = 0;
  for (const auto& p : prepared) {
    total += p.requests.size();
    fmt::print("== {}  ({} documents of split '{}', {} requests, {}-shot)\n", p.task.config().name, p.docs.size(), p.split,
               p.requests.size(), p.num_fewshot);
    for (int64_t i = 0; i < shown && i < static_cast<int64_t>(p.requests.size()); ++i) {
      const eval::Request& r = p.requests[static_cast<size_t>(i)];
      fmt::print("-- request {} (doc {}, {}{})\n", i, r.doc_id, eval::request_type_name(r.type),
                 r.type == eval::RequestType::kGenerateUntil ? "" : fmt::format(", continuation {:?}", r.continuation));
      fmt::print("{}\n", r.context);
    }
  }
  fmt::print("{} requests in all; nothing was sent (--dry-run)\n", total);
}

std::unique_ptr<eval::Backend> make_backend(const EvalArgs& a) {
  if (!a.engine.empty() && !a.model_urls.empty()) {
    throw Error::invalid_argument("--engine", "give either --engine DIR or --model-url URL, not both");
  }
  if (!a.engine.empty()) {
    eval::EngineOptions e;
    e.model_dir = a.engine;
    e.threads = a.threads;
    return std::make_unique<eval::EngineBackend>(e);
  }
  if (a.model_urls.empty()) {
    throw Error::invalid_argument("eval", "say what to evaluate: --model-url URL [--model NAME] for a served model, or --engine DIR");
  }
  eval::OpenAiOptions o;
  o.endpoints = a.model_urls;
  o.model = a.model;
  o.api_key_env = a.api_key_env;
  o.timeout_s = a.timeout_s;
  o.concurrency_per_endpoint = a.concurrency;
  if (a.api == "chat") {
    o.generate_mode = eval::GenerateMode::kChat;
  } else if (a.api != "completions") {
    throw Error::invalid_argument("--api", fmt::format("'{}' is not one of completions, chat", a.api));
  }
  return std::make_unique<eval::OpenAiBackend>(o);
}

std::atomic<bool> interrupted{false};
extern "C" void on_interrupt(int) { interrupted.store(true); }

std::string fixed(double v, int digits) { return fmt::format("{:.{}f}", v, digits); }

int run_eval_command(const EvalArgs& a) {
  if (a.list) {
    print_list(a);
    return 0;
  }
  if (a.dry_run) {
    print_dry_run(a, *a.dry_run);
    return 0;
  }
  auto backend = make_backend(a);
  eval::EvalOptions o = eval_options(a);
  const std::string model_label = a.engine.empty() ? (a.model.empty() ? "model" : a.model) : fs::path(a.engine).filename().string();
  o.output_dir = a.output.empty() ? fs::path("eval-results") / model_label : fs::path(a.output);
  if (!a.no_cache) o.cache_path = a.cache.empty() ? o.output_dir / "cache.sqlite" : fs::path(a.cache);
  o.progress = !a.json;
  // Ctrl-C (or a TERM from a scheduler) stops sending, keeps every answer received in the cache,
  // and exits; the same command resumes. A kill -9 loses only the answers not yet committed.
  o.cancel = &interrupted;
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
  o.cli_settings = {{"tasks", a.tasks},
                    {"api", a.engine.empty() ? a.api : "engine"},
                    {"concurrency_per_endpoint", a.concurrency},
                    {"timeout_s", a.timeout_s},
                    {"max_retries", a.max_retries}};
  eval::EvalOutcome outcome;
  try {
    outcome = eval::run_eval(o, *backend);
  } catch (const eval::Cancelled&) {
    fmt::print(stderr, "referee: interrupted: every answer received is in {}; run the same command again to resume\n",
               o.cache_path.empty() ? "no cache (--no-cache)" : o.cache_path.string());
    return 130;
  }
  if (a.json) {
    fmt::print("{}\n", outcome.results.dump(2, ' ', false, ordered_json::error_handler_t::replace));
    return 0;
  }
  size_t w = std::string("micro average").size(), wm = std::string("(first metrics)").size();
  for (const auto& s : outcome.summary) w = std::max(w, s.task.size()), wm = std::max(wm, s.metric.size());
  const bool has_reference = !a.reference.empty();
  fmt::print("{:<{}}  {:<{}}  {:>7}  {:>8}  {:>6}{}\n", "task", w, "metric", wm, "value", "stderr", "n", has_reference ? "  % of reference" : "");
  for (const auto& s : outcome.summary) {
    fmt::print("{:<{}}  {:<{}}  {:>7}  {:>8}  {:>6}{}\n", s.task, w, s.metric, wm, fixed(s.value, 4),
               s.stderr_value ? fixed(*s.stderr_value, 4) : "N/A", s.n,
               has_reference ? fmt::format("  {:>15}", s.relative_to_reference ? fixed(100.0 * *s.relative_to_reference, 1) + "%" : "-") : "");
  }
  const auto& av = outcome.results["averages"];
  if (av.contains("macro")) {
    fmt::print("{:<{}}  {:<{}}  {:>7}\n", "macro average", w, "(first metrics)", wm, fixed(av["macro"]["value"].get<double>(), 4));
    fmt::print("{:<{}}  {:<{}}  {:>7}\n", "micro average", w, "(by documents)", wm, fixed(av["micro"]["value"].get<double>(), 4));
  }
  if (has_reference && outcome.results.contains("relative_to_reference")) {
    const auto& r = outcome.results["relative_to_reference"];
    if (!r["mean_percent_of_reference"].is_null()) {
      fmt::print("mean % of {}: {}%\n", r.value("reference", "reference"), fixed(r["mean_percent_of_reference"].get<double>(), 1));
    }
  }
  fmt::print("{} requests: {} answered from the cache, {} sent ({} retries); results in {}\n", outcome.requests,
             outcome.cached, outcome.sent, outcome.retried, (o.output_dir / "results.json").string());
  return 0;
}

}  // namespace

void register_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* sub = app.add_subcommand("eval", "Run lm-evaluation-harness-compatible benchmarks against a served or in-process model");
  sub->add_option("--tasks", a->tasks, "Tasks, tags or groups (comma-separated or repeated)")->delimiter(',');
  sub->add_option("--tasks-dir", a->task_dirs, "Folder of task YAML files (repeatable; default: the bundled tasks/)");
  sub->add_option("--data-dir", a->data_dirs, "Local copies of hub datasets, as <owner>/<name>/... (repeatable; also REFEREE_DATA_DIR)");
  sub->add_option("--model-url", a->model_urls, "Base URL of an OpenAI-compatible endpoint (repeat for a cluster)");
  sub->add_option("--model", a->model, "Model name sent to the endpoint (and the cache's model identity)");
  sub->add_option("--engine", a->engine, "Evaluate an engine model directory in process instead of a served model");
  sub->add_option("--api", a->api, "Generation API of the endpoint: completions or chat");
  sub->add_option("--api-key-env", a->api_key_env, "Environment variable holding the API key (never printed)");
  sub->add_option("--concurrency", a->concurrency, "Requests in flight per endpoint")->check(CLI::Range(1, 4096));
  sub->add_option("--timeout", a->timeout_s, "Seconds per request before it is retried")->check(CLI::PositiveNumber);
  sub->add_option("--threads", a->threads, "Compute threads for --engine (default: cores)");
  sub->add_option("--num-fewshot", a->num_fewshot, "Few-shot examples (overrides the task files)");
  sub->add_option("--fewshot-seed", a->fewshot_seed, "Seed of the few-shot sampler (lm-evaluation-harness's default 1234)");
  sub->add_option("--limit", a->limit, "Evaluate only the first N documents of each task");
  sub->add_option("--output", a->output, "Folder for results.json and samples_<task>.jsonl (default: eval-results/<model>)");
  sub->add_option("--cache", a->cache, "SQLite request cache (default: <output>/cache.sqlite); a rerun resumes from it");
  sub->add_flag("--no-cache", a->no_cache, "Send every request, keep nothing");
  sub->add_option("--reference", a->reference, "JSON file of a reference model's scores: results add '% of reference'");
  sub->add_option("--max-retries", a->max_retries, "Retries of a request after 429, 5xx or a timeout")->check(CLI::Range(0, 100));
  sub->add_flag("--list", a->list, "List the tasks found and exit");
  sub->add_option("--dry-run", a->dry_run, "Print the first N rendered requests of each task, send nothing")->expected(0, 1)->default_str("3");
  sub->add_flag("--json", a->json, "Print the results document (or --list) as JSON");
  set_runner(sub, [a] { return run_eval_command(*a); });
}

}  // namespace referee::cli
