// Weight evidence for one pair of models, computed from their fingerprints (trace/fingerprint.h).
//
// Four kinds of evidence, from strongest to weakest:
// 1. Copies: tensors whose bytes are identical (content hash), or whose values are within a small
//    relative distance (count-sketch estimate; survives a dtype change such as bf16 or Q8_0).
// 2. The neuron-order test (Zhu, Ahmed, Kuditipudi and Liang, "Independence Tests for Language
//    Models", ICML 2025): match the MLP neurons of a layer of A to those of a layer of B by their
//    probe responses (a linear assignment), then ask whether the matching keeps the neurons' order
//    (Spearman's rho of the matched indices; a fixed subset of A's neurons, matched among all of
//    B's, bounds the cost without touching the null). If A was trained from its own random
//    initialisation, its neurons' order is exchangeable — any permutation of them was as likely —
//    so the matching is a uniformly random permutation whatever B is and whatever data either saw,
//    and rho has the exact null distribution of a random permutation. p-values combine across
//    one-to-one matched layers by Fisher's method. Responses do not depend on the residual
//    stream's basis, so a permutation, rotation or rescaling of the residual stream (or folded
//    norms) cannot evade the test.
// 3. The gate/up agreement test (Zhu et al.'s robust variant, φ_MATCH): the matching found from
//    gate responses alone and the one found from up responses alone agree (Spearman) when B's
//    neurons are A's neurons in any order, so a permutation of the MLP units cannot evade it. Its
//    p-value is not exact (Zhu et al. report it behaves as one); referee demands a stricter level.
// 4. The layer x layer similarity map: unbiased linear CKA of the probe responses (queries and keys;
//    gates and ups) of every layer of A with every layer of B. CKA ignores the order of units, so
//    the map shows which layer of B came from which layer of A after up-scaling, pruning or
//    copying; it is descriptive (independent models trained on similar text can be similar).
// Norm gains are reported with centred statistics only, as low-evidence context.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "trace/fingerprint.h"

namespace referee::trace {

struct TensorMatch {
  std::string a_name, b_name;
  bool identical = false;       // same bytes
  bool near_identical = false;  // within WeightEvidenceOptions::near_identical_distance
  double relative_distance = 0; // ||a - b|| / sqrt(||a|| ||b||), from the sketches
  double cosine = 0;            // <a, b> / (||a|| ||b||), from the sketches: about 0 (within a
                                // few 1/sqrt(buckets)) for tensors trained independently, high
                                // for a fine-tuned copy in the same basis
  io::TensorRole a_role, b_role;
};

struct NeuronTest {
  int32_t a_layer = -1, b_layer = -1;
  int32_t a_expert = -1, b_expert = -1;  // matched experts (MoE), -1 for dense MLPs
  int64_t matched = 0;                   // neuron pairs in the assignment
  double rho_identity = 0;               // Spearman of matched indices (exact test)
  double log_p_identity = 0;             // natural log of its one-sided p-value
  double rho_gate_up = 0;                // agreement of gate-only and up-only matchings
  double log_p_gate_up = 0;              // approximate
  double mean_matched_correlation = 0;   // mean Pearson r of matched neurons' responses
};

// Routers of two mixture-of-experts layers: experts matched by the correlation of their router
// rows' probe responses; the order test as for neurons (exact, but with few experts it cannot
// reach small p-values: 8 experts give p >= 1/40320).
struct RouterTest {
  int32_t a_layer = -1, b_layer = -1;
  int64_t matched = 0;
  double rho_identity = 0, log_p_identity = 0;
  double mean_matched_correlation = 0;
};

struct LayerMatch {
  int32_t b_layer = -1;
  int32_t best_a_layer = -1;
  double best = 0;    // map value of the best A layer
  double margin = 0;  // best minus second best (0 with a single layer)
};

struct NormComparison {
  int32_t a_layer = -1, b_layer = -1;
  std::string role;
  double raw_cosine = 0;  // shown only to explain why it misleads
  double pearson = 0;
};

struct WeightEvidence {
  bool computable = false;        // probe responses on both sides with enough shared probes
  std::vector<std::string> missing;  // evidence that could not be computed, and why
  int64_t shared_probes = 0;
  int64_t probes_a = 0, probes_b = 0;

  // 1. Copies.
  std::vector<TensorMatch> copies;  // B matrices matched to an A matrix (identical, near or similar)
  int64_t b_matrices = 0;           // matrices of B considered
  int64_t b_identical = 0, b_near_identical = 0, b_similar = 0;

  // 4. The map, rows = A layers, cols = B layers (NaN where a side lacks the responses).
  std::vector<int32_t> a_layers, b_layers;
  std::vector<double> attention_map, mlp_map, combined_map;  // a_layers x b_layers
  std::vector<LayerMatch> layer_matches;  // per B layer

  // AWM (Zeng et al., ICLR 2026): the hidden dimensions of A matched to B's through the shared
  // probe tokens' embedding rows (a linear assignment on |Pearson r|, which undoes a permutation
  // and sign flips of the residual stream — not a rotation), then unbiased linear CKA of the
  // attention Q and K weights (samples = aligned hidden dimensions), averaged, for every layer pair.
  std::vector<double> awm_map;   // a_layers x b_layers, NaN where not computable
  int64_t awm_aligned_dims = 0;
  double awm_alignment = 0;      // mean |r| of the matched dimensions (1: a permuted copy)

  // 2 and 3, on one-to-one matched layers.
  std::vector<NeuronTest> neuron_tests;
  double log_p_identity = 0;   // Fisher over neuron_tests (0 = p of 1 when none)
  double log_p_gate_up = 0;
  int64_t tests_combined = 0;
  std::vector<RouterTest> router_tests;  // reported, not combined (few experts, weak alone)

  // Norm gains.
  std::vector<NormComparison> norms;
  double norm_pearson_within_a = 0, norm_raw_cosine_within_a = 0;  // mean over layer pairs of A
};

struct WeightEvidenceOptions {
  int64_t min_shared_probes = 16;
  double near_identical_distance = 0.05;  // relative distance below which a matrix is a copy
  double similar_cosine = 0.5;            // sketch cosine above which a matrix is a modified copy
  int64_t test_units = 256;               // A's neurons per MLP in the neuron tests (the first
                                          // ones), each matched among all of B's. 256, not 512:
                                          // no verdict changes on either zoo, the weakest derived
                                          // p stays below 1e-49, and judging a pair costs a fifth
                                          // less (README, "trace")
  unsigned threads = 0;                   // layer pairs tested in parallel; 0: one per core
};

WeightEvidence compare_weights(const Fingerprint& a, const Fingerprint& b,
                               const WeightEvidenceOptions& options = {});

}  // namespace referee::trace
