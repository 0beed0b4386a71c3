// lm-evaluation-harness's per-sample metrics and their aggregations, with its arithmetic:
//   exact_match   HF evaluate's exact_match: regexes_to_ignore removed (re.sub) from prediction and
//                 reference, then optionally lowercased (ASCII), ASCII punctuation
//                 (string.punctuation) and digits deleted, then compared; 1.0 or 0.0.
//   mean          sum / n, summed left to right as Python's sum() does.
//   stderr        lm-eval's mean_stderr: the sample standard deviation (ddof = 1) / sqrt(n); none
//                 for n < 2 (lm-eval prints "N/A").
//   perplexity    exp(-mean(loglikelihoods)).
//   weighted_perplexity   exp(-sum(ll) / sum(weights)) (word_perplexity, byte_perplexity).
//   bits_per_byte -sum(ll) / sum(bytes) / ln 2.
// Pure functions; safe from any thread.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "eval/filters.h"

namespace referee::eval {

struct ExactMatchOptions {
  bool ignore_case = false;
  bool ignore_punctuation = false;
  bool ignore_numbers = false;
  std::vector<std::string> regexes_to_ignore;
};

class ExactMatch {
 public:
  // Compiles regexes_to_ignore; throws Error::invalid_argument naming `where` on a bad pattern.
  ExactMatch(ExactMatchOptions options, std::string_view where);
  double operator()(std::string_view prediction, std::string_view reference) const;
  const ExactMatchOptions& options() const { return options_; }

 private:
  std::string normalise(std::string_view text) const;
  ExactMatchOptions options_;
  std::vector<std::shared_ptr<const PyRegex>> regexes_;
};

struct Aggregate {
  double value = 0;
  std::optional<double> stderr_value;
  size_t n = 0;
};

double mean(const std::vector<double>& values);  // 0 for none
std::optional<double> mean_stderr(const std::vector<double>& values);
Aggregate aggregate_mean(const std::vector<double>& values);
double perplexity(const std::vector<double>& loglikelihoods);
double weighted_perplexity(const std::vector<double>& loglikelihoods,
                           const std::vector<double>& weights);
double bits_per_byte(const std::vector<double>& loglikelihoods, const std::vector<double>& bytes);

// Python's len() of UTF-8 text: the number of code points.
size_t code_point_length(std::string_view text);
// len(re.split(r"\s+", text)): lm-eval's word count for word_perplexity.
size_t count_words(std::string_view text);

}  // namespace referee::eval
