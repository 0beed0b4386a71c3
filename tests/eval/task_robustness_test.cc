// Damaged task files end in one referee::Error, never in another exception or a crash: the real
// formats (mmlu-, gsm8k-style) mutated byte by byte, deterministically, then loaded, rendered and
// scored. (fuzz/fuzz_eval_task.cc does the same with coverage guidance.)
#include <gtest/gtest.h>

#include "eval/task.h"
#include "testing/helpers.h"
#include "util/error.h"

namespace referee::eval {
namespace {

using ojson = nlohmann::ordered_json;

constexpr const char* kSeeds[] = {
    R"(task: mmlu_anatomy
dataset_path: hails/mmlu_no_train
dataset_name: anatomy
test_split: test
fewshot_split: dev
fewshot_config: {sampler: first_n}
output_type: multiple_choice
description: "About {{subject}}.\n\n"
doc_to_text: "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nAnswer:"
doc_to_choice: ["A", "B"]
doc_to_target: answer
num_fewshot: 1
metric_list: [{metric: acc}, {metric: acc_norm}]
metadata: {version: 1.0}
)",
    R"Y(task: gsm8k
tag: [math]
dataset_path: gsm8k
test_split: test
output_type: generate_until
doc_to_text: "Question: {{question}}\nAnswer:"
doc_to_target: "{{label}}"
repeats: 2
generation_kwargs: {until: ["Question:"], do_sample: false, temperature: 0.0, max_gen_toks: 8}
filter_list:
  - name: strict
    filter:
      - {function: regex, regex_pattern: "#### (\\-?[0-9\\.\\,]+)", group_select: -1}
      - {function: majority_vote}
      - {function: take_first}
metric_list:
  - {metric: exact_match, ignore_case: true, regexes_to_ignore: [",", "\\$"]}
)Y",
    R"(task: wikitext
dataset_path: wikitext
test_split: test
output_type: loglikelihood_rolling
doc_to_target: "{{page}}"
)"};

TEST(TaskRobustness, MutatedFilesOnlyEverThrowRefereeError) {
  const std::vector<Document> docs = {
      ojson::parse(R"({"question": " Which? ", "subject": "x", "choices": ["a", "b"],
                       "answer": 1, "label": "#### 1", "page": "p q"})"),
      ojson::parse(R"({"question": "Two", "subject": "y", "choices": ["c", "d"], "answer": 0,
                       "label": "2", "page": "r"})")};
  static const char kInteresting[] = "{}[]:,-'\"!&*|>#\n {{}}%\\";
  referee::testing::SplitMix64 rng(7);
  size_t loaded = 0;
  for (int iteration = 0; iteration < 3000; ++iteration) {
    std::string text = kSeeds[iteration % 3];
    int edits = 1 + static_cast<int>(rng.next() % 4);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      size_t pos = rng.next() % text.size();
      switch (rng.next() % 4) {
        case 0:
          text[pos] = kInteresting[rng.next() % (sizeof(kInteresting) - 1)];
          break;
        case 1:
          text.erase(pos, 1 + rng.next() % 8);
          break;
        case 2:
          text.insert(pos, 1, kInteresting[rng.next() % (sizeof(kInteresting) - 1)]);
          break;
        default:
          text[pos] = static_cast<char>(rng.next() & 0xFF);
      }
    }
    try {
      Task task(parse_task_yaml(text, "/nonexistent-referee-test/task.yaml"));
      ++loaded;
      auto requests = task.build_requests(docs, docs, std::min<int64_t>(task.config().num_fewshot, 1));
      std::vector<Response> responses(requests.size());
      for (size_t i = 0; i < responses.size(); ++i) {
        responses[i].logprob = -1.0 - static_cast<double>(i % 3);
        responses[i].text = "#### 1";
      }
      task.score(docs, requests, responses);
    } catch (const Error&) {
      // expected for most inputs
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-referee exception " << e.what() << " for input:\n" << text;
    }
  }
  EXPECT_GT(loaded, 100u);  // many mutations leave a valid task, which must then render and score
}

}  // namespace
}  // namespace referee::eval
