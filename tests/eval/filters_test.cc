// lm-evaluation-harness's answer filters and Python-`re`-compatible matching.
#include "eval/filters.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace referee::eval {
namespace {

using ojson = nlohmann::ordered_json;

CompiledPipeline pipeline(std::vector<FilterStep> steps) {
  FilterPipeline p;
  p.name = "test";
  p.steps = std::move(steps);
  return CompiledPipeline::compile(p, "test.yaml");
}

TEST(PyRegex, FindallFollowsPythonShapes) {
  // No group: whole matches. One group: the group. Several: all groups ("" if unused).
  EXPECT_EQ(PyRegex("[0-9]+", "t").findall("a1b22c333"),
            (std::vector<std::vector<std::string>>{{"1"}, {"22"}, {"333"}}));
  EXPECT_EQ(PyRegex("#### (\\d+)", "t").findall("x #### 42 y #### 7"),
            (std::vector<std::vector<std::string>>{{"42"}, {"7"}}));
  EXPECT_EQ(PyRegex("(a)|(b)", "t").findall("ab"),
            (std::vector<std::vector<std::string>>{{"a", ""}, {"", "b"}}));
}

TEST(PyRegex, EmptyMatchesAsPython37) {
  // re.sub('x*', '-', 'abxd') == '-a-b--d-': an empty match is allowed right after 'x'.
  auto spans = PyRegex("x*", "t").find_all("abxd");
  ASSERT_EQ(spans.size(), 5u);
  EXPECT_EQ(spans[2].start, 2u);
  EXPECT_EQ(spans[2].end, 3u);
  EXPECT_EQ(spans[3].start, 3u);
  EXPECT_EQ(spans[3].end, 3u);
  EXPECT_EQ(PyRegex(",", "t").remove_all("1,234,567"), "1234567");
}

TEST(PyRegex, UnicodeClassesAndPythonEndAnchor) {
  // \d matches any Unicode decimal digit for str patterns (here Arabic-Indic digits).
  EXPECT_EQ(PyRegex("\\d+", "t").findall("x\xd9\xa3\xd9\xa4y").size(), 1u);
  // Python's \Z is the very end: not before a final newline.
  EXPECT_TRUE(PyRegex("a\\Z", "t").findall("a\n").empty());
  EXPECT_EQ(PyRegex("a\\Z", "t").findall("a").size(), 1u);
}

TEST(PyRegex, BadPatternNamesWhere) {
  try {
    PyRegex("(unclosed", "gsm8k.yaml: filter 'strict-match'");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gsm8k.yaml: filter 'strict-match'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("(unclosed"), std::string::npos);
  }
}

TEST(Filters, Gsm8kStrictMatch) {
  auto p = pipeline({{"regex", ojson{{"regex_pattern", "#### (\\-?[0-9\\.\\,]+)"}}},
                     {"take_first", ojson::object()}});
  FilterValue v = p.apply({"so 6 * 7 = 42.\n#### 42"});
  EXPECT_FALSE(v.is_list);
  EXPECT_EQ(v.scored(), "42");
  EXPECT_EQ(v.to_json(), ojson("42"));
  EXPECT_EQ(p.apply({"the answer is 42"}).scored(), "[invalid]");
}

TEST(Filters, Gsm8kFlexibleExtractTakesLastMatchFirstNonEmptyGroup) {
  auto p = pipeline(
      {{"regex", ojson{{"group_select", -1}, {"regex_pattern", "(-?[$0-9.,]{2,})|(-?[0-9]+)"}}},
       {"take_first", ojson::object()}});
  EXPECT_EQ(p.apply({"3 apples and 12 pears make 15"}).scored(), "15");
  EXPECT_EQ(p.apply({"costs $1,200 in total, i.e. 9"}).scored(), "9");
  EXPECT_EQ(p.apply({"no numbers"}).scored(), "[invalid]");
}

TEST(Filters, MajorityVoteOverRepeats) {
  // gsm8k-cot-self-consistency: regex, majority_vote, take_first.
  auto p = pipeline({{"regex", ojson{{"regex_pattern", "The answer is (\\-?[0-9\\.\\,]*[0-9]+)"},
                                     {"fallback", "none"}}},
                     {"majority_vote", ojson::object()},
                     {"take_first", ojson::object()}});
  EXPECT_EQ(p.apply({"The answer is 3.", "The answer is 4.", "I think The answer is 4", "??"})
                .scored(),
            "4");
  // A tie goes to the answer seen first.
  EXPECT_EQ(p.apply({"The answer is 5", "The answer is 6"}).scored(), "5");
}

TEST(Filters, CaseAndWhitespace) {
  EXPECT_EQ(pipeline({{"lowercase", ojson::object()}, {"take_first", ojson::object()}})
                .apply({"HeLLo"})
                .scored(),
            "hello");
  EXPECT_EQ(pipeline({{"uppercase", ojson::object()}}).apply({"abc"}).to_json(), ojson({"ABC"}));
  // remove_whitespace is lm-eval's WhitespaceFilter: leading whitespace only.
  EXPECT_EQ(pipeline({{"remove_whitespace", ojson::object()}}).apply({"  \t x  "}).scored(), "x  ");
  EXPECT_EQ(pipeline({{"strip", ojson::object()}}).apply({"\xc2\xa0 x \n"}).scored(), "x");
  EXPECT_EQ(pipeline({{"take_first_k", ojson{{"k", 2}}}}).apply({"a", "b", "c"}).to_json(),
            ojson({"a", "b"}));
}

TEST(Filters, UnknownFunctionOrArgumentIsRefused) {
  try {
    pipeline({{"multi_choice_regex", ojson::object()}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kNotSupported);
    EXPECT_NE(std::string(e.what()).find("multi_choice_regex"), std::string::npos);
  }
  try {
    pipeline({{"regex", ojson{{"regex_patern", "x"}}}});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown argument 'regex_patern'"), std::string::npos);
  }
}

TEST(PythonStrings, StripAndIsspace) {
  EXPECT_EQ(python_strip(" \u3000a b\u2028"), "a b");
  EXPECT_EQ(python_lstrip("\n\nab "), "ab ");
  EXPECT_EQ(python_strip(""), "");
  EXPECT_TRUE(python_isspace(0x85));
  EXPECT_FALSE(python_isspace(0x200B));  // zero-width space is not whitespace in Python
}

}  // namespace
}  // namespace referee::eval
