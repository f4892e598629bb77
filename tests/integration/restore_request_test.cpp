// RestoreRequests end to end: the real operator binary, running as its own
// service account, against kube-local with RBAC on (--authorize), calling the
// operator's identity webhook over HTTPS; users act through the real kubectl.
#include <gtest/gtest.h>

#include "common/certs.h"
#include "common/encoding.h"
#include "chart_operator.h"
#include "harness.h"
#include "kube/names.h"
#include "reconcile/caches.h"
#include "reconcile/conditions.h"

using namespace bo::kube;
using bo::reconcile::kBackupPolicies;
using bo::reconcile::kRestoreRequests;
using nlohmann::json;
using testing_support::Child;
using testing_support::eventually;
using testing_support::KubeLocal;
using testing_support::run;

namespace {

int metrics_port_ = 0;  // chosen per process: ctest runs each test in its own, in parallel
const std::string kCanary = "CANARY-rr-5150";
const std::string kSumA = "sha256:" + std::string(64, 'a');
const std::string kSumB = "sha256:" + std::string(64, 'b');
const std::string kOperatorUser = "system:serviceaccount:backup-operator-system:bo-backup-operator";

std::string rules_file(const std::filesystem::path& dir) {
  // A scratch instance's result as `run-job verify` writes it (the real one
  // runs in real_backup_test.cpp; here the control plane is under test).
  auto check = [](const char* name, bool passed) { return json{{"name", name}, {"passed", passed}, {"ms", 1}, {"output", "ok"}}; };
  const json passed = {{"restored", "{{env:BACKUP_ID}}"}, {"checksum", "{{env:BACKUP_CHECKSUM}}"}, {"recovered", true},
                       {"recoverySeconds", 3.25},
                       {"checks", {check("recovered", true), check("recovery-target", true), check("system-identifier", true)}}};
  const json broken = {{"restored", "{{env:BACKUP_ID}}"}, {"recovered", false}, {"checks", json::array()},
                       {"error", "wal-g backup-fetch: part_1.tar.br: decrypt: authentication failed"}};
  const json rules = json::array({
      {{"selector", "backup.si.dev/action=scratch,backup.si.dev/restore-request=first"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 600}}}},
      {{"selector", "backup.si.dev/action=scratch,backup.si.dev/restore-request=broken"},
       {"outcome", {{"result", "Failed"}, {"afterSeconds", 0.2}, {"exitCode", 1}, {"message", broken.dump()}}}},
      {{"selector", "backup.si.dev/action=scratch"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 0.2}, {"message", passed.dump()}}}},
      {{"selector", "backup.si.dev/action in (restore,verify)"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 0.2},
                    {"message", R"({"restored":"{{env:BACKUP_ID}}","checksum":"{{env:BACKUP_CHECKSUM}}"})"}}}},
      {{"selector", "backup.si.dev/check=integrity,backup.si.dev/validation-attempt=1"},
       {"outcome", {{"result", "Failed"}, {"afterSeconds", 0.2}, {"exitCode", 3}, {"message", "row count mismatch: 41 != 42"}}}},
      {{"selector", "backup.si.dev/check=slow"}, {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 600}}}},
      {{"selector", "backup.si.dev/check=leaky"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 0.2}, {"message", "connected with password " + kCanary}}}},
      {{"selector", "backup.si.dev/action=validate"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 0.2}, {"message", "ok from {{pod}}"}}}},
  });
  return testing_support::write_file(dir / "rules.json", rules.dump());
}

// alice administers the cluster; bob and carol may only create RestoreRequests
// in shop, and carol may also create Jobs in shop-drill (SetUpTestSuite).
std::string tokens_file(const std::filesystem::path& dir) {
  return testing_support::write_file(dir / "tokens.csv",
                                     "alice-token,alice,alice-uid,\"sre\"\n"
                                     "bob-token,bob,bob-uid,\"devs\"\n"
                                     "carol-token,carol,carol-uid,\"devs\"\n");
}

class RestoreRequestIT : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::filesystem::path(testing_support::make_temp_dir("rr"));
    server_ = new KubeLocal({"--authorize", "--tokens", tokens_file(*dir_), "--pod-rules", rules_file(*dir_)});
    auto admin = server_->client();
    // The operator exactly as the chart installs it (chart_operator.h): a
    // permission the chart lacks fails these tests.
    const auto chart = testing_support::install_crds_and_chart(*server_, *dir_);
    const Resource crb{"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false};
    ASSERT_TRUE(admin->create(crb, "", {{"metadata", {{"name", "alice"}}},
                                        {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "ClusterRole"}, {"name", "cluster-admin"}}},
                                        {"subjects", {{{"kind", "User"}, {"name", "alice"}}}}}));
    operator_ = new Child(chart.args({"--metrics-bind-address", "127.0.0.1:0", "--log-level", "debug"}),
                          *dir_ / "operator.log");
    // Ready when the controllers run (after winning the lease).
    ASSERT_TRUE(testing_support::controller_started(*operator_, "restorerequest")) << operator_->log();
    metrics_port_ = testing_support::listening_port(*operator_, "metrics");
    ASSERT_GT(metrics_port_, 0) << operator_->log();
    ASSERT_TRUE(chart.serve_webhook(*server_, *operator_)) << operator_->log();

    for (const char* ns : {"shop", "shop-drill", "shop-wait", "shop-verify"})
      ASSERT_TRUE(admin->create(resources::kNamespaces, "", {{"metadata", {{"name", ns}}}}));
    // Each non-production target holds its own read-only storage Secret (spec.verification.storageSecretRef).
    for (const char* ns : {"shop-drill", "shop-wait", "shop-verify"})
      ASSERT_TRUE(admin->create(resources::kSecrets, ns,
                                {{"metadata", {{"name", "walg-read-only"}}},
                                 {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "ro"},
                                                 {"WALG_AWS_SECRET_ACCESS_KEY", kCanary}, {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
    // Everyone in devs may ask for restores in shop; only carol may run Jobs in shop-drill.
    const Resource role{"rbac.authorization.k8s.io", "v1", "roles", "Role", true};
    const Resource rb{"rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true};
    ASSERT_TRUE(admin->create(role, "shop", {{"metadata", {{"name", "restore-requester"}}},
                                             {"rules", {{{"apiGroups", {"backup.si.dev"}}, {"resources", {"restorerequests"}},
                                                         {"verbs", {"get", "list", "create"}}}}}}));
    ASSERT_TRUE(admin->create(rb, "shop", {{"metadata", {{"name", "devs-request-restores"}}},
                                           {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "restore-requester"}}},
                                           {"subjects", {{{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Group"}, {"name", "devs"}}}}}));
    ASSERT_TRUE(admin->create(role, "shop-drill", {{"metadata", {{"name", "job-runner"}}},
                                                   {"rules", {{{"apiGroups", {"batch"}}, {"resources", {"jobs"}},
                                                               {"verbs", {"create"}}}}}}));
    ASSERT_TRUE(admin->create(rb, "shop-drill", {{"metadata", {{"name", "carol-runs-jobs"}}},
                                                 {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "job-runner"}}},
                                                 {"subjects", {{{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "User"}, {"name", "carol"}}}}}));
    ASSERT_TRUE(admin->create(resources::kPersistentVolumeClaims, "shop", {{"metadata", {{"name", "supabase-db-data"}}}, {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
    ASSERT_TRUE(admin->create(resources::kSecrets, "shop",
                              {{"metadata", {{"name", "walg-storage"}}},
                               {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                                               {"WALG_AWS_SECRET_ACCESS_KEY", kCanary}, {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
    ASSERT_TRUE(admin->create(resources::kSecrets, "shop",
                              {{"metadata", {{"name", "walg-encryption"}}}, {"stringData", {{"WALG_LIBSODIUM_KEY", kCanary}}}}));
    // Suspended: the catalog below is the test's, not a schedule's.
    ASSERT_TRUE(admin->create(kBackupPolicies, "shop",
                              {{"metadata", {{"name", "db"}}},
                               {"spec", {{"suspend", true},
                                         {"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "supabase-db.shop.svc"}}},
                                         {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                                      {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                                         {"verification", {{"targetNamespace", "shop-verify"},
                                                           {"image", "postgres:15"},
                                                           {"storageSecretRef", {{"name", "walg-read-only"}}},
                                                           {"keepFailedFor", "3s"},
                                                           {"allowedTargetNamespaces", {"shop-drill", "shop-wait"}},
                                                           {"checkImages", {"busybox"}}}}}}}));
    ASSERT_TRUE(eventually([&] {
      auto p = admin->get(kBackupPolicies, "shop", "db");
      return p && (*p).contains("status") && (*p)["status"].contains("conditions");
    }));
    for (int attempt = 0; attempt < 10; ++attempt) {
      auto p = admin->get(kBackupPolicies, "shop", "db");
      ASSERT_TRUE(p);
      (*p)["status"]["backups"] = {
          {{"id", "base_B"}, {"checksum", kSumB}, {"type", "full"}, {"verified", false},
           {"startTime", "2026-11-21T02:00:00Z"}, {"completionTime", "2026-11-21T02:05:00Z"}, {"keptFor", json::array()}},
          {{"id", "base_A"}, {"checksum", kSumA}, {"type", "full"}, {"verified", true},
           {"startTime", "2026-11-20T02:00:00Z"}, {"completionTime", "2026-11-20T02:05:00Z"}, {"keptFor", json::array()}}};
      if (admin->update_status(kBackupPolicies, "shop", *p)) break;
    }
  }
  static void TearDownTestSuite() {
    delete operator_;
    delete server_;
    std::filesystem::remove_all(*dir_);
    delete dir_;
  }
  void SetUp() override { client_ = server_->client(); }

  testing_support::CommandResult kubectl(const std::string& args) { return server_->kubectl(args); }
  testing_support::CommandResult alice(const std::string& args) { return server_->kubectl("--token alice-token " + args); }
  std::string apply_as(const std::string& user, const std::string& name, const std::string& spec_yaml,
                       const std::string& metadata_extra = "") {
    const std::string f = testing_support::write_file(*dir_ / (name + ".yaml"),
                                                      "apiVersion: backup.si.dev/v1alpha1\nkind: RestoreRequest\nmetadata:\n  name: " +
                                                          name + "\n  namespace: shop\n" + metadata_extra + "spec:\n" + spec_yaml);
    auto r = server_->kubectl("--token " + user + "-token apply -f " + f);
    return r.exit_code == 0 ? "" : r.output;
  }
  std::string apply_as_alice(const std::string& name, const std::string& spec_yaml, const std::string& metadata_extra = "") {
    return apply_as("alice", name, spec_yaml, metadata_extra);
  }
  // Every Job anywhere that belongs to a request, by its label.
  size_t jobs_anywhere(const std::string& name) {
    auto l = client_->list(resources::kJobs, "", {"backup.si.dev/restore-request=" + name, "", 0, "", ""});
    return l ? (*l)["items"].size() : 999;
  }
  json rr(const std::string& name) {
    auto r = client_->get(kRestoreRequests, "shop", name);
    return r ? *r : json::object();
  }
  std::string phase(const std::string& name) { return rr(name).value("status", json::object()).value("phase", ""); }
  json condition(const std::string& name, const char* type) {
    const json conds = rr(name).value("status", json::object()).value("conditions", json::array());
    auto c = bo::reconcile::find_condition(conds, type);
    return c ? *c : json::object();
  }
  bool wait_phase(const std::string& name, const std::string& want, int seconds = 20) {
    return eventually([&] { return phase(name) == want; }, std::chrono::seconds(seconds));
  }
  size_t jobs_of(const std::string& name, const std::string& ns) {
    auto l = client_->list(resources::kJobs, ns, {"backup.si.dev/restore-request=" + name, "", 0, "", ""});
    return l ? (*l)["items"].size() : 999;
  }
  size_t freezes() {
    auto l = client_->list(resources::kValidatingAdmissionPolicies, "", {"app.kubernetes.io/managed-by=backup-operator", "", 0, "", ""});
    return l ? (*l)["items"].size() : 999;
  }

  static std::filesystem::path* dir_;
  static KubeLocal* server_;
  static Child* operator_;
  std::unique_ptr<Client> client_;
};
std::filesystem::path* RestoreRequestIT::dir_ = nullptr;
KubeLocal* RestoreRequestIT::server_ = nullptr;
Child* RestoreRequestIT::operator_ = nullptr;

TEST_F(RestoreRequestIT, IdentityIsStampedFromTheCallerAndCannotBeForged) {
  ASSERT_EQ(apply_as_alice("who", "  policyRef: {name: db}\n  purpose: drill\n  targetNamespace: shop-drill\n"), "");
  const json stamped = json::parse(rr("who")["metadata"]["annotations"]["backup.si.dev/requested-by"].get<std::string>());
  EXPECT_EQ(stamped["username"], "alice");
  EXPECT_EQ(stamped["uid"], "alice-uid");
  EXPECT_NE(std::find(stamped["groups"].begin(), stamped["groups"].end(), "sre"), stamped["groups"].end());
  ASSERT_TRUE(eventually([&] { return rr("who").value("status", json::object()).contains("requestedBy"); }));
  EXPECT_EQ(rr("who")["status"]["requestedBy"]["username"], "alice");

  // A client-set identity is refused at creation...
  const std::string forged = apply_as_alice(
      "forged", "  policyRef: {name: db}\n",
      "  annotations:\n    backup.si.dev/requested-by: '{\"username\":\"someone-else\"}'\n");
  EXPECT_NE(forged.find("set by backup-operator"), std::string::npos) << forged;
  EXPECT_TRUE(rr("forged").empty());
  // ...and cannot be changed afterwards, even by an administrator.
  auto r = kubectl("annotate restorerequest -n shop who --overwrite backup.si.dev/requested-by={\"username\":\"mallory\"}");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("cannot change"), std::string::npos) << r.output;
  r = kubectl("patch restorerequest -n shop who --type merge -p {\"spec\":{\"backupId\":\"base_B\"}}");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_EQ(json::parse(rr("who")["metadata"]["annotations"]["backup.si.dev/requested-by"].get<std::string>())["username"], "alice");
  ASSERT_EQ(kubectl("delete restorerequest -n shop who --wait=true").exit_code, 0);
}

TEST_F(RestoreRequestIT, ForbiddenRestoresAreBlockedWithAReasonNamingTheVerifiedBackup) {
  struct Case {
    const char* name;
    std::string spec;
    const char* reason;
  } cases[] = {
      {"unknown", "  policyRef: {name: db}\n  backupId: base_Z\n", "UnknownBackup"},
      {"unverified", "  policyRef: {name: db}\n  backupId: base_B\n", "UnverifiedBackup"},
      {"mismatch", "  policyRef: {name: db}\n  backupId: base_A\n  checksum: " + kSumB + "\n", "ChecksumMismatch"},
  };
  for (const auto& c : cases) ASSERT_EQ(apply_as_alice(c.name, c.spec), "") << c.name;
  for (const auto& c : cases) {
    ASSERT_TRUE(wait_phase(c.name, "Blocked")) << c.name << ": " << rr(c.name).dump();
    const json blocked = condition(c.name, "Blocked");
    EXPECT_EQ(blocked["status"], "True");
    EXPECT_EQ(blocked["reason"], c.reason);
    EXPECT_NE(blocked["message"].get<std::string>().find("base_A"), std::string::npos) << blocked["message"];
    EXPECT_EQ(jobs_of(c.name, "shop"), 0u);
  }
  // The printer columns show it to kubectl users.
  auto r = kubectl("get rr -n shop unknown");
  EXPECT_NE(r.output.find("Blocked"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("alice"), std::string::npos) << r.output;
  for (const auto& c : cases) kubectl(std::string("delete rr -n shop ") + c.name);
}

TEST_F(RestoreRequestIT, ASuccessfulRestoreRecordsTheBackupTheRequesterAndEachValidationOutput) {
  // Into another claim (into the policy's own namespace without one is an in-place restore: RealBackups).
  ASSERT_EQ(apply_as_alice("ok", "  policyRef: {name: db}\n  target: {dataVolume: {claimName: restored}}\n  validation:\n"
                                 "  - {name: smoke, image: busybox, command: [sh, -c, 'true'], timeoutSeconds: 60}\n"
                                 "  - {name: leaky, image: busybox, command: [sh, -c, 'echo']}\n"),
            "");
  ASSERT_TRUE(wait_phase("ok", "Succeeded", 30)) << rr("ok").dump(2);
  // The finalizer went on by a patch of that list alone: what kubectl apply
  // recorded (its last-applied annotation, which the operator's slimmed cache
  // does not hold) is still there.
  const json meta = rr("ok")["metadata"];
  EXPECT_EQ(meta.value("finalizers", json::array()), json::array({"backup.si.dev/restore-cleanup"})) << meta.dump(2);
  EXPECT_TRUE(meta.value("annotations", json::object()).contains("kubectl.kubernetes.io/last-applied-configuration"))
      << meta.dump(2);
  const json st = rr("ok")["status"];
  EXPECT_EQ(st["backup"]["id"], "base_A");  // latest: the newest verified backup
  EXPECT_EQ(st["backup"]["checksum"], kSumA);
  EXPECT_EQ(st["requestedBy"]["username"], "alice");
  EXPECT_TRUE(st.contains("startTime"));
  EXPECT_TRUE(st.contains("completionTime"));
  EXPECT_EQ(st["jobName"], "ok-restore");
  ASSERT_EQ(st["validation"].size(), 3u);
  std::map<std::string, json> by_name;
  for (const auto& v : st["validation"]) by_name[v["name"]] = v;
  EXPECT_TRUE(by_name["database-answers"]["passed"]);
  EXPECT_TRUE(by_name["smoke"]["passed"]);
  EXPECT_EQ(by_name["smoke"]["exitCode"], 0);
  EXPECT_NE(by_name["smoke"]["output"].get<std::string>().find("ok from ok-v1-smoke"), std::string::npos);
  EXPECT_EQ(by_name["leaky"]["output"], "connected with password [redacted]");
  EXPECT_EQ(condition("ok", "Validated")["status"], "True");
  EXPECT_EQ(condition("ok", "Ready")["status"], "True");
  EXPECT_EQ(condition("ok", "MutationsBlocked")["status"], "False");
  // Events record each step.
  // (Events are posted in the background, after the status: wait for the last one.)
  std::string reasons;
  EXPECT_TRUE(eventually([&] {
    reasons = kubectl("get events -n shop --field-selector involvedObject.name=ok -o jsonpath={.items[*].reason}").output;
    return reasons.find("RestoreStarted") != std::string::npos && reasons.find("RestoreCompleted") != std::string::npos &&
           reasons.find("RestoreSucceeded") != std::string::npos;
  })) << reasons;
  // The restore Job took its storage credentials by reference only.
  auto job = client_->get(resources::kJobs, "shop", "ok-restore");
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["metadata"]["labels"]["backup.si.dev/service"], "supabase-walg-restore");
  EXPECT_EQ(job->dump().find(kCanary), std::string::npos);
  EXPECT_EQ(rr("ok").dump().find(kCanary), std::string::npos);
  ASSERT_EQ(kubectl("delete rr -n shop ok --wait=true").exit_code, 0);
  EXPECT_EQ(jobs_of("ok", "shop"), 0u);
}

// Names too long for a label value (issue 18 item 5): a 253-character request
// of a policy whose name is also longer than 63. Their Jobs carry the names'
// bounded forms (kube::label_value) in the backup.si.dev/restore-request and
// backup.si.dev/policy labels, the Jobs' own names stay within 63 characters,
// and the operator finds its Jobs again by those labels, so the restore and its
// validation run to the end. Unbounded, every Job create is refused.
TEST_F(RestoreRequestIT, NamesTooLongForALabelAreHashedAndTheRestoreRunsToTheEnd) {
  const std::string policy = "a-long-policy-" + std::string(90, 'p') + ".shop";
  const std::string name = "a-long-restore-request-" + std::string(230, 'r');
  ASSERT_EQ(name.size(), 253u);
  auto admin = server_->client();
  json spec = (*admin->get(kBackupPolicies, "shop", "db"))["spec"];
  ASSERT_TRUE(admin->create(kBackupPolicies, "shop", {{"metadata", {{"name", policy}}}, {"spec", spec}}));
  ASSERT_TRUE(eventually([&] {
    auto p = admin->get(kBackupPolicies, "shop", policy);
    return p && (*p).value("status", json::object()).contains("conditions");
  }));
  bool catalog = false;
  for (int attempt = 0; attempt < 10 && !catalog; ++attempt) {
    auto p = admin->get(kBackupPolicies, "shop", policy);
    ASSERT_TRUE(p);
    (*p)["status"]["backups"] = {{{"id", "base_A"}, {"checksum", kSumA}, {"type", "full"}, {"verified", true},
                                  {"startTime", "2026-11-20T02:00:00Z"}, {"completionTime", "2026-11-20T02:05:00Z"},
                                  {"keptFor", json::array()}}};
    catalog = static_cast<bool>(admin->update_status(kBackupPolicies, "shop", *p));
  }
  ASSERT_TRUE(catalog);
  const std::string f = testing_support::write_file(
      *dir_ / "long-names.yaml", "apiVersion: backup.si.dev/v1alpha1\nkind: RestoreRequest\nmetadata:\n  name: " + name +
                                     "\n  namespace: shop\nspec:\n  policyRef: {name: " + policy +
                                     "}\n  target: {dataVolume: {claimName: restored-long}}\n  validation:\n"
                                     "  - {name: smoke, image: busybox, command: [sh, -c, 'true']}\n");
  auto applied = alice("apply -f " + f);
  ASSERT_EQ(applied.exit_code, 0) << applied.output;
  ASSERT_TRUE(wait_phase(name, "Succeeded", 30)) << rr(name).dump(2);
  const json st = rr(name)["status"];
  EXPECT_EQ(st["backup"]["id"], "base_A");
  EXPECT_EQ(st["jobName"], bo::kube::bounded_name(name + "-restore"));
  const std::string label = bo::kube::label_value(name);
  auto l = client_->list(resources::kJobs, "shop", {"backup.si.dev/restore-request=" + label, "", 0, "", ""});
  ASSERT_TRUE(l);
  ASSERT_EQ((*l)["items"].size(), 3u) << l->dump(2);  // the restore, database-answers and smoke
  for (const auto& j : (*l)["items"]) {
    EXPECT_LE(j["metadata"]["name"].get<std::string>().size(), 63u);
    EXPECT_EQ(j["metadata"]["labels"]["backup.si.dev/policy"], bo::kube::label_value(policy)) << j["metadata"].dump();
    EXPECT_EQ(j["spec"]["template"]["metadata"]["labels"]["backup.si.dev/restore-request"], label);
  }
  bool smoke = false;
  for (const auto& v : st["validation"]) smoke = smoke || (v["name"] == "smoke" && v["passed"] == true);
  EXPECT_TRUE(smoke) << st.dump(2);
  // Deleting the request removes its Jobs (found by the hashed label) and releases the finalizer.
  ASSERT_EQ(kubectl("delete rr -n shop " + name + " --wait=true").exit_code, 0);
  EXPECT_EQ(jobs_of(label, "shop"), 0u);
  ASSERT_EQ(kubectl("delete backuppolicy -n shop " + policy).exit_code, 0);
}

TEST_F(RestoreRequestIT, AFailedValidationFreezesTheTargetUntilARerunPasses) {
  ASSERT_EQ(apply_as_alice("frozen", "  policyRef: {name: db}\n  purpose: restore\n  targetNamespace: shop-drill\n"
                                     "  validation:\n  - {name: integrity, image: busybox, command: [check]}\n"),
            "");
  ASSERT_TRUE(wait_phase("frozen", "Failed", 30)) << rr("frozen").dump(2);
  EXPECT_EQ(condition("frozen", "MutationsBlocked")["status"], "True");
  EXPECT_EQ(condition("frozen", "Validated")["reason"], "ValidationFailed");
  json failed;
  for (const auto& v : rr("frozen").value("status", json::object()).value("validation", json::array()))
    if (v["name"] == "integrity") failed = v;
  EXPECT_EQ(failed["passed"], false) << rr("frozen").dump(2);
  EXPECT_EQ(failed["exitCode"], 3);
  EXPECT_EQ(failed["output"], "row count mismatch: 41 != 42");
  ASSERT_TRUE(eventually([&] { return freezes() == 1; }));
  // Only the operator's own identity (the chart's service account) is exempt.
  auto vaps = client_->list(resources::kValidatingAdmissionPolicies, "", {"app.kubernetes.io/managed-by=backup-operator", "", 0, "", ""});
  EXPECT_EQ((*vaps)["items"][0]["spec"]["validations"][0]["expression"],
            "request.userInfo.username == '" + kOperatorUser + "'");

  // kubectl (as an administrator) cannot change a Secret in the frozen target.
  const std::string secret = testing_support::write_file(
      *dir_ / "drill-secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: app, namespace: shop-drill}\nstringData: {k: v}\n");
  auto r = kubectl("apply -f " + secret);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("shop-drill is frozen"), std::string::npos) << r.output;
  // Other namespaces are not.
  EXPECT_EQ(kubectl("create configmap free -n shop-wait --from-literal=a=b").exit_code, 0);

  // A rerun that passes lifts the freeze.
  ASSERT_EQ(kubectl("annotate rr -n shop frozen backup.si.dev/rerun-validation=1").exit_code, 0);
  ASSERT_TRUE(wait_phase("frozen", "Succeeded", 30)) << rr("frozen").dump(2);
  EXPECT_EQ(condition("frozen", "MutationsBlocked")["status"], "False");
  EXPECT_EQ(rr("frozen")["status"]["validationAttempt"], 2);
  ASSERT_TRUE(eventually([&] { return freezes() == 0; }));
  r = kubectl("apply -f " + secret);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(kubectl("delete rr -n shop frozen --wait=true").exit_code, 0);
  EXPECT_EQ(jobs_of("frozen", "shop-drill"), 0u);
}

TEST_F(RestoreRequestIT, OneRestorePerTargetAndDeletionMidRunLeavesNothingBehind) {
  ASSERT_EQ(apply_as_alice("first", "  policyRef: {name: db}\n  purpose: drill\n  targetNamespace: shop-wait\n"), "");
  ASSERT_TRUE(wait_phase("first", "Restoring", 30)) << rr("first").dump(2);
  ASSERT_EQ(apply_as_alice("second", "  policyRef: {name: db}\n  purpose: drill\n  targetNamespace: shop-wait\n"), "");
  ASSERT_TRUE(wait_phase("second", "Pending"));
  EXPECT_EQ(condition("second", "Ready")["reason"], "WaitingForTarget");
  EXPECT_NE(condition("second", "Ready")["message"].get<std::string>().find("shop/first"), std::string::npos);
  EXPECT_EQ(jobs_of("second", "shop"), 0u);
  EXPECT_EQ(jobs_of("second", "shop-wait"), 0u);
  ASSERT_EQ(jobs_of("first", "shop-wait"), 1u) << "one scratch Job does fetch, recovery and checks";
  ASSERT_EQ(jobs_of("first", "shop"), 0u);
  ASSERT_TRUE(client_->get(resources::kPersistentVolumeClaims, "shop-wait", "first-scratch"));
  ASSERT_TRUE(client_->get(resources::kNetworkPolicies, "shop-wait", "first-scratch"));

  // Deleting the running request removes its scratch instance, then the request.
  ASSERT_EQ(kubectl("delete rr -n shop first --wait=false").exit_code, 0);
  ASSERT_TRUE(eventually([&] { return rr("first").empty(); }, std::chrono::seconds(20))) << rr("first").dump(2);
  EXPECT_EQ(jobs_of("first", "shop-wait"), 0u);
  EXPECT_EQ(jobs_of("first", "shop"), 0u);
  EXPECT_FALSE(client_->get(resources::kPersistentVolumeClaims, "shop-wait", "first-scratch"));
  EXPECT_FALSE(client_->get(resources::kNetworkPolicies, "shop-wait", "first-scratch"));
  ASSERT_TRUE(eventually([&] {
    auto pods = client_->list(resources::kPods, "shop-wait", {"backup.si.dev/restore-request=first", "", 0, "", ""});
    return pods && (*pods)["items"].empty();
  }));
  // The waiting request now runs.
  ASSERT_TRUE(wait_phase("second", "Succeeded", 30)) << rr("second").dump(2);
  ASSERT_EQ(kubectl("delete rr -n shop second --wait=true").exit_code, 0);
}

TEST_F(RestoreRequestIT, VerificationMarksTheBackupVerifiedAndADrillMakesDrillCurrent) {
  auto policy_status = [&] {
    auto p = client_->get(kBackupPolicies, "shop", "db");
    return p ? (*p).value("status", json::object()) : json::object();
  };
  auto policy_condition = [&](const char* type) {
    const json conditions = policy_status().value("conditions", json::array());
    auto c = bo::reconcile::find_condition(conditions, type);
    return c ? *c : json::object();
  };
  // A verification as the policy creates it (owned by the policy), of the unverified base_B.
  auto p = client_->get(kBackupPolicies, "shop", "db");
  ASSERT_TRUE(p);
  ASSERT_TRUE(client_->create(
      kRestoreRequests, "shop",
      {{"metadata", {{"name", "db-verify-202611240400"},
                     {"labels", {{"backup.si.dev/policy", "db"}, {"backup.si.dev/action", "verify"}}},
                     {"ownerReferences", {{{"apiVersion", "backup.si.dev/v1alpha1"}, {"kind", "BackupPolicy"}, {"name", "db"},
                                           {"uid", (*p)["metadata"]["uid"]}, {"controller", true}}}}}},
       {"spec", {{"policyRef", {{"name", "db"}}}, {"backupId", "base_B"}, {"checksum", kSumB},
                 {"purpose", "verification"}, {"targetNamespace", "shop-verify"}}}}));
  ASSERT_TRUE(wait_phase("db-verify-202611240400", "Succeeded", 30)) << rr("db-verify-202611240400").dump(2);
  const json vst = rr("db-verify-202611240400")["status"];
  EXPECT_EQ(vst["recovery"]["seconds"], 3.25);
  EXPECT_EQ(vst["validation"].size(), 3u);
  // A passed scratch instance goes at once: Job, claim and NetworkPolicy.
  EXPECT_TRUE(eventually([&] {
    return jobs_of("db-verify-202611240400", "shop-verify") == 0 &&
           !client_->get(resources::kPersistentVolumeClaims, "shop-verify", "db-verify-202611240400-scratch") &&
           !client_->get(resources::kNetworkPolicies, "shop-verify", "db-verify-202611240400-scratch");
  })) << rr("db-verify-202611240400").dump(2);
  ASSERT_TRUE(eventually([&] { return policy_condition("Verified").value("status", "") == "True"; }))
      << policy_condition("Verified");
  const json st = policy_status();
  EXPECT_EQ(st["lastVerifiedBackup"]["id"], "base_B");
  for (const auto& e : st["backups"]) EXPECT_TRUE(e.value("verified", false)) << e.dump();
  // base_B, verified now, is what "latest" means from here on.
  ASSERT_EQ(apply_as_alice("quarterly", "  policyRef: {name: db}\n  purpose: drill\n  targetNamespace: shop-verify\n"), "");
  ASSERT_TRUE(wait_phase("quarterly", "Succeeded", 30)) << rr("quarterly").dump(2);
  EXPECT_EQ(rr("quarterly")["status"]["backup"]["id"], "base_B");
  ASSERT_TRUE(eventually([&] { return policy_status().value("lastDrill", json::object()).value("request", "") == "quarterly"; }))
      << policy_status().dump(2);
  EXPECT_EQ(policy_condition("DrillCurrent").value("status", ""), "True") << policy_condition("DrillCurrent");
  std::string scrape;
  ASSERT_TRUE(eventually([&] {
    scrape = run("curl -sf http://127.0.0.1:" + std::to_string(metrics_port_) + "/metrics").output;
    return scrape.find("backup_operator_drill_last_success_timestamp_seconds{namespace=\"shop\",policy=\"db\"}") !=
               std::string::npos &&
           scrape.find("backup_operator_backup_last_verified_timestamp_seconds{namespace=\"shop\",policy=\"db\"}") !=
               std::string::npos &&
           scrape.find("backup_operator_restore_recovery_seconds{namespace=\"shop\",policy=\"db\",purpose=\"verification\"} 3.25") !=
               std::string::npos;
  })) << scrape;
  kubectl("delete rr -n shop quarterly db-verify-202611240400 --wait=true");
}

TEST_F(RestoreRequestIT, AVerificationThatDoesNotRecoverFailsSaysWhyAndKeepsItsInstanceForKeepFailedFor) {
  ASSERT_EQ(apply_as_alice("broken", "  policyRef: {name: db}\n  purpose: drill\n  targetNamespace: shop-drill\n"
                                     "  validation:\n  - {name: orders, sql: 'SELECT count(*) FROM orders', expect: '7'}\n"),
            "");
  ASSERT_TRUE(wait_phase("broken", "Failed", 30)) << rr("broken").dump(2);
  EXPECT_EQ(condition("broken", "Validated")["reason"], "RecoveryFailed");
  EXPECT_NE(rr("broken")["status"]["message"].get<std::string>().find("authentication failed"), std::string::npos)
      << rr("broken").dump(2);
  EXPECT_EQ(freezes(), 0u) << "a drill's target is not production: nothing is frozen";
  // Kept for spec.verification.keepFailedFor (3s here), then removed.
  const json scratch = rr("broken")["status"]["scratch"];
  EXPECT_TRUE(scratch.contains("keepUntil")) << scratch;
  EXPECT_TRUE(eventually([&] {
    return rr("broken")["status"]["scratch"].value("removed", false) && jobs_of("broken", "shop-drill") == 0 &&
           !client_->get(resources::kPersistentVolumeClaims, "shop-drill", "broken-scratch");
  }, std::chrono::seconds(30))) << rr("broken").dump(2);
  ASSERT_EQ(kubectl("delete rr -n shop broken --wait=true").exit_code, 0);
}

TEST_F(RestoreRequestIT, MetricsCountRunsAndNoSecretReachesLogsOrStatus) {
  ASSERT_EQ(apply_as_alice("counted", "  policyRef: {name: db}\n  backupId: base_Z\n"), "");
  ASSERT_TRUE(wait_phase("counted", "Blocked"));
  std::string scrape;
  ASSERT_TRUE(eventually([&] {
    scrape = run("curl -sf http://127.0.0.1:" + std::to_string(metrics_port_) + "/metrics").output;
    return scrape.find("backup_operator_restore_runs_total{namespace=\"shop\",purpose=\"restore\",result=\"blocked\"}") !=
           std::string::npos;
  })) << scrape;
  EXPECT_EQ(scrape.find(kCanary), std::string::npos);
  EXPECT_EQ(operator_->log().find(kCanary), std::string::npos);
  EXPECT_NE(operator_->log().find("\"msg\":\"restore step\""), std::string::npos);
  ASSERT_EQ(kubectl("delete rr -n shop counted --wait=true").exit_code, 0);
}

// Issue 16 item 4: the operator runs Jobs in a target only for a requester
// the API server says may create Jobs there (a SubjectAccessReview with the
// requester's recorded identity); never in kube-system or its own namespace,
// nor in a namespace the policy does not list, nor with an unlisted image.
TEST_F(RestoreRequestIT, ARequesterWhoMayNotCreateJobsInTheTargetIsForbiddenAndOneWhoMayGoesThrough) {
  // bob may create RestoreRequests in shop (kubectl says so), but not Jobs in shop-drill.
  EXPECT_EQ(server_->kubectl("--token bob-token auth can-i create restorerequests.backup.si.dev -n shop").output, "yes\n");
  EXPECT_NE(server_->kubectl("--token bob-token auth can-i create jobs.batch -n shop-drill").output, "yes\n");
  ASSERT_EQ(apply_as("bob", "bobs-drill", "  policyRef: {name: db}\n  purpose: drill\n  targetNamespace: shop-drill\n"), "");
  ASSERT_TRUE(wait_phase("bobs-drill", "Blocked")) << rr("bobs-drill").dump(2);
  const json blocked = condition("bobs-drill", "Blocked");
  EXPECT_EQ(blocked["status"], "True");
  EXPECT_EQ(blocked["reason"], "Forbidden");
  const std::string msg = blocked.value("message", "");
  for (const char* part : {"\"bob\"", "create", "jobs.batch", "namespace shop-drill", "no RBAC policy matched"})
    EXPECT_NE(msg.find(part), std::string::npos) << part << " in " << msg;
  const json st = rr("bobs-drill")["status"];
  EXPECT_EQ(st["requestedBy"]["username"], "bob");
  EXPECT_EQ(st["access"]["allowed"], false);
  EXPECT_EQ(st["access"]["namespace"], "shop-drill");
  EXPECT_EQ(jobs_anywhere("bobs-drill"), 0u);

  // carol, with the same request rights and create jobs in shop-drill, goes through.
  ASSERT_EQ(apply_as("carol", "carols-drill", "  policyRef: {name: db}\n  purpose: drill\n  targetNamespace: shop-drill\n"), "");
  ASSERT_TRUE(wait_phase("carols-drill", "Succeeded", 30)) << rr("carols-drill").dump(2);
  const json ok = rr("carols-drill")["status"];
  EXPECT_EQ(ok["requestedBy"]["username"], "carol");
  EXPECT_EQ(ok["access"], json({{"user", "carol"}, {"verb", "create"}, {"resource", "jobs.batch"},
                                {"namespace", "shop-drill"}, {"allowed", true}}));
  // Each answer came from a SubjectAccessReview the operator made (its log says whom it asked about).
  const std::string log = operator_->log();
  for (const char* who : {"\"user\":\"bob\"", "\"user\":\"carol\""})
    EXPECT_NE(log.find(who), std::string::npos) << who;
  kubectl("delete rr -n shop bobs-drill carols-drill --wait=true");
}

TEST_F(RestoreRequestIT, KubeSystemUnlistedTargetsAndUnlistedCheckImagesAreRefused) {
  struct Case {
    const char* name;
    std::string spec;
    const char* reason;
    const char* field;
  } cases[] = {
      {"into-kube-system", "  policyRef: {name: db}\n  purpose: drill\n  targetNamespace: kube-system\n", "TargetNotAllowed",
       "spec.targetNamespace"},
      {"into-operator", "  policyRef: {name: db}\n  purpose: drill\n  targetNamespace: backup-operator-system\n",
       "TargetNotAllowed", "the operator's own namespace"},
      {"into-unlisted", "  policyRef: {name: db}\n  purpose: drill\n  targetNamespace: default\n", "TargetNotAllowed",
       "spec.verification.allowedTargetNamespaces"},
      {"unlisted-image", "  policyRef: {name: db}\n  purpose: restore\n  targetNamespace: shop-drill\n  validation:\n"
                         "  - {name: ok, image: busybox, command: ['true']}\n"
                         "  - {name: miner, image: example.org/miner:1, command: [mine]}\n",
       "ImageNotAllowed", "spec.validation[1].image"},
  };
  for (const auto& c : cases) ASSERT_EQ(apply_as_alice(c.name, c.spec), "") << c.name;
  for (const auto& c : cases) {
    ASSERT_TRUE(wait_phase(c.name, "Blocked")) << c.name << ": " << rr(c.name).dump(2);
    const json blocked = condition(c.name, "Blocked");
    EXPECT_EQ(blocked["reason"], c.reason) << c.name;
    EXPECT_NE(blocked.value("message", "").find(c.field), std::string::npos) << c.name << ": " << blocked;
    EXPECT_EQ(jobs_anywhere(c.name), 0u) << c.name;
  }
  auto in_kube_system = client_->list(resources::kJobs, "kube-system", {});
  ASSERT_TRUE(in_kube_system);
  EXPECT_TRUE((*in_kube_system)["items"].empty());
  for (const auto& c : cases) kubectl(std::string("delete rr -n shop ") + c.name);
}

}  // namespace
