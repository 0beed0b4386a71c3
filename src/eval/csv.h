// CSV as Hugging Face `datasets` (pandas) reads a benchmark's released files: RFC 4180 records
// (quoted fields, doubled quotes, newlines inside quotes, CRLF or LF), a header row naming the
// columns, an optional UTF-8 byte order mark. Input arrives in pieces (CsvReader::feed) so a file is
// never held whole; every size is bounded (CsvLimits) and every refusal names the source and line.
// After the last row, each column gets one type the way pandas infers it: all non-empty cells
// integers -> int, all numbers -> float, all True/False -> bool, else string; empty cells -> null.
// Not thread-safe; one reader per file.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace referee::eval {

struct CsvLimits {
  int64_t max_rows = 10'000'000;
  int64_t max_columns = 4096;
  int64_t max_field_bytes = 16 << 20;    // one cell
  int64_t max_total_bytes = int64_t{8} << 30;  // the whole file
};

class CsvReader {
 public:
  // `source` names the input in messages (usually the file path); `delimiter` is ',' or '\t'.
  explicit CsvReader(std::string source, char delimiter = ',', CsvLimits limits = {});

  void feed(std::string_view bytes);  // throws referee::Error on malformed input
  // Ends the input and returns the rows as objects, columns in header order, typed per column.
  std::vector<nlohmann::ordered_json> finish();

 private:
  void consume(std::string_view bytes);
  void end_field();
  void end_record();
  // A delimiter ends the field, a newline (or CR) the record; returns false for any other byte.
  bool end_field_or_record(char ch);
  [[noreturn]] void fail(int64_t line, const std::string& what) const;

  std::string source_;
  char delimiter_;
  CsvLimits limits_;
  // Tokenizer state.
  enum class State { kFieldStart, kUnquoted, kQuoted, kQuoteInQuoted, kAfterCr };
  State state_ = State::kFieldStart;
  bool bom_checked_ = false;
  std::string bom_pending_;
  std::string field_;
  bool field_quoted_ = false;
  std::vector<std::string> record_;
  std::vector<bool> record_quoted_;
  int64_t line_ = 1;          // current physical line
  int64_t record_line_ = 1;   // line where the current record started
  int64_t total_bytes_ = 0;
  // Parsed content.
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;  // raw cells
  std::vector<int64_t> row_lines_;
};

// Convenience: a whole CSV text in memory (the fuzz target's and tests' entry point).
std::vector<nlohmann::ordered_json> parse_csv(std::string_view text, std::string_view source,
                                              char delimiter = ',', CsvLimits limits = {});

// True if `text` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
// On failure, `bad_offset` (if given) receives the byte offset of the first bad sequence.
bool is_valid_utf8(std::string_view text, size_t* bad_offset = nullptr);

}  // namespace referee::eval
