// Databasus objects and the exposure audit, without a server.
#include <gtest/gtest.h>

#include "common/timefmt.h"
#include "kube-local/pod_security.h"
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

// As Databasus' authors run it hardened (deploy/helm/README.md, "Pod Security /
// Hardening"; values.yaml's note by podSecurityContext): root at start, SETUID and
// SETGID for gosu, never runAsNonRoot; the version probes and resources of its chart.
TEST(Databasus, RunsAsItsAuthorsChartRunsItHardened) {
  const auto o = build_databasus(policy(), spec(), "op:1");
  const json& pod = o.deployment["spec"]["template"]["spec"];
  EXPECT_FALSE(pod["securityContext"].contains("runAsNonRoot"));
  EXPECT_FALSE(pod["securityContext"].contains("runAsUser"));
  EXPECT_EQ(pod["securityContext"]["fsGroup"], 999);
  EXPECT_EQ(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
  const json& d = pod["containers"][0];
  ASSERT_EQ(d["name"], "databasus");
  EXPECT_EQ(d["image"], "databasus/databasus:v3.51.0");
  EXPECT_FALSE(d["securityContext"].contains("runAsNonRoot"));
  EXPECT_FALSE(d["securityContext"].contains("runAsUser"));
  EXPECT_EQ(d["securityContext"]["capabilities"]["drop"], json({"ALL"}));
  EXPECT_EQ(d["securityContext"]["capabilities"]["add"], json({"SETUID", "SETGID"}));
  EXPECT_EQ(d["securityContext"]["readOnlyRootFilesystem"], true);
  std::map<std::string, std::string> mounts;
  for (const auto& m : d["volumeMounts"]) mounts[m["mountPath"]] = m["name"];
  EXPECT_EQ(mounts.at("/tmp"), "tmp");
  EXPECT_EQ(mounts.at("/var/run"), "var-run");
  EXPECT_EQ(mounts.at("/databasus-data"), "data");
  for (const char* probe : {"readinessProbe", "livenessProbe"}) {
    EXPECT_EQ(d[probe]["httpGet"]["path"], "/api/v1/system/version") << probe;
    EXPECT_EQ(d[probe]["httpGet"]["port"], "http") << probe;
    EXPECT_FALSE(d[probe].contains("tcpSocket")) << probe;
  }
  EXPECT_EQ(d["readinessProbe"]["initialDelaySeconds"], 10);
  EXPECT_EQ(d["readinessProbe"]["periodSeconds"], 5);
  EXPECT_EQ(d["livenessProbe"]["initialDelaySeconds"], 30);
  EXPECT_EQ(d["resources"]["requests"], json({{"memory", "1Gi"}, {"cpu", "500m"}}));
  EXPECT_EQ(d["resources"]["limits"], json({{"memory", "1Gi"}, {"cpu", "500m"}}));
  // The sidecar is the operator's binary and stays "restricted".
  const json& m = pod["containers"][1];
  EXPECT_EQ(m["securityContext"]["runAsNonRoot"], true);
  EXPECT_EQ(m["securityContext"]["runAsUser"], 65532);
  EXPECT_EQ(m["securityContext"]["capabilities"], json({{"drop", {"ALL"}}}));
  // The user's resources replace upstream's defaults.
  auto s = spec();
  s.databasus.resources = {{"requests", {{"memory", "2Gi"}}}};
  EXPECT_EQ(build_databasus(policy(), s, "op:1").deployment["spec"]["template"]["spec"]["containers"][0]["resources"],
            s.databasus.resources);
}

// What docs/databasus.md says of it, checked with Pod Security admission's own rules
// (kube-local implements pod-security-admission's checks): "baseline" admits
// the pod; "restricted" refuses it for running as root and adding capabilities.
TEST(Databasus, ItsPodMeetsPodSecurityBaselineButNotRestricted) {
  const auto o = build_databasus(policy(), spec(), "op:1");
  const json& tmpl = o.deployment["spec"]["template"];
  EXPECT_EQ(kl::pod_security_violations("baseline", tmpl["metadata"], tmpl["spec"]), "");
  const std::string refused = kl::pod_security_violations("restricted", tmpl["metadata"], tmpl["spec"]);
  EXPECT_NE(refused.find("runAsNonRoot"), std::string::npos) << refused;
  EXPECT_NE(refused.find("SETUID"), std::string::npos) << refused;
  EXPECT_EQ(refused.find("container \"metadata\""), std::string::npos) << "the sidecar is restricted: " << refused;
}

TEST(Databasus, AnImageIsPinnedByATagOtherThanLatestOrByADigest) {
  const std::string digest = "@sha256:" + std::string(64, 'a');
  for (const std::string& pinned : std::vector<std::string>{"databasus/databasus:v3.51.0", "registry.local:5000/databasus/databasus:v3.51.0",
                                    "databasus/databasus" + digest, "databasus/databasus:v3.51.0" + digest})
    EXPECT_TRUE(bo::api::image_is_pinned(pinned)) << pinned;
  for (const std::string& loose : std::vector<std::string>{"databasus/databasus", "databasus/databasus:latest", "registry.local:5000/databasus",
                                   "databasus/databasus:", "databasus/databasus@sha256:abc"})
    EXPECT_FALSE(bo::api::image_is_pinned(loose)) << loose;
  auto s = spec();
  s.addons = {"databasus"};
  s.databasus.image = "databasus/databasus:latest";
  bool found = false;
  for (const auto& p : bo::api::validate(s, "supabase", "backup-system"))
    if (p.field == "spec.databasus.image") {
      found = true;
      EXPECT_EQ(p.reason, "ImageNotPinned");
      EXPECT_NE(p.message.find("databasus/databasus:v3.51.0"), std::string::npos) << p.message;
    }
  EXPECT_TRUE(found);
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
