// Fuzz target: lm-eval task files. Parses arbitrary bytes as a task file (includes resolve against
// a directory that does not exist, so they fail cleanly), then renders and scores a small fixed
// document set through the resulting Task; only referee::Error may escape.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "eval/task.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using referee::eval::Document;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    referee::eval::Task task(
        referee::eval::parse_task_yaml(text, "/nonexistent-referee-fuzz/task.yaml"));
    task.config().to_json().dump();
    const std::vector<Document> docs = {
        Document::parse(R"({"question": " Which? ", "choices": ["a", "b"], "answer": 1,
                             "label": "b", "text": "x y", "page": "p"})"),
        Document::parse(R"({"question": "Two", "choices": ["c"], "answer": 0, "label": "c",
                             "text": "z", "page": "q"})")};
    int64_t shots = task.config().num_fewshot > 2 ? 2 : task.config().num_fewshot;
    auto requests = task.build_requests(docs, docs, shots, 1234);
    std::vector<referee::eval::Response> responses(requests.size());
    for (size_t i = 0; i < responses.size(); ++i) {
      responses[i].logprob = -static_cast<double>(i % 3);
      responses[i].text = i % 2 ? "#### 1" : "The answer is b";
    }
    task.score(docs, requests, responses);
  } catch (const referee::Error&) {
  }
  return 0;
}
