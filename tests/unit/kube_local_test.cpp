// kube-local's pure parts: store semantics, patches, schemas, JSONPath.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/encoding.h"
#include "common/timefmt.h"
#include "kube-local/patch.h"
#include "kube-local/schema.h"
#include "kube-local/store.h"
#include "kube-local/table.h"

using nlohmann::json;

namespace {

json obj(const std::string& ns, const std::string& name) {
  return {{"metadata", {{"namespace", ns}, {"name", name}}}};
}

TEST(Store, ResourceVersionIsMonotonicAndCasChecked) {
  kl::Store s;
  auto a = s.create("/configmaps", obj("n", "a"));
  ASSERT_EQ(a.outcome, kl::Store::Outcome::kOk);
  EXPECT_EQ((*a.obj)["metadata"]["resourceVersion"], "1");
  EXPECT_EQ(s.create("/configmaps", obj("n", "a")).outcome, kl::Store::Outcome::kExists);
  auto u = s.update("/configmaps", obj("n", "a"), 1);
  ASSERT_EQ(u.outcome, kl::Store::Outcome::kOk);
  EXPECT_EQ((*u.obj)["metadata"]["resourceVersion"], "2");
  EXPECT_EQ(s.update("/configmaps", obj("n", "a"), 1).outcome, kl::Store::Outcome::kConflict);
  EXPECT_EQ(s.remove("/configmaps", "n", "a", 1).outcome, kl::Store::Outcome::kConflict);
  EXPECT_EQ(s.remove("/configmaps", "n", "a", 2).outcome, kl::Store::Outcome::kOk);
  EXPECT_EQ(s.current_rv(), 3u);
}

TEST(Store, EventsSinceAndCompaction) {
  kl::Store s("", 3);
  for (int i = 0; i < 5; ++i) s.create("/configmaps", obj("n", "o" + std::to_string(i)));
  auto p = s.events_since(3);
  ASSERT_FALSE(p.gone);
  ASSERT_EQ(p.events.size(), 2u);
  EXPECT_EQ(p.events[0].rv, 4u);
  EXPECT_TRUE(s.events_since(1).gone);  // history keeps only 3 events
  s.compact();
  EXPECT_TRUE(s.events_since(4).gone);
  EXPECT_FALSE(s.events_since(5).gone);
}

TEST(Store, ListIsSortedAndNamespaceScoped) {
  kl::Store s;
  s.create("/configmaps", obj("b", "x"));
  s.create("/configmaps", obj("a", "y"));
  s.create("/configmaps", obj("a", "x"));
  auto all = s.list("/configmaps", "");
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ((*all[0])["metadata"]["name"], "x");
  EXPECT_EQ((*all[0])["metadata"]["namespace"], "a");
  EXPECT_EQ(s.list("/configmaps", "a").size(), 2u);
  EXPECT_EQ(s.list("/configmaps", "ab").size(), 0u);
}

TEST(Store, JournalSurvivesRestartAndDiscardsATornLastLine) {
  const auto dir = std::filesystem::temp_directory_path() / ("store-" + bo::hex_encode(bo::random_bytes(4)));
  {
    kl::Store s(dir.string());
    s.create("/configmaps", obj("n", "a"));
    s.create("/configmaps", obj("n", "b"));
    s.remove("/configmaps", "n", "a", 0);
  }
  {
    std::ofstream(dir / "state.jsonl", std::ios::app) << R"({"rv":99,"op":"put","gr":"/configmaps","ns":"n","name":"torn","obj":{"meta)";
  }
  kl::Store s(dir.string());
  EXPECT_EQ(s.get("/configmaps", "n", "a"), nullptr);
  ASSERT_NE(s.get("/configmaps", "n", "b"), nullptr);
  EXPECT_EQ(s.get("/configmaps", "n", "torn"), nullptr);
  EXPECT_EQ(s.current_rv(), 3u);
  auto c = s.create("/configmaps", obj("n", "c"));
  EXPECT_EQ((*c.obj)["metadata"]["resourceVersion"], "4");
  std::filesystem::remove_all(dir);
}

json owned(const std::string& ns, const std::string& name, const std::vector<std::string>& owners) {
  json o = obj(ns, name);
  for (const auto& uid : owners) o["metadata"]["ownerReferences"].push_back({{"kind", "Job"}, {"name", "j"}, {"uid", uid}});
  return o;
}

std::vector<std::string> names(const std::vector<std::pair<std::string, kl::ObjPtr>>& deps) {
  std::vector<std::string> out;
  for (const auto& [gr, o] : deps) out.push_back(gr + " " + (*o)["metadata"].value("namespace", "") + "/" +
                                                 (*o)["metadata"].value("name", ""));
  return out;
}

TEST(Store, DependentsFollowOwnerReferencesThroughEveryWrite) {
  using V = std::vector<std::string>;
  kl::Store s;
  s.create("/pods", owned("b", "p2", {"u1"}));
  s.create("/pods", owned("a", "p1", {"u1", "u2"}));
  s.create("/configmaps", owned("a", "c", {"u1"}));
  s.create("/pods", obj("a", "orphan"));
  json odd = obj("a", "odd");  // not what an API server stores, but it must not break the index
  odd["metadata"]["ownerReferences"] = json::array({"u1", {{"uid", 7}}});
  s.create("/pods", odd);
  // Every resource and namespace, in list order.
  EXPECT_EQ(names(s.dependents("u1")), (V{"/configmaps a/c", "/pods a/p1", "/pods b/p2"}));
  EXPECT_EQ(names(s.dependents("u2")), (V{"/pods a/p1"}));
  EXPECT_TRUE(s.dependents("").empty());
  // An update moves the object between owners; the version in the answer is the new one.
  auto u = s.update("/pods", owned("a", "p1", {"u2"}), 0);
  ASSERT_EQ(u.outcome, kl::Store::Outcome::kOk);
  EXPECT_EQ(names(s.dependents("u1")), (V{"/configmaps a/c", "/pods b/p2"}));
  ASSERT_EQ(s.dependents("u2").size(), 1u);
  EXPECT_EQ(s.dependents("u2")[0].second, u.obj);
  // Orphaned by an update, then deleted.
  s.update("/configmaps", obj("a", "c"), 0);
  s.remove("/pods", "b", "p2", 0);
  EXPECT_TRUE(s.dependents("u1").empty());
  s.remove("/pods", "a", "p1", 0);
  EXPECT_TRUE(s.dependents("u2").empty());
}

TEST(Store, DependentsSurviveARestartFromTheJournal) {
  const auto dir = std::filesystem::temp_directory_path() / ("store-" + bo::hex_encode(bo::random_bytes(4)));
  {
    kl::Store s(dir.string());
    s.create("/pods", owned("n", "a", {"u1"}));
    s.create("/pods", owned("n", "b", {"u1"}));
    s.remove("/pods", "n", "a", 0);
  }
  kl::Store s(dir.string());
  EXPECT_EQ(names(s.dependents("u1")), (std::vector<std::string>{"/pods n/b"}));
  std::filesystem::remove_all(dir);
}

TEST(Patch, MergePatchFollowsRfc7386) {
  std::string err;
  auto r = kl::apply_merge_patch({{"a", 1}, {"b", {{"c", 2}}}}, {{"a", nullptr}, {"b", {{"d", 3}}}}, &err);
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, json({{"b", {{"c", 2}, {"d", 3}}}}));
  EXPECT_FALSE(kl::apply_merge_patch({}, json::array(), &err));
}

TEST(Patch, StrategicMergeMergesContainersByNameAndFinalizersAsSet) {
  json target = {{"metadata", {{"finalizers", {"a"}}}},
                 {"spec", {{"containers", {{{"name", "app"}, {"image", "v1"}}, {{"name", "side"}, {"image", "s"}}}},
                           {"tolerations", {{{"key", "x"}}}}}}};
  json patch = {{"metadata", {{"finalizers", {"b"}}}},
                {"spec", {{"$setElementOrder/containers", {{{"name", "app"}}, {{"name", "side"}}}},
                          {"containers", {{{"name", "app"}, {"image", "v2"}}, {{"name", "side"}, {"$patch", "delete"}}}},
                          {"tolerations", {{{"key", "y"}}}}}}};
  std::string err;
  auto r = kl::apply_strategic_merge_patch(target, patch, &err);
  ASSERT_TRUE(r) << err;
  EXPECT_EQ((*r)["metadata"]["finalizers"], json({"a", "b"}));
  EXPECT_EQ((*r)["spec"]["containers"], json::array({{{"name", "app"}, {"image", "v2"}}}));
  EXPECT_EQ((*r)["spec"]["tolerations"], json::array({{{"key", "y"}}}));  // atomic list: replaced
}

TEST(Patch, JsonPatchFailureIsReported) {
  std::string err;
  EXPECT_FALSE(kl::apply_json_patch({{"a", 1}}, json::array({{{"op", "test"}, {"path", "/a"}, {"value", 2}}}), &err));
  EXPECT_FALSE(err.empty());
}

const json kSchema = json::parse(R"({
  "type": "object",
  "properties": {
    "spec": {
      "type": "object",
      "required": ["host"],
      "properties": {
        "host": {"type": "string", "minLength": 1},
        "port": {"type": "integer", "default": 5432, "minimum": 1, "maximum": 65535},
        "env": {"type": "string", "enum": ["production", "staging"], "default": "production"},
        "when": {"type": "string", "format": "date-time"},
        "name": {"type": "string", "pattern": "^[a-z]+$"},
        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "list": {"type": "array", "maxItems": 2, "items": {"type": "object", "properties": {"k": {"type": "string", "default": "d"}}}},
        "short": {"type": "string", "maxLength": 3},
        "labels": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "string"}},
        "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                       "items": {"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}},
        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "quantity": {"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}], "maxLength": 8, "pattern": "^[0-9]+(Mi|Gi)?$"}
      }
    }
  }
})");

TEST(Schema, PrunesUnknownFieldsButKeepsPreservedOnes) {
  json o = {{"apiVersion", "x/v1"}, {"kind", "K"}, {"metadata", {{"name", "n"}}},
            {"spec", {{"host", "h"}, {"bogus", 1}, {"extra", {{"free", true}}}, {"list", {{{"k", "a"}, {"z", 1}}}}}}, {"top", 1}};
  std::vector<std::string> unknown;
  kl::prune(o, kSchema, &unknown);
  EXPECT_EQ(unknown, (std::vector<std::string>{"spec.bogus", "spec.list[0].z", "top"}));
  EXPECT_TRUE(o["spec"]["extra"]["free"]);
  EXPECT_EQ(o["metadata"]["name"], "n");
}

TEST(Schema, AppliesDefaultsRecursively) {
  json o = {{"spec", {{"host", "h"}, {"list", {json::object()}}}}};
  kl::apply_defaults(o, kSchema);
  EXPECT_EQ(o["spec"]["port"], 5432);
  EXPECT_EQ(o["spec"]["env"], "production");
  EXPECT_EQ(o["spec"]["list"][0]["k"], "d");
}

struct SchemaCase {
  const char* name;
  json spec;
  const char* field;
  const char* type;
};

class SchemaValidation : public ::testing::TestWithParam<SchemaCase> {};

TEST_P(SchemaValidation, NamesTheField) {
  auto errs = kl::validate_schema({{"spec", GetParam().spec}}, kSchema);
  ASSERT_EQ(errs.size(), 1u) << GetParam().name;
  EXPECT_EQ(errs[0].field, GetParam().field);
  EXPECT_EQ(errs[0].type, GetParam().type);
}

INSTANTIATE_TEST_SUITE_P(
    Table, SchemaValidation,
    ::testing::Values(SchemaCase{"Required", json::object(), "spec.host", "FieldValueRequired"},
                      SchemaCase{"Type", {{"host", 1}}, "spec.host", "FieldValueTypeInvalid"},
                      SchemaCase{"Minimum", {{"host", "h"}, {"port", 0}}, "spec.port", "FieldValueInvalid"},
                      SchemaCase{"Maximum", {{"host", "h"}, {"port", 70000}}, "spec.port", "FieldValueInvalid"},
                      SchemaCase{"Enum", {{"host", "h"}, {"env", "prod"}}, "spec.env", "FieldValueNotSupported"},
                      SchemaCase{"Format", {{"host", "h"}, {"when", "yesterday"}}, "spec.when", "FieldValueInvalid"},
                      SchemaCase{"Pattern", {{"host", "h"}, {"name", "A1"}}, "spec.name", "FieldValueInvalid"},
                      SchemaCase{"MinLength", {{"host", ""}}, "spec.host", "FieldValueInvalid"},
                      SchemaCase{"MaxItems", {{"host", "h"}, {"list", {json::object(), json::object(), json::object()}}},
                                 "spec.list", "FieldValueTooMany"},
                      // apiextensions-apiserver validates maxLength, maxProperties (kube-openapi's validate
                      // package) and the uniqueness of list-type map keys and set elements (schema/listtype).
                      SchemaCase{"MaxLength", {{"host", "h"}, {"short", "four"}}, "spec.short", "FieldValueTooLong"},
                      SchemaCase{"MaxProperties", {{"host", "h"}, {"labels", {{"a", "1"}, {"b", "2"}}}}, "spec.labels",
                                 "FieldValueTooMany"},
                      SchemaCase{"ListMapDuplicateKey",
                                 {{"host", "h"},
                                  {"conditions", {{{"type", "Ready"}, {"status", "True"}}, {{"type", "Ready"}, {"status", "False"}}}}},
                                 "spec.conditions[1]", "FieldValueDuplicate"},
                      SchemaCase{"ListSetDuplicate", {{"host", "h"}, {"tags", {"a", "b", "a"}}}, "spec.tags[2]",
                                 "FieldValueDuplicate"},
                      SchemaCase{"IntOrStringPattern", {{"host", "h"}, {"quantity", "1 GB"}}, "spec.quantity",
                                 "FieldValueInvalid"},
                      SchemaCase{"IntOrStringMaxLength", {{"host", "h"}, {"quantity", "123456789"}}, "spec.quantity",
                                 "FieldValueTooLong"}),
    [](const auto& info) { return info.param.name; });

// The messages of listtype.ValidateListSetsAndMaps: field.Duplicate with the key
// fields (a map) or the element (a set), printed as %#v; distinct keys and an
// integer int-or-string pass.
TEST(Schema, DuplicateListKeysAreNamedAsTheApiServerNamesThem) {
  auto errs = kl::validate_schema(
      {{"spec", {{"host", "h"}, {"conditions", {{{"type", "Ready"}}, {{"type", "Synced"}}, {{"type", "Ready"}}}}}}}, kSchema);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].message, "spec.conditions[2]: Duplicate value: map[string]interface {}{\"type\":\"Ready\"}");
  errs = kl::validate_schema({{"spec", {{"host", "h"}, {"tags", {"x", "x"}}}}}, kSchema);
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].message, "spec.tags[1]: Duplicate value: \"x\"");
  EXPECT_TRUE(kl::validate_schema({{"spec", {{"host", "h"}, {"conditions", {{{"type", "A"}}, {{"type", "B"}}}}, {"quantity", 5}}}},
                                  kSchema)
                  .empty());
  EXPECT_TRUE(kl::validate_schema({{"spec", {{"host", "h"}, {"quantity", "512Mi"}}}}, kSchema).empty());
}

// kube-openapi counts a string's characters for maxLength, not its bytes.
TEST(Schema, MaxLengthCountsCharacters) {
  EXPECT_TRUE(kl::validate_schema({{"spec", {{"host", "h"}, {"short", "\u00e9\u00e9\u00e9"}}}}, kSchema).empty());
  EXPECT_EQ(kl::validate_schema({{"spec", {{"host", "h"}, {"short", "\u00e9\u00e9\u00e9\u00e9"}}}}, kSchema).size(), 1u);
}

TEST(JsonPath, EvaluatesPrinterColumnPaths) {
  json o = {{"status", {{"conditions", {{{"type", "Synced"}, {"status", "False"}}, {{"type", "Ready"}, {"status", "True"}}}}}},
            {"spec", {{"items", {1, 2, 3}}}}};
  EXPECT_EQ(kl::eval_jsonpath(o, ".status.conditions[?(@.type==\"Ready\")].status"), std::vector<json>{"True"});
  EXPECT_EQ(kl::eval_jsonpath(o, ".spec.items[1]"), std::vector<json>{2});
  EXPECT_EQ(kl::eval_jsonpath(o, ".spec.items[-1]"), std::vector<json>{3});
  EXPECT_EQ(kl::eval_jsonpath(o, ".spec.items[*]").size(), 3u);
  EXPECT_TRUE(kl::eval_jsonpath(o, ".spec.missing.deep").empty());
}

TEST(TimeFormat, RoundTripsAndParsesOffsets) {
  auto t = bo::parse_rfc3339("2026-03-29T01:30:00Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(bo::format_rfc3339(*t), "2026-03-29T01:30:00Z");
  EXPECT_EQ(bo::parse_rfc3339("2026-03-29T03:30:00+02:00"), t);
  EXPECT_EQ(bo::format_rfc3339_micro(*t + std::chrono::microseconds(1500)), "2026-03-29T01:30:00.001500Z");
  EXPECT_EQ(bo::parse_rfc3339("2026-03-29T01:30:00.001500Z"), *t + std::chrono::microseconds(1500));
  EXPECT_FALSE(bo::parse_rfc3339("2026-13-01T00:00:00Z"));
  EXPECT_FALSE(bo::parse_rfc3339("2026-01-01T00:00:00"));
  EXPECT_FALSE(bo::parse_rfc3339("tomorrow"));
}

TEST(TimeFormat, HumanDurationMatchesKubectl) {
  using std::chrono::seconds;
  EXPECT_EQ(bo::human_duration(seconds(45)), "45s");
  EXPECT_EQ(bo::human_duration(seconds(310)), "5m10s");
  EXPECT_EQ(bo::human_duration(seconds(3600 * 3)), "3h");
  EXPECT_EQ(bo::human_duration(seconds(3600 * 52)), "2d4h");
  EXPECT_EQ(bo::human_duration(seconds(86400 * 400)), "400d");
}

TEST(Encoding, Base64RejectsGarbage) {
  EXPECT_EQ(bo::base64_encode("hunter2"), "aHVudGVyMg==");
  EXPECT_EQ(bo::base64_decode("aHVudGVyMg=="), "hunter2");
  EXPECT_FALSE(bo::base64_decode("aHVu!GVy"));
  EXPECT_FALSE(bo::base64_decode("abc"));
  EXPECT_EQ(bo::base64url_decode(bo::base64url_encode("\xff\xfe?")), "\xff\xfe?");
}

}  // namespace
