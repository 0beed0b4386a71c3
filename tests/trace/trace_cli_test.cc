// `referee trace` and `referee fingerprint` through the real binary: reports, library mode,
// tokenizer-only input, and bad input (exit status 2, one clear message, nothing half-written).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "testing/helpers.h"

namespace referee {
namespace {

namespace fs = std::filesystem;
using testing::npm_tokenizer_dir;
using testing::run_referee;
using testing::smoke_zoo_dir;

std::string model(const std::string& name) { return (smoke_zoo_dir() / "models" / name).string(); }

TEST(TraceCli, PairReportAsTextJsonAndHtml) {
  testing::TempDir dir;
  const auto html = dir.path() / "report.html";
  const auto r = run_referee({"trace", model("base-a"), model("a-sft"), model("base-b"), "--json", "--html", html.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["schema"], "referee.trace/1");
  EXPECT_EQ(j["mode"], "pairs");
  ASSERT_EQ(j["pairs"].size(), 3u);  // every pair of three
  EXPECT_EQ(j["pairs"][0]["a"], "base-a");
  EXPECT_EQ(j["pairs"][0]["b"], "a-sft");
  EXPECT_EQ(j["pairs"][0]["verdict"]["relation"], "derived");
  EXPECT_LT(j["pairs"][0]["verdict"]["log10_p"].get<double>(), -6);
  EXPECT_EQ(j["pairs"][1]["verdict"]["relation"], "independent");
  EXPECT_EQ(j["pairs"][0]["weights"]["layer_map"]["combined"].size(), 3u);
  EXPECT_EQ(j["pairs"][0]["tokenizer"]["relation"], "identical");
  const std::string page = testing::read_text(html);
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("<svg"), std::string::npos);

  const auto text = run_referee({"trace", model("base-a"), model("a-upscaled")});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("verdict     up-scaled"), std::string::npos) << text.out;
}

TEST(TraceCli, FingerprintLibraryRanksTheParent) {
  testing::TempDir dir;
  const auto lib = dir.path() / "library";
  fs::create_directories(lib);
  for (const char* n : {"base-a", "base-b", "base-c"}) {
    const auto r = run_referee({"fingerprint", model(n), "-o", (lib / (std::string(n) + ".safetensors")).string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // Fingerprints are small next to the model.
  EXPECT_LT(fs::file_size(lib / "base-a.safetensors"), fs::file_size(fs::path(model("base-a")) / "model.safetensors") * 4);
  const auto r = run_referee({"trace", model("a-cpt-medium"), "--library", lib.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["mode"], "library");
  EXPECT_EQ(j["comparisons"], 3);
  EXPECT_EQ(j["models"][0]["name"], "a-cpt-medium");  // the candidate
  EXPECT_EQ(j["pairs"][0]["a"], "base-a");              // its parent, ranked first
  EXPECT_EQ(j["pairs"][0]["b"], "a-cpt-medium");
  EXPECT_EQ(j["pairs"][0]["verdict"]["relation"], "derived");
  EXPECT_NE(j["pairs"][1]["verdict"]["relation"], "derived");
  // A fingerprint is accepted wherever a model is.
  const auto pair = run_referee({"trace", (lib / "base-a.safetensors").string(), model("a-sft"), "--json"});
  ASSERT_EQ(pair.exit_code, 0) << pair.err;
  EXPECT_EQ(nlohmann::json::parse(pair.out)["pairs"][0]["verdict"]["relation"], "derived");
}

TEST(TraceCli, TokenizerOnlyInputGivesTokenizerEvidenceAndNoConfidentVerdict) {
  const auto r = run_referee({"trace", npm_tokenizer_dir("gpt35turbo").string(), npm_tokenizer_dir("llama3").string(),
                              npm_tokenizer_dir("llama2").string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["pairs"].size(), 3u);
  EXPECT_EQ(j["pairs"][0]["tokenizer"]["relation"], "extension");
  EXPECT_EQ(j["pairs"][1]["tokenizer"]["relation"], "unrelated");
  for (const auto& p : j["pairs"]) {
    EXPECT_EQ(p["verdict"]["relation"], "inconclusive");
    EXPECT_FALSE(p["verdict"]["missing"].empty());
  }
}

TEST(TraceCli, BadInputExitsWithStatusTwo) {
  testing::TempDir dir;
  // One model only.
  auto r = run_referee({"trace", model("base-a")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("at least two models"), std::string::npos) << r.err;
  // A missing path.
  r = run_referee({"trace", model("base-a"), (dir.path() / "nope").string()});
  EXPECT_EQ(r.exit_code, 2);
  // An empty library.
  fs::create_directories(dir.path() / "empty");
  r = run_referee({"trace", model("base-a"), "--library", (dir.path() / "empty").string()});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("fingerprints"), std::string::npos) << r.err;
  // A truncated fingerprint in a library is not silently skipped when named directly.
  const auto fp = dir.path() / "a.safetensors";
  ASSERT_EQ(run_referee({"fingerprint", model("base-a"), "-o", fp.string()}).exit_code, 0);
  const std::string bytes = testing::read_text(fp);
  testing::write_text(fp, bytes.substr(0, bytes.size() / 2));
  r = run_referee({"trace", fp.string(), model("a-sft")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("a.safetensors"), std::string::npos) << r.err;
  // --html to a folder that does not exist: nothing half-written, status 2.
  r = run_referee({"trace", model("base-a"), model("a-sft"), "--html", (dir.path() / "no" / "r.html").string()});
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace referee
