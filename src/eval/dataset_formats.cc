// The file formats behind dataset.h: JSON Lines, JSON documents, CSV/TSV (eval/csv.h), each read
// with bounded allocations and each refusal naming the file and line.
#include <algorithm>
#include <fstream>
#include <optional>

#include "eval/csv.h"
#include "eval/dataset.h"
#include "util/error.h"

namespace referee::eval {
namespace {

constexpr std::string_view kBom("\xEF\xBB\xBF", 3);
constexpr size_t kListedBadLines = 10;

struct TooDeep {};

// Parses one JSON value, refusing nesting deeper than `max_depth` (nlohmann reports depth in its
// parser callback, before building the nested value).
Document parse_bounded(std::string_view text, int max_depth) {
  auto callback = [max_depth](int depth, nlohmann::ordered_json::parse_event_t event,
                              Document&) {
    if ((event == nlohmann::ordered_json::parse_event_t::object_start ||
         event == nlohmann::ordered_json::parse_event_t::array_start) &&
        depth >= max_depth)
      throw TooDeep{};
    return true;
  };
  return Document::parse(text.begin(), text.end(), callback);
}

// Why a JSON text failed, in a few words (nlohmann's message minus its "[json.exception...]" tag).
std::string json_reason(const std::exception& e) {
  std::string what = e.what();
  if (auto pos = what.find("] "); what.rfind("[json.exception", 0) == 0 && pos != std::string::npos)
    what = what.substr(pos + 2);
  // One line of JSON Lines: its line number is given already; keep only the column.
  constexpr std::string_view kFirstLine = "parse error at line 1, column ";
  if (what.rfind(kFirstLine, 0) == 0) what = "column " + what.substr(kFirstLine.size());
  return what;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' ||
                        s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}

// Collects JSON Lines rows from lines fed one at a time; remembers the bad lines for one error.
class JsonLinesCollector {
 public:
  JsonLinesCollector(std::string_view source, const ReadLimits& limits)
      : source_(source), limits_(limits) {}

  void line(std::string_view text, int64_t number) {
    if (number == 1 && text.substr(0, 3) == kBom) text.remove_prefix(3);
    text = trim(text);
    if (text.empty()) return;
    size_t bad = 0;
    if (!is_valid_utf8(text, &bad)) return note(number, fmt::format("not valid UTF-8 (byte {})", bad + 1));
    try {
      Document doc = parse_bounded(text, limits_.max_depth);
      if (!doc.is_object()) return note(number, fmt::format("a JSON {}, not an object", doc.type_name()));
      if (static_cast<int64_t>(rows_.size()) >= limits_.max_rows)
        throw Error::corrupt(source_, fmt::format("line {}: more than {} rows", number, limits_.max_rows));
      rows_.push_back(std::move(doc));
    } catch (const TooDeep&) {
      note(number, fmt::format("nested deeper than {} levels", limits_.max_depth));
    } catch (const nlohmann::json::exception& e) {
      note(number, "not valid JSON: " + json_reason(e));
    }
  }

  std::vector<Document> finish() {
    if (!bad_.empty()) {
      std::string what = fmt::format("{} malformed line{}: ", bad_count_, bad_count_ == 1 ? "" : "s");
      for (size_t i = 0; i < bad_.size(); ++i) what += (i ? "; " : "") + bad_[i];
      if (bad_count_ > static_cast<int64_t>(bad_.size()))
        what += fmt::format("; and {} more", bad_count_ - static_cast<int64_t>(bad_.size()));
      throw Error::corrupt(source_, what);
    }
    return std::move(rows_);
  }

 private:
  void note(int64_t number, const std::string& what) {
    ++bad_count_;
    if (bad_.size() < kListedBadLines) bad_.push_back(fmt::format("line {}: {}", number, what));
  }

  std::string source_;
  ReadLimits limits_;
  std::vector<Document> rows_;
  std::vector<std::string> bad_;
  int64_t bad_count_ = 0;
};

std::vector<Document> rows_from_array(Document& array, std::string_view source,
                                      std::string_view where, const ReadLimits& limits) {
  if (static_cast<int64_t>(array.size()) > limits.max_rows)
    throw Error::corrupt(source, fmt::format("{} holds more than {} rows", where, limits.max_rows));
  std::vector<Document> rows;
  rows.reserve(array.size());
  for (size_t i = 0; i < array.size(); ++i) {
    if (!array[i].is_object())
      throw Error::corrupt(source, fmt::format("{} item {} is a JSON {}, not an object", where, i,
                                               array[i].type_name()));
    rows.push_back(std::move(array[i]));
  }
  return rows;
}

std::string lower_extension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

std::ifstream open_or_throw(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error::not_found(path.string(), "no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error::io(path.string(), "cannot open the file for reading");
  return in;
}

// Feeds `path` to `sink(chunk)` in pieces of 1 MiB.
template <typename Sink>
void read_chunks(const std::filesystem::path& path, Sink&& sink) {
  std::ifstream in = open_or_throw(path);
  std::string buffer(1 << 20, '\0');
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto got = in.gcount();
    if (got > 0) sink(std::string_view(buffer.data(), static_cast<size_t>(got)));
  }
  if (in.bad()) throw Error::io(path.string(), "read failed");
}

std::vector<Document> read_json_lines_file(const std::filesystem::path& path,
                                           const ReadLimits& limits) {
  const std::string source = path.string();
  JsonLinesCollector collector(source, limits);
  std::string pending;
  int64_t number = 1;
  read_chunks(path, [&](std::string_view chunk) {
    size_t start = 0;
    for (;;) {
      const size_t nl = chunk.find('\n', start);
      if (nl == std::string_view::npos) break;
      pending.append(chunk.substr(start, nl - start));
      collector.line(pending, number++);
      pending.clear();
      start = nl + 1;
    }
    pending.append(chunk.substr(start));
    if (static_cast<int64_t>(pending.size()) > limits.max_line_bytes)
      throw Error::corrupt(source, fmt::format("line {}: longer than {} bytes", number,
                                               limits.max_line_bytes));
  });
  collector.line(pending, number);
  return collector.finish();
}

std::string read_whole(const std::filesystem::path& path, const ReadLimits& limits) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error::not_found(path.string(), "no such file");
  if (size > static_cast<uint64_t>(limits.max_file_bytes))
    throw Error::not_supported(
        path.string(), fmt::format("a {}-byte JSON document (the limit for one document is {} "
                                   "bytes; JSON Lines files have no such limit)",
                                   size, limits.max_file_bytes));
  std::string text;
  text.reserve(static_cast<size_t>(size));
  read_chunks(path, [&](std::string_view chunk) {
    if (text.size() + chunk.size() > static_cast<uint64_t>(limits.max_file_bytes))
      throw Error::corrupt(path.string(), "the file grew while it was read");
    text.append(chunk);
  });
  return text;
}

}  // namespace

std::vector<Document> parse_json_lines(std::string_view text, std::string_view source,
                                       const ReadLimits& limits) {
  JsonLinesCollector collector(source, limits);
  int64_t number = 1;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    if (static_cast<int64_t>(nl - start) > limits.max_line_bytes)
      throw Error::corrupt(source, fmt::format("line {}: longer than {} bytes", number,
                                               limits.max_line_bytes));
    collector.line(text.substr(start, nl - start), number++);
    start = nl + 1;
  }
  return collector.finish();
}

std::vector<Document> parse_json_file_text(std::string_view text, std::string_view source,
                                           const std::optional<std::string>& field,
                                           const ReadLimits& limits) {
  std::string_view body = text;
  if (body.substr(0, 3) == kBom) body.remove_prefix(3);
  size_t bad = 0;
  if (!is_valid_utf8(body, &bad)) {
    const int64_t line = 1 + std::count(body.begin(), body.begin() + static_cast<long>(bad), '\n');
    throw Error::corrupt(source, fmt::format("line {}: not valid UTF-8; save the file as UTF-8", line));
  }
  const std::string_view content = trim(body);
  if (content.empty()) return {};
  Document doc;
  try {
    doc = parse_bounded(content, limits.max_depth);
  } catch (const TooDeep&) {
    throw Error::corrupt(source, fmt::format("nested deeper than {} levels", limits.max_depth));
  } catch (const nlohmann::json::exception& e) {
    // Not one JSON document: JSON Lines if it starts with an object, else just bad JSON.
    if (content.front() == '{') return parse_json_lines(body, source, limits);
    throw Error::corrupt(source, "not valid JSON: " + json_reason(e));
  }
  if (doc.is_array()) return rows_from_array(doc, source, "the top-level array", limits);
  if (!doc.is_object())
    throw Error::corrupt(source, fmt::format("a JSON {}; expected an array of objects, an object "
                                             "with a list of objects, or JSON Lines",
                                             doc.type_name()));
  if (field) {
    auto it = doc.find(*field);
    if (it == doc.end() || !it->is_array())
      throw Error::corrupt(source, fmt::format("no list field '{}' (dataset_kwargs.field)", *field));
    return rows_from_array(*it, source, fmt::format("field '{}'", *field), limits);
  }
  std::vector<std::string> lists;
  for (auto it = doc.begin(); it != doc.end(); ++it)
    if (it->is_array() && !it->empty() && (*it)[0].is_object()) lists.push_back(it.key());
  if (lists.size() == 1) {
    const std::string key = lists[0];
    return rows_from_array(doc[key], source, fmt::format("field '{}'", key), limits);
  }
  if (lists.size() > 1)
    throw Error::corrupt(source, fmt::format("an object with {} lists of objects ('{}', '{}', ...); "
                                             "name the one to read with dataset_kwargs.field",
                                             lists.size(), lists[0], lists[1]));
  std::vector<Document> rows;  // one object: one row, as JSON Lines with a single line
  rows.push_back(std::move(doc));
  return rows;
}

std::vector<Document> read_data_file(const std::filesystem::path& path,
                                     const std::optional<std::string>& field,
                                     const ReadLimits& limits) {
  const std::string ext = lower_extension(path);
  if (ext == ".jsonl" || ext == ".ndjson") {
    open_or_throw(path);
    return read_json_lines_file(path, limits);
  }
  if (ext == ".json") {
    // A JSON Lines file named .json is streamed; a document is read whole (bounded).
    std::ifstream in = open_or_throw(path);
    std::string head(1 << 20, '\0');  // the first line decides, if it fits in 1 MiB
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    head.resize(static_cast<size_t>(in.gcount()));
    const size_t nl = head.find('\n');
    std::string_view f = nl == std::string::npos ? std::string_view() : std::string_view(head).substr(0, nl);
    if (f.substr(0, 3) == kBom) f.remove_prefix(3);
    f = trim(f);
    const bool more = nl != std::string::npos && !trim(std::string_view(head).substr(nl)).empty();
    bool lines = false;
    if (!f.empty() && f.front() == '{' && more) {
      try {
        lines = parse_bounded(f, limits.max_depth).is_object();
      } catch (...) {
        lines = false;
      }
    }
    if (lines && !field) return read_json_lines_file(path, limits);
    return parse_json_file_text(read_whole(path, limits), path.string(), field, limits);
  }
  if (ext == ".csv" || ext == ".tsv") {
    CsvLimits csv_limits;
    csv_limits.max_rows = limits.max_rows;
    csv_limits.max_field_bytes = std::min<int64_t>(limits.max_line_bytes, 16 << 20);
    CsvReader reader(path.string(), ext == ".tsv" ? '\t' : ',', csv_limits);
    read_chunks(path, [&](std::string_view chunk) { reader.feed(chunk); });
    return reader.finish();
  }
  if (ext == ".parquet" || ext == ".arrow")
    throw Error::not_supported(path.string(),
                               fmt::format("{} files; referee reads the JSON Lines, JSON and CSV "
                                           "releases (see docs/eval-datasets.md)",
                                           ext.substr(1)));
  throw Error::not_supported(path.string(), fmt::format("files ending '{}'; expected .jsonl, "
                                                        ".json, .csv or .tsv", ext));
}

}  // namespace referee::eval
