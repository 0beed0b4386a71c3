// End-to-end tests of `referee eval` through the real binary: the bundled sample tasks against a
// model served by `referee serve-model` and against the in-process engine, --list and --dry-run,
// and a run killed with SIGKILL in the middle that resumes from its cache without re-sending an
// answered request and writes exactly the results of an uninterrupted run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "testing/helpers.h"

namespace referee::testing {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

// Starts the referee binary with `args`; stdout to `out_path` (or /dev/null), stderr to /dev/null.
pid_t spawn_referee(const std::vector<std::string>& args, const fs::path& out_path = {}) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int out = ::open(out_path.empty() ? "/dev/null" : out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null = ::open("/dev/null", O_WRONLY);
    dup2(out, 1);
    dup2(null, 2);
    std::vector<char*> argv;
    std::string binary = REFEREE_BINARY;
    argv.push_back(binary.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// `referee serve-model` on a free loopback port, for the life of the object.
class ServedModel {
 public:
  explicit ServedModel(const fs::path& model) : log_(dir_ / "serve.log") {
    pid_ = spawn_referee({"serve-model", model.string(), "--port", "0", "--http-threads", "16"}, log_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string text = read_text_if_any(log_);
      const auto at = text.find("http://127.0.0.1:");
      if (at != std::string::npos && text.find("/v1", at) != std::string::npos) {
        port_ = std::stoi(text.substr(at + 17));
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "serve-model did not start";
  }
  ~ServedModel() {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  static std::string read_text_if_any(const fs::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  TempDir dir_;
  fs::path log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

json read_json(const fs::path& p) { return json::parse(read_text(p)); }

// The results without what legitimately differs between two runs (when, how long, how many were
// answered from the cache, where the cache was).
json comparable(json results) {
  results.erase("run");
  return results;
}

int64_t cache_rows(const fs::path& db) {
  sqlite3* handle = nullptr;
  if (sqlite3_open_v2(db.c_str(), &handle, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(handle);
    return 0;
  }
  sqlite3_busy_timeout(handle, 1000);
  int64_t rows = 0;
  sqlite3_stmt* stmt = nullptr;
  // The cache's one table, whatever it is called.
  if (sqlite3_prepare_v2(handle, "SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 1", -1, &stmt, nullptr) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW) {
    const std::string table = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    stmt = nullptr;
    if (sqlite3_prepare_v2(handle, ("SELECT COUNT(*) FROM " + table).c_str(), -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      rows = sqlite3_column_int64(stmt, 0);
    }
  }
  sqlite3_finalize(stmt);
  sqlite3_close(handle);
  return rows;
}

TEST(EvalCli, ListsTheBundledTasks) {
  const auto r = run_referee({"eval", "--list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("output_type"), std::string::npos);
  EXPECT_NE(r.out.find("sample_qa"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("kmmlu_accounting"), std::string::npos) << r.out;
  const auto j = run_referee({"eval", "--list", "--json"});
  ASSERT_EQ(j.exit_code, 0) << j.err;
  EXPECT_TRUE(json::parse(j.out).is_array());
}

TEST(EvalCli, DryRunPrintsPromptsAndSendsNothing) {
  const auto r = run_referee({"eval", "--tasks", "sample_qa", "--dry-run", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("-- request 0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("nothing was sent"), std::string::npos) << r.out;
}

TEST(EvalCli, BadInputIsOneClearError) {
  TempDir dir;
  auto r = run_referee({"eval", "--tasks", "no_such_task", "--engine", tiny_model_dir().string(), "--output", (dir / "o").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("referee: error:"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("no_such_task"), std::string::npos) << r.err;
  r = run_referee({"eval", "--tasks", "sample_qa"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--model-url"), std::string::npos) << r.err;
  write_text(dir / "ref.json", R"({"reference": "frontier", "scores": {"sample_qa": {"acc": 0.5}}})");
  r = run_referee({"eval", "--tasks", "sample_qa", "--engine", tiny_model_dir().string(), "--output", (dir / "o").string(),
                   "--reference", (dir / "ref.json").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("ref.json"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "o" / "results.json"));
}

// The whole bundled suite, few-shot as the task files say, served and in process: both run and
// write lm-eval-shaped results. The model is the README's demo model (trained here in seconds):
// the tiny test model's 128-token context is shorter than some benchmarks' prompts.
TEST(EvalCli, BundledTasksAgainstServedModelAndEngine) {
  TempDir dir;
  const auto trained = run_referee({"train", "--config", (source_dir() / "configs" / "eval-demo.json").string(), "--out",
                                    (dir / "model").string()});
  ASSERT_EQ(trained.exit_code, 0) << trained.err;
  ServedModel served(dir / "model");
  const auto listed = json::parse(run_referee({"eval", "--list", "--json"}).out);
  std::string all;
  for (const auto& row : listed) all += (all.empty() ? "" : ",") + row["name"].get<std::string>();
  write_text(dir / "ref.json", R"({"reference": "frontier-model", "scores": {}})");
  const auto http = run_referee({"eval", "--tasks", all, "--model-url", served.url(), "--model", "model", "--output",
                                 (dir / "http").string(), "--reference", (dir / "ref.json").string()});
  ASSERT_EQ(http.exit_code, 0) << http.err;
  const auto engine = run_referee({"eval", "--tasks", all, "--engine", (dir / "model").string(), "--output", (dir / "engine").string()});
  ASSERT_EQ(engine.exit_code, 0) << engine.err;
  const json h = read_json(dir / "http" / "results.json"), e = read_json(dir / "engine" / "results.json");
  for (const auto& row : listed) {
    const std::string task = row["name"];
    ASSERT_TRUE(h["results"].contains(task)) << task;
    ASSERT_TRUE(e["results"].contains(task)) << task;
    EXPECT_TRUE(fs::exists(dir / "http" / ("samples_" + task + ".jsonl"))) << task;
    EXPECT_TRUE(h["versions"].contains(task));
    EXPECT_TRUE(h["configs"].contains(task));
    EXPECT_TRUE(h["n-samples"][task].contains("effective"));
  }
  EXPECT_EQ(h["referee_version"], e["referee_version"]);
  EXPECT_TRUE(h["git_hash"].is_string());
  EXPECT_TRUE(h["averages"].contains("macro"));
  EXPECT_TRUE(h.contains("relative_to_reference"));
  EXPECT_NE(http.out.find("macro average"), std::string::npos) << http.out;
  // The same model gives the same multiple-choice scores over HTTP as in process (log-likelihoods
  // agree to about 1e-6; a tie within that could flip a choice, which these items do not have).
  for (const auto& row : listed) {
    if (row["output_type"] != "multiple_choice") continue;
    const std::string task = row["name"];
    EXPECT_EQ(h["results"][task]["acc,none"], e["results"][task]["acc,none"]) << task;
  }
}

// A run killed with SIGKILL mid-way resumes from its cache: nothing answered is sent again, and
// the results and samples equal an uninterrupted run's byte for byte.
TEST(EvalCli, KilledRunResumesWithTheSameResults) {
  TempDir dir;
  // A task big enough to be killed in the middle: 1,500 documents x 4 choices.
  std::string docs;
  for (int i = 0; i < 1500; ++i) {
    docs += json{{"question", "Item " + std::to_string(i) + ": which word names a colour?"},
                 {"choices", {"red", "table", "run", "slowly"}},
                 {"answer", i % 4}}
                .dump() +
            "\n";
  }
  fs::create_directories(dir / "tasks");
  write_text(dir / "tasks" / "docs.jsonl", docs);
  write_text(dir / "tasks" / "colours.yaml", R"(task: colours
dataset_path: json
dataset_kwargs:
  data_files:
    test: docs.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "Question: {{question}}\nAnswer:"
doc_to_choice: "{{choices}}"
doc_to_target: answer
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: 1.0
)");
  ServedModel served(tiny_model_dir());
  const std::vector<std::string> common = {"eval", "--tasks", "colours", "--tasks-dir", (dir / "tasks").string(), "--model-url",
                                           served.url(), "--model", "tiny-model", "--concurrency", "2"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = common;
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };

  const auto whole = run_referee(with({"--output", (dir / "whole").string()}));
  ASSERT_EQ(whole.exit_code, 0) << whole.err;

  const fs::path cache = dir / "resumed" / "cache.sqlite";
  const pid_t pid = spawn_referee(with({"--output", (dir / "resumed").string()}));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  int64_t rows_at_kill = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(cache) && (rows_at_kill = cache_rows(cache)) >= 400) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished before it could be killed; make the task bigger";
  ASSERT_GE(rows_at_kill, 400);
  EXPECT_FALSE(fs::exists(dir / "resumed" / "results.json"));
  const int64_t committed = cache_rows(cache);
  ASSERT_LT(committed, 6000) << "everything was answered before the kill";

  const auto resumed = run_referee(with({"--output", (dir / "resumed").string()}));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  const json a = read_json(dir / "whole" / "results.json"), b = read_json(dir / "resumed" / "results.json");
  EXPECT_EQ(comparable(a), comparable(b));
  EXPECT_EQ(read_text(dir / "whole" / "samples_colours.jsonl"), read_text(dir / "resumed" / "samples_colours.jsonl"));
  // Nothing committed before the kill was sent again: the rerun answered exactly those from the
  // cache and sent only the rest (no retries were needed on loopback).
  EXPECT_EQ(b["run"]["requests"].get<int64_t>(), 6000);
  EXPECT_EQ(b["run"]["cached"].get<int64_t>(), committed);
  EXPECT_EQ(b["run"]["sent"].get<int64_t>(), 6000 - committed);
  EXPECT_EQ(cache_rows(cache), 6000);

  // A third run sends nothing at all.
  const auto again = run_referee(with({"--output", (dir / "resumed").string()}));
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const json c = read_json(dir / "resumed" / "results.json");
  EXPECT_EQ(c["run"]["sent"].get<int64_t>(), 0);
  EXPECT_EQ(comparable(a), comparable(c));
}

}  // namespace
}  // namespace referee::testing
