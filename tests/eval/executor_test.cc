// The executor, against real HTTP servers that count what they receive: a rerun with the cache
// sends nothing, a cancelled run resumed sends each request exactly once overall, identical
// requests go once, the concurrency bound is kept, transient failures are retried, permanent ones
// stop the run naming the request, and requests spread across endpoints.
#include <gtest/gtest.h>

#include <atomic>

#include "eval/backend_test_servers.h"  // tests/eval
#include "eval/engine_backend.h"
#include "eval/executor.h"
#include "eval/openai_backend.h"
#include "testing/helpers.h"
#include "util/error.h"

namespace referee::eval {
namespace {
using nlohmann::json;
using referee::testing::TempDir;
using test_servers::ScriptedServer;

std::vector<Request> requests(int n, const std::string& task = "arc") {
  std::vector<Request> out;
  for (int i = 0; i < n; ++i) {
    Request r;
    r.type = i % 3 == 2 ? RequestType::kGenerateUntil : RequestType::kLoglikelihood;
    r.context = "Question " + std::to_string(i) + "?";
    r.continuation = " answer";
    r.task = task;
    r.doc_id = i;
    out.push_back(r);
  }
  return out;
}

OpenAiBackend backend_for(std::vector<std::string> urls, size_t per_endpoint = 3) {
  OpenAiOptions o;
  o.endpoints = std::move(urls);
  o.model = "scripted";
  o.timeout_s = 10;
  o.concurrency_per_endpoint = per_endpoint;
  return OpenAiBackend(o);
}

ExecuteOptions fast() {
  ExecuteOptions o;
  o.backoff_base_s = 0.01;
  o.backoff_cap_s = 0.05;
  return o;
}

void expect_same(const std::vector<Response>& a, const std::vector<Response>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].logprob, b[i].logprob) << i;
    EXPECT_EQ(a[i].greedy, b[i].greedy) << i;
    EXPECT_EQ(a[i].text, b[i].text) << i;
  }
}

TEST(Execute, ReturnsAnswersInRequestOrder) {
  ScriptedServer server({}, 5);
  auto backend = backend_for({server.url()});
  const auto reqs = requests(20);
  ExecuteStats stats;
  const auto out = execute(reqs, backend, nullptr, fast(), &stats);
  ASSERT_EQ(out.size(), reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (reqs[i].type == RequestType::kGenerateUntil) {
      EXPECT_EQ(out[i].text, "gen:" + reqs[i].context);
    } else {
      EXPECT_NEAR(out[i].logprob, -(' ' + 'a' + 'n' + 's' + 'w' + 'e' + 'r') / 1000.0, 1e-12);
    }
  }
  EXPECT_EQ(stats.sent, 20u);
  EXPECT_EQ(stats.cached, 0u);
  EXPECT_EQ(server.requests(), 20u);
}

TEST(Execute, ARerunWithTheCacheSendsNothing) {
  TempDir dir;
  ScriptedServer server;
  auto backend = backend_for({server.url()});
  const auto reqs = requests(30);
  std::vector<Response> first;
  {
    RequestCache cache(dir / "cache.sqlite");
    first = execute(reqs, backend, &cache, fast());
  }
  EXPECT_EQ(server.requests(), 30u);
  RequestCache cache(dir / "cache.sqlite");
  ExecuteStats stats;
  size_t last_done = 0, last_cached = 0;
  auto o = fast();
  o.progress = [&](size_t done, size_t total, size_t cached) {
    EXPECT_EQ(total, 30u);
    last_done = done;
    last_cached = cached;
  };
  const auto again = execute(reqs, backend, &cache, o, &stats);
  EXPECT_EQ(server.requests(), 30u) << "nothing was sent the second time";
  EXPECT_EQ(stats.cached, 30u);
  EXPECT_EQ(stats.sent, 0u);
  EXPECT_EQ(last_done, 30u);
  EXPECT_EQ(last_cached, 30u);
  expect_same(first, again);

  // The same model behind another endpoint hits the same entries.
  ScriptedServer elsewhere;
  auto moved = backend_for({elsewhere.url()});
  execute(reqs, moved, &cache, fast());
  EXPECT_EQ(elsewhere.requests(), 0u);
}

TEST(Execute, ACancelledRunResumedSendsEachRequestOnce) {
  TempDir dir;
  const auto reqs = requests(40);
  ScriptedServer reference_server;
  auto reference_backend = backend_for({reference_server.url()});
  const auto uninterrupted = execute(reqs, reference_backend, nullptr, fast());

  ScriptedServer server({}, 10);
  auto backend = backend_for({server.url()});
  std::atomic<bool> cancel{false};
  {
    RequestCache cache(dir / "cache.sqlite");
    auto o = fast();
    o.cancel = &cancel;
    o.progress = [&](size_t done, size_t, size_t) {
      if (done >= 12) cancel = true;
    };
    EXPECT_THROW(execute(reqs, backend, &cache, o), Cancelled);
  }
  const size_t before = server.requests();
  EXPECT_GE(before, 12u);
  EXPECT_LT(before, 40u) << "the run stopped midway";
  RequestCache cache(dir / "cache.sqlite");
  ExecuteStats stats;
  const auto resumed = execute(reqs, backend, &cache, fast(), &stats);
  EXPECT_EQ(stats.cached, before);
  EXPECT_EQ(server.requests(), 40u) << "each request sent exactly once overall";
  for (const auto& [prompt, count] : server.per_prompt()) EXPECT_EQ(count, 1) << prompt;
  expect_same(resumed, uninterrupted);
}

TEST(Execute, IdenticalRequestsAreSentOnce) {
  ScriptedServer server;
  auto backend = backend_for({server.url()});
  auto reqs = requests(5);
  const auto copy = reqs;
  for (auto r : copy) {
    r.task = "another task with the same prompt";
    reqs.push_back(r);
  }
  ExecuteStats stats;
  const auto out = execute(reqs, backend, nullptr, fast(), &stats);
  EXPECT_EQ(server.requests(), 5u);
  EXPECT_EQ(stats.unique, 5u);
  ASSERT_EQ(out.size(), 10u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(out[i].text, out[i + 5].text);
}

TEST(Execute, KeepsExactlyTheBackendsConcurrencyInFlight) {
  ScriptedServer server({}, 30);
  auto backend = backend_for({server.url()}, 4);
  execute(requests(24), backend, nullptr, fast());
  EXPECT_EQ(server.max_in_flight(), 4u);
}

TEST(Execute, RetriesTransientFailures) {
  // Every prompt fails twice (429 with Retry-After, then 503) before it is answered.
  ScriptedServer server([](const json&, int attempt, httplib::Response& res) {
    if (attempt == 0) {
      res.status = 429;
      res.set_header("Retry-After", "0.05");
      res.set_content(R"({"error":{"message":"rate limited"}})", "application/json");
      return true;
    }
    if (attempt == 1) {
      res.status = 503;
      return true;
    }
    return false;
  });
  auto backend = backend_for({server.url()});
  ExecuteStats stats;
  const auto out = execute(requests(6), backend, nullptr, fast(), &stats);
  EXPECT_EQ(out.size(), 6u);
  EXPECT_EQ(server.requests(), 18u);
  EXPECT_EQ(stats.retried, 12u);
  EXPECT_EQ(stats.sent, 18u);
  EXPECT_EQ(stats.failed, 0u);
}

TEST(Execute, GivesUpAfterMaxRetries) {
  ScriptedServer server([](const json&, int, httplib::Response& res) {
    res.status = 500;
    res.set_content(R"({"error":{"message":"always broken"}})", "application/json");
    return true;
  });
  auto backend = backend_for({server.url()}, 1);
  auto o = fast();
  o.max_retries = 2;
  ExecuteStats stats;
  try {
    execute(requests(1), backend, nullptr, o, &stats);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("always broken"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("gave up after 2 retries"), std::string::npos) << e.message();
  }
  EXPECT_EQ(server.requests(), 3u);
  EXPECT_EQ(stats.failed, 1u);
}

TEST(Execute, APermanentFailureStopsTheRunNamingTheRequestAfterCommittingTheRest) {
  TempDir dir;
  ScriptedServer server([](const json& body, int, httplib::Response& res) {
    if (body.value("prompt", "").find("Question 5?") == 0) {
      res.status = 400;
      res.set_content(R"({"error":{"message":"context length exceeded"}})", "application/json");
      return true;
    }
    return false;
  });
  auto backend = backend_for({server.url()}, 1);  // one at a time: questions 0-4 come first
  RequestCache cache(dir / "cache.sqlite");
  try {
    execute(requests(10, "hellaswag"), backend, &cache, fast());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("hellaswag"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("doc 5"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("context length exceeded"), std::string::npos) << e.message();
  }
  EXPECT_EQ(server.requests(), 6u) << "nothing after the failure was sent";
  EXPECT_EQ(cache.size(), 5u) << "what was answered is committed";
}

TEST(Execute, SpreadsRequestsAcrossEndpoints) {
  ScriptedServer a({}, 20), b({}, 20);
  auto backend = backend_for({a.url(), b.url()}, 2);
  EXPECT_EQ(backend.concurrency(), 4u);
  ExecuteStats stats;
  execute(requests(40), backend, nullptr, fast(), &stats);
  EXPECT_EQ(a.requests() + b.requests(), 40u);
  EXPECT_GE(a.requests(), 10u);
  EXPECT_GE(b.requests(), 10u);
  EXPECT_LE(a.max_in_flight(), 2u);
  EXPECT_LE(b.max_in_flight(), 2u);
  const auto per = backend.sent_per_endpoint();
  EXPECT_EQ(per[0], a.requests());
  EXPECT_EQ(per[1], b.requests());
}

TEST(Execute, ADeadEndpointsRequestsAreRetriedOnTheLiveOne) {
  ScriptedServer live({}, 5);
  test_servers::DroppingSocket dead;
  auto backend = backend_for({dead.url(), live.url()}, 2);
  ExecuteStats stats;
  const auto out = execute(requests(12), backend, nullptr, fast(), &stats);
  EXPECT_EQ(out.size(), 12u);
  EXPECT_EQ(live.requests(), 12u);
  EXPECT_GE(stats.retried, 1u);
}

TEST(Execute, TheEngineBackendThroughTheCache) {
  TempDir dir;
  EngineBackend engine({referee::testing::tiny_model_dir(), 2, {}});
  auto reqs = requests(6);
  for (auto& r : reqs) r.generation.max_gen_toks = 4;
  RequestCache cache(dir / "cache.sqlite");
  const auto first = execute(reqs, engine, &cache, fast());
  ExecuteStats stats;
  const auto second = execute(reqs, engine, &cache, fast(), &stats);
  EXPECT_EQ(stats.cached, 6u);
  EXPECT_EQ(stats.sent, 0u);
  expect_same(first, second);
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (reqs[i].type == RequestType::kLoglikelihood) {
      EXPECT_LT(first[i].logprob, 0);
    }
  }
}

TEST(Execute, NothingToDoIsFine) {
  ScriptedServer server;
  auto backend = backend_for({server.url()});
  EXPECT_TRUE(execute({}, backend, nullptr, fast()).empty());
  EXPECT_EQ(server.requests(), 0u);
}

}  // namespace
}  // namespace referee::eval
