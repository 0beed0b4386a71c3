// One `referee eval` run, start to finish: select tasks from task directories, load their
// documents, render every request, answer them through the cache and a backend (all tasks' requests
// in one pool, so concurrency spans tasks), score each task, and write the results file in
// lm-evaluation-harness's shape plus one samples file per task.
//
// Reproducibility is the point: a request's answer is cached under a key that names everything
// that determines it, so a run killed at any moment and started again sends only what was never
// answered and writes the same results; the results record the task configs, their versions, the
// datasets' file hashes, the model's identity and referee's version and git hash.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/backend.h"
#include "eval/task.h"

namespace referee::eval {

struct EvalOptions {
  std::vector<std::string> tasks;                  // names, tags or groups
  std::vector<std::filesystem::path> task_dirs;    // searched for *.yaml task files
  std::vector<std::filesystem::path> data_roots;   // local copies of hub datasets
  std::optional<int64_t> num_fewshot;              // overrides every task's num_fewshot
  uint64_t fewshot_seed = 1234;                    // lm-evaluation-harness's default
  std::optional<int64_t> limit;                    // the first N documents of each task
  std::filesystem::path output_dir;                // results.json, samples_<task>.jsonl; empty: none
  std::filesystem::path cache_path;                // SQLite request cache; empty: no cache
  std::optional<std::filesystem::path> reference;  // frontier scores, for "% of reference"
  int max_retries = 6;
  double backoff_base_s = 0.25, backoff_cap_s = 8.0;
  bool progress = true;                            // progress bar on a terminal
  nlohmann::ordered_json cli_settings;             // recorded as given, in results.config
  // When set (Ctrl-C), no new request starts; answers in flight are cached, then run_eval throws
  // eval::Cancelled (executor.h) and a rerun resumes.
  const std::atomic<bool>* cancel = nullptr;
};

// One task's selection and loaded data, before any request is sent.
struct PreparedTask {
  Task task;
  std::string split;
  std::vector<Document> docs;
  int64_t original_docs = 0;  // before --limit
  int64_t num_fewshot = 0;
  std::vector<Request> requests;
  nlohmann::ordered_json dataset;  // which files were read, with their hashes
};

// Loads and renders every selected task (no backend needed: --dry-run stops here).
std::vector<PreparedTask> prepare_tasks(const EvalOptions& options);

struct TaskSummary {
  std::string task;
  std::string metric;  // "acc,none"
  double value = 0;
  std::optional<double> stderr_value;
  size_t n = 0;
  std::optional<double> relative_to_reference;  // value / the reference's value
};

struct EvalOutcome {
  nlohmann::ordered_json results;  // the results file's document
  std::vector<TaskSummary> summary;
  size_t requests = 0, sent = 0, cached = 0, retried = 0;
};

// Runs everything and writes the files (atomically). Throws referee::Error.
EvalOutcome run_eval(const EvalOptions& options, Backend& backend);

// A reference file: {"reference": "<model name>", "scores": {"<task>": {"<metric,filter>": v}}}.
// Throws Error::corrupt naming the file for anything else.
nlohmann::ordered_json load_reference(const std::filesystem::path& path);

}  // namespace referee::eval
