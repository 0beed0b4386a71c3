// Runs a list of requests through a cache and a backend: every request is looked up first; the
// missing ones are sent with exactly backend.concurrency() in flight, identical requests once;
// transient failures are retried with exponential backoff and jitter (a Retry-After header is
// honoured); every answer is stored as it arrives. Responses come back in request order.
// A permanent failure (or transient failures past max_retries) stops the run: what was answered
// is committed, then an Error names the request (task, doc_id) and the endpoint's message.
#pragma once

#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "eval/backend.h"
#include "eval/cache.h"
#include "eval/request.h"

namespace referee::eval {

struct ExecuteOptions {
  int max_retries = 6;           // further attempts after a transient failure
  double backoff_base_s = 0.5;   // first wait; doubled each retry
  double backoff_cap_s = 60;     // longest wait (a Retry-After above it is honoured up to 10 min)
  // Called after each answer (from worker threads, one call at a time): answered so far (cached
  // ones included), total, answered from the cache.
  std::function<void(size_t done, size_t total, size_t cached)> progress;
  // When set, no further requests start; those in flight finish and are stored, then execute
  // throws Cancelled.
  const std::atomic<bool>* cancel = nullptr;
  uint64_t jitter_seed = 0x9e3779b97f4a7c15ull;
};

struct ExecuteStats {
  size_t total = 0;    // requests asked for
  size_t cached = 0;   // answered from the cache
  size_t unique = 0;   // distinct requests not in the cache (identical ones are sent once)
  size_t sent = 0;     // attempts made (first tries and retries)
  size_t retried = 0;  // retries after transient failures
  size_t failed = 0;   // requests that failed for good (0 unless execute threw)
};

// Thrown when ExecuteOptions::cancel was set; every answer received was stored.
class Cancelled : public std::exception {
 public:
  const char* what() const noexcept override { return "the evaluation was cancelled"; }
};

std::vector<Response> execute(const std::vector<Request>& requests, Backend& backend, RequestCache* cache,
                              const ExecuteOptions& options, ExecuteStats* stats = nullptr);

}  // namespace referee::eval
