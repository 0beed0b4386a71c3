// The currency of the benchmark track: what a task asks a model (a Request) and what the model
// answered (a Response). Tasks render documents into requests (eval/task.h), the executor sends
// them through a cache to a backend (eval/executor.h), and the task scores the responses.
// Requests are plain values; the same request always has the same cache key, so a run killed at
// any moment resumes without re-sending what was already answered.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace referee::eval {

// lm-evaluation-harness's request types (its `output_type`; multiple_choice becomes one
// loglikelihood request per choice).
enum class RequestType {
  kLoglikelihood,         // log P(continuation | context), and whether it is the greedy one
  kLoglikelihoodRolling,  // log P(context) of a whole text (perplexity tasks); continuation empty
  kGenerateUntil,         // text generated after context until a stop string or max_gen_toks
};

const char* request_type_name(RequestType type);  // "loglikelihood", "generate_until", ...

// A task's generation_kwargs, normalised. `extra` keeps every other key the task file set
// (e.g. chat_template_kwargs, presence_penalty) and is passed through to the endpoint untouched.
struct GenerationSettings {
  std::vector<std::string> until;  // stop strings
  int64_t max_gen_toks = 256;
  double temperature = 0;
  double top_p = 1.0;
  bool do_sample = false;
  std::optional<uint64_t> seed;
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();

  nlohmann::ordered_json to_json() const;  // canonical: keys in a fixed order, for hashing
};

struct Request {
  RequestType type = RequestType::kLoglikelihood;
  std::string context;       // the rendered prompt (description + few-shot + doc_to_text)
  std::string continuation;  // loglikelihood only: target_delimiter + choice
  GenerationSettings generation;  // generate_until only
  // Where it came from, for per-sample output and cache identity.
  std::string task;
  int64_t doc_id = 0;   // index of the document in the evaluated split
  int32_t index = 0;    // which request of the document (choice number)
  int32_t repeat = 0;   // repeat index (tasks with `repeats: N` sample N times)
};

struct Response {
  // loglikelihood / loglikelihood_rolling
  double logprob = 0;
  bool greedy = false;
  // generate_until: the text as scored (reasoning already stripped) and as the endpoint sent it.
  std::string text;
  std::string raw_text;
  std::string finish_reason;
};

}  // namespace referee::eval
