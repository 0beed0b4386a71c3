// Rendering documents into requests exactly as lm-evaluation-harness does: description, few-shot
// examples (chosen as CPython's random.Random(1234) chooses them), doc_to_text, and one request per
// choice or repeat. Expected contexts are written out by hand.
#include <gtest/gtest.h>

#include <functional>

#include "eval/task.h"
#include "util/error.h"

namespace referee::eval {
namespace {

using ojson = nlohmann::ordered_json;

Task rendered_task(const std::string& yaml) { return Task(parse_task_yaml(yaml, "test.yaml")); }

constexpr const char* kMmlu = R"(task: mmlu_anatomy
dataset_path: hails/mmlu_no_train
dataset_name: anatomy
test_split: test
fewshot_split: dev
fewshot_config:
  sampler: first_n
output_type: multiple_choice
description: "The following are multiple choice questions (with answers) about anatomy.\n\n"
doc_to_text: "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: answer
)";

Document mmlu_doc(const std::string& q, int answer) {
  return ojson{{"question", q}, {"subject", "anatomy"},
               {"choices", {q + "1", q + "2", q + "3", q + "4"}}, {"answer", answer}};
}

TEST(TaskRender, MmluZeroShotOneRequestPerChoice) {
  Task t = rendered_task(kMmlu);
  auto requests = t.build_requests({mmlu_doc(" Which organ pumps blood? ", 0)}, {}, 0);
  ASSERT_EQ(requests.size(), 4u);
  const std::string q = " Which organ pumps blood? ";
  EXPECT_EQ(requests[0].context,
            "The following are multiple choice questions (with answers) about anatomy.\n\n"
            "Which organ pumps blood?\nA. " + q + "1\nB. " + q + "2\nC. " + q + "3\nD. " + q +
                "4\nAnswer:");
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(requests[i].type, RequestType::kLoglikelihood);
    EXPECT_EQ(requests[i].context, requests[0].context);
    EXPECT_EQ(requests[i].continuation, std::string(" ") + "ABCD"[i]);
    EXPECT_EQ(requests[i].index, i);
    EXPECT_EQ(requests[i].doc_id, 0);
    EXPECT_EQ(requests[i].task, "mmlu_anatomy");
  }
}

TEST(TaskRender, MmluFewShotFirstNWritesTheChoiceLetterAsTarget) {
  Task t = rendered_task(kMmlu);
  std::vector<Document> dev = {mmlu_doc("d0", 1), mmlu_doc("d1", 3), mmlu_doc("d2", 0)};
  auto requests = t.build_requests({mmlu_doc("q", 2), mmlu_doc("r", 0)}, dev, 2);
  ASSERT_EQ(requests.size(), 8u);
  EXPECT_EQ(requests[0].context,
            "The following are multiple choice questions (with answers) about anatomy.\n\n"
            "d0\nA. d01\nB. d02\nC. d03\nD. d04\nAnswer: B\n\n"
            "d1\nA. d11\nB. d12\nC. d13\nD. d14\nAnswer: D\n\n"
            "q\nA. q1\nB. q2\nC. q3\nD. q4\nAnswer:");
  EXPECT_EQ(requests[4].doc_id, 1);
  EXPECT_NE(requests[4].context.find("Answer: D\n\nr\nA. r1"), std::string::npos);
}

TEST(TaskRender, KmmluTargetIsAnExpressionOverTheDocument) {
  Task t = rendered_task(R"(task: kmmlu_accounting
dataset_path: HAERAE-HUB/KMMLU
dataset_name: Accounting
test_split: test
fewshot_split: dev
output_type: multiple_choice
doc_to_text: "{{question.strip()}}\nA. {{A}}\nB. {{B}}\nC. {{C}}\nD. {{D}}\n정답："
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: "{{['A', 'B', 'C', 'D'][answer-1]}}"
)");
  Document doc = {{"question", "질문 "}, {"A", "가"}, {"B", "나"}, {"C", "다"}, {"D", "라"},
                  {"answer", 3}};
  Document example = doc;
  example["question"] = "예제";
  example["answer"] = 2;
  auto requests = t.build_requests({doc}, {example}, 1, 1234);
  ASSERT_EQ(requests.size(), 4u);
  // The example's target is the rendered letter "B"; the delimiter is a space.
  EXPECT_EQ(requests[0].context,
            "예제\nA. 가\nB. 나\nC. 다\nD. 라\n정답： B\n\n질문\nA. 가\nB. 나\nC. 다\nD. 라\n정답：");
  // lm-eval drops a drawn example equal to the evaluated document, even from another split.
  EXPECT_EQ(t.build_requests({doc}, {doc}, 1, 1234)[0].context,
            "질문\nA. 가\nB. 나\nC. 다\nD. 라\n정답：");
}

std::string fewshot_yaml(const std::string& splits) {
  return "task: t\ndataset_path: d\noutput_type: generate_until\n" + splits +
         "doc_to_text: \"Q{{i}}\"\ndoc_to_target: \"A{{i}}\"\n";
}

std::vector<Document> numbered(int n) {
  std::vector<Document> docs;
  for (int i = 0; i < n; ++i) docs.push_back(ojson{{"i", i}});
  return docs;
}

TEST(TaskRender, RandomFewShotFromTheEvaluatedSplitMatchesCPython) {
  // fewshot_split == test_split: lm-eval draws n + 1 and drops the document itself. With
  // rnd = random.Random(1234) and 8 documents, rnd.sample(docs, 3) per document gives
  // [7, 0, 6], [1, 6, 4], [0, 5, 6], [1, 0, 2], [3, 0, 6] (CPython 3.11), so the 2-shot examples
  // are [7, 6], [6, 4], [0, 5], [1, 0], [3, 0].
  Task t = rendered_task(fewshot_yaml("test_split: test\nfewshot_split: test\n"));
  auto docs = numbered(8);
  std::vector<Document> eval(docs.begin(), docs.begin() + 5);
  auto requests = t.build_requests(eval, docs, 2, 1234);
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[0].context, "Q7 A7\n\nQ6 A6\n\nQ0");
  EXPECT_EQ(requests[1].context, "Q6 A6\n\nQ4 A4\n\nQ1");
  EXPECT_EQ(requests[2].context, "Q0 A0\n\nQ5 A5\n\nQ2");
  EXPECT_EQ(requests[3].context, "Q1 A1\n\nQ0 A0\n\nQ3");
  EXPECT_EQ(requests[4].context, "Q3 A3\n\nQ0 A0\n\nQ4");
  EXPECT_EQ(requests[0].type, RequestType::kGenerateUntil);
  EXPECT_EQ(requests[0].generation.until, std::vector<std::string>{"\n\n"});
}

TEST(TaskRender, RandomFewShotFromAnotherSplitMatchesCPython) {
  // rnd = random.Random(1234); [rnd.sample(range(6), 2) for _ in range(3)]
  //   == [[3, 0], [0, 5], [4, 0]]
  Task t = rendered_task(fewshot_yaml("training_split: train\ntest_split: test\n"));
  std::vector<Document> train = numbered(6);
  for (auto& d : train) d["split"] = "train";  // no training document equals an evaluated one
  auto requests = t.build_requests(numbered(3), train, 2, 1234);
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].context, "Q3 A3\n\nQ0 A0\n\nQ0");
  EXPECT_EQ(requests[1].context, "Q0 A0\n\nQ5 A5\n\nQ1");
  EXPECT_EQ(requests[2].context, "Q4 A4\n\nQ0 A0\n\nQ2");
  EXPECT_EQ(t.fewshot_split(), "train");
  EXPECT_EQ(t.eval_split(), "test");
}

TEST(TaskRender, TooSmallPoolIsAnError) {
  Task t = rendered_task(fewshot_yaml("training_split: train\ntest_split: test\n"));
  try {
    t.build_requests(numbered(1), numbered(2), 5, 1234);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("5-shot needs 5 few-shot documents but the pool has 2"),
              std::string::npos)
        << e.what();
  }
}

TEST(TaskRender, RepeatsGiveOneRequestEach) {
  Task t = rendered_task(R"(task: gsm8k_cot_self_consistency
dataset_path: gsm8k
dataset_name: main
test_split: test
doc_to_text: "Q: {{question}}\nA:"
doc_to_target: "{{answer.split('####')[-1].strip()}}"
repeats: 3
generation_kwargs:
  until: ["Q:", "\n\n"]
  do_sample: true
  temperature: 0.2
  max_gen_toks: 512
)");
  auto requests = t.build_requests({ojson{{"question", "1+1?"}, {"answer", "2\n#### 2"}}}, {}, 0);
  ASSERT_EQ(requests.size(), 3u);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(requests[r].context, "Q: 1+1?\nA:");
    EXPECT_EQ(requests[r].repeat, r);
    EXPECT_EQ(requests[r].generation.until, (std::vector<std::string>{"Q:", "\n\n"}));
    EXPECT_TRUE(requests[r].generation.do_sample);
    EXPECT_DOUBLE_EQ(requests[r].generation.temperature, 0.2);
    EXPECT_EQ(requests[r].generation.max_gen_toks, 512);
  }
}

TEST(TaskRender, ChoicesFromAColumnAnExpressionOrARenderedLiteral) {
  const std::string head = "task: t\ndataset_path: d\ntest_split: test\noutput_type: multiple_choice\n"
                           "doc_to_text: \"{{q}}\"\ndoc_to_target: 0\n";
  Document doc = {{"q", "Pick"}, {"choices", {"x", "y"}}, {"a", "left"}, {"b", "right"}};
  for (const std::string& choice :
       {std::string("doc_to_choice: choices\n"), std::string("doc_to_choice: \"{{choices}}\"\n")}) {
    auto r = rendered_task(head + choice).build_requests({doc}, {}, 0);
    ASSERT_EQ(r.size(), 2u);
    EXPECT_EQ(r[1].continuation, " y");
  }
  auto r = rendered_task(head + "doc_to_choice: \"{{[a, b]}}\"\n").build_requests({doc}, {}, 0);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].continuation, " left");
  // Not a single expression: rendered, then read as a Python literal (ast.literal_eval).
  r = rendered_task(head + "doc_to_choice: \"['{{a}}', \\\"{{b}}!\\\"]\"\n").build_requests({doc}, {}, 0);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[1].continuation, " right!");
  r = rendered_task(head + "doc_to_choice: [1, 2.5, true]\ntarget_delimiter: \"\"\n")
          .build_requests({doc}, {}, 0);
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r[1].continuation, "2.5");
  EXPECT_EQ(r[2].continuation, "True");
}

TEST(TaskRender, LoglikelihoodAndRolling) {
  auto ll = rendered_task("task: lambada\ndataset_path: lambada\ntest_split: test\n"
                      "output_type: loglikelihood\ndoc_to_text: \"{{text.split(' ')[:-1]|join(' ')}}\"\n"
                      "doc_to_target: \"{{text.split(' ')[-1]}}\"\n")
                .build_requests({ojson{{"text", "the cat sat"}}}, {}, 0);
  ASSERT_EQ(ll.size(), 1u);
  EXPECT_EQ(ll[0].context, "the cat");
  EXPECT_EQ(ll[0].continuation, " sat");
  auto rolling = rendered_task("task: wikitext\ndataset_path: wikitext\ntest_split: test\n"
                           "output_type: loglikelihood_rolling\ndoc_to_text: \"\"\n"
                           "doc_to_target: \"{{page}}\"\n")
                     .build_requests({ojson{{"page", "A page of text."}}}, {}, 0);
  ASSERT_EQ(rolling.size(), 1u);
  EXPECT_EQ(rolling[0].type, RequestType::kLoglikelihoodRolling);
  EXPECT_EQ(rolling[0].context, "A page of text.");
  EXPECT_EQ(rolling[0].continuation, "");
}

TEST(TaskRender, TemplateErrorNamesTaskAndDocument) {
  Task t = rendered_task(fewshot_yaml("test_split: test\n"));
  try {
    t.build_requests({ojson{{"i", 1}}, ojson{{"j", 2}}}, {}, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("task 't', document 1: test.yaml: doc_to_text"),
              std::string::npos)
        << e.what();
  }
  // A template that does not parse is refused when the Task is made.
  EXPECT_THROW(rendered_task("task: t\ndataset_path: d\ntest_split: test\ndoc_to_text: \"{{ x \"\n"
                         "doc_to_target: y\n"),
               Error);
}

}  // namespace
}  // namespace referee::eval
