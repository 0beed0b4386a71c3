// trace/report_html: the HTML page for a hand-built report — a complete, self-contained document
// (no script, no network resources), every untrusted string escaped, one heatmap cell per map
// entry with NaN cells marked "not computed", the verdict and its missing evidence in plain words,
// p-values from natural logs, the norm section marked LOW EVIDENCE, and a ranking in library mode.
#include <gtest/gtest.h>

#include <cctype>
#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "trace/report.h"

namespace referee::trace {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kLn10 = 2.302585092994046;
const std::string kEvilName = "evil<script>alert(1)</script>&\"'";

size_t occurrences(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// Whether `word` occurs with no letter on either side ("inf" as a number, not in "information").
bool contains_word(const std::string& text, const std::string& word) {
  const auto letter = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; };
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) {
    const bool before = at > 0 && letter(text[at - 1]);
    const bool after = at + word.size() < text.size() && letter(text[at + word.size()]);
    if (!before && !after) return true;
  }
  return false;
}

// The text of every <svg class="heatmap" ...> ... </svg> element, in document order.
std::vector<std::string> heatmaps(const std::string& html) {
  std::vector<std::string> out;
  for (size_t at = html.find("<svg class=\"heatmap\""); at != std::string::npos;
       at = html.find("<svg class=\"heatmap\"", at + 1)) {
    const size_t end = html.find("</svg>", at);
    if (end == std::string::npos) break;
    out.push_back(html.substr(at, end - at));
  }
  return out;
}

ModelSummary model(const std::string& name) {
  ModelSummary m;
  m.name = name;
  m.source = "/models/" + name;
  m.format = "safetensors";
  m.arch.architecture = "LlamaForCausalLM";
  m.arch.layers = 2;
  m.arch.hidden = 64;
  m.arch.parameters = 1234567;
  m.has_tokenizer = true;
  m.has_weights = true;
  return m;
}

PairResult pair(size_t a, size_t b, Relation relation, double log10_p) {
  PairResult p;
  p.a = a;
  p.b = b;
  p.verdict.relation = relation;
  p.verdict.log10_p = log10_p;
  p.verdict.decided_by = "neuron order (Fisher)";
  p.verdict.summary = "B keeps A's neuron order in every matched layer.";
  return p;
}

// Two models (B named with markup), one pair with a 2 x 3 map holding one NaN in the attention and
// MLP maps, two neuron tests, copies, norms, a tokenizer comparison, modules and missing evidence.
TraceReport pairs_report() {
  TraceReport r;
  r.mode = "pairs";
  r.models = {model("base-model"), model(kEvilName)};
  PairResult p = pair(0, 1, Relation::kDerived, -12.0);
  p.verdict.reasons = {"neuron order kept in 2 of 2 layers (p = 1e-12)",
                       "token <|im_start|> kept its id"};
  p.verdict.missing = {"probe responses for the vision tower"};
  p.verdict.borrowed = {"vision encoder"};
  p.verdict.modules = {{"language model", Relation::kDerived, "order kept in every layer"},
                       {"vision", Relation::kPartiallyBorrowed, "identical bytes"}};

  WeightEvidence& w = p.weights;
  w.computable = true;
  w.missing = {"probe responses for the vision tower", "router responses: dense model"};
  w.shared_probes = 200;
  w.probes_a = 256;
  w.probes_b = 250;
  w.a_layers = {0, 1};
  w.b_layers = {0, 1, 2};
  w.attention_map = {0.91, 0.12, kNaN, 0.05, 0.88, 0.40};
  w.mlp_map = {0.95, -0.2, kNaN, 0.1, 0.97, 0.61};
  w.combined_map = {0.93, 0.04, 0.2, 0.08, 0.925, 0.505};
  for (const auto& [b_layer, a_layer, best] :
       {std::tuple{0, 0, 0.93}, {1, 1, 0.925}, {2, 1, 0.505}}) {
    LayerMatch m;
    m.b_layer = b_layer, m.best_a_layer = a_layer, m.best = best, m.margin = 0.3;
    w.layer_matches.push_back(m);
  }
  NeuronTest t0;
  t0.a_layer = 0, t0.b_layer = 0, t0.matched = 128;
  t0.rho_identity = 0.987, t0.log_p_identity = -12.0 * kLn10;
  t0.rho_gate_up = 0.95, t0.log_p_gate_up = -8.0 * kLn10;
  t0.mean_matched_correlation = 0.99;
  NeuronTest t1 = t0;
  t1.a_layer = 1, t1.b_layer = 1, t1.a_expert = 3, t1.b_expert = 5;
  t1.rho_identity = kNaN, t1.log_p_identity = std::log(2.5e-7);
  w.neuron_tests = {t0, t1};
  w.log_p_identity = -30.0 * kLn10;
  w.log_p_gate_up = -15.0 * kLn10;
  w.tests_combined = 2;
  w.b_matrices = 14;
  w.b_identical = 1;
  TensorMatch copy;
  copy.b_name = "model.layers.0.mlp.up_proj.weight";
  copy.a_name = "<b>x</b>.weight";
  copy.identical = true;
  copy.cosine = 1.0;
  w.copies = {copy};
  NormComparison n0, n1;
  n0.a_layer = n0.b_layer = 0, n0.role = "attn_norm", n0.pearson = 0.996, n0.raw_cosine = 0.01;
  n1.a_layer = n1.b_layer = -1, n1.role = "final_norm", n1.pearson = 0.990, n1.raw_cosine = 0.03;
  w.norms = {n0, n1};
  w.norm_pearson_within_a = 0.01;
  w.norm_raw_cosine_within_a = 0.99;

  TokenizerComparison tok;
  tok.relation = TokenizerRelation::kExtension;
  tok.direction = ExtensionDirection::kBExtendsA;
  tok.explanation = "B keeps all of A's 32,000 tokens at their ids & adds 5,000";
  tok.shared_tokens = 32000;
  tok.overlap_a = 1.0;
  tok.overlap_b = 32000.0 / 37000.0;
  tok.identical_ids = 31700;
  tok.shared_ordinary = 31700;
  tok.kept_ids_a_in_b = 32000;
  p.tokenizer = tok;

  r.pairs = {p};
  return r;
}

TEST(ReportHtml, IsACompleteHtml5Document) {
  const std::string html = report_html(pairs_report());
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(html.find("<meta charset=\"utf-8\">"), std::string::npos);
  EXPECT_NE(html.find("<style>"), std::string::npos);
  EXPECT_NE(html.find("</html>"), std::string::npos);
  EXPECT_NE(html.find("max-width"), std::string::npos);
  EXPECT_NE(html.find("@media print"), std::string::npos);
  EXPECT_NE(html.find("referee "), std::string::npos);
  EXPECT_NE(html.find("(git "), std::string::npos);
}

TEST(ReportHtml, EscapesEveryUntrustedString) {
  const std::string html = report_html(pairs_report());
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("</script"), std::string::npos);
  EXPECT_EQ(html.find("<b>x</b>"), std::string::npos);
  EXPECT_EQ(html.find("<|im_start|>"), std::string::npos);
  EXPECT_NE(html.find("evil&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;&#39;"),
            std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;x&lt;/b&gt;.weight"), std::string::npos);
  EXPECT_NE(html.find("token &lt;|im_start|&gt; kept its id"), std::string::npos);
  EXPECT_NE(html.find("at their ids &amp; adds 5,000"), std::string::npos);
  // The name also sits in the <title>, where it must be escaped too.
  const size_t title = html.find("<title>");
  ASSERT_NE(title, std::string::npos);
  EXPECT_NE(html.substr(title, html.find("</title>") - title).find("evil&lt;script&gt;"),
            std::string::npos);
}

TEST(ReportHtml, ControlCharactersAndInvalidUtf8AreReplaced) {
  TraceReport r = pairs_report();
  r.models[0].name = std::string("bad\x01name\xff\xc3(caf\xc3\xa9");
  const std::string html = report_html(r);
  EXPECT_EQ(html.find('\x01'), std::string::npos);
  EXPECT_EQ(html.find('\xff'), std::string::npos);
  EXPECT_NE(html.find("bad\xEF\xBF\xBDname\xEF\xBF\xBD\xEF\xBF\xBD(caf\xc3\xa9"),
            std::string::npos);
}

TEST(ReportHtml, NeedsNoNetworkAndNoScript) {
  const std::string html = report_html(pairs_report());
  EXPECT_EQ(html.find("http://"), std::string::npos);
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("src="), std::string::npos);
  EXPECT_EQ(html.find("@import"), std::string::npos);
  EXPECT_EQ(html.find("@font-face"), std::string::npos);
  // Links only point within the page.
  for (size_t at = html.find("href=\""); at != std::string::npos;
       at = html.find("href=\"", at + 1)) {
    EXPECT_EQ(html[at + 6], '#') << html.substr(at, 40);
  }
  // url(...) in CSS and SVG only names a fragment of the page.
  for (size_t at = html.find("url("); at != std::string::npos; at = html.find("url(", at + 1)) {
    EXPECT_EQ(html[at + 4], '#') << html.substr(at, 40);
  }
}

TEST(ReportHtml, DrawsOneCellPerMapEntryWithNaNNotComputed) {
  const std::string html = report_html(pairs_report());
  const std::vector<std::string> maps = heatmaps(html);
  ASSERT_EQ(maps.size(), 3u);  // attention, MLP, combined
  for (const auto& svg : maps) EXPECT_EQ(occurrences(svg, "<rect"), 6u) << svg;
  // The attention and MLP maps each hold one NaN (A layer 0, B layer 2); the combined map none.
  EXPECT_EQ(occurrences(maps[0], "class=\"cell nc\""), 1u);
  EXPECT_EQ(occurrences(maps[1], "class=\"cell nc\""), 1u);
  EXPECT_EQ(occurrences(maps[2], "class=\"cell nc\""), 0u);
  EXPECT_NE(maps[0].find("A layer 0 &#215; B layer 2: not computed"), std::string::npos);
  EXPECT_NE(maps[0].find("A layer 1 &#215; B layer 1: CKA 0.880"), std::string::npos);
  EXPECT_NE(maps[2].find("A layer 0 &#215; B layer 2: CKA 0.200"), std::string::npos);
  EXPECT_FALSE(contains_word(html, "nan"));
  // Negative CKA takes the colour of 0 (the MLP map's A layer 0, B layer 1 is -0.2); the value in
  // the tooltip stays as it is.
  EXPECT_NE(maps[1].find("fill=\"#440154\"><title>A layer 0 &#215; B layer 1: CKA -0.200"),
            std::string::npos);
  // One outline per B layer's best A layer.
  for (const auto& svg : maps) EXPECT_EQ(occurrences(svg, "class=\"best\""), 3u);
  EXPECT_NE(maps[2].find("best A layer for B layer 2: A layer 1"), std::string::npos);
  // A colour scale from 0 to 1 beside the maps.
  EXPECT_NE(html.find("<svg class=\"legend\""), std::string::npos);
  EXPECT_NE(html.find(">1.00</text>"), std::string::npos);
}

TEST(ReportHtml, DrawsTheAwmMapWhenComputed) {
  TraceReport r = pairs_report();
  std::string html = report_html(r);
  EXPECT_NE(html.find("not computed:</span> the AWM weight map"), std::string::npos);
  WeightEvidence& w = r.pairs[0].weights;
  w.awm_map = {0.99, 0.02, 0.01, 0.03, 0.98, kNaN};
  w.awm_aligned_dims = 64;
  w.awm_alignment = 0.97;
  html = report_html(r);
  const std::vector<std::string> maps = heatmaps(html);
  ASSERT_EQ(maps.size(), 4u);
  EXPECT_EQ(occurrences(maps[3], "<rect"), 6u);
  EXPECT_EQ(occurrences(maps[3], "class=\"cell nc\""), 1u);
  EXPECT_NE(maps[3].find("A layer 1 &#215; B layer 1: CKA 0.980"), std::string::npos);
  EXPECT_NE(html.find("64 dimensions aligned, mean |r| 0.970"), std::string::npos);
  EXPECT_EQ(html.find("not computed:</span> the AWM weight map"), std::string::npos);
}

TEST(ReportHtml, AMalformedMapIsNotDrawn) {
  TraceReport r = pairs_report();
  r.pairs[0].weights.mlp_map.pop_back();  // 5 entries for a 2 x 3 map
  const std::string html = report_html(r);
  EXPECT_EQ(heatmaps(html).size(), 2u);
  EXPECT_NE(html.find("no layer map"), std::string::npos);
}

TEST(ReportHtml, ShowsTheVerdictInPlainWords) {
  const std::string html = report_html(pairs_report());
  EXPECT_NE(html.find("class=\"banner rel-derived\""), std::string::npos);
  EXPECT_NE(html.find("B keeps A&#39;s neuron order in every matched layer."), std::string::npos);
  EXPECT_NE(html.find("neuron order kept in 2 of 2 layers"), std::string::npos);
  EXPECT_NE(html.find("<li>vision encoder</li>"), std::string::npos);
  EXPECT_NE(html.find("not computed:</span> probe responses for the vision tower"),
            std::string::npos);
  EXPECT_NE(html.find("not computed:</span> router responses: dense model"), std::string::npos);
  // Missing evidence listed by both the verdict and the weights appears once.
  EXPECT_EQ(occurrences(html, "probe responses for the vision tower"), 1u);
  EXPECT_NE(html.find("<td>vision</td><td><span class=\"badge rel-partial\">partially borrowed"),
            std::string::npos);
  EXPECT_NE(html.find("decided by neuron order (Fisher); p = 1e-12"), std::string::npos);
}

TEST(ReportHtml, BannerColourFollowsTheRelation) {
  TraceReport r = pairs_report();
  r.pairs[0].verdict.relation = Relation::kIndependent;
  EXPECT_NE(report_html(r).find("class=\"banner rel-independent\""), std::string::npos);
  r.pairs[0].verdict.relation = Relation::kInconclusive;
  EXPECT_NE(report_html(r).find("class=\"banner rel-inconclusive\""), std::string::npos);
  r.pairs[0].verdict.relation = Relation::kPartiallyBorrowed;
  EXPECT_NE(report_html(r).find("class=\"banner rel-partial\""), std::string::npos);
}

TEST(ReportHtml, NeuronTestsWithPValuesFromNaturalLogs) {
  const std::string html = report_html(pairs_report());
  const size_t table = html.find("<table class=\"neurons\"");
  ASSERT_NE(table, std::string::npos);
  const std::string neurons = html.substr(table, html.find("</table>", table) - table);
  EXPECT_EQ(occurrences(neurons, "<tr>"), 3u);  // header and two tests
  EXPECT_NE(neurons.find("<td class=\"n\">0.987</td><td class=\"n\">1e-12</td>"),
            std::string::npos);
  EXPECT_NE(neurons.find("<td class=\"n\">1e-8</td>"), std::string::npos);
  EXPECT_NE(neurons.find("<td>3 &#8594; 5</td>"), std::string::npos);
  EXPECT_NE(neurons.find("<td>dense</td>"), std::string::npos);
  // A NaN rho prints as n/a; a p of 2.5e-7 keeps its mantissa.
  EXPECT_NE(neurons.find("<td class=\"n\">n/a</td><td class=\"n\">2.5e-7</td>"), std::string::npos);
  EXPECT_NE(html.find("neuron order p = 1e-30"), std::string::npos);
  EXPECT_NE(html.find("gate/up agreement p = 1e-15"), std::string::npos);
}

TEST(ReportHtml, TokenizerSectionOnlyWhenPresent) {
  TraceReport r = pairs_report();
  std::string html = report_html(r);
  EXPECT_NE(html.find("<h3>Tokenizer</h3>"), std::string::npos);
  EXPECT_NE(html.find("extension (B extends A)"), std::string::npos);
  EXPECT_NE(html.find("32,000 (100.0% of A, 86.5% of B)"), std::string::npos);
  EXPECT_NE(html.find("31,700 of the 31,700 shared ordinary tokens"), std::string::npos);
  r.pairs[0].tokenizer.reset();
  html = report_html(r);
  EXPECT_EQ(html.find("<h3>Tokenizer</h3>"), std::string::npos);
}

TEST(ReportHtml, CopiesCountedAndListedUpToFifty) {
  TraceReport r = pairs_report();
  std::string html = report_html(r);
  EXPECT_NE(html.find("Of 14 matrices of"), std::string::npos);
  EXPECT_NE(html.find("<strong>1</strong> identical"), std::string::npos);
  auto& copies = r.pairs[0].weights.copies;
  copies.resize(60, copies[0]);
  html = report_html(r);
  const size_t table = html.find("<table class=\"copies\"");
  ASSERT_NE(table, std::string::npos);
  EXPECT_EQ(occurrences(html.substr(table, html.find("</table>", table) - table), "<tr>"), 51u);
  EXPECT_NE(html.find("and 10 more"), std::string::npos);
}

TEST(ReportHtml, NormsAreLowEvidenceAndExplained) {
  const std::string html = report_html(pairs_report());
  const size_t section = html.find("LOW EVIDENCE");
  ASSERT_NE(section, std::string::npos);
  const std::string norms = html.substr(section);
  EXPECT_NE(norms.find("Solar Open"), std::string::npos);
  EXPECT_NE(norms.find("GLM-4.5-Air"), std::string::npos);
  EXPECT_NE(norms.find("start at 1.0"), std::string::npos);
  EXPECT_NE(norms.find("Pearson <strong>0.993</strong>"), std::string::npos);  // mean of the two
  EXPECT_NE(norms.find("raw cosine 0.020"), std::string::npos);
  EXPECT_NE(norms.find("<td class=\"n\">final</td>"), std::string::npos);
}

TEST(ReportHtml, NonFiniteNumbersPrintAsNA) {
  TraceReport r = pairs_report();
  r.pairs[0].weights.norm_pearson_within_a = std::numeric_limits<double>::infinity();
  r.pairs[0].verdict.log10_p = kNaN;
  const std::string html = report_html(r);
  EXPECT_FALSE(contains_word(html, "inf"));
  EXPECT_FALSE(contains_word(html, "nan"));
  EXPECT_NE(html.find("itself: n/a"), std::string::npos);
  EXPECT_NE(html.find("p = n/a"), std::string::npos);
}

TEST(ReportHtml, WithoutWeightEvidenceSaysNotComputed) {
  TraceReport r = pairs_report();
  WeightEvidence& w = r.pairs[0].weights;
  w = WeightEvidence{};
  w.missing = {"probe responses are missing on one side"};
  const std::string html = report_html(r);
  EXPECT_TRUE(heatmaps(html).empty());
  EXPECT_NE(html.find("not computed:</span> the layer map"), std::string::npos);
  EXPECT_NE(html.find("not computed:</span> no layer pair was tested"), std::string::npos);
  EXPECT_NE(html.find("not computed:</span> probe responses are missing on one side"),
            std::string::npos);
  EXPECT_NE(html.find("LOW EVIDENCE"), std::string::npos);
}

TEST(ReportHtml, LibraryModeRanksTheReferences) {
  TraceReport r;
  r.mode = "library";
  r.comparisons = 2;
  r.models = {model("candidate"), model("ref-<one>"), model("ref-two")};
  r.pairs = {pair(2, 0, Relation::kDerived, -40.0), pair(1, 0, Relation::kIndependent, -0.5)};
  const std::string html = report_html(r);
  const size_t table = html.find("<table class=\"ranking\"");
  ASSERT_NE(table, std::string::npos);
  const std::string ranking = html.substr(table, html.find("</table>", table) - table);
  EXPECT_EQ(occurrences(ranking, "<tr>"), 3u);
  const size_t first = ranking.find("<td class=\"n\">1</td><td><a href=\"#pair-0\">ref-two</a>");
  const size_t second =
      ranking.find("<td class=\"n\">2</td><td><a href=\"#pair-1\">ref-&lt;one&gt;</a>");
  ASSERT_NE(first, std::string::npos);
  ASSERT_NE(second, std::string::npos);
  EXPECT_LT(first, second);
  EXPECT_NE(ranking.find("rel-derived\">derived</span></td><td class=\"n\">1e-40</td>"),
            std::string::npos);
  EXPECT_NE(ranking.find("<td class=\"n\">0.316</td><td>neuron order (Fisher)</td>"),
            std::string::npos);
  EXPECT_NE(html.find("corrected for 2 comparisons"), std::string::npos);
  EXPECT_NE(html.find("id=\"pair-0\""), std::string::npos);
  EXPECT_NE(html.find("id=\"pair-1\""), std::string::npos);
  // Pairs mode has no ranking.
  EXPECT_EQ(report_html(pairs_report()).find("class=\"ranking\""), std::string::npos);
}

}  // namespace
}  // namespace referee::trace
