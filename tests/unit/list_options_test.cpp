// kube-local's ListOptions decoding, defaulting and validation, row by row
// against kube-apiserver's (sources in tools/kube-local/list_options.cpp).
#include <gtest/gtest.h>

#include "kube-local/list_options.h"

namespace {

using Query = std::map<std::string, std::string>;

struct Row {
  const char* name;
  Query query;
  std::vector<std::string> errors;  // rendered as field.Error.Error()
  bool initial = false;              // streams initial events
  bool end_bookmark = false;         // ends them with the annotated bookmark
};

TEST(ListOptions, DefaultsAndValidatesAsKubeApiserver) {
  const std::vector<Row> rows = {
      {"plain list", {}, {}},
      {"plain watch from nothing is defaulted to a watch-list", {{"watch", "true"}}, {}, true, false},
      {"... and with bookmarks it ends with the marker", {{"watch", "1"}, {"allowWatchBookmarks", "true"}}, {}, true, true},
      {"legacy watch from 0", {{"watch", "true"}, {"resourceVersion", "0"}, {"allowWatchBookmarks", "true"}}, {}, true, true},
      {"watch from a version sends no initial events", {{"watch", "true"}, {"resourceVersion", "12"}}, {}, false, false},
      {"watch-list as client-go sends it",
       {{"watch", "true"}, {"sendInitialEvents", "true"}, {"resourceVersionMatch", "NotOlderThan"}, {"allowWatchBookmarks", "true"}},
       {}, true, true},
      {"sendInitialEvents=false",
       {{"watch", "true"}, {"sendInitialEvents", "false"}, {"resourceVersionMatch", "NotOlderThan"}}, {}, false, false},
      {"sendInitialEvents without a match",
       {{"watch", "true"}, {"sendInitialEvents", "true"}},
       {"resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"}},
      {"a match without sendInitialEvents",
       {{"watch", "true"}, {"resourceVersionMatch", "NotOlderThan"}},
       {"resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"}},
      {"Exact on a watch",
       {{"watch", "true"}, {"sendInitialEvents", "true"}, {"resourceVersionMatch", "Exact"}},
       {"resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        "resourceVersionMatch: Unsupported value: \"Exact\": supported values: \"NotOlderThan\""}},
      {"continue on a watch-list",
       {{"watch", "true"}, {"sendInitialEvents", "true"}, {"resourceVersionMatch", "NotOlderThan"}, {"continue", "x"}},
       {"resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided"}},
      {"sendInitialEvents on a list", {{"sendInitialEvents", "false"}},
       {"sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"}},
      {"a list match without a version", {{"resourceVersionMatch", "NotOlderThan"}},
       {"resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"}},
      {"a list match with continue", {{"resourceVersionMatch", "Exact"}, {"resourceVersion", "5"}, {"continue", "x"}},
       {"resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided"}},
      {"an unknown list match", {{"resourceVersionMatch", "Newest"}, {"resourceVersion", "5"}},
       {"resourceVersionMatch: Unsupported value: \"Newest\": supported values: \"Exact\", \"NotOlderThan\", \"\""}},
      {"Exact at 0", {{"resourceVersionMatch", "Exact"}, {"resourceVersion", "0"}},
       {"resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""}},
      {"a list at a version, not older", {{"resourceVersionMatch", "NotOlderThan"}, {"resourceVersion", "5"}}, {}},
  };
  for (const auto& row : rows) {
    const auto got = kl::parse_list_options(row.query);
    std::vector<std::string> msgs;
    for (const auto& e : got.errors) msgs.push_back(e.message);
    EXPECT_EQ(msgs, row.errors) << row.name;
    if (row.errors.empty()) {
      EXPECT_EQ(got.options.sends_initial_events(), row.initial) << row.name;
      EXPECT_EQ(got.options.ends_initial_events_with_bookmark(), row.end_bookmark) << row.name;
    }
  }
}

TEST(ListOptions, BooleansAreFalseOnlyFor0AndFalseInAnyCase) {
  // runtime.Convert_Slice_string_To_bool.
  for (const char* v : {"true", "True", "1", "yes", ""}) EXPECT_EQ(kl::query_bool({{"watch", v}}, "watch"), true) << v;
  for (const char* v : {"false", "FALSE", "False", "0"}) EXPECT_EQ(kl::query_bool({{"watch", v}}, "watch"), false) << v;
  EXPECT_EQ(kl::query_bool({}, "watch"), std::nullopt);
}

}  // namespace
