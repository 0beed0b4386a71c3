// Loading lm-evaluation-harness task files: YAML (PyYAML's typing of plain scalars), include,
// field checks and the task registry. Rendering and scoring are in task_render.cc.
#include "eval/task.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "util/error.h"
#include "util/utf8.h"

namespace referee::eval {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

constexpr size_t kMaxFileBytes = size_t{1} << 20;
constexpr int kMaxIncludeDepth = 8;
constexpr int kMaxYamlDepth = 64;
constexpr int64_t kMaxFewshot = 10000;
constexpr int64_t kMaxRepeats = 1024;
constexpr size_t kMaxListItems = 100000;
// Values one file may expand to once aliases are followed (an alias can repeat a large value).
constexpr size_t kMaxValues = 1000000;
thread_local size_t t_values_left = kMaxValues;

// A field of a task file and where it was written.
struct Field {
  std::string key;
  YAML::Node node;
  fs::path file;
};

std::string at(const fs::path& file, const YAML::Mark& mark) {
  if (mark.line < 0) return file.string();
  return fmt::format("{}: line {}", file.string(), mark.line + 1);
}

std::string at(const Field& f) { return at(f.file, f.node.Mark()); }

// --- YAML scalars, typed as PyYAML (YAML 1.1) types them --------------------------------------

bool is_plain(const YAML::Node& n) { return n.Tag() == "?" || n.Tag().empty(); }

std::optional<bool> yaml_bool(const std::string& s) {
  static const std::set<std::string> kTrue = {"yes", "Yes", "YES", "true", "True", "TRUE",
                                              "on",  "On",  "ON"};
  static const std::set<std::string> kFalse = {"no",    "No",    "NO",  "false", "False",
                                               "FALSE", "off",   "Off", "OFF"};
  if (kTrue.count(s)) return true;
  if (kFalse.count(s)) return false;
  return std::nullopt;
}

std::optional<int64_t> yaml_int(const std::string& s) {
  std::string digits;
  size_t i = 0;
  bool negative = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) negative = s[i++] == '-';
  if (i >= s.size()) return std::nullopt;
  int base = 10;
  if (s.compare(i, 2, "0x") == 0) {
    base = 16;
    i += 2;
  }
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (c == '_') continue;
    bool ok = base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                         : (c >= '0' && c <= '9');
    if (!ok) return std::nullopt;
    digits += c;
  }
  // Beyond int64 (PyYAML would make a big integer): kept as text.
  if (digits.empty() || digits.size() > (base == 16 ? 15u : 18u)) return std::nullopt;
  int64_t v = std::stoll(digits, nullptr, base);
  return negative ? -v : v;
}

std::optional<double> yaml_float(const std::string& s) {
  // PyYAML's float: digits with a dot (and an optional exponent), .inf or .nan.
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf") return INFINITY;
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return -INFINITY;
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return NAN;
  if (s.find('.') == std::string::npos) return std::nullopt;
  std::string cleaned;
  for (char c : s) {
    if (c == '_') continue;
    if (!(std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' ||
          c == 'e' || c == 'E')) {
      return std::nullopt;
    }
    cleaned += c;
  }
  if (cleaned.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(cleaned.c_str(), &end);
  if (end != cleaned.c_str() + cleaned.size()) return std::nullopt;
  return v;
}

void check_tag(const Field& f, const YAML::Node& n) {
  const std::string& tag = n.Tag();
  if (tag.empty() || tag == "?" || tag == "!" || tag.rfind("tag:yaml.org,2002:", 0) == 0) return;
  std::string shown = n.IsScalar() ? fmt::format("{} {}", tag, printable_utf8(n.Scalar())) : tag;
  if (tag == "!function") {
    throw not_supported(at(f.file, n.Mark()),
                        "'{}: {}' names Python code, which referee does not run; write the field "
                        "as a Jinja template (or a literal) instead",
                        f.key, shown);
  }
  throw not_supported(at(f.file, n.Mark()), "'{}' uses the YAML tag '{}', which referee does not "
                      "support", f.key, tag);
}

// A scalar's text; yaml-cpp writes some escapes (\xNN, \_) as raw bytes, so check it again.
const std::string& scalar_text(const Field& f, const YAML::Node& n) {
  const std::string& s = n.Scalar();
  if (!is_valid_utf8(s)) {
    throw corrupt(at(f.file, n.Mark()), "'{}' is not valid UTF-8 (write escapes as \\uXXXX)",
                  f.key);
  }
  return s;
}

// Converts a YAML value to JSON with PyYAML's scalar types; checks tags and bounds.
ojson to_json(const Field& f, const YAML::Node& n, int depth = 0) {
  if (depth > kMaxYamlDepth) {
    throw corrupt(at(f.file, n.Mark()), "'{}' nests deeper than {} levels", f.key, kMaxYamlDepth);
  }
  check_tag(f, n);
  if (t_values_left == 0) {
    throw corrupt(at(f.file, n.Mark()), "the file expands to more than {} values (through YAML "
                  "aliases?)", kMaxValues);
  }
  --t_values_left;
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar: {
      const std::string& s = scalar_text(f, n);
      if (!is_plain(n)) return s;
      if (auto b = yaml_bool(s)) return *b;
      if (auto i = yaml_int(s)) return *i;
      if (auto d = yaml_float(s)) return *d;
      return s;
    }
    case YAML::NodeType::Sequence: {
      if (n.size() > kMaxListItems) {
        throw corrupt(at(f.file, n.Mark()), "'{}' has more than {} items", f.key, kMaxListItems);
      }
      ojson a = ojson::array();
      for (const auto& item : n) a.push_back(to_json(f, item, depth + 1));
      return a;
    }
    case YAML::NodeType::Map: {
      if (n.size() > kMaxListItems) {
        throw corrupt(at(f.file, n.Mark()), "'{}' has more than {} entries", f.key, kMaxListItems);
      }
      ojson o = ojson::object();
      for (const auto& kv : n) {
        check_tag(f, kv.first);
        if (!kv.first.IsScalar()) {
          throw corrupt(at(f.file, kv.first.Mark()), "'{}' has a key that is not a string", f.key);
        }
        o[scalar_text(f, kv.first)] = to_json(f, kv.second, depth + 1);
      }
      return o;
    }
  }
  return nullptr;
}

bool is_null(const Field& f) {
  return f.node.IsNull() || (f.node.IsScalar() && is_plain(f.node) &&
                             (f.node.Scalar() == "~" || f.node.Scalar() == "null"));
}

std::string get_string(const Field& f) {
  check_tag(f, f.node);
  if (!f.node.IsScalar()) throw corrupt(at(f), "'{}' must be a string", f.key);
  return scalar_text(f, f.node);
}

std::optional<std::string> get_optional_string(const Field& f) {
  if (is_null(f)) return std::nullopt;
  return get_string(f);
}

int64_t get_int(const Field& f, int64_t min, int64_t max) {
  ojson j = to_json(f, f.node);
  if (!j.is_number_integer()) throw corrupt(at(f), "'{}' must be an integer", f.key);
  int64_t v = j.get<int64_t>();
  if (v < min || v > max) {
    throw corrupt(at(f), "'{}' is {}; it must be between {} and {}", f.key, v, min, max);
  }
  return v;
}

std::vector<std::string> get_string_list(const Field& f) {
  ojson j = to_json(f, f.node);
  std::vector<std::string> out;
  if (j.is_string()) {
    out.push_back(j.get<std::string>());
  } else if (j.is_array()) {
    for (const auto& item : j) {
      if (!item.is_string()) throw corrupt(at(f), "'{}' must be a string or a list of strings", f.key);
      out.push_back(item.get<std::string>());
    }
  } else if (!j.is_null()) {
    throw corrupt(at(f), "'{}' must be a string or a list of strings", f.key);
  }
  return out;
}

// --- Reading a file and resolving include ------------------------------------------------------

YAML::Node parse_yaml(std::string_view text, const fs::path& file) {
  if (text.size() > kMaxFileBytes) {
    throw corrupt(file.string(), "the file has {} bytes; a task file may have at most {}",
                  text.size(), kMaxFileBytes);
  }
  // YAML is Unicode text (PyYAML refuses other bytes too), and every value ends up in JSON.
  if (!is_valid_utf8(text)) throw corrupt(file.string(), "the file is not valid UTF-8 text");
  // yaml-cpp recurses per nesting level; refuse deep flow nesting before it sees the text.
  int depth = 0, max_depth = 0;
  for (char c : text) {
    if (c == '[' || c == '{') max_depth = std::max(max_depth, ++depth);
    if ((c == ']' || c == '}') && depth > 0) --depth;
  }
  if (max_depth > 4 * kMaxYamlDepth) {
    throw corrupt(file.string(), "brackets nest {} deep; a task file may nest at most {}",
                  max_depth, kMaxYamlDepth);
  }
  try {
    YAML::Node root = YAML::Load(std::string(text));
    return root;
  } catch (const YAML::Exception& e) {
    throw corrupt(at(file, e.mark), "not valid YAML: {}", e.msg);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw corrupt(file.string(), "not valid YAML: {}", e.what());
  }
}

std::string read_file(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) throw Error::not_found(file.string(), "no such task file");
  if (!fs::is_regular_file(file, ec)) throw Error::invalid_argument(file.string(), "not a file");
  auto size = fs::file_size(file, ec);
  if (ec) throw Error::io(file.string(), ec.message());
  if (size > kMaxFileBytes) {
    throw corrupt(file.string(), "the file has {} bytes; a task file may have at most {}", size,
                  kMaxFileBytes);
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error::io(file.string(), "cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Loader {
  std::vector<fs::path> included;
  std::vector<std::string> warnings;

  // The fields of `text` (from `file`) with its includes merged under it.
  std::vector<Field> load(std::string_view text, const fs::path& file, int depth,
                          std::vector<fs::path>& chain) {
    YAML::Node root = parse_yaml(text, file);
    if (!root.IsMap()) {
      if (root.IsNull()) throw corrupt(file.string(), "the file is empty");
      throw corrupt(at(file, root.Mark()), "a task file must be a YAML mapping of fields");
    }
    std::vector<Field> own;
    std::optional<Field> include;
    for (const auto& kv : root) {
      if (!kv.first.IsScalar()) throw corrupt(at(file, kv.first.Mark()), "a field name must be a string");
      Field f{printable_utf8(kv.first.Scalar()), kv.second, file};
      check_tag(f, kv.first);
      for (const auto& seen : own) {
        if (seen.key == f.key) throw corrupt(at(f), "the field '{}' is given twice", f.key);
      }
      if (f.key == "include") {
        include = f;
      } else {
        own.push_back(f);
      }
    }
    if (!include) return own;

    std::vector<std::string> targets = get_string_list(*include);
    std::vector<Field> merged;
    auto put = [&merged](const Field& f) {
      for (auto& m : merged) {
        if (m.key == f.key) {
          m = f;
          return;
        }
      }
      merged.push_back(f);
    };
    // lm-eval: the first listed include wins over later ones; the file itself wins over all.
    for (auto it = targets.rbegin(); it != targets.rend(); ++it) {
      fs::path target = fs::path(*it).is_absolute() ? fs::path(*it) : file.parent_path() / *it;
      target = target.lexically_normal();
      if (depth + 1 > kMaxIncludeDepth) {
        throw corrupt(at(*include), "includes nest deeper than {} files (at '{}')",
                      kMaxIncludeDepth, target.string());
      }
      for (const auto& c : chain) {
        if (fs::weakly_canonical(c) == fs::weakly_canonical(target)) {
          throw corrupt(at(*include), "include cycle: '{}' includes '{}', which is already being "
                        "loaded", file.string(), target.string());
        }
      }
      std::string inner;
      try {
        inner = read_file(target);
      } catch (const Error& e) {
        throw Error(e.kind(), fmt::format("{}: include '{}': {}", at(*include), *it, e.message()));
      }
      included.push_back(target);
      chain.push_back(target);
      for (const auto& f : load(inner, target, depth + 1, chain)) put(f);
      chain.pop_back();
    }
    for (const auto& f : own) put(f);
    return merged;
  }
};

// --- Interpreting the fields --------------------------------------------------------------------

TemplateField get_template(const Field& f, bool allow_list) {
  TemplateField t;
  if (is_null(f)) return t;
  ojson j = to_json(f, f.node);
  if (j.is_string()) {
    t.kind = TemplateField::Kind::kString;
    t.text = j.get<std::string>();
  } else if (j.is_number_integer()) {
    t.kind = TemplateField::Kind::kInt;
    t.number = j.get<int64_t>();
  } else if (allow_list && j.is_array()) {
    t.kind = TemplateField::Kind::kList;
    t.list = j;
  } else if (allow_list && j.is_object()) {
    // lm-eval: a mapping's values, in order.
    t.kind = TemplateField::Kind::kList;
    for (const auto& [k, v] : j.items()) t.list.push_back(v);
  } else {
    throw corrupt(at(f), "'{}' must be a template string{}", f.key,
                  allow_list ? ", an integer or a list" : " or an integer");
  }
  return t;
}

const std::set<std::string>& default_metric_names(const std::string& output_type) {
  static const std::map<std::string, std::set<std::string>> kAllowed = {
      {"multiple_choice", {"acc", "acc_norm", "exact_match"}},
      {"generate_until", {"exact_match"}},
      {"loglikelihood", {"acc", "perplexity"}},
      {"loglikelihood_rolling", {"word_perplexity", "byte_perplexity", "bits_per_byte"}},
  };
  return kAllowed.at(output_type);
}

std::string metric_aggregation(const std::string& metric) {
  if (metric == "perplexity") return "perplexity";
  if (metric == "word_perplexity" || metric == "byte_perplexity") return "weighted_perplexity";
  if (metric == "bits_per_byte") return "bits_per_byte";
  return "mean";
}

bool metric_higher_is_better(const std::string& metric) {
  return !(metric == "perplexity" || metric == "word_perplexity" || metric == "byte_perplexity" ||
           metric == "bits_per_byte");
}

// Returns whether the file set `until`.
bool parse_generation(const Field& f, TaskConfig& c) {
  ojson j = to_json(f, f.node);
  if (j.is_null()) return false;
  if (!j.is_object()) throw corrupt(at(f), "'generation_kwargs' must be a mapping");
  bool has_until = false;
  for (const auto& item : j.items()) {
    // Not a structured binding: clang (before 16) cannot capture one in the lambda below.
    const std::string& key = item.key();
    const ojson& v = item.value();
    auto bad = [&](const char* what) {
      return corrupt(at(f), "generation_kwargs.{} must be {}", key, what);
    };
    if (key == "until") {
      has_until = true;
      c.generation.until.clear();
      if (v.is_string()) {
        c.generation.until.push_back(v.get<std::string>());
      } else if (v.is_array()) {
        if (v.size() > kMaxListItems) throw bad("a list of at most 100000 strings");
        for (const auto& s : v) {
          if (!s.is_string()) throw bad("a string or a list of strings");
          c.generation.until.push_back(s.get<std::string>());
        }
      } else if (!v.is_null()) {
        throw bad("a string or a list of strings");
      }
    } else if (key == "max_gen_toks") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > (1 << 20)) {
        throw bad("an integer between 1 and 1048576");
      }
      c.generation.max_gen_toks = v.get<int64_t>();
    } else if (key == "temperature") {
      if (!v.is_number() || v.get<double>() < 0) throw bad("a non-negative number");
      c.generation.temperature = v.get<double>();
    } else if (key == "top_p") {
      if (!v.is_number() || v.get<double>() < 0 || v.get<double>() > 1) throw bad("a number in [0, 1]");
      c.generation.top_p = v.get<double>();
    } else if (key == "do_sample") {
      if (!v.is_boolean()) throw bad("true or false");
      c.generation.do_sample = v.get<bool>();
    } else if (key == "seed") {
      if (v.is_null()) continue;
      if (!v.is_number_integer() || v.get<int64_t>() < 0) throw bad("a non-negative integer");
      c.generation.seed = v.get<uint64_t>();
    } else {
      c.generation.extra[key] = v;
    }
  }
  return has_until;
}

void parse_filters(const Field& f, TaskConfig& c) {
  ojson j = to_json(f, f.node);
  if (!j.is_array()) throw corrupt(at(f), "'filter_list' must be a list of {{name, filter}} entries");
  for (const auto& entry : j) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
        !entry.contains("filter") || !entry["filter"].is_array()) {
      throw corrupt(at(f), "each filter_list entry needs a 'name' and a 'filter' list");
    }
    for (const auto& [k, v] : entry.items()) {
      if (k != "name" && k != "filter") throw corrupt(at(f), "filter_list entry has an unknown key '{}'", k);
    }
    FilterPipeline p;
    p.name = entry["name"].get<std::string>();
    for (const auto& pipeline : c.filters) {
      if (pipeline.name == p.name) throw corrupt(at(f), "two filters are named '{}'", p.name);
    }
    for (const auto& step : entry["filter"]) {
      if (!step.is_object() || !step.contains("function") || !step["function"].is_string()) {
        throw corrupt(at(f), "filter '{}': each step needs a 'function'", p.name);
      }
      FilterStep s;
      s.function = step["function"].get<std::string>();
      for (const auto& [k, v] : step.items()) {
        if (k != "function") s.args[k] = v;
      }
      p.steps.push_back(std::move(s));
    }
    // Checks functions and arguments now, so a bad filter fails at load time.
    CompiledPipeline::compile(p, at(f));
    c.filters.push_back(std::move(p));
  }
}

void parse_metrics(const Field& f, TaskConfig& c) {
  ojson j = to_json(f, f.node);
  if (!j.is_array()) throw corrupt(at(f), "'metric_list' must be a list of {{metric: ...}} entries");
  const auto& allowed = default_metric_names(c.output_type);
  for (const auto& entry : j) {
    if (!entry.is_object() || !entry.contains("metric")) {
      throw corrupt(at(f), "each metric_list entry needs a 'metric'");
    }
    if (!entry["metric"].is_string()) {
      throw not_supported(at(f), "metric_list: only lm-eval's named metrics are supported");
    }
    MetricConfig m;
    m.metric = entry["metric"].get<std::string>();
    if (!allowed.count(m.metric)) {
      std::string names;
      for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
      throw not_supported(at(f), "metric '{}' is not supported for output_type {} (supported: {})",
                          m.metric, c.output_type, names);
    }
    m.aggregation = metric_aggregation(m.metric);
    m.higher_is_better = metric_higher_is_better(m.metric);
    for (const auto& [k, v] : entry.items()) {
      if (k == "metric") continue;
      if (k == "aggregation") {
        if (!v.is_string() || v.get<std::string>() != m.aggregation) {
          throw not_supported(at(f), "metric '{}': aggregation must be '{}' (custom aggregations "
                              "are not supported)", m.metric, m.aggregation);
        }
      } else if (k == "higher_is_better") {
        if (!v.is_boolean()) throw corrupt(at(f), "metric '{}': higher_is_better must be true or false", m.metric);
        m.higher_is_better = v.get<bool>();
      } else if (m.metric == "exact_match" && (k == "ignore_case" || k == "ignore_punctuation" ||
                                               k == "ignore_numbers")) {
        if (!v.is_boolean()) throw corrupt(at(f), "exact_match: {} must be true or false", k);
        (k == "ignore_case"          ? m.exact_match.ignore_case
         : k == "ignore_punctuation" ? m.exact_match.ignore_punctuation
                                     : m.exact_match.ignore_numbers) = v.get<bool>();
      } else if (m.metric == "exact_match" && k == "regexes_to_ignore") {
        if (!v.is_array()) throw corrupt(at(f), "exact_match: regexes_to_ignore must be a list");
        for (const auto& r : v) {
          if (!r.is_string()) throw corrupt(at(f), "exact_match: regexes_to_ignore must be strings");
          m.exact_match.regexes_to_ignore.push_back(r.get<std::string>());
        }
        ExactMatch check(m.exact_match, at(f));  // compiles the patterns now
      } else {
        throw corrupt(at(f), "metric '{}' has an unknown option '{}'", m.metric, k);
      }
    }
    c.metrics.push_back(std::move(m));
  }
}

// Keys lm-eval defines that referee accepts and ignores.
const std::set<std::string> kIgnoredKeys = {"should_decontaminate", "doc_to_decontamination_query",
                                            "unsafe_code"};
// Keys lm-eval defines whose meaning is Python code or a feature referee does not have.
const std::map<std::string, std::string> kUnsupportedKeys = {
    {"process_results", "custom scoring code"},
    {"custom_dataset", "a Python dataset loader"},
    {"class", "a Python task class"},
    {"use_prompt", "promptsource prompts"},
    {"doc_to_image", "image inputs"},
    {"doc_to_audio", "audio inputs"},
    {"gen_prefix", "generation prefixes"},
    {"multiple_input", "lm-eval's multiple-input mode"},
    {"weight_by_size", "group weighting outside aggregate_metric_list"},
};

struct Parsed {
  bool is_group = false;
  TaskConfig task;
  GroupConfig group;
};

Parsed interpret(std::vector<Field> fields, const fs::path& source, Loader& loader) {
  Parsed out;
  TaskConfig& c = out.task;
  c.source = source;
  c.included = loader.included;
  c.warnings = loader.warnings;
  auto find = [&fields](const std::string& key) -> const Field* {
    for (const auto& f : fields) {
      if (f.key == key) return &f;
    }
    return nullptr;
  };
  const Field* task_field = find("task");
  const Field* group_field = find("group");
  if (task_field == nullptr && group_field == nullptr) {
    throw corrupt(source.string(), "the file has no 'task' field (is it a template meant for include?)");
  }
  // A group file: `group: name` with a `task:` list.
  if (group_field != nullptr && (task_field == nullptr || task_field->node.IsSequence())) {
    out.is_group = true;
    GroupConfig& g = out.group;
    g.source = source;
    g.name = get_string(*group_field);
    for (const auto& f : fields) {
      if (f.key == "group") continue;
      if (f.key == "task") {
        for (const auto& item : f.node) {
          if (!item.IsScalar()) {
            throw not_supported(at(f.file, item.Mark()), "group '{}' defines a task inline; "
                                "referee needs each task in its own file", g.name);
          }
          Field one{f.key, item, f.file};
          g.tasks.push_back(get_string(one));
        }
      } else if (f.key == "group_alias") {
        g.alias = get_string(f);
      } else if (f.key == "aggregate_metric_list") {
        ojson j = to_json(f, f.node);
        if (!j.is_array()) j = ojson::array({j});
        for (const auto& entry : j) {
          if (!entry.is_object() || !entry.contains("metric") || !entry["metric"].is_string()) {
            throw corrupt(at(f), "each aggregate_metric_list entry needs a 'metric'");
          }
          if (entry.contains("aggregation") && entry["aggregation"] != "mean") {
            throw not_supported(at(f), "group '{}': aggregation '{}' cannot be honoured (only "
                                "mean)", g.name, entry["aggregation"].dump());
          }
          for (const auto& [k, v] : entry.items()) {
            if (k != "metric" && k != "aggregation" && k != "weight_by_size" && k != "filter_list") {
              throw not_supported(at(f), "group '{}': aggregate_metric_list option '{}' is not "
                                  "supported", g.name, k);
            }
          }
        }
        g.aggregate_metric_list = j;
      } else if (f.key == "metadata") {
        g.metadata = to_json(f, f.node);
      } else {
        throw corrupt(at(f), "unknown field '{}' in group file", f.key);
      }
    }
    if (g.tasks.empty()) throw corrupt(source.string(), "group '{}' lists no tasks", g.name);
    return out;
  }

  // output_type first: metric_list depends on it.
  if (const Field* f = find("output_type")) {
    c.output_type = get_string(*f);
    static const std::set<std::string> kTypes = {"multiple_choice", "generate_until",
                                                 "loglikelihood", "loglikelihood_rolling"};
    if (!kTypes.count(c.output_type)) {
      throw corrupt(at(*f), "output_type '{}' is not one of multiple_choice, generate_until, "
                    "loglikelihood, loglikelihood_rolling", c.output_type);
    }
  }
  const Field* metric_field = nullptr;
  bool has_generation_kwargs = false, has_until = false;
  for (const auto& f : fields) {
    const std::string& k = f.key;
    if (k == "task") {
      c.name = get_string(f);
    } else if (k == "task_alias") {
      c.alias = get_optional_string(f);
    } else if (k == "tag") {
      for (auto& t : get_string_list(f)) c.tags.push_back(std::move(t));
    } else if (k == "group") {
      // Older lm-eval files used `group` for what is now `tag`.
      for (auto& t : get_string_list(f)) c.tags.push_back(std::move(t));
      c.warnings.push_back(fmt::format("{}: 'group' in a task file is read as 'tag'", at(f)));
    } else if (k == "dataset_path") {
      c.dataset_path = get_string(f);
    } else if (k == "dataset_name") {
      c.dataset_name = get_optional_string(f);
    } else if (k == "dataset_kwargs") {
      c.dataset_kwargs = to_json(f, f.node);
      if (c.dataset_kwargs.is_null()) c.dataset_kwargs = ojson::object();
      if (!c.dataset_kwargs.is_object()) throw corrupt(at(f), "'dataset_kwargs' must be a mapping");
      if (c.dataset_kwargs.contains("trust_remote_code")) {
        c.warnings.push_back(fmt::format("{}: dataset_kwargs.trust_remote_code is ignored (referee "
                                         "runs no dataset code)", at(f)));
      }
      if (c.dataset_kwargs.contains("data_files")) {
        const auto& d = c.dataset_kwargs["data_files"];
        bool ok = d.is_string() || d.is_array() || d.is_object();
        if (ok && d.is_array()) {
          for (const auto& p : d) ok = ok && p.is_string();
        }
        if (ok && d.is_object()) {
          for (const auto& [split, p] : d.items()) {
            ok = ok && (p.is_string() || p.is_array());
            if (p.is_array()) {
              for (const auto& q : p) ok = ok && q.is_string();
            }
          }
        }
        if (!ok) {
          throw corrupt(at(f), "dataset_kwargs.data_files must be a path, a list of paths or a "
                        "mapping of split to path(s)");
        }
      }
    } else if (k == "training_split") {
      c.training_split = get_optional_string(f);
    } else if (k == "validation_split") {
      c.validation_split = get_optional_string(f);
    } else if (k == "test_split") {
      c.test_split = get_optional_string(f);
    } else if (k == "fewshot_split") {
      c.fewshot_split = get_optional_string(f);
    } else if (k == "description") {
      c.description = get_template(f, false);
    } else if (k == "doc_to_text") {
      c.doc_to_text = get_template(f, false);
    } else if (k == "doc_to_target") {
      c.doc_to_target = get_template(f, true);
    } else if (k == "doc_to_choice") {
      c.doc_to_choice = get_template(f, true);
      if (c.doc_to_choice.kind == TemplateField::Kind::kInt) {
        throw corrupt(at(f), "'doc_to_choice' must be a template or a list");
      }
    } else if (k == "target_delimiter") {
      c.target_delimiter = is_null(f) ? "" : get_string(f);
    } else if (k == "fewshot_delimiter") {
      c.fewshot_delimiter = is_null(f) ? "" : get_string(f);
    } else if (k == "num_fewshot") {
      c.num_fewshot = is_null(f) ? 0 : get_int(f, 0, kMaxFewshot);
    } else if (k == "fewshot_config") {
      ojson j = to_json(f, f.node);
      if (!j.is_object()) throw corrupt(at(f), "'fewshot_config' must be a mapping");
      for (const auto& [key, v] : j.items()) {
        if (key == "sampler") {
          if (!v.is_string() || (v != "default" && v != "first_n")) {
            throw not_supported(at(f), "fewshot_config.sampler must be 'default' or 'first_n'");
          }
          c.fewshot_sampler = v.get<std::string>();
        } else if (key == "samples" || key == "doc_to_text" || key == "doc_to_target" ||
                   key == "doc_to_choice" || key == "process_docs" || key == "fewshot_indices") {
          throw not_supported(at(f), "fewshot_config.{} is not supported", key);
        } else {
          throw corrupt(at(f), "fewshot_config has an unknown key '{}'", key);
        }
      }
    } else if (k == "generation_kwargs") {
      has_generation_kwargs = !is_null(f);
      has_until = parse_generation(f, c);
    } else if (k == "repeats") {
      c.repeats = get_int(f, 1, kMaxRepeats);
    } else if (k == "filter_list") {
      parse_filters(f, c);
    } else if (k == "metric_list") {
      metric_field = &f;
    } else if (k == "metadata") {
      c.metadata = to_json(f, f.node);
    } else if (k == "output_type") {
      // read above
    } else if (k == "process_docs") {
      check_tag(f, f.node);
      if (!is_null(f)) throw not_supported(at(f), "'process_docs' (Python code) is not supported");
      c.warnings.push_back(fmt::format("{}: process_docs: null ignored", at(f)));
    } else if (kIgnoredKeys.count(k)) {
      to_json(f, f.node);  // still refuses !function inside
      c.warnings.push_back(fmt::format("{}: '{}' is ignored", at(f), k));
    } else if (auto it = kUnsupportedKeys.find(k); it != kUnsupportedKeys.end()) {
      check_tag(f, f.node);
      throw not_supported(at(f), "'{}' ({}) is not supported", k, it->second);
    } else if (k == "aggregate_metric_list" || k == "group_alias") {
      throw corrupt(at(f), "'{}' belongs in a group file (with a 'task' list)", k);
    } else {
      throw corrupt(at(f), "unknown field '{}'", k);
    }
  }
  if (metric_field != nullptr) parse_metrics(*metric_field, c);

  // Completeness.
  if (c.name.empty()) throw corrupt(source.string(), "'task' must name the task");
  if (c.name.size() > 256) throw corrupt(source.string(), "the task name is longer than 256 bytes");
  if (c.dataset_path.empty() && !c.dataset_kwargs.contains("data_files")) {
    throw corrupt(source.string(), "task '{}' has no dataset_path", c.name);
  }
  if (!c.test_split && !c.validation_split) {
    throw corrupt(source.string(), "task '{}' has neither test_split nor validation_split", c.name);
  }
  if (!c.doc_to_target.present()) throw corrupt(source.string(), "task '{}' has no doc_to_target", c.name);
  if (c.output_type != "loglikelihood_rolling" && !c.doc_to_text.present()) {
    throw corrupt(source.string(), "task '{}' has no doc_to_text", c.name);
  }
  if (c.output_type == "multiple_choice" && !c.doc_to_choice.present()) {
    throw corrupt(source.string(), "task '{}' is multiple_choice but has no doc_to_choice", c.name);
  }
  // generate_until defaults, as lm-eval's TaskConfig fills them in.
  if (c.output_type == "generate_until") {
    if (!has_generation_kwargs) {
      c.generation.until = {c.fewshot_delimiter};
      c.generation.do_sample = false;
      c.generation.temperature = 0;
    } else if (!has_until) {
      // lm-eval: generation_kwargs without `until` stop at the few-shot delimiter.
      c.generation.until = {c.fewshot_delimiter};
    }
  } else if (has_generation_kwargs) {
    c.warnings.push_back(fmt::format("{}: generation_kwargs ignored for output_type {}",
                                     source.string(), c.output_type));
  }
  if (find("filter_list") != nullptr && c.output_type != "generate_until") {
    c.warnings.push_back(fmt::format("{}: filter_list ignored for output_type {} (scored with "
                                     "filter 'none')", source.string(), c.output_type));
  }
  if (c.repeats != 1 && c.output_type != "generate_until") {
    throw corrupt(source.string(), "task '{}': repeats needs output_type generate_until", c.name);
  }
  if (c.filters.empty()) {
    FilterPipeline none;
    none.name = "none";
    none.steps.push_back(FilterStep{"take_first", ojson::object()});
    c.filters.push_back(std::move(none));
  }
  if (c.metrics.empty()) {
    static const std::map<std::string, std::vector<std::string>> kDefaults = {
        {"multiple_choice", {"acc", "acc_norm"}},
        {"generate_until", {"exact_match"}},
        {"loglikelihood", {"perplexity", "acc"}},
        {"loglikelihood_rolling", {"word_perplexity", "byte_perplexity", "bits_per_byte"}},
    };
    for (const auto& name : kDefaults.at(c.output_type)) {
      MetricConfig m;
      m.metric = name;
      m.aggregation = metric_aggregation(name);
      m.higher_is_better = metric_higher_is_better(name);
      c.metrics.push_back(std::move(m));
    }
  }
  return out;
}

Parsed parse_any(std::string_view text, const fs::path& source) {
  t_values_left = kMaxValues;
  Loader loader;
  std::vector<fs::path> chain = {source};
  std::vector<Field> fields;
  try {
    fields = loader.load(text, source, 0, chain);
  } catch (const YAML::Exception& e) {
    throw corrupt(at(source, e.mark), "not valid YAML: {}", e.msg);
  }
  try {
    return interpret(std::move(fields), source, loader);
  } catch (const YAML::Exception& e) {
    throw corrupt(at(source, e.mark), "not valid YAML: {}", e.msg);
  } catch (const nlohmann::json::exception& e) {
    throw corrupt(source.string(), "a field has the wrong type: {}", e.what());
  }
}

}  // namespace

// --- Public API ----------------------------------------------------------------------------------

ojson TemplateField::to_json() const {
  switch (kind) {
    case Kind::kAbsent:
      return nullptr;
    case Kind::kString:
      return text;
    case Kind::kInt:
      return number;
    case Kind::kList:
      return list;
  }
  return nullptr;
}

ojson TaskConfig::to_json() const {
  ojson j;
  j["task"] = name;
  if (alias) j["task_alias"] = *alias;
  if (!tags.empty()) j["tag"] = tags;
  j["dataset_path"] = dataset_path;
  j["dataset_name"] = dataset_name ? ojson(*dataset_name) : ojson(nullptr);
  j["dataset_kwargs"] = dataset_kwargs;
  auto opt = [](const std::optional<std::string>& s) { return s ? ojson(*s) : ojson(nullptr); };
  j["training_split"] = opt(training_split);
  j["validation_split"] = opt(validation_split);
  j["test_split"] = opt(test_split);
  j["fewshot_split"] = opt(fewshot_split);
  j["description"] = description.present() ? description.to_json() : ojson("");
  j["doc_to_text"] = doc_to_text.to_json();
  j["doc_to_target"] = doc_to_target.to_json();
  j["doc_to_choice"] = doc_to_choice.to_json();
  j["target_delimiter"] = target_delimiter;
  j["fewshot_delimiter"] = fewshot_delimiter;
  j["fewshot_config"] = ojson{{"sampler", fewshot_sampler}};
  j["num_fewshot"] = num_fewshot;
  j["output_type"] = output_type;
  if (output_type == "generate_until") j["generation_kwargs"] = generation.to_json();
  j["repeats"] = repeats;
  ojson f = ojson::array();
  for (const auto& p : filters) f.push_back(p.to_json());
  j["filter_list"] = f;
  ojson m = ojson::array();
  for (const auto& mc : metrics) {
    ojson e;
    e["metric"] = mc.metric;
    e["aggregation"] = mc.aggregation;
    e["higher_is_better"] = mc.higher_is_better;
    if (mc.metric == "exact_match") {
      e["ignore_case"] = mc.exact_match.ignore_case;
      e["ignore_punctuation"] = mc.exact_match.ignore_punctuation;
      e["ignore_numbers"] = mc.exact_match.ignore_numbers;
      if (!mc.exact_match.regexes_to_ignore.empty()) {
        e["regexes_to_ignore"] = mc.exact_match.regexes_to_ignore;
      }
    }
    m.push_back(e);
  }
  j["metric_list"] = m;
  j["metadata"] = metadata;
  j["source"] = source.string();
  return j;
}

TaskConfig parse_task_yaml(std::string_view text, const fs::path& source) {
  Parsed p = parse_any(text, source);
  if (p.is_group) {
    throw Error::invalid_argument(source.string(), fmt::format("a group file (group '{}'), not a "
                                  "task; load its directory into a TaskRegistry", p.group.name));
  }
  return std::move(p.task);
}

TaskConfig load_task_file(const fs::path& yaml) { return parse_task_yaml(read_file(yaml), yaml); }

namespace {

// The task or group of one file of a directory; nullopt for a template without `task`/`group`.
std::optional<Parsed> load_entry(const fs::path& yaml, std::vector<std::string>& warnings) {
  std::string text = read_file(yaml);
  {
    const YAML::Node root = parse_yaml(text, yaml);
    if (!root.IsMap() || (!root["task"] && !root["group"])) {
      warnings.push_back(fmt::format("{}: no 'task' or 'group' field; skipped (a template for "
                                     "include?)", yaml.string()));
      return std::nullopt;
    }
  }
  return parse_any(text, yaml);
}

void insert(Parsed p, const fs::path& yaml, std::vector<TaskConfig>& tasks,
            std::vector<GroupConfig>& groups) {
  if (p.is_group) {
    for (const auto& g : groups) {
      if (g.name == p.group.name) {
        throw invalid_argument(yaml.string(), "group '{}' is also defined in {}", g.name,
                               g.source.string());
      }
    }
    groups.push_back(std::move(p.group));
    return;
  }
  for (const auto& t : tasks) {
    if (t.name == p.task.name) {
      throw invalid_argument(yaml.string(), "task '{}' is also defined in {}", t.name,
                             t.source.string());
    }
  }
  tasks.push_back(std::move(p.task));
}

}  // namespace

void TaskRegistry::add_file(const fs::path& yaml) {
  if (auto p = load_entry(yaml, warnings_)) insert(std::move(*p), yaml, tasks_, groups_);
}

void TaskRegistry::add_directory(const fs::path& directory) {
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) {
    throw Error::not_found(directory.string(), "no such task directory");
  }
  std::vector<fs::path> files;
  for (auto it = fs::recursive_directory_iterator(directory, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec) &&
        (it->path().extension() == ".yaml" || it->path().extension() == ".yml")) {
      files.push_back(it->path());
    }
  }
  if (ec) throw Error::io(directory.string(), ec.message());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::optional<Parsed> p;
    try {
      p = load_entry(f, warnings_);
    } catch (const Error& e) {
      UnavailableTask u;
      u.source = f;
      u.kind = e.kind();
      u.error = e.message();
      try {
        const YAML::Node root = parse_yaml(read_file(f), f);
        for (const char* key : {"task", "group"}) {
          if (root.IsMap() && root[key] && root[key].IsScalar()) {
            u.name = printable_utf8(root[key].Scalar());
            break;
          }
        }
      } catch (const Error&) {
      } catch (const YAML::Exception&) {
      }
      warnings_.push_back(fmt::format("{}: not loaded: {}", f.string(), e.message()));
      unavailable_.push_back(std::move(u));
      continue;
    }
    if (p) insert(std::move(*p), f, tasks_, groups_);
  }
}

void TaskRegistry::collect(const std::string& name, int depth,
                           std::vector<const TaskConfig*>& out) const {
  if (depth > 16) throw invalid_argument(name, "groups nest more than 16 deep (a cycle?)");
  auto add = [&out](const TaskConfig* t) {
    if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
  };
  for (const auto& t : tasks_) {
    if (t.name == name) {
      add(&t);
      return;
    }
  }
  bool found = false;
  for (const auto& t : tasks_) {
    if (std::find(t.tags.begin(), t.tags.end(), name) != t.tags.end()) {
      add(&t);
      found = true;
    }
  }
  if (found) return;
  for (const auto& g : groups_) {
    if (g.name == name) {
      for (const auto& member : g.tasks) collect(member, depth + 1, out);
      return;
    }
  }
  for (const auto& u : unavailable_) {
    if (u.name == name) throw Error(u.kind, u.error);
  }
  throw Error::not_found(name, fmt::format("no task, tag or group of that name ({} tasks loaded)",
                                           tasks_.size()));
}

std::vector<const TaskConfig*> TaskRegistry::select(const std::string& name_or_tag) const {
  std::vector<const TaskConfig*> out;
  collect(name_or_tag, 0, out);
  return out;
}

ojson TaskRegistry::list() const {
  ojson rows = ojson::array();
  for (const auto& t : tasks_) {
    ojson r;
    r["name"] = t.name;
    r["tags"] = t.tags;
    r["output_type"] = t.output_type;
    r["dataset"] = t.dataset_path + (t.dataset_name ? "/" + *t.dataset_name : "");
    r["version"] = t.metadata.is_object() && t.metadata.contains("version") ? t.metadata["version"]
                                                                            : ojson(nullptr);
    r["source"] = t.source.string();
    rows.push_back(r);
  }
  return rows;
}

}  // namespace referee::eval
