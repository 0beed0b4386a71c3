// Loading task files written in lm-evaluation-harness's own format: include, typed fields,
// defaults, the registry, and every refusal with the message a user sees.
#include <gtest/gtest.h>

#include <functional>

#include "eval/task.h"
#include "testing/helpers.h"
#include "util/error.h"

namespace referee::eval {
namespace {

using referee::testing::TempDir;
using referee::testing::write_text;

// lm-eval's mmlu/default/_default_template_yaml, in its own words.
constexpr const char* kMmluTemplate = R"(dataset_path: hails/mmlu_no_train # a copy of `cais/mmlu` with no auxiliary_train split
test_split: test
fewshot_split: dev
fewshot_config:
  sampler: first_n
output_type: multiple_choice
doc_to_text: "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
dataset_kwargs:
  trust_remote_code: true
)";

constexpr const char* kMmluAnatomy = R"("dataset_name": "anatomy"
"description": "The following are multiple choice questions (with answers) about anatomy.\n\n"
"tag": "mmlu_stem_tasks"
"include": "_default_template_yaml"
"task": "mmlu_anatomy"
"task_alias": "anatomy"
)";

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST(TaskFile, MmluWithIncludeTakesTemplateFieldsAndOverridesThem) {
  TempDir dir;
  write_text(dir / "_default_template_yaml", kMmluTemplate);
  write_text(dir / "mmlu_anatomy.yaml", kMmluAnatomy);
  TaskConfig c = load_task_file(dir / "mmlu_anatomy.yaml");
  EXPECT_EQ(c.name, "mmlu_anatomy");
  EXPECT_EQ(c.alias, "anatomy");
  EXPECT_EQ(c.tags, std::vector<std::string>{"mmlu_stem_tasks"});
  EXPECT_EQ(c.dataset_path, "hails/mmlu_no_train");
  EXPECT_EQ(c.dataset_name, "anatomy");
  EXPECT_EQ(c.test_split, "test");
  EXPECT_EQ(c.fewshot_split, "dev");
  EXPECT_EQ(c.fewshot_sampler, "first_n");
  EXPECT_EQ(c.output_type, "multiple_choice");
  EXPECT_EQ(c.doc_to_choice.kind, TemplateField::Kind::kList);
  EXPECT_EQ(c.doc_to_choice.list, nlohmann::ordered_json({"A", "B", "C", "D"}));
  EXPECT_EQ(c.doc_to_target.text, "answer");
  EXPECT_EQ(c.description.text,
            "The following are multiple choice questions (with answers) about anatomy.\n\n");
  EXPECT_EQ(c.target_delimiter, " ");
  EXPECT_EQ(c.fewshot_delimiter, "\n\n");
  ASSERT_EQ(c.metrics.size(), 1u);
  EXPECT_EQ(c.metrics[0].metric, "acc");
  EXPECT_EQ(c.metadata["version"], 1.0);
  ASSERT_EQ(c.included.size(), 1u);
  // trust_remote_code is kept as written, with a warning that it is ignored.
  EXPECT_EQ(c.dataset_kwargs["trust_remote_code"], true);
  ASSERT_FALSE(c.warnings.empty());
  EXPECT_TRUE(contains(c.warnings[0], "trust_remote_code"));
  EXPECT_EQ(c.to_json()["task"], "mmlu_anatomy");
}

TEST(TaskFile, Gsm8kGenerationFiltersAndMetricOptions) {
  TempDir dir;
  write_text(dir / "gsm8k.yaml", R"Y(tag:
  - math_word_problems
task: gsm8k
dataset_path: gsm8k
dataset_name: main
output_type: generate_until
training_split: train
fewshot_split: train
test_split: test
doc_to_text: "Question: {{question}}\nAnswer:"
doc_to_target: "{{answer}}" #" {{answer.split('### ')[-1].rstrip()}}"
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: false
    regexes_to_ignore:
      - ","
      - "\\$"
      - "(?s).*#### "
      - "\\.$"
generation_kwargs:
  until:
    - "Question:"
    - "</s>"
    - "<|im_end|>"
  do_sample: false
  temperature: 0.0
  chat_template_kwargs: {enable_thinking: false}
repeats: 1
num_fewshot: 5
filter_list:
  - name: "strict-match"
    filter:
      - function: "regex"
        regex_pattern: "#### (\\-?[0-9\\.\\,]+)"
      - function: "take_first"
  - name: "flexible-extract"
    filter:
      - function: "regex"
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{2,})|(-?[0-9]+)"
      - function: "take_first"
metadata:
  version: 3.0
should_decontaminate: true
doc_to_decontamination_query: "{{question}}"
)Y");
  TaskConfig c = load_task_file(dir / "gsm8k.yaml");
  EXPECT_EQ(c.num_fewshot, 5);
  EXPECT_EQ(c.generation.until, (std::vector<std::string>{"Question:", "</s>", "<|im_end|>"}));
  EXPECT_FALSE(c.generation.do_sample);
  EXPECT_EQ(c.generation.temperature, 0.0);
  EXPECT_EQ(c.generation.max_gen_toks, 256);
  EXPECT_EQ(c.generation.extra["chat_template_kwargs"]["enable_thinking"], false);
  ASSERT_EQ(c.filters.size(), 2u);
  EXPECT_EQ(c.filters[1].name, "flexible-extract");
  EXPECT_EQ(c.filters[1].steps[0].args["group_select"], -1);
  ASSERT_EQ(c.metrics.size(), 1u);
  EXPECT_TRUE(c.metrics[0].exact_match.ignore_case);
  EXPECT_EQ(c.metrics[0].exact_match.regexes_to_ignore.size(), 4u);
  EXPECT_EQ(c.warnings.size(), 2u);  // should_decontaminate, doc_to_decontamination_query
}

TEST(TaskFile, DefaultsAsLmEvalFillsThemIn) {
  TempDir dir;
  write_text(dir / "t.yaml", R"(task: plain
dataset_path: some/data
validation_split: validation
doc_to_text: "{{q}}"
doc_to_target: "{{a}}"
)");
  TaskConfig c = load_task_file(dir / "t.yaml");
  EXPECT_EQ(c.output_type, "generate_until");
  EXPECT_EQ(c.generation.until, std::vector<std::string>{"\n\n"});  // the fewshot delimiter
  ASSERT_EQ(c.filters.size(), 1u);
  EXPECT_EQ(c.filters[0].name, "none");
  EXPECT_EQ(c.filters[0].steps[0].function, "take_first");
  ASSERT_EQ(c.metrics.size(), 1u);
  EXPECT_EQ(c.metrics[0].metric, "exact_match");
  Task task(c);
  EXPECT_EQ(task.eval_split(), "validation");
  EXPECT_EQ(task.fewshot_split(), "validation");
}

TEST(TaskFile, GenerationKwargsWithoutUntilStopAtTheFewshotDelimiter) {
  TaskConfig c = parse_task_yaml("task: t\ndataset_path: d\ntest_split: test\ndoc_to_text: x\n"
                                 "doc_to_target: y\nfewshot_delimiter: \"\\n###\\n\"\n"
                                 "generation_kwargs:\n  max_gen_toks: 32\n  top_k: 5\n",
                                 "t.yaml");
  EXPECT_EQ(c.generation.until, std::vector<std::string>{"\n###\n"});
  EXPECT_EQ(c.generation.max_gen_toks, 32);
  EXPECT_EQ(c.generation.extra["top_k"], 5);
}

TEST(TaskFile, FunctionTagIsRefusedWithFileLineAndConstruct) {
  TempDir dir;
  write_text(dir / "hellaswag.yaml", R"(task: hellaswag
dataset_path: hellaswag
output_type: multiple_choice
validation_split: validation
process_docs: !function utils.process_docs
doc_to_text: "{{query}}"
doc_to_target: "{{label}}"
doc_to_choice: "choices"
)");
  std::string m = testing::error_message([&] { load_task_file(dir / "hellaswag.yaml"); });
  EXPECT_TRUE(contains(m, "hellaswag.yaml: line 5")) << m;
  EXPECT_TRUE(contains(m, "process_docs: !function utils.process_docs")) << m;
  EXPECT_TRUE(contains(m, "not supported")) << m;
}

TEST(TaskFile, UnknownKeyNamesKeyFileAndLine) {
  TempDir dir;
  write_text(dir / "t.yaml", "task: t\ndataset_path: d\ntest_split: test\n"
                             "doc_to_text: x\ndoc_to_target: y\nnum_fewshots: 5\n");
  std::string m = testing::error_message([&] { load_task_file(dir / "t.yaml"); });
  EXPECT_TRUE(contains(m, "t.yaml: line 6")) << m;
  EXPECT_TRUE(contains(m, "unknown field 'num_fewshots'")) << m;
}

TEST(TaskFile, IncludeCycleIsRefused) {
  TempDir dir;
  write_text(dir / "a.yaml", "include: b.yaml\ntask: a\n");
  write_text(dir / "b.yaml", "include: a.yaml\ndataset_path: d\n");
  std::string m = testing::error_message([&] { load_task_file(dir / "a.yaml"); });
  EXPECT_TRUE(contains(m, "include cycle")) << m;
}

TEST(TaskFile, IncludeDepthIsBounded) {
  TempDir dir;
  for (int i = 0; i < 12; ++i) {
    write_text(dir / ("t" + std::to_string(i) + ".yaml"),
               "include: t" + std::to_string(i + 1) + ".yaml\n");
  }
  write_text(dir / "t12.yaml", "dataset_path: d\n");
  std::string m = testing::error_message([&] { load_task_file(dir / "t0.yaml"); });
  EXPECT_TRUE(contains(m, "includes nest deeper than 8")) << m;
}

TEST(TaskFile, MissingIncludeNamesBothFiles) {
  TempDir dir;
  write_text(dir / "t.yaml", "include: _nowhere_yaml\ntask: t\n");
  std::string m = testing::error_message([&] { load_task_file(dir / "t.yaml"); });
  EXPECT_TRUE(contains(m, "t.yaml: line 1: include '_nowhere_yaml'")) << m;
  EXPECT_TRUE(contains(m, "not found")) << m;
}

TEST(TaskFile, BadOutputTypeHugeFewshotAndRepeatsAreRefused) {
  const std::string base = "task: t\ndataset_path: d\ntest_split: test\ndoc_to_text: x\n"
                           "doc_to_target: y\n";
  std::string m = testing::error_message([&] { parse_task_yaml(base + "output_type: multiple_choise\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "t.yaml: line 6: malformed: output_type 'multiple_choise'")) << m;
  m = testing::error_message([&] { parse_task_yaml(base + "num_fewshot: 1000000\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "'num_fewshot' is 1000000; it must be between 0 and 10000")) << m;
  m = testing::error_message([&] { parse_task_yaml(base + "repeats: 100000\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "'repeats' is 100000")) << m;
  m = testing::error_message([&] { parse_task_yaml(base + "num_fewshot: five\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "'num_fewshot' must be an integer")) << m;
}

TEST(TaskFile, UnsupportedConstructsAreRefused) {
  const std::string base = "task: t\ndataset_path: d\ntest_split: test\ndoc_to_text: x\n"
                           "doc_to_target: y\n";
  std::string m = testing::error_message([&] { parse_task_yaml(base + "process_results: !function utils.process_results\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "line 6")) << m;
  EXPECT_TRUE(contains(m, "!function utils.process_results")) << m;
  m = testing::error_message([&] {
    parse_task_yaml(base + "metric_list:\n  - metric: !function utils.my_metric\n", "t.yaml");
  });
  EXPECT_TRUE(contains(m, "line 7")) << m;
  EXPECT_TRUE(contains(m, "not supported")) << m;
  m = testing::error_message([&] { parse_task_yaml(base + "metric_list:\n  - metric: bleu\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "metric 'bleu' is not supported for output_type generate_until")) << m;
  m = testing::error_message([&] {
    parse_task_yaml(base + "metric_list:\n  - metric: exact_match\n    aggregation: median\n", "t.yaml");
  });
  EXPECT_TRUE(contains(m, "aggregation must be 'mean'")) << m;
  m = testing::error_message([&] {
    parse_task_yaml(base + "filter_list:\n  - name: x\n    filter:\n      - function: multi_choice_regex\n", "t.yaml");
  });
  EXPECT_TRUE(contains(m, "multi_choice_regex")) << m;
  m = testing::error_message([&] { parse_task_yaml(base + "class: !function x.MyTask\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "not supported")) << m;
  m = testing::error_message([&] { parse_task_yaml(base + "fewshot_config:\n  sampler: balanced\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "sampler must be 'default' or 'first_n'")) << m;
}

TEST(TaskFile, BadYamlAndMissingFieldsAreNamed) {
  std::string m = testing::error_message([] { parse_task_yaml("task: [unclosed\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "t.yaml")) << m;
  EXPECT_TRUE(contains(m, "not valid YAML")) << m;
  m = testing::error_message([] { parse_task_yaml("- a\n- b\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "mapping")) << m;
  m = testing::error_message([] { parse_task_yaml("task: t\ndataset_path: d\ntest_split: test\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "no doc_to_target")) << m;
  m = testing::error_message([] { parse_task_yaml("task: t\ndataset_path: d\ndoc_to_text: x\ndoc_to_target: y\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "neither test_split nor validation_split")) << m;
  m = testing::error_message([] { parse_task_yaml("task: t\ntask: u\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "given twice") || contains(m, "not valid YAML")) << m;
  m = testing::error_message([] { parse_task_yaml("task: t\ndescription: \"\xff\"\n", "t.yaml"); });
  EXPECT_TRUE(contains(m, "t.yaml: malformed: the file is not valid UTF-8 text")) << m;
  m = testing::error_message([] { parse_task_yaml(std::string(100000, '['), "t.yaml"); });
  EXPECT_TRUE(contains(m, "nest")) << m;
}

TEST(TaskFile, AliasExpansionIsBounded) {
  // Seven levels of ten aliases each would expand to 10^7 values.
  std::string yaml = "task: t\ndataset_path: d\ntest_split: test\ndoc_to_text: x\n"
                     "doc_to_target: y\nmetadata:\n  l0: &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n";
  for (int i = 1; i <= 7; ++i) {
    std::string prev = "*l" + std::to_string(i - 1);
    yaml += "  l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) yaml += prev + (k < 9 ? ", " : "]\n");
  }
  std::string m = testing::error_message([&] { parse_task_yaml(yaml, "t.yaml"); });
  EXPECT_TRUE(contains(m, "expands to more than 1000000 values")) << m;
}

TEST(TaskRegistry, SelectsByNameTagAndGroupAndSkipsTemplates) {
  TempDir dir;
  std::filesystem::create_directories(dir / "mmlu" / "default");
  write_text(dir / "mmlu" / "default" / "_default_template_yaml", kMmluTemplate);
  write_text(dir / "mmlu" / "default" / "mmlu_anatomy.yaml", kMmluAnatomy);
  write_text(dir / "mmlu" / "default" / "mmlu_astronomy.yaml",
             "include: _default_template_yaml\ntask: mmlu_astronomy\ndataset_name: astronomy\n"
             "tag: mmlu_stem_tasks\n");
  write_text(dir / "mmlu" / "default" / "mmlu_law.yaml",
             "include: _default_template_yaml\ntask: mmlu_law\ndataset_name: professional_law\n"
             "tag: [mmlu_humanities_tasks]\n");
  write_text(dir / "mmlu" / "_mmlu.yaml", R"(group: mmlu
task:
  - mmlu_stem_tasks
  - mmlu_humanities_tasks
aggregate_metric_list:
  - metric: acc
    weight_by_size: True
metadata:
  version: 2
)");
  write_text(dir / "mmlu" / "shared.yaml", "dataset_path: x\n");  // no task: a template
  TaskRegistry r;
  r.add_directory(dir.path());
  EXPECT_EQ(r.tasks().size(), 3u);
  ASSERT_EQ(r.groups().size(), 1u);
  EXPECT_EQ(r.groups()[0].aggregate_metric_list[0]["weight_by_size"], true);
  EXPECT_EQ(r.warnings().size(), 1u);
  EXPECT_EQ(r.select("mmlu_law").size(), 1u);
  auto stem = r.select("mmlu_stem_tasks");
  ASSERT_EQ(stem.size(), 2u);
  EXPECT_EQ(stem[0]->name, "mmlu_anatomy");
  EXPECT_EQ(stem[1]->name, "mmlu_astronomy");
  EXPECT_EQ(r.select("mmlu").size(), 3u);
  std::string m = testing::error_message([&] { r.select("mmlu_pro"); });
  EXPECT_TRUE(contains(m, "mmlu_pro: not found")) << m;
  auto rows = r.list();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0]["name"], "mmlu_anatomy");
  EXPECT_EQ(rows[0]["dataset"], "hails/mmlu_no_train/anatomy");
  EXPECT_EQ(rows[0]["version"], 1.0);
  EXPECT_EQ(rows[0]["output_type"], "multiple_choice");
}

TEST(TaskRegistry, AnUnsupportedFileDoesNotHideTheOthers) {
  TempDir dir;
  write_text(dir / "hellaswag.yaml", "task: hellaswag\ndataset_path: h\nvalidation_split: v\n"
                                     "process_docs: !function utils.process_docs\n"
                                     "doc_to_text: x\ndoc_to_target: y\n");
  write_text(dir / "ok.yaml", "task: ok\ndataset_path: d\ntest_split: test\ndoc_to_text: x\n"
                              "doc_to_target: y\n");
  TaskRegistry r;
  r.add_directory(dir.path());
  EXPECT_EQ(r.tasks().size(), 1u);
  ASSERT_EQ(r.unavailable().size(), 1u);
  EXPECT_EQ(r.unavailable()[0].name, "hellaswag");
  EXPECT_EQ(r.select("ok").size(), 1u);
  std::string m = testing::error_message([&] { r.select("hellaswag"); });
  EXPECT_TRUE(contains(m, "hellaswag.yaml: line 4: not supported")) << m;
  EXPECT_THROW(r.add_file(dir / "hellaswag.yaml"), Error);
}

TEST(TaskRegistry, DuplicateTaskNamesBothFiles) {
  TempDir dir;
  const std::string body = "task: same\ndataset_path: d\ntest_split: test\ndoc_to_text: x\n"
                           "doc_to_target: y\n";
  write_text(dir / "a.yaml", body);
  write_text(dir / "b.yaml", body);
  TaskRegistry r;
  std::string m = testing::error_message([&] { r.add_directory(dir.path()); });
  EXPECT_TRUE(contains(m, "b.yaml")) << m;
  EXPECT_TRUE(contains(m, "also defined in")) << m;
  EXPECT_TRUE(contains(m, "a.yaml")) << m;
}

}  // namespace
}  // namespace referee::eval
