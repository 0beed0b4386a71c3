// report_html: the trace report as one self-contained HTML5 page for an evaluator who is not a
// specialist — the same content as report_text and report_json (trace/report.cc), laid out as a
// verdict banner per pair, tables, and inline SVG heatmaps of the layer x layer map. No script, no
// network, no external fonts: the page can be mailed, archived and printed as it is. Every string
// that comes from the report (model names, tensor names, token text, explanations) is escaped.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "trace/report.h"
#include "util/strings.h"
#include "util/version.h"

namespace referee::trace {
namespace {

constexpr size_t kMaxCopiesShown = 50;

// ---- text -------------------------------------------------------------------------------------

// Appends `bytes` as valid UTF-8 with the five HTML-special characters escaped. Control characters
// (other than tab and newline) and invalid UTF-8 sequences become U+FFFD, so an untrusted name can
// neither break the markup nor make the document invalid.
void append_escaped(std::string& out, std::string_view bytes) {
  constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  size_t i = 0;
  while (i < bytes.size()) {
    const auto c = static_cast<unsigned char>(bytes[i]);
    if (c < 0x80) {
      switch (c) {
        case '&':
          out += "&amp;";
          break;
        case '<':
          out += "&lt;";
          break;
        case '>':
          out += "&gt;";
          break;
        case '"':
          out += "&quot;";
          break;
        case '\'':
          out += "&#39;";
          break;
        case '\t':
        case '\n':
          out += static_cast<char>(c);
          break;
        default:
          if (c < 0x20 || c == 0x7F) {
            out += kReplacement;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // A multi-byte sequence: its length from the lead byte, each continuation byte 10xxxxxx, no
    // overlong forms, no surrogates, nothing above U+10FFFF.
    size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07u;
    }
    bool ok = len > 0 && i + len <= bytes.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(bytes[i + k]);
      if ((cc & 0xC0u) != 0x80u) ok = false;
      cp = (cp << 6) | (cc & 0x3Fu);
    }
    if (ok) {
      if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
          (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        ok = false;
      }
    }
    if (ok) {
      out.append(bytes.substr(i, len));
      i += len;
    } else {
      out += kReplacement;
      ++i;
    }
  }
}

std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  append_escaped(out, s);
  return out;
}

// Numbers: non-finite values print as "n/a".
std::string num(double x, int decimals = 3) {
  if (!std::isfinite(x)) return "n/a";
  return fmt::format("{:.{}f}", x, decimals);
}

std::string signed_num(double x) {
  if (!std::isfinite(x)) return "n/a";
  return fmt::format("{:+.3f}", x);
}

std::string one_decimal_percent(double fraction) {
  if (!std::isfinite(fraction)) return "n/a";
  return fmt::format("{:.1f}%", 100.0 * fraction);
}

// A p-value from its log10: "0.0123" down to 1e-3, then "2.5e-13" style. A log of minus infinity is
// a p-value below the range of double (the JSON report's 0); NaN is "n/a".
std::string p_from_log10(double log10_p) {
  if (std::isnan(log10_p) || log10_p == HUGE_VAL) return "n/a";
  if (log10_p == -HUGE_VAL || log10_p < -300) return "&lt; 1e-300";
  if (log10_p >= 0) return "1";
  if (log10_p > -3) return fmt::format("{:.3g}", std::pow(10.0, log10_p));
  double exponent = std::floor(log10_p);
  double mantissa = std::round(std::pow(10.0, log10_p - exponent) * 10.0) / 10.0;
  if (mantissa >= 10.0) mantissa = 1.0, exponent += 1.0;
  if (mantissa == std::floor(mantissa)) return fmt::format("{:.0f}e{:.0f}", mantissa, exponent);
  return fmt::format("{:.1f}e{:.0f}", mantissa, exponent);
}

std::string p_from_ln(double ln_p) {
  return p_from_log10(ln_p / std::numbers::ln10);
}

std::string relation_class(Relation r) {
  switch (r) {
    case Relation::kDerived:
      return "rel-derived";
    case Relation::kUpscaled:
      return "rel-upscaled";
    case Relation::kPruned:
      return "rel-pruned";
    case Relation::kPartiallyBorrowed:
      return "rel-partial";
    case Relation::kIndependent:
      return "rel-independent";
    case Relation::kInconclusive:
      return "rel-inconclusive";
  }
  return "rel-inconclusive";
}

std::string badge(Relation r) {
  return fmt::format("<span class=\"badge {}\">{}</span>", relation_class(r),
                     esc(relation_name(r)));
}

// The verdict as a headline in plain words; `a` and `b` are already escaped.
std::string headline(Relation r, const std::string& a, const std::string& b) {
  switch (r) {
    case Relation::kDerived:
      return fmt::format("{} was derived from {}: its weights were not trained from scratch.", b,
                         a);
    case Relation::kUpscaled:
      return fmt::format("{} was derived from {} by repeating layers (depth up-scaling).", b, a);
    case Relation::kPruned:
      return fmt::format("{} was derived from {} by removing layers or widths (pruning).", b, a);
    case Relation::kPartiallyBorrowed:
      return fmt::format(
          "{} shares some modules or layers with {}; the rest was not taken from it.", b, a);
    case Relation::kIndependent:
      return fmt::format("No evidence that {} was derived from {}.", b, a);
    case Relation::kInconclusive:
      return fmt::format("Not enough evidence to decide whether {} was derived from {}.", b, a);
  }
  return "";
}

std::string model_name(const TraceReport& r, size_t i) {
  return i < r.models.size() ? r.models[i].name : std::string("(unknown model)");
}

template <typename... Args>
void add(std::string& out, fmt::format_string<Args...> f, Args&&... args) {
  fmt::format_to(std::back_inserter(out), f, std::forward<Args>(args)...);
}

// ---- the page's style -------------------------------------------------------------------------

constexpr std::string_view kStyle = R"css(
:root{color-scheme:light}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 line-height:1.45;color:#1d232a;background:#fff;margin:0}
main{max-width:68rem;margin:0 auto;padding:1.5rem 1.25rem 3rem}
h1{font-size:1.7rem;margin:.2rem 0 .4rem}
h2{font-size:1.35rem;margin:2.2rem 0 .6rem;padding-top:.6rem;border-top:2px solid #d5dbe1}
h3{font-size:1.08rem;margin:1.5rem 0 .4rem}
p{margin:.35rem 0}
.lede{font-size:1.05rem}
.meta{color:#56606b;font-size:.88rem}
.note{color:#3e4852;font-size:.92rem}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em;
 overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border-bottom:1px solid #dfe3e8;padding:.28rem .6rem;text-align:left;vertical-align:top}
th{background:#f3f5f7;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.wide{overflow-x:auto}
.banner{border-left:.45rem solid;border-radius:.3rem;padding:.8rem 1rem;margin:.8rem 0}
.banner .rel{font-size:1.3rem;font-weight:700;text-transform:uppercase;letter-spacing:.03em}
.banner .head{font-size:1.08rem;font-weight:600;margin:.3rem 0}
.badge{display:inline-block;border-radius:.25rem;padding:0 .4rem;font-weight:600;
 font-size:.85rem;border:1px solid}
.rel-derived,.rel-upscaled,.rel-pruned{background:#fde4e1;border-color:#b3261e;color:#6b0f0a}
.rel-partial{background:#ffefd6;border-color:#c66a00;color:#6a3a00}
.rel-independent{background:#e2f3e4;border-color:#2e7d32;color:#1b4d1f}
.rel-inconclusive{background:#eceff1;border-color:#607d8b;color:#37474f}
.missing{background:#fff8e1;border:1px dashed #b28704;border-radius:.3rem;padding:.5rem .8rem;
 margin:.6rem 0}
.missing li{margin:.15rem 0}
.nc-label{font-weight:700;color:#8a5a00}
.low{display:inline-block;background:#fff3cd;border:1px solid #b28704;color:#6a4d00;
 font-weight:700;padding:0 .4rem;border-radius:.25rem;letter-spacing:.04em}
figure{margin:.8rem 0 1.2rem;display:inline-block;vertical-align:top;margin-right:1.5rem}
figcaption{font-size:.88rem;color:#3e4852;max-width:36rem}
svg{max-width:100%;height:auto}
svg text{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;font-size:10px;
 fill:#1d232a}
svg text.v{font-size:9px}
svg text.axis{font-size:11px;font-weight:600}
footer{margin-top:2.5rem;color:#56606b;font-size:.85rem;border-top:1px solid #dfe3e8;
 padding-top:.6rem}
a{color:#0b57d0}
@media print{
 main{max-width:none;padding:0}
 body{font-size:10.5pt}
 .banner,.badge,.missing,.low,th,svg{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 figure,.banner,tr{break-inside:avoid}
 h2{break-before:page;border-top:none}
 h2.first{break-before:auto}
 a{color:inherit;text-decoration:none}
}
)css";

// ---- heatmaps ---------------------------------------------------------------------------------

// Viridis, sampled: dark purple at 0, yellow at 1. It stays readable in greyscale print and for
// colour-blind readers.
std::string heat_colour(double v) {
  static constexpr std::array<std::array<double, 3>, 5> kStops = {
      {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}};
  v = std::clamp(v, 0.0, 1.0);
  const double x = v * static_cast<double>(kStops.size() - 1);
  const size_t k = std::min(static_cast<size_t>(x), kStops.size() - 2);
  const double t = x - static_cast<double>(k);
  std::array<int, 3> rgb{};
  for (size_t c = 0; c < 3; ++c) {
    rgb[c] = static_cast<int>(std::lround(kStops[k][c] + t * (kStops[k + 1][c] - kStops[k][c])));
  }
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

// The colour scale from 0 to 1, and the swatch for cells that were not computed.
std::string heat_legend() {
  constexpr int kX = 20, kWidth = 240;
  std::string out;
  out +=
      "<svg class=\"legend\" width=\"400\" height=\"46\" viewBox=\"0 0 400 46\" role=\"img\" "
      "aria-label=\"colour scale: CKA from 0 to 1\" font-family=\"system-ui, sans-serif\" "
      "font-size=\"10\">";
  out += "<defs><linearGradient id=\"heat-scale\" x1=\"0\" x2=\"1\" y1=\"0\" y2=\"0\">";
  for (int i = 0; i <= 10; ++i) {
    const double v = i / 10.0;
    add(out, "<stop offset=\"{:.1f}\" stop-color=\"{}\"/>", v, heat_colour(v));
  }
  out += "</linearGradient>";
  out +=
      "<pattern id=\"nc-legend\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
      "patternTransform=\"rotate(45)\"><path d=\"M0 0h6v6h-6z\" fill=\"#e4e7ea\"/>"
      "<path d=\"M0 0v6\" stroke=\"#8c959f\" stroke-width=\"2\"/></pattern></defs>";
  add(out,
      "<rect class=\"scale\" x=\"{}\" y=\"6\" width=\"{}\" height=\"14\" "
      "fill=\"url(#heat-scale)\" stroke=\"#8c959f\" stroke-width=\"0.5\"/>",
      kX, kWidth);
  for (int i = 0; i <= 4; ++i) {
    const int x = kX + kWidth * i / 4;
    add(out,
        "<path d=\"M{0} 20v4\" stroke=\"#56606b\"/><text x=\"{1}\" y=\"35\" "
        "text-anchor=\"{2}\">{3}</text>",
        x, i == 0 ? kX - 4 : x, i == 0 ? "start" : "middle",
        i == 0 ? std::string("0 or less") : fmt::format("{:.2f}", i / 4.0));
  }
  add(out,
      "<rect class=\"scale\" x=\"{}\" y=\"6\" width=\"14\" height=\"14\" "
      "fill=\"url(#nc-legend)\" stroke=\"#8c959f\" stroke-width=\"0.5\"/>"
      "<text x=\"{}\" y=\"17\">not computed</text>",
      kX + kWidth + 30, kX + kWidth + 50);
  out += "</svg>";
  return out;
}

// One map as an SVG grid: A's layers down, B's layers across. Each cell is one <rect> with a
// <title> tooltip; a NaN cell is hatched and says "not computed"; each B layer's best A layer (from
// the combined map) is outlined.
std::string heatmap_svg(const std::string& id, const std::string& title, const WeightEvidence& w,
                        const std::vector<double>& map) {
  const size_t na = w.a_layers.size(), nb = w.b_layers.size();
  if (na == 0 || nb == 0 || map.size() != na * nb) {
    return "<p class=\"note\"><span class=\"nc-label\">not computed:</span> no layer map.</p>";
  }
  const size_t largest = std::max(na, nb);
  const int cell = static_cast<int>(std::clamp<size_t>(540 / largest, 5, 36));
  const int label_every = std::max(1, (14 + cell - 1) / cell);
  const int left = 58, top = 46;
  const int width = left + static_cast<int>(nb) * cell + 8;
  const int height = top + static_cast<int>(na) * cell + 8;
  const bool values_in_cells = cell >= 30;

  std::string out;
  add(out,
      "<svg class=\"heatmap\" id=\"{}\" width=\"{}\" height=\"{}\" viewBox=\"0 0 {} {}\" "
      "role=\"img\" aria-label=\"{}\" font-family=\"system-ui, sans-serif\" font-size=\"10\">",
      id, width, height, width, height, esc(title));
  add(out,
      "<defs><pattern id=\"{}-nc\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" "
      "patternTransform=\"rotate(45)\"><path d=\"M0 0h6v6h-6z\" fill=\"#e4e7ea\"/>"
      "<path d=\"M0 0v6\" stroke=\"#8c959f\" stroke-width=\"2\"/></pattern></defs>",
      id);
  // Axis titles and layer labels.
  add(out,
      "<text class=\"axis\" font-size=\"11\" font-weight=\"600\" x=\"{}\" y=\"12\" "
      "text-anchor=\"middle\">B layer &#8594;</text>",
      left + static_cast<int>(nb) * cell / 2);
  add(out,
      "<text class=\"axis\" font-size=\"11\" font-weight=\"600\" transform=\"translate(13,{}) "
      "rotate(-90)\" "
      "text-anchor=\"middle\">&#8592; A layer</text>",
      top + static_cast<int>(na) * cell / 2);
  for (size_t j = 0; j < nb; ++j) {
    if (j % static_cast<size_t>(label_every) != 0) continue;
    add(out, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        left + static_cast<int>(j) * cell + cell / 2, top - 6, w.b_layers[j]);
  }
  for (size_t i = 0; i < na; ++i) {
    if (i % static_cast<size_t>(label_every) != 0) continue;
    add(out, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", left - 5,
        top + static_cast<int>(i) * cell + cell / 2 + 3, w.a_layers[i]);
  }
  // Cells.
  for (size_t i = 0; i < na; ++i) {
    for (size_t j = 0; j < nb; ++j) {
      const double v = map[i * nb + j];
      const int x = left + static_cast<int>(j) * cell, y = top + static_cast<int>(i) * cell;
      if (std::isfinite(v)) {
        add(out,
            "<rect class=\"cell\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\">"
            "<title>A layer {} &#215; B layer {}: CKA {}</title></rect>",
            x, y, cell, cell, heat_colour(v), w.a_layers[i], w.b_layers[j], num(v));
        if (values_in_cells) {
          add(out,
              "<text class=\"v\" font-size=\"9\" x=\"{}\" y=\"{}\" text-anchor=\"middle\" "
              "fill=\"{}\" "
              "style=\"fill:{}\">{}</text>",
              x + cell / 2, y + cell / 2 + 3, v > 0.55 ? "#1d232a" : "#ffffff",
              v > 0.55 ? "#1d232a" : "#ffffff", num(v, 2));
        }
      } else {
        add(out,
            "<rect class=\"cell nc\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
            "fill=\"url(#{}-nc)\"><title>A layer {} &#215; B layer {}: not computed</title>"
            "</rect>",
            x, y, cell, cell, id, w.a_layers[i], w.b_layers[j]);
      }
    }
  }
  // Outlines: each B layer's best A layer. Paths, not rects, so the cells are the only rects.
  for (const auto& m : w.layer_matches) {
    const auto col = std::find(w.b_layers.begin(), w.b_layers.end(), m.b_layer);
    const auto row = std::find(w.a_layers.begin(), w.a_layers.end(), m.best_a_layer);
    if (col == w.b_layers.end() || row == w.a_layers.end()) continue;
    const int x = left + static_cast<int>(col - w.b_layers.begin()) * cell;
    const int y = top + static_cast<int>(row - w.a_layers.begin()) * cell;
    add(out,
        "<path class=\"best\" d=\"M{} {}h{}v{}h-{}z\" fill=\"none\" stroke=\"#e8175d\" "
        "stroke-width=\"{}\"><title>best A layer for B layer {}: A layer {} (combined CKA {}, "
        "margin {})</title></path>",
        x + 1, y + 1, cell - 2, cell - 2, cell - 2, cell >= 12 ? 2 : 1, m.b_layer, m.best_a_layer,
        num(m.best), signed_num(m.margin));
  }
  out += "</svg>";
  return out;
}

// ---- sections ---------------------------------------------------------------------------------

void models_section(std::string& out, const TraceReport& r) {
  out +=
      "<h2 class=\"first\" id=\"models\">Models</h2>\n<div class=\"wide\"><table>"
      "<thead><tr><th>model</th><th>format</th><th>architecture</th><th class=\"n\">layers</th>"
      "<th class=\"n\">hidden</th><th class=\"n\">MLP width</th><th class=\"n\">vocabulary</th>"
      "<th class=\"n\">heads (KV)</th><th class=\"n\">experts</th><th class=\"n\">parameters</th>"
      "<th>tokenizer</th><th>weights</th></tr></thead><tbody>\n";
  for (const auto& m : r.models) {
    add(out,
        "<tr><td><strong>{}</strong><br><span class=\"mono meta\">{}</span></td><td>{}</td>"
        "<td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>"
        "<td class=\"n\">{}</td><td class=\"n\">{} ({})</td><td class=\"n\">{}</td>"
        "<td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>\n",
        esc(m.name), esc(m.source), esc(m.format), esc(m.arch.architecture), group_digits(m.arch.layers),
        group_digits(m.arch.hidden), group_digits(m.arch.ffn), group_digits(m.arch.vocab), group_digits(m.arch.heads),
        group_digits(m.arch.kv_heads), group_digits(m.arch.experts),
        group_digits(static_cast<int64_t>(std::min<uint64_t>(m.arch.parameters, INT64_MAX))),
        m.has_tokenizer ? "yes" : "<span class=\"nc-label\">no</span>",
        m.has_weights ? "yes" : "<span class=\"nc-label\">no</span>");
  }
  out += "</tbody></table></div>\n";
  bool any_notes = false;
  for (const auto& m : r.models) any_notes = any_notes || !m.notes.empty();
  if (any_notes) {
    out += "<div class=\"missing\"><strong>What could not be read from the models:</strong><ul>";
    for (const auto& m : r.models) {
      for (const auto& n : m.notes) add(out, "<li>{}: {}</li>", esc(m.name), esc(n));
    }
    out += "</ul></div>\n";
  }
}

void ranking_section(std::string& out, const TraceReport& r) {
  add(out,
      "<h2 id=\"ranking\">Ranking of the references</h2>\n<p>The candidate <strong>{}"
      "</strong> against {} reference fingerprints, strongest evidence of derivation first. "
      "p-values are corrected for {} comparisons (Bonferroni).</p>\n",
      esc(model_name(r, 0)), r.models.empty() ? 0 : r.models.size() - 1, group_digits(r.comparisons));
  out +=
      "<table class=\"ranking\"><thead><tr><th class=\"n\">rank</th><th>reference</th>"
      "<th>verdict</th><th class=\"n\">p</th><th>decided by</th></tr></thead><tbody>\n";
  for (size_t k = 0; k < r.pairs.size(); ++k) {
    const auto& p = r.pairs[k];
    add(out,
        "<tr><td class=\"n\">{}</td><td><a href=\"#pair-{}\">{}</a></td><td>{}</td>"
        "<td class=\"n\">{}</td><td>{}</td></tr>\n",
        k + 1, k, esc(model_name(r, p.a)), badge(p.verdict.relation),
        p_from_log10(p.verdict.log10_p), esc(p.verdict.decided_by));
  }
  out += "</tbody></table>\n";
}

void verdict_part(std::string& out, const PairResult& p, const std::string& a,
                  const std::string& b) {
  const auto& v = p.verdict;
  add(out,
      "<div class=\"banner {}\"><div class=\"rel\">{}</div><p class=\"head\">{}</p>"
      "<p class=\"summary\">{}</p><p class=\"meta\">decided by {}; p = {} (the chance of "
      "evidence this strong if {} had been trained independently of {})</p></div>\n",
      relation_class(v.relation), esc(relation_name(v.relation)), headline(v.relation, a, b),
      esc(v.summary), v.decided_by.empty() ? "n/a" : esc(v.decided_by), p_from_log10(v.log10_p), b,
      a);
  if (!v.reasons.empty()) {
    out += "<h3>Because</h3><ul class=\"reasons\">";
    for (const auto& reason : v.reasons) add(out, "<li>{}</li>", esc(reason));
    out += "</ul>\n";
  }
  if (!v.borrowed.empty()) {
    out += "<h3>Borrowed modules</h3><ul class=\"borrowed\">";
    for (const auto& m : v.borrowed) add(out, "<li>{}</li>", esc(m));
    out += "</ul>\n";
  }
  // The verdict's missing evidence and the weight evidence's, once each.
  std::vector<std::string> missing = v.missing;
  for (const auto& m : p.weights.missing) {
    if (std::find(missing.begin(), missing.end(), m) == missing.end()) missing.push_back(m);
  }
  if (!missing.empty()) {
    out +=
        "<div class=\"missing\"><strong>Missing evidence.</strong> Missing evidence never "
        "yields a confident verdict.<ul>";
    for (const auto& m : missing) {
      add(out, "<li><span class=\"nc-label\">not computed:</span> {}</li>", esc(m));
    }
    out += "</ul></div>\n";
  }
  if (!v.modules.empty()) {
    out +=
        "<h3>Per module</h3><div class=\"wide\"><table class=\"modules\"><thead><tr>"
        "<th>module</th><th>relation</th><th>evidence</th></tr></thead><tbody>\n";
    for (const auto& m : v.modules) {
      add(out, "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n", esc(m.module), badge(m.relation),
          esc(m.evidence));
    }
    out += "</tbody></table></div>\n";
  }
}

void tokenizer_part(std::string& out, const TokenizerComparison& c) {
  std::string relation = esc(tokenizer_relation_name(c.relation));
  if (c.direction != ExtensionDirection::kNone) {
    relation += c.direction == ExtensionDirection::kBExtendsA ? " (B extends A)" : " (A extends B)";
  } else if (c.lineage_basis != LineageBasis::kNone) {
    relation += fmt::format(" ({})", esc(lineage_basis_name(c.lineage_basis)));
  }
  out += "<h3>Tokenizer</h3>\n";
  add(out, "<p><strong>{}</strong> — {}</p>\n", relation, esc(c.explanation));
  out += "<table class=\"tokenizer\"><tbody>\n";
  add(out, "<tr><th>size</th><td>A: {} tokens, {} merges; B: {} tokens, {} merges</td></tr>\n",
      group_digits(c.a.tokens), group_digits(c.a.merges), group_digits(c.b.tokens), group_digits(c.b.merges));
  add(out,
      "<tr><th>shared tokens</th><td>{} ({} of A, {} of B); {} beyond the byte alphabet and "
      "added tokens</td></tr>\n",
      group_digits(c.shared_tokens), one_decimal_percent(c.overlap_a), one_decimal_percent(c.overlap_b), group_digits(c.shared_ordinary));
  add(out,
      "<tr><th>identical ids</th><td>{} of the {} shared ordinary tokens keep their id ({})"
      "</td></tr>\n",
      group_digits(c.identical_ids), group_digits(c.shared_ordinary),
      c.identical_id_fraction.value ? one_decimal_percent(*c.identical_id_fraction.value) : "n/a");
  add(out,
      "<tr><th>extension</th><td>{} tokens of A at the same id in B ({} of A's ordinary "
      "tokens); {} tokens of B at the same id in A ({} of B's ordinary tokens); {} only in A, "
      "{} only in B</td></tr>\n",
      group_digits(c.kept_ids_a_in_b), group_digits(c.kept_ordinary_a_in_b), group_digits(c.kept_ids_b_in_a),
      group_digits(c.kept_ordinary_b_in_a), group_digits(c.tokens_only_in_a), group_digits(c.tokens_only_in_b));
  add(out,
      "<tr><th>merges</th><td>{} shared ({} of A, {} of B); common leading merges {}</td>"
      "</tr>\n",
      group_digits(c.shared_merges), one_decimal_percent(c.merges_shared_a), one_decimal_percent(c.merges_shared_b),
      group_digits(c.common_merge_prefix));
  out +=
      "</tbody></table>\n<p class=\"note\">Vocabulary overlap alone misleads (a small "
      "vocabulary is mostly contained in any large one); what survives derivation is the "
      "token order and identical ids. Sharing a tokenizer is common and is not by itself "
      "evidence that the weights were derived.</p>\n";
}

void weights_part(std::string& out, const WeightEvidence& w, const std::string& id,
                  const std::string& a, const std::string& b) {
  out += "<h3>Layer map</h3>\n";
  add(out, "<p>Probe tokens: {} shared ({} for {}, {} for {}).</p>\n", group_digits(w.shared_probes),
      group_digits(w.probes_a), a, group_digits(w.probes_b), b);
  if (!w.computable || w.a_layers.empty() || w.b_layers.empty()) {
    out +=
        "<p><span class=\"nc-label\">not computed:</span> the layer map and the neuron tests "
        "need probe responses on both sides (see the missing evidence above).</p>\n";
  } else {
    add(out,
        "<p class=\"note\">How similar each layer of {} (rows, down) is to each layer of {} "
        "(columns, across): unbiased linear CKA of the layers' responses to the probe "
        "tokens, from 0 (unrelated) to 1 (the same). The outlined cell in each column is "
        "that B layer's best A layer on the combined map. The map is descriptive: "
        "independently trained models can be similar too. Hover over a cell for its "
        "value.</p>\n",
        a, b);
    out += heat_legend();
    out += "<div class=\"maps\">\n";
    const std::array<std::pair<const char*, const std::vector<double>*>, 3> maps = {
        {{"attention (queries and keys)", &w.attention_map},
         {"MLP (gates and ups)", &w.mlp_map},
         {"combined", &w.combined_map}}};
    const std::array<const char*, 3> keys = {"attention", "mlp", "combined"};
    for (size_t k = 0; k < maps.size(); ++k) {
      add(out,
          "<figure>{}<figcaption><strong>{}</strong>: rows are layers of {}, columns layers "
          "of {}.</figcaption></figure>\n",
          heatmap_svg(fmt::format("{}-{}", id, keys[k]), maps[k].first, w, *maps[k].second),
          maps[k].first, a, b);
    }
    const bool awm = !w.awm_map.empty() && w.awm_aligned_dims > 0;
    if (awm) {
      add(out,
          "<figure>{}<figcaption><strong>AWM (weights)</strong>: CKA of the attention Q and K "
          "weights of {} (rows) and {} (columns) after aligning their hidden dimensions "
          "through the shared tokens' embeddings (Zeng et al., ICLR 2026); {} dimensions "
          "aligned, mean |r| {} (1 would be a permuted copy).</figcaption></figure>\n",
          heatmap_svg(fmt::format("{}-awm", id), "AWM (weights)", w, w.awm_map), a, b,
          group_digits(w.awm_aligned_dims), num(w.awm_alignment));
    }
    out += "</div>\n";
    if (!awm) {
      out +=
          "<p class=\"note\"><span class=\"nc-label\">not computed:</span> the AWM weight map "
          "(hidden dimensions aligned through the shared tokens' embeddings).</p>\n";
    }
    if (!w.layer_matches.empty()) {
      out +=
          "<div class=\"wide\"><table class=\"matches\"><thead><tr><th class=\"n\">B layer</th>"
          "<th class=\"n\">best A layer</th><th class=\"n\">CKA</th><th class=\"n\">margin over "
          "the next</th></tr></thead><tbody>\n";
      for (const auto& m : w.layer_matches) {
        add(out,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>"
            "<td class=\"n\">{}</td></tr>\n",
            m.b_layer, m.best_a_layer, num(m.best), signed_num(m.margin));
      }
      out += "</tbody></table></div>\n";
    }
  }

  out += "<h3>Neuron-order tests</h3>\n";
  add(out,
      "<p class=\"note\">Each MLP neuron of a layer of {} is matched to a neuron of a layer "
      "of {} by its responses. If {} was trained from its own random start, the order of its "
      "neurons is arbitrary, so the matched neurons keep the same order (rho near 1, a tiny "
      "p) only when one model's weights come from the other's. The gate/up test finds the "
      "matching twice and checks that both agree; it survives a reshuffling of the neurons "
      "and is judged at a stricter level.</p>\n",
      a, b, a);
  if (w.neuron_tests.empty()) {
    out += "<p><span class=\"nc-label\">not computed:</span> no layer pair was tested.</p>\n";
  } else {
    out +=
        "<div class=\"wide\"><table class=\"neurons\"><thead><tr><th class=\"n\">A layer</th>"
        "<th class=\"n\">B layer</th><th>expert</th><th class=\"n\">matched</th>"
        "<th class=\"n\">rho (order)</th><th class=\"n\">p (order)</th>"
        "<th class=\"n\">rho (gate/up)</th><th class=\"n\">p (gate/up)</th>"
        "<th class=\"n\">mean matched r</th></tr></thead><tbody>\n";
    for (const auto& t : w.neuron_tests) {
      const std::string expert = t.a_expert >= 0 || t.b_expert >= 0
                                     ? fmt::format("{} &#8594; {}", t.a_expert, t.b_expert)
                                     : std::string("dense");
      add(out,
          "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}"
          "</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>"
          "<td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
          t.a_layer, t.b_layer, expert, group_digits(t.matched), num(t.rho_identity),
          p_from_ln(t.log_p_identity), num(t.rho_gate_up), p_from_ln(t.log_p_gate_up),
          num(t.mean_matched_correlation));
    }
    out += "</tbody></table></div>\n";
  }
  add(out,
      "<p class=\"combined\">Combined over {} tests (Fisher's method): neuron order p = {}; "
      "gate/up agreement p = {} (approximate).</p>\n",
      group_digits(w.tests_combined), p_from_ln(w.log_p_identity), p_from_ln(w.log_p_gate_up));

  out += "<h3>Copied matrices</h3>\n";
  add(out,
      "<p>Of {} matrices of {}: <strong>{}</strong> identical (the same bytes), "
      "<strong>{}</strong> near-identical (equal up to rounding, e.g. a dtype change), "
      "<strong>{}</strong> similar (strongly aligned with a matrix of {}: a modified "
      "copy).</p>\n",
      group_digits(w.b_matrices), b, group_digits(w.b_identical), group_digits(w.b_near_identical), group_digits(w.b_similar),
      a);
  if (!w.copies.empty()) {
    out +=
        "<div class=\"wide\"><table class=\"copies\"><thead><tr><th>tensor of B</th>"
        "<th>tensor of A</th><th>kind</th><th class=\"n\">relative distance</th>"
        "<th class=\"n\">cosine</th></tr></thead><tbody>\n";
    for (size_t k = 0; k < w.copies.size() && k < kMaxCopiesShown; ++k) {
      const auto& c = w.copies[k];
      const char* kind = c.identical        ? "identical"
                         : c.near_identical ? "near-identical"
                                            : "similar";
      add(out,
          "<tr><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td>"
          "<td class=\"n\">{}</td><td class=\"n\">{}</td></tr>\n",
          esc(c.b_name), esc(c.a_name), kind, num(c.relative_distance), num(c.cosine));
    }
    out += "</tbody></table></div>\n";
    if (w.copies.size() > kMaxCopiesShown) {
      add(out, "<p class=\"note\">… and {} more (the JSON report lists them all).</p>\n",
          group_digits(static_cast<int64_t>(w.copies.size() - kMaxCopiesShown)));
    }
  }

  out += "<h3>Norm gains <span class=\"low\">LOW EVIDENCE</span></h3>\n";
  out +=
      "<p class=\"note\">Raw cosine similarity of RMSNorm gain vectors is <strong>not "
      "evidence</strong>: the gains start at 1.0 and stay near it, so the raw cosine of any two "
      "models — even unrelated ones, even two layers of one model — is close to 1. In January "
      "2026 an accusation that Solar Open was derived from GLM-4.5-Air rested on a raw cosine "
      "of about 0.99; the centred statistic (Pearson) was about 0.01, the same as for "
      "unrelated models, and the accusation was withdrawn. Only the Pearson values below carry "
      "any information, and norm gains are a tiny fraction of a model's parameters.</p>\n";
  if (w.norms.empty()) {
    out += "<p><span class=\"nc-label\">not computed:</span> no norm gains to compare.</p>\n";
    return;
  }
  double pearson = 0, cosine = 0;
  for (const auto& n : w.norms) pearson += n.pearson, cosine += n.raw_cosine;
  pearson /= static_cast<double>(w.norms.size());
  cosine /= static_cast<double>(w.norms.size());
  add(out,
      "<p>Mean over {} matched norms: Pearson <strong>{}</strong> (between layers of {} "
      "itself: {}); raw cosine {} (between layers of {} itself: {}).</p>\n",
      group_digits(static_cast<int64_t>(w.norms.size())), num(pearson), a, num(w.norm_pearson_within_a),
      num(cosine), a, num(w.norm_raw_cosine_within_a));
  out +=
      "<div class=\"wide\"><table class=\"norms\"><thead><tr><th class=\"n\">A layer</th>"
      "<th class=\"n\">B layer</th><th>norm</th><th class=\"n\">Pearson</th>"
      "<th class=\"n\">raw cosine (not evidence)</th></tr></thead><tbody>\n";
  const auto layer = [](int32_t l) { return l < 0 ? std::string("final") : std::to_string(l); };
  for (const auto& n : w.norms) {
    add(out,
        "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td>"
        "<td class=\"n\">{}</td></tr>\n",
        layer(n.a_layer), layer(n.b_layer), esc(n.role), num(n.pearson), num(n.raw_cosine));
  }
  out += "</tbody></table></div>\n";
}

}  // namespace

std::string report_html(const TraceReport& r) {
  const bool library = r.mode == "library";
  std::string title;
  if (library) {
    title = fmt::format("referee trace: {} against {} references", model_name(r, 0),
                        r.models.empty() ? 0 : r.models.size() - 1);
  } else if (r.pairs.size() == 1) {
    title = fmt::format("referee trace: {} vs {}", model_name(r, r.pairs[0].a),
                        model_name(r, r.pairs[0].b));
  } else {
    title = fmt::format("referee trace: {} models", r.models.size());
  }

  std::string out;
  out.reserve(64 * 1024);
  out +=
      "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  add(out, "<title>{}</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n", esc(title), kStyle);
  out += "<header>\n<h1>Was it trained from scratch?</h1>\n";
  if (library) {
    add(out,
        "<p class=\"lede\">The candidate model <strong>{}</strong> was compared with {} "
        "reference models, to find out whether its weights were derived from any of them "
        "(fine-tuned, further trained, up-scaled, pruned or copied) rather than trained from "
        "scratch.</p>\n",
        esc(model_name(r, 0)), r.models.empty() ? 0 : r.models.size() - 1);
  } else {
    std::string names;
    for (size_t i = 0; i < r.models.size(); ++i) {
      if (i > 0) names += i + 1 == r.models.size() ? " and " : ", ";
      names += "<strong>" + esc(r.models[i].name) + "</strong>";
    }
    add(out,
        "<p class=\"lede\">The models {} were compared pair by pair, to find out whether one "
        "model's weights were derived from the other's (fine-tuned, further trained, "
        "up-scaled, pruned or copied) rather than trained from scratch. In each pair, B is "
        "judged against A.</p>\n",
        names);
  }
  add(out, "<p class=\"meta\">referee {} (git {}) &#183; {} pair{} judged{}</p>\n</header>\n",
      esc(kVersion), esc(kGitHash), r.pairs.size(), r.pairs.size() == 1 ? "" : "s",
      r.comparisons > 1
          ? fmt::format(" &#183; p-values corrected for {} comparisons", group_digits(r.comparisons))
          : std::string());
  out +=
      "<p class=\"note\"><strong>How to read this page.</strong> A verdict is "
      "<em>derived</em>, <em>up-scaled</em> or <em>pruned</em> when B's weights come from A's, "
      "<em>partially borrowed</em> when some modules or layers come from A, "
      "<em>independent</em> when the tests find no shared weights, and <em>inconclusive</em> "
      "when evidence is missing or in between. A p-value is the chance of seeing evidence this "
      "strong if the two models had been trained independently: tiny values (such as 1e-12) "
      "mean derivation.</p>\n";

  models_section(out, r);
  if (library) ranking_section(out, r);

  for (size_t k = 0; k < r.pairs.size(); ++k) {
    const auto& p = r.pairs[k];
    const std::string a = esc(model_name(r, p.a)), b = esc(model_name(r, p.b));
    add(out, "<section class=\"pair\" id=\"pair-{}\">\n<h2>{}A: {} &#160;vs&#160; B: {}</h2>\n", k,
        library ? fmt::format("{}. ", k + 1) : std::string(), a, b);
    verdict_part(out, p, a, b);
    if (p.tokenizer) tokenizer_part(out, *p.tokenizer);
    weights_part(out, p.weights, fmt::format("map-{}", k), a, b);
    out += "</section>\n";
  }

  add(out,
      "<footer>Made by referee {} (git {}). Self-contained: no scripts, no network "
      "resources. The JSON report (referee.trace/1) holds every number on this page.</footer>\n"
      "</main>\n</body>\n</html>\n",
      esc(kVersion), esc(kGitHash));
  return out;
}

}  // namespace referee::trace
