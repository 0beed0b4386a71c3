// The backends: the OpenAI-compatible one against the project's own server (its log-likelihoods
// must equal the in-process engine's) and against a scripted server that fails on purpose (each
// failure classified as transient or permanent), reasoning stripped from generations, and the
// in-process engine's determinism.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>

#include "eval/backend.h"
#include "eval/engine_backend.h"
#include "eval/openai_backend.h"
#include "eval/backend_test_servers.h"  // tests/eval
#include "testing/helpers.h"
#include "util/error.h"

namespace referee::eval {
namespace {
using nlohmann::json;
using test_servers::ScriptedServer;

Request ll(const std::string& context, const std::string& continuation) {
  Request r;
  r.type = RequestType::kLoglikelihood;
  r.context = context;
  r.continuation = continuation;
  r.task = "test";
  return r;
}

Request gen(const std::string& context, std::vector<std::string> until = {}, int64_t max_tokens = 8) {
  Request r;
  r.type = RequestType::kGenerateUntil;
  r.context = context;
  r.generation.until = std::move(until);
  r.generation.max_gen_toks = max_tokens;
  r.task = "test";
  return r;
}

OpenAiOptions options_for(std::vector<std::string> urls, std::string model = "tiny") {
  OpenAiOptions o;
  o.endpoints = std::move(urls);
  o.model = std::move(model);
  o.timeout_s = 30;
  o.concurrency_per_endpoint = 2;
  return o;
}

BackendError failure_of(Backend& backend, const Request& r) {
  try {
    backend.run(r);
  } catch (const BackendError& e) {
    return e;
  }
  ADD_FAILURE() << "the request did not fail";
  return BackendError(BackendError::Kind::kPermanent, "", "");
}

TEST(OpenAiBackend, LoglikelihoodEqualsTheEnginesOnTheSameModel) {
  test_servers::TinyServer server;
  OpenAiBackend http(options_for({server.url()}));
  EngineBackend engine({referee::testing::tiny_model_dir(), 2, {}});
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"서울은 한국의 수도이다. The capital", " of Korea is Seoul."},
      {"The weather in Seoul", " is cold in winter"},
      {"Question: What is two plus two?\nAnswer:", " four"},
  };
  for (const auto& [context, continuation] : texts) {
    const Response a = http.run(ll(context, continuation));
    const Response b = engine.run(ll(context, continuation));
    EXPECT_NEAR(a.logprob, b.logprob, 1e-4) << context << "|" << continuation;
    EXPECT_EQ(a.greedy, b.greedy) << context << "|" << continuation;
    EXPECT_LT(a.logprob, 0);
  }
}

TEST(OpenAiBackend, GenerationMatchesTheEngineAndChatWorks) {
  test_servers::TinyServer server;
  OpenAiBackend http(options_for({server.url()}));
  EngineBackend engine({referee::testing::tiny_model_dir(), 2, {}});
  const Request r = gen("The weather in Seoul", {}, 6);
  const Response a = http.run(r), b = engine.run(r);
  EXPECT_EQ(a.text, b.text);
  EXPECT_FALSE(a.finish_reason.empty());

  auto o = options_for({server.url()});
  o.generate_mode = GenerateMode::kChat;
  OpenAiBackend chat(o);
  const Response c = chat.run(gen("안녕하세요", {}, 6));
  EXPECT_EQ(c.text, c.raw_text);
  EXPECT_NE(chat.model_identity(), http.model_identity()) << "chat answers other questions";
}

TEST(OpenAiBackend, RollingLoglikelihoodSumsEveryScoredToken) {
  ScriptedServer server;
  OpenAiBackend backend(options_for({server.url()}));
  Request r;
  r.type = RequestType::kLoglikelihoodRolling;
  r.context = "abc";
  const Response out = backend.run(r);
  EXPECT_NEAR(out.logprob, -(98 + 99) / 1000.0, 1e-12) << "the first token has no score";
  EXPECT_EQ(server.last_body()["prompt"], "abc");
  EXPECT_EQ(server.last_body()["echo"], true);
  EXPECT_EQ(server.last_body()["max_tokens"], 0);
}

TEST(OpenAiBackend, ContinuationIsTheTokensPastTheContext) {
  ScriptedServer server;
  OpenAiBackend backend(options_for({server.url()}));
  const Response out = backend.run(ll("ab", "cd"));
  EXPECT_NEAR(out.logprob, -(99 + 100) / 1000.0, 1e-12);
  EXPECT_TRUE(out.greedy);
  EXPECT_EQ(server.last_body()["prompt"], "abcd");
  EXPECT_EQ(server.last_body()["logprobs"], 1);
  EXPECT_EQ(server.last_body()["temperature"], 0);
}

TEST(OpenAiBackend, NotGreedyWhenAnotherTokenWasLikelier) {
  ScriptedServer server([](const json& body, int, httplib::Response& res) {
    json answer = ScriptedServer::echo_answer(body["prompt"]);
    answer["choices"][0]["logprobs"]["top_logprobs"][2] = {{"x", -0.001}, {"c", -0.099}};
    res.set_content(answer.dump(), "application/json");
    return true;
  });
  OpenAiBackend backend(options_for({server.url()}));
  EXPECT_FALSE(backend.run(ll("ab", "cd")).greedy);
}

TEST(OpenAiBackend, ChatSendsMessagesAndPassesExtraKeysThrough) {
  ScriptedServer server;
  auto o = options_for({server.url()});
  o.generate_mode = GenerateMode::kChat;
  OpenAiBackend backend(o);
  Request r = gen("hello", {"\n\n", "Q:"}, 32);
  r.generation.temperature = 0.5;
  r.generation.top_p = 0.9;
  r.generation.seed = 7;
  r.generation.extra = {{"chat_template_kwargs", {{"enable_thinking", false}}}};
  backend.run(r);
  const json body = server.last_body();
  EXPECT_EQ(body["messages"], json::parse(R"([{"role":"user","content":"hello"}])"));
  EXPECT_EQ(body["chat_template_kwargs"]["enable_thinking"], false);
  EXPECT_EQ(body["stop"], json({"\n\n", "Q:"}));
  EXPECT_EQ(body["max_tokens"], 32);
  EXPECT_EQ(body["temperature"], 0.5);
  EXPECT_EQ(body["top_p"], 0.9);
  EXPECT_EQ(body["seed"], 7);
  EXPECT_EQ(body["model"], "tiny");
}

TEST(OpenAiBackend, ReasoningIsStrippedBeforeScoring) {
  ScriptedServer server([](const json&, int, httplib::Response& res) {
    const json answer = {{"choices", {{{"message", {{"role", "assistant"},
                                                    {"reasoning_content", "secret thoughts"},
                                                    {"content", "<think>2+2... is 4</think>\n\nThe answer is 4.\n\nQ: next"}}},
                                       {"finish_reason", "stop"}}}}};
    res.set_content(answer.dump(), "application/json");
    return true;
  });
  auto o = options_for({server.url()});
  o.generate_mode = GenerateMode::kChat;
  OpenAiBackend backend(o);
  const Response r = backend.run(gen("q", {"Q:"}));
  EXPECT_EQ(r.text, "The answer is 4.\n\n") << "reasoning removed, cut at the stop string";
  EXPECT_EQ(r.raw_text, "<think>2+2... is 4</think>\n\nThe answer is 4.\n\nQ: next");
  EXPECT_EQ(r.finish_reason, "stop");
}

TEST(StripReasoning, HandlesEveryShape) {
  const ReasoningTags tags;
  EXPECT_EQ(strip_reasoning("plain", tags), "plain");
  EXPECT_EQ(strip_reasoning("<think>a</think> b <think>c</think>d", tags), "b d");
  EXPECT_EQ(strip_reasoning("opened in the prompt</think>answer", tags), "answer");
  EXPECT_EQ(strip_reasoning("x<think>never closed", tags), "x");
  EXPECT_EQ(strip_reasoning("[R]a[/R]b", {"[R]", "[/R]"}), "b");
  EXPECT_EQ(strip_reasoning("<think>a</think>b", {"", ""}), "<think>a</think>b");
}

TEST(OpenAiBackend, ClassifiesFailuresAsTransientOrPermanent) {
  ScriptedServer server([](const json& body, int, httplib::Response& res) {
    const std::string p = body["prompt"];
    if (p == "429") {
      res.status = 429;
      res.set_header("Retry-After", "2");
      res.set_content(R"({"error":{"message":"slow down"}})", "application/json");
    } else if (p == "500" || p == "503") {
      res.status = std::stoi(p);
      res.set_content("overloaded", "text/plain");
    } else if (p == "400") {
      res.status = 400;
      res.set_content(R"({"error":{"message":"prompt too long","type":"invalid_request_error"}})", "application/json");
    } else if (p == "garbage") {
      res.set_content("{\"choices\": [", "application/json");
    } else if (p == "shapex") {
      res.set_content(R"({"choices":[{"text":"x"}]})", "application/json");
    } else if (p == "slow") {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      return false;
    } else {
      return false;
    }
    return true;
  });
  auto o = options_for({server.url()});
  o.timeout_s = 0.5;
  OpenAiBackend backend(o);
  Request r = gen("429");
  auto e = failure_of(backend, r);
  EXPECT_TRUE(e.transient());
  EXPECT_EQ(e.retry_after_s(), 2.0);
  EXPECT_NE(e.message().find("slow down"), std::string::npos) << e.message();
  for (const char* p : {"500", "503", "slow"}) {
    r.context = p;
    EXPECT_TRUE(failure_of(backend, r).transient()) << p;
  }
  r.context = "400";
  e = failure_of(backend, r);
  EXPECT_FALSE(e.transient());
  EXPECT_NE(e.message().find("prompt too long"), std::string::npos) << e.message();
  EXPECT_EQ(e.endpoint(), server.url());
  EXPECT_EQ(e.kind(), BackendError::Kind::kPermanent);
  r.context = "garbage";
  EXPECT_EQ(failure_of(backend, r).kind(), BackendError::Kind::kMalformed);
  e = failure_of(backend, ll("shape", "x"));
  EXPECT_FALSE(e.transient());
  EXPECT_NE(e.message().find("logprobs"), std::string::npos) << e.message();

  test_servers::DroppingSocket dropping;
  OpenAiBackend dropped(options_for({dropping.url()}));
  EXPECT_TRUE(failure_of(dropped, gen("x")).transient());
  EXPECT_GE(dropping.accepted(), 1u);

  OpenAiBackend refused(options_for({"http://127.0.0.1:1"}));
  EXPECT_TRUE(failure_of(refused, gen("x")).transient());
}

// Whatever an endpoint sends, parsing either succeeds or throws BackendError (the fuzz target
// fuzz/fuzz_openai_response.cc explores further).
TEST(ParseOpenAiResponse, MutatedAnswersOnlyEverFailCleanly) {
  const std::string valid = ScriptedServer::echo_answer("abc def").dump();
  const std::string chat = R"({"choices":[{"message":{"content":"<think>x</think>y"},"finish_reason":"stop"}]})";
  referee::testing::SplitMix64 rng(42);
  const char alphabet[] = "{}[]\",:0123456789-.eEnulltruefalse \\\"";
  size_t parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string body = i % 2 ? valid : chat;
    const int edits = 1 + static_cast<int>(rng.next() % 4);
    for (int k = 0; k < edits && !body.empty(); ++k) {
      const size_t at = rng.next() % body.size();
      switch (rng.next() % 3) {
        case 0: body[at] = alphabet[rng.next() % (sizeof alphabet - 1)]; break;
        case 1: body.erase(at, 1 + rng.next() % 8); break;
        default: body.insert(at, 1, alphabet[rng.next() % (sizeof alphabet - 1)]); break;
      }
    }
    for (const auto type : {RequestType::kLoglikelihood, RequestType::kLoglikelihoodRolling, RequestType::kGenerateUntil}) {
      Request r = ll("abc", " def");
      r.type = type;
      for (const auto mode : {GenerateMode::kCompletions, GenerateMode::kChat}) {
        try {
          (void)parse_openai_response(r, body, mode, {}, "fuzz");
          ++parsed;
        } catch (const BackendError& e) {
          EXPECT_EQ(e.kind(), BackendError::Kind::kMalformed);
        }
      }
    }
  }
  EXPECT_GT(parsed, 0u);
}

TEST(OpenAiBackend, SendsTheApiKeyAndNeverShowsIt) {
  ScriptedServer server;
  ::setenv("REFEREE_TEST_API_KEY", "sk-test-secret", 1);
  auto o = options_for({server.url()});
  o.api_key_env = "REFEREE_TEST_API_KEY";
  OpenAiBackend backend(o);
  backend.run(gen("x"));
  EXPECT_EQ(server.last_authorization(), "Bearer sk-test-secret");
  EXPECT_EQ(backend.identity().dump().find("sk-test-secret"), std::string::npos);
  o.api_key_env = "REFEREE_TEST_UNSET_KEY";
  ::unsetenv("REFEREE_TEST_UNSET_KEY");
  EXPECT_THROW(OpenAiBackend{o}, Error);
}

TEST(OpenAiBackend, ModelIdentityIgnoresWhereTheModelIsServed) {
  OpenAiBackend a(options_for({"http://10.0.0.1:8000/v1"}, "m"));
  OpenAiBackend b(options_for({"http://10.0.0.2:9000", "http://10.0.0.3:9000/v1/completions"}, "m"));
  EXPECT_EQ(a.model_identity(), b.model_identity());
  EXPECT_EQ(b.concurrency(), 4u);
  EXPECT_EQ(b.identity()["endpoints"].size(), 2u);
  EXPECT_THROW(OpenAiBackend(options_for({"10.0.0.1:8000"})), Error);
  EXPECT_THROW(OpenAiBackend(options_for({"ftp://x/v1"})), Error);
  EXPECT_THROW(OpenAiBackend(options_for({})), Error);
}

TEST(OpenAiBackend, FullRouteUrlsAreAccepted) {
  ScriptedServer server;
  OpenAiBackend backend(options_for({server.url() + "/completions"}));
  EXPECT_EQ(backend.run(gen("x")).text, "gen:x");
}

TEST(EngineBackend, IsDeterministicAndScoresRollingText) {
  EngineBackend engine({referee::testing::tiny_model_dir(), 2, {}});
  const Request r = ll("The weather in Seoul", " is cold");
  EXPECT_EQ(engine.run(r).logprob, engine.run(r).logprob);
  Request rolling;
  rolling.type = RequestType::kLoglikelihoodRolling;
  rolling.context = "The weather in Seoul is cold in winter.";
  const Response a = engine.run(rolling);
  EXPECT_LT(a.logprob, 0);
  EXPECT_EQ(a.logprob, engine.run(rolling).logprob);
  const Request g = gen("The weather", {}, 5);
  EXPECT_EQ(engine.run(g).text, engine.run(g).text);
  EXPECT_EQ(engine.concurrency(), 1u);
  EXPECT_NE(engine.model_identity().find('@'), std::string::npos);
}

TEST(EngineBackend, EmptyContinuationIsAPermanentError) {
  EngineBackend engine({referee::testing::tiny_model_dir(), 1, {}});
  try {
    engine.run(ll("x", ""));
    FAIL();
  } catch (const BackendError& e) {
    EXPECT_FALSE(e.transient());
  }
}

}  // namespace
}  // namespace referee::eval
