// The tools users already run, judging real objects (issue 20 item 3): the
// operator runs in-process against kube-local, and the status objects it
// writes are read back and judged by kstatus' documented rules (the oracle in
// support/kstatus.h: what Flux computes) and by the shipped Argo CD health
// checks, run with Debian's Lua (support/argocd_health.h). Every object judged
// is left as JSON (and as the Lua table fed to the check) in the test's
// temporary directory.
#include <gtest/gtest.h>

#include "common/certs.h"
#include "common/encoding.h"
#include "harness.h"
#include "in_process_operator.h"
#include "reconcile/backup_policy_controller.h"
#include "reconcile/conditions.h"
#include "reconcile/restore_controller.h"
#include "support/argocd_health.h"
#include "support/kstatus.h"
#include "support/pod_rules.h"
#include "webhook/server.h"

using namespace bo::kube;
using bo::reconcile::kBackupPolicies;
using bo::reconcile::kRestoreRequests;
using nlohmann::json;
using testing_support::eventually;

namespace {

// First match wins: the catalog of policy "syncing" and the scratch instance of
// RestoreRequest "slow" never finish; everything else succeeds at once.
std::string rules_file() {
  const auto dir = testing_support::make_temp_dir("kstatus-rules");
  const json never = {{"result", "Succeeded"}, {"afterSeconds", 3600}, {"message", "{}"}};
  const json rules = json::array(
      {{{"selector", "backup.si.dev/policy=syncing,backup.si.dev/action=catalog"}, {"outcome", never}},
       {{"selector", "backup.si.dev/restore-request=slow"}, {"outcome", never}},
       {{"selector", "backup.si.dev/action=catalog"},
        {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 0.2},
                     {"message", R"({"listedAt":"2026-01-01T00:00:00Z","listed":0,"backups":[]})"}}}},
       testing_support::pod_rule("backup.si.dev/action=scratch", "Succeeded", testing_support::kScratchResult),
       testing_support::pod_rule("backup.si.dev/action in (backup,full-backup)", "Succeeded",
                                 testing_support::backup_result("2026-11-24T02:00:01Z", "2026-11-24T02:04:00Z")),
       testing_support::pod_rule("backup.si.dev/action=retain", "Succeeded", R"({"deleted":[]})")});
  return testing_support::write_file(dir / "rules.json", rules.dump());
}

class ToolsUsersRunIT : public testing_support::InProcessOperatorIT<ToolsUsersRunIT> {
 protected:
  static void SetUpTestSuite() { start_server({"--authorize", "--pod-rules", rules_file()}); }
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(set_up_namespace("ks"));
    dir_ = testing_support::make_temp_dir("kstatus-objects");
    std::cout << "objects judged are kept in " << dir_ << "\n";
    ASSERT_TRUE(client_->create(resources::kPersistentVolumeClaims, ns_,
                                {{"metadata", {{"name", "supabase-db-data"}}},
                                 {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
    ASSERT_NO_FATAL_FAILURE(create_storage_secret("CANARY-5e2f"));
    ASSERT_TRUE(client_->create(resources::kSecrets, ns_,
                                {{"metadata", {{"name", "supabase-db"}}},
                                 {"stringData", {{"username", "postgres"}, {"password", "CANARY-5e2f"}}}}));
    ASSERT_TRUE(client_->create(resources::kSecrets, ns_,
                                {{"metadata", {{"name", "walg-encryption"}}}, {"stringData", {{"WALG_LIBSODIUM_KEY", "CANARY-5e2f"}}}}));
  }
  void TearDown() override {
    stop_controllers();
    drop_controllers();
    InProcessOperatorIT::TearDown();
  }
  void drop_controllers() {
    restores_.reset();
    controller_.reset();
    caches_.reset();
  }

  json policy(const std::string& name, json patch = json::object()) {
    json spec = {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102},
                               {"host", "db"}, {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
                 {"storage", {{"secretRef", {{"name", "walg-storage"}}}, {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                 {"verification", {{"targetNamespace", ns_ + "-verify"}, {"image", "postgres:15"}, {"schedule", "0 * * * *"},
                                   {"storageSecretRef", {{"name", "walg-read-only"}}}}}};
    spec.merge_patch(patch);
    return {{"apiVersion", "backup.si.dev/v1alpha1"}, {"kind", "BackupPolicy"}, {"metadata", {{"name", name}}}, {"spec", spec}};
  }
  // Caches, the BackupPolicy controller (catalog Jobs on, as the operator binary has it) and the RestoreRequest controller.
  void start_controllers() {
    drop_controllers();  // stopped ones (stop is for good): new ones read everything afresh
    caches_ = std::make_unique<bo::reconcile::Caches>(*op_client_, "");
    bo::reconcile::BackupPolicyControllerOptions o{ns_, 2, ""};
    o.operator_namespace = "backup-operator-system";
    o.addon_retry = std::chrono::milliseconds(500);
    o.catalog_sync = true;
    controller_ = std::make_unique<bo::reconcile::BackupPolicyController>(*op_client_, *caches_, *clock_, *recorder_, metrics_, o);
    bo::reconcile::RestoreControllerOptions ro;
    ro.operator_namespace = "backup-operator-system";
    restores_ = std::make_unique<bo::reconcile::RestoreController>(*op_client_, *caches_, *clock_, *recorder_, metrics_, ro);
    caches_->start();
    controller_->start();
    restores_->start();
    ASSERT_TRUE(eventually([&] { return controller_->synced(); }));
  }
  // The operator gone (as during an upgrade): nothing observes the objects.
  void stop_controllers() {
    if (restores_) restores_->stop();
    if (controller_) controller_->stop();
    if (caches_) caches_->stop();
  }
  json get(const Resource& r, const std::string& ns, const std::string& name) {
    auto o = client_->get(r, ns, name);
    return o ? *o : json::object();
  }
  // An object's status, conditions and one condition (empty when absent: a new object's status may be null).
  static json status_of(const json& obj) {
    return obj.contains("status") && obj["status"].is_object() ? obj["status"] : json::object();
  }
  static json conditions_of(const json& obj) {
    const json st = status_of(obj);
    return st.contains("conditions") && st["conditions"].is_array() ? st["conditions"] : json::array();
  }
  static json condition(const json& obj, const std::string& type) {
    const json cs = conditions_of(obj);
    const auto* c = bo::reconcile::find_condition(cs, type);
    return c ? *c : json::object();
  }
  static std::string cond_status(const json& obj, const std::string& type) { return condition(obj, type).value("status", ""); }
  static std::string phase_of(const json& obj) { return status_of(obj).value("phase", ""); }
  // kstatus' and Argo CD's verdicts on `obj`, which stays in dir_ as <stem>.json.
  void expect_judged(const json& obj, const std::string& stem, const std::string& kstatus, const std::string& argocd) {
    SCOPED_TRACE(stem);
    const auto ks = testing_support::kstatus_compute(obj);
    EXPECT_EQ(ks.status, kstatus) << ks.message << "\n" << obj.dump(2);
    const auto h = testing_support::argocd_health(LUA_BIN, SOURCE_DIR, obj, dir_, stem);
    ASSERT_EQ(h.exit_code, 0) << h.output;
    EXPECT_EQ(h.status, argocd) << h.message << "\n" << obj.dump(2);
    std::cout << stem << ": kstatus " << ks.status << " (" << ks.message << "); Argo CD " << h.status << " (" << h.message
              << ")\n";
  }

  std::filesystem::path dir_;
  std::unique_ptr<bo::reconcile::RestoreController> restores_;
};

TEST_F(ToolsUsersRunIT, KstatusAndArgoCdReadPoliciesAndRestoresAsTheOperatorWritesThem) {
  // The identity webhook, in-process, for this test's namespace only: a
  // RestoreRequest elsewhere carries no requester and is refused.
  const auto tls = bo::generate_tls("ks-it-webhook");
  bo::webhook::Server webhook;
  ASSERT_TRUE(webhook.start("127.0.0.1:0", tls.server));
  const std::string wh_name = "ks-it-" + ns_;
  ASSERT_TRUE(client_->create(
      resources::kMutatingWebhookConfigurations, "",
      {{"metadata", {{"name", wh_name}}},
       {"webhooks", {{{"name", "requested-by.backup.si.dev"},
                      {"clientConfig", {{"url", "https://127.0.0.1:" + std::to_string(webhook.port()) + "/mutate-restorerequests"},
                                        {"caBundle", bo::base64_encode(tls.ca.cert)}}},
                      {"rules", {{{"operations", {"CREATE", "UPDATE"}}, {"apiGroups", {"backup.si.dev"}},
                                  {"apiVersions", {"v1alpha1"}}, {"resources", {"restorerequests"}}}}},
                      {"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", ns_}}}}},
                      {"failurePolicy", "Fail"}, {"sideEffects", "None"}, {"admissionReviewVersions", {"v1"}}}}}}));

  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy("db")));
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy("syncing")));
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy("broken", {{"schedule", {{"backup", "every hour"}}}})));
  ASSERT_NO_FATAL_FAILURE(start_controllers());

  // A policy whose catalog, then first backup, have reported: Ready, and Current.
  ASSERT_TRUE(eventually([&] {
    const json p = get(kBackupPolicies, ns_, "db");
    return cond_status(p, "Ready") == "True" && cond_status(p, "BackupHealthy") == "True" &&
           cond_status(p, "Reconciling") == "False";
  })) << get(kBackupPolicies, ns_, "db").dump(2);
  const json db = get(kBackupPolicies, ns_, "db");
  EXPECT_EQ(status_of(db)["observedGeneration"], db["metadata"]["generation"]);
  for (const auto& c : conditions_of(db)) EXPECT_EQ(c["observedGeneration"], db["metadata"]["generation"]) << c;
  EXPECT_EQ(cond_status(db, "Stalled"), "False");
  expect_judged(db, "policy-ready", "Current", "Healthy");

  // A new policy whose first catalog Job has not reported: in progress.
  ASSERT_TRUE(eventually([&] {
    const json r = condition(get(kBackupPolicies, ns_, "syncing"), "Reconciling");
    return r.value("status", "") == "True" && r.value("reason", "") == "CatalogSyncing";
  })) << get(kBackupPolicies, ns_, "syncing").dump(2);
  const json syncing = get(kBackupPolicies, ns_, "syncing");
  EXPECT_EQ(cond_status(syncing, "Ready"), "True");
  EXPECT_EQ(cond_status(syncing, "Stalled"), "False");
  expect_judged(syncing, "policy-syncing", "InProgress", "Progressing");

  // An invalid spec: Stalled with Ready's reason, and Failed.
  ASSERT_TRUE(eventually([&] { return cond_status(get(kBackupPolicies, ns_, "broken"), "Stalled") == "True"; }));
  const json broken = get(kBackupPolicies, ns_, "broken");
  const json stalled = condition(broken, "Stalled"), ready = condition(broken, "Ready");
  EXPECT_EQ(stalled.value("reason", ""), "InvalidSchedule");
  EXPECT_EQ(stalled.value("reason", ""), ready.value("reason", ""));
  EXPECT_NE(stalled.value("message", "").find("spec.schedule.backup"), std::string::npos);
  EXPECT_EQ(cond_status(broken, "Reconciling"), "False");
  expect_judged(broken, "policy-invalid", "Failed", "Degraded");

  // The next hour a verification restores the backup; once it has finished
  // (Succeeded) the RestoreRequest is Current.
  clock_->advance(std::chrono::hours(1));
  controller_->reconcile(ns_ + "/db");
  ASSERT_TRUE(eventually([&] { return cond_status(get(kBackupPolicies, ns_, "db"), "Verified") == "True"; },
                         std::chrono::seconds(30)))
      << get(kBackupPolicies, ns_, "db").dump(2);
  const std::string verification = status_of(get(kBackupPolicies, ns_, "db")).value("lastVerification", json::object()).value("request", "");
  const json verified = get(kRestoreRequests, ns_, verification);
  EXPECT_EQ(phase_of(verified), "Succeeded");
  expect_judged(verified, "restore-finished", "Current", "Healthy");

  // A drill whose scratch instance is still restoring: in progress.
  const auto drill = [&](const std::string& name, const std::string& ns) {
    return json{{"apiVersion", "backup.si.dev/v1alpha1"}, {"kind", "RestoreRequest"},
                {"metadata", {{"name", name}, {"namespace", ns}}},
                {"spec", {{"policyRef", {{"name", "db"}}}, {"purpose", "drill"}, {"targetNamespace", ns_ + "-verify"}}}};
  };
  ASSERT_TRUE(client_->create(kRestoreRequests, ns_, drill("slow", ns_)));
  ASSERT_TRUE(eventually([&] { return phase_of(get(kRestoreRequests, ns_, "slow")) == "Restoring"; }))
      << get(kRestoreRequests, ns_, "slow").dump(2);
  expect_judged(get(kRestoreRequests, ns_, "slow"), "restore-in-progress", "InProgress", "Progressing");

  // A request nobody can be named for (outside the webhook's namespaces): Blocked, Failed.
  ASSERT_TRUE(client_->create(kRestoreRequests, ns_ + "-verify", drill("anonymous", ns_ + "-verify")));
  ASSERT_TRUE(eventually([&] {
    return phase_of(get(kRestoreRequests, ns_ + "-verify", "anonymous")) == "Blocked";
  })) << get(kRestoreRequests, ns_ + "-verify", "anonymous").dump(2);
  expect_judged(get(kRestoreRequests, ns_ + "-verify", "anonymous"), "restore-blocked", "Failed", "Degraded");

  // The operator stops (an upgrade). A spec change it has not observed is in
  // progress; so is a request being deleted (its finalizer waits for the
  // operator); a policy created meanwhile has no status at all.
  stop_controllers();
  ASSERT_TRUE(client_->patch(kBackupPolicies, ns_, "db", PatchType::kMerge, {{"spec", {{"retention", {{"daily", 8}}}}}}));
  const json changed = get(kBackupPolicies, ns_, "db");
  ASSERT_EQ(changed["metadata"]["generation"], db["metadata"]["generation"].get<int64_t>() + 1);
  expect_judged(changed, "policy-spec-not-observed", "InProgress", "Progressing");
  ASSERT_TRUE(client_->remove(kRestoreRequests, ns_, "slow"));
  const json deleting = get(kRestoreRequests, ns_, "slow");
  ASSERT_TRUE(deleting["metadata"].contains("deletionTimestamp")) << deleting.dump(2);
  expect_judged(deleting, "restore-terminating", "Terminating", "Progressing");
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy("late")));
  // kstatus calls an object without status Current (the caveat its README
  // names for abnormal-true conditions); Argo CD's check waits for the operator.
  expect_judged(get(kBackupPolicies, ns_, "late"), "policy-no-status", "Current", "Progressing");

  // The operator is back: it observes the new generation and is Current again.
  ASSERT_NO_FATAL_FAILURE(start_controllers());
  ASSERT_TRUE(eventually([&] {
    const json p = get(kBackupPolicies, ns_, "db");
    return status_of(p).value("observedGeneration", int64_t{0}) == p["metadata"].value("generation", int64_t{-1});
  })) << get(kBackupPolicies, ns_, "db").dump(2);
  expect_judged(get(kBackupPolicies, ns_, "db"), "policy-spec-observed", "Current", "Healthy");
  EXPECT_TRUE(eventually([&] { return !client_->get(kRestoreRequests, ns_, "slow"); }));
  // kubectl's wide output has the pair as columns (the CRDs' priority-1 printer columns).
  const auto wide = server_->kubectl("get backuppolicies -n " + ns_ + " -o wide");
  ASSERT_EQ(wide.exit_code, 0) << wide.output;
  EXPECT_NE(wide.output.find("RECONCILING"), std::string::npos) << wide.output;
  EXPECT_NE(wide.output.find("STALLED"), std::string::npos) << wide.output;
  const auto narrow = server_->kubectl("get backuppolicies -n " + ns_);
  EXPECT_EQ(narrow.output.find("STALLED"), std::string::npos) << narrow.output;
  std::cout << wide.output;
  ASSERT_TRUE(client_->remove(resources::kMutatingWebhookConfigurations, "", wh_name));
}

}  // namespace
