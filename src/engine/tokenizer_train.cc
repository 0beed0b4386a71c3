// Byte-level BPE training (train_bpe, declared in tokenizer.h).
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "engine/tokenizer.h"
#include "io/byte_level.h"
#include "util/error.h"
#include "util/strings.h"
#include "util/json.h"
#include "util/utf8.h"

namespace referee::engine {
namespace {

using OrderedJson = nlohmann::ordered_json;

constexpr std::string_view kWhere = "BPE training";

// Bytes in GPT-2's byte-to-character order: printable Latin-1 first, then the rest. Token ids of
// the 256 byte tokens follow this order, as in GPT-2 and Llama 3 ("!" is 0, "Ġ" is 220).
std::array<uint8_t, 256> bytes_in_gpt2_order() {
  std::array<uint8_t, 256> order{};
  int n = 0;
  auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  };
  for (int b = 0; b < 256; ++b) {
    if (printable(b)) order[n++] = static_cast<uint8_t>(b);
  }
  for (int b = 0; b < 256; ++b) {
    if (!printable(b)) order[n++] = static_cast<uint8_t>(b);
  }
  return order;
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t left_of(uint64_t key) {
  return static_cast<int32_t>(key >> 32);
}
int32_t right_of(uint64_t key) {
  return static_cast<int32_t>(key & 0xffffffffu);
}

// The tokenizer.json components of a trained tokenizer: Llama 3's layout.
io::Tokenizer describe(const BpeTrainingOptions& o, const std::vector<std::string>& token_bytes,
                       const std::vector<std::pair<int32_t, int32_t>>& merges) {
  io::Tokenizer t;
  t.source = "tokenizer.json";
  t.model_type = "BPE";
  t.byte_level = true;
  t.vocab.reserve(token_bytes.size());
  for (size_t id = 0; id < token_bytes.size(); ++id) {
    t.vocab.push_back({io::to_byte_level(token_bytes[id]), static_cast<int64_t>(id)});
  }
  t.merges.reserve(merges.size());
  for (const auto& [a, b] : merges) t.merges.emplace_back(t.vocab[a].token, t.vocab[b].token);
  // Special tokens follow the model vocabulary without a gap: the tokenizers library numbers
  // added tokens that are not in the vocabulary from its size upward, in this order.
  int64_t next_id = static_cast<int64_t>(token_bytes.size());
  for (const auto& s : o.special_tokens) {
    io::AddedToken a;
    a.id = next_id++;
    a.content = s;
    a.special = true;
    t.added_tokens.push_back(std::move(a));
  }

  OrderedJson split = {{"type", "Split"},
                       {"pattern", {{"Regex", o.pre_tokenizer_regex}}},
                       {"behavior", "Isolated"},
                       {"invert", false}};
  OrderedJson byte_level = {{"type", "ByteLevel"},
                            {"add_prefix_space", false},
                            {"trim_offsets", true},
                            {"use_regex", false}};
  t.pre_tokenizer_json =
      OrderedJson{{"type", "Sequence"}, {"pretokenizers", {split, byte_level}}}.dump();
  t.pre_tokenizer = "Sequence[Split, ByteLevel]";
  t.split_patterns = {o.pre_tokenizer_regex};
  t.decoder_json = OrderedJson{
      {"type", "ByteLevel"},
      {"add_prefix_space", true},
      {"trim_offsets", true},
      {"use_regex",
       true}}.dump();
  OrderedJson post = {{"type", "ByteLevel"},
                      {"add_prefix_space", true},
                      {"trim_offsets", false},
                      {"use_regex", true}};
  if (!o.bos_token.empty()) {
    // As Llama 3: add_special_tokens puts the BOS token before the text.
    const auto it = std::find(o.special_tokens.begin(), o.special_tokens.end(), o.bos_token);
    const int64_t bos_id = static_cast<int64_t>(token_bytes.size()) +
                           static_cast<int64_t>(it - o.special_tokens.begin());
    auto special = [&](int type_id) {
      return OrderedJson{{"SpecialToken", {{"id", o.bos_token}, {"type_id", type_id}}}};
    };
    auto sequence = [](const char* id, int type_id) {
      return OrderedJson{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
    };
    OrderedJson specials = OrderedJson::object();
    specials[o.bos_token] = {{"id", o.bos_token},
                             {"ids", OrderedJson::array({bos_id})},
                             {"tokens", OrderedJson::array({o.bos_token})}};
    OrderedJson templ = {{"type", "TemplateProcessing"},
                         {"single", {special(0), sequence("A", 0)}},
                         {"pair", {special(0), sequence("A", 0), special(1), sequence("B", 1)}},
                         {"special_tokens", specials}};
    post = OrderedJson{{"type", "Sequence"}, {"processors", {post, templ}}};
  }
  t.post_processor_json = post.dump();
  if (!o.bos_token.empty()) t.bos_token = o.bos_token;
  if (!o.eos_token.empty()) t.eos_token = o.eos_token;
  if (!o.chat_template.empty()) t.chat_template = o.chat_template;
  return t;
}

void check_options(const BpeTrainingOptions& o) {
  for (size_t i = 0; i < o.special_tokens.size(); ++i) {
    const auto& s = o.special_tokens[i];
    if (s.empty() || !is_valid_utf8(s)) {
      throw invalid_argument(kWhere, "special token {} is empty or not UTF-8", i);
    }
    if (std::find(o.special_tokens.begin(), o.special_tokens.begin() + i, s) !=
        o.special_tokens.begin() + i) {
      throw invalid_argument(kWhere, "special token '{}' is listed twice", s);
    }
  }
  const int64_t minimum = 256 + static_cast<int64_t>(o.special_tokens.size());
  if (o.vocab_size < minimum) {
    throw invalid_argument(kWhere,
                           "vocab_size {} is below the 256 byte tokens plus {} special tokens",
                           o.vocab_size, o.special_tokens.size());
  }
  if (o.vocab_size - 1 > io::kMaxTokenId) {
    throw invalid_argument(kWhere, "vocab_size {} is above the largest supported {}", o.vocab_size,
                           io::kMaxTokenId + 1);
  }
  if (o.min_pair_count < 1) {
    throw invalid_argument(kWhere, "min_pair_count must be at least 1, not {}", o.min_pair_count);
  }
  for (const auto* name : {&o.bos_token, &o.eos_token}) {
    if (!name->empty() && std::find(o.special_tokens.begin(), o.special_tokens.end(), *name) ==
                              o.special_tokens.end()) {
      throw invalid_argument(kWhere, "bos/eos token '{}' is not one of the special tokens", *name);
    }
  }
  if (!is_valid_utf8(o.chat_template) || !is_valid_utf8(o.pre_tokenizer_regex)) {
    throw invalid_argument(kWhere, "the chat template and the split pattern must be UTF-8");
  }
}

// Pair counts over all words, updated as merges rewrite the words, with an index from each pair
// to the words that held it when it was counted (entries go stale; a merge scans and skips them).
class PairStatistics {
 public:
  void add(uint64_t pair, int64_t delta, int32_t word) {
    auto& c = counts_[pair];
    c += delta;
    if (delta > 0) {
      auto& w = where_[pair];
      if (w.empty() || w.back() != word) w.push_back(word);
    }
    if (c == 0) counts_.erase(pair);
  }
  int64_t count(uint64_t pair) const {
    auto it = counts_.find(pair);
    return it == counts_.end() ? 0 : it->second;
  }
  std::vector<int32_t> take_words(uint64_t pair) {
    auto it = where_.find(pair);
    if (it == where_.end()) return {};
    std::vector<int32_t> words = std::move(it->second);
    where_.erase(it);
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    return words;
  }
  const std::unordered_map<uint64_t, int64_t>& counts() const { return counts_; }
  void reserve(size_t n) {
    counts_.reserve(n);
    where_.reserve(n);
  }

 private:
  std::unordered_map<uint64_t, int64_t> counts_;
  std::unordered_map<uint64_t, std::vector<int32_t>> where_;
};

struct Candidate {
  int64_t count;
  uint64_t pair;
  // priority_queue pops the largest: the higher count, then the smaller (left, right) ids.
  bool operator<(const Candidate& o) const {
    return count != o.count ? count < o.count : pair > o.pair;
  }
};

// The distinct words of a corpus, each as a sequence of token ids, with how often it occurs.
struct WordTable {
  std::vector<std::vector<int32_t>> symbols;
  std::vector<int64_t> counts;
};

// Counts the words `front` makes of `texts` (its added tokens cut out first) and turns each into
// its initial symbols with segment(word bytes, symbols). Words are sorted, so their indices (and
// everything after) do not depend on hash-table order or on the order of the texts.
WordTable count_words(const BpeTokenizer& front, std::span<const std::string> texts,
                      const std::function<void(std::string_view, std::vector<int32_t>&)>& segment) {
  std::unordered_map<std::string, int64_t, TransparentStringHash, std::equal_to<>> word_counts;
  for (const auto& text : texts) {
    front.pre_tokenize(text, [&](std::string_view w) {
      if (auto it = word_counts.find(w); it != word_counts.end()) {
        ++it->second;
      } else {
        word_counts.emplace(std::string(w), 1);
      }
    });
  }
  std::vector<std::pair<std::string, int64_t>> sorted(word_counts.begin(), word_counts.end());
  word_counts = {};
  std::sort(sorted.begin(), sorted.end());
  WordTable table;
  table.symbols.resize(sorted.size());
  table.counts.resize(sorted.size());
  for (size_t w = 0; w < sorted.size(); ++w) {
    table.counts[w] = sorted[w].second;
    table.symbols[w].reserve(sorted[w].first.size());
    segment(sorted[w].first, table.symbols[w]);
  }
  return table;
}

// What the pair chosen for merging becomes: the id of the token it makes and whether that token is
// new, or id -1 when the pair must not be merged.
struct MergeOutcome {
  int32_t id = -1;
  bool fresh = false;
};

// The BPE loop: repeatedly merges the most frequent adjacent pair of `words` (ties to the smaller
// (left, right) ids) until `wanted` new tokens are made or no pair reaches min_pair_count.
// make(a, b) names the token each chosen pair makes; a pair it refuses is set aside for good and
// the next one is tried. Returns the merges in the order learnt.
std::vector<std::pair<int32_t, int32_t>> learn_merges(
    WordTable& words, int64_t wanted, int64_t min_pair_count,
    const std::function<MergeOutcome(int32_t, int32_t)>& make,
    const std::function<void(int64_t, int64_t)>& progress) {
  PairStatistics stats;
  stats.reserve(words.symbols.size() * 2);
  for (size_t w = 0; w < words.symbols.size(); ++w) {
    const auto& symbols = words.symbols[w];
    for (size_t i = 0; i + 1 < symbols.size(); ++i) {
      stats.add(pair_key(symbols[i], symbols[i + 1]), words.counts[w], static_cast<int32_t>(w));
    }
  }
  std::priority_queue<Candidate> queue;
  for (const auto& [pair, count] : stats.counts()) {
    if (count >= min_pair_count) queue.push({count, pair});
  }

  std::vector<std::pair<int32_t, int32_t>> merges;
  std::unordered_set<uint64_t> refused;
  std::vector<uint64_t> touched;
  int64_t made = 0;
  while (made < wanted && !queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    const int64_t current = stats.count(top.pair);
    if (current != top.count) {  // stale: counts only fall, so re-queue with the true count
      if (current >= min_pair_count) queue.push({current, top.pair});
      continue;
    }
    if (refused.contains(top.pair)) continue;
    const int32_t a = left_of(top.pair), b = right_of(top.pair);
    const MergeOutcome outcome = make(a, b);
    if (outcome.id < 0) {
      refused.insert(top.pair);
      continue;
    }
    const int32_t c = outcome.id;
    made += outcome.fresh ? 1 : 0;
    merges.emplace_back(a, b);

    // Rewrite every word holding the pair, as the tokenizers library's Word::merge does: the
    // pairs around each occurrence lose a count and the pairs with the new token gain one.
    touched.clear();
    for (int32_t w : stats.take_words(top.pair)) {
      auto& s = words.symbols[w];
      const int64_t n = words.counts[w];
      size_t out = 0;
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          if (out > 0) {
            stats.add(pair_key(s[out - 1], a), -n, w);
            stats.add(pair_key(s[out - 1], c), n, w);
            touched.push_back(pair_key(s[out - 1], c));
          }
          stats.add(top.pair, -n, w);
          if (i + 2 < s.size()) {
            stats.add(pair_key(b, s[i + 2]), -n, w);
            stats.add(pair_key(c, s[i + 2]), n, w);
            touched.push_back(pair_key(c, s[i + 2]));
          }
          s[out++] = c;
          i += 2;
        } else {
          s[out++] = s[i++];
        }
      }
      s.resize(out);
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t pair : touched) {
      const int64_t count = stats.count(pair);
      if (count >= min_pair_count) queue.push({count, pair});
    }
    if (progress && merges.size() % 64 == 0) {
      progress(static_cast<int64_t>(merges.size()), wanted);
    }
  }
  if (progress) progress(static_cast<int64_t>(merges.size()), wanted);
  return merges;
}

}  // namespace

BpeTokenizer train_bpe(std::span<const std::string> texts, const BpeTrainingOptions& options) {
  check_options(options);
  const auto order = bytes_in_gpt2_order();
  std::array<int32_t, 256> byte_token{};
  std::vector<std::string> token_bytes(256);
  for (int id = 0; id < 256; ++id) {
    token_bytes[id] = std::string(1, static_cast<char>(order[id]));
    byte_token[order[id]] = id;
  }

  // Words and their counts, through the very pre-tokenizer (and special-token matching) the
  // trained tokenizer will use.
  const BpeTokenizer front =
      BpeTokenizer::from_io(describe(options, token_bytes, {}), std::string(kWhere));
  WordTable words =
      count_words(front, texts, [&](std::string_view word, std::vector<int32_t>& symbols) {
        for (unsigned char b : word) symbols.push_back(byte_token[b]);
      });

  const auto target_tokens =
      static_cast<size_t>(options.vocab_size) - options.special_tokens.size();
  std::unordered_map<std::string, int32_t> id_of_bytes;
  for (int32_t id = 0; id < 256; ++id) id_of_bytes.emplace(token_bytes[id], id);
  const auto merges = learn_merges(
      words, static_cast<int64_t>(target_tokens - 256), options.min_pair_count,
      [&](int32_t a, int32_t b) {
        std::string joined = token_bytes[a] + token_bytes[b];
        if (auto it = id_of_bytes.find(joined); it != id_of_bytes.end()) {
          // Another pair already made these bytes: the merge is kept, no new token.
          return MergeOutcome{it->second, false};
        }
        const auto c = static_cast<int32_t>(token_bytes.size());
        id_of_bytes.emplace(joined, c);
        token_bytes.push_back(std::move(joined));
        return MergeOutcome{c, true};
      },
      options.progress);
  return BpeTokenizer::from_io(describe(options, token_bytes, merges), std::string(kWhere));
}

// ---- extension ----------------------------------------------------------------------------------

namespace {

constexpr std::string_view kExtendWhere = "BPE extension";

}  // namespace

BpeTokenizer extend_bpe(const BpeTokenizer& base, std::span<const std::string> texts,
                        const BpeExtensionOptions& options) {
  if (options.added_tokens < 0) {
    throw invalid_argument(kExtendWhere, "added_tokens must not be negative, not {}",
                           options.added_tokens);
  }
  if (options.min_pair_count < 1) {
    throw invalid_argument(kExtendWhere, "min_pair_count must be at least 1, not {}",
                           options.min_pair_count);
  }
  io::Tokenizer d = base.describe();

  // Base's spellings (vocabulary keys and added-token contents) and the bytes of its model tokens.
  std::unordered_map<std::string, int64_t> spelled;
  spelled.reserve(d.vocab.size() + d.added_tokens.size() +
                  static_cast<size_t>(options.added_tokens));
  for (const auto& v : d.vocab) spelled.emplace(v.token, v.id);
  if (d.byte_fallback) {
    throw invalid_argument(kExtendWhere,
                           "the base tokenizer falls back to <0xNN> byte tokens: it is not "
                           "byte-level BPE, which is all that can be extended");
  }
  for (int b = 0; b < 256; ++b) {
    if (!spelled.contains(io::byte_level_char(static_cast<uint8_t>(b)))) {
      throw invalid_argument(kExtendWhere,
                             "the base tokenizer has no model token for byte 0x{:02x}: it is not "
                             "byte-level BPE, which is all that can be extended",
                             b);
    }
  }
  for (const auto& a : d.added_tokens) spelled.emplace(a.content, a.id);
  for (size_t i = 0; i < options.extra_special_tokens.size(); ++i) {
    const auto& s = options.extra_special_tokens[i];
    if (s.empty() || !is_valid_utf8(s)) {
      throw invalid_argument(kExtendWhere, "extra special token {} is empty or not UTF-8", i);
    }
    if (auto it = spelled.find(s); it != spelled.end()) {
      throw invalid_argument(kExtendWhere, "extra special token '{}' is already token {}", s,
                             it->second);
    }
    const auto& all = options.extra_special_tokens;
    if (std::find(all.begin(), all.begin() + i, s) != all.begin() + i) {
      throw invalid_argument(kExtendWhere, "extra special token '{}' is listed twice", s);
    }
  }
  const int64_t max_id = d.max_id();
  if (max_id + options.added_tokens + static_cast<int64_t>(options.extra_special_tokens.size()) >
      io::kMaxTokenId) {
    throw invalid_argument(kExtendWhere, "ids would pass the largest supported {}",
                           io::kMaxTokenId);
  }
  for (const auto& s : options.extra_special_tokens) spelled.emplace(s, -1);

  std::vector<std::string> token_bytes(static_cast<size_t>(max_id + 1));
  for (const auto& v : d.vocab) {
    if (auto b = io::from_byte_level(v.token)) token_bytes[v.id] = std::move(*b);
  }

  // Words as base segments them; base's added tokens and the extra special tokens are cut out of
  // the text first (the extra ones through a copy of base that knows them).
  std::optional<BpeTokenizer> with_extras;
  if (!options.extra_special_tokens.empty()) {
    io::Tokenizer f = d;
    int64_t id = max_id;
    for (const auto& s : options.extra_special_tokens) {
      io::AddedToken a;
      a.id = ++id;
      a.content = s;
      a.special = true;
      f.added_tokens.push_back(std::move(a));
    }
    with_extras = BpeTokenizer::from_io(f, std::string(kExtendWhere));
  }
  const BpeTokenizer& front = with_extras ? *with_extras : base;
  WordTable words =
      count_words(front, texts, [&](std::string_view word, std::vector<int32_t>& symbols) {
        front.encode_word(word, symbols);
      });

  // Every merge makes a new token; a pair whose bytes some token already spells is refused (see
  // the header: reusing it could bring base pairs back and let text produce added-token ids).
  const auto merges = learn_merges(
      words, options.added_tokens, options.min_pair_count,
      [&](int32_t a, int32_t b) {
        std::string joined = token_bytes[a] + token_bytes[b];
        std::string spelling = io::to_byte_level(joined);
        if (spelled.contains(spelling)) return MergeOutcome{};
        const auto c = static_cast<int32_t>(token_bytes.size());
        spelled.emplace(std::move(spelling), c);
        token_bytes.push_back(std::move(joined));
        return MergeOutcome{c, true};
      },
      options.progress);

  // The extended description: base's, plus the new tokens and merges, plus the extra specials.
  io::Tokenizer e = std::move(d);
  std::unordered_set<int64_t> model_ids;
  std::unordered_set<std::string_view> model_spellings;
  for (const auto& v : e.vocab) model_ids.insert(v.id), model_spellings.insert(v.token);
  std::vector<io::VocabEntry> listed;  // added tokens that model.vocab must list (see the header)
  for (const auto& a : e.added_tokens) {
    // An added token spelled like a model token with another id is base's own inconsistency; the
    // library gives it the model token's id in base too, so it is left as it is.
    if (!model_ids.contains(a.id) && !model_spellings.contains(a.content)) {
      listed.push_back({a.content, a.id});
    }
  }
  for (size_t id = static_cast<size_t>(max_id) + 1; id < token_bytes.size(); ++id) {
    listed.push_back({io::to_byte_level(token_bytes[id]), static_cast<int64_t>(id)});
  }
  int64_t next_id = static_cast<int64_t>(token_bytes.size());
  for (const auto& s : options.extra_special_tokens) {
    io::AddedToken a;
    a.id = next_id++;
    a.content = s;
    a.special = true;
    listed.push_back({a.content, a.id});
    e.added_tokens.push_back(std::move(a));
  }
  e.vocab.insert(e.vocab.end(), listed.begin(), listed.end());
  std::sort(e.vocab.begin(), e.vocab.end(),
            [](const io::VocabEntry& x, const io::VocabEntry& y) { return x.id < y.id; });
  e.merges.reserve(e.merges.size() + merges.size());
  for (const auto& [a, b] : merges) {
    e.merges.emplace_back(io::to_byte_level(token_bytes[a]), io::to_byte_level(token_bytes[b]));
  }
  return BpeTokenizer::from_io(e, std::string(kExtendWhere));
}

}  // namespace referee::engine
