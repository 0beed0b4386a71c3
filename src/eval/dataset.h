// Datasets for `referee eval`: the rows a task evaluates, read from files on this machine the way
// lm-evaluation-harness (through Hugging Face `datasets`) would read them from the hub.
//  - `dataset_path: json|csv` with `dataset_kwargs.data_files` (a path, a list, or a map from split
//    to path(s); relative to the task file's directory; globs expanded) reads local files.
//  - Any other `dataset_path` names a hub dataset (e.g. HAERAE-HUB/KMMLU); it is looked up as
//    ROOT/<owner>/<name>/ in each data root in turn (--data-dir, REFEREE_DATA_DIR, the bundled
//    samples), laid out as `huggingface-cli download --local-dir` leaves it. docs/eval-datasets.md
//    lists the layouts known per benchmark and the generic fallback.
// Rows are JSON objects with columns in file order. Every malformed input is one referee::Error
// naming the dataset, the split and the file. Functions are stateless and safe to call from threads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace referee::eval {

using Document = nlohmann::ordered_json;

struct DatasetRequest {
  std::string dataset_path;                    // "json", "csv", or a hub id "owner/name"
  std::optional<std::string> dataset_name;     // the hub config (KMMLU's subject, KoBEST's task)
  nlohmann::ordered_json dataset_kwargs;       // as the task file wrote it (data_files, data_dir, field)
  std::filesystem::path task_dir;              // relative data_files resolve against this
  std::vector<std::filesystem::path> data_roots;  // searched in order for hub datasets
};

// Bounds on what one file may make us allocate; defaults suit every released Korean benchmark.
struct ReadLimits {
  int64_t max_rows = 10'000'000;
  int64_t max_line_bytes = 64 << 20;           // one JSON line (a CSV field: at most 16 MiB)
  int64_t max_file_bytes = int64_t{4} << 30;   // a whole JSON document read at once
  int max_depth = 64;                          // JSON nesting
};

std::vector<Document> load_split(const DatasetRequest& request, const std::string& split);
// The splits that have files (known split names found in the layout, or data_files' keys).
std::vector<std::string> available_splits(const DatasetRequest& request);
// For the results file: {"dataset_path", "dataset_name", "split", "files": [{"path", "bytes",
// "xxh3_128"}]}: which files the split is read from, so a rerun can show it read the same bytes.
nlohmann::ordered_json dataset_identity(const DatasetRequest& request, const std::string& split);
// The files a split is read from, in reading order (what load_split concatenates).
std::vector<std::filesystem::path> split_files(const DatasetRequest& request,
                                               const std::string& split);

// The data roots in the order they are searched: `flag` (--data-dir) if given, then each entry of
// $REFEREE_DATA_DIR (':'-separated), then `bundled` (the repository's data/eval/samples) if given.
std::vector<std::filesystem::path> data_roots(const std::optional<std::filesystem::path>& flag,
                                              const std::optional<std::filesystem::path>& bundled);

// Parsers from memory (also the fuzz target's entry points); `source` names the input in errors.
// JSON Lines: one object per line, blank lines skipped; every bad line is listed in one error.
std::vector<Document> parse_json_lines(std::string_view text, std::string_view source,
                                       const ReadLimits& limits = {});
// A `.json` file as `datasets` reads it: an array of objects; an object holding one list of
// objects (or the list named by `field`); or, failing those, JSON Lines.
std::vector<Document> parse_json_file_text(std::string_view text, std::string_view source,
                                           const std::optional<std::string>& field = {},
                                           const ReadLimits& limits = {});
// One file, its format chosen by its extension (.jsonl, .json, .csv, .tsv; .parquet is refused).
std::vector<Document> read_data_file(const std::filesystem::path& path,
                                     const std::optional<std::string>& field = {},
                                     const ReadLimits& limits = {});

}  // namespace referee::eval
