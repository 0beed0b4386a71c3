// Fuzz target: the fingerprint reader (a safetensors file holding a JSON document and arrays),
// then the weight comparison of the fingerprint it accepted with itself, which reads every array
// the document names. A referee::Error is the expected answer to bad input; anything else (a
// crash, a sanitizer report, another exception) is a finding.
#include <cstddef>
#include <cstdint>
#include <span>

#include "trace/fingerprint.h"
#include "trace/weight_evidence.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto fp = referee::trace::parse_fingerprint(std::span(data, size), "fuzz.safetensors");
    (void)referee::trace::compare_weights(fp, fp);
  } catch (const referee::Error&) {
  }
  return 0;
}
