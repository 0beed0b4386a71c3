#include "eval/metrics.h"

#include <cmath>
#include <limits>

namespace referee::eval {

ExactMatch::ExactMatch(ExactMatchOptions options, std::string_view where)
    : options_(std::move(options)) {
  for (const auto& pattern : options_.regexes_to_ignore) {
    regexes_.push_back(std::make_shared<const PyRegex>(pattern, where));
  }
}

std::string ExactMatch::normalise(std::string_view text) const {
  std::string s(text);
  for (const auto& regex : regexes_) s = regex->remove_all(s);
  if (options_.ignore_case) {
    for (char& c : s) {
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
  }
  if (options_.ignore_punctuation || options_.ignore_numbers) {
    static constexpr std::string_view kPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    std::string kept;
    kept.reserve(s.size());
    for (char c : s) {
      if (options_.ignore_punctuation && kPunctuation.find(c) != std::string_view::npos) continue;
      if (options_.ignore_numbers && c >= '0' && c <= '9') continue;
      kept += c;
    }
    s = std::move(kept);
  }
  return s;
}

double ExactMatch::operator()(std::string_view prediction, std::string_view reference) const {
  return normalise(prediction) == normalise(reference) ? 1.0 : 0.0;
}

double mean(const std::vector<double>& values) {
  if (values.empty()) return 0;
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

std::optional<double> mean_stderr(const std::vector<double>& values) {
  if (values.size() < 2) return std::nullopt;
  double mu = mean(values);
  double squares = 0;
  for (double v : values) squares += (v - mu) * (v - mu);
  double stddev = std::sqrt(squares / static_cast<double>(values.size() - 1));
  return stddev / std::sqrt(static_cast<double>(values.size()));
}

Aggregate aggregate_mean(const std::vector<double>& values) {
  return Aggregate{mean(values), mean_stderr(values), values.size()};
}

double perplexity(const std::vector<double>& loglikelihoods) {
  return std::exp(-mean(loglikelihoods));
}

namespace {
double sum(const std::vector<double>& values) {
  double s = 0;
  for (double v : values) s += v;
  return s;
}
}  // namespace

double weighted_perplexity(const std::vector<double>& loglikelihoods,
                           const std::vector<double>& weights) {
  double w = sum(weights);
  if (w == 0) return std::numeric_limits<double>::quiet_NaN();
  return std::exp(-sum(loglikelihoods) / w);
}

double bits_per_byte(const std::vector<double>& loglikelihoods, const std::vector<double>& bytes) {
  double b = sum(bytes);
  if (b == 0) return std::numeric_limits<double>::quiet_NaN();
  return -sum(loglikelihoods) / b / std::log(2.0);
}

size_t code_point_length(std::string_view text) {
  size_t n = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

size_t count_words(std::string_view text) {
  // re.split on runs of whitespace: pieces = separators + 1 (empty pieces at the ends count).
  static const PyRegex kWhitespace("\\s+", "word count");
  return kWhitespace.find_all(text).size() + 1;
}

}  // namespace referee::eval
