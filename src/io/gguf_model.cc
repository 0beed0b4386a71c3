#include "io/gguf_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

#include "util/error.h"

namespace referee::io {
namespace {

std::optional<int64_t> int_key(const GgufFile& g, const std::string& key) {
  const auto* v = g.find(key);
  if (v == nullptr) return std::nullopt;
  if (auto i = v->as_int(); i && *i >= 0) return i;
  // Some architectures store per-layer head counts as an array; report the first layer's.
  if (v->is_array()) {
    // (A range check that NaN fails too: converting NaN or a huge value to an integer is undefined.)
    if (auto n = v->numbers(); n && !n->empty() && (*n)[0] >= 0 && (*n)[0] <= 9.0e15) {
      return static_cast<int64_t>((*n)[0]);
    }
  }
  return std::nullopt;
}

std::string string_key(const GgufFile& g, const std::string& key) {
  const auto* v = g.find(key);
  if (v == nullptr) return {};
  auto s = v->as_string();
  return s ? std::string(*s) : std::string{};
}

}  // namespace

ModelConfig config_from_gguf(const GgufFile& g) {
  ModelConfig c;
  c.architecture = string_key(g, "general.architecture");
  c.model_type = c.architecture;
  const std::string a = c.architecture + ".";
  c.num_layers = int_key(g, a + "block_count");
  c.hidden_size = int_key(g, a + "embedding_length");
  c.intermediate_size = int_key(g, a + "feed_forward_length");
  c.num_heads = int_key(g, a + "attention.head_count");
  c.num_kv_heads = int_key(g, a + "attention.head_count_kv");
  if (!c.num_kv_heads) c.num_kv_heads = c.num_heads;  // llama.cpp's default
  c.head_dim = int_key(g, a + "attention.key_length");
  c.max_positions = int_key(g, a + "context_length");
  c.vocab_size = int_key(g, a + "vocab_size");
  c.num_experts = int_key(g, a + "expert_count");
  c.experts_per_token = int_key(g, a + "expert_used_count");
  c.num_shared_experts = int_key(g, a + "expert_shared_count");
  c.moe_intermediate_size = int_key(g, a + "expert_feed_forward_length");
  c.sliding_window = int_key(g, a + "attention.sliding_window");
  if (const auto* r = g.find(a + "rope.freq_base")) c.rope_theta = r->as_double();
  if (!c.vocab_size) {
    if (const auto* tokens = g.find("tokenizer.ggml.tokens"); tokens && tokens->is_array()) {
      c.vocab_size = static_cast<int64_t>(tokens->count);
    }
  }
  return c;
}

std::optional<Tokenizer> tokenizer_from_gguf(const GgufFile& g, const std::string& where) {
  const auto* tokens_value = g.find("tokenizer.ggml.tokens");
  if (tokens_value == nullptr) return std::nullopt;
  auto tokens = tokens_value->strings();
  if (!tokens) throw corrupt(where, "tokenizer.ggml.tokens must be an array of strings");
  if (tokens->size() > static_cast<size_t>(kMaxTokenId)) {
    throw corrupt(where, "tokenizer.ggml.tokens holds {} tokens, more than referee accepts",
                  tokens->size());
  }
  Tokenizer t;
  t.source = "gguf";
  const std::string model = string_key(g, "tokenizer.ggml.model");
  t.model_type = "gguf:" + (model.empty() ? std::string("unknown") : model);
  t.byte_level = model == "gpt2";
  t.gguf_pre = string_key(g, "tokenizer.ggml.pre");

  std::optional<std::vector<double>> types;
  if (const auto* v = g.find("tokenizer.ggml.token_type")) {
    types = v->numbers();
    if (!types || types->size() != tokens->size()) {
      throw corrupt(where, "tokenizer.ggml.token_type must be a number array as long as the "
                    "token list ({})", tokens->size());
    }
  }
  if (const auto* v = g.find("tokenizer.ggml.scores")) {
    auto scores = v->numbers();
    if (!scores || scores->size() != tokens->size()) {
      throw corrupt(where, "tokenizer.ggml.scores must be a number array as long as the token "
                    "list ({})", tokens->size());
    }
    t.scores = std::move(*scores);
  }
  std::unordered_set<std::string_view> seen;
  t.vocab.reserve(tokens->size());
  for (size_t id = 0; id < tokens->size(); ++id) {
    const auto token = (*tokens)[id];
    // SentencePiece vocabularies may repeat a piece (e.g. unused slots); keep it, but note it.
    if (!seen.insert(token).second && t.warnings.size() < 8) {
      t.warnings.push_back(fmt::format("token '{}' appears more than once (again at id {})",
                                       token, id));
    }
    t.vocab.push_back({std::string(token), static_cast<int64_t>(id)});
    // llama.cpp token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
    if (types) {
      // Types are small integers; anything else (NaN, huge, negative: a malformed file) is none.
      const double raw = (*types)[id];
      const int type = raw >= 0 && raw <= 255 ? static_cast<int>(raw) : 0;
      if (type == 3 || type == 4) {
        t.added_tokens.push_back({static_cast<int64_t>(id), std::string(token), type == 3});
      }
      if (type == 2) t.unk_token = std::string(token);
      if (type == 6) t.byte_fallback = true;
    }
  }
  if (const auto* v = g.find("tokenizer.ggml.merges")) {
    auto merges = v->strings();
    if (!merges) throw corrupt(where, "tokenizer.ggml.merges must be an array of strings");
    t.merges.reserve(merges->size());
    for (size_t rank = 0; rank < merges->size(); ++rank) {
      const auto m = (*merges)[rank];
      const auto space = m.find(' ');
      if (space == std::string_view::npos) {
        throw corrupt(where, "tokenizer.ggml.merges[{}] ('{}') has no space between its tokens",
                      rank, m);
      }
      t.merges.emplace_back(std::string(m.substr(0, space)), std::string(m.substr(space + 1)));
    }
  }
  auto token_at = [&](const char* key) -> std::optional<std::string> {
    const auto id = int_key(g, key);
    if (!id || *id >= static_cast<int64_t>(tokens->size())) return std::nullopt;
    return std::string((*tokens)[*id]);
  };
  t.bos_token = token_at("tokenizer.ggml.bos_token_id");
  t.eos_token = token_at("tokenizer.ggml.eos_token_id");
  if (const auto* v = g.find("tokenizer.chat_template"); v && v->as_string()) {
    t.chat_template = std::string(*v->as_string());
  }
  return t;
}

std::vector<DeclaredBase> bases_from_gguf(const GgufFile& g) {
  std::vector<DeclaredBase> bases;
  const auto count = int_key(g, "general.base_model.count").value_or(0);
  for (int64_t i = 0; i < std::min<int64_t>(count, 64); ++i) {
    const std::string prefix = fmt::format("general.base_model.{}.", i);
    DeclaredBase b;
    b.source = fmt::format("GGUF general.base_model.{}", i);
    b.name = string_key(g, prefix + "name");
    b.organization = string_key(g, prefix + "organization");
    b.repo_url = string_key(g, prefix + "repo_url");
    if (b.name.empty()) b.name = string_key(g, prefix + "repo_url");
    if (!b.name.empty()) bases.push_back(std::move(b));
  }
  return bases;
}

void mark_qk_permutations(const ModelConfig& config, std::vector<TensorInfo>& tensors,
                          std::vector<std::string>& warnings) {
  if (!gguf_arch_permutes_qk(config.architecture) || !config.num_heads) return;
  for (auto& t : tensors) {
    if (t.role.module != Module::kLanguage) continue;
    int64_t heads = 0;
    if (t.role.role == Role::kAttnQ) heads = *config.num_heads;
    else if (t.role.role == Role::kAttnK) heads = config.num_kv_heads.value_or(*config.num_heads);
    else continue;
    // Weights permute rows; biases (1-D) permute elements.
    const int64_t rows = t.shape.size() == 1 ? t.shape[0] : t.rows();
    if (heads <= 0 || rows % (2 * heads) != 0) {
      warnings.push_back(fmt::format(
          "tensor '{}': {} rows do not split into {} heads of even size; its rows are left in "
          "stored (llama.cpp) order", t.name, rows, heads));
      continue;
    }
    t.row_permutation.heads = heads;
  }
}

}  // namespace referee::io
