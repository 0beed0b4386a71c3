// Fuzz target: an OpenAI-compatible endpoint's answer (completions with echoed logprobs, chat,
// plain completions), as eval's HTTP backend parses it. The first byte picks the request type and
// the generation mode; the rest is the response body.
#include <cstddef>
#include <cstdint>
#include <string>

#include "eval/openai_backend.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using namespace referee::eval;
  Request request;
  request.type = static_cast<RequestType>(data[0] % 3);
  request.context = "Question: two plus two?";
  request.continuation = " four";
  request.generation.until = {"\n"};
  const GenerateMode mode = (data[0] & 4) ? GenerateMode::kChat : GenerateMode::kCompletions;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    (void)parse_openai_response(request, body, mode, {}, "fuzz");
  } catch (const BackendError&) {
  }
  return 0;
}
