// bench_eval MODEL_DIR [--requests N] [--reps R] [--cached N]: the benchmark track's own cost
// against `referee serve-model` on loopback.
//
// For each concurrency (1, 16, 64) and within each repetition, in turn on the same requests:
//   plain    a bare load generator: C threads, one keep-alive HTTP client each, pre-built request
//            bodies, a status check and nothing else — the server's capacity;
//   harness  referee eval's executor and OpenAI backend (no cache): the same requests built as
//            loglikelihood requests, bodies built and answers parsed per request.
// It prints both throughputs, the ratio (target >= 95%), and the harness's overhead per request
// (its latency minus the plain one's at concurrency 1). Before timing, it checks that both sides
// got the same log-likelihoods. Then a fully cached rerun: N requests (default 10,000) answered
// from a freshly opened SQLite cache (target <= 2 s).
#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "engine/openai_server.h"
#include "eval/cache.h"
#include "eval/executor.h"
#include "eval/openai_backend.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace referee;
using nlohmann::json;

namespace {

// Short English and Korean sentences split into context and continuation, varied by index so no
// two requests are the same.
std::vector<eval::Request> make_requests(size_t n) {
  static const char* kContexts[] = {"The Debian project is", "대한민국의 수도는", "A package manager installs",
                                    "The kernel schedules", "오늘 날씨는", "Free software means"};
  static const char* kContinuations[] = {" an association of volunteers.", " 서울이다.", " software and its dependencies.",
                                         " processes on the cores.", " 맑고 따뜻하다.", " users' freedom to run and share."};
  std::vector<eval::Request> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    eval::Request r;
    r.type = eval::RequestType::kLoglikelihood;
    r.context = fmt::format("{} (item {})", kContexts[i % 6], i);
    r.continuation = kContinuations[(i / 6) % 6];
    r.task = "bench";
    r.doc_id = static_cast<int64_t>(i);
    out.push_back(r);
  }
  return out;
}

// The plain generator's bodies: what any client would send for these requests.
std::vector<std::string> plain_bodies(const std::vector<eval::Request>& requests, const std::string& model) {
  std::vector<std::string> out;
  for (const auto& r : requests) {
    out.push_back(json{{"model", model}, {"prompt", r.context + r.continuation}, {"max_tokens", 0}, {"echo", true},
                       {"logprobs", 1}, {"temperature", 0}}
                      .dump());
  }
  return out;
}

struct LoadResult {
  double seconds = 0;
  double mean_latency_s = 0;
};

LoadResult plain_load(int port, const std::vector<std::string>& bodies, size_t concurrency, std::vector<std::string>* answers) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::string error;
  if (answers) answers->assign(bodies.size(), "");
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < concurrency; ++t) {
    threads.emplace_back([&] {
      httplib::Client client("127.0.0.1", port);
      client.set_keep_alive(true);
      client.set_tcp_nodelay(true);
      client.set_read_timeout(600, 0);
      for (size_t i = next++; i < bodies.size(); i = next++) {
        auto res = client.Post("/v1/completions", bodies[i], "application/json");
        // A keep-alive connection the server closed is reopened, as any HTTP client does.
        for (int retry = 0; !res && retry < 3; ++retry) res = client.Post("/v1/completions", bodies[i], "application/json");
        if (!res || res->status != 200) {
          std::lock_guard lock(error_mutex);
          if (error.empty()) error = res ? fmt::format("HTTP {}: {}", res->status, res->body) : httplib::to_string(res.error());
          failed = true;
          return;
        }
        if (answers) (*answers)[i] = res->body;
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failed) throw Error::io("bench_eval", "the plain load generator got an error from the server: " + error);
  LoadResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // Reported like the harness's (Little's law: time x concurrency / requests), so the two are the
  // same quantity.
  r.mean_latency_s = r.seconds * static_cast<double>(concurrency) / static_cast<double>(bodies.size());
  return r;
}

LoadResult harness_load(int port, const std::string& model, const std::vector<eval::Request>& requests, size_t concurrency,
                        std::vector<eval::Response>* answers) {
  eval::OpenAiOptions o;
  o.endpoints = {fmt::format("http://127.0.0.1:{}", port)};
  o.model = model;
  o.concurrency_per_endpoint = concurrency;
  eval::OpenAiBackend backend(o);
  eval::ExecuteOptions e;
  const auto t0 = std::chrono::steady_clock::now();
  auto out = eval::execute(requests, backend, nullptr, e);
  LoadResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  // The executor keeps exactly `concurrency` requests in flight, so mean latency = time x
  // concurrency / requests (Little's law), the same quantity the plain side measures directly.
  r.mean_latency_s = r.seconds * static_cast<double>(concurrency) / static_cast<double>(requests.size());
  if (answers) *answers = std::move(out);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc < 2) {
      fmt::print(stderr, "usage: bench_eval MODEL_DIR [--requests N] [--reps R] [--cached N]\n");
      return 2;
    }
    const fs::path model_dir = argv[1];
    size_t n = 256, cached_n = 10000;
    int reps = 5;
    for (int i = 2; i + 1 < argc; i += 2) {
      const std::string flag = argv[i];
      if (flag == "--requests") n = std::stoul(argv[i + 1]);
      else if (flag == "--reps") reps = std::stoi(argv[i + 1]);
      else if (flag == "--cached") cached_n = std::stoul(argv[i + 1]);
      else throw Error::invalid_argument(flag, "unknown option");
    }
    engine::ServerOptions so;
    so.port = 0;
    so.http_threads = 72;  // more than the largest concurrency, so the server never queues connections
    std::atomic<int> port{0};
    so.on_listening = [&](int p) { port = p; };
    engine::OpenAiServer server(model_dir, so);
    std::thread serving([&] { server.run(false); });
    // Stops and joins the server however main leaves (an error included).
    struct StopServer {
      engine::OpenAiServer& server;
      std::thread& thread;
      ~StopServer() {
        server.stop();
        if (thread.joinable()) thread.join();
      }
    } stop_server{server, serving};
    while (port == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    const std::string model = model_dir.filename().string();

    const auto requests = make_requests(n);
    const auto bodies = plain_bodies(requests, model);
    fmt::print("machine      {}\n", bench::machine_description());
    fmt::print("server       referee serve-model {} on 127.0.0.1:{} (in this process, {} HTTP threads)\n", model_dir.string(),
               port.load(), so.http_threads);
    fmt::print("workload     {} loglikelihood requests (/v1/completions, echo + logprobs), {} repetitions after a warm-up\n", n, reps);

    // Same numbers first: the harness's log-likelihood is the sum of the continuation's token
    // log-probabilities in the plain answer.
    {
      std::vector<std::string> plain;
      std::vector<eval::Response> harness;
      plain_load(port, bodies, 4, &plain);
      harness_load(port, model, requests, 4, &harness);
      double worst = 0;
      for (size_t i = 0; i < n; ++i) {
        const json j = json::parse(plain[i]);
        const auto& lp = j["choices"][0]["logprobs"];
        double sum = 0;
        for (size_t t = 0; t < lp["text_offset"].size(); ++t) {
          if (lp["text_offset"][t].get<size_t>() >= requests[i].context.size() && !lp["token_logprobs"][t].is_null()) {
            sum += lp["token_logprobs"][t].get<double>();
          }
        }
        worst = std::max(worst, std::abs(sum - harness[i].logprob));
      }
      fmt::print("agreement    max |loglikelihood difference| {:.2e} over {} requests (tolerance 1e-9)\n", worst, n);
      if (worst > 1e-9) throw Error::io("bench_eval", "the harness and the plain client disagree");
    }

    fmt::print("\nconcurrency  plain req/s (min-max)      harness req/s (min-max)    harness/plain  overhead/request\n");
    for (const size_t c : {size_t{1}, size_t{16}, size_t{64}}) {
      std::vector<double> plain_s, harness_s, ratio;
      double plain_latency = 0, harness_latency = 0;
      for (int r = -1; r < reps; ++r) {  // r = -1: warm-up
        const auto p = plain_load(port, bodies, c, nullptr);
        const auto h = harness_load(port, model, requests, c, nullptr);
        if (r < 0) continue;
        plain_s.push_back(p.seconds), harness_s.push_back(h.seconds), ratio.push_back(p.seconds / h.seconds);
        plain_latency += p.mean_latency_s / reps, harness_latency += h.mean_latency_s / reps;
      }
      auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
      };
      auto rate = [&](const std::vector<double>& s) {
        const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
        return fmt::format("{:8.0f} ({:.0f}-{:.0f})", static_cast<double>(n) / median(s), static_cast<double>(n) / *hi,
                           static_cast<double>(n) / *lo);
      };
      fmt::print("{:>11}  {:<25}  {:<25}  {:>12.1f}%  {:>+10.1f} us\n", c, rate(plain_s), rate(harness_s), 100.0 * median(ratio),
                 (harness_latency - plain_latency) * 1e6);
    }

    // A fully cached rerun: fill a cache as a finished run would have, reopen it, answer all.
    {
      const fs::path dir = fs::temp_directory_path() / fmt::format("referee-bench-eval-{}", ::getpid());
      fs::create_directories(dir);
      const auto many = make_requests(cached_n);
      const std::string identity = model + "@bench";
      {
        eval::RequestCache cache(dir / "cache.sqlite");
        for (const auto& r : many) {
          eval::Response resp;
          resp.logprob = -1.5 - static_cast<double>(r.doc_id % 7);
          resp.greedy = r.doc_id % 2 == 0;
          cache.put(eval::RequestCache::key(r, identity), eval::RequestCache::canonical_request(r, identity), resp);
        }
      }
      struct NoServer : eval::Backend {
        std::string id;
        nlohmann::ordered_json identity() const override { return {{"kind", "none"}}; }
        std::string model_identity() const override { return id; }
        size_t concurrency() const override { return 1; }
        eval::Response run(const eval::Request&) override {
          throw eval::BackendError(eval::BackendError::Kind::kPermanent, "none", "a cached rerun must not send");
        }
      } none;
      none.id = identity;
      std::vector<double> seconds;
      for (int r = 0; r < 3; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        eval::RequestCache cache(dir / "cache.sqlite");
        eval::ExecuteStats stats;
        const auto answers = eval::execute(many, none, &cache, {}, &stats);
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        if (stats.cached != cached_n || answers.size() != cached_n) throw Error::io("bench_eval", "the cached rerun missed entries");
      }
      std::sort(seconds.begin(), seconds.end());
      fmt::print("\ncached rerun {} requests from a freshly opened cache: {:.3f} s median ({:.3f}-{:.3f}), target <= 2 s\n", cached_n,
                 seconds[1], seconds[0], seconds[2]);
      fs::remove_all(dir);
    }
    return 0;
  } catch (const Error& e) {
    fmt::print(stderr, "bench_eval: error: {}\n", e.message());
    return 2;
  }
}
