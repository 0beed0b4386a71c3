// Tokenizer evidence for one pair of tokenizers A and B: what they share, whether the shared part
// keeps its ids and its order, whether one extends the other, and a judgement of the relation.
//
// Vocabulary overlap alone misleads (Llama 2's 32k vocabulary is 97% contained in Gemma 2's
// unrelated 256k one); what survives derivation is the base's token order and, for extensions,
// identical ids. So every order statistic is placed against a baseline of unrelated real tokenizer
// pairs (a constant table, unrelated_tokenizer_baseline(), checked against the npm tokenizers by a
// test), and the judgement rests on whether the order of the WHOLE shared vocabulary is preserved,
// plus extension — never on the first few hundred merges, which independent byte-level BPEs
// trained on similar text share.
// Sharing a tokenizer is common and is not by itself evidence that weights were derived.
//
// Pure functions of their inputs; safe to call from several threads at once.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/tokenizer.h"

namespace referee::trace {

// The base alphabet, excluded from every id and order statistic: a token is a base-alphabet token
// of a tokenizer when it is one byte — one byte-level character in a byte-level tokenizer (every
// byte-level BPE puts the 256 byte symbols first, in the same order) or a <0xNN> byte-fallback
// token (SentencePiece puts them at fixed ids after the control tokens). A shared token is left out
// when it is base alphabet in either tokenizer. Added tokens (specials and the like, which
// conventions place at fixed ids) are left out of the order statistics too and reported apart.
bool is_byte_alphabet_token(const io::Tokenizer& tokenizer, std::string_view token);

// One side of the comparison. Tokens are distinct token strings of the vocabulary plus the added
// tokens (a string listed twice, as some GGUF SentencePiece vocabularies do, counts once, at its
// lowest id).
struct TokenizerSide {
  std::string model_type;
  bool byte_level = false;
  bool byte_fallback = false;
  int64_t tokens = 0;  // distinct token strings, vocabulary plus added tokens
  int64_t vocab = 0;   // vocabulary entries
  int64_t merges = 0;
  int64_t added_tokens = 0;
  int64_t special_tokens = 0;  // added tokens flagged special
  int64_t byte_alphabet = 0;   // base-alphabet tokens
  int64_t ordinary = 0;        // tokens neither added nor base alphabet
};

// The order statistics placed against the baseline of unrelated pairs.
enum class OrderStatistic : uint8_t {
  kIdenticalIdFraction,          // shared ordinary tokens with the same id in A and B
  kIdSpearman,                   // Spearman's rho of the shared ordinary tokens' ids, A vs B
  kOrderPreservedFraction,       // longest run of shared ordinary tokens in the same relative order
                                 // in both (longest increasing subsequence), over all of them
  kCommonOrderedPrefixFraction,  // the first k shared ordinary tokens by id in A are the first k by
                                 // id in B, in the same order (ids may differ), over all of them
  kMergeRankSpearman,            // Spearman's rho of the shared merges' ranks
  kCommonMergePrefix,            // leading merges identical and in the same order (a count)
};
inline constexpr size_t kOrderStatisticCount = 6;
std::string_view order_statistic_name(OrderStatistic s);  // snake_case, as in the JSON

// The scale on which a statistic's baseline mean and sd are kept and its z-score is computed:
// fractions as they are; correlations Fisher-transformed (atanh), which spreads the values near 1
// where related pairs lie; counts as log2(1 + count).
enum class StatisticScale : uint8_t { kFraction, kFisherZ, kLog2Count };

// One row of the unrelated-pairs baseline; mean, sd (sample) and max on the statistic's scale.
struct BaselineRow {
  OrderStatistic statistic;
  StatisticScale scale;
  int pairs;  // unrelated pairs the statistic could be computed on
  double mean, sd, max;
};

// A statistic's value for this pair, placed against the baseline.
struct ScoredStatistic {
  std::optional<double> value;      // none when it cannot be computed: nothing shared, fewer than 2
                                    // shared items for a correlation, or no merges on a side
  std::optional<double> z;          // (scaled value - baseline mean) / max(baseline sd, floor)
  bool above_baseline_max = false;  // larger than every unrelated pair's
  std::string explanation;          // one line, plain English
};

enum class TokenizerRelation : uint8_t {
  kIdentical,     // the same tokens at the same ids, and the same merges
  kExtension,     // one keeps (nearly) all of the other's tokens at their ids and adds more
  kSameLineage,   // the order of the shared vocabulary is preserved, though not a clean extension
  kUnrelated,     // the shared tokens keep neither their ids nor their order beyond unrelated pairs
  kInconclusive,  // nothing to compare, too little to judge, or partial order shared
};
enum class ExtensionDirection : uint8_t { kNone, kBExtendsA, kAExtendsB };
enum class LineageBasis : uint8_t {
  kNone,
  kSameIds,     // at least 90% of the shared ordinary tokens keep their ids
  kSameOrder,   // at least 99% keep their relative order (ids may shift: tokens removed/inserted)
  kCommonBase,  // the first 80%+ of the shared tokens are one common ordered base; both then grew
};
std::string_view tokenizer_relation_name(TokenizerRelation r);  // "identical", "same_lineage", ...
std::string_view extension_direction_name(ExtensionDirection d);  // "none", "b_extends_a", ...
std::string_view lineage_basis_name(LineageBasis b);              // "none", "same_ids", ...

struct TokenizerComparison {
  TokenizerSide a, b;

  // Vocabulary (by exact token string).
  int64_t shared_tokens = 0;
  double overlap_a = 0, overlap_b = 0;  // shared / tokens of A, of B (0 for an empty side)
  int64_t shared_byte_alphabet = 0;     // shared base-alphabet tokens (either side's sense)
  int64_t identical_byte_alphabet_ids = 0;
  int64_t shared_ordinary = 0;        // shared, neither added nor base alphabet on either side
  int64_t identical_ids = 0;          // of the shared ordinary tokens
  int64_t order_preserved = 0;        // longest same-order run of shared ordinary tokens
  int64_t common_ordered_prefix = 0;  // see OrderStatistic::kCommonOrderedPrefixFraction
  // Leading ids (0, 1, ... over the ids either side uses) that hold the same token in both, and
  // how many of those are base alphabet.
  int64_t common_id_prefix = 0;
  int64_t common_id_prefix_byte_alphabet = 0;

  // Merges (by exact pair).
  int64_t shared_merges = 0;
  double merges_shared_a = 0, merges_shared_b = 0;  // shared / merges of A, of B
  int64_t common_merge_prefix = 0;

  // Extension: tokens of one side found in the other at the same id (all, and the side's own
  // ordinary tokens), and tokens only one side has.
  int64_t kept_ids_a_in_b = 0, kept_ids_b_in_a = 0;
  int64_t kept_ordinary_a_in_b = 0, kept_ordinary_b_in_a = 0;
  int64_t tokens_only_in_a = 0, tokens_only_in_b = 0;

  // Added and special tokens.
  int64_t shared_added = 0;           // added in both, same content
  int64_t shared_special = 0;         // special in both, same content
  int64_t special_identical_ids = 0;  // of those, at the same id

  // The order statistics against the baseline.
  ScoredStatistic identical_id_fraction, id_spearman, order_preserved_fraction,
      common_ordered_prefix_fraction, merge_rank_spearman, common_merge_prefix_score;

  // The judgement.
  TokenizerRelation relation = TokenizerRelation::kInconclusive;
  ExtensionDirection direction = ExtensionDirection::kNone;
  LineageBasis lineage_basis = LineageBasis::kNone;
  std::string explanation;  // one line, plain English

  const ScoredStatistic& statistic(OrderStatistic s) const;
};

// The baseline shipped with referee (see tokenizer_evidence.cc for the pairs and versions), one
// row per OrderStatistic in enum order.
std::span<const BaselineRow> unrelated_tokenizer_baseline();
// The same table computed from comparisons of pairs known to be unrelated (how the shipped table
// was made; a test recomputes it so it cannot drift).
std::vector<BaselineRow> compute_tokenizer_baseline(std::span<const TokenizerComparison> pairs);

// Compares A with B; "A" and "B" in the explanations refer to the arguments in this order.
// Never throws on any tokenizer (an empty side gives kInconclusive).
TokenizerComparison compare_tokenizers(const io::Tokenizer& a, const io::Tokenizer& b);

// For the trace JSON report: snake_case field names, stable within schema referee.trace/1.
nlohmann::ordered_json tokenizer_comparison_json(const TokenizerComparison& c);
// A few aligned lines for the terminal report, each ending in a newline.
std::string tokenizer_comparison_text(const TokenizerComparison& c);

}  // namespace referee::trace
