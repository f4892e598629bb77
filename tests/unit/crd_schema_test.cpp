// The CRDs in crds/ (and the chart's copy, which must be the same bytes):
// every list, map and string bounded, every name-like field patterned, and
// conditions a map list keyed by type (issue 18 item 5).
//
// A real API server estimates the worst-case cost of each x-kubernetes-validations
// rule from maxItems, maxProperties and maxLength, and refuses the whole CRD when
// a rule may exceed its budget ("Extending the Kubernetes API: validation rules,
// resource use by validation functions"); kube-local does not estimate costs, so
// this test is what notices an unbounded field.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "kube-local/yaml_json.h"

using nlohmann::json;

namespace {

const std::filesystem::path kSource = SOURCE_DIR;
const char* const kCrds[] = {"backup.si.dev_backuppolicies.yaml", "backup.si.dev_restorerequests.yaml"};
const std::string kDnsLabel = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const std::string kDnsSubdomain = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

std::string read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

json schema_of(const char* file) {
  std::string err;
  auto crd = kl::yaml_to_json(read(kSource / "crds" / file), &err);
  EXPECT_TRUE(crd) << file << ": " << err;
  return crd ? (*crd)["spec"]["versions"][0]["schema"]["openAPIV3Schema"] : json::object();
}

// Every unbounded array, map (additionalProperties), free-form object
// (x-kubernetes-preserve-unknown-fields) and string, by path. An enum bounds
// its string.
void unbounded(const json& s, const std::string& path, std::vector<std::string>& out) {
  if (!s.is_object()) return;
  const std::string type = s.value("type", "");
  if (s.value("x-kubernetes-preserve-unknown-fields", false)) out.push_back(path + " (preserve-unknown-fields)");
  if (type == "array") {
    if (!s.contains("maxItems")) out.push_back(path + " (maxItems)");
    if (s.contains("items")) unbounded(s["items"], path + "[]", out);
  }
  if (type == "string" && !s.contains("maxLength") && !s.contains("enum")) out.push_back(path + " (maxLength)");
  if (s.value("x-kubernetes-int-or-string", false) && !s.contains("maxLength")) out.push_back(path + " (maxLength)");
  if (s.contains("additionalProperties") && s["additionalProperties"].is_object()) {
    if (!s.contains("maxProperties")) out.push_back(path + " (maxProperties)");
    unbounded(s["additionalProperties"], path + "[*]", out);
  }
  if (s.contains("properties"))
    for (const auto& [k, sub] : s["properties"].items()) unbounded(sub, path.empty() ? k : path + "." + k, out);
}

TEST(CrdSchema, TheChartShipsTheSameCrds) {
  for (const char* f : kCrds)
    EXPECT_EQ(read(kSource / "charts/backup-operator/crds" / f), read(kSource / "crds" / f))
        << f << ": copy crds/ into charts/backup-operator/crds/";
}

TEST(CrdSchema, EveryListMapAndStringIsBounded) {
  for (const char* f : kCrds) {
    std::vector<std::string> out;
    unbounded(schema_of(f), "", out);
    std::string all;
    for (const auto& p : out) all += "\n  " + p;
    EXPECT_TRUE(out.empty()) << f << ": unbounded:" << all;
  }
}

// The walker itself: each kind of unbounded node is named.
TEST(CrdSchema, TheWalkerNamesEachUnboundedNode) {
  const json s = {{"type", "object"},
                  {"properties",
                   {{"a", {{"type", "array"}, {"items", {{"type", "string"}, {"maxLength", 3}}}}},
                    {"m", {{"type", "object"}, {"additionalProperties", {{"type", "string"}, {"maxLength", 3}}}}},
                    {"s", {{"type", "string"}}},
                    {"e", {{"type", "string"}, {"enum", {"x"}}}},
                    {"free", {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}},
                    {"ok", {{"type", "array"}, {"maxItems", 1}, {"items", {{"type", "string"}}}}}}}};
  std::vector<std::string> out;
  unbounded(s, "", out);
  EXPECT_EQ(out, (std::vector<std::string>{"a (maxItems)", "free (preserve-unknown-fields)", "m (maxProperties)",
                                           "ok[] (maxLength)", "s (maxLength)"}));
}

const json& at(const json& schema, const std::vector<std::string>& path) {
  const json* s = &schema;
  for (const auto& p : path) {
    if (p == "[]") s = &s->at("items");
    else s = &s->at("properties").at(p);
  }
  return *s;
}

TEST(CrdSchema, NameLikeFieldsCarryDnsPatterns) {
  struct Case {
    const char* crd;
    std::vector<std::string> path;
    const std::string& pattern;
    int max;
  };
  const std::vector<Case> cases = {
      {kCrds[1], {"spec", "policyRef", "name"}, kDnsSubdomain, 253},
      {kCrds[1], {"spec", "targetNamespace"}, kDnsLabel, 63},
      {kCrds[1], {"spec", "validation", "[]", "name"}, kDnsLabel, 63},
      {kCrds[1], {"spec", "target", "dataVolume", "claimName"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "verification", "targetNamespace"}, kDnsLabel, 63},
      {kCrds[0], {"spec", "verification", "allowedTargetNamespaces", "[]"}, kDnsLabel, 63},
      {kCrds[0], {"spec", "verification", "checks", "[]", "name"}, kDnsLabel, 63},
      {kCrds[0], {"spec", "verification", "storageSecretRef", "name"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "storage", "secretRef", "name"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "storage", "encryption", "secretRef", "name"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "database", "credentialsSecretRef", "name"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "database", "dataVolume", "claimName"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "database", "workloadRef", "name"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "database", "container"}, kDnsLabel, 63},
      {kCrds[0], {"spec", "offsite", "secretRef", "name"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "databasus", "adminSecretRef", "name"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "paasState", "claimName"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "paasState", "keySecretRef", "name"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "paasState", "destination", "claimName"}, kDnsSubdomain, 253},
      {kCrds[0], {"spec", "jobTemplate", "serviceAccountName"}, kDnsSubdomain, 253},
  };
  for (const auto& c : cases) {
    const json schema = schema_of(c.crd);
    const json& s = at(schema, c.path);
    std::string where = c.crd;
    for (const auto& p : c.path) where += "." + p;
    EXPECT_EQ(s.value("pattern", ""), c.pattern) << where;
    EXPECT_EQ(s.value("maxLength", 0), c.max) << where;
  }
}

TEST(CrdSchema, ConditionsAreAMapListKeyedByType) {
  for (const char* f : kCrds) {
    const json schema = schema_of(f);
    const json& c = at(schema, {"status", "conditions"});
    EXPECT_EQ(c.value("x-kubernetes-list-type", ""), "map") << f;
    EXPECT_EQ(c.value("x-kubernetes-list-map-keys", json::array()), json::array({"type"})) << f;
    // A map key must be required (or defaulted), as the API server checks when it stores the CRD.
    EXPECT_NE(c["items"]["required"].dump().find("\"type\""), std::string::npos) << f;
  }
}

// The RestoreRequest's status is typed (every field the controller writes), not a free-form object.
TEST(CrdSchema, RestoreRequestStatusIsTyped) {
  const json schema = schema_of(kCrds[1]);
  const json st = at(schema, {"status"});
  EXPECT_FALSE(st.value("x-kubernetes-preserve-unknown-fields", false));
  for (const char* k : {"observedGeneration", "phase", "message", "purpose", "targetNamespace", "startTime",
                        "completionTime", "restoredTime", "jobName", "conditions", "requestedBy", "access", "backup",
                        "scratch", "inPlace", "recovery", "validation", "validationAttempt", "validationRerun"})
    EXPECT_TRUE(st["properties"].contains(k)) << k;
}

}  // namespace
