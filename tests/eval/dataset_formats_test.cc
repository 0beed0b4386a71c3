// The file formats a benchmark's rows arrive in: CSV with pandas-like column types, JSON Lines,
// JSON documents. Each malformed input gets one error naming the file and line.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "eval/csv.h"
#include "eval/dataset.h"
#include "testing/helpers.h"
#include "util/error.h"

namespace referee::eval {
namespace {

using ::testing::HasSubstr;

// ---- CSV ----

TEST(Csv, HeaderNamesTheColumnsInFileOrder) {
  const auto rows = parse_csv("question,answer,A\nq1,2,x\n", "t.csv");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].dump(), R"({"question":"q1","answer":2,"A":"x"})");
}

TEST(Csv, ColumnTypesAreInferredLikePandas) {
  const auto rows = parse_csv(
      "i,f,b,s,mixed,empty\n"
      "1,1.5,True,a,1,\n"
      "-3,2,False,b,x,\n"
      "+4,1e3,true,,2.5,\n",
      "t.csv");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_TRUE(rows[0]["i"].is_number_integer());
  EXPECT_EQ(rows[1]["i"], -3);
  EXPECT_EQ(rows[2]["i"], 4);
  EXPECT_TRUE(rows[1]["f"].is_number_float());  // a column with one float is all floats
  EXPECT_DOUBLE_EQ(rows[1]["f"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(rows[2]["f"].get<double>(), 1000.0);
  EXPECT_EQ(rows[0]["b"], true);
  EXPECT_EQ(rows[1]["b"], false);
  EXPECT_TRUE(rows[2]["s"].is_null());  // empty cells are null
  EXPECT_EQ(rows[0]["mixed"], "1");     // one text cell makes the column text
  EXPECT_TRUE(rows[0]["empty"].is_null());
}

TEST(Csv, KmmluAnswerColumnIsAnInteger) {
  const auto rows = parse_csv("question,answer,A,B,C,D\n\"Q?\",4,a,b,c,d\n", "k.csv");
  ASSERT_TRUE(rows[0]["answer"].is_number_integer());
  EXPECT_EQ(rows[0]["answer"].get<int64_t>() - 1, 3);
}

TEST(Csv, QuotedFieldsDoubledQuotesNewlinesAndCrlf) {
  const auto rows = parse_csv(
      "\xEF\xBB\xBF" "a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n\"two\nlines\",z\r\n", "t.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["a"], "x, y");
  EXPECT_EQ(rows[0]["b"], "say \"hi\"");
  EXPECT_EQ(rows[1]["a"], "two\nlines");
  EXPECT_EQ(rows[1]["b"], "z");
  EXPECT_EQ(rows[0].begin().key(), "a");  // the BOM is not part of the first column's name
}

TEST(Csv, QuotedNumbersAreStillNumbersAndBlankLinesAreSkipped) {
  const auto rows = parse_csv("n\n\"7\"\n\n8", "t.csv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["n"], 7);
  EXPECT_EQ(rows[1]["n"], 8);
}

TEST(Csv, PiecesSplitAnywhereGiveTheSameRows) {
  const std::string text = "\xEF\xBB\xBFq,a\r\n\"x\"\"y\",1\r\n\"m\nn\",2\r\n";
  const auto whole = parse_csv(text, "t.csv");
  for (size_t cut = 0; cut <= text.size(); ++cut) {
    CsvReader reader("t.csv");
    reader.feed(text.substr(0, cut));
    reader.feed(text.substr(cut));
    EXPECT_EQ(reader.finish(), whole) << "cut at " << cut;
  }
}

TEST(Csv, EmptyHeaderNamesBecomeUnnamedAsPandasWritesThem) {
  const auto rows = parse_csv(",q\n0,a\n", "t.csv");
  EXPECT_EQ(rows[0].dump(), R"({"Unnamed: 0":0,"q":"a"})");
}

TEST(Csv, TabSeparated) {
  const auto rows = parse_csv("a\tb\n1\tx y\n", "t.tsv", '\t');
  EXPECT_EQ(rows[0]["b"], "x y");
}

TEST(Csv, RaggedRowIsRefusedWithItsLine) {
  EXPECT_EQ(testing::error_message([] { parse_csv("a,b\n1,2\n3\n", "r.csv"); }),
            "r.csv: malformed: line 3: 1 fields, but the header on line 1 has 2 columns");
  EXPECT_THAT(testing::error_message([] { parse_csv("a,b\n1,2,3\n", "r.csv"); }), HasSubstr("line 2: 3 fields"));
}

TEST(Csv, UnterminatedQuoteNamesTheLineItStarts) {
  EXPECT_EQ(testing::error_message([] { parse_csv("a\nx\n\"open\nmore\n", "u.csv"); }),
            "u.csv: malformed: line 3: a quoted field is never closed (unterminated quote)");
}

TEST(Csv, TextAfterAClosingQuoteIsRefused) {
  EXPECT_THAT(testing::error_message([] { parse_csv("a\n\"x\"y\n", "q.csv"); }),
              HasSubstr("q.csv: malformed: line 2: a character after a closing quote"));
}

TEST(Csv, NonUtf8IsRefusedWithLineAndColumn) {
  EXPECT_THAT(testing::error_message([] { parse_csv("a,b\nok,\xC3\x28\n", "n.csv"); }),
              HasSubstr("n.csv: malformed: line 2: column 2 is not valid UTF-8"));
}

TEST(Csv, DuplicateColumnAndEmptyFileAreRefused) {
  EXPECT_THAT(testing::error_message([] { parse_csv("a,a\n1,2\n", "d.csv"); }),
              HasSubstr("the header names column 'a' twice"));
  EXPECT_EQ(testing::error_message([] { parse_csv("", "e.csv"); }),
            "e.csv: malformed: the file is empty (no header row)");
}

TEST(Csv, LimitsBoundRowsFieldsAndColumns) {
  CsvLimits limits;
  limits.max_rows = 2;
  EXPECT_THAT(testing::error_message([&] { parse_csv("a\n1\n2\n3\n", "l.csv", ',', limits); }),
              HasSubstr("line 4: more than 2 rows"));
  limits = {};
  limits.max_field_bytes = 4;
  EXPECT_THAT(testing::error_message([&] { parse_csv("a\n\"12345\"\n", "l.csv", ',', limits); }),
              HasSubstr("a field longer than 4 bytes"));
  limits = {};
  limits.max_columns = 3;
  EXPECT_THAT(testing::error_message([&] { parse_csv("a,b,c,d\n", "l.csv", ',', limits); }),
              HasSubstr("more than 3 columns"));
}

TEST(Utf8, ValidatorRejectsOverlongsSurrogatesAndTruncation) {
  EXPECT_TRUE(is_valid_utf8("한국어 abc"));
  EXPECT_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  size_t at = 0;
  EXPECT_FALSE(is_valid_utf8("ab\xEC\x95", &at));   // truncated
  EXPECT_EQ(at, 2u);
}

// ---- JSON Lines ----

TEST(JsonLines, OneObjectPerLineBlankLinesSkippedColumnsInOrder) {
  const auto rows = parse_json_lines("\xEF\xBB\xBF{\"z\":1,\"a\":2}\n\n  \r\n{\"z\":3,\"a\":4}", "t.jsonl");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0].dump(), R"({"z":1,"a":2})");
  EXPECT_EQ(rows[1]["a"], 4);
}

TEST(JsonLines, EveryMalformedLineIsNamed) {
  EXPECT_EQ(testing::error_message([] { parse_json_lines("{\"a\":1}\n{oops\n[1]\n{\"b\":\xFF}\n", "m.jsonl"); }),
            "m.jsonl: malformed: 3 malformed lines: line 2: not valid JSON: column 2: syntax "
            "error while parsing object key - invalid literal; last read: '{o'; expected string literal; "
            "line 3: a JSON array, not an object; line 4: not valid UTF-8 (byte 6)");
}

TEST(JsonLines, ManyBadLinesAreCountedNotAllListed) {
  std::string text;
  for (int i = 0; i < 25; ++i) text += "x\n";
  const std::string message = testing::error_message([&] { parse_json_lines(text, "b.jsonl"); });
  EXPECT_THAT(message, HasSubstr("25 malformed lines"));
  EXPECT_THAT(message, HasSubstr("; and 15 more"));
}

TEST(JsonLines, DeepNestingAndLongLinesAreRefused) {
  std::string deep = "{\"a\":" + std::string(100, '[') + std::string(100, ']') + "}";
  EXPECT_THAT(testing::error_message([&] { parse_json_lines(deep, "d.jsonl"); }),
              HasSubstr("line 1: nested deeper than 64 levels"));
  ReadLimits limits;
  limits.max_line_bytes = 8;
  EXPECT_THAT(testing::error_message([&] { parse_json_lines("{\"a\":\"123456\"}", "l.jsonl", limits); }),
              HasSubstr("line 1: longer than 8 bytes"));
}

// ---- JSON documents ----

TEST(JsonDocument, ArrayOfObjects) {
  const auto rows = parse_json_file_text("[{\"q\":\"a\"},{\"q\":\"b\"}]", "a.json");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["q"], "b");
}

TEST(JsonDocument, ObjectWithOneListOfObjects) {
  const auto rows =
      parse_json_file_text("{\"version\":\"1\",\"data\":[{\"q\":1},{\"q\":2}]}", "o.json");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["q"], 1);
}

TEST(JsonDocument, FieldPicksTheListWhenThereAreSeveral) {
  const std::string text = "{\"a\":[{\"x\":1}],\"b\":[{\"x\":2},{\"x\":3}]}";
  EXPECT_THAT(testing::error_message([&] { parse_json_file_text(text, "f.json"); }),
              HasSubstr("2 lists of objects ('a', 'b', ...); name the one to read with "
                        "dataset_kwargs.field"));
  EXPECT_EQ(parse_json_file_text(text, "f.json", std::string("b")).size(), 2u);
  EXPECT_THAT(testing::error_message([&] { parse_json_file_text(text, "f.json", std::string("c")); }),
              HasSubstr("no list field 'c'"));
}

TEST(JsonDocument, JsonLinesInADotJsonFileAreRead) {
  const auto rows = parse_json_file_text("{\"a\":1}\n{\"a\":2}\n", "l.json");
  ASSERT_EQ(rows.size(), 2u);
}

TEST(JsonDocument, NonObjectItemsAndScalarsAreRefused) {
  EXPECT_EQ(testing::error_message([] { parse_json_file_text("[{\"a\":1}, 3]", "n.json"); }),
            "n.json: malformed: the top-level array item 1 is a JSON number, not an object");
  EXPECT_THAT(testing::error_message([] { parse_json_file_text("\"text\"", "s.json"); }),
              HasSubstr("a JSON string; expected an array of objects"));
  EXPECT_THAT(testing::error_message([] { parse_json_file_text("[1,", "t.json"); }),
              HasSubstr("t.json: malformed: not valid JSON: "));
}

TEST(JsonDocument, NonUtf8NamesTheLine) {
  EXPECT_EQ(testing::error_message([] { parse_json_file_text("[\n{\"a\":\"\xFE\"}]", "u.json"); }),
            "u.json: malformed: line 2: not valid UTF-8; save the file as UTF-8");
}

// ---- files by extension ----

TEST(DataFile, FormatFollowsTheExtensionAndParquetIsRefused) {
  testing::TempDir dir;
  testing::write_text(dir / "a.jsonl", "{\"x\":1}\n{\"x\":2}\n");
  testing::write_text(dir / "b.json", "[{\"x\":3}]");
  testing::write_text(dir / "c.json", "{\"x\":4}\n{\"x\":5}\n");
  testing::write_text(dir / "d.csv", "x\n6\n");
  testing::write_text(dir / "e.tsv", "x\ty\n7\tz\n");
  testing::write_text(dir / "f.parquet", "PAR1");
  EXPECT_EQ(read_data_file(dir / "a.jsonl").size(), 2u);
  EXPECT_EQ(read_data_file(dir / "b.json")[0]["x"], 3);
  EXPECT_EQ(read_data_file(dir / "c.json")[1]["x"], 5);
  EXPECT_EQ(read_data_file(dir / "d.csv")[0]["x"], 6);
  EXPECT_EQ(read_data_file(dir / "e.tsv")[0]["y"], "z");
  EXPECT_THAT(testing::error_message([&] { read_data_file(dir / "f.parquet"); }),
              HasSubstr("not supported: parquet files; referee reads the JSON Lines, JSON and CSV"));
  EXPECT_THAT(testing::error_message([&] { read_data_file(dir / "missing.jsonl"); }),
              HasSubstr("not found: no such file"));
}

TEST(DataFile, JsonLinesFileLongerThanOneReadChunk) {
  testing::TempDir dir;
  std::string text;
  for (int i = 0; i < 30000; ++i) text += "{\"i\":" + std::to_string(i) + ",\"pad\":\"" + std::string(40, 'x') + "\"}\n";
  testing::write_text(dir / "big.jsonl", text);
  const auto rows = read_data_file(dir / "big.jsonl");
  ASSERT_EQ(rows.size(), 30000u);
  EXPECT_EQ(rows[29999]["i"], 29999);
}

TEST(DataFile, MalformedLineInAFileNamesFileAndLine) {
  testing::TempDir dir;
  testing::write_text(dir / "bad.jsonl", "{\"a\":1}\n{\"a\":}\n");
  EXPECT_THAT(testing::error_message([&] { read_data_file(dir / "bad.jsonl"); }),
              HasSubstr((dir / "bad.jsonl").string() + ": malformed: 1 malformed line: line 2:"));
}

}  // namespace
}  // namespace referee::eval

namespace referee::eval {
namespace {

// What the fuzz target checks, in a quick deterministic form: mutated and random inputs to every
// parser end in rows or a referee::Error, never another exception or a crash.
TEST(Robustness, MutatedInputsOnlyEverThrowRefereeErrors) {
  const std::vector<std::string> seeds = {
      "question,answer,A\n\"q, \"\"x\"\"\",1,a\r\n\"multi\nline\",2,b\n",
      "{\"a\":[1,{\"b\":null}],\"c\":\"한국어\"}\n{\"a\":2}\n",
      "[{\"x\":1.5e3},{\"x\":true}]",
      "{\"meta\":{},\"rows\":[{\"q\":\"\\u00e9\"}]}",
  };
  testing::SplitMix64 rng(42);
  ReadLimits limits;
  limits.max_rows = 100;
  limits.max_depth = 16;
  CsvLimits csv_limits;
  csv_limits.max_rows = 100;
  csv_limits.max_field_bytes = 256;
  const std::string alphabet = "\",\n\r{}[]:\\\xEF\xBB\xBF\xC3\xFF 0aTrue";
  for (int iteration = 0; iteration < 4000; ++iteration) {
    std::string input = seeds[rng.next() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng.next() % 6);
    for (int e = 0; e < edits; ++e) {
      const size_t pos = input.empty() ? 0 : rng.next() % input.size();
      const char c = alphabet[rng.next() % alphabet.size()];
      switch (rng.next() % 3) {
        case 0: input.insert(input.begin() + static_cast<long>(pos), c); break;
        case 1: if (!input.empty()) input.erase(pos, 1); break;
        default: if (!input.empty()) input[pos] = c; break;
      }
    }
    try {
      switch (iteration % 4) {
        case 0: parse_csv(input, "m.csv", ',', csv_limits); break;
        case 1: parse_csv(input, "m.tsv", '\t', csv_limits); break;
        case 2: parse_json_lines(input, "m.jsonl", limits); break;
        default: parse_json_file_text(input, "m.json", {}, limits); break;
      }
    } catch (const Error&) {
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-referee exception '" << e.what() << "' for input: " << input;
    }
  }
}

}  // namespace
}  // namespace referee::eval
