// The in-process engine as a backend: a model directory loaded once, requests answered one at a
// time on one compute pool (deterministic: the same request always gets the same answer).
// loglikelihood tokenises context and continuation separately and scores the continuation's
// tokens after the context's, as lm-evaluation-harness does for Hugging Face models; an empty
// context is replaced by the end-of-text token (or beginning-of-text when there is none).
// loglikelihood_rolling scores every token of the text after that same prefix token, in disjoint
// windows each conditioned on the one token before it (lm-evaluation-harness's rolling windows
// with context_len 1; its windows predict max_length tokens, these max_length - 1, so texts longer
// than the context split at slightly different places).
// generate_until generates greedily or sampled (temperature, top_p, seed) up to max_gen_toks,
// ending before the first stop string.
#pragma once

#include <filesystem>
#include <memory>

#include "eval/backend.h"

namespace referee::eval {

struct EngineOptions {
  std::filesystem::path model_dir;
  unsigned threads = 0;  // compute pool size; 0: one per core
  ReasoningTags reasoning;
};

class EngineBackend : public Backend {
 public:
  explicit EngineBackend(const EngineOptions& options);  // loads the model (throws referee::Error)
  ~EngineBackend() override;

  nlohmann::ordered_json identity() const override;
  // The model's name and a hash of its weights, so a retrained model never hits old entries.
  std::string model_identity() const override;
  size_t concurrency() const override { return 1; }
  Response run(const Request& request) override;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace referee::eval
