// A model behind one or more OpenAI-compatible endpoints (vLLM, SGLang, referee serve-model, ...).
//   loglikelihood          POST /v1/completions, prompt = context + continuation, echo, logprobs 1,
//                          max_tokens 0: the continuation's tokens are those whose text_offset is
//                          at or past the context's length in bytes
//   loglikelihood_rolling  the same, the whole text's token log-probabilities summed (the first
//                          token has none: unlike lm-evaluation-harness, which sends token ids
//                          after an end-of-text token, no prefix token is sent, so the first
//                          token goes unscored; texts longer than the endpoint's context fail)
//   generate_until         POST /v1/completions or /v1/chat/completions (GenerateMode)
// Several base URLs serve one model (a cluster): each has its own bound on requests in flight and
// a request goes to the endpoint with the fewest in flight; an endpoint that failed transiently
// cools down (0.25 s, doubling with each further failure, at most 10 s) and is avoided meanwhile
// while others are healthy, so retries land elsewhere and a dead endpoint does not absorb a run. Each request in flight uses its
// own HTTP client, kept (with its open connection) for the next request to that endpoint.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "eval/backend.h"

namespace referee::eval {

enum class GenerateMode { kCompletions, kChat };

struct OpenAiOptions {
  // Base URLs such as "http://127.0.0.1:8000" or "http://host:8000/v1" (a missing /v1 is added).
  std::vector<std::string> endpoints;
  std::string model;                 // the "model" field sent, and the cache's model identity
  std::string revision;              // optional: part of the model identity (a checkpoint hash)
  std::string api_key_env;           // name of an environment variable holding the API key
  double timeout_s = 600;            // per request (connect, read, write)
  size_t concurrency_per_endpoint = 8;
  GenerateMode generate_mode = GenerateMode::kCompletions;
  ReasoningTags reasoning;
};

class OpenAiBackend : public Backend {
 public:
  // Throws Error::invalid_argument for no endpoints, a malformed URL, a missing model name, or an
  // api_key_env naming an unset variable.
  explicit OpenAiBackend(OpenAiOptions options);
  ~OpenAiBackend() override;

  nlohmann::ordered_json identity() const override;
  std::string model_identity() const override;
  size_t concurrency() const override;
  Response run(const Request& request) override;

  // Requests sent to each endpoint so far (in the order of options.endpoints).
  std::vector<size_t> sent_per_endpoint() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The request body the backend sends for `request` (exposed for tests and --dry-run).
nlohmann::ordered_json openai_request_body(const Request& request, const std::string& model, GenerateMode mode);

// Parses an endpoint's 200 answer to `request`'s body; throws BackendError (kMalformed) naming
// `endpoint` when it is not the shape OpenAI's API documents.
Response parse_openai_response(const Request& request, const std::string& body, GenerateMode mode,
                               const ReasoningTags& reasoning, const std::string& endpoint);

}  // namespace referee::eval
