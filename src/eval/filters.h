// lm-evaluation-harness's answer filters (a task's `filter_list`), applied to the responses of one
// document before scoring, and the Python-`re`-compatible regular expressions they and the
// exact_match metric need (PCRE2 with UTF and Unicode properties, so \d, \w and \s mean what they
// mean for Python's str patterns; Python's \Z is rewritten to PCRE2's \z).
//
// The built-in filter functions (anything else is refused with Error::not_supported):
//   regex             regex_pattern (default "#### (\-?[0-9\.\,]+)"), group_select (default 0,
//                     Python indexing: -1 is the last match), fallback (default "[invalid]"):
//                     re.findall, pick one match, a match with several groups gives its first
//                     non-empty group, the result is .strip()ped; no match (or group_select out of
//                     range) gives the fallback.
//   take_first        the first response (the document's value becomes one string).
//   take_first_k      k: the first k responses.
//   majority_vote     the most common response (ties: the one seen first), as a one-item list.
//   lowercase, uppercase   ASCII letters only (Python's str.lower also maps non-ASCII letters).
//   remove_whitespace lm-eval's WhitespaceFilter: leading whitespace removed (lstrip).
//   strip             referee's: Python's str.strip() (both ends, Unicode whitespace).
// A filter after take_first applies to the single string as if it were a one-item list.
// Immutable after construction; apply() may run from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace referee::eval {

// A compiled Python-style regular expression.
class PyRegex {
 public:
  // Throws Error::invalid_argument naming `where` if the pattern does not compile.
  PyRegex(std::string_view pattern, std::string_view where);
  ~PyRegex();
  PyRegex(PyRegex&&) noexcept;
  PyRegex& operator=(PyRegex&&) noexcept;

  struct Match {
    size_t start = 0, end = 0;
    std::vector<std::string> groups;  // groups 1..n; a group that did not take part is ""
  };
  // Every match, left to right, as Python's re.finditer finds them (an empty match is allowed
  // right after a non-empty one, never twice at one position).
  std::vector<Match> find_all(std::string_view text) const;
  // re.findall: each match's whole text when the pattern has no groups, its one group when it has
  // one, all its groups when it has several.
  std::vector<std::vector<std::string>> findall(std::string_view text) const;
  // re.sub(pattern, "", text).
  std::string remove_all(std::string_view text) const;
  uint32_t group_count() const { return groups_; }

 private:
  struct Code;
  std::unique_ptr<Code> code_;
  uint32_t groups_ = 0;
};

// One step of a pipeline, as written in the task file.
struct FilterStep {
  std::string function;
  nlohmann::ordered_json args = nlohmann::ordered_json::object();  // every other key of the step
};

struct FilterPipeline {
  std::string name = "none";
  std::vector<FilterStep> steps;  // lm-eval's default pipeline "none" is [take_first]
  nlohmann::ordered_json to_json() const;
};

// The value of one document as it flows through a pipeline: the list of its responses (one per
// repeat) until a step such as take_first makes it a single string.
struct FilterValue {
  bool is_list = true;
  std::vector<std::string> items;
  nlohmann::ordered_json to_json() const;  // a string, or a list of strings
  // What exact_match compares: the string, or a list's first item ("" if empty).
  std::string scored() const;
};

class CompiledPipeline {
 public:
  // Checks every function and argument; throws Error (not_supported / invalid_argument) naming
  // `where` (the task file) and the step.
  static CompiledPipeline compile(const FilterPipeline& pipeline, std::string_view where);
  FilterValue apply(std::vector<std::string> responses) const;
  const std::string& name() const { return name_; }

  struct Step;

 private:
  std::string name_;
  std::vector<std::shared_ptr<const Step>> steps_;
};

// Python's str.isspace() for one code point, and str.strip() / lstrip() over UTF-8 text.
bool python_isspace(uint32_t code_point);
std::string python_strip(std::string_view text);
std::string python_lstrip(std::string_view text);

}  // namespace referee::eval
