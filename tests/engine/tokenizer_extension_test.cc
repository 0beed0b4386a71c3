// Extending a byte-level BPE tokenizer with new merges (extend_bpe), as Llama 3's tokenizer grew
// out of cl100k: every base token keeps its id, every base merge its rank, the new merges are
// those of BPE training resumed from the base's segmentation, and the result is a standard
// tokenizer.json that io, the engine and the Hugging Face tokenizers library read and encode alike.
// Bases: a tokenizer trained here on the bundled corpus's English Debian FAQ (extended with its
// Korean translation), and the real cl100k and Llama 3 tokenizers from the npm fixture.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>

#include "engine/tokenizer.h"
#include "io/byte_level.h"
#include "io/tokenizer.h"
#include "testing/helpers.h"
#include "testing/tokenizer_library.h"
#include "util/error.h"

namespace referee::engine {
namespace {
namespace fs = std::filesystem;
using Ids = std::vector<int32_t>;
using testing::TempDir;

// A corpus file cut into documents of `lines` lines each (newlines kept), up to about `max_bytes`
// (whole lines only, so every document is valid UTF-8).
std::vector<std::string> corpus_documents(const std::string& relative, size_t lines = 20,
                                          size_t max_bytes = SIZE_MAX) {
  const std::string text = testing::read_text(testing::source_dir() / "data/corpus" / relative);
  std::vector<std::string> docs(1);
  size_t in_doc = 0;
  for (size_t start = 0; start < text.size() && start < max_bytes;) {
    size_t end = text.find('\n', start);
    end = end == std::string::npos ? text.size() : end + 1;
    docs.back().append(text, start, end - start);
    start = end;
    if (++in_doc == lines) {
      docs.emplace_back();
      in_doc = 0;
    }
  }
  if (docs.back().empty()) docs.pop_back();
  return docs;
}

BpeTrainingOptions english_options() {
  BpeTrainingOptions o;
  o.vocab_size = 1000;
  o.bos_token = "<|begin_of_text|>";
  o.eos_token = "<|eot_id|>";
  o.chat_template =
      "{{ bos_token }}{% for m in messages %}{{ m['content'] }}<|eot_id|>{% endfor %}";
  return o;
}

// Trained on English only: no Hangul syllable is a token.
const BpeTokenizer& english_base() {
  static const BpeTokenizer t = train_bpe(corpus_documents("en/debian-faq.txt"), english_options());
  return t;
}

const std::vector<std::string>& korean_texts() {
  static const auto docs = corpus_documents("ko/debian-faq.txt", 4);
  return docs;
}

BpeExtensionOptions extension_options(int32_t added) {
  BpeExtensionOptions o;
  o.added_tokens = added;
  return o;
}

// The English base grown by 600 tokens learnt on the Korean FAQ.
const BpeTokenizer& korean_extension() {
  static const BpeTokenizer t = extend_bpe(english_base(), korean_texts(), extension_options(600));
  return t;
}

std::vector<std::string> tokenizer_sample_texts() {
  std::vector<std::string> texts;
  const std::string sample =
      testing::read_text(testing::source_dir() / "tests/engine/tokenizer_sample.txt");
  for (size_t start = 0; start < sample.size();) {
    size_t end = sample.find("\n=====\n", start);
    if (end == std::string::npos) end = sample.size();
    texts.push_back(sample.substr(start, end - start));
    start = end + 7;
  }
  return texts;
}

// Held-out Korean and English text (the corpus's validation split).
std::vector<std::string> held_out_texts() {
  std::vector<std::string> texts = corpus_documents("valid/ko/debian-faq.txt", 10, 20000);
  for (auto& d : corpus_documents("valid/en/debian-faq.txt", 10, 8000)) texts.push_back(d);
  return texts;
}

// ---- what trace will compare
// ---------------------------------------------------------------------

struct Comparison {
  size_t base_entries = 0, identical_ids = 0;  // base model vocabulary entries, and those kept
  size_t added_kept = 0;                       // base added tokens with the same id and flags
  bool merges_are_prefix = false;              // base merge list is a prefix of the other's
  double identical_id_fraction() const {
    return base_entries == 0 ? 0.0 : static_cast<double>(identical_ids) / base_entries;
  }
};

Comparison compare(const io::Tokenizer& base, const io::Tokenizer& other) {
  Comparison c;
  std::map<std::string, int64_t> ids;
  for (const auto& v : other.vocab) ids.emplace(v.token, v.id);
  c.base_entries = base.vocab.size();
  for (const auto& v : base.vocab) {
    const auto it = ids.find(v.token);
    c.identical_ids += it != ids.end() && it->second == v.id;
  }
  for (const auto& a : base.added_tokens) {
    c.added_kept += std::any_of(
        other.added_tokens.begin(), other.added_tokens.end(), [&](const io::AddedToken& b) {
          return a.id == b.id && a.content == b.content && a.special == b.special &&
                 a.lstrip == b.lstrip && a.rstrip == b.rstrip && a.single_word == b.single_word &&
                 a.normalized == b.normalized;
        });
  }
  c.merges_are_prefix = base.merges.size() <= other.merges.size() &&
                        std::equal(base.merges.begin(), base.merges.end(), other.merges.begin());
  return c;
}

// What every extension must satisfy, whatever the base: ids, spellings, merge ranks and the
// pipeline kept; each new merge makes the next new id; nothing learnt twice.
void expect_extension_of(const BpeTokenizer& base, const BpeTokenizer& ext, size_t added,
                         const std::vector<std::string>& extra_specials = {}) {
  const io::Tokenizer b = base.describe(), e = ext.describe();
  const Comparison c = compare(b, e);
  EXPECT_EQ(c.identical_id_fraction(), 1.0);
  EXPECT_EQ(c.added_kept, b.added_tokens.size());
  EXPECT_TRUE(c.merges_are_prefix);
  const int32_t first_new = base.vocab_size();
  EXPECT_EQ(ext.vocab_size(), first_new + static_cast<int32_t>(added + extra_specials.size()));
  for (int32_t id = 0; id < first_new; ++id) {
    ASSERT_EQ(ext.token_text(id), base.token_text(id)) << "id " << id;
    ASSERT_EQ(ext.is_special(id), base.is_special(id)) << "id " << id;
  }
  ASSERT_EQ(e.merges.size(), b.merges.size() + added);
  std::set<std::string> spellings;
  for (size_t i = 0; i < added; ++i) {
    const auto& [left, right] = e.merges[b.merges.size() + i];
    const int32_t id = first_new + static_cast<int32_t>(i);
    ASSERT_EQ(ext.token_text(id), left + right) << "merge " << i;
    ASSERT_FALSE(ext.is_special(id));
    ASSERT_TRUE(io::from_byte_level(left + right).has_value());
    ASSERT_FALSE(base.token_id(left + right).has_value()) << left + right << " was a base token";
    ASSERT_TRUE(spellings.insert(left + right).second) << left + right << " made twice";
  }
  std::set<std::pair<std::string, std::string>> pairs;
  for (const auto& m : e.merges) ASSERT_TRUE(pairs.insert(m).second) << m.first << " " << m.second;
  for (size_t i = 0; i < extra_specials.size(); ++i) {
    const int32_t id = first_new + static_cast<int32_t>(added + i);
    EXPECT_EQ(ext.token_id(extra_specials[i]), id);
    EXPECT_TRUE(ext.is_special(id));
  }
  EXPECT_EQ(e.pre_tokenizer_json, b.pre_tokenizer_json);
  EXPECT_EQ(e.normalizer_json, b.normalizer_json);
  EXPECT_EQ(e.decoder_json, b.decoder_json);
  EXPECT_EQ(e.post_processor_json, b.post_processor_json);
  EXPECT_EQ(e.ignore_merges, b.ignore_merges);
  EXPECT_EQ(ext.chat_template(), base.chat_template());
  EXPECT_EQ(ext.bos_id(), base.bos_id());
  EXPECT_EQ(ext.eos_id(), base.eos_id());
}

// Saves `ext`, reads it back through io and BpeTokenizer::load, and has the tokenizers library
// encode `texts`: all must agree with `ext`, with and without the post-processor's tokens.
// (An added token spelled in byte-level characters decodes to the bytes they stand for, as in the
// library, so texts holding one do not round-trip: round_trip = false.)
void expect_everyone_agrees(const BpeTokenizer& ext, const std::vector<std::string>& texts,
                            bool dense_ids = true, bool round_trip = true) {
  TempDir dir;
  ext.save(dir.path());
  const io::Tokenizer parsed = io::read_tokenizer_dir(dir.path());
  EXPECT_EQ(parsed.max_id() + 1, ext.vocab_size());
  EXPECT_EQ(parsed.merges.size(), ext.merge_count());
  EXPECT_TRUE(parsed.warnings.empty());
  const auto again = BpeTokenizer::load(dir.path());
  const auto library = testing::library_encode(dir.path(), texts);
  ASSERT_EQ(library.ids.size(), texts.size());
  // The library counts the tokens it has, not the largest id + 1.
  if (dense_ids) {
    EXPECT_EQ(library.vocab_size, ext.vocab_size());
  }
  for (size_t i = 0; i < texts.size(); ++i) {
    SCOPED_TRACE(texts[i].substr(0, 60));
    const Ids ids = ext.encode(texts[i]);
    EXPECT_EQ(again.encode(texts[i]), ids);
    EXPECT_EQ(library.ids[i], ids);
    EXPECT_EQ(library.ids_special[i], ext.encode(texts[i], true));
    if (round_trip) {
      EXPECT_EQ(ext.decode(ids), texts[i]);
    }
  }
}

// ---- the textbook algorithm, resumed
// -------------------------------------------------------------

// BPE training resumed from `base`'s segmentation, recounting every pair of every word before each
// merge; a pair whose joined bytes some token already spells is set aside. Returns the merges (as
// vocabulary spellings) and each word's final symbols.
struct Resumed {
  std::vector<std::pair<std::string, std::string>> merges;
  std::map<std::string, Ids> segmentation;
};
Resumed resumed_bpe(const BpeTokenizer& base, const std::vector<std::string>& docs, size_t wanted,
                    int64_t min_count) {
  std::map<std::string, int64_t> word_counts;
  for (const auto& d : docs) {
    base.pre_tokenize(d, [&](std::string_view w) { ++word_counts[std::string(w)]; });
  }
  std::map<int32_t, std::string> bytes;
  std::set<std::string> spelled;
  const io::Tokenizer described = base.describe();
  for (const auto& v : described.vocab) {
    spelled.insert(v.token);
    if (auto b = io::from_byte_level(v.token)) bytes[static_cast<int32_t>(v.id)] = *b;
  }
  for (const auto& a : described.added_tokens) spelled.insert(a.content);
  std::vector<std::pair<Ids, int64_t>> words;
  for (const auto& [w, c] : word_counts) {
    Ids symbols;
    base.encode_word(w, symbols);
    words.emplace_back(std::move(symbols), c);
  }
  Resumed r;
  std::set<std::pair<int32_t, int32_t>> refused;
  int32_t next = base.vocab_size();
  while (r.merges.size() < wanted) {
    std::map<std::pair<int32_t, int32_t>, int64_t> counts;
    for (const auto& [symbols, c] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) counts[{symbols[i], symbols[i + 1]}] += c;
    }
    std::pair<int32_t, int32_t> best{-1, -1};
    int64_t best_count = 0;
    for (const auto& [pair, c] : counts) {  // ascending pairs: the first of a tie wins
      if (c > best_count && !refused.contains(pair)) best = pair, best_count = c;
    }
    if (best_count < min_count) break;
    const std::string joined = bytes.at(best.first) + bytes.at(best.second);
    if (!spelled.insert(io::to_byte_level(joined)).second) {
      refused.insert(best);
      continue;
    }
    r.merges.emplace_back(io::to_byte_level(bytes[best.first]),
                          io::to_byte_level(bytes[best.second]));
    const int32_t made = next++;
    bytes[made] = joined;
    for (auto& [symbols, c] : words) {
      Ids merged;
      for (size_t i = 0; i < symbols.size();) {
        if (i + 1 < symbols.size() && symbols[i] == best.first && symbols[i + 1] == best.second) {
          merged.push_back(made);
          i += 2;
        } else {
          merged.push_back(symbols[i++]);
        }
      }
      symbols = std::move(merged);
    }
  }
  size_t i = 0;
  for (const auto& [w, c] : word_counts) r.segmentation[w] = words[i++].first;
  return r;
}

// ---- tests
// ----------------------------------------------------------------------------------------

TEST(BpeExtension, EveryBaseTokenKeepsItsIdAndEveryMergeItsRank) {
  const auto& base = english_base();
  const auto& ext = korean_extension();
  ASSERT_EQ(base.vocab_size(), 1000);
  expect_extension_of(base, ext, 600);
  // The special tokens sit below the new tokens and keep their ids.
  for (const char* s : {"<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"}) {
    EXPECT_EQ(ext.token_id(s), base.token_id(s));
    EXPECT_LT(*ext.token_id(s), 1000);
  }
  EXPECT_EQ(ext.encode("<|eot_id|>"), Ids{*base.token_id("<|eot_id|>")});
  EXPECT_EQ(ext.encode("한국어", true).front(), *base.bos_id());
}

TEST(BpeExtension, TraceSeesIdenticalIdsAndAMergePrefix) {
  // As trace will: both tokenizers read from their saved directories with io.
  TempDir a, b;
  english_base().save(a.path());
  korean_extension().save(b.path());
  const io::Tokenizer base = io::read_tokenizer_dir(a.path());
  const io::Tokenizer ext = io::read_tokenizer_dir(b.path());
  const Comparison c = compare(base, ext);
  EXPECT_EQ(c.base_entries, 995u);
  EXPECT_EQ(c.identical_id_fraction(), 1.0);
  EXPECT_EQ(c.added_kept, 5u);
  EXPECT_TRUE(c.merges_are_prefix);
  EXPECT_EQ(ext.merges.size(), base.merges.size() + 600);
  EXPECT_EQ(ext.max_id(), base.max_id() + 600);
  // The other way round the relation is visible too: the base holds 1000/1600 of the extension's
  // ids, and its merges are not an extension of the extension's.
  const Comparison back = compare(ext, base);
  EXPECT_LT(back.identical_id_fraction(), 0.65);
  EXPECT_FALSE(back.merges_are_prefix);
  // What these two signals cannot tell apart: BPE training is greedy, so a tokenizer trained on
  // the same text with a larger vocabulary continues the smaller one just as an extension does.
  // Only the added tokens (moved above the new merges here) and the text the new merges were
  // learnt on differ.
  auto options = english_options();
  options.vocab_size = 1600;
  const auto larger = train_bpe(corpus_documents("en/debian-faq.txt"), options).describe();
  const Comparison same_text = compare(base, larger);
  EXPECT_EQ(same_text.identical_id_fraction(), 1.0);
  EXPECT_TRUE(same_text.merges_are_prefix);
  EXPECT_EQ(same_text.added_kept, 0u);
}

TEST(BpeExtension, KoreanTextOnAnEnglishTokenizerMakesHangulTokens) {
  const auto& base = english_base();
  const auto& ext = korean_extension();
  for (const char* piece : {"다", "니다", "습니다", "데비안", " 데비안", "패키지", " 있습니다"}) {
    SCOPED_TRACE(piece);
    const std::string spelling = io::to_byte_level(piece);
    EXPECT_FALSE(base.token_id(spelling).has_value());
    const auto id = ext.token_id(spelling);
    ASSERT_TRUE(id.has_value()) << "not a token";
    EXPECT_GE(*id, base.vocab_size());
    EXPECT_EQ(ext.encode(piece), Ids{*id});
  }
  // Held-out Korean text takes far fewer tokens; held-out English hardly changes.
  const auto ko = corpus_documents("valid/ko/debian-faq.txt", 1000000);
  const auto en = corpus_documents("valid/en/debian-faq.txt", 1000000);
  ASSERT_EQ(ko.size(), 1u);
  ASSERT_EQ(en.size(), 1u);
  const auto ko_base = base.encode(ko[0]).size(), ko_ext = ext.encode(ko[0]).size();
  const auto en_base = base.encode(en[0]).size(), en_ext = ext.encode(en[0]).size();
  EXPECT_LT(ko_ext * 2, ko_base) << ko_ext << " vs " << ko_base;
  EXPECT_LE(en_ext, en_base);
  EXPECT_GT(en_ext * 100, en_base * 97) << en_ext << " vs " << en_base;
  EXPECT_EQ(ext.decode(ext.encode(ko[0])), ko[0]);
}

// The English base with an added token spelled like the BPE token the Korean text makes early on
// (" 데비안" is "Ġëį°ë¹ĦìķĪ" in byte-level characters, which never occur as such in text).
const std::string& colliding_spelling() {
  static const std::string spelling = io::to_byte_level(" 데비안");
  return spelling;
}
BpeTokenizer base_with_colliding_added_token() {
  io::Tokenizer d = english_base().describe();
  io::AddedToken a;
  a.id = 1000;
  a.content = colliding_spelling();
  a.normalized = true;
  d.added_tokens.push_back(a);
  return BpeTokenizer::from_io(d);
}

TEST(BpeExtension, MergesAreThoseOfTextbookTrainingResumedFromTheBase) {
  ASSERT_GE(korean_texts().size(), 40u);
  std::vector<std::string> docs(korean_texts().begin(), korean_texts().begin() + 40);
  docs.push_back("aaaa aaa aaaaaaa abababab ababab \xff\xff\xfe \xe3\x81 \xe3\x81 zzz zzz zz");
  // Both bases: the second refuses the pair that would make its added token's spelling.
  for (const auto& base : {english_base(), base_with_colliding_added_token()}) {
    SCOPED_TRACE(base.vocab_size());
    const auto ext = extend_bpe(base, docs, extension_options(250));
    const Resumed expected = resumed_bpe(base, docs, 250, 2);
    ASSERT_EQ(expected.merges.size(), 250u);
    const io::Tokenizer e = ext.describe();
    ASSERT_EQ(e.merges.size(), base.merge_count() + 250);
    for (size_t i = 0; i < expected.merges.size(); ++i) {
      ASSERT_EQ(e.merges[base.merge_count() + i], expected.merges[i]) << "merge " << i;
    }
    // Encoding replays training: each word comes out as training left it, because the base
    // merges (all ranked first) rebuild the base's segmentation and each new merge made a new
    // token.
    for (const auto& [word, symbols] : expected.segmentation) {
      Ids ids;
      ext.encode_word(word, ids);
      ASSERT_EQ(ids, symbols) << word;
    }
  }
}

TEST(BpeExtension, BaseEncodingsChangeOnlyWhereANewMergeApplies) {
  const auto& base = english_base();
  const auto& ext = korean_extension();
  const io::Tokenizer e = ext.describe();
  std::set<std::pair<int32_t, int32_t>> new_pairs;
  for (size_t i = base.merge_count(); i < e.merges.size(); ++i) {
    new_pairs.insert({*ext.token_id(e.merges[i].first), *ext.token_id(e.merges[i].second)});
  }
  std::vector<std::string> texts = tokenizer_sample_texts();
  for (auto& t : held_out_texts()) texts.push_back(std::move(t));
  size_t same = 0, shorter = 0;
  for (const auto& text : texts) {
    base.pre_tokenize(text, [&](std::string_view word) {
      Ids before, after;
      base.encode_word(word, before);
      ext.encode_word(word, after);
      bool applies = false;
      for (size_t i = 0; i + 1 < before.size(); ++i) {
        applies |= new_pairs.contains({before[i], before[i + 1]});
      }
      if (applies) {
        ASSERT_LT(after.size(), before.size()) << word;
        ++shorter;
      } else {
        ASSERT_EQ(after, before) << word;
        ++same;
      }
    });
    EXPECT_LE(ext.encode(text).size(), base.encode(text).size());
  }
  EXPECT_GT(same, 1000u);
  EXPECT_GT(shorter, 300u);
  // Text made of pieces the Korean FAQ never showed encodes exactly as before.
  for (const char* text :
       {"日本語のテキストと中文", "Русский текст", "🙂👍🏽 ∑∫∂", "\xff\xfe\x80"}) {
    EXPECT_EQ(ext.encode(text), base.encode(text)) << text;
  }
}

TEST(BpeExtension, BaseIdsDecodeToTheSameBytes) {
  const auto& base = english_base();
  const auto& ext = korean_extension();
  Ids all;
  for (int32_t id = 0; id < base.vocab_size(); ++id) {
    all.push_back(id);
    const Ids one = {id};
    ASSERT_EQ(ext.decode(one), base.decode(one)) << id;
  }
  testing::SplitMix64 rng(5);
  for (int i = 0; i < 2000; ++i) all.push_back(static_cast<int32_t>(rng.next() % 1000));
  EXPECT_EQ(ext.decode(all), base.decode(all));
  EXPECT_EQ(ext.decode(all, true), base.decode(all, true));
}

TEST(BpeExtension, IsDeterministic) {
  TempDir a, b, c;
  korean_extension().save(a.path());
  extend_bpe(english_base(), korean_texts(), extension_options(600)).save(b.path());
  EXPECT_EQ(testing::read_text(a / "tokenizer.json"), testing::read_text(b / "tokenizer.json"));
  EXPECT_EQ(testing::read_text(a / "tokenizer_config.json"),
            testing::read_text(b / "tokenizer_config.json"));
  // Counts, not the order of the texts, decide.
  auto shuffled = korean_texts();
  std::reverse(shuffled.begin(), shuffled.end());
  extend_bpe(english_base(), shuffled, extension_options(600)).save(c.path());
  EXPECT_EQ(testing::read_text(a / "tokenizer.json"), testing::read_text(c / "tokenizer.json"));
}

TEST(BpeExtension, SavedTokenizerLoadsEverywhereAndEncodesIdentically) {
  std::vector<std::string> texts = tokenizer_sample_texts();
  for (auto& t : held_out_texts()) texts.push_back(std::move(t));
  expect_everyone_agrees(korean_extension(), texts);
}

TEST(BpeExtension, ExtraSpecialTokensFollowTheNewTokens) {
  auto options = extension_options(300);
  options.extra_special_tokens = {"<|im_start|>", "<|im_end|>"};
  // The new special tokens are cut out of the training text, as they will be when encoding.
  std::vector<std::string> docs = korean_texts();
  for (int i = 0; i < 500; ++i) docs.push_back("<|im_start|>데비안<|im_end|>");
  const auto ext = extend_bpe(english_base(), docs, options);
  expect_extension_of(english_base(), ext, 300, options.extra_special_tokens);
  EXPECT_FALSE(ext.token_id(io::to_byte_level("<|im_start|>데")).has_value());
  EXPECT_FALSE(ext.token_id(io::to_byte_level("|>데")).has_value());
  EXPECT_EQ(ext.encode("<|im_start|>데비안<|im_end|>"),
            (Ids{1300, *ext.token_id(io::to_byte_level("데비안")), 1301}));
  expect_everyone_agrees(ext,
                         {"<|im_start|>user\n데비안 패키지<|im_end|>", "<|im_end", "a<|im_end|>"});
}

TEST(BpeExtension, AMergeIntoAnAddedTokensSpellingIsNeverLearnt) {
  // The plain extension learns " 데비안"; a base with an added token of that spelling must not get
  // a second token spelled so, nor let text produce the added token through merges.
  const std::string& spelling = colliding_spelling();
  ASSERT_TRUE(korean_extension().token_id(spelling).has_value());
  const auto base = base_with_colliding_added_token();
  ASSERT_EQ(base.token_id(spelling), 1000);

  const auto ext = extend_bpe(base, korean_texts(), extension_options(600));
  expect_extension_of(base, ext, 600);
  EXPECT_EQ(ext.token_id(spelling), 1000);  // still the added token, and no second token
  const io::Tokenizer e = ext.describe();
  EXPECT_EQ(std::count_if(e.vocab.begin(), e.vocab.end(),
                          [&](const io::VocabEntry& v) { return v.token == spelling; }),
            1);
  // Ordinary text does not produce the added token's id; "데비안" without its space still became
  // a token, so training went on around the refused pair.
  const Ids ids = ext.encode(" 데비안");
  EXPECT_GE(ids.size(), 2u);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 1000), 0);
  EXPECT_EQ(ext.decode(ids), " 데비안");
  EXPECT_TRUE(ext.token_id(io::to_byte_level("데비안")).has_value());
  EXPECT_EQ(ext.encode(spelling), Ids{1000});
  expect_everyone_agrees(ext, {" 데비안", "데비안 패키지", spelling, "데비안" + spelling},
                         /*dense_ids=*/true, /*round_trip=*/false);
}

TEST(BpeExtension, ExtendsCl100kAsLlama3Did) {
  // cl100k lists its special tokens in the model vocabulary, with holes in the ids (100256,
  // 100261-100275); the new tokens come after the largest id, 100276.
  const auto& base = testing::npm_bpe_tokenizer("gpt35turbo");
  const auto ext = extend_bpe(base, korean_texts(), extension_options(300));
  expect_extension_of(base, ext, 300);
  EXPECT_EQ(base.vocab_size(), 100277);
  EXPECT_EQ(ext.token_id("<|endoftext|>"), 100257);
  EXPECT_EQ(ext.token_id("<|endofprompt|>"), 100276);
  EXPECT_EQ(ext.token_text(100277),
            ext.describe().merges[100000].first + ext.describe().merges[100000].second);
  const std::string korean = "데비안 패키지를 설치합니다.";
  EXPECT_LT(ext.encode(korean).size(), base.encode(korean).size());
  std::vector<std::string> texts = tokenizer_sample_texts();
  for (auto& t : held_out_texts()) texts.push_back(std::move(t));
  texts.push_back("<|endoftext|>" + korean + "<|fim_prefix|>");
  expect_everyone_agrees(ext, texts, /*dense_ids=*/false);
}

TEST(BpeExtension, ExtendsLlama3KeepingItsSpecialTokens) {
  // Llama 3 keeps its 256 special tokens out of the model vocabulary (ids 128000-128255) and
  // sets ignore_merges; the new tokens start at 128256.
  const auto& base = testing::npm_bpe_tokenizer("llama3");
  const auto ext = extend_bpe(base, korean_texts(), extension_options(200));
  expect_extension_of(base, ext, 200);
  EXPECT_EQ(ext.token_id("<|begin_of_text|>"), 128000);
  EXPECT_EQ(ext.token_id("<|eot_id|>"), 128009);
  std::vector<std::string> texts = tokenizer_sample_texts();
  for (auto& t : held_out_texts()) texts.push_back(std::move(t));
  texts.push_back("<|start_header_id|>user<|end_header_id|>\n\n데비안<|eot_id|>");
  expect_everyone_agrees(ext, texts);
}

TEST(BpeExtension, RefusesWhatCannotBeExtended) {
  const auto& base = english_base();
  auto expect_invalid = [](auto&& f, const char* what) {
    try {
      f();
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument) << e.message();
    }
  };
  const std::vector<std::string> texts = {"데비안 데비안"};
  auto with_specials = [&](std::vector<std::string> specials) {
    auto o = extension_options(10);
    o.extra_special_tokens = std::move(specials);
    return o;
  };
  expect_invalid([&] { extend_bpe(base, texts, extension_options(-1)); }, "negative count");
  expect_invalid(
      [&] {
        auto o = extension_options(10);
        o.min_pair_count = 0;
        extend_bpe(base, texts, o);
      },
      "min_pair_count 0");
  expect_invalid([&] { extend_bpe(base, texts, with_specials({""})); }, "empty special");
  expect_invalid([&] { extend_bpe(base, texts, with_specials({"\xff"})); }, "not UTF-8");
  expect_invalid([&] { extend_bpe(base, texts, with_specials({"<|x|>", "<|x|>"})); }, "twice");
  expect_invalid([&] { extend_bpe(base, texts, with_specials({"<|eot_id|>"})); }, "a special");
  expect_invalid([&] { extend_bpe(base, texts, with_specials({base.token_text(300)})); },
                 "a model token");
  // A model without all 256 byte tokens is not byte-level BPE.
  io::Tokenizer d = base.describe();
  const std::string zero = io::byte_level_char(0);
  d.vocab.erase(std::find_if(d.vocab.begin(), d.vocab.end(),
                             [&](const io::VocabEntry& v) { return v.token == zero; }));
  const auto partial = BpeTokenizer::from_io(d);
  expect_invalid([&] { extend_bpe(partial, texts, extension_options(10)); }, "missing byte");
  // Zero new tokens is a copy.
  const auto same = extend_bpe(base, texts, extension_options(0));
  expect_extension_of(base, same, 0);
}

}  // namespace
}  // namespace referee::engine
