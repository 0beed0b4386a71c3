#include "trace/fingerprint.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <unordered_set>

#include "io/inventory.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "io/tensor_reader.h"
#include "util/error.h"
#include "util/json.h"
#include "util/mapped_file.h"
#include "util/progress.h"
#include "io/convert.h"
#include "util/cpu_clones.h"
#include "util/thread_pool.h"

namespace referee::trace {
namespace fs = std::filesystem;
using ordered_json = nlohmann::ordered_json;

namespace {

constexpr std::string_view kSchema = "referee.fingerprint/2";
constexpr std::string_view kDocumentTensor = "fingerprint.json";
constexpr uint64_t kChunkElements = 1 << 16;

// The count sketch's bucket and sign for element `i`: a fixed 64-bit mix (SplitMix64's
// finaliser), so every model, on every machine, uses the same sketch and sketches compare.
inline uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The count sketch of a tensor's values, laid out so that it vectorises. The flattened element
// index i is split into blocks of W (the sketch width, a power of two); block q is added to the
// sketch rotated by r(q) = m(q xor 0xA4093822299F31D0) mod W, so element i lands in bucket
// (i + r(⌊i / W⌋)) mod W, with sign σ(i) = t(i mod 2¹⁶) · u(⌊i / 2¹⁶⌋), the top bits of
// t(j) = m(j xor 0x243F6A8885A308D3) and u(k) = m(k xor 0x13198A2E03707344). Within a block the
// buckets are one contiguous range that wraps once, so the inner loops are two streams of
// multiply-adds over a 256 KiB sign table instead of a scattered add per element (the hashed
// bucket per element cost about 3 ns and a quarter of fingerprinting). The signs are pairwise
// independent, which is what makes ‖sketch(A) - sketch(B)‖² an unbiased estimate of ‖A - B‖²;
// the per-block rotation keeps a difference that sits in one column (the same offset in every
// row) from piling into one bucket.
const std::array<float, 65536>& low_signs() {
  static const auto table = [] {
    std::array<float, 65536> t{};
    for (uint64_t j = 0; j < t.size(); ++j) t[j] = (mix64(j ^ 0x243F6A8885A308D3ull) >> 63) ? -1.0f : 1.0f;
    return t;
  }();
  return table;
}

// Buckets are a power of two: the largest up to the requested width and the element count.
uint64_t sketch_width(uint64_t requested, uint64_t elements) {
  uint64_t w = 1;
  while (w * 2 <= std::min<uint64_t>({requested, std::max<uint64_t>(elements, 1), 65536})) w *= 2;
  return w;
}

// out[r] += sign · s[r] · v[r] for r < n, the sketch's inner loop, fused with the squares of v
// (for the norm) added to the 16 lanes of `squares`: a fixed lane per position, so the compiler
// vectorises both and v is read once. (Separately, the sum of squares in double was a chain of
// dependent additions that cost as much as the sketch.)
inline void signed_accumulate(float* __restrict out, const float* __restrict s, const float* __restrict v,
                              size_t n, float sign, float* __restrict squares) {
  size_t r = 0;
  for (; r + 16 <= n; r += 16) {
    for (size_t l = 0; l < 16; ++l) {
      out[r + l] += sign * s[r + l] * v[r + l];
      squares[l] += v[r + l] * v[r + l];
    }
  }
  for (; r < n; ++r) {
    out[r] += sign * s[r] * v[r];
    squares[0] += v[r] * v[r];
  }
}

REFEREE_AVX2_CLONE void add_to_sketch(std::span<const float> values, uint64_t first, std::vector<float>& sketch,
                                      double& sum_squares) {
  const float* signs = low_signs().data();
  const uint64_t width = sketch.size();
  const uint64_t mask = width - 1;
  float* out = sketch.data();
  size_t k = 0;
  while (k < values.size()) {
    const uint64_t index = first + k;
    // A run stays inside one block of the sketch (W divides 2¹⁶, so also inside one run of the
    // sign table).
    const size_t run = std::min<size_t>(values.size() - k, width - (index & mask));
    const float sign = (mix64((index >> 16) ^ 0x13198A2E03707344ull) >> 63) ? -1.0f : 1.0f;
    const uint64_t bucket = (index + mix64((index / width) ^ 0xA4093822299F31D0ull)) & mask;
    const size_t before_wrap = std::min<size_t>(run, width - bucket);
    const float* s = signs + (index & 0xFFFF);
    const float* v = values.data() + k;
    // Squares in float lanes for at most one block (each lane sums at most W / 16 of them), then
    // in double: the norm keeps about six significant digits, far more than its uses need.
    float squares[16] = {};
    signed_accumulate(out + bucket, s, v, before_wrap, sign, squares);
    signed_accumulate(out, s + before_wrap, v + before_wrap, run - before_wrap, sign, squares);
    for (float q : squares) sum_squares += q;
    k += run;
  }
}

// Values rounded to the nearest f16 (clamped to its finite range) and back: responses are kept
// and saved as f16, and rounded as soon as they are computed, so a saved fingerprint and a fresh one
// are equal. Through the bulk converters (F16C where the CPU has it): the scalar round trip cost
// a third of fingerprinting.
REFEREE_AVX2_CLONE void round_through_f16(std::vector<float>& values) {
  constexpr size_t kBlock = 4096;
  uint16_t halves[kBlock];
  for (size_t start = 0; start < values.size(); start += kBlock) {
    const size_t n = std::min(kBlock, values.size() - start);
    float* v = values.data() + start;
    // min(max()) rather than std::clamp, which GCC does not vectorise; NaN passes through both.
    for (size_t k = 0; k < n; ++k) v[k] = std::min(std::max(v[k], -65504.0f), 65504.0f);
    io::convert_from_f32(io::DType::kF16, v, n, reinterpret_cast<uint8_t*>(halves));
    io::convert_to_f32(io::DType::kF16, reinterpret_cast<const uint8_t*>(halves), n, v);
  }
}

// AWM's count sketch of a tensor's output features: row `first_row + r` of the chunk `v` (n_rows x
// hidden) is added, with a random sign, to bucket h(row) of `buckets` (k x hidden). One add per
// weight (a dense Gaussian sketch costs 2k flops per weight and made this the slowest part of
// fingerprinting); E[XXᵀ] = WᵀW all the same.
REFEREE_AVX2_CLONE void add_rows_to_buckets(const float* v, int64_t n_rows, int64_t first_row, int64_t hidden, int64_t k,
                                            float* buckets) {
  for (int64_t r = 0; r < n_rows; ++r) {
    const uint64_t h = mix64(static_cast<uint64_t>(first_row + r) ^ 0xA0761D6478BD642Full);
    float* dst = buckets + (h % static_cast<uint64_t>(k)) * static_cast<uint64_t>(hidden);
    const float* src = v + r * hidden;
    if (h >> 63) {
      for (int64_t c = 0; c < hidden; ++c) dst[c] -= src[c];
    } else {
      for (int64_t c = 0; c < hidden; ++c) dst[c] += src[c];
    }
  }
}

bool is_norm_role(io::Role r) {
  return r == io::Role::kAttnNorm || r == io::Role::kMlpNorm || r == io::Role::kFinalNorm ||
         r == io::Role::kPostAttnNorm || r == io::Role::kPostMlpNorm;
}

std::optional<ResponseKind> response_kind_of(const io::TensorRole& r) {
  if (r.module != io::Module::kLanguage || r.is_bias || r.layer < 0 || r.mtp) return std::nullopt;
  switch (r.role) {
    case io::Role::kAttnQ: return ResponseKind::kQuery;
    case io::Role::kAttnK: return ResponseKind::kKey;
    case io::Role::kMlpGate: return ResponseKind::kGate;
    case io::Role::kMlpUp: return ResponseKind::kUp;
    case io::Role::kRouter: return ResponseKind::kRouter;
    default: return std::nullopt;
  }
}

// Probe tokens: the `count` ordinary tokens (not added or special) whose text hashes lowest —
// a min-hash sample, so two vocabularies that share most tokens share most probes.
std::vector<io::VocabEntry> choose_probes(const io::Tokenizer& tok, int64_t rows, int64_t count) {
  std::unordered_set<int64_t> added;
  for (const auto& a : tok.added_tokens) added.insert(a.id);
  std::vector<std::pair<uint64_t, const io::VocabEntry*>> keyed;
  keyed.reserve(tok.vocab.size());
  for (const auto& e : tok.vocab) {
    if (e.id >= rows || added.count(e.id) || e.token.empty()) continue;
    const Hash128 h = hash_bytes({reinterpret_cast<const uint8_t*>(e.token.data()), e.token.size()});
    keyed.emplace_back(h.high, &e);
  }
  const size_t n = std::min<size_t>(keyed.size(), static_cast<size_t>(std::max<int64_t>(count, 0)));
  std::partial_sort(keyed.begin(), keyed.begin() + static_cast<std::ptrdiff_t>(n), keyed.end(),
                    [](const auto& a, const auto& b) {
                      return a.first != b.first ? a.first < b.first : a.second->token < b.second->token;
                    });
  std::vector<io::VocabEntry> out;
  for (size_t i = 0; i < n; ++i) out.push_back(*keyed[i].second);
  return out;
}

ArchitectureSummary summarize(const io::Model& model) {
  io::InventoryOptions o;
  o.auto_hash_bytes = 0;
  o.progress = false;
  o.find_identical = false;  // the fingerprint hashes every tensor itself
  const io::Inventory inv = io::take_inventory(model, o);
  ArchitectureSummary a;
  if (model.config) a.architecture = model.config->architecture;
  const auto v = [](const std::optional<io::Fact>& f) { return f ? f->value : 0; };
  a.layers = v(inv.layers), a.hidden = v(inv.hidden_size), a.ffn = v(inv.intermediate_size);
  a.vocab = v(inv.vocab_size), a.heads = v(inv.heads), a.kv_heads = v(inv.kv_heads);
  a.experts = v(inv.experts);
  a.parameters = inv.parameters;
  return a;
}

// The member `key` of a JSON object read from a file, or an error naming the file and the key.
const json::Value& member(const json::Value& object, const char* key, const std::string& where) {
  const json::Value* v = object.is_object() ? json::find(object, key) : nullptr;
  if (!v) throw Error::corrupt(where, fmt::format("fingerprint field '{}' is missing", key));
  return *v;
}

// --- serialisation of the tokenizer (what tokenizer evidence reads) -------------------------

ordered_json tokenizer_to_json(const io::Tokenizer& t) {
  ordered_json j;
  j["model_type"] = t.model_type;
  j["byte_level"] = t.byte_level;
  j["byte_fallback"] = t.byte_fallback;
  j["normalizer"] = t.normalizer;
  j["pre_tokenizer"] = t.pre_tokenizer;
  ordered_json vocab = ordered_json::array();
  for (const auto& e : t.vocab) vocab.push_back(ordered_json::array({e.token, e.id}));
  j["vocab"] = std::move(vocab);
  ordered_json merges = ordered_json::array();
  for (const auto& [a, b] : t.merges) merges.push_back(ordered_json::array({a, b}));
  j["merges"] = std::move(merges);
  ordered_json added = ordered_json::array();
  for (const auto& a : t.added_tokens) {
    added.push_back({{"id", a.id}, {"content", a.content}, {"special", a.special}});
  }
  j["added_tokens"] = std::move(added);
  return j;
}

io::Tokenizer tokenizer_from_json(const json::Value& j, const std::string& where) {
  json::as_object(j, where, "tokenizer");
  io::Tokenizer t;
  t.source = "fingerprint";
  t.model_type = json::as_string(member(j, "model_type", where), where, "tokenizer.model_type");
  t.byte_level = json::as_bool(member(j, "byte_level", where), where, "tokenizer.byte_level");
  t.byte_fallback = json::as_bool(member(j, "byte_fallback", where), where, "tokenizer.byte_fallback");
  t.normalizer = json::as_string(member(j, "normalizer", where), where, "tokenizer.normalizer");
  t.pre_tokenizer = json::as_string(member(j, "pre_tokenizer", where), where, "tokenizer.pre_tokenizer");
  std::set<int64_t> ids;
  std::unordered_set<std::string> tokens;
  for (const auto& e : json::as_array(member(j, "vocab", where), where, "tokenizer.vocab")) {
    if (!e.is_array() || e.size() != 2) throw Error::corrupt(where, "tokenizer.vocab entries must be [token, id]");
    io::VocabEntry v{json::as_string(e[0], where, "tokenizer.vocab token"),
                     json::as_int64(e[1], where, "tokenizer.vocab id")};
    if (v.id < 0 || v.id > io::kMaxTokenId) throw Error::corrupt(where, fmt::format("token id {} out of range", v.id));
    if (!ids.insert(v.id).second || !tokens.insert(v.token).second) {
      throw Error::corrupt(where, fmt::format("tokenizer.vocab repeats id {} or its token", v.id));
    }
    t.vocab.push_back(std::move(v));
  }
  std::sort(t.vocab.begin(), t.vocab.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (const auto& m : json::as_array(member(j, "merges", where), where, "tokenizer.merges")) {
    if (!m.is_array() || m.size() != 2) throw Error::corrupt(where, "tokenizer.merges entries must be [left, right]");
    t.merges.emplace_back(json::as_string(m[0], where, "merge"), json::as_string(m[1], where, "merge"));
  }
  for (const auto& a : json::as_array(member(j, "added_tokens", where), where, "tokenizer.added_tokens")) {
    json::as_object(a, where, "tokenizer.added_tokens[]");
    io::AddedToken at;
    at.id = json::as_int64(member(a, "id", where), where, "added token id");
    if (at.id < 0 || at.id > io::kMaxTokenId) throw Error::corrupt(where, "added token id out of range");
    at.content = json::as_string(member(a, "content", where), where, "added token content");
    at.special = json::as_bool(member(a, "special", where), where, "added token special");
    t.added_tokens.push_back(std::move(at));
  }
  return t;
}

}  // namespace

std::string_view response_kind_name(ResponseKind k) {
  switch (k) {
    case ResponseKind::kQuery: return "attn_q";
    case ResponseKind::kKey: return "attn_k";
    case ResponseKind::kGate: return "mlp_gate";
    case ResponseKind::kUp: return "mlp_up";
    case ResponseKind::kRouter: return "router";
  }
  return "?";
}

static std::optional<ResponseKind> response_kind_from_name(std::string_view s) {
  for (auto k : {ResponseKind::kQuery, ResponseKind::kKey, ResponseKind::kGate, ResponseKind::kUp,
                 ResponseKind::kRouter}) {
    if (response_kind_name(k) == s) return k;
  }
  return std::nullopt;
}

const Responses* Fingerprint::find_responses(ResponseKind kind, int32_t layer, int32_t expert) const {
  for (const auto& r : responses) {
    if (r.kind == kind && r.layer == layer && r.expert == expert) return &r;
  }
  return nullptr;
}

std::vector<int32_t> Fingerprint::layers() const {
  std::set<int32_t> s;
  for (const auto& r : responses) s.insert(r.layer);
  return {s.begin(), s.end()};
}

// ---------------------------------------------------------------------------------------------

// The fingerprint, its bytes counted on `progress` (one bar may be shared by several models).
static Fingerprint take_fingerprint_reporting(const io::Model& model, const FingerprintOptions& options,
                                              Progress& progress) {
  Fingerprint fp;
  fp.source = model.path.string();
  fp.name = model.path.filename().string();
  if (fp.name.empty()) fp.name = model.path.parent_path().filename().string();
  fp.format = std::string(io::format_name(model.format));
  fp.arch = summarize(model);
  fp.tokenizer = model.tokenizer;

  // The language model's input embedding and per-layer norm gains, needed for the responses.
  const io::TensorInfo* embedding = nullptr;
  std::map<std::pair<int32_t, io::Role>, const io::TensorInfo*> norm_tensors;
  for (const auto& t : model.tensors) {
    const auto& r = t.role;
    if (r.module != io::Module::kLanguage || r.is_bias || r.mtp) continue;
    if (r.role == io::Role::kEmbedding && t.shape.size() == 2 && !embedding) embedding = &t;
    if (is_norm_role(r.role) && t.shape.size() == 1) norm_tensors[{r.layer, r.role}] = &t;
  }
  for (const auto& [key, t] : norm_tensors) {
    fp.norms.push_back(NormVector{key.first, key.second, io::read_all_f32(*t)});
  }

  // Probe tokens and their embeddings.
  std::vector<float>& probe_embeddings = fp.probe_embeddings;  // probes x hidden
  int64_t& hidden = fp.hidden;
  if (!embedding) {
    fp.notes.push_back("no token embedding found: probe responses (the neuron and layer statistics) cannot be computed");
  } else if (!model.tokenizer || model.tokenizer->vocab.empty()) {
    fp.notes.push_back("no tokenizer vocabulary: probe tokens cannot be named, so probe responses cannot be computed");
  } else {
    hidden = embedding->shape[1];
    const auto probes = choose_probes(*model.tokenizer, embedding->shape[0], options.probe_tokens);
    probe_embeddings.resize(probes.size() * static_cast<size_t>(hidden));
    for (size_t i = 0; i < probes.size(); ++i) {
      fp.probe_tokens.push_back(probes[i].token);
      io::read_rows_f32(*embedding, probes[i].id, 1, probe_embeddings.data() + i * hidden);
    }
    if (probes.size() < 8) {
      fp.notes.push_back(fmt::format("only {} probe tokens: too few for probe responses", probes.size()));
      fp.probe_tokens.clear();
      probe_embeddings.clear();
    }
  }
  const int64_t probes = fp.probe_count();

  // The probe embeddings as block `layer`'s attention (or MLP) sees them: RMS-normalised and
  // scaled by the block's norm gain. Computed once per (layer, norm).
  std::mutex normalized_mutex;
  std::map<std::pair<int32_t, io::Role>, std::shared_ptr<std::vector<float>>> normalized;
  auto normalized_probes = [&](int32_t layer, io::Role norm_role) {
    std::lock_guard lock(normalized_mutex);
    auto& slot = normalized[{layer, norm_role}];
    if (slot) return slot;
    auto out = std::make_shared<std::vector<float>>(probe_embeddings);
    const NormVector* gain = nullptr;
    for (const auto& n : fp.norms) {
      if (n.layer == layer && n.role == norm_role && static_cast<int64_t>(n.values.size()) == hidden) gain = &n;
    }
    for (int64_t p = 0; p < probes; ++p) {
      float* row = out->data() + p * hidden;
      double ss = 0;
      for (int64_t d = 0; d < hidden; ++d) ss += static_cast<double>(row[d]) * row[d];
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(hidden) + 1e-6));
      for (int64_t d = 0; d < hidden; ++d) row[d] *= inv * (gain ? gain->values[d] : 1.0f);
    }
    slot = out;
    return slot;
  };

  // AWM's hidden-dimension sketches of the attention projections (one per tensor).
  std::vector<std::optional<HiddenSketch>> hidden_sketches(model.tensors.size());

  // One task per tensor: hash, sketch, and the responses of projections that have them.
  fp.tensors.resize(model.tensors.size());
  std::vector<std::vector<Responses>> responses(model.tensors.size());
  std::vector<std::string> tensor_notes(model.tensors.size());
  ThreadPool pool(options.threads);
  openblas_set_num_threads(1);  // parallelism comes from the pool, one tensor per worker
  pool.parallel_for(model.tensors.size(), [&](size_t i, unsigned) {
    const io::TensorInfo& t = model.tensors[i];
    TensorDigest& d = fp.tensors[i];
    d.name = t.name;
    d.dtype = std::string(io::dtype_name(t.dtype));
    d.shape = t.shape;
    d.role = t.role;
    // One read serves the content hash and the values where the rows are stored in order and
    // decode; otherwise (GGUF's permuted Q/K rows, undecodable dtypes) the raw bytes are hashed in
    // a pass of their own. Either way through pread into small buffers rather than through the
    // mapping, so a model's pages are not all mapped into this process at once (peak memory stays
    // a layer's worth).
    const bool one_pass = !t.row_permutation.active() && io::can_convert_to_f32(t.dtype);
    Hasher content_hasher;
    if (!one_pass) {
      std::vector<uint8_t> buf(1 << 20);
      for (uint64_t off = 0; off < t.byte_size; off += buf.size()) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), t.byte_size - off));
        io::read_tensor_bytes(t, off, {buf.data(), n});
        content_hasher.update({buf.data(), n});
      }
      d.content = content_hasher.digest();
    }
    const auto kind = response_kind_of(t.role);
    const bool respond = kind && probes > 0 && t.shape.size() >= 2 && t.shape.back() == hidden;
    // Rows belong to experts when a tensor stacks all of them (GGUF *_exps, fused HF MoE).
    const int64_t experts = (respond && t.role.all_experts && t.shape.size() == 3) ? t.shape[0] : 1;
    const int64_t rows = t.rows();
    const int64_t units_per_expert = experts > 0 ? rows / experts : rows;
    std::shared_ptr<std::vector<float>> normed;
    if (respond) {
      const io::Role norm_role = (*kind == ResponseKind::kQuery || *kind == ResponseKind::kKey)
                                     ? io::Role::kAttnNorm : io::Role::kMlpNorm;
      normed = normalized_probes(t.role.layer, norm_role);
      for (int64_t e = 0; e < experts; ++e) {
        Responses r;
        r.kind = *kind;
        r.layer = t.role.layer;
        r.expert = experts > 1 ? static_cast<int32_t>(e) : t.role.expert;
        r.total_units = units_per_expert;
        r.units = std::min(units_per_expert, options.max_units);
        r.values.assign(static_cast<size_t>(r.units * probes), 0.0f);
        responses[i].push_back(std::move(r));
      }
    } else if (probes > 0 && t.role.module == io::Module::kLanguage && !t.role.is_bias &&
               (t.role.role == io::Role::kAttnQKV || t.role.role == io::Role::kMlpGateUp)) {
      tensor_notes[i] = fmt::format("{}: fused projection (q/k/v or gate/up in one tensor) not split, no probe responses; "
                                    "compared by copies only", t.name);
    } else if (kind && probes > 0) {
      tensor_notes[i] = fmt::format("{}: shape does not read the residual stream (hidden {}), no probe responses", t.name, hidden);
    }
    // Wᵀ S for attention Q/K (S: a fixed count sketch of the d_out outputs into k buckets, or the
    // identity when d_out <= k), accumulated as Sᵀ W (k x hidden) and transposed at the end.
    std::vector<float> bucket_rows;
    HiddenSketch* hs = nullptr;
    if (respond && t.role.expert < 0 && !t.role.all_experts &&
        (*kind == ResponseKind::kQuery || *kind == ResponseKind::kKey)) {
      hidden_sketches[i] = HiddenSketch{*kind, t.role.layer, hidden, std::min(rows, options.hidden_features), {}};
      hs = &*hidden_sketches[i];
      hs->values.assign(static_cast<size_t>(hs->hidden * hs->features), 0.0f);
    }
    const uint64_t buckets = static_cast<uint64_t>(std::max<int64_t>(options.sketch_buckets, 1));
    d.sketch.assign(static_cast<size_t>(sketch_width(buckets, t.elements)), 0.0f);
    double sum_squares = 0;
    std::vector<float> scratch;
    try {
      const auto on_chunk = [&](int64_t first_row, std::span<const float> v) {
        add_to_sketch(v, static_cast<uint64_t>(first_row) * static_cast<uint64_t>(t.row_length()), d.sketch, sum_squares);
        if (!respond) return;
        const int64_t n_rows = static_cast<int64_t>(v.size()) / hidden;
        if (hs) {
          const int64_t k = hs->features;
          if (rows <= k) {  // identity sketch: Wᵀ itself
            for (int64_t r = 0; r < n_rows; ++r) {
              for (int64_t d = 0; d < hidden; ++d) hs->values[static_cast<size_t>(d * k + first_row + r)] = v[static_cast<size_t>(r * hidden + d)];
            }
          } else {
            bucket_rows.resize(static_cast<size_t>(k * hidden));
            add_rows_to_buckets(v.data(), n_rows, first_row, hidden, k, bucket_rows.data());
          }
        }
        for (int64_t r0 = 0; r0 < n_rows;) {
          const int64_t row = first_row + r0;
          const int64_t e = row / units_per_expert;
          const int64_t unit = row % units_per_expert;
          Responses& out = responses[i][static_cast<size_t>(e)];
          const int64_t run = std::min(n_rows - r0, units_per_expert - unit);
          const int64_t kept = std::clamp<int64_t>(out.units - unit, 0, run);
          if (kept > 0) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(kept),
                        static_cast<int>(probes), static_cast<int>(hidden), 1.0f,
                        v.data() + r0 * hidden, static_cast<int>(hidden), normed->data(),
                        static_cast<int>(hidden), 0.0f, out.values.data() + unit * probes,
                        static_cast<int>(probes));
          }
          r0 += run;
        }
      };
      if (one_pass) {
        io::for_each_chunk_f32_and_bytes(t, kChunkElements, scratch,
                                         [&](std::span<const uint8_t> raw) { content_hasher.update(raw); }, on_chunk);
        d.content = content_hasher.digest();
      } else {
        io::for_each_chunk_f32(t, kChunkElements, scratch, on_chunk);
      }
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kNotSupported) throw;
      d.sketch.clear();
      responses[i].clear();
      hidden_sketches[i].reset();
      tensor_notes[i] = fmt::format("{}: values not decoded ({}): compared by content hash only", t.name, e.what());
    }
    if (hs && !bucket_rows.empty()) {
      // Transposed in 16 x 16 tiles: a plain column walk wrote a cache line per value.
      const int64_t k = hs->features;
      constexpr int64_t kTile = 16;
      for (int64_t b0 = 0; b0 < k; b0 += kTile) {
        for (int64_t c0 = 0; c0 < hidden; c0 += kTile) {
          for (int64_t b = b0; b < std::min(k, b0 + kTile); ++b) {
            for (int64_t c = c0; c < std::min(hidden, c0 + kTile); ++c) {
              hs->values[static_cast<size_t>(c * k + b)] = bucket_rows[static_cast<size_t>(b * hidden + c)];
            }
          }
        }
      }
    }
    for (auto& r : responses[i]) round_through_f16(r.values);
    if (hidden_sketches[i]) round_through_f16(hidden_sketches[i]->values);
    d.norm = std::sqrt(sum_squares);
    progress.add(t.byte_size);
  });
  // Responses, sketches and probe embeddings are kept (and saved) as f16 (three significant digits
  // are plenty for correlations, and they halve the file), rounded in each tensor's task above.
  for (auto& rs : responses) {
    for (auto& r : rs) fp.responses.push_back(std::move(r));
  }
  round_through_f16(fp.probe_embeddings);
  for (auto& h : hidden_sketches) {
    if (h) fp.hidden_sketches.push_back(std::move(*h));
  }
  std::sort(fp.hidden_sketches.begin(), fp.hidden_sketches.end(), [](const HiddenSketch& a, const HiddenSketch& b) {
    return std::tie(a.layer, a.kind) < std::tie(b.layer, b.kind);
  });
  for (auto& n : tensor_notes) {
    if (!n.empty()) fp.notes.push_back(std::move(n));
  }
  std::sort(fp.responses.begin(), fp.responses.end(), [](const Responses& a, const Responses& b) {
    return std::tie(a.layer, a.expert, a.kind) < std::tie(b.layer, b.expert, b.kind);
  });
  return fp;
}

std::vector<Fingerprint> take_fingerprints(std::span<const io::Model* const> models, const FingerprintOptions& options) {
  std::vector<Fingerprint> out(models.size());
  if (models.empty()) return out;
  uint64_t total_bytes = 0;
  for (const auto* m : models) total_bytes += m->total_bytes();
  Progress progress(models.size() > 1 ? "fingerprints" : "fingerprint", total_bytes, Progress::Unit::kBytes,
                    options.progress ? -1 : 0);
  // Models side by side, the threads shared out between them, rather than one after another with
  // all threads each: within one model the threads wait on its serial steps (probe choice, norm
  // reads, the final sort) and on its largest tensor at the end; beside another model they do not
  // (the bench's large pair on two threads: 0.085 s instead of 0.090 s, medians of 20 alternations).
  const unsigned threads = options.threads ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  const unsigned lanes = static_cast<unsigned>(std::min<size_t>(models.size(), threads));
  std::atomic<size_t> next{0};
  std::mutex error_mutex;
  std::exception_ptr first_error;
  const auto run_lane = [&](unsigned lane) {
    FingerprintOptions lane_options = options;
    lane_options.threads = threads / lanes + (lane < threads % lanes ? 1 : 0);
    for (size_t i; (i = next.fetch_add(1)) < models.size();) {
      try {
        out[i] = take_fingerprint_reporting(*models[i], lane_options, progress);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
        next = models.size();  // the others stop after the model they are on
      }
    }
  };
  std::vector<std::thread> others;
  for (unsigned lane = 1; lane < lanes; ++lane) others.emplace_back(run_lane, lane);
  run_lane(0);
  for (auto& t : others) t.join();
  if (first_error) std::rethrow_exception(first_error);
  progress.finish();
  return out;
}

Fingerprint take_fingerprint(const io::Model& model, const FingerprintOptions& options) {
  const io::Model* one[] = {&model};
  return std::move(take_fingerprints(one, options).front());
}

// --- files -----------------------------------------------------------------------------------

void save_fingerprint(const Fingerprint& fp, const fs::path& path) {
  ordered_json doc;
  doc["schema"] = kSchema;
  doc["name"] = fp.name;
  doc["source"] = fp.source;
  doc["format"] = fp.format;
  doc["architecture"] = {{"architecture", fp.arch.architecture}, {"layers", fp.arch.layers},
                         {"hidden", fp.arch.hidden}, {"ffn", fp.arch.ffn},
                         {"vocab", fp.arch.vocab}, {"heads", fp.arch.heads},
                         {"kv_heads", fp.arch.kv_heads}, {"experts", fp.arch.experts},
                         {"parameters", fp.arch.parameters}};
  doc["tokenizer"] = fp.tokenizer ? tokenizer_to_json(*fp.tokenizer) : ordered_json(nullptr);
  doc["probe_tokens"] = fp.probe_tokens;
  std::vector<io::TensorToWrite> arrays;
  auto add_array = [&](std::string name, const std::vector<float>& v, std::vector<int64_t> shape,
                       io::DType dtype = io::DType::kF32) {
    arrays.push_back({name, dtype, std::move(shape), io::TensorData::values(v)});
    return name;
  };
  ordered_json tensors = ordered_json::array();
  for (size_t i = 0; i < fp.tensors.size(); ++i) {
    const auto& t = fp.tensors[i];
    ordered_json j = {{"name", t.name}, {"dtype", t.dtype}, {"shape", t.shape},
                      {"xxh3", t.content.hex()}, {"norm", t.norm}};
    j["sketch"] = t.sketch.empty() ? ordered_json(nullptr)
                                   : ordered_json(add_array(fmt::format("sketch/{}", i), t.sketch,
                                                            {static_cast<int64_t>(t.sketch.size())}));
    tensors.push_back(std::move(j));
  }
  doc["tensors"] = std::move(tensors);
  ordered_json responses = ordered_json::array();
  for (size_t i = 0; i < fp.responses.size(); ++i) {
    const auto& r = fp.responses[i];
    responses.push_back({{"kind", response_kind_name(r.kind)}, {"layer", r.layer},
                         {"expert", r.expert}, {"units", r.units}, {"total_units", r.total_units},
                         {"values", add_array(fmt::format("responses/{}", i), r.values,
                                              {r.units, fp.probe_count()}, io::DType::kF16)}});
  }
  doc["responses"] = std::move(responses);
  ordered_json norms = ordered_json::array();
  for (size_t i = 0; i < fp.norms.size(); ++i) {
    const auto& n = fp.norms[i];
    norms.push_back({{"layer", n.layer}, {"role", io::role_name(n.role)},
                     {"values", add_array(fmt::format("norms/{}", i), n.values,
                                          {static_cast<int64_t>(n.values.size())})}});
  }
  doc["norms"] = std::move(norms);
  doc["hidden"] = fp.hidden;
  doc["probe_embeddings"] = fp.probe_embeddings.empty()
      ? ordered_json(nullptr)
      : ordered_json(add_array("probe_embeddings", fp.probe_embeddings, {fp.probe_count(), fp.hidden}, io::DType::kF16));
  ordered_json sketches = ordered_json::array();
  for (size_t i = 0; i < fp.hidden_sketches.size(); ++i) {
    const auto& h = fp.hidden_sketches[i];
    sketches.push_back({{"kind", response_kind_name(h.kind)}, {"layer", h.layer}, {"hidden", h.hidden},
                        {"features", h.features},
                        {"values", add_array(fmt::format("hidden_sketches/{}", i), h.values, {h.hidden, h.features}, io::DType::kF16)}});
  }
  doc["hidden_sketches"] = std::move(sketches);
  doc["notes"] = fp.notes;
  const std::string text = doc.dump();
  std::vector<io::TensorToWrite> all;
  all.push_back({std::string(kDocumentTensor), io::DType::kU8, {static_cast<int64_t>(text.size())},
                 io::TensorData::encoded({reinterpret_cast<const uint8_t*>(text.data()), text.size()})});
  for (auto& a : arrays) all.push_back(std::move(a));
  io::write_safetensors(path, all, {{"format", "referee.fingerprint"}});
}

namespace {

std::vector<float> read_array(const io::SafetensorsHeader& header, std::span<const uint8_t> file,
                              const json::Value& name_value, std::vector<int64_t> expected_shape,
                              const std::string& where, std::string_view what) {
  const std::string& name = json::as_string(name_value, where, what);
  const io::TensorInfo* t = nullptr;
  for (const auto& x : header.tensors) {
    if (x.name == name) t = &x;
  }
  if (!t) throw Error::corrupt(where, fmt::format("{} names array '{}', which the file does not hold", what, name));
  if ((t->dtype != io::DType::kF32 && t->dtype != io::DType::kF16) || t->shape != expected_shape) {
    throw Error::corrupt(where, fmt::format("array '{}' has the wrong dtype or shape for {}", name, what));
  }
  (void)file;
  std::vector<float> out = io::read_all_f32(*t);
  for (float v : out) {
    if (!std::isfinite(v)) throw Error::corrupt(where, fmt::format("array '{}' holds a non-finite value", name));
  }
  return out;
}

int64_t bounded(const json::Value& v, const std::string& where, std::string_view what, int64_t lo, int64_t hi) {
  const int64_t x = json::as_int64(v, where, what);
  if (x < lo || x > hi) throw Error::corrupt(where, fmt::format("{} = {} is outside [{}, {}]", what, x, lo, hi));
  return x;
}

}  // namespace

Fingerprint parse_fingerprint(std::span<const uint8_t> bytes, const std::string& where) {
  const io::SafetensorsHeader header = io::parse_safetensors(bytes, where);
  const io::TensorInfo* doc_tensor = nullptr;
  for (const auto& t : header.tensors) {
    if (t.name == kDocumentTensor) doc_tensor = &t;
  }
  if (!doc_tensor || doc_tensor->dtype != io::DType::kU8) {
    throw Error::corrupt(where, "not a referee fingerprint (no U8 tensor 'fingerprint.json'); make one with `referee fingerprint MODEL -o FILE`");
  }
  const std::string_view text(reinterpret_cast<const char*>(doc_tensor->data),
                              doc_tensor->byte_size);
  const json::Value doc = json::parse(text, where);
  json::as_object(doc, where, "fingerprint");
  const auto need = [&](std::string_view key) -> const json::Value& {
    const json::Value* v = json::find(doc, key);
    if (!v && key != "tokenizer") throw Error::corrupt(where, fmt::format("fingerprint has no '{}'", key));
    static const json::Value null_value;
    return v ? *v : null_value;
  };
  const std::string& schema = json::as_string(need("schema"), where, "schema");
  if (schema != kSchema) {
    throw Error::not_supported(where, fmt::format("fingerprint schema '{}' (this referee reads {})", schema, kSchema));
  }
  Fingerprint fp;
  fp.name = json::as_string(need("name"), where, "name");
  fp.source = json::as_string(need("source"), where, "source");
  fp.format = json::as_string(need("format"), where, "format");
  const auto& a = json::as_object(need("architecture"), where, "architecture");
  const auto arch_int = [&](const char* key) {
    const json::Value* v = json::find(a, key);
    return v ? bounded(*v, where, fmt::format("architecture.{}", key), 0, int64_t{1} << 50) : 0;
  };
  if (const auto* v = json::find(a, "architecture")) fp.arch.architecture = json::as_string(*v, where, "architecture.architecture");
  fp.arch.layers = arch_int("layers"), fp.arch.hidden = arch_int("hidden"), fp.arch.ffn = arch_int("ffn");
  fp.arch.vocab = arch_int("vocab"), fp.arch.heads = arch_int("heads"), fp.arch.kv_heads = arch_int("kv_heads");
  fp.arch.experts = arch_int("experts");
  fp.arch.parameters = static_cast<uint64_t>(arch_int("parameters"));
  if (const json::Value* t = json::find(doc, "tokenizer")) fp.tokenizer = tokenizer_from_json(*t, where);
  for (const auto& p : json::as_array(need("probe_tokens"), where, "probe_tokens")) {
    fp.probe_tokens.push_back(json::as_string(p, where, "probe_tokens[]"));
  }
  const int64_t probes = fp.probe_count();
  for (const auto& t : json::as_array(need("tensors"), where, "tensors")) {
    json::as_object(t, where, "tensors[]");
    TensorDigest d;
    d.name = json::as_string(member(t, "name", where), where, "tensors[].name");
    d.dtype = json::as_string(member(t, "dtype", where), where, "tensors[].dtype");
    for (const auto& s : json::as_array(member(t, "shape", where), where, "tensors[].shape")) {
      d.shape.push_back(bounded(s, where, "tensors[].shape[]", 0, int64_t{1} << 50));
    }
    d.role = io::classify_tensor(d.name);
    const std::string& hex = json::as_string(member(t, "xxh3", where), where, "tensors[].xxh3");
    if (hex.size() != 32 || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
      throw Error::corrupt(where, fmt::format("tensor '{}' xxh3 must be 32 hex digits", d.name));
    }
    d.content.high = std::stoull(hex.substr(0, 16), nullptr, 16);
    d.content.low = std::stoull(hex.substr(16), nullptr, 16);
    d.norm = json::as_double(member(t, "norm", where), where, "tensors[].norm");
    if (const json::Value* s = json::find(t, "sketch")) {
      const std::string& name = json::as_string(*s, where, "tensors[].sketch");
      int64_t len = -1;
      for (const auto& x : header.tensors) {
        if (x.name == name && x.shape.size() == 1) len = x.shape[0];
      }
      d.sketch = read_array(header, bytes, *s, {std::max<int64_t>(len, 1)}, where, "tensors[].sketch");
    }
    fp.tensors.push_back(std::move(d));
  }
  for (const auto& r : json::as_array(need("responses"), where, "responses")) {
    json::as_object(r, where, "responses[]");
    Responses x;
    const auto kind = response_kind_from_name(json::as_string(member(r, "kind", where), where, "responses[].kind"));
    if (!kind) throw Error::corrupt(where, "responses[].kind is not attn_q, attn_k, mlp_gate, mlp_up or router");
    x.kind = *kind;
    x.layer = static_cast<int32_t>(bounded(member(r, "layer", where), where, "responses[].layer", 0, 1 << 20));
    x.expert = static_cast<int32_t>(bounded(member(r, "expert", where), where, "responses[].expert", -1, 1 << 20));
    x.units = bounded(member(r, "units", where), where, "responses[].units", 1, int64_t{1} << 24);
    x.total_units = bounded(member(r, "total_units", where), where, "responses[].total_units", x.units, int64_t{1} << 40);
    if (probes == 0) throw Error::corrupt(where, "responses without probe tokens");
    x.values = read_array(header, bytes, member(r, "values", where), {x.units, probes}, where, "responses[].values");
    fp.responses.push_back(std::move(x));
  }
  for (const auto& n : json::as_array(need("norms"), where, "norms")) {
    json::as_object(n, where, "norms[]");
    NormVector v;
    v.layer = static_cast<int32_t>(bounded(member(n, "layer", where), where, "norms[].layer", -1, 1 << 20));
    const auto role = io::role_from_name(json::as_string(member(n, "role", where), where, "norms[].role"));
    if (!role || !is_norm_role(*role)) throw Error::corrupt(where, "norms[].role is not a norm role");
    v.role = *role;
    const std::string& name = json::as_string(member(n, "values", where), where, "norms[].values");
    int64_t len = -1;
    for (const auto& x : header.tensors) {
      if (x.name == name && x.shape.size() == 1) len = x.shape[0];
    }
    v.values = read_array(header, bytes, member(n, "values", where), {std::max<int64_t>(len, 1)}, where, "norms[].values");
    fp.norms.push_back(std::move(v));
  }
  fp.hidden = bounded(need("hidden"), where, "hidden", 0, int64_t{1} << 24);
  if (const json::Value* e = json::find(doc, "probe_embeddings")) {
    if (probes == 0 || fp.hidden == 0) throw Error::corrupt(where, "probe_embeddings without probes or hidden size");
    fp.probe_embeddings = read_array(header, bytes, *e, {probes, fp.hidden}, where, "probe_embeddings");
  }
  for (const auto& h : json::as_array(need("hidden_sketches"), where, "hidden_sketches")) {
    json::as_object(h, where, "hidden_sketches[]");
    HiddenSketch x;
    const auto kind = response_kind_from_name(json::as_string(member(h, "kind", where), where, "hidden_sketches[].kind"));
    if (!kind || (*kind != ResponseKind::kQuery && *kind != ResponseKind::kKey)) {
      throw Error::corrupt(where, "hidden_sketches[].kind must be attn_q or attn_k");
    }
    x.kind = *kind;
    x.layer = static_cast<int32_t>(bounded(member(h, "layer", where), where, "hidden_sketches[].layer", 0, 1 << 20));
    x.hidden = bounded(member(h, "hidden", where), where, "hidden_sketches[].hidden", 1, int64_t{1} << 24);
    x.features = bounded(member(h, "features", where), where, "hidden_sketches[].features", 1, 1 << 16);
    x.values = read_array(header, bytes, member(h, "values", where), {x.hidden, x.features}, where, "hidden_sketches[].values");
    fp.hidden_sketches.push_back(std::move(x));
  }
  for (const auto& n : json::as_array(need("notes"), where, "notes")) {
    fp.notes.push_back(json::as_string(n, where, "notes[]"));
  }
  return fp;
}

Fingerprint load_fingerprint(const fs::path& path) {
  const auto file = MappedFile::open(path);
  return parse_fingerprint(file->bytes(), path.string());
}

bool is_fingerprint_file(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  try {
    const auto file = MappedFile::open(path);
    const io::SafetensorsHeader h = io::parse_safetensors(file->bytes(), path.string());
    for (const auto& t : h.tensors) {
      if (t.name == kDocumentTensor) return true;
    }
  } catch (const Error&) {
    return false;
  }
  return false;
}

Fingerprint fingerprint_of(const fs::path& path, const FingerprintOptions& options) {
  if (is_fingerprint_file(path)) return load_fingerprint(path);
  return take_fingerprint(io::Model::open(path), options);
}

std::vector<Fingerprint> fingerprints_of(const std::vector<fs::path>& paths, const FingerprintOptions& options) {
  std::vector<Fingerprint> out(paths.size());
  std::vector<io::Model> models;
  std::vector<size_t> taken;  // indices of `paths` that are models rather than saved fingerprints
  for (size_t i = 0; i < paths.size(); ++i) {
    if (is_fingerprint_file(paths[i])) {
      out[i] = load_fingerprint(paths[i]);
    } else {
      models.push_back(io::Model::open(paths[i]));
      taken.push_back(i);
    }
  }
  std::vector<const io::Model*> pointers;
  for (const auto& m : models) pointers.push_back(&m);
  auto fingerprints = take_fingerprints(pointers, options);
  for (size_t k = 0; k < taken.size(); ++k) out[taken[k]] = std::move(fingerprints[k]);
  return out;
}

}  // namespace referee::trace
