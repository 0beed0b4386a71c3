#include "eval/filters.h"

#include <fmt/format.h>

#include <map>

#include "util/error.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace referee::eval {

// ---------------------------------------------------------------------------------------------
// Python-style regular expressions on PCRE2.

namespace {

// Python's \Z (end of string only) is PCRE2's \z; PCRE2's \Z also matches before a final newline.
std::string translate_python_pattern(std::string_view pattern) {
  std::string out;
  out.reserve(pattern.size());
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char n = pattern[i + 1];
      out += '\\';
      out += (!in_class && n == 'Z') ? 'z' : n;
      ++i;
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      // A ']' right after '[' or '[^' is a literal member.
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

size_t next_code_point(std::string_view text, size_t pos) {
  ++pos;
  while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
  return pos;
}

}  // namespace

struct PyRegex::Code {
  pcre2_code* code = nullptr;
  ~Code() { pcre2_code_free(code); }
};

PyRegex::PyRegex(std::string_view pattern, std::string_view where) : code_(std::make_unique<Code>()) {
  std::string translated = translate_python_pattern(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                              PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &offset,
                              nullptr);
  if (code_->code == nullptr) {
    PCRE2_UCHAR buffer[256];
    pcre2_get_error_message(error, buffer, sizeof(buffer));
    throw invalid_argument(where, "regular expression '{}' does not compile at offset {}: {}",
                           std::string(pattern), offset, reinterpret_cast<const char*>(buffer));
  }
  pcre2_pattern_info(code_->code, PCRE2_INFO_CAPTURECOUNT, &groups_);
}

PyRegex::~PyRegex() = default;
PyRegex::PyRegex(PyRegex&&) noexcept = default;
PyRegex& PyRegex::operator=(PyRegex&&) noexcept = default;

std::vector<PyRegex::Match> PyRegex::find_all(std::string_view text) const {
  std::vector<Match> matches;
  pcre2_match_data* data = pcre2_match_data_create_from_pattern(code_->code, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_set_match_limit(context, 10'000'000);
  pcre2_set_depth_limit(context, 10'000);
  struct Free {
    pcre2_match_data* d;
    pcre2_match_context* c;
    ~Free() {
      pcre2_match_data_free(d);
      pcre2_match_context_free(c);
    }
  } free_guard{data, context};
  size_t pos = 0;
  bool last_empty = false;
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  while (pos <= text.size()) {
    uint32_t options = last_empty ? (PCRE2_NOTEMPTY_ATSTART | PCRE2_ANCHORED) : 0;
    int rc = pcre2_match(code_->code, subject, text.size(), pos, options, data, context);
    if (rc == PCRE2_ERROR_NOMATCH) {
      if (!last_empty) break;
      last_empty = false;
      pos = next_code_point(text, pos);
      continue;
    }
    if (rc < 0) {
      PCRE2_UCHAR buffer[256];
      pcre2_get_error_message(rc, buffer, sizeof(buffer));
      throw Error::invalid_argument("regular expression",
                                    fmt::format("matching failed: {}",
                                                reinterpret_cast<const char*>(buffer)));
    }
    PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
    Match m;
    m.start = ovector[0];
    m.end = ovector[1];
    for (uint32_t g = 1; g <= groups_; ++g) {
      if (static_cast<int>(g) < rc && ovector[2 * g] != PCRE2_UNSET) {
        m.groups.emplace_back(text.substr(ovector[2 * g], ovector[2 * g + 1] - ovector[2 * g]));
      } else {
        m.groups.emplace_back();
      }
    }
    last_empty = m.start == m.end;
    pos = m.end;
    matches.push_back(std::move(m));
  }
  return matches;
}

std::vector<std::vector<std::string>> PyRegex::findall(std::string_view text) const {
  std::vector<std::vector<std::string>> out;
  for (auto& m : find_all(text)) {
    if (groups_ == 0) {
      out.push_back({std::string(text.substr(m.start, m.end - m.start))});
    } else {
      out.push_back(std::move(m.groups));
    }
  }
  return out;
}

std::string PyRegex::remove_all(std::string_view text) const {
  std::string out;
  size_t last = 0;
  for (const auto& m : find_all(text)) {
    out.append(text.substr(last, m.start - last));
    last = m.end;
  }
  out.append(text.substr(last));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Python string helpers.

bool python_isspace(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
         c == 0x202F || c == 0x205F || c == 0x3000;
}

namespace {

// Decodes the code point starting at `pos` (invalid bytes count as themselves, never as space).
uint32_t decode_at(std::string_view s, size_t pos, size_t& len) {
  auto b = static_cast<unsigned char>(s[pos]);
  len = 1;
  if (b < 0x80) return b;
  int extra = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : 0;
  if (extra == 0) return 0xFFFFFFFF;
  uint32_t c = b & (0x3F >> extra);
  for (int i = 1; i <= extra; ++i) {
    if (pos + i >= s.size()) return 0xFFFFFFFF;
    auto n = static_cast<unsigned char>(s[pos + i]);
    if ((n & 0xC0) != 0x80) return 0xFFFFFFFF;
    c = (c << 6) | (n & 0x3F);
  }
  len = static_cast<size_t>(extra) + 1;
  return c;
}

size_t lstrip_end(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    size_t len;
    uint32_t c = decode_at(s, pos, len);
    if (!python_isspace(c)) break;
    pos += len;
  }
  return pos;
}

size_t rstrip_end(std::string_view s, size_t begin) {
  // Walks forward, remembering where the last non-space code point ended.
  size_t pos = begin, keep = begin;
  while (pos < s.size()) {
    size_t len;
    uint32_t c = decode_at(s, pos, len);
    pos += len;
    if (!python_isspace(c)) keep = pos;
  }
  return keep;
}

}  // namespace

std::string python_lstrip(std::string_view text) { return std::string(text.substr(lstrip_end(text))); }

std::string python_strip(std::string_view text) {
  size_t begin = lstrip_end(text);
  size_t end = rstrip_end(text, begin);
  return std::string(text.substr(begin, end - begin));
}

// ---------------------------------------------------------------------------------------------
// Pipelines.

nlohmann::ordered_json FilterPipeline::to_json() const {
  nlohmann::ordered_json j;
  j["name"] = name;
  nlohmann::ordered_json steps_json = nlohmann::ordered_json::array();
  for (const auto& s : steps) {
    nlohmann::ordered_json step;
    step["function"] = s.function;
    for (const auto& [k, v] : s.args.items()) step[k] = v;
    steps_json.push_back(step);
  }
  j["filter"] = steps_json;
  return j;
}

nlohmann::ordered_json FilterValue::to_json() const {
  if (!is_list) return items.empty() ? nlohmann::ordered_json("") : nlohmann::ordered_json(items[0]);
  return nlohmann::ordered_json(items);
}

std::string FilterValue::scored() const { return items.empty() ? std::string() : items[0]; }

struct CompiledPipeline::Step {
  enum class Kind { kRegex, kTakeFirst, kTakeFirstK, kMajority, kLower, kUpper, kLstrip, kStrip };
  Kind kind;
  std::unique_ptr<PyRegex> regex;
  int64_t group_select = 0;
  std::string fallback = "[invalid]";
  int64_t k = 1;
};

namespace {

std::string ascii_lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::string ascii_upper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return s;
}

}  // namespace

CompiledPipeline CompiledPipeline::compile(const FilterPipeline& pipeline, std::string_view where) {
  using Kind = Step::Kind;
  static const std::map<std::string, Kind, std::less<>> kFunctions = {
      {"regex", Kind::kRegex},          {"take_first", Kind::kTakeFirst},
      {"take_first_k", Kind::kTakeFirstK}, {"majority_vote", Kind::kMajority},
      {"lowercase", Kind::kLower},      {"uppercase", Kind::kUpper},
      {"remove_whitespace", Kind::kLstrip}, {"strip", Kind::kStrip},
  };
  CompiledPipeline out;
  out.name_ = pipeline.name;
  for (size_t i = 0; i < pipeline.steps.size(); ++i) {
    const FilterStep& fs = pipeline.steps[i];
    std::string step_where = fmt::format("{}: filter '{}', step {} ({})", where, pipeline.name,
                                         i + 1, fs.function);
    auto it = kFunctions.find(fs.function);
    if (it == kFunctions.end()) {
      throw not_supported(where,
                          "filter '{}' uses the function '{}', which referee does not have (it has "
                          "regex, take_first, take_first_k, majority_vote, lowercase, uppercase, "
                          "remove_whitespace, strip)",
                          pipeline.name, fs.function);
    }
    auto step = std::make_shared<Step>();
    step->kind = it->second;
    auto expect_only = [&](std::initializer_list<const char*> allowed) {
      for (const auto& [key, value] : fs.args.items()) {
        bool ok = false;
        for (const char* a : allowed) ok = ok || key == a;
        if (!ok) throw Error::invalid_argument(step_where, fmt::format("unknown argument '{}'", key));
      }
    };
    if (step->kind == Kind::kRegex) {
      expect_only({"regex_pattern", "group_select", "fallback"});
      std::string pattern = R"(#### (\-?[0-9\.\,]+))";
      if (fs.args.contains("regex_pattern")) {
        if (!fs.args["regex_pattern"].is_string()) {
          throw Error::invalid_argument(step_where, "regex_pattern must be a string");
        }
        pattern = fs.args["regex_pattern"].get<std::string>();
      }
      if (fs.args.contains("group_select")) {
        if (!fs.args["group_select"].is_number_integer()) {
          throw Error::invalid_argument(step_where, "group_select must be an integer");
        }
        step->group_select = fs.args["group_select"].get<int64_t>();
      }
      if (fs.args.contains("fallback")) {
        if (!fs.args["fallback"].is_string()) {
          throw Error::invalid_argument(step_where, "fallback must be a string");
        }
        step->fallback = fs.args["fallback"].get<std::string>();
      }
      step->regex = std::make_unique<PyRegex>(pattern, step_where);
    } else if (step->kind == Kind::kTakeFirstK) {
      expect_only({"k"});
      if (!fs.args.contains("k") || !fs.args["k"].is_number_integer() ||
          fs.args["k"].get<int64_t>() < 0) {
        throw Error::invalid_argument(step_where, "k must be a non-negative integer");
      }
      step->k = fs.args["k"].get<int64_t>();
    } else {
      expect_only({});
    }
    out.steps_.push_back(std::move(step));
  }
  return out;
}

FilterValue CompiledPipeline::apply(std::vector<std::string> responses) const {
  using Kind = Step::Kind;
  FilterValue v;
  v.items = std::move(responses);
  for (const auto& step : steps_) {
    switch (step->kind) {
      case Kind::kRegex:
        for (auto& item : v.items) {
          auto matches = step->regex->findall(item);
          int64_t n = static_cast<int64_t>(matches.size());
          int64_t index = step->group_select < 0 ? n + step->group_select : step->group_select;
          if (matches.empty() || index < 0 || index >= n) {
            item = step->fallback;
            continue;
          }
          const auto& m = matches[static_cast<size_t>(index)];
          std::string picked;
          bool found = false;
          if (m.size() == 1) {
            picked = m[0];
            found = true;
          } else {
            for (const auto& g : m) {
              if (!g.empty()) {
                picked = g;
                found = true;
                break;
              }
            }
          }
          item = found ? python_strip(picked) : step->fallback;
        }
        break;
      case Kind::kTakeFirst:
        if (v.is_list) {
          std::string first = v.items.empty() ? std::string() : v.items[0];
          v.items = {first};
          v.is_list = false;
        }
        break;
      case Kind::kTakeFirstK:
        if (v.is_list && static_cast<int64_t>(v.items.size()) > step->k) {
          v.items.resize(static_cast<size_t>(step->k));
        }
        break;
      case Kind::kMajority: {
        if (!v.is_list) break;
        std::vector<std::pair<std::string, size_t>> counts;  // first-seen order
        for (const auto& item : v.items) {
          bool seen = false;
          for (auto& [s, c] : counts) {
            if (s == item) {
              ++c;
              seen = true;
              break;
            }
          }
          if (!seen) counts.emplace_back(item, 1);
        }
        if (counts.empty()) break;
        size_t best = 0;
        for (size_t i = 1; i < counts.size(); ++i) {
          if (counts[i].second > counts[best].second) best = i;
        }
        v.items = {counts[best].first};
        break;
      }
      case Kind::kLower:
        for (auto& item : v.items) item = ascii_lower(item);
        break;
      case Kind::kUpper:
        for (auto& item : v.items) item = ascii_upper(item);
        break;
      case Kind::kLstrip:
        for (auto& item : v.items) item = python_lstrip(item);
        break;
      case Kind::kStrip:
        for (auto& item : v.items) item = python_strip(item);
        break;
    }
  }
  return v;
}

}  // namespace referee::eval
