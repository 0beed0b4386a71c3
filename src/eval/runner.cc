#include "eval/runner.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <set>

#include "eval/cache.h"
#include "eval/dataset.h"
#include "eval/executor.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json.h"
#include "util/progress.h"
#include "util/version.h"

namespace referee::eval {
namespace fs = std::filesystem;
using nlohmann::ordered_json;

namespace {

DatasetRequest dataset_request(const TaskConfig& c, const EvalOptions& o) {
  DatasetRequest r;
  r.dataset_path = c.dataset_path;
  r.dataset_name = c.dataset_name;
  r.dataset_kwargs = c.dataset_kwargs;
  r.task_dir = c.source.parent_path();
  r.data_roots = o.data_roots;
  return r;
}

// "acc,none": the task's first metric under its first filter, the figure a summary shows.
std::string primary_key(const TaskConfig& c) {
  const std::string metric = c.metrics.empty() ? "acc" : c.metrics.front().metric;
  const std::string filter = c.filters.empty() ? "none" : c.filters.front().name;
  return metric + "," + filter;
}

std::optional<double> number_at(const ordered_json& j, const std::string& key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

std::string stderr_key(const std::string& key) {
  const auto comma = key.find(',');
  return key.substr(0, comma) + "_stderr" + key.substr(comma);
}

std::string iso_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Task names become file names: keep them to a safe alphabet.
std::string file_safe(const std::string& name) {
  std::string out;
  for (const char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    out += ok ? c : '_';
  }
  return out;
}

}  // namespace

ordered_json load_reference(const fs::path& path) {
  const std::string where = path.string();
  ordered_json j;
  try {
    j = ordered_json::parse(json::read_text_file(where, 16u << 20));
  } catch (const ordered_json::exception& e) {
    throw Error::corrupt(where, fmt::format("not valid JSON: {}", e.what()));
  }
  if (!j.is_object() || !j.contains("scores") || !j["scores"].is_object()) {
    throw Error::corrupt(where, R"(expected {"reference": "<model>", "scores": {"<task>": {"<metric,filter>": <number>}}})");
  }
  for (const auto& [key, value] : j.items()) {
    if (key != "reference" && key != "scores" && key != "notes") {
      throw Error::corrupt(where, fmt::format("unknown field '{}' (allowed: reference, scores, notes)", key));
    }
  }
  if (j.contains("reference") && !j["reference"].is_string()) throw Error::corrupt(where, "'reference' must be a string");
  for (const auto& [task, metrics] : j["scores"].items()) {
    if (!metrics.is_object()) throw Error::corrupt(where, fmt::format("scores.{} must be an object of metric: number", task));
    for (const auto& [metric, value] : metrics.items()) {
      if (!value.is_number() || !std::isfinite(value.get<double>()) || value.get<double>() <= 0) {
        throw Error::corrupt(where, fmt::format("scores.{}.{} must be a positive number", task, metric));
      }
      if (metric.find(',') == std::string::npos) {
        throw Error::corrupt(where, fmt::format("scores.{}.{}: name the filter too, as the results do (e.g. \"acc,none\")", task, metric));
      }
    }
  }
  return j;
}

std::vector<PreparedTask> prepare_tasks(const EvalOptions& o) {
  if (o.tasks.empty()) throw Error::invalid_argument("--tasks", "name at least one task, tag or group (referee eval --list shows them)");
  if (o.limit && *o.limit < 1) throw Error::invalid_argument("--limit", "must be at least 1");
  if (o.num_fewshot && (*o.num_fewshot < 0 || *o.num_fewshot > 10000)) {
    throw Error::invalid_argument("--num-fewshot", "must be between 0 and 10000");
  }
  TaskRegistry registry;
  for (const auto& d : o.task_dirs) registry.add_directory(d);
  std::vector<const TaskConfig*> selected;
  std::set<std::string> seen;
  for (const auto& name : o.tasks) {
    for (const TaskConfig* c : registry.select(name)) {
      if (seen.insert(c->name).second) selected.push_back(c);
    }
  }
  std::vector<PreparedTask> out;
  out.reserve(selected.size());
  for (const TaskConfig* c : selected) {
    Task task(*c);
    const std::string split = task.eval_split();
    const DatasetRequest data = dataset_request(*c, o);
    std::vector<Document> docs = load_split(data, split);
    const int64_t original = static_cast<int64_t>(docs.size());
    if (docs.empty()) throw Error::corrupt(c->name, fmt::format("split '{}' of {} has no documents", split, c->dataset_path));
    if (o.limit && static_cast<int64_t>(docs.size()) > *o.limit) docs.resize(static_cast<size_t>(*o.limit));
    const int64_t shots = o.num_fewshot.value_or(c->num_fewshot);
    std::vector<Document> pool;
    const auto fewshot_split = task.fewshot_split();
    if (shots > 0) {
      if (!fewshot_split) throw Error::invalid_argument(c->name, fmt::format("{} few-shot examples asked for, but the task names no split to draw them from", shots));
      // The full split, not the --limit'ed one: limiting the evaluated documents must not change
      // which examples the kept ones are shown.
      pool = load_split(data, *fewshot_split);
    }
    std::vector<Request> requests = task.build_requests(docs, pool, shots, o.fewshot_seed);
    ordered_json dataset = dataset_identity(data, split);
    if (shots > 0 && fewshot_split && *fewshot_split != split) dataset["fewshot"] = dataset_identity(data, *fewshot_split);
    out.push_back(PreparedTask{std::move(task), split, std::move(docs), original, shots, std::move(requests), std::move(dataset)});
  }
  return out;
}

EvalOutcome run_eval(const EvalOptions& o, Backend& backend) {
  const std::string started = iso_now();
  const auto t0 = std::chrono::steady_clock::now();
  std::optional<ordered_json> reference;
  if (o.reference) reference = load_reference(*o.reference);  // before any request is sent
  std::vector<PreparedTask> prepared = prepare_tasks(o);

  // Every task's requests in one list, so the backend's concurrency is used across tasks.
  std::vector<Request> all;
  std::vector<size_t> first_of_task;
  for (const auto& p : prepared) {
    first_of_task.push_back(all.size());
    all.insert(all.end(), p.requests.begin(), p.requests.end());
  }
  std::optional<RequestCache> cache;
  if (!o.cache_path.empty()) {
    if (o.cache_path.has_parent_path()) fs::create_directories(o.cache_path.parent_path());
    cache.emplace(o.cache_path);
  }

  ExecuteOptions exec;
  exec.max_retries = o.max_retries;
  exec.backoff_base_s = o.backoff_base_s;
  exec.backoff_cap_s = o.backoff_cap_s;
  exec.cancel = o.cancel;
  Progress progress("requests", all.size(), Progress::Unit::kItems, o.progress ? -1 : 0);
  size_t reported = 0;
  exec.progress = [&](size_t done, size_t /*total*/, size_t /*cached*/) {
    // The executor calls this one call at a time, so the running count needs no lock.
    if (done > reported) progress.add(done - reported), reported = done;
  };
  ExecuteStats stats;
  const std::vector<Response> answers = execute(all, backend, cache ? &*cache : nullptr, exec, &stats);
  progress.finish();

  EvalOutcome outcome;
  outcome.requests = all.size();
  outcome.sent = stats.sent;
  outcome.cached = stats.cached;
  outcome.retried = stats.retried;

  ordered_json results = ordered_json::object(), configs = ordered_json::object(), versions = ordered_json::object(),
               nshot = ordered_json::object(), higher = ordered_json::object(), nsamples = ordered_json::object(),
               datasets = ordered_json::object(), relative = ordered_json::object();
  double micro_sum = 0, macro_sum = 0;
  size_t micro_n = 0, macro_count = 0;
  for (size_t t = 0; t < prepared.size(); ++t) {
    const PreparedTask& p = prepared[t];
    const TaskConfig& c = p.task.config();
    const auto first = static_cast<std::ptrdiff_t>(first_of_task[t]);
    const auto count = static_cast<std::ptrdiff_t>(p.requests.size());
    const std::vector<Response> responses(answers.begin() + first, answers.begin() + first + count);
    const Task::Scores scores = p.task.score(p.docs, p.requests, responses);

    results[c.name] = scores.metrics;
    configs[c.name] = c.to_json();
    versions[c.name] = c.metadata.contains("version") ? c.metadata["version"] : ordered_json(nullptr);
    nshot[c.name] = p.num_fewshot;
    ordered_json hib = ordered_json::object();
    for (const auto& m : c.metrics) hib[m.metric] = m.higher_is_better;
    higher[c.name] = hib;
    nsamples[c.name] = {{"original", p.original_docs}, {"effective", static_cast<int64_t>(p.docs.size())}};
    datasets[c.name] = p.dataset;

    TaskSummary s;
    s.task = c.name;
    s.metric = primary_key(c);
    s.n = scores.n;
    if (auto v = number_at(scores.metrics, s.metric)) {
      s.value = *v;
      s.stderr_value = number_at(scores.metrics, stderr_key(s.metric));
      micro_sum += s.value * static_cast<double>(s.n), micro_n += s.n;
      macro_sum += s.value, ++macro_count;
      if (reference) {
        const auto& scores_ref = (*reference)["scores"];
        if (scores_ref.contains(c.name) && scores_ref[c.name].contains(s.metric)) {
          const double ref = scores_ref[c.name][s.metric].get<double>();
          s.relative_to_reference = s.value / ref;
          relative[c.name] = {{"metric", s.metric}, {"value", s.value}, {"reference_value", ref},
                              {"percent_of_reference", 100.0 * s.value / ref}};
        }
      }
    }
    outcome.summary.push_back(s);

    if (!o.output_dir.empty()) {
      std::string lines;
      for (const auto& sample : scores.samples) {
        lines += sample.dump(-1, ' ', false, ordered_json::error_handler_t::replace);
        lines += '\n';
      }
      fs::create_directories(o.output_dir);
      write_file_atomically(o.output_dir / fmt::format("samples_{}.jsonl", file_safe(c.name)), lines);
    }
  }

  ordered_json doc;
  doc["results"] = results;
  ordered_json averages = ordered_json::object();
  if (macro_count > 0) {
    averages["macro"] = {{"value", macro_sum / static_cast<double>(macro_count)}, {"tasks", macro_count},
                         {"definition", "mean over tasks of each task's first metric"}};
    averages["micro"] = {{"value", micro_n ? micro_sum / static_cast<double>(micro_n) : 0.0}, {"documents", micro_n},
                         {"definition", "mean over documents of each task's first metric (tasks weighted by size)"}};
  }
  doc["averages"] = averages;
  if (reference) {
    ordered_json r;
    r["reference"] = reference->value("reference", "");
    r["tasks"] = relative;
    double sum = 0;
    size_t k = 0;
    for (const auto& [task, v] : relative.items()) sum += v["percent_of_reference"].get<double>(), ++k;
    r["mean_percent_of_reference"] = k ? ordered_json(sum / static_cast<double>(k)) : ordered_json(nullptr);
    r["tasks_without_reference"] = ordered_json::array();
    for (const auto& s : outcome.summary) {
      if (!s.relative_to_reference) r["tasks_without_reference"].push_back(s.task);
    }
    doc["relative_to_reference"] = r;
  }
  doc["configs"] = configs;
  doc["versions"] = versions;
  doc["n-shot"] = nshot;
  doc["higher_is_better"] = higher;
  doc["n-samples"] = nsamples;
  ordered_json config;
  config["model"] = backend.model_identity();
  config["backend"] = backend.identity();
  config["fewshot_seed"] = o.fewshot_seed;
  config["limit"] = o.limit ? ordered_json(*o.limit) : ordered_json(nullptr);
  config["num_fewshot_override"] = o.num_fewshot ? ordered_json(*o.num_fewshot) : ordered_json(nullptr);
  config["settings"] = o.cli_settings;
  doc["config"] = config;
  doc["datasets"] = datasets;
  doc["referee_version"] = kVersion;
  doc["git_hash"] = kGitHash;
  // What differs between an interrupted-and-resumed run and an uninterrupted one lives here only.
  doc["run"] = {{"started", started},
                {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
                {"requests", outcome.requests},
                {"sent", outcome.sent},
                {"cached", outcome.cached},
                {"retried", outcome.retried},
                {"cache", o.cache_path.empty() ? ordered_json(nullptr) : ordered_json(o.cache_path.string())}};
  outcome.results = doc;
  if (!o.output_dir.empty()) {
    fs::create_directories(o.output_dir);
    write_file_atomically(o.output_dir / "results.json", doc.dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n");
  }
  return outcome;
}

}  // namespace referee::eval
