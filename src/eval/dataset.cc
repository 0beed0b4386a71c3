// Finding a split's files (local data_files, or a hub dataset's layout under a data root), reading
// them (eval/dataset_formats.cc) and naming them for the results file.
#include "eval/dataset.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>

#include "util/error.h"
#include "util/hash.h"

namespace referee::eval {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kDocs = "see docs/eval-datasets.md";
const std::vector<std::string> kExtensions = {"jsonl", "json", "csv", "tsv"};
const std::vector<std::string> kKnownSplits = {"train", "dev", "validation", "valid", "val",
                                               "test"};

enum class Format { kByExtension, kJson, kCsv };

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "HAERAE-HUB/KMMLU (Accounting, test)": the prefix of every message about a split.
std::string label(const DatasetRequest& r, const std::string& split) {
  std::string out = r.dataset_path;
  out += " (";
  if (r.dataset_name) out += *r.dataset_name + ", ";
  out += split + ")";
  return out;
}

Error with_prefix(const std::string& prefix, const Error& e) {
  return Error(e.kind(), prefix + ": " + e.message());
}

char fold(char c, bool fold_case) {
  return fold_case ? static_cast<char>(std::tolower(static_cast<unsigned char>(c))) : c;
}

// Shell-style match of one path component: '*' any run, '?' one character, nothing else special.
bool match_component(std::string_view pattern, std::string_view name, bool fold_case) {
  size_t p = 0, n = 0, star = std::string_view::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() &&
        (pattern[p] == '?' || fold(pattern[p], fold_case) == fold(name[n], fold_case))) {
      ++p, ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++, mark = n;
    } else if (star != std::string_view::npos) {
      p = star + 1, n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool has_glob(std::string_view s) { return s.find_first_of("*?") != std::string_view::npos; }

// Expands `pattern` (components separated by '/', '**' for any depth) under `base`; regular files
// only, sorted, hidden entries skipped as `datasets` skips them. With `fold_case` every component
// matches regardless of ASCII case (hub releases spell splits Train.tsv or train.jsonl).
void glob_into(const fs::path& base, const std::vector<std::string>& parts, size_t i,
               bool fold_case, std::vector<fs::path>& out) {
  std::error_code ec;
  if (i == parts.size()) {
    if (fs::is_regular_file(base, ec)) out.push_back(base);
    return;
  }
  const std::string& part = parts[i];
  if (part == "**") {
    glob_into(base, parts, i + 1, fold_case, out);
    if (!fs::is_directory(base, ec)) return;
    for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.empty() || name[0] == '.') continue;
      if (it->is_directory(ec)) glob_into(it->path(), parts, i, fold_case, out);
    }
    return;
  }
  if (!has_glob(part) && !fold_case) {
    glob_into(base / part, parts, i + 1, fold_case, out);
    return;
  }
  if (!fs::is_directory(base, ec)) return;
  for (fs::directory_iterator it(base, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (match_component(part, name, fold_case))
      glob_into(it->path(), parts, i + 1, fold_case, out);
  }
}

std::vector<fs::path> glob(const fs::path& base, const std::string& pattern,
                           bool fold_case = false) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= pattern.size()) {
    size_t slash = pattern.find('/', start);
    if (slash == std::string::npos) slash = pattern.size();
    std::string part = pattern.substr(start, slash - start);
    if (!part.empty() && part != ".") parts.push_back(std::move(part));
    start = slash + 1;
  }
  std::vector<fs::path> out;
  glob_into(pattern.size() && pattern[0] == '/' ? fs::path("/") : base, parts, 0, fold_case, out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::vector<Document> read_as(const fs::path& path, Format format,
                              const std::optional<std::string>& field) {
  const std::string ext = lower(path.extension().string());
  const bool refused = ext == ".parquet" || ext == ".arrow";  // read_data_file says why
  if (format == Format::kJson && !refused && ext != ".json" && ext != ".jsonl" && ext != ".ndjson")
    throw Error::not_supported(path.string(),
                               "dataset_path json with a file not ending .json or .jsonl");
  if (format == Format::kCsv && !refused && ext != ".csv" && ext != ".tsv")
    throw Error::not_supported(path.string(),
                               "dataset_path csv with a file not ending .csv or .tsv");
  return read_data_file(path, field);
}

std::optional<std::string> kwarg_string(const DatasetRequest& r, const char* key) {
  if (!r.dataset_kwargs.is_object()) return std::nullopt;
  auto it = r.dataset_kwargs.find(key);
  if (it == r.dataset_kwargs.end() || it->is_null()) return std::nullopt;
  if (!it->is_string())
    throw Error::invalid_argument(r.dataset_path,
                                  fmt::format("dataset_kwargs.{} must be a string", key));
  return it->get<std::string>();
}

// ---- dataset_path: json / csv with data_files ----

std::map<std::string, std::vector<std::string>> data_files_map(const DatasetRequest& r) {
  const auto where = fmt::format("dataset_path {}", r.dataset_path);
  if (!r.dataset_kwargs.is_object() || !r.dataset_kwargs.contains("data_files"))
    throw Error::invalid_argument(where, "needs dataset_kwargs.data_files (a path, a list of "
                                         "paths, or a map from split to paths)");
  const auto& files = r.dataset_kwargs["data_files"];
  auto as_list = [&](const nlohmann::ordered_json& v, const std::string& split) {
    std::vector<std::string> out;
    if (v.is_string()) {
      out.push_back(v.get<std::string>());
    } else if (v.is_array()) {
      for (const auto& item : v) {
        if (!item.is_string())
          throw Error::invalid_argument(where, fmt::format("data_files for split '{}' must be "
                                                           "paths (strings)", split));
        out.push_back(item.get<std::string>());
      }
    } else {
      throw Error::invalid_argument(where, fmt::format("data_files for split '{}' must be a path "
                                                       "or a list of paths", split));
    }
    if (out.empty())
      throw Error::invalid_argument(where, fmt::format("data_files for split '{}' is empty", split));
    return out;
  };
  std::map<std::string, std::vector<std::string>> out;
  if (files.is_object()) {
    for (auto it = files.begin(); it != files.end(); ++it) out[it.key()] = as_list(*it, it.key());
    if (out.empty()) throw Error::invalid_argument(where, "data_files is an empty map");
  } else {
    out["train"] = as_list(files, "train");  // as `datasets`: unnamed files are the train split
  }
  return out;
}

std::vector<fs::path> local_split_files(const DatasetRequest& r, const std::string& split) {
  const auto map = data_files_map(r);
  auto it = map.find(split);
  if (it == map.end()) {
    std::string have;
    for (const auto& [name, _] : map) have += (have.empty() ? "" : ", ") + name;
    throw Error::not_found(label(r, split),
                           fmt::format("no data_files for this split (data_files has: {})", have));
  }
  fs::path base = r.task_dir;
  if (auto dir = kwarg_string(r, "data_dir")) base = fs::path(*dir).is_absolute() ? fs::path(*dir) : base / *dir;
  std::vector<fs::path> out;
  for (const auto& pattern : it->second) {
    if (has_glob(pattern)) {
      auto found = glob(base, pattern);
      if (found.empty())
        throw Error::not_found(label(r, split),
                               fmt::format("data_files pattern '{}' matches no file under {}",
                                           pattern, base.string()));
      out.insert(out.end(), found.begin(), found.end());
    } else {
      fs::path p = fs::path(pattern).is_absolute() ? fs::path(pattern) : base / pattern;
      std::error_code ec;
      if (!fs::is_regular_file(p, ec))
        throw Error::not_found(label(r, split), fmt::format("data file {} does not exist", p.string()));
      out.push_back(p);
    }
  }
  return out;
}

// ---- hub datasets under a data root ----

// The file patterns tried for a split, in order, relative to ROOT/<owner>/<name>/. The first that
// matches any file wins. {n} is dataset_name, {s} the split, {e} each extension in turn.
std::vector<std::string> hub_patterns(const DatasetRequest& r) {
  std::vector<std::string> out;
  const std::string id = lower(r.dataset_path);
  if (id == "haerae-hub/kmmlu" || id == "haerae-hub/kmmlu-hard") {
    out.push_back("data/{n}-{s}.{e}");  // the CSV release: data/Accounting-test.csv
  }
  if (r.dataset_name) {
    for (const char* p : {"{n}/{s}.{e}", "{n}/{s}-*.{e}", "{n}/*_{s}.{e}", "data/{n}/{s}.{e}",
                          "data/{n}/{s}-*.{e}", "data/{n}-{s}.{e}", "data/{n}-{s}-*.{e}",
                          "{n}-{s}.{e}", "{n}_{s}.{e}"})
      out.push_back(p);
  } else {
    for (const char* p : {"{s}.{e}", "{s}-*.{e}", "data/{s}.{e}", "data/{s}-*.{e}"})
      out.push_back(p);
  }
  return out;
}

std::string substitute(std::string pattern, const std::string& name, const std::string& split,
                       const std::string& ext) {
  auto replace_all = [&](const std::string& key, const std::string& value) {
    for (size_t pos = 0; (pos = pattern.find(key, pos)) != std::string::npos; pos += value.size())
      pattern.replace(pos, key.size(), value);
  };
  replace_all("{n}", name);
  replace_all("{s}", split);
  replace_all("{e}", ext);
  return pattern;
}

std::vector<std::string> split_aliases(const std::string& split) {
  if (split == "validation") return {"validation", "valid", "val", "dev"};
  if (split == "dev") return {"dev", "validation", "valid", "val"};
  return {split};
}

struct HubLookup {
  std::vector<fs::path> files;
  std::vector<fs::path> parquet;  // what matched with .parquet, for a clear refusal
};

HubLookup hub_find(const DatasetRequest& r, const fs::path& base, const std::string& split,
                   bool aliases = true) {
  HubLookup out;
  const std::string name = r.dataset_name.value_or("");
  for (const auto& alias : aliases ? split_aliases(split) : std::vector<std::string>{split}) {
    for (const auto& pattern : hub_patterns(r)) {
      for (const auto& ext : kExtensions) {
        auto found = glob(base, substitute(pattern, name, alias, ext), /*fold_case=*/true);
        if (!found.empty()) {
          out.files = std::move(found);
          return out;
        }
      }
      if (out.parquet.empty())
        out.parquet = glob(base, substitute(pattern, name, alias, "parquet"), /*fold_case=*/true);
    }
  }
  // `datasets`' rule for a repository whose file names name no split: everything is train.
  if (split == "train") {
    const fs::path dir = r.dataset_name && fs::is_directory(base / name) ? base / name : base;
    if (!r.dataset_name || dir != base) {
      bool split_named = false;
      std::vector<fs::path> all;
      for (const auto& ext : kExtensions) {
        auto found = glob(dir, "**/*." + ext, /*fold_case=*/true);
        all.insert(all.end(), found.begin(), found.end());
      }
      for (const auto& f : all) {
        const std::string stem = lower(f.stem().string());
        for (const auto& s : kKnownSplits)
          if (stem == s || stem.find(s + "-") == 0 || stem.find("-" + s) != std::string::npos ||
              stem.find("_" + s) != std::string::npos)
            split_named = true;
      }
      if (!split_named && !all.empty()) {
        std::sort(all.begin(), all.end());
        out.files = std::move(all);
      }
    }
  }
  return out;
}

std::string expected_text(const DatasetRequest& r, const std::string& split) {
  const auto patterns = hub_patterns(r);
  const std::string name = r.dataset_name.value_or("");
  const std::string id = lower(r.dataset_path);
  const bool csv_release = id == "haerae-hub/kmmlu" || id == "haerae-hub/kmmlu-hard";
  return substitute(patterns[0], name, split, csv_release ? "csv" : "jsonl");
}

std::vector<fs::path> hub_split_files(const DatasetRequest& r, const std::string& split) {
  const std::string who = label(r, split);
  std::vector<std::string> searched;
  for (const auto& root : r.data_roots) {
    const fs::path base = root / r.dataset_path;
    std::error_code ec;
    if (!fs::is_directory(base, ec)) {
      searched.push_back(base.string());
      continue;
    }
    if (r.dataset_kwargs.is_object() && r.dataset_kwargs.contains("data_files")) {
      // The task names the files itself (and maybe data_dir): relative to the repository.
      DatasetRequest inner = r;
      inner.task_dir = base;
      return local_split_files(inner, split);
    }
    fs::path where = base;
    if (auto dir = kwarg_string(r, "data_dir")) {
      if (dir->find("..") != std::string::npos || fs::path(*dir).is_absolute())
        throw Error::invalid_argument(who, "dataset_kwargs.data_dir must stay inside the dataset");
      where = base / *dir;
    }
    auto found = hub_find(r, where, split);
    if (!found.files.empty()) return found.files;
    if (!found.parquet.empty())
      throw Error::not_supported(
          who, fmt::format("{} holds only parquet files for this split ({}); referee reads the "
                           "JSON Lines, JSON and CSV releases ({})",
                           base.string(), found.parquet[0].string(), kDocs));
    throw Error::not_found(who, fmt::format("no file under {}; expected {} ({} for the other "
                                            "layouts read)",
                                            base.string(), expected_text(r, split), kDocs));
  }
  if (r.data_roots.empty())
    throw Error::not_found(who, fmt::format("no data directory to look in; download the dataset "
                                            "(huggingface-cli download --repo-type dataset {} "
                                            "--local-dir DIR/{}) and pass --data-dir DIR or set "
                                            "REFEREE_DATA_DIR ({})",
                                            r.dataset_path, r.dataset_path, kDocs));
  std::string list;
  for (const auto& s : searched) list += (list.empty() ? "" : ", ") + s;
  throw Error::not_found(who, fmt::format("no such directory (looked for {}); download it with "
                                          "huggingface-cli download --repo-type dataset {} "
                                          "--local-dir DIR/{} and pass --data-dir DIR ({})",
                                          list, r.dataset_path, r.dataset_path, kDocs));
}

Format format_of(const DatasetRequest& r) {
  const std::string p = lower(r.dataset_path);
  if (p == "json") return Format::kJson;
  if (p == "csv") return Format::kCsv;
  if (p == "parquet" || p == "arrow" || p == "text" || p == "pandas" || p == "webdataset")
    throw Error::not_supported(
        fmt::format("dataset_path {}", r.dataset_path),
        fmt::format("local {} files; use dataset_path json (JSON Lines or JSON) or csv ({})",
                    p, kDocs));
  if (r.dataset_path.empty()) throw Error::invalid_argument("dataset_path", "is empty");
  if (r.dataset_path.find("..") != std::string::npos || r.dataset_path.front() == '/')
    throw Error::invalid_argument(
        fmt::format("dataset_path {}", r.dataset_path),
        "a hub dataset is named owner/name (no '..', not an absolute path)");
  if (r.dataset_name && (r.dataset_name->empty() ||
                         r.dataset_name->find_first_of("/\\*?") != std::string::npos ||
                         *r.dataset_name == "." || *r.dataset_name == ".."))
    throw Error::invalid_argument(fmt::format("dataset_name {}", *r.dataset_name),
                                  "a config name may not be empty or contain '/', '\\', '*' or '?'");
  return Format::kByExtension;
}

}  // namespace

std::vector<fs::path> split_files(const DatasetRequest& request, const std::string& split) {
  const Format format = format_of(request);
  if (split.empty() || split.find_first_of("/\\*?") != std::string::npos || split == "..")
    throw Error::invalid_argument(label(request, split),
                                  "a split name may not be empty or contain '/', '\\', '*' or '?'");
  if (format != Format::kByExtension) return local_split_files(request, split);
  return hub_split_files(request, split);
}

std::vector<Document> load_split(const DatasetRequest& request, const std::string& split) {
  const Format format = format_of(request);
  const auto files = split_files(request, split);
  const auto field = kwarg_string(request, "field");
  std::vector<Document> rows;
  for (const auto& file : files) {
    try {
      auto part = read_as(file, format, field);
      if (rows.empty()) {
        rows = std::move(part);
      } else {
        rows.insert(rows.end(), std::make_move_iterator(part.begin()),
                    std::make_move_iterator(part.end()));
      }
    } catch (const Error& e) {
      throw with_prefix(label(request, split), e);
    }
  }
  return rows;
}

std::vector<std::string> available_splits(const DatasetRequest& request) {
  const Format format = format_of(request);
  std::vector<std::string> out;
  if (format != Format::kByExtension) {
    for (const auto& [name, _] : data_files_map(request)) out.push_back(name);
    return out;
  }
  for (const auto& root : request.data_roots) {
    const fs::path base = root / request.dataset_path;
    std::error_code ec;
    if (!fs::is_directory(base, ec)) continue;
    for (const char* split : {"train", "dev", "validation", "test"})
      if (!hub_find(request, base, split, /*aliases=*/false).files.empty()) out.push_back(split);
    break;  // the first root that has the dataset is the one read
  }
  return out;
}

nlohmann::ordered_json dataset_identity(const DatasetRequest& request, const std::string& split) {
  nlohmann::ordered_json out;
  out["dataset_path"] = request.dataset_path;
  out["dataset_name"] = request.dataset_name ? nlohmann::ordered_json(*request.dataset_name)
                                             : nlohmann::ordered_json(nullptr);
  out["split"] = split;
  out["files"] = nlohmann::ordered_json::array();
  for (const auto& file : split_files(request, split)) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error::io(file.string(), "cannot open the file for reading");
    Hasher hasher;
    std::string buffer(1 << 20, '\0');
    int64_t bytes = 0;
    while (in) {
      in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
      const auto got = in.gcount();
      if (got <= 0) break;
      hasher.update(std::string_view(buffer.data(), static_cast<size_t>(got)));
      bytes += got;
    }
    if (in.bad()) throw Error::io(file.string(), "read failed");
    out["files"].push_back({{"path", file.string()}, {"bytes", bytes},
                            {"xxh3_128", hasher.digest().hex()}});
  }
  return out;
}

std::vector<fs::path> data_roots(const std::optional<fs::path>& flag,
                                 const std::optional<fs::path>& bundled) {
  std::vector<fs::path> out;
  if (flag) out.push_back(*flag);
  if (const char* env = std::getenv("REFEREE_DATA_DIR"); env && *env) {
    std::string_view rest = env;
    while (!rest.empty()) {
      const size_t colon = rest.find(':');
      const std::string_view part = rest.substr(0, colon);
      if (!part.empty()) out.emplace_back(std::string(part));
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  if (bundled) out.push_back(*bundled);
  return out;
}

}  // namespace referee::eval
