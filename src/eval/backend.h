// A backend answers requests: an OpenAI-compatible HTTP endpoint (eval/openai_backend.h) or the
// in-process engine (eval/engine_backend.h). The executor (eval/executor.h) drives it from several
// threads at once, at most concurrency() requests in flight, and retries what failed transiently.
#pragma once

#include <cstddef>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "eval/request.h"

namespace referee::eval {

// Why a request failed. Transient failures (HTTP 429, 5xx, timeouts, refused or dropped
// connections) are worth retrying; permanent ones are not: the endpoint refused the request
// (other 4xx: a wrong model name, a prompt too long) or answered something malformed.
class BackendError : public std::exception {
 public:
  enum class Kind { kTransient, kPermanent, kMalformed };
  BackendError(Kind kind, std::string endpoint, std::string message,
               std::optional<double> retry_after_s = std::nullopt);

  Kind kind() const { return kind_; }
  bool transient() const { return kind_ == Kind::kTransient; }
  const std::string& endpoint() const { return endpoint_; }  // where it failed (a URL, "engine")
  const std::string& message() const { return message_; }    // the endpoint's own words
  std::optional<double> retry_after_s() const { return retry_after_s_; }  // a Retry-After header
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  Kind kind_;
  std::string endpoint_, message_, what_;
  std::optional<double> retry_after_s_;
};

class Backend {
 public:
  virtual ~Backend();
  // What answered, for results files: kind, model name, endpoints. Never holds secrets.
  virtual nlohmann::ordered_json identity() const = 0;
  // What the cache key uses: the model (name, revision), not where it is served, so the same
  // model behind other endpoints hits the same cache entries.
  virtual std::string model_identity() const = 0;
  // Requests in flight the backend accepts in total.
  virtual size_t concurrency() const = 0;
  // One attempt (retries are the executor's). Thread-safe; blocks. Throws BackendError.
  virtual Response run(const Request& request) = 0;
};

// Reasoning markers removed from generated text before scoring.
struct ReasoningTags {
  std::string open = "<think>";
  std::string close = "</think>";
};

// `text` without its reasoning: every open…close block is removed; a close tag with no open tag
// before it (templates that put the open tag in the prompt) removes everything up to it; an open
// tag never closed removes everything after it (the model ran out of tokens while thinking).
// Whitespace left at the start after a removal is dropped. Empty tags disable stripping.
std::string strip_reasoning(const std::string& text, const ReasoningTags& tags);

// `text` cut before the first occurrence of any of `until` (what lm-evaluation-harness does to
// generations on the client side too, whatever the endpoint honoured).
std::string cut_at_stop(const std::string& text, const std::vector<std::string>& until);

}  // namespace referee::eval
