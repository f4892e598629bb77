// The data volume checks before any backup Job, end to end: the BackupPolicy
// controller in-process against kube-local, as the chart's service account
// under the chart's RBAC. A missing or ReadWriteOncePod claim stops backups
// with a reason naming the field; creating the claim clears it without
// touching the policy (the background check wakes it); a workloadRef to a
// StatefulSet whose pod kube-local runs gives the Job the pod's claim,
// mount, uid/gid and node.
#include <gtest/gtest.h>

#include "chart_operator.h"
#include "common/clock.h"
#include "common/encoding.h"
#include "harness.h"
#include "in_process_operator.h"
#include "reconcile/backup_policy_controller.h"
#include "reconcile/conditions.h"

using namespace bo::kube;
using bo::reconcile::kBackupPolicies;
using nlohmann::json;
using testing_support::eventually;

namespace {

std::string rules_file() {
  const auto dir = testing_support::make_temp_dir("rules");
  // Backup Jobs stay running: the test reads their spec, not their result.
  const json rules = json::array({{{"selector", "backup.si.dev/action in (backup,full-backup)"},
                                   {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 3600}}}}});
  return testing_support::write_file(dir / "rules.json", rules.dump());
}

json claim(const std::string& name, const std::string& mode = "ReadWriteOnce") {
  return {{"metadata", {{"name", name}}},
          {"spec", {{"accessModes", {mode}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}};
}

class DataVolumeIT : public testing_support::InProcessOperatorIT<DataVolumeIT> {
 protected:
  static void SetUpTestSuite() { start_server({"--authorize", "--pod-rules", rules_file()}); }
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(set_up_namespace("dv"));
    ASSERT_NO_FATAL_FAILURE(create_storage_secret("CANARY-dv"));
    ASSERT_TRUE(client_->create(resources::kSecrets, ns_,
                                {{"metadata", {{"name", "walg-encryption"}}},
                                 {"stringData", {{"WALG_LIBSODIUM_KEY", "CANARY-dv"}}}}));
  }
  json policy(const json& database) {
    json db = {{"host", "db"}};
    db.merge_patch(database);
    return {{"apiVersion", "backup.si.dev/v1alpha1"},
            {"kind", "BackupPolicy"},
            {"metadata", {{"name", "db"}}},
            {"spec", {{"addons", {"supabase-walg"}},
                      {"database", db},
                      {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                   {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                      {"verification", {{"targetNamespace", ns_ + "-verify"}}}}}};
  }
  void start_controller(std::chrono::milliseconds first_status_hold = std::chrono::seconds(10)) {
    caches_ = std::make_unique<bo::reconcile::Caches>(*op_client_, "");
    bo::reconcile::BackupPolicyControllerOptions opts;
    opts.first_status_hold = first_status_hold;
    opts.watch_namespace = ns_;
    // Re-checked often here, so a claim created later is seen within the test's deadline.
    opts.data_volume_interval = std::chrono::milliseconds(100);
    opts.data_volume_checks_per_second = 100;
    controller_ = std::make_unique<bo::reconcile::BackupPolicyController>(*op_client_, *caches_, *clock_, *recorder_,
                                                                          metrics_, opts);
    caches_->start();
    controller_->start();
    ASSERT_TRUE(eventually([&] { return controller_->synced(); }));
  }
  bool condition_is(const std::string& type, const std::string& status, const std::string& reason) {
    const json c = condition(type);
    return c.value("status", "") == status && c.value("reason", "") == reason;
  }
  json backup_jobs() {
    auto l = client_->list(resources::kJobs, ns_, {"backup.si.dev/action in (backup,full-backup)", "", 0, "", ""});
    return l ? (*l)["items"] : json::array();
  }
  // The DataVolumeResolved reason of the first status written to policy "db"
  // after `rv`, read from a watch so that no write goes unseen.
  std::string first_status_reason(const std::string& rv) {
    std::string reason;
    auto r = client_->watch(kBackupPolicies, ns_, {"", "metadata.name=db", rv, 20, false}, [&](const WatchEvent& ev) {
      const json st = ev.object.value("status", json::object());
      if (st.empty()) return true;
      reason = "(no DataVolumeResolved condition)";
      for (const auto& c : st.value("conditions", json::array()))
        if (c.value("type", "") == "DataVolumeResolved") reason = c.value("reason", "");
      return false;
    });
    return r ? reason : "watch failed: " + r.error().str();
  }
  static const json* find_named(const json& list, const std::string& name) {
    for (const auto& x : list)
      if (x.value("name", "") == name) return &x;
    return nullptr;
  }

};

TEST_F(DataVolumeIT, TheCrdTakesExactlyOneOfDataVolumeAndWorkloadRef) {
  auto both = client_->create(kBackupPolicies, ns_,
                              policy({{"dataVolume", {{"claimName", "pgdata"}}}, {"runAsUser", 101}, {"runAsGroup", 102},
                                      {"workloadRef", {{"kind", "StatefulSet"}, {"name", "supabase-db"}}}}));
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().status, 422);
  EXPECT_NE(both.error().message.find("exactly one of spec.database.dataVolume and spec.database.workloadRef"),
            std::string::npos)
      << both.error().message;
  auto neither = client_->create(kBackupPolicies, ns_, policy({{"runAsUser", 101}, {"runAsGroup", 102}}));
  ASSERT_FALSE(neither);
  EXPECT_EQ(neither.error().status, 422);
  auto kind = client_->create(kBackupPolicies, ns_, policy({{"workloadRef", {{"kind", "DaemonSet"}, {"name", "db"}}}}));
  ASSERT_FALSE(kind);
  EXPECT_NE(kind.error().message.find("spec.database.workloadRef.kind"), std::string::npos) << kind.error().message;
}

TEST_F(DataVolumeIT, AMissingClaimStopsBackupsUntilItExists) {
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_,
                              policy({{"dataVolume", {{"claimName", "pgdata"}}}, {"runAsUser", 101}, {"runAsGroup", 102}})));
  start_controller();
  ASSERT_TRUE(eventually([&] { return condition_is("Ready", "False", "DataVolumeNotFound"); })) << condition("Ready");
  EXPECT_NE(condition("Ready").value("message", "").find("spec.database.dataVolume.claimName"), std::string::npos)
      << condition("Ready");
  EXPECT_TRUE(condition_is("DataVolumeResolved", "False", "DataVolumeNotFound"));
  // The reconcile that wrote the condition would have created the due Job before it.
  EXPECT_EQ(backup_jobs().size(), 0u);
  const auto generation = (*client_->get(kBackupPolicies, ns_, "db"))["metadata"]["generation"];

  // The claim appears; nobody touches the policy: the background re-check wakes it.
  ASSERT_TRUE(client_->create(resources::kPersistentVolumeClaims, ns_, claim("pgdata")));
  ASSERT_TRUE(eventually([&] { return condition_is("DataVolumeResolved", "True", "Resolved"); }))
      << condition("DataVolumeResolved");
  ASSERT_TRUE(eventually([&] { return backup_jobs().size() == 1; })) << backup_jobs().dump();
  EXPECT_EQ(condition("Ready").value("status", ""), "True") << condition("Ready");
  EXPECT_EQ((*client_->get(kBackupPolicies, ns_, "db"))["metadata"]["generation"], generation);
  const json job = backup_jobs()[0];
  const json* volume = find_named(job["spec"]["template"]["spec"]["volumes"], "pgdata");
  ASSERT_TRUE(volume) << job.dump();
  EXPECT_EQ((*volume)["persistentVolumeClaim"]["claimName"], "pgdata");
}

// A new policy's first status is its judged one: the data volume's first
// check answers within the hold and wakes the policy, so no "pending" status
// is written (and rewritten) before it. A check slower than the hold (here: no
// hold) gets the pending status written first.
TEST_F(DataVolumeIT, ANewPolicysFirstStatusWaitsForItsDataVolumeCheck) {
  ASSERT_TRUE(client_->create(resources::kPersistentVolumeClaims, ns_, claim("pgdata")));
  auto created = client_->create(kBackupPolicies, ns_,
                                 policy({{"dataVolume", {{"claimName", "pgdata"}}}, {"runAsUser", 101}, {"runAsGroup", 102}}));
  ASSERT_TRUE(created);
  start_controller();
  EXPECT_EQ(first_status_reason((*created)["metadata"]["resourceVersion"]), "Resolved");
}

TEST_F(DataVolumeIT, WithoutAHoldTheFirstStatusSaysTheCheckIsPending) {
  ASSERT_TRUE(client_->create(resources::kPersistentVolumeClaims, ns_, claim("pgdata")));
  auto created = client_->create(kBackupPolicies, ns_,
                                 policy({{"dataVolume", {{"claimName", "pgdata"}}}, {"runAsUser", 101}, {"runAsGroup", 102}}));
  ASSERT_TRUE(created);
  start_controller(std::chrono::milliseconds(0));
  EXPECT_EQ(first_status_reason((*created)["metadata"]["resourceVersion"]), "DataVolumePending");
  EXPECT_TRUE(eventually([&] { return condition_is("DataVolumeResolved", "True", "Resolved"); }))
      << condition("DataVolumeResolved");
}

TEST_F(DataVolumeIT, AReadWriteOncePodClaimIsRefusedBeforeAnyJob) {
  ASSERT_TRUE(client_->create(resources::kPersistentVolumeClaims, ns_, claim("pgdata", "ReadWriteOncePod")));
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_,
                              policy({{"dataVolume", {{"claimName", "pgdata"}}}, {"runAsUser", 101}, {"runAsGroup", 102}})));
  start_controller();
  ASSERT_TRUE(eventually([&] { return condition_is("Ready", "False", "DataVolumeReadWriteOncePod"); }))
      << condition("Ready");
  const std::string message = condition("Ready").value("message", "");
  EXPECT_NE(message.find("spec.database.dataVolume.claimName"), std::string::npos) << message;
  EXPECT_NE(message.find("read-only"), std::string::npos) << message;
  EXPECT_EQ(backup_jobs().size(), 0u);
}

TEST_F(DataVolumeIT, AWorkloadRefGivesTheJobThePodsClaimMountUserAndNode) {
  // Named before it exists: WorkloadNotFound, and no Job.
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_,
                              policy({{"workloadRef", {{"kind", "StatefulSet"}, {"name", "supabase-db"}}}})));
  start_controller();
  ASSERT_TRUE(eventually([&] { return condition_is("Ready", "False", "WorkloadNotFound"); })) << condition("Ready");
  EXPECT_NE(condition("Ready").value("message", "").find("spec.database.workloadRef"), std::string::npos);
  EXPECT_EQ(backup_jobs().size(), 0u);

  // The database as a StatefulSet runs it: its data claim from a template, mounted with a subPath.
  const json sts = {
      {"apiVersion", "apps/v1"},
      {"kind", "StatefulSet"},
      {"metadata", {{"name", "supabase-db"}}},
      {"spec",
       {{"serviceName", "supabase-db"},
        {"replicas", 1},
        {"selector", {{"matchLabels", {{"app", "supabase-db"}}}}},
        {"template",
         {{"metadata", {{"labels", {{"app", "supabase-db"}}}}},
          {"spec",
           {{"securityContext", {{"runAsUser", 105}, {"runAsGroup", 106}}},
            {"containers",
             {{{"name", "postgres"},
               {"image", "supabase/postgres:15.8.1.085"},
               {"volumeMounts", {{{"name", "data"}, {"mountPath", "/var/lib/postgresql/data"}, {"subPath", "pgdata"}}}}}}}}}}},
        {"volumeClaimTemplates",
         {{{"metadata", {{"name", "data"}}},
           {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}}}}}};
  const Resource statefulsets{"apps", "v1", "statefulsets", "StatefulSet", true};
  auto made = client_->create(statefulsets, ns_, sts);
  ASSERT_TRUE(made) << made.error().str();
  // kube-local's StatefulSet controller runs pod supabase-db-0 on its node, with claim data-supabase-db-0.
  ASSERT_TRUE(eventually([&] {
    auto p = client_->get(resources::kPods, ns_, "supabase-db-0");
    return p && (*p).value("status", json::object()).value("phase", "") == "Running";
  })) << server_->kubectl("get pods,pvc -n " + ns_ + " -o yaml").output;
  const json pod = *client_->get(resources::kPods, ns_, "supabase-db-0");
  const std::string node = pod["spec"].value("nodeName", "");
  ASSERT_FALSE(node.empty());
  ASSERT_TRUE(client_->get(resources::kPersistentVolumeClaims, ns_, "data-supabase-db-0"));

  ASSERT_TRUE(eventually([&] { return condition_is("DataVolumeResolved", "True", "Resolved"); }))
      << condition("DataVolumeResolved");
  ASSERT_TRUE(eventually([&] { return backup_jobs().size() == 1; })) << condition("Ready");
  const json job = backup_jobs()[0];
  const json& spec = job["spec"]["template"]["spec"];
  const json* volume = find_named(spec["volumes"], "pgdata");
  ASSERT_TRUE(volume) << job.dump();
  EXPECT_EQ((*volume)["persistentVolumeClaim"]["claimName"], "data-supabase-db-0");
  EXPECT_EQ((*volume)["persistentVolumeClaim"]["readOnly"], true);
  const json* mount = find_named(spec["containers"][0]["volumeMounts"], "pgdata");
  ASSERT_TRUE(mount) << job.dump();
  EXPECT_EQ((*mount)["mountPath"], "/var/lib/postgresql/data");
  EXPECT_EQ((*mount)["subPath"], "pgdata");
  EXPECT_EQ((*mount)["readOnly"], true);
  EXPECT_EQ(spec["securityContext"]["runAsUser"], 105);
  EXPECT_EQ(spec["securityContext"]["runAsGroup"], 106);
  const json& terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
  ASSERT_EQ(terms.size(), 1u) << spec.dump();
  EXPECT_EQ(terms[0]["matchFields"][0]["key"], "metadata.name");
  EXPECT_EQ(terms[0]["matchFields"][0]["values"], json({node}));
  // The Job's pod ran where the database's does.
  ASSERT_TRUE(eventually([&] {
    auto l = client_->list(resources::kPods, ns_, {"backup.si.dev/action in (backup,full-backup)", "", 0, "", ""});
    return l && !(*l)["items"].empty() && (*l)["items"][0].value("spec", json::object()).value("nodeName", "") == node;
  }));
  EXPECT_EQ(job.dump().find("CANARY"), std::string::npos);
}

}  // namespace
