#include <gtest/gtest.h>

#include "kube/selector.h"

using bo::kube::FieldSelector;
using bo::kube::LabelSelector;

namespace {

struct Case {
  const char* selector;
  std::map<std::string, std::string> labels;
  bool match;
};

class LabelSelectorMatch : public ::testing::TestWithParam<Case> {};

TEST_P(LabelSelectorMatch, MatchesAsKubernetesDoes) {
  const auto& c = GetParam();
  std::string err;
  auto sel = LabelSelector::parse(c.selector, &err);
  ASSERT_TRUE(sel) << err;
  EXPECT_EQ(sel->matches(c.labels), c.match) << c.selector;
}

INSTANTIATE_TEST_SUITE_P(
    Table, LabelSelectorMatch,
    ::testing::Values(Case{"", {}, true}, Case{"a=b", {{"a", "b"}}, true}, Case{"a==b", {{"a", "b"}}, true},
                      Case{"a=b", {{"a", "c"}}, false}, Case{"a!=b", {}, true}, Case{"a!=b", {{"a", "b"}}, false},
                      Case{"a in (x, y)", {{"a", "y"}}, true}, Case{"a in (x,y)", {{"a", "z"}}, false},
                      Case{"a notin (x)", {}, true}, Case{"a notin (x)", {{"a", "x"}}, false},
                      Case{"a", {{"a", ""}}, true}, Case{"!a", {{"a", "1"}}, false},
                      Case{"app.kubernetes.io/name=db,tier in (x)", {{"app.kubernetes.io/name", "db"}, {"tier", "x"}}, true}));

TEST(LabelSelector, RejectsMalformedText) {
  for (const char* bad : {"a in (x", "a=b,,c=d", "bad key=x", "a=b c", "a foo (x)"}) {
    std::string err;
    EXPECT_FALSE(LabelSelector::parse(bad, &err)) << bad;
    EXPECT_FALSE(err.empty()) << bad;
  }
}

TEST(LabelSelector, FromJsonRoundTripsThroughText) {
  auto sel = LabelSelector::from_json(
      {{"matchLabels", {{"a", "b"}}}, {"matchExpressions", {{{"key", "c"}, {"operator", "In"}, {"values", {"d", "e"}}}}}});
  ASSERT_TRUE(sel);
  EXPECT_EQ(sel->to_string(), "a=b,c in (d,e)");
  EXPECT_TRUE(sel->matches(std::map<std::string, std::string>{{"a", "b"}, {"c", "e"}}));
  EXPECT_FALSE(LabelSelector::from_json({{"matchExpressions", {{{"key", "c"}, {"operator", "Near"}}}}}));
}

TEST(FieldSelector, ParsesEqualityAndInequality) {
  auto sel = FieldSelector::parse("metadata.name=x,status.phase!=Running");
  ASSERT_TRUE(sel);
  ASSERT_EQ(sel->terms().size(), 2u);
  auto lookup = [](const std::string& f) -> std::optional<std::string> {
    return f == "metadata.name" ? "x" : "Pending";
  };
  EXPECT_TRUE(sel->matches(lookup));
  EXPECT_FALSE(FieldSelector::parse("justaword"));
}

}  // namespace
