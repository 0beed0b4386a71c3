// HTTP servers for the eval tests, all on 127.0.0.1: the project's own OpenAI-compatible server
// on the tiny model, a scripted server that answers (or fails) as each test says and counts what
// it receives, and a socket that accepts connections and drops them at once.
#pragma once

#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "engine/openai_server.h"
#include "testing/helpers.h"

namespace referee::eval::test_servers {

// The project's server on the tiny model, named "tiny".
class TinyServer {
 public:
  TinyServer() {
    engine::ServerOptions o;
    o.port = 0;
    o.model_name = "tiny";
    o.compute_threads = 2;
    std::promise<int> port;
    auto listening = port.get_future();
    o.on_listening = [&port](int p) { port.set_value(p); };
    server_ = std::make_unique<engine::OpenAiServer>(referee::testing::tiny_model_dir(), o);
    thread_ = std::thread([this] { server_->run(false); });
    port_ = listening.get();
  }
  ~TinyServer() {
    server_->stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  std::unique_ptr<engine::OpenAiServer> server_;
  std::thread thread_;
  int port_ = 0;
};

// A scripted OpenAI-shaped server. By default it answers like a model whose tokens are the
// prompt's bytes: byte b of the prompt has log-probability -b/1000 and is always the greedy one;
// generations are "gen:" + the prompt. `behaviour` may answer instead (return true when it did).
class ScriptedServer {
 public:
  using Behaviour = std::function<bool(const nlohmann::json& body, int attempt, httplib::Response& res)>;

  explicit ScriptedServer(Behaviour behaviour = {}, int delay_ms = 0) : behaviour_(std::move(behaviour)), delay_ms_(delay_ms) {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) { handle(req, res); };
    http_.Post("/v1/completions", handler);
    http_.Post("/v1/chat/completions", handler);
    http_.new_task_queue = [] { return new httplib::ThreadPool(16); };
    port_ = http_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { http_.listen_after_bind(); });
    while (!http_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~ScriptedServer() {
    http_.stop();
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  size_t requests() const { return requests_.load(); }
  size_t max_in_flight() const { return max_in_flight_.load(); }
  std::map<std::string, int> per_prompt() const {
    std::lock_guard lock(mutex_);
    return attempts_;
  }
  nlohmann::json last_body() const {
    std::lock_guard lock(mutex_);
    return last_body_;
  }
  std::string last_authorization() const {
    std::lock_guard lock(mutex_);
    return last_auth_;
  }

  static nlohmann::json echo_answer(const std::string& prompt) {
    nlohmann::json tokens = nlohmann::json::array(), lps = nlohmann::json::array(),
                   tops = nlohmann::json::array(), offsets = nlohmann::json::array();
    for (size_t i = 0; i < prompt.size(); ++i) {
      const std::string t(1, prompt[i]);
      const double lp = -static_cast<double>(static_cast<unsigned char>(prompt[i])) / 1000.0;
      tokens.push_back(t);
      offsets.push_back(i);
      lps.push_back(i == 0 ? nlohmann::json(nullptr) : nlohmann::json(lp));
      tops.push_back(i == 0 ? nlohmann::json(nullptr) : nlohmann::json{{t, lp}});
    }
    return {{"choices", {{{"index", 0}, {"text", prompt}, {"finish_reason", "length"},
                          {"logprobs", {{"tokens", tokens}, {"token_logprobs", lps},
                                        {"top_logprobs", tops}, {"text_offset", offsets}}}}}}};
  }

 private:
  void handle(const httplib::Request& req, httplib::Response& res) {
    const size_t now = ++in_flight_;
    size_t seen = max_in_flight_.load();
    while (now > seen && !max_in_flight_.compare_exchange_weak(seen, now)) {
    }
    ++requests_;
    nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    const std::string prompt = body.contains("prompt") ? body["prompt"].get<std::string>()
                                                       : body["messages"][0]["content"].get<std::string>();
    int attempt;
    {
      std::lock_guard lock(mutex_);
      attempt = attempts_[prompt]++;
      last_body_ = body;
      last_auth_ = req.get_header_value("Authorization");
    }
    if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    if (!behaviour_ || !behaviour_(body, attempt, res)) {
      nlohmann::json answer;
      if (body.value("echo", false)) {
        answer = echo_answer(prompt);
      } else if (body.contains("messages")) {
        answer = {{"choices", {{{"index", 0}, {"message", {{"role", "assistant"}, {"content", "gen:" + prompt}}},
                                {"finish_reason", "stop"}}}}};
      } else {
        answer = {{"choices", {{{"index", 0}, {"text", "gen:" + prompt}, {"finish_reason", "stop"}}}}};
      }
      res.set_content(answer.dump(), "application/json");
    }
    --in_flight_;
  }

  Behaviour behaviour_;
  int delay_ms_;
  httplib::Server http_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<size_t> requests_{0}, in_flight_{0}, max_in_flight_{0};
  mutable std::mutex mutex_;
  std::map<std::string, int> attempts_;
  nlohmann::json last_body_;
  std::string last_auth_;
};

// Accepts TCP connections and closes them before answering.
class DroppingSocket {
 public:
  DroppingSocket() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(fd_, 16);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 20) > 0) {
          const int c = ::accept(fd_, nullptr, nullptr);
          if (c >= 0) {
            ++accepted_;
            char buf[256];
            (void)::recv(c, buf, sizeof buf, MSG_DONTWAIT);
            ::close(c);
          }
        }
      }
    });
  }
  ~DroppingSocket() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  size_t accepted() const { return accepted_.load(); }

 private:
  int fd_ = -1, port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> accepted_{0};
  std::thread thread_;
};

}  // namespace referee::eval::test_servers
