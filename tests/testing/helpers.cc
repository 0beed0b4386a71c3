#include "testing/helpers.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>

#include <fmt/format.h>

#include "util/error.h"

extern char** environ;

namespace referee::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "referee-test-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double SplitMix64::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

double SplitMix64::normal() {
  const double u1 = uniform(), u2 = uniform();
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(2 * M_PI * u2);
}

std::vector<float> normal_values(size_t n, uint64_t seed, float scale) {
  SplitMix64 rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal()) * scale;
  return v;
}

namespace {
std::string slurp_fd(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}
}  // namespace

CommandResult run_referee(const std::vector<std::string>& args) {
  // Output goes to temporary files rather than pipes so a large stdout cannot deadlock the test.
  TempDir dir;
  const auto out_path = dir / "stdout", err_path = dir / "stderr";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv_storage = {REFEREE_BINARY};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  const int rc = posix_spawn(&pid, REFEREE_BINARY, &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("cannot start " + std::string(REFEREE_BINARY));
  int status = 0;
  ::waitpid(pid, &status, 0);
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = read_text(out_path);
  result.err = read_text(err_path);
  return result;
}

fs::path tiny_model_dir() { return fs::path(REFEREE_TEST_DATA) / "tiny-model"; }
fs::path tiny_train_config() { return source_dir() / "tests/engine/data/tiny-train.json"; }
fs::path source_dir() { return fs::path(REFEREE_SOURCE_DIR); }
fs::path smoke_zoo_dir() { return fs::path(REFEREE_TEST_DATA) / "zoo-smoke"; }

fs::path npm_tokenizer_dir(const std::string& name) {
  return fs::path(REFEREE_TEST_DATA) / "tokenizers" / name;
}

void write_text(const fs::path& path, const std::string& text) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream f(path, std::ios::binary);
  f << text;
}

std::string error_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  ADD_FAILURE() << "no referee::Error thrown";
  return "";
}

std::string read_text(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<uint8_t> read_bytes(const fs::path& path) {
  const std::string s = read_text(path);
  return {s.begin(), s.end()};
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

int64_t TinyLlama::expected_parameters() const {
  const int64_t head_dim = hidden / heads;
  const int64_t attention = hidden * hidden                 // q
                            + 2 * (kv_heads * head_dim) * hidden  // k, v
                            + hidden * hidden;              // o
  const int64_t mlp = 3 * hidden * ffn;
  const int64_t norms = 2 * hidden;
  return vocab * hidden                   // embedding
         + layers * (attention + mlp + norms)
         + hidden                         // final norm
         + (tied ? 0 : vocab * hidden);   // lm_head
}

void TinyLlama::build(io::DType dtype, uint64_t seed) {
  values.clear();
  tensors.clear();
  const int64_t head_dim = hidden / heads;
  std::vector<std::pair<std::string, std::vector<int64_t>>> specs;
  specs.push_back({"model.embed_tokens.weight", {vocab, hidden}});
  for (int64_t l = 0; l < layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    specs.push_back({p + "input_layernorm.weight", {hidden}});
    specs.push_back({p + "self_attn.q_proj.weight", {hidden, hidden}});
    specs.push_back({p + "self_attn.k_proj.weight", {kv_heads * head_dim, hidden}});
    specs.push_back({p + "self_attn.v_proj.weight", {kv_heads * head_dim, hidden}});
    specs.push_back({p + "self_attn.o_proj.weight", {hidden, hidden}});
    specs.push_back({p + "post_attention_layernorm.weight", {hidden}});
    specs.push_back({p + "mlp.gate_proj.weight", {ffn, hidden}});
    specs.push_back({p + "mlp.up_proj.weight", {ffn, hidden}});
    specs.push_back({p + "mlp.down_proj.weight", {hidden, ffn}});
  }
  specs.push_back({"model.norm.weight", {hidden}});
  if (!tied) specs.push_back({"lm_head.weight", {vocab, hidden}});
  values.reserve(specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    int64_t n = 1;
    for (auto d : specs[i].second) n *= d;
    values.push_back(normal_values(static_cast<size_t>(n), seed * 1000 + i, 0.05f));
    if (specs[i].second.size() == 1) {
      for (auto& v : values.back()) v += 1.0f;  // norms start at one
    }
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    tensors.push_back({specs[i].first, dtype, specs[i].second, io::TensorData::values(values[i])});
  }
}

std::string TinyLlama::config_json() const {
  return fmt::format(R"({{
  "architectures": ["LlamaForCausalLM"],
  "model_type": "llama",
  "hidden_size": {}, "num_hidden_layers": {}, "num_attention_heads": {},
  "num_key_value_heads": {}, "intermediate_size": {}, "vocab_size": {},
  "tie_word_embeddings": {}, "rope_theta": 10000.0, "torch_dtype": "bfloat16"
}})", hidden, layers, heads, kv_heads, ffn, vocab, tied ? "true" : "false");
}

std::string tiny_tokenizer_json() {
  // 64 printable ASCII characters plus three merges and two special tokens.
  std::string vocab;
  int id = 0;
  for (char c = 'a'; c <= 'z'; ++c) vocab += fmt::format("\"{}\": {}, ", c, id++);
  vocab += fmt::format("\"Ġ\": {}, \"ab\": {}, \"abc\": {}, \"Ġa\": {}", id, id + 1, id + 2, id + 3);
  return fmt::format(R"({{
  "version": "1.0",
  "added_tokens": [
    {{"id": 30, "content": "<s>", "special": true}},
    {{"id": 31, "content": "</s>", "special": true}}
  ],
  "normalizer": null,
  "pre_tokenizer": {{"type": "ByteLevel", "add_prefix_space": false}},
  "decoder": {{"type": "ByteLevel"}},
  "model": {{"type": "BPE", "vocab": {{{}, "<s>": 30, "</s>": 31}},
            "merges": ["a b", ["ab", "c"], "Ġ a"]}}
}})", vocab);
}

}  // namespace referee::testing
