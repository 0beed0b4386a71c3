// Finding a split's files: local data_files (string, list, map, globs) and hub datasets laid out
// under a data root as `huggingface-cli download --local-dir` leaves them; every bundled sample.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "eval/dataset.h"
#include "testing/helpers.h"
#include "util/error.h"

namespace referee::eval {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

fs::path samples() { return testing::source_dir() / "data/eval/samples"; }

DatasetRequest hub(const std::string& path, std::optional<std::string> name,
                   std::vector<fs::path> roots = {samples()}) {
  DatasetRequest r;
  r.dataset_path = path;
  r.dataset_name = std::move(name);
  r.data_roots = std::move(roots);
  return r;
}

DatasetRequest local(const std::string& path, nlohmann::ordered_json kwargs, fs::path dir) {
  DatasetRequest r;
  r.dataset_path = path;
  r.dataset_kwargs = std::move(kwargs);
  r.task_dir = std::move(dir);
  return r;
}

// ---- dataset_path: json / csv ----

TEST(LocalFiles, AStringIsTheTrainSplit) {
  testing::TempDir dir;
  testing::write_text(dir / "rows.jsonl", "{\"q\":1}\n{\"q\":2}\n");
  const auto r = local("json", {{"data_files", "rows.jsonl"}}, dir.path());
  EXPECT_EQ(load_split(r, "train").size(), 2u);
  EXPECT_THAT(available_splits(r), ElementsAre("train"));
  EXPECT_THAT(testing::error_message([&] { load_split(r, "test"); }),
              HasSubstr("json (test): not found: no data_files for this split (data_files has: train)"));
}

TEST(LocalFiles, AListIsConcatenatedInOrder) {
  testing::TempDir dir;
  testing::write_text(dir / "b.jsonl", "{\"q\":\"b\"}\n");
  testing::write_text(dir / "a.jsonl", "{\"q\":\"a\"}\n");
  const auto rows = load_split(local("json", {{"data_files", {"b.jsonl", "a.jsonl"}}}, dir.path()), "train");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["q"], "b");
}

TEST(LocalFiles, AMapNamesSplitsAndGlobsExpandSorted) {
  testing::TempDir dir;
  testing::write_text(dir / "data/test-00001.jsonl", "{\"i\":2}\n");
  testing::write_text(dir / "data/test-00000.jsonl", "{\"i\":1}\n");
  testing::write_text(dir / "data/dev.csv", "i\n9\n");
  const nlohmann::ordered_json kwargs = {
      {"data_files", {{"test", "data/test-*.jsonl"}, {"validation", (dir / "data/dev.csv").string()}}}};
  const auto json = local("json", kwargs, dir.path());
  const auto rows = load_split(json, "test");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["i"], 1);
  EXPECT_THAT(available_splits(json), ElementsAre("test", "validation"));
  // An absolute CSV path, read as CSV because dataset_path says csv.
  EXPECT_EQ(load_split(local("csv", kwargs, dir.path()), "validation")[0]["i"], 9);
  const auto files = split_files(json, "test");
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].filename(), "test-00000.jsonl");
}

TEST(LocalFiles, RecursiveGlobAndDataDir) {
  testing::TempDir dir;
  testing::write_text(dir / "root/x/a/part.jsonl", "{\"i\":1}\n");
  testing::write_text(dir / "root/x/b/c/part.jsonl", "{\"i\":2}\n");
  const auto r = local("json", {{"data_dir", "root"}, {"data_files", "x/**/*.jsonl"}}, dir.path());
  EXPECT_EQ(load_split(r, "train").size(), 2u);
}

TEST(LocalFiles, MissingFilesAndEmptyGlobsAreNamed) {
  testing::TempDir dir;
  EXPECT_THAT(testing::error_message([&] { load_split(local("json", {{"data_files", "nope.jsonl"}}, dir.path()), "train"); }),
              HasSubstr("json (train): not found: data file " + (dir / "nope.jsonl").string() +
                        " does not exist"));
  EXPECT_THAT(testing::error_message([&] { load_split(local("json", {{"data_files", "*.jsonl"}}, dir.path()), "train"); }),
              HasSubstr("data_files pattern '*.jsonl' matches no file under " + dir.path().string()));
  EXPECT_THAT(testing::error_message([&] { load_split(local("json", nlohmann::ordered_json::object(), dir.path()), "train"); }),
              HasSubstr("dataset_path json: needs dataset_kwargs.data_files"));
  EXPECT_THAT(testing::error_message([&] { load_split(local("json", {{"data_files", 3}}, dir.path()), "train"); }),
              HasSubstr("must be a path or a list of paths"));
}

TEST(LocalFiles, ParquetIsNotSupported) {
  testing::TempDir dir;
  EXPECT_EQ(testing::error_message([&] { load_split(local("parquet", {{"data_files", "x.parquet"}}, dir.path()), "train"); }),
            "dataset_path parquet: not supported: local parquet files; use dataset_path json "
            "(JSON Lines or JSON) or csv (see docs/eval-datasets.md)");
}

TEST(LocalFiles, AMalformedFileErrorNamesDatasetSplitFileAndLine) {
  testing::TempDir dir;
  testing::write_text(dir / "t.csv", "a,b\n1\n");
  EXPECT_EQ(testing::error_message([&] { load_split(local("csv", {{"data_files", {{"test", "t.csv"}}}}, dir.path()), "test"); }),
            "csv (test): " + (dir / "t.csv").string() +
                ": malformed: line 2: 1 fields, but the header on line 1 has 2 columns");
}

TEST(LocalFiles, FieldSelectsTheListInAJsonDocument) {
  testing::TempDir dir;
  testing::write_text(dir / "d.json", R"({"meta":[{"v":1}],"rows":[{"q":1},{"q":2}]})");
  const auto r = local("json", {{"data_files", "d.json"}, {"field", "rows"}}, dir.path());
  EXPECT_EQ(load_split(r, "train").size(), 2u);
}

// ---- hub datasets under data roots ----

TEST(HubLayout, KmmluCsvReleaseFromAFixtureRoot) {
  testing::TempDir dir;
  testing::write_text(dir / "HAERAE-HUB/KMMLU/data/Law-test.csv",
                      "question,answer,A,B,C,D,Category,Human Accuracy\n"
                      "\"질문, 하나\",3,가,나,다,라,Law,0.5\n");
  testing::write_text(dir / "HAERAE-HUB/KMMLU/data/Law-dev.csv",
                      "question,answer,A,B,C,D,Category,Human Accuracy\nq,1,a,b,c,d,Law,\n");
  const auto r = hub("HAERAE-HUB/KMMLU", "Law", {dir.path()});
  const auto rows = load_split(r, "test");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["question"], "질문, 하나");
  EXPECT_EQ(rows[0]["answer"], 3);
  EXPECT_DOUBLE_EQ(rows[0]["Human Accuracy"].get<double>(), 0.5);
  EXPECT_THAT(available_splits(r), ElementsAre("dev", "test"));
  // lm-eval's validation split finds the dev file.
  EXPECT_EQ(load_split(r, "validation").size(), 1u);
}

TEST(HubLayout, MissingSubjectSaysWhatWasExpected) {
  EXPECT_EQ(testing::error_message([] { load_split(hub("HAERAE-HUB/KMMLU", "Accounting", {"/data"}), "test"); }),
            "HAERAE-HUB/KMMLU (Accounting, test): not found: no such directory (looked for "
            "/data/HAERAE-HUB/KMMLU); download it with huggingface-cli download --repo-type "
            "dataset HAERAE-HUB/KMMLU --local-dir DIR/HAERAE-HUB/KMMLU and pass --data-dir DIR "
            "(see docs/eval-datasets.md)");
  testing::TempDir dir;
  fs::create_directories(dir / "HAERAE-HUB/KMMLU/data");
  EXPECT_EQ(testing::error_message([&] { load_split(hub("HAERAE-HUB/KMMLU", "Accounting", {dir.path()}), "test"); }),
            "HAERAE-HUB/KMMLU (Accounting, test): not found: no file under " +
                (dir / "HAERAE-HUB/KMMLU").string() +
                "; expected data/Accounting-test.csv (see docs/eval-datasets.md for the other layouts "
                "read)");
  EXPECT_THAT(testing::error_message([] { load_split(hub("HAERAE-HUB/KMMLU", "Accounting", {}), "test"); }),
              HasSubstr("no data directory to look in"));
}

TEST(HubLayout, ParquetOnlyConversionIsRefusedClearly) {
  testing::TempDir dir;
  testing::write_text(dir / "skt/kobest_v1/boolq/test-00000-of-00001.parquet", "PAR1");
  EXPECT_THAT(testing::error_message([&] { load_split(hub("skt/kobest_v1", "boolq", {dir.path()}), "test"); }),
              HasSubstr("skt/kobest_v1 (boolq, test): not supported: " +
                        (dir / "skt/kobest_v1").string() + " holds only parquet files"));
}

TEST(HubLayout, FirstRootHoldingTheDatasetWins) {
  testing::TempDir a, b;
  testing::write_text(b / "o/d/test.jsonl", "{\"from\":\"b\"}\n");
  testing::write_text(a / "o/d/test.jsonl", "{\"from\":\"a\"}\n");
  EXPECT_EQ(load_split(hub("o/d", std::nullopt, {a.path(), b.path()}), "test")[0]["from"], "a");
  testing::TempDir empty;
  EXPECT_EQ(load_split(hub("o/d", std::nullopt, {empty.path(), b.path()}), "test")[0]["from"], "b");
}

TEST(HubLayout, GenericFallbacks) {
  testing::TempDir dir;
  testing::write_text(dir / "o/named/cfg/test.jsonl", "{\"k\":1}\n");
  testing::write_text(dir / "o/flat/validation.csv", "k\n2\n");
  testing::write_text(dir / "o/sharded/data/train-00000-of-00002.jsonl", "{\"k\":3}\n");
  testing::write_text(dir / "o/sharded/data/train-00001-of-00002.jsonl", "{\"k\":4}\n");
  testing::write_text(dir / "o/nosplit/all_items.json", "[{\"k\":5},{\"k\":6}]");
  EXPECT_EQ(load_split(hub("o/named", "cfg", {dir.path()}), "test")[0]["k"], 1);
  EXPECT_EQ(load_split(hub("o/flat", std::nullopt, {dir.path()}), "validation")[0]["k"], 2);
  EXPECT_EQ(load_split(hub("o/sharded", std::nullopt, {dir.path()}), "train").size(), 2u);
  // A repository whose file names name no split: everything is train, as in `datasets`.
  EXPECT_EQ(load_split(hub("o/nosplit", std::nullopt, {dir.path()}), "train").size(), 2u);
}

TEST(HubLayout, SplitNamesInFileNamesMatchInAnyCase) {
  // KoBEST's first release: one TSV per task and split, the split capitalised.
  testing::TempDir dir;
  testing::write_text(dir / "skt/kobest_v1/boolq/SKT_BoolQ_Train.tsv", "paragraph\tquestion\tlabel\np\tq\t1\n");
  testing::write_text(dir / "skt/kobest_v1/boolq/SKT_BoolQ_Dev.tsv", "paragraph\tquestion\tlabel\np\tq\t0\n");
  const auto r = hub("skt/kobest_v1", "boolq", {dir.path()});
  EXPECT_EQ(load_split(r, "train")[0]["label"], 1);
  EXPECT_EQ(load_split(r, "validation")[0]["label"], 0);
}

TEST(HubLayout, DataFilesAndDataDirAreRelativeToTheRepository) {
  testing::TempDir dir;
  testing::write_text(dir / "o/d/odd/place/items.jsonl", "{\"k\":1}\n");
  testing::write_text(dir / "o/d/v2/test.jsonl", "{\"k\":2}\n");
  auto r = hub("o/d", std::nullopt, {dir.path()});
  r.dataset_kwargs = {{"data_files", {{"test", "odd/place/*.jsonl"}}}};
  EXPECT_EQ(load_split(r, "test")[0]["k"], 1);
  r.dataset_kwargs = {{"data_dir", "v2"}};
  EXPECT_EQ(load_split(r, "test")[0]["k"], 2);
  r.dataset_kwargs = {{"data_dir", "../x"}};
  EXPECT_THAT(testing::error_message([&] { load_split(r, "test"); }), HasSubstr("must stay inside the dataset"));
}

TEST(HubLayout, HostileNamesAreRefused) {
  EXPECT_THAT(testing::error_message([] { load_split(hub("../etc", std::nullopt), "test"); }),
              HasSubstr("a hub dataset is named owner/name"));
  EXPECT_THAT(testing::error_message([] { load_split(hub("o/d", "*"), "test"); }),
              HasSubstr("a config name may not be empty"));
  EXPECT_THAT(testing::error_message([] { load_split(hub("o/d", std::nullopt), "../test"); }),
              HasSubstr("a split name may not be empty"));
}

TEST(HubLayout, IdentityListsFilesWithSizesAndHashes) {
  testing::TempDir dir;
  testing::write_text(dir / "o/d/test.jsonl", "{\"k\":1}\n");
  const auto id = dataset_identity(hub("o/d", std::nullopt, {dir.path()}), "test");
  EXPECT_EQ(id["dataset_path"], "o/d");
  EXPECT_TRUE(id["dataset_name"].is_null());
  ASSERT_EQ(id["files"].size(), 1u);
  EXPECT_EQ(id["files"][0]["bytes"], 8);
  EXPECT_EQ(id["files"][0]["xxh3_128"].get<std::string>().size(), 32u);
  testing::write_text(dir / "o/d/test.jsonl", "{\"k\":2}\n");
  EXPECT_NE(dataset_identity(hub("o/d", std::nullopt, {dir.path()}), "test")["files"][0]["xxh3_128"],
            id["files"][0]["xxh3_128"]);
}

TEST(DataRoots, FlagThenEnvironmentThenBundled) {
  ::setenv("REFEREE_DATA_DIR", "/e1:/e2", 1);
  EXPECT_THAT(data_roots(fs::path("/flag"), fs::path("/bundled")),
              ElementsAre(fs::path("/flag"), fs::path("/e1"), fs::path("/e2"), fs::path("/bundled")));
  ::unsetenv("REFEREE_DATA_DIR");
  EXPECT_THAT(data_roots(std::nullopt, std::nullopt), ElementsAre());
}

// ---- the bundled samples, through the same loader ----

TEST(BundledSamples, Kmmlu) {
  for (const char* subject : {"Accounting", "Korean-History"}) {
    const auto r = hub("HAERAE-HUB/KMMLU", subject);
    const auto test = load_split(r, "test");
    const auto dev = load_split(r, "dev");
    EXPECT_GE(test.size(), 5u);
    EXPECT_EQ(dev.size(), 5u);
    for (const auto& row : test) {
      ASSERT_TRUE(row["answer"].is_number_integer());
      EXPECT_GE(row["answer"].get<int>(), 1);
      EXPECT_LE(row["answer"].get<int>(), 4);
      EXPECT_TRUE(row["D"].is_string());
    }
  }
}

TEST(BundledSamples, KmmluPro) {
  const auto rows = load_split(hub("LGAI-EXAONE/KMMLU-Pro", std::nullopt), "test");
  ASSERT_EQ(rows.size(), 6u);
  for (const auto& row : rows) {
    EXPECT_EQ(row["options"].size(), 5u);
    EXPECT_GE(row["answer"].get<int>(), 1);
    EXPECT_LE(row["answer"].get<int>(), 5);
  }
}

TEST(BundledSamples, Click) {
  const auto rows = load_split(hub("EunsuKim/CLIcK", std::nullopt), "train");
  ASSERT_EQ(rows.size(), 6u);
  for (const auto& row : rows) {
    const auto& choices = row["choices"];
    EXPECT_NE(std::find(choices.begin(), choices.end(), row["answer"]), choices.end());
  }
}

TEST(BundledSamples, HaeRae) {
  const auto rows = load_split(hub("HAERAE-HUB/HAE_RAE_BENCH_1.0", "general_knowledge"), "test");
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_THAT(rows[0]["answer"].get<std::string>(), ::testing::MatchesRegex("\\([A-E]\\)"));
}

TEST(BundledSamples, Kobest) {
  for (const char* task : {"boolq", "copa"}) {
    const auto r = hub("skt/kobest_v1", task);
    EXPECT_GE(load_split(r, "test").size(), 5u);
    EXPECT_EQ(load_split(r, "train").size(), 5u);
    EXPECT_THAT(available_splits(r), ElementsAre("train", "test"));
  }
  EXPECT_TRUE(load_split(hub("skt/kobest_v1", "copa"), "test")[0]["label"].is_number_integer());
}

TEST(BundledSamples, Hrm8k) {
  for (const char* subset : {"GSM8K", "KSM"}) {
    const auto rows = load_split(hub("HAERAE-HUB/HRM8K", subset), "test");
    EXPECT_EQ(rows.size(), 5u);
    EXPECT_TRUE(rows[0]["question"].is_string());
    EXPECT_TRUE(rows[0]["answer"].is_number());
  }
}

TEST(BundledSamples, GenericJsonTaskFilesResolveFromTheTaskDirectory) {
  const fs::path task_dir = testing::source_dir() / "tasks/sample";
  const auto r = local("json",
                       {{"data_files", {{"train", "../../data/eval/sample/sample_qa-train.jsonl"},
                                        {"test", "../../data/eval/sample/*-test.jsonl"}}}},
                       task_dir);
  EXPECT_EQ(load_split(r, "train").size(), 3u);
  EXPECT_EQ(load_split(r, "test").size(), 5u);
}

TEST(BundledSamples, EveryTaskFileNamesADatasetThatLoads) {
  // A light check that each bundled task's dataset_path/dataset_name/test_split resolve; the task
  // files themselves are parsed by eval/task.h.
  int checked = 0;
  for (const auto& entry : fs::recursive_directory_iterator(testing::source_dir() / "tasks")) {
    if (entry.path().extension() != ".yaml") continue;
    std::string text = testing::read_text(entry.path());
    auto value = [&](const std::string& key) -> std::optional<std::string> {
      const auto pos = text.find("\n" + key + ": ");
      if (pos == std::string::npos) return std::nullopt;
      const auto start = pos + key.size() + 3;
      return text.substr(start, text.find('\n', start) - start);
    };
    const auto path = value("dataset_path");
    const auto split = value("test_split");
    ASSERT_TRUE(path && split) << entry.path();
    if (*path == "json") continue;  // covered above
    const auto rows = load_split(hub(*path, value("dataset_name")), *split);
    EXPECT_GE(rows.size(), 5u) << entry.path();
    ++checked;
  }
  EXPECT_GE(checked, 8);
}

}  // namespace
}  // namespace referee::eval
