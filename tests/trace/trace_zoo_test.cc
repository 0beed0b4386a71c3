// referee trace against the smoke-profile lineage zoo, whose manifest states every pair's true
// relation (built by the CTest fixture build_smoke_zoo). These are the accuracy bars:
// every derived pair flagged with p < 1e-6, no independent pair flagged, the borrowed layers
// named, the norm-vector trap reproduced, the same verdicts from saved fingerprints.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>

#include "testing/helpers.h"
#include "trace/fingerprint.h"
#include "trace/report.h"
#include "trace/trace.h"

namespace referee::trace {
namespace {

namespace fs = std::filesystem;
using referee::testing::smoke_zoo_dir;

struct Zoo {
  nlohmann::json manifest;
  std::map<std::string, Fingerprint> fingerprints;
};

const Zoo& zoo() {
  static const Zoo z = [] {
    Zoo out;
    std::ifstream in(smoke_zoo_dir() / "manifest.json");
    out.manifest = nlohmann::json::parse(in);
    FingerprintOptions o;
    o.progress = false;
    for (const auto& m : out.manifest["models"]) {
      const std::string name = m["name"];
      Fingerprint f = fingerprint_of(smoke_zoo_dir() / m["path"].get<std::string>(), o);
      f.name = name;
      out.fingerprints.emplace(name, std::move(f));
    }
    return out;
  }();
  return z;
}

PairResult judge(const std::string& a, const std::string& b) {
  return judge_pair(zoo().fingerprints.at(a), zoo().fingerprints.at(b), TraceOptions{});
}

bool flags_derivation(Relation r) {
  return r == Relation::kDerived || r == Relation::kUpscaled || r == Relation::kPruned;
}

TEST(TraceZoo, EveryDerivedPairIsFlaggedAndNoIndependentPairIs) {
  int derived = 0, independent = 0, independent_below_001 = 0;
  std::vector<double> derived_log10_p;  // for the record: how far below 1e-6 the derived pairs are
  for (const auto& p : zoo().manifest["pairs"]) {
    const std::string a = p["first"], b = p["second"], truth = p["relation"];
    if (a >= b) continue;  // each unordered pair once
    const PairResult r = judge(a, b);
    if (truth == "derived" || truth == "common_ancestor") {
      ++derived;
      EXPECT_TRUE(flags_derivation(r.verdict.relation))
          << a << " / " << b << " (" << truth << "): " << relation_name(r.verdict.relation) << " — " << r.verdict.summary;
      EXPECT_LT(r.verdict.log10_p, -6.0) << a << " / " << b;
      derived_log10_p.push_back(r.verdict.log10_p);
    } else if (truth == "independent") {
      ++independent;
      EXPECT_FALSE(flags_derivation(r.verdict.relation) || r.verdict.relation == Relation::kPartiallyBorrowed)
          << a << " / " << b << " is independent but judged " << relation_name(r.verdict.relation) << ": " << r.verdict.summary;
      if (r.verdict.log10_p < -2.0) ++independent_below_001;
    }
  }
  EXPECT_GT(derived, 100);
  EXPECT_GT(independent, 100);
  // The neuron-order p-value is exact, so about 1% of independent pairs fall below 0.01 by
  // construction; those are reported as inconclusive, never as derived. Far more would mean the
  // null distribution is wrong.
  EXPECT_LE(independent_below_001, independent * 4 / 100 + 1) << independent_below_001 << " of " << independent;
  ::testing::Test::RecordProperty("independent_pairs", independent);
  ::testing::Test::RecordProperty("independent_pairs_below_0_01", independent_below_001);
  std::sort(derived_log10_p.begin(), derived_log10_p.end());
  if (!derived_log10_p.empty()) {
    const double largest = derived_log10_p.back(), median = derived_log10_p[derived_log10_p.size() / 2];
    ::testing::Test::RecordProperty("derived_largest_log10_p", std::to_string(largest));
    ::testing::Test::RecordProperty("derived_median_log10_p", std::to_string(median));
    std::printf("derived pairs: largest log10 p %.1f, median %.1f; independent pairs below 0.01: %d of %d\n", largest,
                median, independent_below_001, independent);
  }
}

TEST(TraceZoo, EveryObfuscationAndDtypeCopyOfTheBaseIsDerived) {
  for (const char* copy : {"a-permute_residual", "a-permute_mlp_units", "a-permute_heads", "a-rescale",
                           "a-fold_norms_and_rotate", "a-all-obfuscations", "a-bf16", "a-q8_0"}) {
    const PairResult r = judge("base-a", copy);
    EXPECT_EQ(r.verdict.relation, Relation::kDerived) << copy << ": " << r.verdict.summary;
    EXPECT_LT(r.verdict.log10_p, -6.0) << copy;
  }
  // A dtype copy is caught as a copy, not only statistically.
  EXPECT_EQ(judge("base-a", "a-bf16").verdict.decided_by, "copies");
  // Neurons permuted: the exact order test cannot see it, the gate/up agreement test does.
  const PairResult permuted = judge("base-a", "a-permute_mlp_units");
  EXPECT_GT(permuted.weights.log_p_identity / std::log(10.0), -2.0);
  EXPECT_LT(permuted.weights.log_p_gate_up / std::log(10.0), -12.0);
}

TEST(TraceZoo, AModelAgainstItselfIsACopyWithEveryMapComputed) {
  // The same fingerprint object on both sides: every statistic must still tell the sides apart.
  const Fingerprint& f = zoo().fingerprints.at("base-a");
  const PairResult r = judge_pair(f, f, TraceOptions{});
  EXPECT_EQ(r.verdict.decided_by, "copies");
  const size_t n = r.weights.a_layers.size();
  ASSERT_GT(n, 0u);
  ASSERT_EQ(r.weights.awm_map.size(), n * n);
  for (size_t i = 0; i < n; ++i) {
    EXPECT_NEAR(r.weights.awm_map[i * n + i], 1.0, 1e-5) << "layer " << i;
    EXPECT_NEAR(r.weights.combined_map[i * n + i], 1.0, 1e-5) << "layer " << i;
  }
  EXPECT_NEAR(r.weights.awm_alignment, 1.0, 1e-5);
}

TEST(TraceZoo, StructuralDerivationsAreNamed) {
  EXPECT_EQ(judge("base-a", "a-upscaled").verdict.relation, Relation::kUpscaled);
  EXPECT_EQ(judge("base-a", "a-pruned").verdict.relation, Relation::kPruned);
  const PairResult vocab = judge("base-a", "a-vocab-extended");
  EXPECT_EQ(vocab.verdict.relation, Relation::kDerived);
  ASSERT_TRUE(vocab.tokenizer);
  EXPECT_EQ(vocab.tokenizer->relation, TokenizerRelation::kExtension);
  EXPECT_EQ(judge("moe-base", "moe-sft").verdict.relation, Relation::kDerived);
  EXPECT_EQ(judge("hybrid-base", "hybrid-cpt").verdict.relation, Relation::kDerived);
}

TEST(TraceZoo, BorrowedLayersAreNamedAndTheRestJudgedIndependent) {
  const PairResult r = judge("base-a", "borrowed-layers");
  EXPECT_EQ(r.verdict.relation, Relation::kPartiallyBorrowed) << r.verdict.summary;
  ASSERT_FALSE(r.verdict.borrowed.empty());
  EXPECT_EQ(r.verdict.borrowed.front(), "model.layers.0.");
  std::map<std::string, Relation> modules;
  for (const auto& m : r.verdict.modules) modules[m.module] = m.relation;
  EXPECT_NE(modules.at("layer 0"), Relation::kIndependent);
  EXPECT_EQ(modules.at("layer 1"), Relation::kIndependent);
  EXPECT_EQ(modules.at("layer 2"), Relation::kIndependent);
  EXPECT_EQ(modules.at("embedding"), Relation::kIndependent);
}

TEST(TraceZoo, DistillationLeavesIndependentWeights) {
  const PairResult r = judge("base-a", "distilled-from-a");
  EXPECT_EQ(r.verdict.relation, Relation::kIndependent) << r.verdict.summary;
  EXPECT_NE(r.verdict.summary.find("distillation"), std::string::npos);
}

// The January 2026 accusation: raw cosine of RMSNorm gains ~0.99 between two models. Reproduced on
// two independent bases: raw cosine is near 1, the centred statistic is not, and the verdict
// stays independent.
TEST(TraceZoo, NormVectorTrap) {
  const PairResult r = judge("base-a", "base-b");
  ASSERT_FALSE(r.weights.norms.empty());
  double cosine = 0, pearson = 0;
  for (const auto& n : r.weights.norms) cosine += n.raw_cosine, pearson += n.pearson;
  cosine /= static_cast<double>(r.weights.norms.size());
  pearson /= static_cast<double>(r.weights.norms.size());
  EXPECT_GT(cosine, 0.98);
  EXPECT_LT(std::abs(pearson), 0.3);
  EXPECT_GT(r.weights.norm_raw_cosine_within_a, 0.98);  // layers within one model score the same
  EXPECT_EQ(r.verdict.relation, Relation::kIndependent);
  // A truly derived pair scores high on the centred statistic too.
  const PairResult sft = judge("base-a", "a-sft");
  double sft_pearson = 0;
  for (const auto& n : sft.weights.norms) sft_pearson += n.pearson;
  EXPECT_GT(sft_pearson / static_cast<double>(sft.weights.norms.size()), 0.8);
}

TEST(TraceZoo, SavedFingerprintsGiveTheSameReport) {
  referee::testing::TempDir dir;
  FingerprintOptions o;
  o.progress = false;
  for (const auto& [a, b] : std::vector<std::pair<std::string, std::string>>{
           {"base-a", "a-sft"}, {"base-a", "base-b"}, {"base-a", "borrowed-layers"}, {"base-a", "a-q8_0"},
           {"moe-base", "moe-sft"}, {"base-a", "a-all-obfuscations"}}) {
    const auto& fa = zoo().fingerprints.at(a);
    const auto& fb = zoo().fingerprints.at(b);
    save_fingerprint(fa, dir.path() / "a.safetensors");
    save_fingerprint(fb, dir.path() / "b.safetensors");
    const Fingerprint la = load_fingerprint(dir.path() / "a.safetensors");
    const Fingerprint lb = load_fingerprint(dir.path() / "b.safetensors");
    TraceReport live = trace_pairs({fa, fb}, TraceOptions{});
    TraceReport saved = trace_pairs({la, lb}, TraceOptions{});
    EXPECT_EQ(report_json(live)["pairs"].dump(), report_json(saved)["pairs"].dump()) << a << " / " << b;
  }
}

TEST(TraceZoo, LibraryRanksTheParentFirstAndCorrectsForComparisons) {
  std::vector<Fingerprint> library;
  for (const char* n : {"base-b", "base-c", "base-a", "base-d"}) library.push_back(zoo().fingerprints.at(n));
  const TraceReport r = trace_library(zoo().fingerprints.at("a-cpt-long"), library, TraceOptions{});
  ASSERT_EQ(r.pairs.size(), 4u);
  EXPECT_EQ(r.comparisons, 4);
  EXPECT_EQ(r.models[r.pairs[0].a].name, "base-a");
  EXPECT_EQ(r.pairs[0].verdict.relation, Relation::kDerived);
  for (size_t i = 1; i < r.pairs.size(); ++i) EXPECT_FALSE(flags_derivation(r.pairs[i].verdict.relation));
  // Bonferroni: the same pair alone has a p-value four times smaller (unless it is capped at 1).
  const PairResult alone = judge("base-b", "a-cpt-long");
  const PairResult& in_library = r.pairs[r.models[r.pairs[1].a].name == "base-b" ? 1 : (r.models[r.pairs[2].a].name == "base-b" ? 2 : 3)];
  if (alone.verdict.log10_p < -1.0) {
    EXPECT_NEAR(in_library.verdict.log10_p - alone.verdict.log10_p, std::log10(4.0), 1e-9);
  }
}

}  // namespace
}  // namespace referee::trace

namespace referee::trace {
namespace {

// Fingerprints and comparisons run on a thread pool; the report must not depend on its size.
TEST(TraceZoo, ReportDoesNotDependOnTheThreadCount) {
  std::string reports[2];
  for (unsigned threads : {1u, 2u}) {
    TraceOptions o;
    o.fingerprint.threads = threads;
    o.fingerprint.progress = false;
    const Fingerprint a = fingerprint_of(referee::testing::smoke_zoo_dir() / "models" / "moe-base", o.fingerprint);
    const Fingerprint b = fingerprint_of(referee::testing::smoke_zoo_dir() / "models" / "moe-sft", o.fingerprint);
    reports[threads - 1] = report_json(trace_pairs({a, b}, o))["pairs"].dump();
  }
  EXPECT_EQ(reports[0], reports[1]);
}

// `referee trace A B C` fingerprints its models side by side (the threads shared out between
// them) and loads saved fingerprints among them: the same report as one model at a time, in the
// order given, whatever the thread count.
TEST(TraceZoo, ModelsFingerprintedSideBySideGiveTheSameReport) {
  referee::testing::TempDir dir;
  const fs::path models = referee::testing::smoke_zoo_dir() / "models";
  TraceOptions o;
  o.fingerprint.progress = false;
  o.fingerprint.threads = 2;
  save_fingerprint(fingerprint_of(models / "a-sft", o.fingerprint), dir.path() / "a-sft.safetensors");
  const std::vector<fs::path> paths = {models / "base-a", dir.path() / "a-sft.safetensors", models / "base-b",
                                       models / "a-pruned"};
  std::vector<Fingerprint> one_by_one;
  for (const auto& p : paths) one_by_one.push_back(fingerprint_of(p, o.fingerprint));
  const std::string expected = report_json(trace_pairs(one_by_one, o))["pairs"].dump();
  for (unsigned threads : {1u, 2u, 3u, 8u}) {
    o.fingerprint.threads = threads;
    const auto side_by_side = fingerprints_of(paths, o.fingerprint);
    ASSERT_EQ(side_by_side.size(), paths.size());
    for (size_t i = 0; i < paths.size(); ++i) EXPECT_EQ(side_by_side[i].source, one_by_one[i].source) << i;
    EXPECT_EQ(report_json(trace_pairs(side_by_side, o))["pairs"].dump(), expected) << threads << " threads";
  }
  EXPECT_THROW(fingerprints_of({models / "base-a", dir.path() / "missing"}, o.fingerprint), Error);
}

}  // namespace
}  // namespace referee::trace
