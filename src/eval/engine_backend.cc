#include "eval/engine_backend.h"

#include <fmt/format.h>

#include <mutex>

#include "engine/inference.h"
#include "util/error.h"
#include "util/hash.h"
#include "util/thread_pool.h"

namespace referee::eval {

struct EngineBackend::Impl {
  EngineOptions options;
  std::shared_ptr<const engine::InferenceModel> model;
  std::string identity;
  ThreadPool pool;
  std::mutex mutex;  // one request at a time owns the pool and the session
  std::unique_ptr<engine::Session> session;

  explicit Impl(const EngineOptions& o)
      : options(o), model(engine::InferenceModel::load(o.model_dir)), pool(o.threads) {
    session = std::make_unique<engine::Session>(model, pool);
    const size_t count = model->layout().total;
    const Hash128 h = hash_bytes(std::span(reinterpret_cast<const uint8_t*>(model->parameters()), count * sizeof(float)));
    identity = fmt::format("engine:{}@{}", model->name(), h.hex().substr(0, 16));
  }

  [[noreturn]] void refuse(const std::string& what) const {
    throw BackendError(BackendError::Kind::kPermanent, "engine", what);
  }

  int32_t prefix_token() const {
    const auto& tok = model->tokenizer();
    if (tok.eos_id()) return *tok.eos_id();
    if (tok.bos_id()) return *tok.bos_id();
    refuse("the text has no context and the tokenizer has no end-of-text or beginning-of-text token to put there");
  }

  Response loglikelihood(const Request& r) {
    const auto& tok = model->tokenizer();
    std::vector<int32_t> context = tok.encode(r.context, false);
    const std::vector<int32_t> continuation = tok.encode(r.continuation, false);
    if (context.empty()) context.push_back(prefix_token());
    if (continuation.empty()) refuse("the continuation is empty");
    const auto max = static_cast<size_t>(model->shape().max_positions);
    if (continuation.size() >= max) {
      refuse(fmt::format("the continuation has {} tokens; the model's context holds {}", continuation.size(), max));
    }
    // Too long: the context loses tokens on the left, as lm-evaluation-harness truncates.
    if (context.size() + continuation.size() > max) {
      context.erase(context.begin(), context.end() - static_cast<ptrdiff_t>(max - continuation.size()));
    }
    const auto ll = engine::loglikelihood(*session, context, continuation);
    Response out;
    out.logprob = ll.logprob;
    out.greedy = ll.greedy;
    return out;
  }

  Response rolling(const Request& r) {
    const auto& tok = model->tokenizer();
    const std::vector<int32_t> tokens = tok.encode(r.context, false);
    if (tokens.empty()) refuse("the text is empty");
    const auto max = static_cast<size_t>(model->shape().max_positions);
    Response out;
    out.greedy = true;
    // Windows: one token of context (the prefix, then the token before the window) and up to
    // max - 1 predicted tokens each, so every token is scored exactly once.
    for (size_t start = 0; start < tokens.size(); start += max - 1) {
      const size_t end = std::min(tokens.size(), start + max - 1);
      std::vector<int32_t> window;
      window.push_back(start == 0 ? prefix_token() : tokens[start - 1]);
      window.insert(window.end(), tokens.begin() + static_cast<ptrdiff_t>(start), tokens.begin() + static_cast<ptrdiff_t>(end));
      const auto ll = engine::loglikelihood(*session, std::span(window).first(1), std::span(window).subspan(1));
      out.logprob += ll.logprob;
      out.greedy = out.greedy && ll.greedy;
    }
    return out;
  }

  Response generate(const Request& r) {
    const auto& g = r.generation;
    const auto& tok = model->tokenizer();
    std::vector<int32_t> prompt = tok.encode(r.context, false);
    if (prompt.empty()) prompt.push_back(prefix_token());
    const auto max = model->shape().max_positions;
    engine::SamplingOptions o;
    o.max_tokens = std::clamp<int64_t>(g.max_gen_toks, 0, max - 1);
    o.temperature = g.temperature;  // 0: greedy
    o.top_p = g.top_p;
    o.seed = g.seed.value_or(0);
    o.stop = g.until;
    if (static_cast<int64_t>(prompt.size()) + o.max_tokens > max) {  // keep the prompt's end
      prompt.erase(prompt.begin(), prompt.end() - static_cast<ptrdiff_t>(max - o.max_tokens));
    }
    const auto gen = engine::generate(*session, prompt, o);
    Response out;
    out.raw_text = gen.text;
    out.text = cut_at_stop(strip_reasoning(gen.text, options.reasoning), g.until);
    out.finish_reason = gen.finish_reason;
    return out;
  }
};

EngineBackend::EngineBackend(const EngineOptions& options) : impl_(std::make_unique<Impl>(options)) {}
EngineBackend::~EngineBackend() = default;

nlohmann::ordered_json EngineBackend::identity() const {
  nlohmann::ordered_json j;
  j["kind"] = "engine";
  j["model"] = impl_->model->name();
  j["model_dir"] = impl_->options.model_dir.string();
  j["model_identity"] = impl_->identity;
  return j;
}

std::string EngineBackend::model_identity() const { return impl_->identity; }

Response EngineBackend::run(const Request& request) {
  std::lock_guard lock(impl_->mutex);
  try {
    switch (request.type) {
      case RequestType::kLoglikelihood:
        return impl_->loglikelihood(request);
      case RequestType::kLoglikelihoodRolling:
        return impl_->rolling(request);
      case RequestType::kGenerateUntil:
        return impl_->generate(request);
    }
  } catch (const Error& e) {
    throw BackendError(BackendError::Kind::kPermanent, "engine", e.message());
  }
  throw BackendError(BackendError::Kind::kPermanent, "engine", "unknown request type");
}

}  // namespace referee::eval
