#include "eval/csv.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <unordered_set>

#include "util/error.h"

namespace referee::eval {
namespace {

bool is_integer(std::string_view s, int64_t* out) {
  if (s.empty()) return false;
  size_t i = 0;
  if (s[0] == '+' || s[0] == '-') i = 1;
  if (i == s.size()) return false;
  for (size_t k = i; k < s.size(); ++k)
    if (s[k] < '0' || s[k] > '9') return false;
  const char* begin = s.data() + (s[0] == '+' ? 1 : 0);
  auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

// A decimal number as pandas' C parser accepts it: sign, digits with an optional point, exponent;
// also inf/nan spellings are left out on purpose (they would turn text columns into floats).
bool is_number(std::string_view s, double* out) {
  size_t i = 0, n = s.size();
  if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
  size_t digits = 0;
  while (i < n && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  if (i < n && s[i] == '.') {
    ++i;
    while (i < n && s[i] >= '0' && s[i] <= '9') ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    size_t exp_digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  if (i != n) return false;
  std::string copy(s);
  *out = std::strtod(copy.c_str(), nullptr);
  return std::isfinite(*out);
}

int bool_value(std::string_view s) {  // 1 true, 0 false, -1 neither
  if (s == "True" || s == "true" || s == "TRUE") return 1;
  if (s == "False" || s == "false" || s == "FALSE") return 0;
  return -1;
}

}  // namespace

bool is_valid_utf8(std::string_view text, size_t* bad_offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4, cp = c & 0x07;
    } else {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    if (i + len > n) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) {
        if (bad_offset) *bad_offset = i;
        return false;
      }
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    const bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

CsvReader::CsvReader(std::string source, char delimiter, CsvLimits limits)
    : source_(std::move(source)), delimiter_(delimiter), limits_(limits) {}

void CsvReader::fail(int64_t line, const std::string& what) const {
  throw Error::corrupt(source_, fmt::format("line {}: {}", line, what));
}

void CsvReader::end_field() {
  if (static_cast<int64_t>(record_.size()) >= limits_.max_columns)
    fail(record_line_, fmt::format("more than {} columns", limits_.max_columns));
  size_t bad = 0;
  if (!is_valid_utf8(field_, &bad))
    fail(record_line_, fmt::format("column {} is not valid UTF-8 (bad byte at offset {} of the "
                                   "field); save the file as UTF-8",
                                   record_.size() + 1, bad));
  record_.push_back(std::move(field_));
  record_quoted_.push_back(field_quoted_);
  field_.clear();
  field_quoted_ = false;
}

bool CsvReader::end_field_or_record(char ch) {
  if (ch == delimiter_) {
    end_field();
    state_ = State::kFieldStart;
    return true;
  }
  if (ch == '\n' || ch == '\r') {
    ++line_;
    end_record();
    state_ = ch == '\r' ? State::kAfterCr : State::kFieldStart;
    return true;
  }
  return false;
}

void CsvReader::end_record() {
  end_field();
  const bool blank = record_.size() == 1 && record_[0].empty() && !record_quoted_[0];
  if (!blank) {
    if (header_.empty()) {
      std::unordered_set<std::string> seen;
      for (size_t c = 0; c < record_.size(); ++c) {
        std::string name = record_[c].empty() ? fmt::format("Unnamed: {}", c) : record_[c];
        if (!seen.insert(name).second)
          fail(record_line_, fmt::format("the header names column '{}' twice", name));
        header_.push_back(std::move(name));
      }
    } else {
      if (record_.size() != header_.size())
        fail(record_line_, fmt::format("{} fields, but the header on line 1 has {} columns",
                                       record_.size(), header_.size()));
      if (static_cast<int64_t>(rows_.size()) >= limits_.max_rows)
        fail(record_line_, fmt::format("more than {} rows", limits_.max_rows));
      rows_.push_back(std::move(record_));
      row_lines_.push_back(record_line_);
    }
  }
  record_.clear();
  record_quoted_.clear();
  record_line_ = line_;
}

void CsvReader::feed(std::string_view bytes) {
  if (!bom_checked_) {  // the byte order mark may arrive split across pieces
    static constexpr std::string_view kBom("\xEF\xBB\xBF", 3);
    const size_t take = std::min(bytes.size(), 3 - bom_pending_.size());
    bom_pending_.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (bom_pending_.size() < 3 && kBom.substr(0, bom_pending_.size()) == bom_pending_) return;
    bom_checked_ = true;
    const std::string head = std::move(bom_pending_);
    bom_pending_.clear();
    std::string_view h = head;
    if (h == kBom) h.remove_prefix(3);
    consume(h);
  }
  consume(bytes);
}

void CsvReader::consume(std::string_view bytes) {
  total_bytes_ += static_cast<int64_t>(bytes.size());
  if (total_bytes_ > limits_.max_total_bytes)
    fail(line_, fmt::format("the file is larger than {} bytes", limits_.max_total_bytes));
  for (const char ch : bytes) {
    if (state_ == State::kAfterCr) {
      state_ = State::kFieldStart;
      if (ch == '\n') continue;  // CRLF: the record already ended at CR
    }
    switch (state_) {
      case State::kFieldStart:
        if (ch == '"') {
          state_ = State::kQuoted;
          field_quoted_ = true;
          break;
        }
        state_ = State::kUnquoted;
        [[fallthrough]];
      case State::kUnquoted:
        if (!end_field_or_record(ch)) field_.push_back(ch);
        break;
      case State::kQuoted:
        if (ch == '"') {
          state_ = State::kQuoteInQuoted;
        } else {
          if (ch == '\n') ++line_;
          field_.push_back(ch);
        }
        break;
      case State::kQuoteInQuoted:
        if (ch == '"') {
          field_.push_back('"');
          state_ = State::kQuoted;
        } else if (!end_field_or_record(ch)) {
          fail(line_, "a character after a closing quote (a quote inside a quoted field must "
                      "be doubled: \"\")");
        }
        break;
      case State::kAfterCr:
        break;  // handled above
    }
    if (static_cast<int64_t>(field_.size()) > limits_.max_field_bytes)
      fail(record_line_, fmt::format("a field longer than {} bytes", limits_.max_field_bytes));
  }
}

std::vector<nlohmann::ordered_json> CsvReader::finish() {
  if (!bom_checked_) {  // fewer than three bytes in all, a prefix of the BOM: plain content
    bom_checked_ = true;
    const std::string head = std::move(bom_pending_);
    bom_pending_.clear();
    consume(head);
  }
  if (state_ == State::kQuoted)
    fail(record_line_, "a quoted field is never closed (unterminated quote)");
  if (state_ == State::kUnquoted || state_ == State::kQuoteInQuoted ||
      (state_ == State::kFieldStart && !record_.empty()))
    end_record();
  if (header_.empty()) throw Error::corrupt(source_, "the file is empty (no header row)");

  enum class Type { kInt, kFloat, kBool, kString };
  const size_t ncol = header_.size();
  std::vector<Type> types(ncol, Type::kInt);
  for (size_t c = 0; c < ncol; ++c) {
    bool can_int = true, can_float = true, can_bool = true;
    bool any = false;
    for (const auto& row : rows_) {
      const std::string& cell = row[c];
      if (cell.empty()) continue;
      any = true;
      int64_t iv;
      double dv;
      if (can_int && !is_integer(cell, &iv)) can_int = false;
      if (can_float && !is_number(cell, &dv)) can_float = false;
      if (can_bool && bool_value(cell) < 0) can_bool = false;
      if (!can_int && !can_float && !can_bool) break;
    }
    types[c] = !any        ? Type::kString
               : can_int   ? Type::kInt
               : can_float ? Type::kFloat
               : can_bool  ? Type::kBool
                           : Type::kString;
  }
  std::vector<nlohmann::ordered_json> out;
  out.reserve(rows_.size());
  for (auto& row : rows_) {
    nlohmann::ordered_json obj = nlohmann::ordered_json::object();
    for (size_t c = 0; c < ncol; ++c) {
      std::string& cell = row[c];
      if (cell.empty()) {
        obj[header_[c]] = nullptr;
        continue;
      }
      switch (types[c]) {
        case Type::kInt: {
          int64_t v = 0;
          is_integer(cell, &v);
          obj[header_[c]] = v;
          break;
        }
        case Type::kFloat: {
          double v = 0;
          is_number(cell, &v);
          obj[header_[c]] = v;
          break;
        }
        case Type::kBool:
          obj[header_[c]] = bool_value(cell) == 1;
          break;
        case Type::kString:
          obj[header_[c]] = std::move(cell);
          break;
      }
    }
    out.push_back(std::move(obj));
  }
  rows_.clear();
  return out;
}

std::vector<nlohmann::ordered_json> parse_csv(std::string_view text, std::string_view source,
                                              char delimiter, CsvLimits limits) {
  CsvReader reader{std::string(source), delimiter, limits};
  reader.feed(text);
  return reader.finish();
}

}  // namespace referee::eval
