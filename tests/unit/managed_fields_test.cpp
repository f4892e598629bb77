// Field ownership and server-side apply (tools/kube-local/managed_fields.*),
// each case a behaviour of structured-merge-diff / kube-apiserver's field
// manager: what a manager owns, what an apply removes, when it conflicts.
#include <gtest/gtest.h>

#include "kube-local/managed_fields.h"

namespace {

using nlohmann::json;
namespace f = kl::fields;

const f::TypeInfo kBuiltin = f::type_info(nullptr, "ConfigMap");
const f::TypeInfo kDeploy = f::type_info(nullptr, "Deployment");

std::vector<std::string> strings(const f::FieldSet& s) {
  std::vector<std::string> out;
  for (const auto& p : s) out.push_back(f::path_string(p));
  return out;
}

json cm(const json& data, const json& labels = nullptr) {
  json o{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "c"}, {"namespace", "default"}}}, {"data", data}};
  if (!labels.is_null()) o["metadata"]["labels"] = labels;
  return o;
}

TEST(ManagedFields, ServerOwnedMetadataIsNeverOwned) {
  json o = cm({{"a", "1"}});
  o["metadata"]["uid"] = "u";
  o["metadata"]["resourceVersion"] = "5";
  o["metadata"]["creationTimestamp"] = "t";
  EXPECT_EQ(strings(f::field_set(o, kBuiltin)), (std::vector<std::string>{".data", ".data.a"}));
}

TEST(ManagedFields, FieldsV1MarksMapsAndListItemsOwnedAsAWhole) {
  json d{{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"metadata", {{"name", "d"}, {"labels", {{"app", "x"}}}}}};
  d["spec"]["replicas"] = 1;
  d["spec"]["template"]["spec"]["containers"] = json::array({{{"name", "c"}, {"image", "i"}, {"args", {"a", "b"}}}});
  const json v1 = f::to_fields_v1(f::field_set(d, kDeploy));
  const json want = json::parse(R"({
    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
    "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
      "k:{\"name\":\"c\"}": {".": {}, "f:args": {}, "f:image": {}, "f:name": {}}}}}}})");
  EXPECT_EQ(v1, want) << v1.dump(2);
  EXPECT_EQ(f::from_fields_v1(v1), f::field_set(d, kDeploy));  // round trip
}

TEST(ManagedFields, PathsPrintAsStructuredMergeDiffDoes) {
  EXPECT_EQ(f::path_string({"f:spec", "f:containers", "k:{\"name\":\"c\"}", "f:image"}), ".spec.containers[name=\"c\"].image");
  EXPECT_EQ(f::path_string({"f:metadata", "f:finalizers", "v:\"x\""}), ".metadata.finalizers[=\"x\"]");
}

TEST(ManagedFields, AnUpdateTakesTheFieldsItChangesFromOtherManagers) {
  auto entries = f::record_update({}, json::object(), cm({{"a", "1"}, {"b", "2"}}), "creator", "", "v1", "t0", kBuiltin);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].operation, "Update");
  entries = f::record_update(entries, cm({{"a", "1"}, {"b", "2"}}), cm({{"a", "9"}, {"b", "2"}}), "patcher", "", "v1", "t1",
                             kBuiltin);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(strings(entries[0].fields), (std::vector<std::string>{".data", ".data.b"}));
  EXPECT_EQ(strings(entries[1].fields), (std::vector<std::string>{".data.a"}));
  EXPECT_EQ(entries[1].manager, "patcher");
  // Removing a field removes it from its owner; an update that changes nothing changes no entry.
  entries = f::record_update(entries, cm({{"a", "9"}, {"b", "2"}}), cm({{"b", "2"}}), "patcher", "", "v1", "t2", kBuiltin);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].manager, "creator");
  EXPECT_EQ(f::record_update(entries, cm({{"b", "2"}}), cm({{"b", "2"}}), "x", "", "v1", "t3", kBuiltin).size(), 1u);
}

TEST(ManagedFields, ApplyCreatesAndOwnsExactlyItsConfiguration) {
  const auto r = f::apply(nullptr, cm({{"a", "1"}}, {{"app", "x"}}), "helm", false, "", "v1", "t", kBuiltin);
  ASSERT_TRUE(r.conflicts.empty());
  const json& mf = r.object["metadata"]["managedFields"];
  ASSERT_EQ(mf.size(), 1u);
  EXPECT_EQ(mf[0]["manager"], "helm");
  EXPECT_EQ(mf[0]["operation"], "Apply");
  EXPECT_EQ(mf[0]["fieldsType"], "FieldsV1");
  EXPECT_FALSE(mf[0].contains("subresource"));
}

TEST(ManagedFields, ApplyRemovesWhatItNoLongerAppliesUnlessAnotherManagerOwnsIt) {
  auto first = f::apply(nullptr, cm({{"a", "1"}, {"b", "2"}}, {{"app", "x"}}), "helm", false, "", "v1", "t", kBuiltin);
  // Another manager changes b: it now owns b.
  json live = first.object;
  auto entries = f::parse_entries(live["metadata"]["managedFields"]);
  json changed = live;
  changed["data"]["b"] = "3";
  changed["metadata"]["managedFields"] =
      f::render_entries(f::record_update(entries, live, changed, "kubectl-edit", "", "v1", "t2", kBuiltin));
  // helm applies without a, b and the label: a and the label go, b stays (kubectl-edit keeps it).
  auto second = f::apply(changed, cm(json::object()), "helm", false, "", "v1", "t3", kBuiltin);
  ASSERT_TRUE(second.conflicts.empty());
  EXPECT_EQ(second.object["data"], (json{{"b", "3"}}));
  EXPECT_FALSE(second.object["metadata"].contains("labels"));
}

TEST(ManagedFields, ChangingAValueAnotherManagerOwnsIsAConflictUnlessForced) {
  auto created = f::record_update({}, json::object(), cm({{"a", "1"}, {"b", "2"}}), "kubectl-client-side-apply", "", "v1",
                                  "t", kBuiltin);
  json live = cm({{"a", "1"}, {"b", "2"}});
  live["metadata"]["managedFields"] = f::render_entries(created);
  // The same value is shared, not a conflict.
  EXPECT_TRUE(f::apply(live, cm({{"a", "1"}}), "kubectl", false, "", "v1", "t", kBuiltin).conflicts.empty());
  auto r = f::apply(live, cm({{"a", "9"}, {"b", "8"}}), "kubectl", false, "", "v1", "t", kBuiltin);
  ASSERT_EQ(r.conflicts.size(), 2u);
  EXPECT_EQ(r.conflicts[0].manager, "\"kubectl-client-side-apply\" using v1");
  EXPECT_EQ(f::conflict_message({r.conflicts[0]}),
            "Apply failed with 1 conflict: conflict with \"kubectl-client-side-apply\" using v1: .data.a");
  EXPECT_EQ(f::conflict_message(r.conflicts),
            "Apply failed with 2 conflicts: conflicts with \"kubectl-client-side-apply\" using v1:\n- .data.a\n- .data.b");
  auto forced = f::apply(live, cm({{"a", "9"}}), "kubectl", true, "", "v1", "t", kBuiltin);
  ASSERT_TRUE(forced.conflicts.empty());
  EXPECT_EQ(forced.object["data"]["a"], "9");
  for (const auto& e : f::parse_entries(forced.object["metadata"]["managedFields"])) {
    if (e.manager == "kubectl-client-side-apply") {
      EXPECT_EQ(strings(e.fields), (std::vector<std::string>{".data", ".data.b"}));  // a was taken
    }
  }
}

TEST(ManagedFields, AssociativeListsMergeByKeyAndSetsByValue) {
  json live{{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"metadata", {{"name", "d"}, {"finalizers", {"keep"}}}}};
  live["spec"]["template"]["spec"]["containers"] = json::array({{{"name", "a"}, {"image", "1"}}});
  live["metadata"]["managedFields"] = f::render_entries(
      f::record_update({}, json::object(), live, "someone", "", "apps/v1", "t", kDeploy));
  json cfg{{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"metadata", {{"name", "d"}, {"finalizers", {"mine"}}}}};
  cfg["spec"]["template"]["spec"]["containers"] = json::array({{{"name", "b"}, {"image", "2"}}});
  auto r = f::apply(live, cfg, "helm", false, "", "apps/v1", "t", kDeploy);
  ASSERT_TRUE(r.conflicts.empty());
  EXPECT_EQ(r.object["spec"]["template"]["spec"]["containers"].size(), 2u);
  EXPECT_EQ(r.object["metadata"]["finalizers"], (json{"keep", "mine"}));
}

TEST(ManagedFields, CustomResourceSchemasDecideListAndMapTypes) {
  const json schema = json::parse(R"({"type":"object","properties":{"spec":{"type":"object","properties":{
    "items":{"type":"array","x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["id"],
             "items":{"type":"object","properties":{"id":{"type":"string"},"v":{"type":"integer"}}}},
    "tags":{"type":"array","x-kubernetes-list-type":"set","items":{"type":"string"}},
    "args":{"type":"array","items":{"type":"string"}},
    "extra":{"type":"object","additionalProperties":{"type":"string"}}}}}})");
  const auto t = f::type_info(&schema, "Widget");
  json o{{"spec", {{"items", {{{"id", "x"}, {"v", 1}}}}, {"tags", {"t"}}, {"args", {"a"}}, {"extra", {{"k", "v"}}}}}};
  EXPECT_EQ(strings(f::field_set(o, t)),
            (std::vector<std::string>{".spec.args", ".spec.extra", ".spec.extra.k", ".spec.items[id=\"x\"]",
                                      ".spec.items[id=\"x\"].id", ".spec.items[id=\"x\"].v", ".spec.tags[=\"t\"]"}));
}

}  // namespace

#include "kube-local/yaml_json.h"

namespace {

TEST(YamlToJson, PlainScalarsResolveAsGoYamlV2AndQuotedOnesStayStrings) {
  std::string err;
  const auto j = kl::yaml_to_json("a: yes\nb: 'yes'\nc: 012\nd: 1.5\ne: ~\nf: 10\ng: x\non: 1\nh: [1, \"2\"]\n", &err);
  ASSERT_TRUE(j) << err;
  EXPECT_EQ(*j, json::parse(R"({"a":true,"b":"yes","c":10,"d":1.5,"e":null,"f":10,"g":"x","true":1,"h":[1,"2"]})"));
  EXPECT_FALSE(kl::yaml_to_json("a: [", &err));
  EXPECT_FALSE(err.empty());
}

}  // namespace
