#include "eval/backend.h"

#include <fmt/format.h>

namespace referee::eval {

BackendError::BackendError(Kind kind, std::string endpoint, std::string message,
                           std::optional<double> retry_after_s)
    : kind_(kind),
      endpoint_(std::move(endpoint)),
      message_(std::move(message)),
      retry_after_s_(retry_after_s) {
  what_ = fmt::format("{}: {}", endpoint_, message_);
}

Backend::~Backend() = default;

std::string strip_reasoning(const std::string& text, const ReasoningTags& tags) {
  if (tags.open.empty() || tags.close.empty()) return text;
  std::string out;
  bool removed = false;
  size_t pos = 0;
  // A close tag before any open tag: the reasoning began in the prompt.
  const size_t first_open = text.find(tags.open);
  const size_t first_close = text.find(tags.close);
  if (first_close != std::string::npos && (first_open == std::string::npos || first_close < first_open)) {
    pos = first_close + tags.close.size();
    removed = true;
  }
  while (pos < text.size()) {
    const size_t open = text.find(tags.open, pos);
    if (open == std::string::npos) {
      out.append(text, pos, std::string::npos);
      break;
    }
    out.append(text, pos, open - pos);
    removed = true;
    const size_t close = text.find(tags.close, open + tags.open.size());
    if (close == std::string::npos) break;  // never closed: the rest is reasoning
    pos = close + tags.close.size();
  }
  if (removed) {
    const size_t start = out.find_first_not_of(" \t\r\n");
    out = start == std::string::npos ? std::string() : out.substr(start);
  }
  return out;
}

std::string cut_at_stop(const std::string& text, const std::vector<std::string>& until) {
  size_t cut = text.size();
  for (const auto& stop : until) {
    if (stop.empty()) continue;
    const size_t at = text.find(stop);
    if (at != std::string::npos) cut = std::min(cut, at);
  }
  return text.substr(0, cut);
}

}  // namespace referee::eval
