// Databasus objects and the exposure audit, without a server.
#include <gtest/gtest.h>

#include "common/timefmt.h"
#include "reconcile/conditions.h"
#include "reconcile/databasus.h"

using namespace bo::reconcile;
using nlohmann::json;

namespace {

json policy() {
  return {{"apiVersion", "backup.si.dev/v1alpha1"},
          {"kind", "BackupPolicy"},
          {"metadata", {{"name", "db"}, {"namespace", "supabase"}, {"uid", "u1"}, {"generation", 1}}},
          {"spec", json::object()}};
}

bo::api::BackupPolicySpec spec() {
  bo::api::BackupPolicySpec s;
  s.database.host = "supabase-db.supabase.svc";
  s.database.credentials_secret = "supabase-db";
  return s;
}

DatabasusInputs settled() {
  DatabasusInputs in;
  in.policy = policy();
  in.spec = spec();
  in.operator_image = "op:1";
  in.now = *bo::parse_rfc3339("2026-11-24T10:00:00Z");
  const auto o = build_databasus(in.policy, in.spec, in.operator_image);
  in.deployment = o.deployment;
  in.deployment["status"] = {{"readyReplicas", 1}};
  in.network_policy = o.network_policy;
  in.pvc = o.pvc;
  return in;
}

json service(const std::string& name, json selector) {
  return {{"metadata", {{"name", name}, {"namespace", "supabase"}}}, {"spec", {{"selector", selector}}}};
}

TEST(Databasus, ObjectsArePrivateByConstructionAndTakeCredentialsByReference) {
  const auto o = build_databasus(policy(), spec(), "op:1");
  EXPECT_EQ(o.deployment["metadata"]["name"], "db-databasus");
  EXPECT_EQ(o.deployment["metadata"]["ownerReferences"][0]["uid"], "u1");
  const json& pod = o.deployment["spec"]["template"]["spec"];
  EXPECT_EQ(pod["hostNetwork"], false);
  EXPECT_EQ(pod["automountServiceAccountToken"], false);
  ASSERT_EQ(pod["containers"].size(), 2u);
  for (const auto& c : pod["containers"]) {
    EXPECT_EQ(c["securityContext"]["allowPrivilegeEscalation"], false);
    for (const auto& p : c.value("ports", json::array())) EXPECT_FALSE(p.contains("hostPort"));
    for (const auto& e : c.value("env", json::array()))
      if (e["name"] == "PGPASSWORD") {
        EXPECT_EQ(e["valueFrom"]["secretKeyRef"]["name"], "supabase-db");
      }
  }
  EXPECT_EQ(o.network_policy["spec"]["ingress"], json::array());
  EXPECT_EQ(o.network_policy["spec"]["policyTypes"], json({"Ingress", "Egress"}));
  EXPECT_EQ(o.pvc["metadata"]["name"], "db-databasus-data");
}

TEST(Databasus, ContainsIgnoresServerDefaultsButNotChanges) {
  const json desired = {{"spec", {{"a", 1}, {"list", json::array()}, {"m", {{"x", "y"}}}}}};
  EXPECT_TRUE(contains({{"spec", {{"a", 1}, {"m", {{"x", "y"}, {"defaulted", true}}}, {"extra", 2}}}}, desired));
  EXPECT_FALSE(contains({{"spec", {{"a", 2}, {"m", {{"x", "y"}}}}}}, desired));
  EXPECT_FALSE(contains({{"spec", {{"a", 1}, {"list", {1}}, {"m", {{"x", "y"}}}}}}, desired));
}

TEST(Databasus, ASettledPolicyNeedsNothingAndIsPrivateAndReady) {
  const auto p = plan_databasus(settled());
  EXPECT_TRUE(p.apply.empty());
  EXPECT_TRUE(p.exposures.empty());
  ASSERT_TRUE(p.ready);
  EXPECT_TRUE(*p.ready);
  json conditions = json::array();
  EXPECT_TRUE(databasus_conditions(p, conditions, 1, settled().now).empty());
  EXPECT_EQ((*find_condition(conditions, "DatabasusPrivate"))["status"], "True");
  EXPECT_EQ((*find_condition(conditions, "DatabasusReady"))["status"], "True");
}

TEST(Databasus, EachWayOfReachingThePodsIsReportedByName) {
  auto in = settled();
  in.services = {service("peek", {{"backup.si.dev/component", "databasus"}, {"backup.si.dev/policy", "db"}}),
                 service("unrelated", {{"app", "web"}}), service("headless-no-selector", json::object())};
  in.ingresses = {{{"metadata", {{"name", "public"}}},
                   {"spec", {{"rules", {{{"http", {{"paths", {{{"backend", {{"service", {{"name", "peek"}}}}}}}}}}}}}}}}};
  in.deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["hostPort"] = 4005;
  in.network_policy["spec"]["ingress"] = json::array({json::object()});  // allow everything
  const auto p = plan_databasus(in);
  std::string all;
  for (const auto& e : p.exposures) all += e + "\n";
  EXPECT_NE(all.find("Service peek selects the Databasus pods"), std::string::npos) << all;
  EXPECT_EQ(all.find("unrelated"), std::string::npos) << all;
  EXPECT_EQ(all.find("headless"), std::string::npos) << all;
  EXPECT_NE(all.find("Ingress public routes to Service peek"), std::string::npos) << all;
  EXPECT_NE(all.find("hostPort 4005"), std::string::npos) << all;
  EXPECT_NE(all.find("NetworkPolicy db-databasus was changed"), std::string::npos) << all;
  // Its own objects go back as declared; the user's Service is reported, never touched.
  ASSERT_EQ(p.apply.size(), 2u);
  json conditions = json::array();
  const auto events = databasus_conditions(p, conditions, 1, in.now);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].reason, "DatabasusExposed");
  EXPECT_EQ((*find_condition(conditions, "DatabasusPrivate"))["reason"], "Exposed");
  // The same exposure found again is said again (the recorder counts it on the same Event).
  EXPECT_EQ(databasus_conditions(p, conditions, 1, in.now).size(), 1u);
}

TEST(Databasus, HostNetworkAndAMissingPolicyAreRestored) {
  auto in = settled();
  in.deployment["spec"]["template"]["spec"]["hostNetwork"] = true;
  in.network_policy = json();
  const auto p = plan_databasus(in);
  ASSERT_EQ(p.apply.size(), 2u);
  EXPECT_EQ(p.apply[0]["kind"], "NetworkPolicy");
  EXPECT_EQ(p.apply[1]["kind"], "Deployment");
  EXPECT_EQ(p.apply[1]["spec"]["template"]["spec"]["hostNetwork"], false);
}

TEST(Databasus, RemovingTheAddonRemovesEverythingAndItsConditions) {
  auto in = settled();
  in.spec.addons = {"supabase-walg"};
  const auto p = plan_databasus(in);
  EXPECT_EQ(p.remove.size(), 3u);
  json conditions = json::array({{{"type", "DatabasusPrivate"}, {"status", "True"}}, {{"type", "Ready"}, {"status", "True"}}});
  databasus_conditions(p, conditions, 1, in.now);
  ASSERT_EQ(conditions.size(), 1u);
  EXPECT_EQ(conditions[0]["type"], "Ready");
}

}  // namespace

TEST(Databasus, AnAdministratorSecretLetsTheSidecarRegisterTheDatabaseByReference) {
  auto s = spec();
  EXPECT_EQ(build_databasus(policy(), s, "op:1").deployment.dump().find("DATABASUS_ADMIN"), std::string::npos);
  s.databasus.admin_secret = "databasus-admin";
  const auto o = build_databasus(policy(), s, "op:1");
  const json& env = o.deployment["spec"]["template"]["spec"]["containers"][1]["env"];
  std::map<std::string, json> by_name;
  for (const auto& e : env) by_name[e["name"]] = e;
  ASSERT_TRUE(by_name.count("DATABASUS_ADMIN_EMAIL"));
  EXPECT_EQ(by_name["DATABASUS_ADMIN_EMAIL"]["valueFrom"]["secretKeyRef"], json({{"name", "databasus-admin"}, {"key", "email"}}));
  EXPECT_EQ(by_name["DATABASUS_ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"],
            json({{"name", "databasus-admin"}, {"key", "password"}}));
  EXPECT_FALSE(by_name["DATABASUS_ADMIN_PASSWORD"].contains("value"));
  // A named administrator Secret must exist with both keys.
  const auto problems = bo::api::check_secrets(s, {});
  EXPECT_TRUE(std::any_of(problems.begin(), problems.end(), [](const bo::api::Problem& p) {
    return p.field == "spec.databasus.adminSecretRef.name" && p.reason == "SecretNotFound";
  }));
}
