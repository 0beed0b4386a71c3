// The trace report in three forms: aligned text for the terminal, a JSON document with a stable
// schema (referee.trace/1, docs/json/trace.md) for machines, and one self-contained HTML page
// (inline SVG heatmaps, no network) for an evaluator who is not a specialist.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "trace/trace.h"

namespace referee::trace {

nlohmann::ordered_json report_json(const TraceReport& report);
std::string report_text(const TraceReport& report);
std::string report_html(const TraceReport& report);

}  // namespace referee::trace
