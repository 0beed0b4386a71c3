// The at-a-glance inventory of a model that `referee inspect` prints: architecture, parameter
// counts (total, and active per token for mixture-of-experts models), sizes, dtypes, parameters
// per module, declared base models, byte-identical tensors and content hashes. Facts come from
// the config when it states them and from the tensors otherwise; each says which.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/model.h"
#include "util/hash.h"

namespace referee {
class ThreadPool;
}

namespace referee::io {

// A number and where it came from ("config", "gguf", "tensors").
struct Fact {
  int64_t value = 0;
  std::string source;
};

struct DTypeSummary {
  DType dtype;
  uint64_t tensors = 0, parameters = 0, bytes = 0;
};

struct ModuleSummary {
  Module module;
  uint64_t tensors = 0, parameters = 0, bytes = 0;
  std::optional<Hash128> hash;  // set when every tensor of the module was hashed
};

struct IdenticalGroup {
  std::vector<size_t> tensors;  // indices into Model::tensors
  uint64_t bytes_each = 0;
};

struct Inventory {
  uint64_t parameters = 0;
  std::optional<uint64_t> active_parameters;  // MoE only
  uint64_t routed_expert_parameters = 0;
  std::optional<Fact> layers, hidden_size, heads, kv_heads, head_dim, intermediate_size,
      vocab_size, experts, experts_per_token;
  std::vector<DTypeSummary> dtypes;
  std::vector<ModuleSummary> modules;
  std::vector<std::optional<Hash128>> tensor_hashes;  // parallel to Model::tensors
  bool all_hashed = false;
  std::vector<IdenticalGroup> identical;
  std::vector<size_t> unknown_tensors;  // indices of tensors whose role was not recognised
};

struct InventoryOptions {
  // Hash every tensor. Without it, models up to `auto_hash_bytes` are hashed anyway (it takes
  // well under a second) and larger ones only where needed to confirm identical tensors.
  bool hash_all = false;
  uint64_t auto_hash_bytes = 1ull << 30;
  ThreadPool* pool = nullptr;  // nullptr: run on the calling thread
  bool progress = true;        // progress bar on stderr when it is a terminal
  bool find_identical = true;  // look for byte-identical tensors (reads tensor bytes)
};

Inventory take_inventory(const Model& model, const InventoryOptions& options);

// The content hash of a set of tensors, independent of their names and order: XXH3-128 over their
// sorted content hashes. Equal for two modules holding the same tensors under other names.
Hash128 combine_hashes(std::vector<Hash128> hashes);

}  // namespace referee::io
