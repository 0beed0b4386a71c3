// The request cache: keys that identify a request exactly, answers that survive reopening, the
// first answer winning, threads and processes sharing one file, and foreign or damaged files
// refused with one clear error.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <thread>

#include "eval/cache.h"
#include "testing/helpers.h"
#include "util/error.h"

namespace referee::eval {
namespace {
using referee::testing::TempDir;

Request req(const std::string& context, const std::string& continuation = " yes") {
  Request r;
  r.context = context;
  r.continuation = continuation;
  r.task = "t";
  return r;
}

Response answer(double logprob, const std::string& text = "") {
  Response r;
  r.logprob = logprob;
  r.greedy = logprob > -1;
  r.text = text;
  r.raw_text = "<think>x</think>" + text;
  r.finish_reason = "stop";
  return r;
}

void put(RequestCache& cache, const Request& r, const Response& a, const std::string& model = "m") {
  cache.put(RequestCache::key(r, model), RequestCache::canonical_request(r, model), a);
}

TEST(RequestCacheKey, DependsOnEverythingThatChangesTheAnswerAndNothingElse) {
  const Request base = req("Q: 1+1?", " 2");
  const std::string k = RequestCache::key(base, "m");
  EXPECT_EQ(k.size(), 32u);
  EXPECT_EQ(k, RequestCache::key(base, "m"));
  Request other = base;
  other.task = "another task";
  other.doc_id = 9;
  other.index = 3;
  EXPECT_EQ(RequestCache::key(other, "m"), k) << "where a request came from is not part of its identity";
  EXPECT_NE(RequestCache::key(base, "m2"), k);
  other = base;
  other.repeat = 1;
  EXPECT_NE(RequestCache::key(other, "m"), k);
  other = base;
  other.continuation = " 3";
  EXPECT_NE(RequestCache::key(other, "m"), k);
  other = base;
  other.type = RequestType::kLoglikelihoodRolling;
  EXPECT_NE(RequestCache::key(other, "m"), k);
  // Context and continuation cannot trade characters and collide.
  EXPECT_NE(RequestCache::key(req("ab", "c"), "m"), RequestCache::key(req("a", "bc"), "m"));

  // Bytes that are not UTF-8 (which JSON cannot carry) still tell keys apart.
  EXPECT_NE(RequestCache::key(req("a\xff"), "m"), RequestCache::key(req("a\xfe"), "m"));

  Request g = base;
  g.type = RequestType::kGenerateUntil;
  Request g2 = g;
  g2.generation.until = {"\n"};
  EXPECT_NE(RequestCache::key(g, "m"), RequestCache::key(g2, "m"));
  g2 = g;
  g2.generation.extra = {{"b", 1}, {"a", 2}};
  Request g3 = g;
  g3.generation.extra = {{"a", 2}, {"b", 1}};
  EXPECT_EQ(RequestCache::key(g2, "m"), RequestCache::key(g3, "m")) << "extra keys in any order";
}

TEST(RequestCache, AnswersSurviveReopeningAndKeepTheRequestForAudit) {
  TempDir dir;
  const auto path = dir / "cache.sqlite";
  {
    RequestCache cache(path);
    put(cache, req("a"), answer(-1.25, "A"));
    put(cache, req("b"), answer(-std::numeric_limits<double>::infinity()));
    EXPECT_TRUE(cache.lookup(RequestCache::key(req("a"), "m"))) << "buffered answers are found";
  }
  RequestCache cache(path);
  EXPECT_EQ(cache.size(), 2u);
  const auto found = cache.lookup({RequestCache::key(req("a"), "m"), RequestCache::key(req("c"), "m"),
                                   RequestCache::key(req("b"), "m")});
  ASSERT_TRUE(found[0]);
  EXPECT_EQ(found[0]->logprob, -1.25);
  EXPECT_EQ(found[0]->text, "A");
  EXPECT_EQ(found[0]->raw_text, "<think>x</think>A");
  EXPECT_EQ(found[0]->finish_reason, "stop");
  EXPECT_FALSE(found[1]);
  ASSERT_TRUE(found[2]);
  EXPECT_TRUE(std::isinf(found[2]->logprob) && found[2]->logprob < 0);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT request, created FROM responses WHERE key = ?", -1, &st, nullptr), SQLITE_OK);
  const std::string key = RequestCache::key(req("a"), "m");
  sqlite3_bind_text(st, 1, key.c_str(), -1, SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  const auto request = nlohmann::json::parse(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  EXPECT_EQ(request["context"], "a");
  EXPECT_EQ(request["model"], "m");
  EXPECT_EQ(request["type"], "loglikelihood");
  EXPECT_GT(sqlite3_column_double(st, 1), 1.7e9);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

TEST(RequestCache, TheFirstAnswerWins) {
  TempDir dir;
  {
    RequestCache cache(dir / "c.sqlite");
    put(cache, req("a"), answer(-1));
    put(cache, req("a"), answer(-2));  // buffered duplicate
    cache.flush();
    put(cache, req("a"), answer(-3));  // committed duplicate
  }
  RequestCache other(dir / "c.sqlite");
  put(other, req("a"), answer(-4));
  other.flush();
  EXPECT_EQ(other.lookup(RequestCache::key(req("a"), "m"))->logprob, -1);
  EXPECT_EQ(other.size(), 1u);
}

TEST(RequestCache, CommitsWithinTheFlushIntervalWithoutBeingAsked) {
  TempDir dir;
  CacheOptions o;
  o.flush_interval = std::chrono::milliseconds(20);
  RequestCache writer(dir / "c.sqlite", o);
  RequestCache reader(dir / "c.sqlite");
  put(writer, req("a"), answer(-1));
  bool seen = false;
  for (int i = 0; i < 200 && !seen; ++i) {  // at most 2 s
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    seen = reader.size() == 1;
  }
  EXPECT_TRUE(seen) << "the background flush committed the answer";
}

TEST(RequestCache, TwoThreadsWithTwoConnectionsShareOneFile) {
  TempDir dir;
  const auto path = dir / "c.sqlite";
  { RequestCache create(path); }
  auto write = [&](int who) {
    CacheOptions o;
    o.flush_rows = 16;
    RequestCache cache(path, o);
    for (int i = 0; i < 300; ++i) {
      // Half the keys are shared: both write them, one answer is kept.
      const std::string context = i % 2 ? "shared " + std::to_string(i) : std::to_string(who) + " own " + std::to_string(i);
      put(cache, req(context), answer(-who - 1));
    }
  };
  std::thread a(write, 0), b(write, 1);
  a.join();
  b.join();
  RequestCache cache(path);
  EXPECT_EQ(cache.size(), 150u + 2 * 150u);
  const auto shared = cache.lookup(RequestCache::key(req("shared 1"), "m"));
  ASSERT_TRUE(shared);
  EXPECT_TRUE(shared->logprob == -1 || shared->logprob == -2);
}

TEST(RequestCache, TwoProcessesShareOneFile) {
  TempDir dir;
  const auto path = dir / "c.sqlite";
  { RequestCache create(path); }
  auto write = [&](const std::string& who) {
    CacheOptions o;
    o.flush_rows = 8;
    RequestCache cache(path, o);
    for (int i = 0; i < 200; ++i) put(cache, req(who + std::to_string(i)), answer(-1));
    for (int i = 0; i < 50; ++i) put(cache, req("shared" + std::to_string(i)), answer(-1));
  };
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    try {
      write("child");
    } catch (...) {
      _exit(1);
    }
    _exit(0);
  }
  write("parent");
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  RequestCache cache(path);
  EXPECT_EQ(cache.size(), 450u);
}

TEST(RequestCache, AProcessKilledWhileWritingLeavesAUsableFile) {
  TempDir dir;
  const auto path = dir / "c.sqlite";
  { RequestCache create(path); }
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    CacheOptions o;
    o.flush_rows = 4;
    RequestCache cache(path, o);
    for (int i = 0; i < 10000000; ++i) put(cache, req(std::to_string(i)), answer(-1));
    _exit(0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  RequestCache cache(path);
  const size_t kept = cache.size();
  EXPECT_GT(kept, 0u);
  // What was committed is whole: every stored answer reads back, and the keys are 0..kept-1
  // except for at most the rows of the transaction in flight.
  size_t found = 0;
  for (size_t i = 0; i < kept + 8; ++i) found += cache.lookup(RequestCache::key(req(std::to_string(i)), "m")).has_value();
  EXPECT_EQ(found, kept);
  put(cache, req("after"), answer(-1));
  cache.flush();
  EXPECT_EQ(cache.size(), kept + 1);
}

TEST(RequestCache, RefusesAFileThatIsNotACache) {
  TempDir dir;
  const auto garbage = dir / "garbage.sqlite";
  referee::testing::write_text(garbage, std::string(8192, 'x'));
  try {
    RequestCache cache(garbage);
    FAIL() << "a file of garbage was opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorruption);
    EXPECT_NE(e.message().find(garbage.string()), std::string::npos) << e.message();
  }

  const auto foreign = dir / "foreign.sqlite";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(foreign.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE people (name TEXT)", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    RequestCache cache(foreign);
    FAIL() << "another program's database was opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kCorruption);
    EXPECT_NE(e.message().find("not a referee request cache"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find(foreign.string()), std::string::npos) << e.message();
  }

  const auto newer = dir / "newer.sqlite";
  { RequestCache create(newer); }
  ASSERT_EQ(sqlite3_open(newer.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    RequestCache cache(newer);
    FAIL() << "a newer schema was opened";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotSupported);
  }

  EXPECT_THROW(RequestCache(dir / "no-such-dir" / "c.sqlite"), Error);
}

TEST(RequestCache, AnEmptyFileBecomesACache) {
  TempDir dir;
  referee::testing::write_text(dir / "empty.sqlite", "");
  RequestCache cache(dir / "empty.sqlite");
  put(cache, req("a"), answer(-1));
  cache.flush();
  EXPECT_EQ(cache.size(), 1u);
}

}  // namespace
}  // namespace referee::eval
