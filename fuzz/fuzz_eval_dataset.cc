// Fuzz target: the dataset parsers `referee eval` feeds downloaded benchmark files to: CSV (comma
// and tab), JSON Lines, and JSON documents. Small limits keep each input quick; only referee::Error
// may escape. The first byte picks the parser, the rest is the file's content.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "eval/csv.h"
#include "eval/dataset.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  referee::eval::ReadLimits limits;
  limits.max_rows = 1000;
  limits.max_line_bytes = 1 << 16;
  limits.max_depth = 32;
  referee::eval::CsvLimits csv_limits;
  csv_limits.max_rows = 1000;
  csv_limits.max_columns = 64;
  csv_limits.max_field_bytes = 1 << 16;
  try {
    switch (selector % 4) {
      case 0: {
        // Fed in two pieces split at a point chosen by the selector, to exercise the streaming.
        referee::eval::CsvReader reader("fuzz.csv", ',', csv_limits);
        const size_t cut = text.empty() ? 0 : (selector / 4) % (text.size() + 1);
        reader.feed(text.substr(0, cut));
        reader.feed(text.substr(cut));
        for (const auto& row : reader.finish()) (void)row.dump();
        break;
      }
      case 1:
        for (const auto& row : referee::eval::parse_csv(text, "fuzz.tsv", '\t', csv_limits))
          (void)row.dump();
        break;
      case 2:
        for (const auto& row : referee::eval::parse_json_lines(text, "fuzz.jsonl", limits))
          (void)row.dump();
        break;
      default:
        for (const auto& row : referee::eval::parse_json_file_text(text, "fuzz.json", {}, limits))
          (void)row.dump();
        break;
    }
  } catch (const referee::Error&) {
  }
  return 0;
}
