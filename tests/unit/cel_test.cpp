#include <gtest/gtest.h>

#include "kube-local/cel.h"

using nlohmann::json;

namespace {

struct CelCase {
  const char* expr;
  json expected;  // null with error_substr set: an error
  const char* error_substr = "";
};

class CelEval : public ::testing::TestWithParam<CelCase> {};

TEST_P(CelEval, EvaluatesOverJson) {
  const std::map<std::string, json> vars{
      {"self", {{"min", 1}, {"max", 5}, {"name", "db-main"}, {"tags", {"a", "b"}}, {"spec", {{"x", 1}}}}},
      {"oldSelf", {{"spec", {{"x", 1}}}}},
      {"request", {{"userInfo", {{"username", "system:serviceaccount:ops:op"}}}, {"operation", "UPDATE"}}}};
  auto r = kl::cel::evaluate(GetParam().expr, vars);
  if (std::string(GetParam().error_substr).empty()) {
    ASSERT_TRUE(r) << GetParam().expr << ": " << r.error();
    EXPECT_EQ(*r, GetParam().expected) << GetParam().expr;
  } else {
    ASSERT_FALSE(r) << GetParam().expr;
    EXPECT_NE(r.error().find(GetParam().error_substr), std::string::npos) << r.error();
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, CelEval,
    ::testing::Values(CelCase{"self.min <= self.max", true}, CelCase{"self.min > self.max", false},
                      CelCase{"self.spec == oldSelf.spec", true}, CelCase{"has(self.spec)", true},
                      CelCase{"has(self.nope)", false}, CelCase{"size(self.tags) == 2 && self.tags.size() == 2", true},
                      CelCase{"'a' in self.tags", true}, CelCase{"self.name.startsWith('db-')", true},
                      CelCase{"self.name.matches('^[a-z-]+$')", true}, CelCase{"self.tags.all(t, t.size() == 1)", true},
                      CelCase{"self.tags.exists(t, t == 'c')", false}, CelCase{"self.min + 2 * 3", 7},
                      CelCase{"self.max % 2 == 1 ? 'odd' : 'even'", "odd"},
                      CelCase{"request.userInfo.username == 'system:serviceaccount:ops:op' || request.operation == 'CREATE'", true},
                      // CEL's commutative short-circuit: an error on one side is absorbed by a decisive other side.
                      CelCase{"self.nope == 1 || true", true}, CelCase{"false && self.nope == 1", false},
                      CelCase{"self.nope == 1", json(), "no such key"}, CelCase{"self.min +", json(), "compile error"},
                      CelCase{"frobnicate(self)", json(), "unsupported function"},
                      CelCase{"self.min / 0", json(), "division by zero"}, CelCase{"undeclared == 1", json(), "undeclared"}));

}  // namespace
