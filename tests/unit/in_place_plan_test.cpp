// The in-place restore's steps (src/reconcile/in_place.h), driven through
// plan_restore as the controller would: freeze first, stop the workload,
// restore into its claim, start it, check it, lift the freeze; any failure
// keeps the freeze and says how to roll back; a restore Job that runs is
// never killed by a deletion.
#include <gtest/gtest.h>

#include <functional>

#include "common/timefmt.h"

#include "reconcile/conditions.h"
#include "reconcile/data_volume.h"
#include "reconcile/in_place.h"
#include "reconcile/restore_plan.h"
#include "reconcile/scratch.h"

namespace {

using namespace bo::reconcile;
using json = nlohmann::json;
using State = ObservedJob::State;

const std::string kSum = "sha256:" + std::string(64, 'a');

json policy() {
  json p = {{"apiVersion", "backup.si.dev/v1alpha1"},
            {"kind", "BackupPolicy"},
            {"metadata", {{"name", "db"}, {"namespace", "supabase"}, {"uid", "pu"}}},
            {"spec", {{"database", {{"workloadRef", {{"kind", "StatefulSet"}, {"name", "supabase-db"}}},
                                    {"host", "supabase-db.supabase.svc"},
                                    {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
                      {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                   {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}}}},
            {"status", {{"backups", {{{"id", "base_2"}, {"checksum", kSum}, {"type", "full"}, {"verified", true},
                                      {"uncompressedBytes", 1 << 20}, {"completionTime", "2026-11-24T02:00:00Z"}}}}}}};
  auto spec = bo::api::parse_backup_policy_spec(p["spec"]);
  EXPECT_TRUE(spec) << spec.error().message;
  ResolvedDataVolume v;
  v.claim_name = "data-supabase-db-0";
  v.mount_path = "/var/lib/postgresql/data";
  v.data_directory = "/var/lib/postgresql/data/pgdata";
  v.run_as_user = 999;
  v.run_as_group = 998;
  v.node_name = "node-a";
  v.image = "supabase/postgres:15.8.1";
  p["status"]["dataVolume"] = to_status(v, data_volume_source(*spec));
  return p;
}

json request(json spec = json::object()) {
  json s = {{"policyRef", {{"name", "db"}}}};
  s.merge_patch(spec);
  return {{"apiVersion", "backup.si.dev/v1alpha1"},
          {"kind", "RestoreRequest"},
          {"metadata", {{"name", "r1"}, {"namespace", "supabase"}, {"uid", "ru"}, {"generation", 1},
                        {"finalizers", {kRestoreFinalizer}},
                        {"annotations", {{kRequestedByAnnotation, json{{"username", "alice"}}.dump()}}}}},
          {"spec", s}};
}

RestoreInputs inputs(json rr) {
  RestoreInputs in;
  in.request = std::move(rr);
  in.policy = policy();
  in.now = *bo::parse_rfc3339("2026-11-24T10:00:00Z");
  in.operator_username = "system:serviceaccount:backup-operator-system:backup-operator";
  in.operator_namespace = "backup-operator-system";
  in.secrets = {{"walg-storage", {{"WALG_S3_PREFIX", "s3://b"}, {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY-77"}}}};
  in.access = {true, true, "alice", "supabase", ""};
  in.workload = RestoreInputs::Workload{true, 3, 3};
  return in;
}

RestorePlan step(RestoreInputs& in) {
  auto p = plan_restore(in);
  in.request["status"] = p.status;
  if (p.freeze == RestorePlan::Freeze::kApply) in.freeze_present = true;
  if (p.freeze == RestorePlan::Freeze::kLift) in.freeze_present = false;
  if (p.scale && in.workload) in.workload->replicas = p.scale->replicas;
  return p;
}

const json* cond(const RestorePlan& p, const char* type) { return find_condition(p.status["conditions"], type); }

ObservedRestoreJob job(const std::string& name, const char* role, State state, std::string message = "") {
  ObservedRestoreJob j;
  j.name = name;
  j.ns = "supabase";
  j.role = role;
  j.state = state;
  j.message = std::move(message);
  return j;
}

std::string restore_result(bool ok = true) {
  json r = {{"restored", "base_2"}, {"checksum", kSum}, {"recovered", ok}, {"recoverySeconds", 4.5},
            {"systemIdentifier", "7312"}, {"replayLsn", "0/5000100"}, {"aside", "pgdata.before-r1"}, {"discarded", false},
            {"checks", {{{"name", "recovered"}, {"passed", ok}, {"ms", 3}, {"output", "out of recovery"}},
                        {{"name", "recovery-target"}, {"passed", true}, {"ms", 1}, {"output", "0/5000100"}},
                        {{"name", "system-identifier"}, {"passed", true}, {"ms", 1}, {"output", "7312"}}}}};
  if (!ok) r["error"] = "RecoveryFailed: PostgreSQL exited (status 1) before recovery ended";
  return r.dump();
}

std::string check_result(bool users_pass) {
  return json{{"restored", "base_2"},
              {"checksum", kSum},
              {"recovered", true},
              {"checks", {{{"name", "recovered"}, {"passed", true}, {"ms", 2}, {"output", "f"}},
                          {{"name", "system-identifier"}, {"passed", true}, {"ms", 1}, {"output", "7312"}},
                          {{"name", "orders"}, {"passed", users_pass}, {"ms", 9}, {"output", users_pass ? "3" : "0"}},
                          {{"name", "writes-released"}, {"passed", users_pass}, {"ms", 4}, {"output", "off"}}}}}
      .dump();
}

const json users = {{{"name", "orders"}, {"sql", "select count(*) from orders"}, {"expect", "3"}}};

TEST(InPlacePlan, FreezesStopsRestoresStartsChecksAndOnlyThenLiftsTheFreeze) {
  auto in = inputs(request({{"validation", users}}));
  // Start: the freeze and what will be restored are recorded; nothing is stopped yet.
  auto p = step(in);
  ASSERT_EQ(p.status["phase"], "Restoring") << p.status.dump(2);
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kApply);
  EXPECT_FALSE(p.scale);
  EXPECT_TRUE(p.create.empty());
  const json ip = p.status["inPlace"];
  EXPECT_EQ(ip["step"], kStepStopping);
  EXPECT_EQ(ip["replicas"], 3);
  EXPECT_EQ(ip["claim"], "data-supabase-db-0");
  EXPECT_EQ(ip["dataPath"], "pgdata");
  EXPECT_EQ(ip["asidePath"], "pgdata.before-r1");
  EXPECT_EQ((*cond(p, "MutationsBlocked"))["status"], "True");
  // The freeze covers the scale subresource too (nobody starts the database meanwhile).
  const json res = p.freeze_policy["spec"]["matchConstraints"]["resourceRules"][0]["resources"];
  EXPECT_NE(std::find(res.begin(), res.end(), "statefulsets/scale"), res.end());

  // Freeze in place: scale to 0 through the scale subresource.
  p = step(in);
  ASSERT_TRUE(p.scale);
  EXPECT_EQ(*p.scale, (RestorePlan::Scale{"StatefulSet", "supabase", "supabase-db", 0}));
  EXPECT_TRUE(p.create.empty());
  // Scaled, but its pods have not gone yet: wait, create nothing.
  p = step(in);
  EXPECT_FALSE(p.scale);
  EXPECT_TRUE(p.create.empty());
  EXPECT_EQ((*cond(p, "Ready"))["reason"], "StoppingDatabase");
  ASSERT_TRUE(p.requeue_after);
  // Gone: the restore Job, in the database's image, on the database's claim and node.
  in.workload->pods = 0;
  p = step(in);
  ASSERT_EQ(p.create.size(), 1u);
  const json& rj = p.create[0];
  EXPECT_EQ(rj["metadata"]["name"], "r1-restore");
  EXPECT_EQ(rj["metadata"]["labels"]["backup.si.dev/action"], kLabelInPlaceRestore);
  const json pod = rj["spec"]["template"]["spec"];
  EXPECT_EQ(pod["containers"][0]["image"], "supabase/postgres:15.8.1");
  EXPECT_EQ(pod["containers"][0]["command"].back(), "restore-in-place");
  EXPECT_EQ(pod["securityContext"]["runAsUser"], 999);
  EXPECT_FALSE(pod["securityContext"].contains("fsGroup")) << "a kubelet would open up the 0700 data directory";
  EXPECT_EQ(pod["volumes"][2]["persistentVolumeClaim"]["claimName"], "data-supabase-db-0");
  EXPECT_EQ(pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
               ["matchFields"][0]["values"][0],
            "node-a");
  const std::string dumped = rj.dump();
  EXPECT_EQ(dumped.find("CANARY"), std::string::npos);
  EXPECT_NE(dumped.find("\"DATA_PATH\""), std::string::npos);
  EXPECT_NE(dumped.find("\"HOLD_WRITES\""), std::string::npos);
  EXPECT_EQ(p.status["inPlace"]["step"], kStepRestoring);

  // Still running after an operator restart: nothing new.
  in.jobs = {job("r1-restore", "in-place-restore", State::kActive)};
  p = step(in);
  EXPECT_TRUE(p.create.empty());
  EXPECT_FALSE(p.scale);

  // Restored: start it with the recorded replicas and check it; still frozen.
  in.jobs = {job("r1-restore", "in-place-restore", State::kSucceeded, restore_result())};
  p = step(in);
  ASSERT_EQ(p.status["phase"], "Validating") << p.status.dump(2);
  ASSERT_TRUE(p.scale);
  EXPECT_EQ(p.scale->replicas, 3);
  ASSERT_EQ(p.create.size(), 1u);
  const json& cj = p.create[0];
  EXPECT_EQ(cj["metadata"]["name"], "r1-check");
  const json cenv = cj["spec"]["template"]["spec"]["containers"][0]["env"];
  std::string sysid, checks;
  bool storage = false, release = false;
  for (const auto& e : cenv) {
    if (e["name"] == "EXPECT_SYSTEM_IDENTIFIER") sysid = e["value"];
    if (e["name"] == "RELEASE_WRITES") release = e["value"] == "true";
    if (e["name"] == "VERIFY_CHECKS") checks = e["value"];
    storage = storage || e["name"].get<std::string>().starts_with("WALG_");
  }
  EXPECT_EQ(sysid, "7312");
  EXPECT_NE(checks.find("select count(*) from orders"), std::string::npos);
  EXPECT_FALSE(storage) << "the check holds no storage Secret";
  EXPECT_TRUE(release) << "writes stay held until the checks pass";
  EXPECT_EQ(p.status["recovery"]["seconds"], 4.5);
  EXPECT_EQ(p.status["inPlace"]["aside"], "pgdata.before-r1");
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kNone);
  EXPECT_EQ((*cond(p, "MutationsBlocked"))["status"], "True");

  // Checks pass: Succeeded, and the freeze goes.
  in.jobs.push_back(job("r1-check", "check", State::kSucceeded, check_result(true)));
  p = step(in);
  ASSERT_EQ(p.status["phase"], "Succeeded") << p.status.dump(2);
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kLift);
  EXPECT_EQ((*cond(p, "MutationsBlocked"))["status"], "False");
  EXPECT_EQ((*cond(p, "Validated"))["status"], "True");
  EXPECT_EQ(p.status["validation"].size(), 7u);  // 3 on the recovered copy, 4 against production
  EXPECT_NE(p.status["message"].get<std::string>().find("pgdata.before-r1"), std::string::npos);
  ASSERT_TRUE(p.outcome);
  EXPECT_EQ(p.outcome->result, "success");
  EXPECT_DOUBLE_EQ(p.outcome->recovery_seconds, 4.5);
  // And then it rests.
  p = step(in);
  EXPECT_TRUE(p.create.empty());
  EXPECT_FALSE(p.scale);
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kNone);
}

TEST(InPlacePlan, AFailedRestoreKeepsTheFreezeAndTheDatabaseStoppedAndSaysHowToRollBack) {
  auto in = inputs(request());
  step(in);
  step(in);
  in.workload->pods = 0;
  step(in);
  in.jobs = {job("r1-restore", "in-place-restore", State::kFailed, restore_result(false))};
  auto p = step(in);
  ASSERT_EQ(p.status["phase"], "Failed");
  EXPECT_FALSE(p.scale) << "not started on a half-restored directory";
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kNone);
  EXPECT_TRUE(in.freeze_present);
  const std::string msg = p.status["message"];
  EXPECT_NE(msg.find("RecoveryFailed"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pgdata.before-r1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("scale it back to 3"), std::string::npos) << msg;
  EXPECT_EQ((*cond(p, "Validated"))["reason"], "RecoveryFailed");
  ASSERT_TRUE(p.outcome);
  EXPECT_EQ(p.outcome->result, "failure");
}

TEST(InPlacePlan, FailedChecksKeepTheFreezeUntilARerunPasses) {
  auto in = inputs(request({{"validation", users}}));
  step(in);
  step(in);
  in.workload->pods = 0;
  step(in);
  in.jobs = {job("r1-restore", "in-place-restore", State::kSucceeded, restore_result())};
  step(in);
  in.jobs.push_back(job("r1-check", "check", State::kFailed, check_result(false)));
  auto p = step(in);
  ASSERT_EQ(p.status["phase"], "Failed");
  EXPECT_EQ((*cond(p, "Validated"))["reason"], "ChecksFailed");
  EXPECT_EQ((*cond(p, "MutationsBlocked"))["status"], "True");
  EXPECT_NE(p.status["message"].get<std::string>().find("orders"), std::string::npos);
  // A rerun: a new check Job, never the old name.
  in.request["metadata"]["annotations"][kAnnotationRerun] = "1";
  p = step(in);
  ASSERT_EQ(p.status["phase"], "Validating");
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(p.create[0]["metadata"]["name"], "r1-check-2");
  in.jobs.push_back(job("r1-check-2", "check", State::kSucceeded, check_result(true)));
  p = step(in);
  EXPECT_EQ(p.status["phase"], "Succeeded");
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kLift);
}

TEST(InPlacePlan, WhatCannotBeRestoredInPlaceIsBlockedNamingTheField) {
  struct Case {
    std::function<void(RestoreInputs&)> change;
    const char* reason;
    const char* field;
  } cases[] = {
      {[](RestoreInputs& in) { in.policy["spec"]["database"] = {{"dataVolume", {{"claimName", "pg"}}}, {"host", "h"}}; },
       "WorkloadRefRequired", "spec.database.workloadRef"},
      {[](RestoreInputs& in) { in.policy["status"].erase("dataVolume"); }, "DataVolumeUnknown", "status.dataVolume"},
      {[](RestoreInputs& in) { in.workload = RestoreInputs::Workload{}; }, "WorkloadNotFound", "StatefulSet supabase-db"},
      {[](RestoreInputs& in) {
         in.policy["spec"]["verification"]["checkImages"] = {"busybox"};  // allowed, but not here
         in.request["spec"]["validation"] = {{{"name", "smoke"}, {"image", "busybox"}}};
       },
       "UnsupportedCheck", "spec.validation[0]"},
  };
  for (const auto& c : cases) {
    auto in = inputs(request());
    c.change(in);
    auto p = plan_restore(in);
    EXPECT_EQ(p.status["phase"], "Blocked") << c.reason;
    EXPECT_EQ((*cond(p, "Blocked"))["reason"], c.reason) << p.status.dump(2);
    EXPECT_NE(p.status["message"].get<std::string>().find(c.field), std::string::npos) << p.status["message"];
    EXPECT_TRUE(p.create.empty());
    EXPECT_FALSE(p.scale);
    EXPECT_EQ(p.freeze, RestorePlan::Freeze::kNone);
  }
}

TEST(InPlacePlan, AStoppedWorkloadIsStartedWithOneReplicaAndTheDataRootNeedsNoSubdirectory) {
  auto in = inputs(request({{"discardCurrentData", true}}));
  in.workload = RestoreInputs::Workload{true, 0, 0};
  auto spec = bo::api::parse_backup_policy_spec(in.policy["spec"]);
  ResolvedDataVolume v;
  v.claim_name = "pg";
  v.mount_path = "/var/lib/postgresql/data";
  v.run_as_user = 999;
  v.run_as_group = 998;
  v.image = "supabase/postgres:15.8.1";
  in.policy["status"]["dataVolume"] = to_status(v, data_volume_source(*spec));
  auto p = step(in);
  ASSERT_EQ(p.status["phase"], "Restoring") << p.status.dump(2);
  EXPECT_EQ(p.status["inPlace"]["replicas"], 1);
  EXPECT_EQ(p.status["inPlace"]["dataPath"], "");
  p = step(in);  // already at 0, no pods: straight to the restore Job
  ASSERT_EQ(p.create.size(), 1u);
  bool discard = false;
  for (const auto& e : p.create[0]["spec"]["template"]["spec"]["containers"][0]["env"])
    if (e["name"] == "DISCARD_CURRENT_DATA") discard = e["value"] == "true";
  EXPECT_TRUE(discard);
}

TEST(InPlacePlan, DeletionWaitsForARunningRestoreJobAndNeverStartsTheDatabase) {
  auto in = inputs(request());
  step(in);
  step(in);
  in.workload->pods = 0;
  step(in);
  in.jobs = {job("r1-restore", "in-place-restore", State::kActive)};
  in.request["metadata"]["deletionTimestamp"] = "2026-11-24T10:01:00Z";
  auto p = plan_restore(in);
  EXPECT_TRUE(p.remove.empty()) << "a half-written claim is worse than a late deletion";
  EXPECT_FALSE(p.remove_finalizer);
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kNone);
  EXPECT_FALSE(p.scale);
  in.jobs[0].state = State::kSucceeded;
  p = plan_restore(in);
  ASSERT_EQ(p.remove.size(), 1u);
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kLift);
  EXPECT_FALSE(p.scale);
}

}  // namespace
