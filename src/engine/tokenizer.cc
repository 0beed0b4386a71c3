#include "engine/tokenizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <unordered_map>

#include "engine/tokenizer_regex.h"
#include "io/byte_level.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/strings.h"
#include "util/json.h"

namespace referee::engine {
namespace {

// ---- UTF-8 ------------------------------------------------------------------------------------

// Length of the valid UTF-8 character starting at p (at most `avail` bytes), or 0 if none starts
// there. Valid as Rust and the Unicode standard define it: no overlong forms, no surrogates,
// nothing above U+10FFFF.
size_t utf8_char_length(const unsigned char* p, size_t avail, uint32_t* code_point = nullptr) {
  const unsigned char c = p[0];
  if (c < 0x80) {
    if (code_point) *code_point = c;
    return 1;
  }
  size_t extra;
  uint32_t cp, min;
  if ((c & 0xe0) == 0xc0) {
    extra = 1, cp = c & 0x1f, min = 0x80;
  } else if ((c & 0xf0) == 0xe0) {
    extra = 2, cp = c & 0x0f, min = 0x800;
  } else if ((c & 0xf8) == 0xf0) {
    extra = 3, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (avail <= extra) return 0;
  for (size_t i = 1; i <= extra; ++i) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  if (code_point) *code_point = cp;
  return extra + 1;
}

// Calls fn(run, valid) for the maximal runs of `text` that are valid UTF-8 and the runs of bytes
// at which no valid character starts, in order.
template <typename F>
void for_each_utf8_run(std::string_view text, F&& fn) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const size_t start = i;
    size_t len = 0;
    while (i < n && (p[i] < 0x80 || (len = utf8_char_length(p + i, n - i)) != 0)) {
      i += p[i] < 0x80 ? 1 : len;
    }
    if (i > start) fn(text.substr(start, i - start), true);
    const size_t bad = i;
    while (i < n && p[i] >= 0x80 && utf8_char_length(p + i, n - i) == 0) ++i;
    if (i > bad) fn(text.substr(bad, i - bad), false);
  }
}

bool is_white_space(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0d) || cp == 0x20 || cp == 0x85 || cp == 0xa0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029 || cp == 0x202f ||
         cp == 0x205f || cp == 0x3000;
}

// The character that ends at `end` (decoding backwards); false if the byte before is not the
// last byte of a valid character.
bool char_before(std::string_view text, size_t end, uint32_t& cp, size_t& len) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  for (size_t back = 1; back <= 4 && back <= end; ++back) {
    const size_t start = end - back;
    if ((p[start] & 0xc0) == 0x80 && back < 4) continue;
    len = utf8_char_length(p + start, text.size() - start, &cp);
    return len == back;
  }
  return false;
}

bool char_at(std::string_view text, size_t pos, uint32_t& cp, size_t& len) {
  if (pos >= text.size()) return false;
  len = utf8_char_length(reinterpret_cast<const unsigned char*>(text.data()) + pos,
                         text.size() - pos, &cp);
  return len != 0;
}

// Oniguruma's / Rust's \w for one character, through the same translated class the split patterns
// use, so the two agree.
bool is_word_char(std::string_view text, size_t pos, size_t len) {
  static const SplitRegex word(R"(\w)", false, "word class");
  bool found = false;
  word.for_each_match(text.substr(pos, len), [&](size_t, size_t) { found = true; });
  return found;
}

// ---- merges -------------------------------------------------------------------------------------

// Open-addressing hash table from (left id, right id) to the merge's rank and result: the inner
// loop of encoding, so no node allocation and one multiply per lookup.
class MergeTable {
 public:
  struct Merge {
    uint32_t rank;
    int32_t id;
  };

  void reserve(size_t n) {
    size_t capacity = 16;
    while (capacity < n * 2) capacity *= 2;
    keys_.assign(capacity, kEmpty);
    values_.assign(capacity, Merge{0, -1});
    mask_ = capacity - 1;
    shift_ = 64 - std::countr_zero(capacity);
  }
  // A pair given twice keeps the later merge, as the tokenizers library's map does.
  void set(int32_t left, int32_t right, Merge m) {
    const uint64_t k = key(left, right);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (keys_[i] == kEmpty || keys_[i] == k) {
        keys_[i] = k;
        values_[i] = m;
        return;
      }
    }
  }
  const Merge* find(int32_t left, int32_t right) const {
    const uint64_t k = key(left, right);
    for (size_t i = slot(k);; i = (i + 1) & mask_) {
      if (keys_[i] == k) return &values_[i];
      if (keys_[i] == kEmpty) return nullptr;
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;  // ids are below 2^28, so no pair has this key
  static uint64_t key(int32_t l, int32_t r) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
  }
  size_t slot(uint64_t k) const { return (k * 0x9e3779b97f4a7c15ull) >> shift_; }

  std::vector<uint64_t> keys_;
  std::vector<Merge> values_;
  size_t mask_ = 0;
  int shift_ = 60;
};

// ---- added tokens -------------------------------------------------------------------------------

struct AddedTokenSpec {
  int32_t id;
  std::string content;
  bool special, single_word, lstrip, rstrip, normalized;
};

// Leftmost-longest search for a set of strings (what the library's Aho-Corasick automaton with
// MatchKind::LeftmostLongest finds): a byte trie walked from each position where some token's
// first byte occurs. Added tokens are few and rarely share first bytes with ordinary text.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() { root_.fill(-1); }
  bool empty() const { return nodes_.empty(); }

  void add(std::string_view content, int32_t token) {
    if (content.empty()) return;
    int32_t node = root_[static_cast<uint8_t>(content[0])];
    if (node < 0) {
      node = new_node();
      root_[static_cast<uint8_t>(content[0])] = node;
    }
    for (size_t i = 1; i < content.size(); ++i) {
      const auto byte = static_cast<uint8_t>(content[i]);
      int32_t child = -1;
      for (const auto& [b, c] : nodes_[node].next) {
        if (b == byte) child = c;
      }
      if (child < 0) {
        child = new_node();
        nodes_[node].next.emplace_back(byte, child);
      }
      node = child;
    }
    nodes_[node].token = token;
  }

  // The leftmost-longest match at or after `from`.
  bool find(std::string_view text, size_t from, size_t& start, size_t& end, int32_t& token) const {
    const auto* p = reinterpret_cast<const uint8_t*>(text.data());
    for (size_t i = from; i < text.size(); ++i) {
      int32_t node = root_[p[i]];
      if (node < 0) continue;
      int32_t best = -1;
      size_t best_end = 0;
      for (size_t j = i + 1;; ++j) {
        if (nodes_[node].token >= 0) best = nodes_[node].token, best_end = j;
        if (j >= text.size()) break;
        int32_t child = -1;
        for (const auto& [b, c] : nodes_[node].next) {
          if (b == p[j]) child = c;
        }
        if (child < 0) break;
        node = child;
      }
      if (best >= 0) {
        start = i, end = best_end, token = best;
        return true;
      }
    }
    return false;
  }

 private:
  struct Node {
    int32_t token = -1;
    std::vector<std::pair<uint8_t, int32_t>> next;
  };
  int32_t new_node() {
    nodes_.emplace_back();
    return static_cast<int32_t>(nodes_.size() - 1);
  }
  std::array<int32_t, 256> root_;
  std::vector<Node> nodes_;
};

// ---- pre-tokenizer ------------------------------------------------------------------------------

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct SplitStep {
  SplitRegex regex;
  SplitBehavior behavior;
  bool invert;
};

// Turns the (range, is_match) events of a split, in order, into the pieces the library keeps for a
// behavior (tokenizers' NormalizedString::split), streaming: at most one piece is held back.
// Empty pieces are dropped, as PreTokenizedString::split drops them.
template <typename Emit>
class SplitAssembler {
 public:
  SplitAssembler(SplitBehavior behavior, Emit& emit) : behavior_(behavior), emit_(emit) {}

  void event(size_t start, size_t end, bool is_match) {
    switch (behavior_) {
      case SplitBehavior::kIsolated:
        out(start, end);
        break;
      case SplitBehavior::kRemoved:
        if (!is_match) out(start, end);
        break;
      case SplitBehavior::kContiguous:
        if (has_pending_ && is_match == previous_match_) {
          pending_end_ = end;
        } else {
          flush();
          hold(start, end);
        }
        break;
      case SplitBehavior::kMergedWithPrevious:
        if (is_match && !previous_match_ && has_pending_) {
          pending_end_ = end;
        } else {
          flush();
          hold(start, end);
        }
        break;
      case SplitBehavior::kMergedWithNext:
        // A match joins the non-match that follows it.
        if (is_match) {
          flush();
          hold(start, end);
        } else if (has_pending_ && previous_match_) {
          pending_end_ = end;
          flush();
        } else {
          flush();
          out(start, end);
        }
        break;
    }
    previous_match_ = is_match;
  }
  void finish() { flush(); }

 private:
  void out(size_t start, size_t end) {
    if (end > start) emit_(start, end);
  }
  void hold(size_t start, size_t end) {
    has_pending_ = true;
    pending_start_ = start;
    pending_end_ = end;
  }
  void flush() {
    if (has_pending_) out(pending_start_, pending_end_);
    has_pending_ = false;
  }

  SplitBehavior behavior_;
  Emit& emit_;
  bool previous_match_ = false;
  bool has_pending_ = false;
  size_t pending_start_ = 0, pending_end_ = 0;
};

// ---- per-thread word cache ----------------------------------------------------------------------

// Ids of recently merged words, per thread and per tokenizer (keyed by a serial number that is
// never reused), so encoding takes no lock. Bounded: once full, new words are not added.
struct WordCache {
  static constexpr size_t kMaxEntries = 1 << 17;
  static constexpr size_t kMaxWordBytes = 256;
  static constexpr size_t kMaxIds = 1 << 22;
  uint64_t owner = 0;
  std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, TransparentStringHash, std::equal_to<>> map;
  std::vector<int32_t> ids;
};

WordCache& word_cache_for(uint64_t serial) {
  // A thread that uses several tokenizers keeps a cache for each of the last few.
  thread_local std::vector<std::unique_ptr<WordCache>> caches;
  for (auto& c : caches) {
    if (c->owner == serial) return *c;
  }
  if (caches.size() >= 4) caches.erase(caches.begin());
  caches.push_back(std::make_unique<WordCache>());
  caches.back()->owner = serial;
  caches.back()->map.reserve(1024);
  return *caches.back();
}

std::atomic<uint64_t> next_serial{1};

std::string type_of(const json::Value& v, std::string_view where, std::string_view what) {
  const auto* t = json::find(v, "type");
  if (t == nullptr) throw corrupt(where, "{} has no \"type\"", what);
  return json::as_string(*t, where, std::string(what) + ".type");
}

bool bool_or(const json::Value& v, std::string_view key, bool fallback, std::string_view where) {
  const auto* x = json::find(v, key);
  return x == nullptr ? fallback : json::as_bool(*x, where, key);
}

// The GPT-2 pattern the ByteLevel pre-tokenizer applies when use_regex is set.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

// ---- the tokenizer ------------------------------------------------------------------------------

struct BpeTokenizer::Impl {
  uint64_t serial = next_serial.fetch_add(1);

  // Vocabulary, by id (vocab_size entries; ids no token has are empty).
  int32_t vocab_size = 0;
  std::vector<std::string> text;   // vocabulary spelling: added content or model token
  std::vector<std::string> bytes;  // what decoding emits (the ByteLevel decoder's mapping)
  std::vector<uint8_t> kind;       // kNone, kModel, kAdded, kSpecial
  static constexpr uint8_t kNone = 0, kModel = 1, kAdded = 2, kSpecial = 3;
  std::unordered_map<std::string, int32_t, TransparentStringHash, std::equal_to<>> text_to_id;
  std::unordered_map<std::string, int32_t, TransparentStringHash, std::equal_to<>> model_bytes_to_id;

  // The BPE model.
  std::vector<io::VocabEntry> model_vocab;  // as read, for saving
  std::vector<std::pair<std::string, std::string>> merges;
  MergeTable merge_table;
  std::array<int32_t, 256> byte_id{};  // initial symbol of each byte; -1 if the vocabulary lacks it
  int32_t unk_id = -1;
  std::optional<std::string> unk_token;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;

  // Added tokens, matched before anything else.
  std::vector<AddedTokenSpec> added;
  AddedTokenMatcher raw_matcher;         // normalized = false: matched in the input as it is
  AddedTokenMatcher normalized_matcher;  // normalized = true: matched after normalization

  // Pre-tokenizer: split steps, then ByteLevel.
  std::vector<SplitStep> steps;
  bool add_prefix_space = false;
  std::optional<SplitRegex> byte_level_regex;  // set when ByteLevel's use_regex is on

  std::vector<int32_t> prefix_ids, suffix_ids;  // what the post-processor adds

  // Components kept verbatim for save().
  std::string normalizer_json, pre_tokenizer_json, post_processor_json, decoder_json;
  std::optional<std::string> bos_token, eos_token;
  std::optional<int32_t> bos, eos;
  std::string chat_template;

  const std::string& empty_string() const {
    static const std::string empty;
    return empty;
  }

  // ---- encoding ----

  // Splits `text` on the added tokens of `matcher` with the library's rules (single_word, lstrip,
  // rstrip) and calls piece(start, end) for text between them and token(id) for each match.
  template <typename Piece, typename Token>
  void split_added(std::string_view text, const AddedTokenMatcher& matcher, Piece&& piece,
                   Token&& token) const {
    size_t offset = 0, search = 0, start, end;
    int32_t index;
    while (search < text.size() && matcher.find(text, search, start, end, index)) {
      search = end;
      const AddedTokenSpec& a = added[index];
      uint32_t cp;
      size_t len;
      if (a.single_word) {
        const bool word_before =
            start > 0 && char_before(text, start, cp, len) && is_word_char(text, start - len, len);
        const bool word_after =
            end < text.size() && char_at(text, end, cp, len) && is_word_char(text, end, len);
        if (word_before || word_after) continue;
      }
      if (a.lstrip) {
        size_t s = start;
        while (s > offset && char_before(text, s, cp, len) && is_white_space(cp)) s -= len;
        start = s;
      }
      if (a.rstrip) {
        while (char_at(text, end, cp, len) && is_white_space(cp)) end += len;
      }
      start = std::max(start, offset);
      if (offset < start) piece(offset, start);
      token(a.id);
      offset = std::max(offset, end);
      search = std::max(search, offset);
    }
    if (offset < text.size()) piece(offset, text.size());
  }

  void encode_text(std::string_view text, WordCache& cache, std::vector<int32_t>& out) const {
    split_added(
        text, raw_matcher,
        [&](size_t s, size_t e) {
          const std::string_view piece = text.substr(s, e - s);
          if (normalized_matcher.empty()) {
            encode_plain(piece, cache, out);
            return;
          }
          // No normalizer is supported, so the normalized text is the text itself.
          split_added(
              piece, normalized_matcher,
              [&](size_t s2, size_t e2) { encode_plain(piece.substr(s2, e2 - s2), cache, out); },
              [&](int32_t id) { out.push_back(id); });
        },
        [&](int32_t id) { out.push_back(id); });
  }

  // Text without added tokens: pre-tokenized if valid UTF-8; runs of invalid bytes are words.
  void encode_plain(std::string_view text, WordCache& cache, std::vector<int32_t>& out) const {
    for_each_utf8_run(text, [&](std::string_view run, bool valid) {
      if (valid) {
        pre_tokenize(0, run, [&](std::string_view word) { encode_word(word, cache, out); });
      } else {
        encode_word(run, cache, out);
      }
    });
  }

  template <typename Word>
  void pre_tokenize(size_t step, std::string_view piece, Word&& word) const {
    if (step == steps.size()) {
      byte_level(piece, word);
      return;
    }
    const SplitStep& s = steps[step];
    auto emit = [&](size_t a, size_t b) { pre_tokenize(step + 1, piece.substr(a, b - a), word); };
    SplitAssembler<decltype(emit)> assembler(s.behavior, emit);
    size_t previous = 0;
    s.regex.for_each_match(piece, [&](size_t a, size_t b) {
      if (a > previous) assembler.event(previous, a, s.invert);
      assembler.event(a, b, !s.invert);
      previous = b;
    });
    if (previous < piece.size()) assembler.event(previous, piece.size(), s.invert);
    assembler.finish();
  }

  template <typename Word>
  void byte_level(std::string_view piece, Word& word) const {
    if (piece.empty()) return;
    std::string prefixed;
    if (add_prefix_space && piece[0] != ' ') {
      prefixed.reserve(piece.size() + 1);
      prefixed += ' ';
      prefixed += piece;
      piece = prefixed;
    }
    if (!byte_level_regex) {
      word(piece);
      return;
    }
    size_t previous = 0;
    byte_level_regex->for_each_match(piece, [&](size_t a, size_t b) {
      if (a > previous) word(piece.substr(previous, a - previous));
      if (b > a) word(piece.substr(a, b - a));
      previous = b;
    });
    if (previous < piece.size()) word(piece.substr(previous));
  }

  void encode_word(std::string_view word, WordCache& cache, std::vector<int32_t>& out) const {
    if (ignore_merges) {
      if (auto it = model_bytes_to_id.find(word); it != model_bytes_to_id.end()) {
        out.push_back(it->second);
        return;
      }
    }
    if (word.size() == 1 && byte_id[static_cast<uint8_t>(word[0])] >= 0) {
      out.push_back(byte_id[static_cast<uint8_t>(word[0])]);
      return;
    }
    if (auto it = cache.map.find(word); it != cache.map.end()) {
      const auto [offset, count] = it->second;
      out.insert(out.end(), cache.ids.begin() + offset, cache.ids.begin() + offset + count);
      return;
    }
    const size_t before = out.size();
    merge_word(word, out);
    if (word.size() <= WordCache::kMaxWordBytes && cache.map.size() < WordCache::kMaxEntries &&
        cache.ids.size() < WordCache::kMaxIds) {
      const auto offset = static_cast<uint32_t>(cache.ids.size());
      cache.ids.insert(cache.ids.end(), out.begin() + before, out.end());
      cache.map.emplace(std::string(word),
                        std::pair{offset, static_cast<uint32_t>(out.size() - before)});
    }
  }

  // BPE on one word, as the library's Word::merge_all: repeatedly join the adjacent pair whose
  // merge has the lowest rank, leftmost first, through a heap of candidate pairs and a linked list
  // of symbols, checking each popped candidate is still current.
  void merge_word(std::string_view word, std::vector<int32_t>& out) const {
    struct Symbol {
      int32_t id, prev, next;
      bool alive;
    };
    struct Candidate {
      uint32_t rank, pos;
      int32_t id;
      bool operator>(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : pos > o.pos;
      }
    };
    thread_local std::vector<Symbol> symbols;
    thread_local std::vector<Candidate> heap;
    symbols.clear();
    heap.clear();
    bool previous_unknown = false;
    for (unsigned char b : word) {
      const int32_t id = byte_id[b];
      if (id >= 0) {
        symbols.push_back({id, 0, 0, true});
        previous_unknown = false;
      } else if (unk_id >= 0) {
        // The library's unknown-character rule; unreachable for complete byte vocabularies.
        if (!(fuse_unk && previous_unknown)) symbols.push_back({unk_id, 0, 0, true});
        previous_unknown = true;
      }
    }
    const auto n = static_cast<int32_t>(symbols.size());
    for (int32_t i = 0; i < n; ++i) {
      symbols[i].prev = i - 1;
      symbols[i].next = i + 1 < n ? i + 1 : -1;
    }
    auto push = [&](int32_t pos) {
      const int32_t next = symbols[pos].next;
      if (next < 0) return;
      if (const auto* m = merge_table.find(symbols[pos].id, symbols[next].id)) {
        heap.push_back({m->rank, static_cast<uint32_t>(pos), m->id});
        std::push_heap(heap.begin(), heap.end(), std::greater<>{});
      }
    };
    for (int32_t i = 0; i + 1 < n; ++i) push(i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
      const Candidate top = heap.back();
      heap.pop_back();
      Symbol& left = symbols[top.pos];
      if (!left.alive || left.next < 0) continue;
      Symbol& right = symbols[left.next];
      const auto* m = merge_table.find(left.id, right.id);
      if (m == nullptr || m->id != top.id) continue;  // a stale candidate
      left.id = top.id;
      right.alive = false;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = static_cast<int32_t>(top.pos);
      if (left.prev >= 0) push(left.prev);
      push(static_cast<int32_t>(top.pos));
    }
    for (int32_t i = 0; i >= 0 && i < n; i = symbols[i].next) out.push_back(symbols[i].id);
  }
};

namespace {

// ---- reading the pipeline from tokenizer.json ---------------------------------------------------

void parse_pre_tokenizer(const json::Value& v, BpeTokenizer::Impl& impl, bool& byte_level,
                         const std::string& where, int depth) {
  const std::string type = type_of(v, where, "pre_tokenizer");
  if (byte_level) {
    throw not_supported(where, "pre-tokenizer step {} after ByteLevel (ByteLevel must come last)",
                        type);
  }
  if (type == "Sequence" && depth < 8) {
    const auto* list = json::find(v, "pretokenizers");
    if (list == nullptr) throw corrupt(where, "Sequence pre-tokenizer without \"pretokenizers\"");
    for (const auto& child : json::as_array(*list, where, "pretokenizers")) {
      parse_pre_tokenizer(child, impl, byte_level, where, depth + 1);
    }
  } else if (type == "Split") {
    const auto* pattern = json::find(v, "pattern");
    if (pattern == nullptr) throw corrupt(where, "Split pre-tokenizer without \"pattern\"");
    const auto* regex = json::find(*pattern, "Regex");
    const auto* string = json::find(*pattern, "String");
    if ((regex == nullptr) == (string == nullptr)) {
      throw corrupt(where, "Split pattern must have exactly one of \"Regex\" and \"String\"");
    }
    const auto* behavior_value = json::find(v, "behavior");
    if (behavior_value == nullptr) throw corrupt(where, "Split pre-tokenizer without \"behavior\"");
    const std::string& behavior = json::as_string(*behavior_value, where, "Split behavior");
    static const std::pair<const char*, SplitBehavior> kBehaviors[] = {
        {"Removed", SplitBehavior::kRemoved},
        {"Isolated", SplitBehavior::kIsolated},
        {"MergedWithPrevious", SplitBehavior::kMergedWithPrevious},
        {"MergedWithNext", SplitBehavior::kMergedWithNext},
        {"Contiguous", SplitBehavior::kContiguous}};
    const auto* found = std::find_if(std::begin(kBehaviors), std::end(kBehaviors),
                                     [&](const auto& b) { return behavior == b.first; });
    if (found == std::end(kBehaviors)) {
      throw corrupt(where, "unknown Split behavior '{}'", behavior);
    }
    const bool literal = string != nullptr;
    const std::string& text = json::as_string(literal ? *string : *regex, where, "Split pattern");
    impl.steps.push_back(
        {SplitRegex(text, literal, where), found->second, bool_or(v, "invert", false, where)});
  } else if (type == "Digits") {
    // Every numeric character (char::is_numeric: Nd, Nl, No) is a match of its own.
    impl.steps.push_back({SplitRegex(R"(\p{N})", false, where),
                          bool_or(v, "individual_digits", false, where)
                              ? SplitBehavior::kIsolated
                              : SplitBehavior::kContiguous,
                          false});
  } else if (type == "ByteLevel") {
    byte_level = true;
    impl.add_prefix_space = bool_or(v, "add_prefix_space", true, where);
    if (bool_or(v, "use_regex", true, where))
      impl.byte_level_regex.emplace(kGpt2Pattern, false, where);
  } else {
    throw not_supported(where, "pre-tokenizer {}", type);
  }
}

// Prefix and suffix ids of a single sequence with add_special_tokens.
void parse_post_processor(const json::Value& v, std::vector<int32_t>& prefix,
                          std::vector<int32_t>& suffix, const std::string& where, int depth) {
  const std::string type = type_of(v, where, "post_processor");
  auto id_of = [&](const json::Value& x, std::string_view what) {
    const uint64_t id = json::as_uint64(x, where, what);
    if (id > static_cast<uint64_t>(io::kMaxTokenId)) {
      throw corrupt(where, "{} is {}, above the largest token id", what, id);
    }
    return static_cast<int32_t>(id);
  };
  if (type == "ByteLevel") return;  // only adjusts offsets
  if (type == "Sequence" && depth < 8) {
    const auto* list = json::find(v, "processors");
    if (list == nullptr) throw corrupt(where, "Sequence post-processor without \"processors\"");
    for (const auto& child : json::as_array(*list, where, "processors")) {
      std::vector<int32_t> p, s;
      parse_post_processor(child, p, s, where, depth + 1);
      prefix.insert(prefix.begin(), p.begin(), p.end());  // each wraps what came before
      suffix.insert(suffix.end(), s.begin(), s.end());
    }
    return;
  }
  if (type == "TemplateProcessing") {
    const auto* single = json::find(v, "single");
    const auto* specials = json::find(v, "special_tokens");
    if (single == nullptr) throw corrupt(where, "TemplateProcessing without \"single\"");
    bool seen_sequence = false;
    for (const auto& item : json::as_array(*single, where, "TemplateProcessing.single")) {
      if (const auto* seq = json::find(item, "Sequence")) {
        const auto* id = json::find(*seq, "id");
        if (id == nullptr || json::as_string(*id, where, "Sequence.id") != "A" || seen_sequence) {
          throw corrupt(where, "TemplateProcessing.single must hold sequence A once");
        }
        seen_sequence = true;
      } else if (const auto* special = json::find(item, "SpecialToken")) {
        const auto* name = json::find(*special, "id");
        if (name == nullptr) throw corrupt(where, "TemplateProcessing SpecialToken without id");
        const std::string& n = json::as_string(*name, where, "SpecialToken.id");
        const json::Value* entry = specials ? json::find(*specials, n) : nullptr;
        const json::Value* ids = entry ? json::find(*entry, "ids") : nullptr;
        if (ids == nullptr) {
          throw corrupt(where, "TemplateProcessing uses special token '{}' it does not define", n);
        }
        for (const auto& id : json::as_array(*ids, where, "special token ids")) {
          (seen_sequence ? suffix : prefix).push_back(id_of(id, "special token id"));
        }
      } else {
        throw corrupt(where, "TemplateProcessing item is neither Sequence nor SpecialToken");
      }
    }
    if (!seen_sequence) throw corrupt(where, "TemplateProcessing.single lacks sequence A");
    return;
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    for (const char* key : {"cls", "sep"}) {
      const auto* pair = json::find(v, key);
      if (pair == nullptr || !pair->is_array() || pair->size() != 2) {
        throw corrupt(where, "{} needs \"{}\": [token, id]", type, key);
      }
      (std::string_view(key) == "cls" ? prefix : suffix).push_back(id_of((*pair)[1], key));
    }
    return;
  }
  throw not_supported(where, "post-processor {}", type);
}

void check_decoder(const json::Value& v, const std::string& where, int depth) {
  const std::string type = type_of(v, where, "decoder");
  if (type == "ByteLevel") return;
  if (type == "Sequence" && depth < 8) {
    const auto* list = json::find(v, "decoders");
    if (list != nullptr) {
      for (const auto& child : json::as_array(*list, where, "decoders")) {
        check_decoder(child, where, depth + 1);
      }
      return;
    }
  }
  throw not_supported(where, "decoder {} (only ByteLevel decoding is implemented)", type);
}

}  // namespace

BpeTokenizer BpeTokenizer::load(const std::filesystem::path& dir) {
  return from_io(io::read_tokenizer_dir(dir), (dir / "tokenizer.json").string());
}

BpeTokenizer BpeTokenizer::from_io(const io::Tokenizer& t, const std::string& where) {
  if (t.model_type != "BPE") {
    throw not_supported(where, "tokenizer model {} (only byte-level BPE is implemented)",
                        t.model_type);
  }
  if (!t.continuing_subword_prefix.empty() || !t.end_of_word_suffix.empty()) {
    throw not_supported(where, "BPE with a continuing-subword prefix or end-of-word suffix");
  }
  if (t.dropout && *t.dropout > 0) {
    throw not_supported(where, "BPE dropout {} (it makes encoding random)", *t.dropout);
  }
  auto impl = std::make_shared<Impl>();
  Impl& m = *impl;

  // Pipeline components first: a tokenizer that is not byte-level is refused before any work.
  if (t.pre_tokenizer_json.empty()) {
    throw not_supported(where, "BPE without a pre-tokenizer (not byte-level)");
  }
  bool byte_level = false;
  parse_pre_tokenizer(json::parse(t.pre_tokenizer_json, where), m, byte_level, where, 0);
  if (!byte_level) {
    throw not_supported(where, "pre-tokenizer {} has no ByteLevel step (not byte-level BPE)",
                        t.pre_tokenizer);
  }
  if (!t.normalizer_json.empty()) {
    const auto n = json::parse(t.normalizer_json, where);
    const std::string type = type_of(n, where, "normalizer");
    const auto* list = json::find(n, "normalizers");
    if (!(type == "Sequence" && list != nullptr && list->is_array() && list->empty())) {
      throw not_supported(where, "normalizer {}", t.normalizer);
    }
  }
  if (t.decoder_json.empty()) throw not_supported(where, "no decoder (ByteLevel expected)");
  check_decoder(json::parse(t.decoder_json, where), where, 0);
  if (!t.post_processor_json.empty()) {
    parse_post_processor(json::parse(t.post_processor_json, where), m.prefix_ids, m.suffix_ids,
                         where, 0);
  }
  m.normalizer_json = t.normalizer_json;
  m.pre_tokenizer_json = t.pre_tokenizer_json;
  m.post_processor_json = t.post_processor_json;
  m.decoder_json = t.decoder_json;

  // Vocabulary.
  const int64_t max_id = t.max_id();
  // Tables are indexed by id, so ids must be dense enough that a hostile file with one huge id
  // cannot make us allocate gigabytes. Real vocabularies have no gaps.
  const uint64_t entries = t.vocab.size() + t.added_tokens.size();
  if (max_id >= 0 && static_cast<uint64_t>(max_id) > 4 * entries + 65536) {
    throw not_supported(where, "token ids reach {} for only {} tokens (ids this sparse)", max_id,
                        entries);
  }
  m.vocab_size = static_cast<int32_t>(max_id + 1);
  m.text.resize(m.vocab_size);
  m.bytes.resize(m.vocab_size);
  m.kind.assign(m.vocab_size, Impl::kNone);
  m.model_vocab = t.vocab;
  m.text_to_id.reserve(t.vocab.size() + t.added_tokens.size());
  m.model_bytes_to_id.reserve(t.vocab.size());
  std::unordered_map<std::string_view, int32_t> model_id;
  model_id.reserve(t.vocab.size());
  for (const auto& v : t.vocab) {
    const auto id = static_cast<int32_t>(v.id);
    m.text[id] = v.token;
    m.kind[id] = Impl::kModel;
    model_id.emplace(v.token, id);
    if (auto b = io::from_byte_level(v.token)) {
      m.model_bytes_to_id.emplace(*b, id);
      m.bytes[id] = std::move(*b);
    } else {
      m.bytes[id] = v.token;  // not byte-level characters: the ByteLevel decoder keeps the text
    }
  }
  for (size_t i = 0; i < t.added_tokens.size(); ++i) {
    const auto& a = t.added_tokens[i];
    const auto id = static_cast<int32_t>(a.id);
    m.added.push_back({id, a.content, a.special, a.single_word, a.lstrip, a.rstrip, a.normalized});
    m.text[id] = a.content;
    m.kind[id] = a.special ? Impl::kSpecial : Impl::kAdded;
    auto b = io::from_byte_level(a.content);
    m.bytes[id] = b ? std::move(*b) : a.content;
    (a.normalized ? m.normalized_matcher : m.raw_matcher).add(a.content, static_cast<int32_t>(i));
  }
  for (const auto& v : t.vocab) m.text_to_id.emplace(v.token, static_cast<int32_t>(v.id));
  for (const auto& a : t.added_tokens) {
    m.text_to_id.insert_or_assign(a.content, static_cast<int32_t>(a.id));  // added tokens win
  }

  // The model: initial symbols and merges.
  m.byte_fallback = t.byte_fallback;
  m.fuse_unk = t.fuse_unk;
  m.ignore_merges = t.ignore_merges;
  m.unk_token = t.unk_token;
  if (t.unk_token) {
    if (auto it = model_id.find(*t.unk_token); it != model_id.end()) m.unk_id = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = model_id.find(io::byte_level_char(static_cast<uint8_t>(b)));
    if (it == model_id.end() && t.byte_fallback) it = model_id.find(fmt::format("<0x{:02X}>", b));
    m.byte_id[b] = it == model_id.end() ? -1 : it->second;
  }
  m.merges = t.merges;
  m.merge_table.reserve(t.merges.size());
  std::string joined;
  for (size_t rank = 0; rank < t.merges.size(); ++rank) {
    const auto& [a, b] = t.merges[rank];
    joined = a;
    joined += b;
    const auto ia = model_id.find(a), ib = model_id.find(b), ij = model_id.find(joined);
    if (ia == model_id.end() || ib == model_id.end() || ij == model_id.end()) {
      throw corrupt(where, "merge {} ('{} {}') joins or makes a token not in the vocabulary", rank,
                    a, b);
    }
    m.merge_table.set(ia->second, ib->second, {static_cast<uint32_t>(rank), ij->second});
  }

  for (int32_t id : m.prefix_ids) {
    if (id >= m.vocab_size || m.kind[id] == Impl::kNone) {
      throw corrupt(where, "post-processor adds token id {}, which is not in the vocabulary", id);
    }
  }
  for (int32_t id : m.suffix_ids) {
    if (id >= m.vocab_size || m.kind[id] == Impl::kNone) {
      throw corrupt(where, "post-processor adds token id {}, which is not in the vocabulary", id);
    }
  }

  m.bos_token = t.bos_token;
  m.eos_token = t.eos_token;
  auto lookup = [&](const std::optional<std::string>& name) -> std::optional<int32_t> {
    if (!name) return std::nullopt;
    auto it = m.text_to_id.find(*name);
    if (it == m.text_to_id.end()) return std::nullopt;
    return it->second;
  };
  m.bos = lookup(t.bos_token);
  m.eos = lookup(t.eos_token);
  m.chat_template = t.chat_template.value_or("");
  return BpeTokenizer(std::move(impl));
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  encode_append(text, add_special_tokens, out);
  return out;
}

void BpeTokenizer::encode_append(std::string_view text, bool add_special_tokens,
                                 std::vector<int32_t>& out) const {
  const Impl& m = *impl_;
  WordCache& cache = word_cache_for(m.serial);
  if (add_special_tokens) out.insert(out.end(), m.prefix_ids.begin(), m.prefix_ids.end());
  m.encode_text(text, cache, out);
  if (add_special_tokens) out.insert(out.end(), m.suffix_ids.begin(), m.suffix_ids.end());
}

void BpeTokenizer::pre_tokenize(std::string_view text,
                                const std::function<void(std::string_view)>& word) const {
  const Impl& m = *impl_;
  auto plain = [&](std::string_view piece) {
    for_each_utf8_run(piece, [&](std::string_view run, bool valid) {
      if (valid) {
        m.pre_tokenize(0, run, word);
      } else {
        word(run);
      }
    });
  };
  m.split_added(
      text, m.raw_matcher,
      [&](size_t s, size_t e) {
        const std::string_view piece = text.substr(s, e - s);
        m.split_added(
            piece, m.normalized_matcher,
            [&](size_t s2, size_t e2) { plain(piece.substr(s2, e2 - s2)); }, [](int32_t) {});
      },
      [](int32_t) {});
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  const Impl& m = *impl_;
  m.encode_word(word, word_cache_for(m.serial), out);
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || id >= m.vocab_size || m.kind[id] == Impl::kNone) continue;
    if (skip_special_tokens && m.kind[id] == Impl::kSpecial) continue;
    out += m.bytes[id];
  }
  return out;
}

int32_t BpeTokenizer::vocab_size() const {
  return impl_->vocab_size;
}

std::optional<int32_t> BpeTokenizer::token_id(std::string_view token_text) const {
  auto it = impl_->text_to_id.find(token_text);
  if (it == impl_->text_to_id.end()) return std::nullopt;
  return it->second;
}

const std::string& BpeTokenizer::token_text(int32_t id) const {
  if (id < 0 || id >= impl_->vocab_size) return impl_->empty_string();
  return impl_->text[id];
}

std::optional<int32_t> BpeTokenizer::bos_id() const {
  return impl_->bos;
}
std::optional<int32_t> BpeTokenizer::eos_id() const {
  return impl_->eos;
}
const std::string& BpeTokenizer::chat_template() const {
  return impl_->chat_template;
}
size_t BpeTokenizer::merge_count() const {
  return impl_->merges.size();
}

bool BpeTokenizer::is_special(int32_t id) const {
  return id >= 0 && id < impl_->vocab_size && impl_->kind[id] == Impl::kSpecial;
}

// ---- saving -------------------------------------------------------------------------------------

namespace {

std::string json_string(std::string_view s) {
  return json::Value(std::string(s)).dump();
}

std::string component(const std::string& minified) {
  return minified.empty() ? "null" : minified;
}

// The text of tokenizer.json.
std::string tokenizer_json_text(const BpeTokenizer::Impl& m) {
  std::string out;
  out.reserve(m.model_vocab.size() * 24 + m.merges.size() * 24 + 4096);
  out += "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n";
  out += "  \"added_tokens\": [";
  // The library gives each added token the id it has in the model vocabulary, or the next free id
  // after it, in this order; so they are written sorted by id.
  std::vector<const AddedTokenSpec*> added;
  for (const auto& a : m.added) added.push_back(&a);
  std::sort(added.begin(), added.end(),
            [](const AddedTokenSpec* a, const AddedTokenSpec* b) { return a->id < b->id; });
  for (size_t i = 0; i < added.size(); ++i) {
    const auto& a = *added[i];
    out += fmt::format(
        "{}\n    {{\"id\": {}, \"content\": {}, \"single_word\": {}, \"lstrip\": {}, "
        "\"rstrip\": {}, \"normalized\": {}, \"special\": {}}}",
        i == 0 ? "" : ",", a.id, json_string(a.content), a.single_word, a.lstrip, a.rstrip,
        a.normalized, a.special);
  }
  out += added.empty() ? "],\n" : "\n  ],\n";
  out += "  \"normalizer\": " + component(m.normalizer_json) + ",\n";
  out += "  \"pre_tokenizer\": " + component(m.pre_tokenizer_json) + ",\n";
  out += "  \"post_processor\": " + component(m.post_processor_json) + ",\n";
  out += "  \"decoder\": " + component(m.decoder_json) + ",\n";
  out += "  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n";
  out += "    \"unk_token\": " + (m.unk_token ? json_string(*m.unk_token) : std::string("null")) +
         ",\n";
  out += "    \"continuing_subword_prefix\": null,\n    \"end_of_word_suffix\": null,\n";
  out += fmt::format("    \"fuse_unk\": {},\n    \"byte_fallback\": {},\n", m.fuse_unk,
                     m.byte_fallback);
  out += fmt::format("    \"ignore_merges\": {},\n    \"vocab\": {{", m.ignore_merges);
  for (size_t i = 0; i < m.model_vocab.size(); ++i) {
    out += i == 0 ? "\n      " : ",\n      ";
    out += json_string(m.model_vocab[i].token);
    out += ": ";
    out += std::to_string(m.model_vocab[i].id);
  }
  out += "\n    },\n    \"merges\": [";
  // "a b" strings are read by every version of the library; the [a, b] form (tokenizers >= 0.20)
  // only where a token holds a space, which byte-level tokens never do.
  const bool pairs = std::any_of(m.merges.begin(), m.merges.end(), [](const auto& mg) {
    return mg.first.find(' ') != std::string::npos || mg.second.find(' ') != std::string::npos;
  });
  for (size_t i = 0; i < m.merges.size(); ++i) {
    out += i == 0 ? "\n      " : ",\n      ";
    if (pairs) {
      out += '[';
      out += json_string(m.merges[i].first);
      out += ", ";
      out += json_string(m.merges[i].second);
      out += ']';
    } else {
      out += json_string(m.merges[i].first + " " + m.merges[i].second);
    }
  }
  out += "\n    ]\n  }\n}\n";
  return out;
}

// The text of tokenizer_config.json.
std::string tokenizer_config_text(const BpeTokenizer::Impl& m) {
  json::Value config = json::Value::object();
  config["tokenizer_class"] = "PreTrainedTokenizerFast";
  config["clean_up_tokenization_spaces"] = false;
  if (m.bos_token) config["bos_token"] = *m.bos_token;
  if (m.eos_token) config["eos_token"] = *m.eos_token;
  if (!m.chat_template.empty()) config["chat_template"] = m.chat_template;
  return config.dump(2) + "\n";
}

}  // namespace

void BpeTokenizer::save(const std::filesystem::path& dir) const {
  write_file_atomically(dir / "tokenizer.json", tokenizer_json_text(*impl_));
  write_file_atomically(dir / "tokenizer_config.json", tokenizer_config_text(*impl_));
}

io::Tokenizer BpeTokenizer::describe() const {
  io::Tokenizer t = io::parse_tokenizer_json(tokenizer_json_text(*impl_), "tokenizer.json");
  io::apply_tokenizer_config(t, tokenizer_config_text(*impl_), "tokenizer_config.json");
  return t;
}

}  // namespace referee::engine
