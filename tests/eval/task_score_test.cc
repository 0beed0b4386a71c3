// Scoring responses as lm-evaluation-harness does: acc / acc_norm for multiple choice, filter
// pipelines then exact_match for generation, perplexities for loglikelihood_rolling; aggregated
// as mean with lm-eval's stderr, and written out in lm-eval's samples shape. Values by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "eval/task.h"
#include "util/error.h"

namespace referee::eval {
namespace {

using ojson = nlohmann::ordered_json;

Task scored_task(const std::string& yaml) { return Task(parse_task_yaml(yaml, "test.yaml")); }

std::vector<Response> loglikelihoods(const std::vector<double>& lls,
                                     const std::vector<bool>& greedy = {}) {
  std::vector<Response> out;
  for (size_t i = 0; i < lls.size(); ++i) {
    Response r;
    r.logprob = lls[i];
    r.greedy = i < greedy.size() && greedy[i];
    out.push_back(r);
  }
  return out;
}

std::vector<Response> texts(const std::vector<std::string>& ts) {
  std::vector<Response> out;
  for (const auto& t : ts) {
    Response r;
    r.text = t;
    r.raw_text = t;
    out.push_back(r);
  }
  return out;
}

constexpr const char* kChoiceTask = R"(task: toy_mc
dataset_path: toy
test_split: test
output_type: multiple_choice
doc_to_text: "{{q}}"
doc_to_choice: ["a", "bb", "ccc", "dddd"]
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
  - metric: exact_match
)";

TEST(TaskScore, MultipleChoiceAccAndAccNorm) {
  // Choice lengths 1, 2, 3, 4. Per document: loglikelihoods, then per-length values.
  //   doc 0, gold 0: [-1, -2, -3, -4]    argmax 0 (right); normed [-1, -1, -1, -1] -> 0 (right)
  //   doc 1, gold 3: [-2, -3, -4, -4.4]  argmax 0 (wrong); normed [-2, -1.5, -1.33, -1.1] -> 3
  //   doc 2, gold 1: [-5, -1, -6, -6]    argmax 1 (right); normed -> 1 (right)
  //   doc 3, gold 2: [-1, -2, -3, -2]    argmax 0 (wrong); normed [-1, -1, -1, -0.5] -> 3 (wrong)
  // acc = mean(1, 0, 1, 0) = 0.5, stderr = sqrt(1/3) / 2; acc_norm = 0.75, stderr = 0.5 / 2.
  Task t = scored_task(kChoiceTask);
  std::vector<Document> docs;
  for (int g : {0, 3, 1, 2}) docs.push_back(ojson{{"q", "question"}, {"gold", g}});
  auto requests = t.build_requests(docs, {}, 0);
  ASSERT_EQ(requests.size(), 16u);
  auto responses = loglikelihoods({-1, -2, -3, -4, -2, -3, -4, -4.4, -5, -1, -6, -6, -1, -2, -3, -2},
                                  {true, false, false, false, true, false, false, false,
                                   false, true, false, false, false, false, true, false});
  Task::Scores s = t.score(docs, requests, responses);
  EXPECT_EQ(s.metrics["alias"], "toy_mc");
  EXPECT_DOUBLE_EQ(s.metrics["acc,none"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(s.metrics["acc_stderr,none"].get<double>(), std::sqrt(1.0 / 3.0) / 2.0);
  EXPECT_DOUBLE_EQ(s.metrics["acc_norm,none"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(s.metrics["acc_norm_stderr,none"].get<double>(), 0.25);
  // exact_match for multiple choice: is the gold choice the greedy continuation? Docs 0, 2, 3.
  EXPECT_DOUBLE_EQ(s.metrics["exact_match,none"].get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(s.primary.at("acc,none"), 0.5);
  EXPECT_EQ(s.n, 4u);

  ASSERT_EQ(s.samples.size(), 4u);
  const ojson& sample = s.samples[1];
  EXPECT_EQ(sample["doc_id"], 1);
  EXPECT_EQ(sample["doc"], docs[1]);
  EXPECT_EQ(sample["target"], 3);
  EXPECT_EQ(sample["arguments"]["gen_args_2"]["arg_0"], "question");
  EXPECT_EQ(sample["arguments"]["gen_args_2"]["arg_1"], " ccc");
  // Python's str() of each (loglikelihood, is_greedy) pair, as lm-eval's sanitize_list writes it.
  EXPECT_EQ(sample["resps"][0], ojson::parse(R"([["-2.0", "True"]])"));
  EXPECT_EQ(sample["filtered_resps"][3], ojson::parse(R"(["-4.4", "False"])"));
  EXPECT_EQ(sample["filter"], "none");
  EXPECT_EQ(sample["metrics"], ojson::parse(R"(["acc", "acc_norm", "exact_match"])"));
  EXPECT_EQ(sample["acc"], 0.0);
  EXPECT_EQ(sample["acc_norm"], 1.0);
}

TEST(TaskScore, AccNormDividesByCodePointsNotBytes) {
  // "é" is one character (two bytes), "ab" two: -2 / 1 < -3 / 2, so the normalised pick is "ab".
  Task t = scored_task("task: t\ndataset_path: d\ntest_split: test\noutput_type: multiple_choice\n"
                     "doc_to_text: q\ndoc_to_choice: [\"é\", \"ab\"]\ndoc_to_target: 1\n");
  std::vector<Document> docs = {ojson{{"x", 1}}};
  auto requests = t.build_requests(docs, {}, 0);
  Task::Scores s = t.score(docs, requests, loglikelihoods({-2, -3}));
  EXPECT_EQ(s.metrics["acc,none"], 0.0);
  EXPECT_EQ(s.metrics["acc_norm,none"], 1.0);
  EXPECT_EQ(s.metrics["acc_stderr,none"], "N/A");  // one document
}

TEST(TaskScore, GoldAsChoiceTextAndOutOfRange) {
  Task t = scored_task("task: t\ndataset_path: d\ntest_split: test\noutput_type: multiple_choice\n"
                     "doc_to_text: q\ndoc_to_choice: \"{{options}}\"\ndoc_to_target: \"{{label}}\"\n");
  std::vector<Document> docs = {ojson{{"options", {"yes", "no"}}, {"label", "no"}},
                                ojson{{"options", {"yes", "no"}}, {"label", "maybe"}}};
  auto requests = t.build_requests(docs, {}, 0);
  Task::Scores s = t.score(docs, requests, loglikelihoods({-3, -1, -3, -1}));
  // Doc 0: "no" is choice 1, the argmax. Doc 1: "maybe" is no choice, so never right.
  EXPECT_EQ(s.samples[0]["acc"], 1.0);
  EXPECT_EQ(s.samples[1]["acc"], 0.0);
}

constexpr const char* kGsm8k = R"Y(task: gsm8k
dataset_path: gsm8k
dataset_name: main
output_type: generate_until
training_split: train
fewshot_split: train
test_split: test
doc_to_text: "Question: {{question}}\nAnswer:"
doc_to_target: "{{answer}}"
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
  until: ["Question:", "</s>", "<|im_end|>"]
  do_sample: false
  temperature: 0.0
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
)Y";

TEST(TaskScore, Gsm8kStrictAndFlexibleExtraction) {
  Task t = scored_task(kGsm8k);
  std::vector<Document> docs = {
      ojson{{"question", "Janet has 3 apples"}, {"answer", "She has 3 + 2 = 5\n#### 5"}},
      ojson{{"question", "Tom pays"}, {"answer", "12 * 100 = 1200\n#### 1,200"}},
  };
  auto requests = t.build_requests(docs, {}, 0);
  ASSERT_EQ(requests.size(), 2u);
  // Doc 0 follows the format; doc 1 states the answer without "####".
  auto responses = texts({" 3 + 2 = 5\n#### 5", " That makes $1,200."});
  Task::Scores s = t.score(docs, requests, responses);
  // strict-match: doc 0 "5" == "5"; doc 1 "[invalid]". flexible: doc 1's last number "$1,200."
  // loses "$", "," and the final "." -> "1200", and the reference "…#### 1,200" -> "1200".
  EXPECT_DOUBLE_EQ(s.metrics["exact_match,strict-match"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(s.metrics["exact_match,flexible-extract"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(s.metrics["exact_match_stderr,strict-match"].get<double>(), 0.5);
  EXPECT_EQ(s.metrics["exact_match_stderr,flexible-extract"].get<double>(), 0.0);
  ASSERT_EQ(s.samples.size(), 4u);  // one per document and filter
  EXPECT_EQ(s.samples[0]["filter"], "strict-match");
  EXPECT_EQ(s.samples[0]["filtered_resps"], ojson::parse(R"(["5"])"));
  EXPECT_EQ(s.samples[0]["resps"], ojson::parse(R"([[" 3 + 2 = 5\n#### 5"]])"));
  EXPECT_EQ(s.samples[0]["arguments"]["gen_args_0"]["arg_0"], "Question: Janet has 3 apples\nAnswer:");
  EXPECT_EQ(s.samples[0]["arguments"]["gen_args_0"]["arg_1"]["until"][0], "Question:");
  EXPECT_EQ(s.samples[2]["filter"], "strict-match");
  EXPECT_EQ(s.samples[2]["filtered_resps"], ojson::parse(R"(["[invalid]"])"));
  EXPECT_EQ(s.samples[3]["filtered_resps"], ojson::parse(R"(["$1,200."])"));
}

TEST(TaskScore, MajorityVoteOverRepeats) {
  Task t = scored_task(R"Y(task: sc
dataset_path: gsm8k
test_split: test
doc_to_text: "Q: {{question}}\nA:"
doc_to_target: "{{answer.split('####')[-1].strip()}}"
repeats: 3
filter_list:
  - name: "score-first"
    filter:
      - function: "regex"
        regex_pattern: "The answer is (\\-?[0-9\\.\\,]*[0-9]+)"
      - function: "take_first"
  - name: "maj@3"
    filter:
      - function: "regex"
        regex_pattern: "The answer is (\\-?[0-9\\.\\,]*[0-9]+)"
      - function: "majority_vote"
      - function: "take_first"
)Y");
  std::vector<Document> docs = {ojson{{"question", "2+2"}, {"answer", "2+2=4\n#### 4"}}};
  auto requests = t.build_requests(docs, {}, 0);
  ASSERT_EQ(requests.size(), 3u);
  Task::Scores s =
      t.score(docs, requests, texts({"The answer is 5.", "The answer is 4.", "So The answer is 4"}));
  EXPECT_EQ(s.metrics["exact_match,score-first"], 0.0);
  EXPECT_EQ(s.metrics["exact_match,maj@3"], 1.0);
  EXPECT_EQ(s.samples[1]["resps"][0].size(), 3u);
}

TEST(TaskScore, LoglikelihoodAccIsGreedy) {
  Task t = scored_task("task: lambada\ndataset_path: d\ntest_split: test\noutput_type: loglikelihood\n"
                     "doc_to_text: \"{{c}}\"\ndoc_to_target: \"{{w}}\"\n");
  std::vector<Document> docs = {ojson{{"c", "a"}, {"w", "b"}}, ojson{{"c", "c"}, {"w", "d"}}};
  auto requests = t.build_requests(docs, {}, 0);
  Task::Scores s = t.score(docs, requests, loglikelihoods({-1, -3}, {true, false}));
  EXPECT_DOUBLE_EQ(s.metrics["acc,none"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(s.metrics["perplexity,none"].get<double>(), std::exp(2.0));
}

TEST(TaskScore, RollingPerplexities) {
  Task t = scored_task("task: wikitext\ndataset_path: d\ntest_split: test\n"
                     "output_type: loglikelihood_rolling\ndoc_to_target: \"{{page}}\"\n");
  // "one two" has 2 words and 7 bytes; "three" has 1 word and 5 bytes.
  std::vector<Document> docs = {ojson{{"page", "one two"}}, ojson{{"page", "three"}}};
  auto requests = t.build_requests(docs, {}, 0);
  Task::Scores s = t.score(docs, requests, loglikelihoods({-6, -3}));
  EXPECT_DOUBLE_EQ(s.metrics["word_perplexity,none"].get<double>(), std::exp(9.0 / 3.0));
  EXPECT_DOUBLE_EQ(s.metrics["byte_perplexity,none"].get<double>(), std::exp(9.0 / 12.0));
  EXPECT_DOUBLE_EQ(s.metrics["bits_per_byte,none"].get<double>(), 9.0 / 12.0 / std::log(2.0));
  EXPECT_EQ(s.metrics["bits_per_byte_stderr,none"], "N/A");
  EXPECT_EQ(s.samples[0]["word_perplexity"], ojson::parse("[-6.0, 2]"));
}

TEST(TaskScore, RequestsThatDoNotLineUpAreRefused) {
  Task t = scored_task(kChoiceTask);
  std::vector<Document> docs = {ojson{{"q", "x"}, {"gold", 0}}};
  auto requests = t.build_requests(docs, {}, 0);
  EXPECT_THROW(t.score(docs, requests, loglikelihoods({-1, -2})), Error);
  requests.pop_back();
  EXPECT_THROW(t.score(docs, requests, loglikelihoods({-1, -2, -3})), Error);
  EXPECT_THROW(t.score({}, t.build_requests(docs, {}, 0), loglikelihoods({-1, -2, -3, -4})), Error);
}

}  // namespace
}  // namespace referee::eval
