#include "eval/executor.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>

#include "util/error.h"

namespace referee::eval {
namespace {

// Sleeps `seconds`, waking early when cancelled.
void sleep_unless_cancelled(double seconds, const std::atomic<bool>* cancel, const std::atomic<bool>& stop) {
  const auto end = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
  while (std::chrono::steady_clock::now() < end) {
    if ((cancel && cancel->load()) || stop.load()) return;
    const std::chrono::steady_clock::duration left = end - std::chrono::steady_clock::now();
    const std::chrono::steady_clock::duration step = std::chrono::milliseconds(20);
    std::this_thread::sleep_for(std::min(left, step));
  }
}

}  // namespace

std::vector<Response> execute(const std::vector<Request>& requests, Backend& backend, RequestCache* cache,
                              const ExecuteOptions& options, ExecuteStats* stats_out) {
  ExecuteStats stats;
  stats.total = requests.size();
  const std::string model = backend.model_identity();

  // Distinct requests: identical ones share one key and are sent once.
  std::vector<std::string> keys(requests.size());
  std::vector<size_t> unique_of(requests.size());
  std::vector<size_t> first_request;  // unique index → first request with that key
  std::unordered_map<std::string, size_t> by_key;
  for (size_t i = 0; i < requests.size(); ++i) {
    keys[i] = RequestCache::key(requests[i], model);
    const auto [it, inserted] = by_key.emplace(keys[i], first_request.size());
    if (inserted) first_request.push_back(i);
    unique_of[i] = it->second;
  }
  std::vector<std::string> unique_keys;
  for (const size_t i : first_request) unique_keys.push_back(keys[i]);

  std::vector<std::optional<Response>> answers(first_request.size());
  if (cache) answers = cache->lookup(unique_keys);
  std::vector<size_t> todo;  // unique indices to send
  for (size_t u = 0; u < answers.size(); ++u) {
    if (!answers[u]) todo.push_back(u);
  }
  for (size_t i = 0; i < requests.size(); ++i) {
    if (answers[unique_of[i]]) ++stats.cached;
  }
  stats.unique = todo.size();

  std::mutex mutex;  // guards stats, done, failure, progress calls, answers' writes
  size_t done = stats.cached;
  std::exception_ptr failure;
  std::atomic<bool> stop{false};
  std::atomic<size_t> next{0};
  // How many requests each distinct one stands for, so progress counts requests.
  std::vector<size_t> weight(first_request.size(), 0);
  for (size_t i = 0; i < requests.size(); ++i) ++weight[unique_of[i]];

  if (options.progress) options.progress(done, requests.size(), stats.cached);

  auto worker = [&](size_t worker_index) {
    std::mt19937_64 rng(options.jitter_seed + worker_index);
    std::uniform_real_distribution<double> jitter(0.5, 1.0);
    for (;;) {
      if (stop.load() || (options.cancel && options.cancel->load())) return;
      const size_t t = next.fetch_add(1);
      if (t >= todo.size()) return;
      const size_t u = todo[t];
      const Request& request = requests[first_request[u]];
      for (int attempt = 0;; ++attempt) {
        {
          std::lock_guard lock(mutex);
          ++stats.sent;
          if (attempt > 0) ++stats.retried;
        }
        try {
          Response r = backend.run(request);
          if (cache) cache->put(unique_keys[u], RequestCache::canonical_request(request, model), r);
          std::lock_guard lock(mutex);
          answers[u] = std::move(r);
          done += weight[u];
          if (options.progress) options.progress(done, requests.size(), stats.cached);
          break;
        } catch (const BackendError& e) {
          const bool give_up = !e.transient() || attempt >= options.max_retries ||
                               (options.cancel && options.cancel->load()) || stop.load();
          if (give_up) {
            if (!e.transient() || attempt >= options.max_retries) {
              std::lock_guard lock(mutex);
              ++stats.failed;
              if (!failure) {
                const std::string where = fmt::format("task '{}' doc {} (request {}{})", request.task, request.doc_id,
                                                      request.index,
                                                      request.repeat ? fmt::format(", repeat {}", request.repeat) : "");
                // Retries spent: the endpoint is unreachable or overloaded (an I/O failure); refused:
                // the request does not suit the endpoint (fix the configuration); malformed: the
                // endpoint cannot be trusted as it is.
                if (e.transient()) {
                  failure = std::make_exception_ptr(
                      Error::io(where, fmt::format("gave up after {} retries: {}", attempt, e.what())));
                } else if (e.kind() == BackendError::Kind::kMalformed) {
                  failure = std::make_exception_ptr(Error::corrupt(where, e.what()));
                } else {
                  failure = std::make_exception_ptr(Error::invalid_argument(where, e.what()));
                }
              }
              stop = true;
            }
            return;
          }
          double wait = std::min(options.backoff_cap_s, options.backoff_base_s * std::pow(2.0, attempt)) * jitter(rng);
          if (e.retry_after_s()) wait = std::min(600.0, std::max(wait, *e.retry_after_s()));
          sleep_unless_cancelled(wait, options.cancel, stop);
          if ((options.cancel && options.cancel->load()) || stop.load()) return;
        } catch (...) {
          std::lock_guard lock(mutex);
          ++stats.failed;
          if (!failure) failure = std::current_exception();
          stop = true;
          return;
        }
      }
    }
  };

  const size_t threads = std::min(std::max<size_t>(1, backend.concurrency()), todo.size());
  std::vector<std::thread> pool;
  for (size_t w = 0; w < threads; ++w) pool.emplace_back(worker, w);
  for (auto& th : pool) th.join();

  if (cache) cache->flush();  // what was answered is committed before any error is reported
  if (stats_out) *stats_out = stats;
  if (failure) std::rethrow_exception(failure);
  std::vector<Response> out;
  out.reserve(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    if (!answers[unique_of[i]]) throw Cancelled();
    out.push_back(*answers[unique_of[i]]);
  }
  return out;
}

}  // namespace referee::eval
