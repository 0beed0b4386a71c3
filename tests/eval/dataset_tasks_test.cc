// The bundled task files (tasks/**) against the bundled samples: each task's dataset loads through
// eval/dataset.h, and its doc_to_text / doc_to_choice / doc_to_target render for every document of
// its test and few-shot splits with lm-eval's Jinja settings, giving a valid target.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <algorithm>
#include <map>
#include <set>
#include <string>

#include "eval/dataset.h"
#include "testing/helpers.h"
#include "util/error.h"
#include "util/jinja.h"

namespace referee::eval {
namespace {

namespace fs = std::filesystem;

struct TaskFile {
  fs::path path;
  YAML::Node yaml;
};

std::vector<TaskFile> bundled_tasks() {
  // Paths are sorted before loading: YAML::Node assignment writes through to the node it refers
  // to, so sorting loaded nodes would scramble them.
  std::vector<fs::path> paths;
  for (const auto& entry : fs::recursive_directory_iterator(testing::source_dir() / "tasks"))
    if (entry.path().extension() == ".yaml") paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  std::vector<TaskFile> out;
  for (const auto& path : paths) out.push_back({path, YAML::LoadFile(path.string())});
  return out;
}

nlohmann::ordered_json to_json(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    for (const auto& kv : node) out[kv.first.as<std::string>()] = to_json(kv.second);
    return out;
  }
  if (node.IsSequence()) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const auto& item : node) out.push_back(to_json(item));
    return out;
  }
  if (node.IsScalar()) return node.as<std::string>();
  return nullptr;
}

DatasetRequest request_for(const TaskFile& task) {
  DatasetRequest r;
  r.dataset_path = task.yaml["dataset_path"].as<std::string>();
  if (task.yaml["dataset_name"]) r.dataset_name = task.yaml["dataset_name"].as<std::string>();
  if (task.yaml["dataset_kwargs"]) r.dataset_kwargs = to_json(task.yaml["dataset_kwargs"]);
  r.task_dir = task.path.parent_path();
  r.data_roots = {testing::source_dir() / "data/eval/samples"};
  return r;
}

std::map<std::string, jinja::Value> variables(const Document& doc) {
  std::map<std::string, jinja::Value> vars;
  for (auto it = doc.begin(); it != doc.end(); ++it) vars[it.key()] = jinja::from_json(*it);
  return vars;
}

TEST(BundledTasks, ThereIsOneForEachBenchmark) {
  std::set<std::string> paths;
  for (const auto& task : bundled_tasks()) paths.insert(task.yaml["dataset_path"].as<std::string>());
  for (const char* want : {"HAERAE-HUB/KMMLU", "LGAI-EXAONE/KMMLU-Pro", "EunsuKim/CLIcK",
                           "HAERAE-HUB/HAE_RAE_BENCH_1.0", "skt/kobest_v1", "HAERAE-HUB/HRM8K",
                           "json"})
    EXPECT_TRUE(paths.count(want)) << want;
}

TEST(BundledTasks, EveryDocumentRendersToAValidTarget) {
  const auto options = jinja::Options::lm_eval();
  for (const auto& task : bundled_tasks()) {
    SCOPED_TRACE(task.path.string());
    const auto request = request_for(task);
    const std::string name = task.path.filename().string();
    const auto text = jinja::Template::parse(task.yaml["doc_to_text"].as<std::string>(),
                                             name + ":doc_to_text", options);
    const auto target = jinja::Template::parse(task.yaml["doc_to_target"].as<std::string>(),
                                               name + ":doc_to_target", options);
    const bool multiple_choice = task.yaml["output_type"].as<std::string>() == "multiple_choice";
    std::vector<std::string> splits = {task.yaml["test_split"].as<std::string>()};
    if (task.yaml["fewshot_split"]) splits.push_back(task.yaml["fewshot_split"].as<std::string>());
    if (task.yaml["training_split"]) splits.push_back(task.yaml["training_split"].as<std::string>());
    for (const auto& split : splits) {
      const auto docs = load_split(request, split);
      ASSERT_GE(docs.size(), 3u) << split;
      for (const auto& doc : docs) {
        const auto vars = variables(doc);
        EXPECT_FALSE(text.render(vars).empty());
        const std::string gold = target.render(vars);
        if (!multiple_choice) {
          EXPECT_FALSE(gold.empty());
          continue;
        }
        std::vector<std::string> choices;
        const auto& choice_node = task.yaml["doc_to_choice"];
        if (choice_node.IsSequence()) {
          for (const auto& c : choice_node) choices.push_back(c.as<std::string>());
        } else {
          const auto value = jinja::Template::parse(choice_node.as<std::string>(),
                                                    name + ":doc_to_choice", options)
                                 .evaluate_single_expression(vars);
          ASSERT_TRUE(value && value->is_list());
          for (const auto& c : value->as_list()) choices.push_back(c.str());
        }
        ASSERT_GE(choices.size(), 2u);
        const bool is_index = !gold.empty() && gold.find_first_not_of("0123456789") == std::string::npos;
        if (is_index) {
          EXPECT_LT(std::stoul(gold), choices.size()) << doc.dump();
        } else {
          EXPECT_NE(std::find(choices.begin(), choices.end(), gold), choices.end()) << doc.dump();
        }
      }
    }
  }
}

}  // namespace
}  // namespace referee::eval
