#include "io/inventory.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "io/tensor_reader.h"
#include "util/progress.h"
#include "util/thread_pool.h"

namespace referee::io {
namespace {

// Tensors are hashed through a 512 KiB buffer per thread: read, then hashed while still in the
// CPU cache. With two threads this keeps up with a plain read of the file (bench/).
constexpr uint64_t kHashPieceBytes = 512ull << 10;
constexpr uint64_t kSampleBytes = 4096;

Hash128 hash_tensor(const TensorInfo& t, Progress* progress) {
  thread_local std::vector<uint8_t> buffer;
  buffer.resize(kHashPieceBytes);
  Hasher h;
  for (uint64_t done = 0; done < t.byte_size; done += kHashPieceBytes) {
    const auto piece = std::span(buffer).first(std::min(kHashPieceBytes, t.byte_size - done));
    read_tensor_bytes(t, done, piece);
    h.update(piece);
    if (progress != nullptr) progress->add(piece.size());
  }
  return h.digest();
}

// A cheap probe for "could these two tensors be identical": the first, middle and last 4 KiB.
Hash128 sample_hash(const TensorInfo& t) {
  std::vector<uint8_t> buffer(kSampleBytes);
  Hasher h;
  const uint64_t n = t.byte_size;
  const uint64_t mid = n / 2 > kSampleBytes / 2 ? n / 2 - kSampleBytes / 2 : 0;
  for (uint64_t start : {uint64_t{0}, mid, n > kSampleBytes ? n - kSampleBytes : 0}) {
    const auto piece = std::span(buffer).first(std::min(kSampleBytes, n - start));
    read_tensor_bytes(t, start, piece);
    h.update(piece);
  }
  return h.digest();
}

void run(ThreadPool* pool, size_t count, const std::function<void(size_t, unsigned)>& fn) {
  if (pool != nullptr) {
    pool->parallel_for(count, fn);
  } else {
    for (size_t i = 0; i < count; ++i) fn(i, 0);
  }
}

void hash_tensors(const Model& m, const std::vector<size_t>& which, Inventory& inv,
                  const InventoryOptions& options, const char* label) {
  uint64_t bytes = 0;
  for (size_t i : which) bytes += m.tensors[i].byte_size;
  // Visit tensors in file order so the disk is read front to back.
  std::vector<size_t> order = which;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& x = m.tensors[a];
    const auto& y = m.tensors[b];
    return std::tie(x.file_index, x.file_offset) < std::tie(y.file_index, y.file_offset);
  });
  Progress progress(label, bytes, Progress::Unit::kBytes, options.progress ? -1 : 0);
  run(options.pool, order.size(), [&](size_t k, unsigned) {
    const size_t i = order[k];
    inv.tensor_hashes[i] = hash_tensor(m.tensors[i], &progress);
  });
  progress.finish();
}

// Groups tensors with the same dtype, size and bytes. Without full hashes, candidates are
// narrowed by size and a sampled hash first, and only tensors still alike are hashed in full.
void find_identical(const Model& m, Inventory& inv, const InventoryOptions& options) {
  std::map<std::pair<DType, uint64_t>, std::vector<size_t>> by_size;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    if (m.tensors[i].byte_size > 0) by_size[{m.tensors[i].dtype, m.tensors[i].byte_size}].push_back(i);
  }
  std::vector<size_t> need_hash;
  for (auto& [key, group] : by_size) {
    if (group.size() < 2) continue;
    std::map<Hash128, std::vector<size_t>> by_sample;
    for (size_t i : group) {
      if (!inv.tensor_hashes[i]) by_sample[sample_hash(m.tensors[i])].push_back(i);
    }
    for (auto& [h, members] : by_sample) {
      if (members.size() > 1) need_hash.insert(need_hash.end(), members.begin(), members.end());
    }
  }
  if (!need_hash.empty()) hash_tensors(m, need_hash, inv, options, "confirming identical tensors");

  std::map<std::tuple<DType, uint64_t, Hash128>, std::vector<size_t>> by_hash;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    if (inv.tensor_hashes[i] && m.tensors[i].byte_size > 0) {
      by_hash[{m.tensors[i].dtype, m.tensors[i].byte_size, *inv.tensor_hashes[i]}].push_back(i);
    }
  }
  for (auto& [key, members] : by_hash) {
    if (members.size() > 1) inv.identical.push_back({members, std::get<1>(key)});
  }
  std::sort(inv.identical.begin(), inv.identical.end(),
            [](const IdenticalGroup& a, const IdenticalGroup& b) { return a.tensors < b.tensors; });
}

void take_shape_facts(const Model& m, Inventory& inv) {
  const auto& c = m.config;
  const std::string source = m.format == ModelFormat::kGguf ? "gguf" : "config";
  auto from_config = [&](std::optional<Fact>& fact, const std::optional<int64_t>& value) {
    if (c && value) fact = Fact{*value, source};
  };
  if (c) {
    from_config(inv.layers, c->num_layers);
    from_config(inv.hidden_size, c->hidden_size);
    from_config(inv.heads, c->num_heads);
    from_config(inv.kv_heads, c->num_kv_heads);
    from_config(inv.head_dim, c->head_dim);
    from_config(inv.intermediate_size, c->intermediate_size);
    from_config(inv.vocab_size, c->vocab_size);
    from_config(inv.experts, c->num_experts);
    from_config(inv.experts_per_token, c->experts_per_token);
  }
  // What the tensors show when the config is silent.
  int64_t max_layer = -1, max_expert = -1, stacked_experts = 0;
  for (const auto& t : m.tensors) {
    if (t.role.module != Module::kLanguage) continue;
    max_layer = std::max<int64_t>(max_layer, t.role.layer);
    if (!t.role.shared_expert) max_expert = std::max<int64_t>(max_expert, t.role.expert);
    if (t.role.all_experts && !t.shape.empty()) stacked_experts = std::max(stacked_experts, t.shape[0]);
    if (t.role.role == Role::kEmbedding && t.shape.size() == 2) {
      if (!inv.vocab_size) inv.vocab_size = Fact{t.shape[0], "tensors"};
      if (!inv.hidden_size) inv.hidden_size = Fact{t.shape[1], "tensors"};
    }
  }
  if (!inv.layers && max_layer >= 0) inv.layers = Fact{max_layer + 1, "tensors"};
  if (!inv.experts && std::max(max_expert + 1, stacked_experts) > 0) {
    inv.experts = Fact{std::max(max_expert + 1, stacked_experts), "tensors"};
  }
  if (!inv.head_dim && inv.hidden_size && inv.heads && inv.heads->value > 0 &&
      inv.hidden_size->value % inv.heads->value == 0) {
    inv.head_dim = Fact{inv.hidden_size->value / inv.heads->value, "hidden_size / heads"};
  }
}

}  // namespace

Hash128 combine_hashes(std::vector<Hash128> hashes) {
  std::sort(hashes.begin(), hashes.end());
  Hasher h;
  for (const auto& x : hashes) {
    const uint64_t words[2] = {x.high, x.low};
    h.update(std::span(reinterpret_cast<const uint8_t*>(words), sizeof(words)));
  }
  return h.digest();
}

Inventory take_inventory(const Model& m, const InventoryOptions& options) {
  Inventory inv;
  inv.tensor_hashes.resize(m.tensors.size());
  std::map<DType, DTypeSummary> dtypes;
  std::map<Module, ModuleSummary> modules;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const auto& t = m.tensors[i];
    inv.parameters += t.elements;
    auto& d = dtypes.try_emplace(t.dtype, DTypeSummary{t.dtype}).first->second;
    d.tensors += 1;
    d.parameters += t.elements;
    d.bytes += t.byte_size;
    auto& mod = modules.try_emplace(t.role.module, ModuleSummary{t.role.module}).first->second;
    mod.tensors += 1;
    mod.parameters += t.elements;
    mod.bytes += t.byte_size;
    if (t.role.role == Role::kUnknown) inv.unknown_tensors.push_back(i);
    if ((t.role.expert >= 0 || t.role.all_experts) && !t.role.shared_expert) {
      inv.routed_expert_parameters += t.elements;
    }
  }
  for (auto& [k, v] : dtypes) inv.dtypes.push_back(v);
  for (auto& [k, v] : modules) inv.modules.push_back(v);
  take_shape_facts(m, inv);

  // Active parameters per token: routed experts count in proportion k / E.
  if (inv.routed_expert_parameters > 0 && inv.experts && inv.experts_per_token &&
      inv.experts->value > 0 && inv.experts_per_token->value <= inv.experts->value) {
    // routed * k / E in long double (64-bit mantissa): exact for any real parameter count.
    const long double active_routed = static_cast<long double>(inv.routed_expert_parameters) *
                                      static_cast<long double>(inv.experts_per_token->value) /
                                      static_cast<long double>(inv.experts->value);
    inv.active_parameters = inv.parameters - inv.routed_expert_parameters +
                            static_cast<uint64_t>(std::llroundl(active_routed));
  }

  if (options.hash_all || m.total_bytes() <= options.auto_hash_bytes) {
    std::vector<size_t> all(m.tensors.size());
    std::iota(all.begin(), all.end(), 0);
    hash_tensors(m, all, inv, options, "hashing");
    inv.all_hashed = true;
  }
  if (options.find_identical) find_identical(m, inv, options);

  if (inv.all_hashed) {
    std::map<Module, std::vector<Hash128>> per_module;
    for (size_t i = 0; i < m.tensors.size(); ++i) {
      per_module[m.tensors[i].role.module].push_back(*inv.tensor_hashes[i]);
    }
    for (auto& mod : inv.modules) mod.hash = combine_hashes(per_module[mod.module]);
  }
  return inv;
}

}  // namespace referee::io
