#include "eval/openai_backend.h"

#include <httplib.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <mutex>

#include "util/error.h"

namespace referee::eval {
namespace {

using Json = nlohmann::json;
using nlohmann::ordered_json;

struct Endpoint {
  std::string url;          // as the user gave it, for messages and identity
  std::string scheme_host;  // "http://host:port"
  std::string prefix;       // path prefix ending in "/v1"
  size_t limit = 1;
  size_t in_flight = 0;     // guarded by Impl::mutex
  size_t failures = 0;      // consecutive transient failures, guarded by Impl::mutex
  std::chrono::steady_clock::time_point cool_until{};  // avoided until then, guarded by Impl::mutex
  size_t sent = 0;
  std::vector<std::unique_ptr<httplib::Client>> idle;  // guarded by Impl::mutex
};

Endpoint parse_endpoint(const std::string& url, size_t limit) {
  Endpoint e;
  e.url = url;
  e.limit = limit;
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) {
    throw Error::invalid_argument(url, "an endpoint must be a URL such as http://127.0.0.1:8000/v1");
  }
  const std::string scheme = url.substr(0, scheme_end);
  if (scheme != "http" && scheme != "https") {
    throw invalid_argument(url, "the scheme '{}' is not http or https", scheme);
  }
  const size_t path_start = url.find('/', scheme_end + 3);
  e.scheme_host = url.substr(0, path_start);
  if (e.scheme_host.size() <= scheme_end + 3) throw Error::invalid_argument(url, "the URL names no host");
  std::string path = path_start == std::string::npos ? std::string() : url.substr(path_start);
  while (!path.empty() && path.back() == '/') path.pop_back();
  for (const char* suffix : {"/completions", "/chat/completions"}) {  // a full route was given
    const std::string s = suffix;
    if (path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0) {
      path.resize(path.size() - s.size());
      if (s == "/completions" && path.size() >= 5 && path.compare(path.size() - 5, 5, "/chat") == 0) {
        path.resize(path.size() - 5);
      }
      break;
    }
  }
  if (path.size() < 3 || path.compare(path.size() - 3, 3, "/v1") != 0) path += "/v1";
  e.prefix = path;
  return e;
}

std::string endpoint_message(const std::string& body) {
  // OpenAI's error shape {"error": {"message": ...}}, or FastAPI's {"detail": ...}, or the body.
  try {
    const Json j = Json::parse(body);
    if (j.is_object()) {
      if (j.contains("error")) {
        const auto& e = j["error"];
        if (e.is_object() && e.contains("message") && e["message"].is_string()) return e["message"].get<std::string>();
        if (e.is_string()) return e.get<std::string>();
      }
      if (j.contains("detail")) return j["detail"].is_string() ? j["detail"].get<std::string>() : j["detail"].dump();
      if (j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
    }
  } catch (const Json::exception&) {
  }
  return body.size() > 500 ? body.substr(0, 500) + "…" : body;
}

std::optional<double> retry_after(const httplib::Response& res) {
  if (!res.has_header("Retry-After")) return std::nullopt;
  const std::string v = res.get_header_value("Retry-After");
  char* end = nullptr;
  const double s = std::strtod(v.c_str(), &end);
  if (end == v.c_str() || !std::isfinite(s) || s < 0) return std::nullopt;  // HTTP dates: ignored
  return s;
}

[[noreturn]] void malformed(const std::string& endpoint, const std::string& what) {
  throw BackendError(BackendError::Kind::kMalformed, endpoint, "malformed response: " + what);
}

const Json& field(const Json& j, const char* key, const std::string& endpoint, const char* where) {
  if (!j.is_object() || !j.contains(key)) malformed(endpoint, fmt::format("{} has no '{}'", where, key));
  return j[key];
}

}  // namespace

ordered_json openai_request_body(const Request& request, const std::string& model, GenerateMode mode) {
  ordered_json body;
  if (request.type == RequestType::kGenerateUntil) {
    const auto& g = request.generation;
    // Task-specific keys (chat_template_kwargs, presence_penalty, ...) go through untouched; the
    // normalised settings below are written after them.
    if (g.extra.is_object()) {
      for (const auto& [k, v] : g.extra.items()) body[k] = v;
    }
    body["model"] = model;
    if (mode == GenerateMode::kChat) {
      body["messages"] = ordered_json::array({{{"role", "user"}, {"content", request.context}}});
    } else {
      body["prompt"] = request.context;
    }
    body["max_tokens"] = g.max_gen_toks;
    body["temperature"] = g.temperature;
    body["top_p"] = g.top_p;
    if (g.seed) body["seed"] = *g.seed;
    if (!g.until.empty()) body["stop"] = g.until;
    return body;
  }
  body["model"] = model;
  body["prompt"] = request.type == RequestType::kLoglikelihood ? request.context + request.continuation
                                                               : request.context;
  body["echo"] = true;
  body["logprobs"] = 1;
  body["max_tokens"] = 0;
  body["temperature"] = 0;
  return body;
}

Response parse_openai_response(const Request& request, const std::string& text, GenerateMode mode,
                               const ReasoningTags& reasoning, const std::string& endpoint) {
  Json j;
  try {
    j = Json::parse(text);
  } catch (const Json::exception&) {
    malformed(endpoint, "the body is not JSON");
  }
  const Json& choices = field(j, "choices", endpoint, "the response");
  if (!choices.is_array() || choices.empty()) malformed(endpoint, "'choices' is not a non-empty list");
  const Json& choice = choices[0];
  Response r;
  if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) {
    r.finish_reason = choice["finish_reason"].get<std::string>();
  }
  if (request.type == RequestType::kGenerateUntil) {
    if (mode == GenerateMode::kChat) {
      const Json& message = field(choice, "message", endpoint, "the choice");
      const Json& content = field(message, "content", endpoint, "the message");
      // A separate reasoning_content / reasoning field is simply not read.
      if (content.is_string()) {
        r.raw_text = content.get<std::string>();
      } else if (!content.is_null()) {
        malformed(endpoint, "the message's 'content' is not text");
      }
    } else {
      const Json& t = field(choice, "text", endpoint, "the choice");
      if (!t.is_string()) malformed(endpoint, "the choice's 'text' is not a string");
      r.raw_text = t.get<std::string>();
    }
    r.text = cut_at_stop(strip_reasoning(r.raw_text, reasoning), request.generation.until);
    return r;
  }
  const Json& lp = field(choice, "logprobs", endpoint, "the choice");
  const Json& token_logprobs = field(lp, "token_logprobs", endpoint, "logprobs");
  const Json& offsets = field(lp, "text_offset", endpoint, "logprobs");
  const Json& tokens = field(lp, "tokens", endpoint, "logprobs");
  const Json top = lp.contains("top_logprobs") ? lp["top_logprobs"] : Json(nullptr);
  if (!token_logprobs.is_array() || !offsets.is_array() || !tokens.is_array() ||
      offsets.size() != token_logprobs.size() || tokens.size() != token_logprobs.size()) {
    malformed(endpoint, "logprobs' tokens, token_logprobs and text_offset are not lists of one length");
  }
  const size_t n = token_logprobs.size();
  if (n == 0) malformed(endpoint, "no tokens were echoed");
  size_t first = 0;
  if (request.type == RequestType::kLoglikelihood) {
    // The continuation's tokens are those starting at or past the context's end. lm-evaluation-
    // harness tokenises context and continuation separately, so a token straddling the boundary
    // never occurs there; here, with one tokenisation of the joined text, a straddling token
    // counts as the context's. If even the last token starts before the boundary (it straddles
    // and nothing follows), that token is taken, so the continuation is never scored as empty.
    const size_t boundary = request.context.size();
    first = n;
    for (size_t i = 0; i < n; ++i) {
      if (!offsets[i].is_number_integer()) malformed(endpoint, "a text_offset is not an integer");
      if (offsets[i].get<int64_t>() >= static_cast<int64_t>(boundary)) {
        first = i;
        break;
      }
    }
    if (first == n) first = n - 1;
  }
  r.logprob = 0;
  r.greedy = true;
  for (size_t i = first; i < n; ++i) {
    if (token_logprobs[i].is_null()) continue;  // the first token has no context to be scored by
    if (!token_logprobs[i].is_number()) malformed(endpoint, "a token_logprob is not a number");
    const double l = token_logprobs[i].get<double>();
    r.logprob += l;
    if (request.type != RequestType::kLoglikelihood) continue;
    // Greedy: the token is its position's most likely one.
    if (!top.is_array() || top.size() != n || !top[i].is_object() || top[i].empty()) {
      malformed(endpoint, "top_logprobs are missing (was logprobs: 1 honoured?)");
    }
    std::string best;
    double best_lp = -INFINITY;
    for (const auto& [k, v] : top[i].items()) {
      if (!v.is_number()) malformed(endpoint, "a top_logprobs value is not a number");
      if (v.get<double>() > best_lp) {
        best_lp = v.get<double>();
        best = k;
      }
    }
    const bool is_best = (tokens[i].is_string() && tokens[i].get<std::string>() == best) || l >= best_lp;
    if (!is_best) r.greedy = false;
  }
  return r;
}

struct OpenAiBackend::Impl {
  OpenAiOptions options;
  std::string api_key;
  std::vector<Endpoint> endpoints;
  mutable std::mutex mutex;
  std::condition_variable slot_freed;

  // The endpoint for the next request: among those with a free slot and not cooling down after
  // transient failures, the one with the fewest in flight. When every endpoint is cooling down,
  // the one whose cool-down ends first takes it (the executor is already backing off); when
  // healthy endpoints exist but are full, the request waits for a slot on one of them.
  size_t acquire() {
    std::unique_lock lock(mutex);
    for (;;) {
      const auto now = std::chrono::steady_clock::now();
      size_t best = endpoints.size(), cooling_best = endpoints.size();
      bool healthy_exists = false;
      for (size_t i = 0; i < endpoints.size(); ++i) {
        const auto& e = endpoints[i];
        const bool cooling = e.cool_until > now;
        if (!cooling) healthy_exists = true;
        if (e.in_flight >= e.limit) continue;
        if (cooling) {
          if (cooling_best == endpoints.size() || e.cool_until < endpoints[cooling_best].cool_until) cooling_best = i;
        } else if (best == endpoints.size() || e.in_flight < endpoints[best].in_flight) {
          best = i;
        }
      }
      if (best == endpoints.size() && !healthy_exists) best = cooling_best;
      if (best < endpoints.size()) {
        ++endpoints[best].in_flight;
        ++endpoints[best].sent;
        return best;
      }
      slot_freed.wait_for(lock, std::chrono::milliseconds(50));  // a slot, or a cool-down's end
    }
  }

  void release(size_t i, bool transient_failure) {
    {
      std::lock_guard lock(mutex);
      auto& e = endpoints[i];
      --e.in_flight;
      if (transient_failure) {
        ++e.failures;
        const double seconds = std::min(10.0, 0.25 * std::pow(2.0, static_cast<double>(std::min<size_t>(e.failures, 16) - 1)));
        e.cool_until = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
      } else {
        e.failures = 0;
        e.cool_until = {};
      }
    }
    slot_freed.notify_all();
  }

  // Idle clients per endpoint: a request takes one (keeping its connection alive for the next)
  // and gives it back; at most `limit` exist per endpoint, and all close with the backend.
  std::unique_ptr<httplib::Client> take_client(size_t endpoint) {
    {
      std::lock_guard lock(mutex);
      auto& idle = endpoints[endpoint].idle;
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
    }
    auto c = std::make_unique<httplib::Client>(endpoints[endpoint].scheme_host);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::duration<double>(options.timeout_s));
    c->set_connection_timeout(us);
    c->set_read_timeout(us);
    c->set_write_timeout(us);
    c->set_keep_alive(true);
    // Without it, Nagle and delayed ACKs hold a small request body back ~40 ms on each request.
    c->set_tcp_nodelay(true);
    if (!api_key.empty()) c->set_bearer_token_auth(api_key);
    return c;
  }

  void give_back(size_t endpoint, std::unique_ptr<httplib::Client> c) {
    std::lock_guard lock(mutex);
    endpoints[endpoint].idle.push_back(std::move(c));
  }

  Response send(size_t e, const Request& request) {
    const std::string& where = endpoints[e].url;
    const bool chat = request.type == RequestType::kGenerateUntil && options.generate_mode == GenerateMode::kChat;
    const std::string path = endpoints[e].prefix + (chat ? "/chat/completions" : "/completions");
    const ordered_json body = openai_request_body(request, options.model, options.generate_mode);
    auto c = take_client(e);
    auto res = c->Post(path, body.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
    if (res) give_back(e, std::move(c));  // a failed connection is not reused
    if (!res) {
      const auto err = res.error();
      const auto kind = (err == httplib::Error::SSLServerVerification || err == httplib::Error::SSLLoadingCerts)
                            ? BackendError::Kind::kPermanent
                            : BackendError::Kind::kTransient;
      throw BackendError(kind, where, fmt::format("no response ({})", httplib::to_string(err)));
    }
    const int status = res->status;
    if (status == 429 || status == 408 || status >= 500) {
      throw BackendError(BackendError::Kind::kTransient, where,
                         fmt::format("HTTP {}: {}", status, endpoint_message(res->body)), retry_after(*res));
    }
    if (status != 200) {
      throw BackendError(BackendError::Kind::kPermanent, where,
                         fmt::format("HTTP {}: {}", status, endpoint_message(res->body)));
    }
    return parse_openai_response(request, res->body, options.generate_mode, options.reasoning, where);
  }
};

OpenAiBackend::OpenAiBackend(OpenAiOptions options) : impl_(std::make_unique<Impl>()) {
  if (options.endpoints.empty()) throw Error::invalid_argument("endpoints", "at least one base URL is needed");
  if (options.model.empty()) throw Error::invalid_argument("model", "the model name to send is needed");
  if (options.concurrency_per_endpoint == 0) {
    throw Error::invalid_argument("concurrency", "at least one request per endpoint must be allowed");
  }
  if (!(options.timeout_s > 0)) throw Error::invalid_argument("timeout", "must be a positive number of seconds");
  if (!options.api_key_env.empty()) {
    const char* key = std::getenv(options.api_key_env.c_str());
    if (key == nullptr || *key == '\0') {
      throw invalid_argument(options.api_key_env, "the API key's environment variable is not set");
    }
    impl_->api_key = key;
  }
  for (const auto& url : options.endpoints) {
    impl_->endpoints.push_back(parse_endpoint(url, options.concurrency_per_endpoint));
  }
  impl_->options = std::move(options);
}

OpenAiBackend::~OpenAiBackend() = default;

ordered_json OpenAiBackend::identity() const {
  ordered_json j;
  j["kind"] = "openai";
  j["model"] = impl_->options.model;
  if (!impl_->options.revision.empty()) j["revision"] = impl_->options.revision;
  j["endpoints"] = impl_->options.endpoints;
  j["generate_mode"] = impl_->options.generate_mode == GenerateMode::kChat ? "chat" : "completions";
  return j;  // the API key is never part of it
}

std::string OpenAiBackend::model_identity() const {
  const auto& o = impl_->options;
  // The chat mode renders a template around the prompt, so it answers other questions.
  std::string id = "openai:" + o.model;
  if (!o.revision.empty()) id += "@" + o.revision;
  if (o.generate_mode == GenerateMode::kChat) id += ":chat";
  return id;
}

size_t OpenAiBackend::concurrency() const {
  size_t total = 0;
  for (const auto& e : impl_->endpoints) total += e.limit;
  return total;
}

Response OpenAiBackend::run(const Request& request) {
  const size_t e = impl_->acquire();
  try {
    Response r = impl_->send(e, request);
    impl_->release(e, false);
    return r;
  } catch (const BackendError& err) {
    impl_->release(e, err.transient());
    throw;
  } catch (...) {
    impl_->release(e, false);
    throw;
  }
}

std::vector<size_t> OpenAiBackend::sent_per_endpoint() const {
  std::lock_guard lock(impl_->mutex);
  std::vector<size_t> out;
  for (const auto& e : impl_->endpoints) out.push_back(e.sent);
  return out;
}

}  // namespace referee::eval
