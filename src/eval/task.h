// Benchmark tasks in lm-evaluation-harness's YAML format, so users bring the task files they
// already have: loading (with `include`), a registry of task directories, rendering documents into
// requests exactly as lm-eval renders them (task_render.cc), and scoring the responses.
//
// Accepted fields: task, task_alias, tag (string or list), group (with a string `task`: an old-style
// tag), include (string or list, relative to the including file; the including file's fields
// replace the included ones, key by key), dataset_path, dataset_name, dataset_kwargs (kept as
// written), training_split, validation_split, test_split, fewshot_split, description (a template),
// doc_to_text, doc_to_target, doc_to_choice, target_delimiter (" "), fewshot_delimiter ("\n\n"),
// num_fewshot, fewshot_config.sampler (default | first_n), output_type (multiple_choice,
// generate_until (lm-eval's default), loglikelihood, loglikelihood_rolling), generation_kwargs,
// repeats, filter_list, metric_list (acc, acc_norm, exact_match, perplexity, word_perplexity,
// byte_perplexity, bits_per_byte; aggregation must be the metric's own), metadata (kept as given).
//
// Accepted and ignored, with a warning in TaskConfig::warnings: should_decontaminate,
// doc_to_decontamination_query, unsafe_code, dataset_kwargs.trust_remote_code (kept in
// dataset_kwargs; the data loader decides), `process_docs: null`.
//
// Refused with Error::not_supported naming file, line and construct: any custom YAML tag (`!function
// utils.x`: Python code referee will not run), process_docs / process_results / custom_dataset /
// class / use_prompt / doc_to_image / doc_to_audio / gen_prefix, fewshot_config.samples, filters
// and metrics not in the built-in tables (filters.h, metrics.h), group task lists with inline task
// definitions, aggregate_metric_list entries other than `aggregation: mean`.
// Built-in equivalents of Python helpers: none. Every `!function` names code in the task's own
// utils.py whose behaviour cannot be known from its name, so none is mapped; the built-in table is
// the filter functions of filters.h and the metrics above, which are lm-eval's own.
//
// Any other key is an error naming the key, the file and the line (Error::corrupt).
// Bounds: a file is at most 1 MiB; includes nest at most 8 deep and never in a cycle; YAML nests at
// most 64 deep; num_fewshot <= 10000; repeats <= 1024; lists (choices, filters, metrics, stop
// strings) at most 100000 items.
//
// Group files (`group:` with a `task:` list of task names, tags or other groups) are kept as
// TaskRegistry groups; selecting a group selects its tasks. Their aggregate_metric_list is kept
// (GroupConfig::aggregate_metric_list) for the caller to apply; referee scores tasks one by one.
//
// Thread-safety: TaskConfig, TaskRegistry and Task are immutable after construction; a Task's
// build_requests and score may run concurrently.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "eval/filters.h"
#include "eval/metrics.h"
#include "eval/request.h"
#include "util/error.h"

namespace referee::eval {

using Document = nlohmann::ordered_json;

// doc_to_text / doc_to_target / doc_to_choice / description as the file wrote it: a string (a
// Jinja template, or a column name), an integer, or a list (doc_to_choice, doc_to_target).
struct TemplateField {
  enum class Kind { kAbsent, kString, kInt, kList };
  Kind kind = Kind::kAbsent;
  std::string text;
  int64_t number = 0;
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  bool present() const { return kind != Kind::kAbsent; }
  nlohmann::ordered_json to_json() const;  // null when absent
};

struct MetricConfig {
  std::string metric;                // acc, acc_norm, exact_match, perplexity, ...
  std::string aggregation;           // the metric's own (mean, perplexity, weighted_perplexity, ...)
  bool higher_is_better = true;
  ExactMatchOptions exact_match;     // exact_match only
};

struct TaskConfig {
  std::string name;
  std::optional<std::string> alias;  // task_alias
  std::vector<std::string> tags;
  std::filesystem::path source;
  std::vector<std::filesystem::path> included;  // files pulled in through include, in load order
  std::string dataset_path;
  std::optional<std::string> dataset_name;
  nlohmann::ordered_json dataset_kwargs = nlohmann::ordered_json::object();  // as written
  std::optional<std::string> training_split, validation_split, test_split, fewshot_split;
  TemplateField description, doc_to_text, doc_to_target, doc_to_choice;
  std::string target_delimiter = " ";
  std::string fewshot_delimiter = "\n\n";
  int64_t num_fewshot = 0;
  std::string fewshot_sampler = "default";  // "default" (random) or "first_n"
  std::string output_type = "generate_until";
  GenerationSettings generation;  // generate_until; defaults as lm-eval fills them in
  int64_t repeats = 1;
  std::vector<FilterPipeline> filters;  // never empty: [none: take_first] unless the file says
  std::vector<MetricConfig> metrics;    // never empty: the output type's defaults unless given
  nlohmann::ordered_json metadata = nlohmann::ordered_json::object();
  std::vector<std::string> warnings;

  nlohmann::ordered_json to_json() const;  // the resolved config, for the results' "configs"
};

struct GroupConfig {
  std::string name;
  std::optional<std::string> alias;
  std::vector<std::string> tasks;  // task names, tags or groups
  nlohmann::ordered_json aggregate_metric_list = nlohmann::ordered_json::array();
  nlohmann::ordered_json metadata = nlohmann::ordered_json::object();
  std::filesystem::path source;
};

// Loads one task file (resolving include against its directory). Throws referee::Error: not_found
// / io for the file, corrupt for bad YAML or fields, not_supported for constructs referee refuses;
// invalid_argument if the file is a group file.
TaskConfig load_task_file(const std::filesystem::path& yaml);
// The same for text already in memory; `source` names it in errors and anchors include.
TaskConfig parse_task_yaml(std::string_view text, const std::filesystem::path& source);

// A task file of a directory that could not be loaded (e.g. lm-eval's own tasks that run Python
// through `!function`): kept so that selecting it reports why, while the others stay usable.
struct UnavailableTask {
  std::string name;  // the file's `task` (or `group`) when it could be read; else empty
  std::filesystem::path source;
  ErrorKind kind = ErrorKind::kNotSupported;
  std::string error;
};

class TaskRegistry {
 public:
  // Loads every *.yaml / *.yml under `directory`, recursively, in path order. Files without a
  // `task` or `group` key (shared templates meant for include) are skipped with a warning; a
  // file that fails to load is recorded in unavailable() and its error is thrown when it is
  // selected, so one unsupported task does not hide the rest of a directory. Throws for a task
  // name defined twice (naming both files).
  void add_directory(const std::filesystem::path& directory);
  // Loads one file; throws its error at once.
  void add_file(const std::filesystem::path& yaml);
  // The task of that name; else every task with that tag; else the tasks of that group
  // (recursively). Throws Error::not_found if nothing matches.
  std::vector<const TaskConfig*> select(const std::string& name_or_tag) const;
  const std::vector<TaskConfig>& tasks() const { return tasks_; }
  const std::vector<GroupConfig>& groups() const { return groups_; }
  const std::vector<std::string>& warnings() const { return warnings_; }
  const std::vector<UnavailableTask>& unavailable() const { return unavailable_; }
  // One row per task: name, tags, output_type, dataset (path[/name]), version, source file.
  nlohmann::ordered_json list() const;

 private:
  void collect(const std::string& name, int depth, std::vector<const TaskConfig*>& out) const;
  std::vector<TaskConfig> tasks_;
  std::vector<GroupConfig> groups_;
  std::vector<std::string> warnings_;
  std::vector<UnavailableTask> unavailable_;
};

class Task {
 public:
  // Parses the templates and compiles filters and metrics once; throws referee::Error.
  explicit Task(TaskConfig config);
  ~Task();
  Task(Task&&) noexcept;
  Task& operator=(Task&&) noexcept;

  const TaskConfig& config() const { return config_; }
  // test_split if set, else validation_split (lm-eval's order); throws if neither is set.
  std::string eval_split() const;
  // fewshot_split if set, else training_split, else validation_split, else test_split.
  std::optional<std::string> fewshot_split() const;

  // The requests of every document, in document order, each document's requests contiguous
  // (choices in order for multiple_choice; repeats in order for generate_until). The few-shot
  // examples are drawn as lm-eval draws them: one Python random.Random(fewshot_seed) (lm-eval's
  // default seed is 1234) advanced document by document; sample(pool, n) with n = num_fewshot + 1
  // when fewshot_split equals test_split (as written in the file, both possibly unset), the
  // evaluated document itself dropped, the first num_fewshot kept; first_n takes the pool's head.
  // Throws Error::invalid_argument naming the task and document on a template error, and if the
  // pool is smaller than the draw.
  std::vector<Request> build_requests(const std::vector<Document>& eval_docs,
                                      const std::vector<Document>& fewshot_pool,
                                      int64_t num_fewshot, uint64_t fewshot_seed = 1234) const;
  // Same context rendering, for one document (without few-shot examples).
  std::string render_context(const Document& doc) const;

  struct Scores {
    // lm-eval's results shape: {"alias": name, "acc,none": 0.5, "acc_stderr,none": 0.28, ...};
    // stderr is the string "N/A" when n < 2 or when the metric has no closed-form stderr.
    nlohmann::ordered_json metrics;
    // One record per document and filter, lm-eval's samples_*.jsonl shape: doc_id, doc, target,
    // arguments ({"gen_args_0": {"arg_0": ..., "arg_1": ...}}), resps, filtered_resps, filter,
    // metrics (names), and each metric's value.
    std::vector<nlohmann::ordered_json> samples;
    // "metric,filter" -> aggregated value, and the number of documents scored.
    std::map<std::string, double> primary;
    size_t n = 0;
  };
  // `requests` and `responses` are what build_requests returned and the backend answered, in the
  // same order. Throws Error::invalid_argument if they do not line up with eval_docs.
  Scores score(const std::vector<Document>& eval_docs, const std::vector<Request>& requests,
               const std::vector<Response>& responses) const;

  struct Impl;

 private:
  TaskConfig config_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace referee::eval
