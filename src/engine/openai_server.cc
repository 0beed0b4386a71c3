#include "engine/openai_server.h"

#include <httplib.h>
#include <signal.h>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/inference.h"
#include "util/error.h"
#include "util/jinja.h"
#include "util/thread_pool.h"

namespace referee::engine {
namespace {

using Json = nlohmann::json;

// An error answered to the client: HTTP status, OpenAI error type and code, message.
struct ApiError {
  int status;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;
  std::string code;
};

Json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? Json(nullptr) : Json(e.param)},
            {"code", e.code.empty() ? Json(nullptr) : Json(e.code)}}}};
}

int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Typed reads of request fields, answering 400 with the field named.
double number_field(const Json& body, const char* key, double fallback) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number()) throw ApiError{400, fmt::format("'{}' must be a number", key), "invalid_request_error", key};
  return it->get<double>();
}

int64_t integer_field(const Json& body, const char* key, int64_t fallback, int64_t min, int64_t max) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_number_integer()) throw ApiError{400, fmt::format("'{}' must be an integer", key), "invalid_request_error", key};
  const int64_t v = it->get<int64_t>();
  if (v < min || v > max) {
    throw ApiError{400, fmt::format("'{}' must be between {} and {}", key, min, max), "invalid_request_error", key};
  }
  return v;
}

bool bool_field(const Json& body, const char* key, bool fallback) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) throw ApiError{400, fmt::format("'{}' must be true or false", key), "invalid_request_error", key};
  return it->get<bool>();
}

std::vector<std::string> stop_field(const Json& body) {
  const auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return {};
  if (it->is_string()) return {it->get<std::string>()};
  std::vector<std::string> stops;
  if (it->is_array() && it->size() <= 16) {
    for (const auto& s : *it) {
      if (!s.is_string()) break;
      stops.push_back(s.get<std::string>());
    }
    if (stops.size() == it->size()) return stops;
  }
  throw ApiError{400, "'stop' must be a string or a list of at most 16 strings", "invalid_request_error", "stop"};
}

}  // namespace

struct OpenAiServer::Impl {
  std::shared_ptr<const InferenceModel> model;
  ServerOptions options;
  std::string name;
  httplib::Server http;
  ThreadPool compute;
  std::mutex compute_mutex;  // one forward pass at a time uses the whole compute pool
  std::atomic<uint64_t> request_counter{0};
  std::optional<jinja::Template> chat_template;

  Impl(const std::filesystem::path& dir, const ServerOptions& o)
      : model(InferenceModel::load(dir)), options(o), compute(o.compute_threads) {
    name = o.model_name.empty() ? model->name() : o.model_name;
    if (!model->tokenizer().chat_template().empty()) {
      chat_template = jinja::Template::parse(model->tokenizer().chat_template(),
                                             (dir / "tokenizer_config.json").string() + ":chat_template");
    }
  }

  void check_model(const Json& body) {
    const auto it = body.find("model");
    if (it == body.end() || it->is_null()) return;  // optional, as many local servers allow
    if (!it->is_string()) throw ApiError{400, "'model' must be a string", "invalid_request_error", "model"};
    if (it->get<std::string>() != name) {
      throw ApiError{404, fmt::format("The model '{}' does not exist; this server serves '{}'",
                                      it->get<std::string>(), name),
                     "invalid_request_error", "model", "model_not_found"};
    }
  }

  // A prompt: text, a list of token ids, or a list of either (one choice per element).
  std::vector<std::vector<int32_t>> prompts(const Json& body) {
    const auto it = body.find("prompt");
    if (it == body.end()) throw ApiError{400, "'prompt' is required", "invalid_request_error", "prompt"};
    const auto& tokenizer = model->tokenizer();
    auto one = [&](const Json& p) -> std::vector<int32_t> {
      if (p.is_string()) return tokenizer.encode(p.get<std::string>(), false);
      if (p.is_array() && std::all_of(p.begin(), p.end(), [](const Json& x) { return x.is_number_integer(); })) {
        std::vector<int32_t> ids;
        for (const auto& x : p) {
          const int64_t id = x.get<int64_t>();
          if (id < 0 || id >= model->shape().vocab_size) {
            throw ApiError{400, fmt::format("token id {} is outside the vocabulary", id), "invalid_request_error", "prompt"};
          }
          ids.push_back(static_cast<int32_t>(id));
        }
        return ids;
      }
      throw ApiError{400, "'prompt' must be a string, a list of token ids, or a list of those", "invalid_request_error", "prompt"};
    };
    std::vector<std::vector<int32_t>> out;
    if (it->is_array() && !it->empty() && (it->front().is_string() || it->front().is_array())) {
      if (it->size() > 64) throw ApiError{400, "at most 64 prompts per request", "invalid_request_error", "prompt"};
      for (const auto& p : *it) out.push_back(one(p));
    } else {
      out.push_back(one(*it));
    }
    for (const auto& p : out) {
      if (p.empty()) throw ApiError{400, "a prompt must hold at least one token", "invalid_request_error", "prompt"};
    }
    return out;
  }

  SamplingOptions sampling(const Json& body, int64_t default_max_tokens) {
    SamplingOptions o;
    const int64_t context = model->shape().max_positions;
    o.max_tokens = integer_field(body, "max_tokens", default_max_tokens, 0, context);
    if (body.contains("max_completion_tokens")) {
      o.max_tokens = integer_field(body, "max_completion_tokens", o.max_tokens, 0, context);
    }
    o.temperature = number_field(body, "temperature", 1.0);
    o.top_p = number_field(body, "top_p", 1.0);
    if (o.temperature < 0 || o.temperature > 2) throw ApiError{400, "'temperature' must be between 0 and 2", "invalid_request_error", "temperature"};
    if (o.top_p <= 0 || o.top_p > 1) throw ApiError{400, "'top_p' must be in (0, 1]", "invalid_request_error", "top_p"};
    o.seed = static_cast<uint64_t>(integer_field(body, "seed", 0, INT64_MIN, INT64_MAX));
    o.stop = stop_field(body);
    (void)integer_field(body, "n", 1, 1, 1);  // one choice per prompt is served
    return o;
  }

  void check_length(size_t prompt_tokens, int64_t max_tokens) {
    const auto context = static_cast<size_t>(model->shape().max_positions);
    if (prompt_tokens + static_cast<size_t>(max_tokens) > context) {
      throw ApiError{400, fmt::format("This model's maximum context length is {} tokens; the prompt "
                                      "has {} and max_tokens asks for {} more",
                                      context, prompt_tokens, max_tokens),
                     "invalid_request_error", "prompt", "context_length_exceeded"};
    }
  }

  // OpenAI's completion logprobs object for `tokens` with log-probabilities `lp`, text offsets
  // counted from `offset`.
  Json logprobs_object(const std::vector<int32_t>& tokens, const std::vector<std::optional<double>>& lp,
                       const std::vector<int32_t>& top, const std::vector<double>& top_lp,
                       size_t offset) {
    const auto& tok = model->tokenizer();
    Json text_tokens = Json::array(), token_logprobs = Json::array(), tops = Json::array(),
         offsets = Json::array();
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string piece = tok.decode(std::span(&tokens[i], 1));
      text_tokens.push_back(piece);
      offsets.push_back(offset);
      offset += piece.size();
      if (lp[i]) {
        token_logprobs.push_back(*lp[i]);
        Json entry = Json::object();
        entry[tok.decode(std::span(&top[i], 1))] = top_lp[i];
        entry[piece] = *lp[i];
        tops.push_back(entry);
      } else {
        token_logprobs.push_back(nullptr);
        tops.push_back(nullptr);
      }
    }
    return {{"tokens", text_tokens}, {"token_logprobs", token_logprobs},
            {"top_logprobs", tops}, {"text_offset", offsets}};
  }

  Json completion_choice(Session& session, const std::vector<int32_t>& prompt, const SamplingOptions& o,
                         bool echo, bool want_logprobs, size_t index, int64_t& completion_tokens) {
    const auto& tok = model->tokenizer();
    Generation g;
    if (o.max_tokens > 0) {
      std::lock_guard lock(compute_mutex);
      g = generate(session, prompt, o);
    } else {
      g.finish_reason = "length";
    }
    completion_tokens += static_cast<int64_t>(g.tokens.size());
    const std::string prompt_text = tok.decode(prompt);
    Json choice = {{"index", index}, {"text", echo ? prompt_text + g.text : g.text},
                   {"finish_reason", g.finish_reason}, {"logprobs", nullptr}};
    if (want_logprobs) {
      // Scores come from one pass over prompt + completion, so echoed and generated tokens are
      // scored by the same computation the engine's loglikelihood uses.
      std::vector<int32_t> all = prompt;
      all.insert(all.end(), g.tokens.begin(), g.tokens.end());
      TokenScores scores;
      {
        std::lock_guard lock(compute_mutex);
        scores = score_tokens(session, all);
      }
      if (echo) {
        choice["logprobs"] = logprobs_object(all, scores.logprob, scores.top_token, scores.top_logprob, 0);
      } else {
        std::vector<int32_t> gen(all.begin() + prompt.size(), all.end());
        std::vector<std::optional<double>> lp(scores.logprob.begin() + prompt.size(), scores.logprob.end());
        std::vector<int32_t> top(scores.top_token.begin() + prompt.size(), scores.top_token.end());
        std::vector<double> top_lp(scores.top_logprob.begin() + prompt.size(), scores.top_logprob.end());
        choice["logprobs"] = logprobs_object(gen, lp, top, top_lp, 0);
      }
    }
    return choice;
  }

  void completions(const httplib::Request& req, httplib::Response& res) {
    const Json body = parse_body(req);
    check_model(body);
    const auto all_prompts = prompts(body);
    const SamplingOptions o = sampling(body, 16);
    const bool echo = bool_field(body, "echo", false);
    const int64_t logprobs = integer_field(body, "logprobs", -1, 0, 5);
    const bool stream = bool_field(body, "stream", false);
    int64_t prompt_tokens = 0, completion_tokens = 0;
    for (const auto& p : all_prompts) {
      check_length(p.size(), o.max_tokens);
      prompt_tokens += static_cast<int64_t>(p.size());
    }
    const std::string id = fmt::format("cmpl-{}", ++request_counter);
    if (stream) {
      if (all_prompts.size() != 1 || echo || logprobs >= 0) {
        throw ApiError{400, "streaming serves one prompt without echo or logprobs", "invalid_request_error", "stream"};
      }
      stream_response(res, id, "text_completion", all_prompts[0], o, /*chat=*/false);
      return;
    }
    Session session(model, compute);
    Json choices = Json::array();
    for (size_t i = 0; i < all_prompts.size(); ++i) {
      choices.push_back(completion_choice(session, all_prompts[i], o, echo, logprobs >= 0, i, completion_tokens));
    }
    const Json response = {{"id", id}, {"object", "text_completion"}, {"created", now_seconds()},
                           {"model", name}, {"choices", choices},
                           {"usage", {{"prompt_tokens", prompt_tokens},
                                      {"completion_tokens", completion_tokens},
                                      {"total_tokens", prompt_tokens + completion_tokens}}}};
    res.set_content(response.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
  }

  std::vector<int32_t> chat_prompt(const Json& body) {
    const auto it = body.find("messages");
    if (it == body.end() || !it->is_array() || it->empty()) {
      throw ApiError{400, "'messages' must be a non-empty list", "invalid_request_error", "messages"};
    }
    std::vector<jinja::Value> messages;
    for (const auto& m : *it) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
          !(m["content"].is_string() || m["content"].is_array())) {
        throw ApiError{400, "each message needs a string 'role' and a 'content'", "invalid_request_error", "messages"};
      }
      std::string content;
      if (m["content"].is_string()) {
        content = m["content"].get<std::string>();
      } else {  // content parts: only text parts are understood
        for (const auto& part : m["content"]) {
          if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string()) {
            throw ApiError{400, "only text content parts are supported", "invalid_request_error", "messages"};
          }
          content += part["text"].get<std::string>();
        }
      }
      messages.push_back(jinja::Value::map({{"role", jinja::Value(m["role"].get<std::string>())},
                                            {"content", jinja::Value(content)}}));
    }
    if (!chat_template) throw ApiError{400, "this model has no chat template; use /v1/completions", "invalid_request_error", "messages"};
    const auto& tok = model->tokenizer();
    std::map<std::string, jinja::Value> vars = {
        {"messages", jinja::Value::list(std::move(messages))},
        {"add_generation_prompt", jinja::Value(true)},
        {"bos_token", jinja::Value(tok.bos_id() ? tok.token_text(*tok.bos_id()) : std::string())},
        {"eos_token", jinja::Value(tok.eos_id() ? tok.token_text(*tok.eos_id()) : std::string())}};
    // chat_template_kwargs pass through to the template, as vLLM and SGLang do.
    if (const auto kw = body.find("chat_template_kwargs"); kw != body.end() && kw->is_object()) {
      for (const auto& [k, v] : kw->items()) vars[k] = jinja::from_json(v);
    }
    std::string text;
    try {
      text = chat_template->render(vars);
    } catch (const Error& e) {
      throw ApiError{400, "the chat template refused the messages: " + e.message(), "invalid_request_error", "messages"};
    }
    return tok.encode(text, false);
  }

  void chat_completions(const httplib::Request& req, httplib::Response& res) {
    const Json body = parse_body(req);
    check_model(body);
    const auto prompt = chat_prompt(body);
    SamplingOptions o = sampling(body, 256);
    // The end-of-turn token ends a reply as the end-of-text token does.
    if (auto eot = model->tokenizer().token_id("<|eot_id|>")) o.stop_token_ids.push_back(*eot);
    check_length(prompt.size(), o.max_tokens);
    const std::string id = fmt::format("chatcmpl-{}", ++request_counter);
    if (bool_field(body, "stream", false)) {
      stream_response(res, id, "chat.completion.chunk", prompt, o, /*chat=*/true);
      return;
    }
    Session session(model, compute);
    Generation g;
    {
      std::lock_guard lock(compute_mutex);
      g = generate(session, prompt, o);
    }
    const Json response = {
        {"id", id}, {"object", "chat.completion"}, {"created", now_seconds()}, {"model", name},
        {"choices", Json::array({{{"index", 0},
                                  {"message", {{"role", "assistant"}, {"content", g.text}}},
                                  {"finish_reason", g.finish_reason}}})},
        {"usage", {{"prompt_tokens", prompt.size()}, {"completion_tokens", g.tokens.size()},
                   {"total_tokens", prompt.size() + g.tokens.size()}}}};
    res.set_content(response.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
  }

  // Server-sent events: one chunk per piece of final text, then a chunk with the finish reason,
  // then "data: [DONE]". Generation runs in the content provider, so text leaves as it is made.
  void stream_response(httplib::Response& res, const std::string& id, const std::string& object,
                       std::vector<int32_t> prompt, SamplingOptions o, bool chat) {
    const int64_t created = now_seconds();
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, id, object, prompt = std::move(prompt), o = std::move(o), chat, created](
            size_t, httplib::DataSink& sink) {
          auto send = [&](const Json& choice) {
            const Json chunk = {{"id", id}, {"object", object}, {"created", created},
                                {"model", name}, {"choices", Json::array({choice})}};
            const std::string line =
                "data: " + chunk.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n";
            return sink.write(line.data(), line.size());
          };
          if (chat) send({{"index", 0}, {"delta", {{"role", "assistant"}}}, {"finish_reason", nullptr}});
          Session session(model, compute);
          Generation g;
          {
            std::lock_guard lock(compute_mutex);
            g = generate(session, prompt, o, [&](std::string_view text) {
              const Json choice = chat ? Json{{"index", 0}, {"delta", {{"content", text}}}, {"finish_reason", nullptr}}
                                       : Json{{"index", 0}, {"text", text}, {"finish_reason", nullptr}};
              return send(choice);
            });
          }
          send(chat ? Json{{"index", 0}, {"delta", Json::object()}, {"finish_reason", g.finish_reason}}
                    : Json{{"index", 0}, {"text", ""}, {"finish_reason", g.finish_reason}});
          const std::string done = "data: [DONE]\n\n";
          sink.write(done.data(), done.size());
          sink.done();
          return true;
        });
  }

  static Json parse_body(const httplib::Request& req) {
    Json body;
    try {
      body = Json::parse(req.body);
    } catch (const Json::exception&) {
      throw ApiError{400, "the request body is not valid JSON"};
    }
    if (!body.is_object()) throw ApiError{400, "the request body must be a JSON object"};
    return body;
  }

  // Runs a handler, turning every failure into an OpenAI-style JSON error.
  httplib::Server::Handler guarded(void (Impl::*handler)(const httplib::Request&, httplib::Response&)) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
      try {
        (this->*handler)(req, res);
      } catch (const ApiError& e) {
        res.status = e.status;
        res.set_content(error_body(e).dump(), "application/json");
      } catch (const Error& e) {
        res.status = 400;
        res.set_content(error_body({400, e.message()}).dump(), "application/json");
      } catch (const std::exception& e) {
        res.status = 500;
        res.set_content(error_body({500, e.what(), "server_error"}).dump(), "application/json");
      }
    };
  }

  void routes() {
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      const Json body = {{"object", "list"},
                         {"data", Json::array({{{"id", name}, {"object", "model"}, {"created", 0},
                                                {"owned_by", "referee"},
                                                {"max_model_len", model->shape().max_positions}}})}};
      res.set_content(body.dump(), "application/json");
    });
    http.Get("/health", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("{\"status\":\"ok\"}", "application/json");
    });
    http.Post("/v1/completions", guarded(&Impl::completions));
    http.Post("/v1/chat/completions", guarded(&Impl::chat_completions));
    http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      const std::string message = res.status == 404 ? fmt::format("no route {} {}", req.method, req.path)
                                                     : fmt::format("HTTP {}", res.status);
      res.set_content(error_body({res.status, message}).dump(), "application/json");
    });
    http.set_payload_max_length(64ull << 20);
    http.set_tcp_nodelay(true);  // small responses must not wait for a delayed ACK (~40 ms each)
    // Benchmark clients keep a connection for thousands of requests; httplib closes it after 5.
    http.set_keep_alive_max_count(100000);
    const unsigned threads = options.http_threads;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  }
};

OpenAiServer::OpenAiServer(const std::filesystem::path& model_dir, const ServerOptions& options)
    : impl_(std::make_unique<Impl>(model_dir, options)) {
  impl_->routes();
}

OpenAiServer::~OpenAiServer() = default;

void OpenAiServer::stop() { impl_->http.stop(); }

int OpenAiServer::run(bool handle_signals) {
  auto& http = impl_->http;
  int port = impl_->options.port;
  // Debian's cpp-httplib is a shared library that listens with a backlog of 5: a client opening
  // 64 connections at once overflows it, and each dropped SYN costs that client a one-second
  // retransmission. The listening socket is remembered when httplib creates it, and listen() is
  // called again once bound, which on Linux just raises the backlog.
  socket_t listening = INVALID_SOCKET;
  http.set_socket_options([&listening](socket_t sock) {
    httplib::default_socket_options(sock);
    listening = sock;
  });
  if (port == 0) {
    port = http.bind_to_any_port(impl_->options.host);
  } else if (!http.bind_to_port(impl_->options.host, port)) {
    throw Error::io(fmt::format("{}:{}", impl_->options.host, port), "cannot listen (port in use?)");
  }
  if (port < 0) throw Error::io(impl_->options.host, "cannot listen");
  if (listening != INVALID_SOCKET) ::listen(listening, 1024);
  std::thread watcher;
  sigset_t signals;
  if (handle_signals) {
    // Block SIGINT/SIGTERM in every thread and wait for them in one: a clean stop, then exit.
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    watcher = std::thread([this, &signals] {
      int signal = 0;
      sigwait(&signals, &signal);
      stop();
    });
  }
  if (impl_->options.on_listening) impl_->options.on_listening(port);
  const bool ok = http.listen_after_bind();
  if (watcher.joinable()) {
    if (http.is_running() || !ok) pthread_kill(watcher.native_handle(), SIGTERM);
    watcher.join();
  }
  return ok ? 0 : 1;
}

}  // namespace referee::engine
