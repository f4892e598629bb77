// Reconciling and Stalled beside Ready (issue 20 item 3): what the planners
// write, judged by kstatus' documented rules (support/kstatus.h) and by the
// shipped Argo CD health checks run with Debian's Lua (support/argocd_health.h).
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <functional>

#include "common/timefmt.h"
#include "plan_fixtures.h"
#include "reconcile/backup_policy_plan.h"
#include "reconcile/conditions.h"
#include "reconcile/restore_plan.h"
#include "support/argocd_health.h"
#include "support/kstatus.h"

using namespace bo::reconcile;
using nlohmann::json;
using testing_support::kstatus_compute;

namespace {

bo::SysTime at(const char* s) { return *bo::parse_rfc3339(s); }

const json* cond(const json& status, const char* type) { return find_condition(status.at("conditions"), type); }
// One field of a condition ("" when the condition is missing).
std::string field(const json& status, const char* type, const char* key) {
  const json* c = cond(status, type);
  return c ? c->value(key, "") : "";
}

// --- set_progress ---

TEST(SetProgress, WritesBothConditionsInEveryStateWithTheGeneration) {
  using State = Progress::State;
  struct Case {
    Progress p;
    const char* reconciling;
    const char* stalled;
    const char* kstatus;
  } cases[] = {
      {{State::kSteady, "", ""}, "False", "False", "Current"},
      {{State::kReconciling, "CatalogSyncing", "reading"}, "True", "False", "InProgress"},
      {{State::kStalled, "SecretNotFound", "spec.storage.secretRef.name: missing"}, "False", "True", "Failed"},
  };
  for (const auto& c : cases) {
    json conditions = json::array();
    set_progress(conditions, c.p, 7, at("2026-11-24T10:00:00Z"));
    ASSERT_EQ(conditions.size(), 2u);
    const json* r = find_condition(conditions, "Reconciling");
    const json* s = find_condition(conditions, "Stalled");
    ASSERT_TRUE(r && s);
    EXPECT_EQ((*r)["status"], c.reconciling);
    EXPECT_EQ((*s)["status"], c.stalled);
    EXPECT_EQ((*r)["observedGeneration"], 7);
    EXPECT_EQ((*s)["observedGeneration"], 7);
    EXPECT_FALSE((*r)["reason"].get<std::string>().empty());
    EXPECT_FALSE((*s)["reason"].get<std::string>().empty());
    const json* on = c.p.state == State::kReconciling ? r : c.p.state == State::kStalled ? s : nullptr;
    if (on) {
      EXPECT_EQ((*on)["reason"], c.p.reason);
      EXPECT_EQ((*on)["message"], c.p.message);
    }
    const json obj = {{"kind", "BackupPolicy"}, {"metadata", {{"generation", 7}}},
                      {"status", {{"observedGeneration", 7}, {"conditions", conditions}}}};
    EXPECT_EQ(kstatus_compute(obj).status, c.kstatus);
  }
}

TEST(SetProgress, LastTransitionTimeMovesOnlyWhenTheStatusChanges) {
  using State = Progress::State;
  json conditions = json::array();
  set_progress(conditions, {State::kReconciling, "FirstBackupRunning", "a"}, 1, at("2026-11-24T10:00:00Z"));
  // Still reconciling, another message: the transition stays where it was.
  set_progress(conditions, {State::kReconciling, "CatalogSyncing", "b"}, 1, at("2026-11-24T10:05:00Z"));
  EXPECT_EQ((*find_condition(conditions, "Reconciling"))["lastTransitionTime"], "2026-11-24T10:00:00Z");
  EXPECT_EQ((*find_condition(conditions, "Reconciling"))["reason"], "CatalogSyncing");
  set_progress(conditions, {}, 1, at("2026-11-24T10:10:00Z"));
  EXPECT_EQ((*find_condition(conditions, "Reconciling"))["lastTransitionTime"], "2026-11-24T10:10:00Z");
  // Stalled was False all along.
  EXPECT_EQ((*find_condition(conditions, "Stalled"))["lastTransitionTime"], "2026-11-24T10:00:00Z");
  // The steady state again, later: nothing in the list changes.
  const json before = conditions;
  set_progress(conditions, {}, 1, at("2026-11-24T11:10:00Z"));
  EXPECT_EQ(conditions, before);
}

// --- the BackupPolicy planner ---

json policy(json spec_patch = json::object()) {
  json spec = {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102},
                             {"host", "db"}, {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
               {"storage", {{"secretRef", {{"name", "walg-storage"}}}, {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
               {"verification", {{"targetNamespace", "verify"}}}};
  spec.merge_patch(spec_patch);
  json p = plan_fixtures::policy_object(std::move(spec));
  p["metadata"]["generation"] = 3;
  return p;
}

bo::api::SecretData secrets() {
  return {{"walg-storage", plan_fixtures::storage_secret()},
          {"walg-encryption", {{"WALG_LIBSODIUM_KEY", "CANARY"}}},
          {"supabase-db", {{"username", "u"}, {"password", "CANARY"}}}};
}

// A policy with one recorded backup and its slots handled up to 10:00 (nothing due before 11:00).
json settled_policy(json spec_patch = json::object()) {
  json p = policy(std::move(spec_patch));
  p["status"]["schedules"] = {{"backup", {{"lastScheduleTime", "2026-11-24T10:00:00Z"}}},
                              {"full-backup", {{"lastScheduleTime", "2026-11-24T10:00:00Z"}}},
                              {"verify", {{"lastScheduleTime", "2026-11-24T10:00:00Z"}}},
                              {"catalog", {{"lastScheduleTime", "2026-11-24T09:30:00Z"}}}};
  p["status"]["lastSuccessfulBackup"] = {{"id", "base_1"}, {"checksum", "sha256:" + std::string(64, 'a')},
                                         {"type", "full"}, {"completionTime", "2026-11-24T10:03:00Z"}};
  return p;
}

ObservedJob active(const char* name, const char* action, const char* slot) {
  ObservedJob j;
  j.name = name;
  j.action = action;
  j.slot = at(slot);
  return j;
}

json with_status(json obj, const json& status) {
  obj["status"] = status;
  return obj;
}

TEST(PolicyKstatus, EachSituationGetsTheStatusKstatusAndArgoCdShouldSee) {
  struct Case {
    const char* name;
    std::function<PlanInputs()> in;
    const char* kstatus;
    const char* reason;  // of the True one of Reconciling/Stalled ("" when both are False)
    const char* argocd;
  } cases[] = {
      {"armed, nothing running", [] { return plan_fixtures::plan_inputs(settled_policy(), secrets(), "2026-11-24T10:20:00Z", {}); },
       "Current", "", "Healthy"},
      {"suspended", [] { return plan_fixtures::plan_inputs(settled_policy({{"suspend", true}}), secrets(), "2026-11-24T10:20:00Z", {}); },
       "Current", "", "Suspended"},
      {"invalid schedule",
       [] { return plan_fixtures::plan_inputs(policy({{"schedule", {{"backup", "61 * * * *"}}}}), secrets(), "2026-11-24T10:20:00Z", {}); },
       "Failed", "InvalidSchedule", "Degraded"},
      {"invalid retention",
       [] { return plan_fixtures::plan_inputs(policy({{"retention", {{"daily", 0}}}}), secrets(), "2026-11-24T10:20:00Z", {}); },
       "Failed", "InvalidRetention", "Degraded"},
      {"missing Secret",
       [] {
         auto s = secrets();
         s.erase("walg-encryption");
         return plan_fixtures::plan_inputs(settled_policy(), s, "2026-11-24T10:20:00Z", {});
       },
       "Failed", "SecretNotFound", "Degraded"},
      {"claim missing",
       [] {
         auto in = plan_fixtures::plan_inputs(settled_policy(), secrets(), "2026-11-24T10:20:00Z", {});
         in.data_volume = check_failed("DataVolumeNotFound", "spec.database.dataVolume.claimName", "claim not found");
         return in;
       },
       "Failed", "DataVolumeNotFound", "Degraded"},
      {"data volume check refused by the API server (retried)",
       [] {
         auto in = plan_fixtures::plan_inputs(settled_policy(), secrets(), "2026-11-24T10:20:00Z", {});
         in.data_volume = check_failed("DataVolumeCheckFailed", "spec.database.dataVolume.claimName", "HTTP 503");
         return in;
       },
       "InProgress", "DataVolumeCheckFailed", "Progressing"},
      {"data volume check pending",
       [] {
         auto in = plan_fixtures::plan_inputs(policy(), secrets(), "2026-11-24T10:20:00Z", {});
         in.data_volume.reset();
         return in;
       },
       "InProgress", "DataVolumePending", "Progressing"},
      {"catalog not yet read back from storage",
       [] {
         auto in = plan_fixtures::plan_inputs(policy(), secrets(), "2026-11-24T10:20:00Z", {}, /*catalog_synced=*/false);
         in.sync_catalog = true;
         return in;
       },
       "InProgress", "CatalogSyncing", "Progressing"},
      {"first backup Job created",
       [] { return plan_fixtures::plan_inputs(policy(), secrets(), "2026-11-24T10:00:10Z", {}); },
       "InProgress", "FirstBackupRunning", "Progressing"},
      {"a later backup running",
       [] {
         json p = settled_policy();
         p["status"]["schedules"]["backup"]["lastScheduleTime"] = "2026-11-24T11:00:00Z";
         return plan_fixtures::plan_inputs(p, secrets(), "2026-11-24T11:00:20Z",
                                           {active("db-delta-202611241100", "backup", "2026-11-24T11:00:00Z")});
       },
       "Current", "", "Healthy"},
  };
  const auto dir = std::filesystem::temp_directory_path() / ("kstatus-unit-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  int n = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const PlanInputs in = c.in();
    const auto plan = plan_backup_policy(in);
    const json obj = with_status(in.policy, plan.status);
    EXPECT_EQ(plan.status["observedGeneration"], 3);
    for (const auto& k : plan.status["conditions"]) EXPECT_EQ(k["observedGeneration"], 3) << k;
    const json* r = cond(plan.status, "Reconciling");
    const json* s = cond(plan.status, "Stalled");
    ASSERT_TRUE(r && s) << plan.status.dump(2);
    EXPECT_EQ(kstatus_compute(obj).status, c.kstatus) << plan.status.dump(2);
    const json* on = (*r)["status"] == "True" ? r : (*s)["status"] == "True" ? s : nullptr;
    EXPECT_EQ(on ? (*on)["reason"].get<std::string>() : "", c.reason);
    // Stalled says what Ready says.
    if (on == s) {
      EXPECT_EQ((*cond(plan.status, "Ready"))["status"], "False");
      EXPECT_EQ((*cond(plan.status, "Ready"))["reason"], (*s)["reason"]);
      EXPECT_EQ((*cond(plan.status, "Ready"))["message"], (*s)["message"]);
    }
    const auto h = testing_support::argocd_health(LUA_BIN, SOURCE_DIR, obj, dir, "policy-" + std::to_string(n++));
    ASSERT_EQ(h.exit_code, 0) << h.output;
    EXPECT_EQ(h.status, c.argocd) << h.message;
  }
  std::filesystem::remove_all(dir);
}

TEST(PolicyKstatus, TheFirstBackupIsInProgressUntilItsJobReportsThenCurrentWithOneTransition) {
  auto in = plan_fixtures::plan_inputs(policy(), secrets(), "2026-11-24T10:00:10Z", {});
  auto p = plan_backup_policy(in);
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(field(p.status, "Reconciling", "status"), "True");
  EXPECT_EQ(field(p.status, "Reconciling", "lastTransitionTime"), "2026-11-24T10:00:10Z");
  in.policy["status"] = p.status;
  in.jobs = {active("db-delta-202611241000", "backup", "2026-11-24T10:00:00Z")};
  in.now = at("2026-11-24T10:01:00Z");
  p = plan_backup_policy(in);
  EXPECT_EQ(field(p.status, "Reconciling", "lastTransitionTime"), "2026-11-24T10:00:10Z");
  // The Job reports (a failure counts: the operator has acted; BackupHealthy says how it went).
  in.policy["status"] = p.status;
  in.jobs[0].state = ObservedJob::State::kFailed;
  in.jobs[0].failure = "BackoffLimitExceeded";
  in.jobs[0].finished = at("2026-11-24T10:02:00Z");
  in.now = at("2026-11-24T10:02:05Z");
  p = plan_backup_policy(in);
  EXPECT_EQ(field(p.status, "Reconciling", "status"), "False");
  EXPECT_EQ(field(p.status, "Reconciling", "lastTransitionTime"), "2026-11-24T10:02:05Z");
  EXPECT_EQ(field(p.status, "Stalled", "lastTransitionTime"), "2026-11-24T10:00:10Z");
  EXPECT_EQ(kstatus_compute(with_status(in.policy, p.status)).status, "Current");
  EXPECT_EQ(field(p.status, "BackupHealthy", "status"), "False");
}

TEST(PolicyKstatus, AnIdlePolicysStatusIsTheSameAtEveryLookSoItIsNeverWritten) {
  auto in = plan_fixtures::plan_inputs(settled_policy(), secrets(), "2026-11-24T10:05:00Z", {});
  const auto first = plan_backup_policy(in);
  in.policy["status"] = first.status;
  // Looks through the idle hour (the next slot is 11:00).
  for (const char* now : {"2026-11-24T10:06:00Z", "2026-11-24T10:30:00Z", "2026-11-24T10:59:59Z"}) {
    in.now = at(now);
    EXPECT_EQ(plan_backup_policy(in).status, first.status) << now;
  }
}

// --- the RestoreRequest planner ---

const std::string kSum = "sha256:" + std::string(64, 'c');

json restore_policy() {
  return {{"apiVersion", "backup.si.dev/v1alpha1"},
          {"kind", "BackupPolicy"},
          {"metadata", {{"name", "db"}, {"namespace", "supabase"}, {"uid", "pu"}}},
          {"spec", {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "db"}}},
                    {"storage", {{"secretRef", {{"name", "walg-storage"}}}, {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                    {"verification", {{"targetNamespace", "verify"}, {"allowedTargetNamespaces", {"drill"}}}}}},
          {"status", {{"backups", {{{"id", "base_2"}, {"checksum", kSum}, {"type", "full"}, {"verified", true},
                                    {"completionTime", "2026-11-24T02:00:00Z"}}}}}}};
}

RestoreInputs restore_inputs(bool stamped = true) {
  RestoreInputs in;
  in.request = {{"apiVersion", "backup.si.dev/v1alpha1"},
                {"kind", "RestoreRequest"},
                {"metadata", {{"name", "r1"}, {"namespace", "supabase"}, {"uid", "ru"}, {"generation", 1},
                              {"finalizers", {kRestoreFinalizer}}}},
                {"spec", {{"policyRef", {{"name", "db"}}}, {"targetNamespace", "drill"}}}};
  if (stamped)
    in.request["metadata"]["annotations"][kRequestedByAnnotation] = json{{"username", "alice"}, {"uid", "a-1"}}.dump();
  in.policy = restore_policy();
  in.now = at("2026-11-24T10:00:00Z");
  in.operator_username = "system:serviceaccount:backup-operator-system:backup-operator";
  in.secrets = {{"walg-storage", {{"WALG_S3_PREFIX", "s3://b"}}}};
  in.operator_namespace = "backup-operator-system";
  in.access = {true, true, "alice", "drill", ""};
  return in;
}

ObservedRestoreJob restore_job(const std::string& name, const char* role, ObservedJob::State state, std::string message) {
  ObservedRestoreJob j;
  j.name = name;
  j.ns = role == std::string("restore") ? "supabase" : "drill";
  j.role = role;
  j.state = state;
  j.message = std::move(message);
  return j;
}

TEST(RestoreKstatus, EveryPhaseGetsTheStatusKstatusAndArgoCdShouldSee) {
  const auto dir = std::filesystem::temp_directory_path() / ("kstatus-unit-rr-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  int n = 0;
  auto expect = [&](const RestoreInputs& in, const RestorePlan& p, const char* phase, const char* kstatus,
                    const char* reason, const char* argocd) {
    SCOPED_TRACE(phase);
    EXPECT_EQ(p.status["phase"], phase);
    EXPECT_EQ(p.status["observedGeneration"], 1);
    const json obj = with_status(in.request, p.status);
    EXPECT_EQ(kstatus_compute(obj).status, kstatus) << p.status.dump(2);
    const json* r = cond(p.status, "Reconciling");
    const json* s = cond(p.status, "Stalled");
    ASSERT_TRUE(r && s);
    const json* on = (*r)["status"] == "True" ? r : (*s)["status"] == "True" ? s : nullptr;
    EXPECT_EQ(on ? (*on)["reason"].get<std::string>() : "", reason);
    if (on == s) {
      EXPECT_EQ((*cond(p.status, "Ready"))["reason"], (*s)["reason"]);
    }
    const auto h = testing_support::argocd_health(LUA_BIN, SOURCE_DIR, obj, dir, "restore-" + std::to_string(n++));
    ASSERT_EQ(h.exit_code, 0) << h.output;
    EXPECT_EQ(h.status, argocd) << h.message;
  };
  {
    auto in = restore_inputs(/*stamped=*/false);
    expect(in, plan_restore(in), "Blocked", "Failed", "IdentityMissing", "Degraded");
  }
  {
    auto in = restore_inputs();
    in.waiting_for = "supabase/r0";
    expect(in, plan_restore(in), "Pending", "InProgress", "WaitingForTarget", "Progressing");
  }
  auto in = restore_inputs();
  auto p = plan_restore(in);
  expect(in, p, "Restoring", "InProgress", "Restoring", "Progressing");
  in.request["status"] = p.status;
  in.jobs = {restore_job("r1-restore", "restore", ObservedJob::State::kSucceeded,
                         json{{"restored", "base_2"}, {"checksum", kSum}}.dump())};
  p = plan_restore(in);
  expect(in, p, "Validating", "InProgress", "Validating", "Progressing");
  in.request["status"] = p.status;
  // A failed check: Failed, the target frozen until a human reruns it.
  auto failed_in = in;
  failed_in.jobs.push_back(restore_job("r1-v1-database-answers", "validate", ObservedJob::State::kFailed, "no response"));
  const auto failed = plan_restore(failed_in);
  expect(failed_in, failed, "Failed", "Failed", (*cond(failed.status, "Ready"))["reason"].get<std::string>().c_str(), "Degraded");
  in.jobs.push_back(restore_job("r1-v1-database-answers", "validate", ObservedJob::State::kSucceeded, "accepting connections"));
  p = plan_restore(in);
  expect(in, p, "Succeeded", "Current", "", "Healthy");
  std::filesystem::remove_all(dir);
}

// --- the Argo CD checks on what no planner writes ---

TEST(ArgoCdHealth, AnObjectWithoutStatusIsWaitingForTheControllerAndADeletedOneIsPendingDeletion) {
  const auto dir = std::filesystem::temp_directory_path() / ("kstatus-unit-argo-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  for (const char* kind : {"BackupPolicy", "RestoreRequest"}) {
    SCOPED_TRACE(kind);
    json obj = {{"apiVersion", "backup.si.dev/v1alpha1"}, {"kind", kind},
                {"metadata", {{"name", "x"}, {"namespace", "n"}, {"generation", 1}}}, {"spec", json::object()}};
    auto h = testing_support::argocd_health(LUA_BIN, SOURCE_DIR, obj, dir, std::string(kind) + "-new");
    ASSERT_EQ(h.exit_code, 0) << h.output;
    EXPECT_EQ(h.status, "Progressing");
    EXPECT_EQ(h.message, "Waiting for controller");
    // kstatus calls the same object Current (no observedGeneration to compare, no
    // abnormal condition): the caveat its README names.
    EXPECT_EQ(kstatus_compute(obj).status, "Current");

    obj["metadata"]["deletionTimestamp"] = "2026-11-24T10:00:00Z";
    obj["metadata"]["finalizers"] = {"backup.si.dev/restore-cleanup"};
    h = testing_support::argocd_health(LUA_BIN, SOURCE_DIR, obj, dir, std::string(kind) + "-deleted");
    EXPECT_EQ(h.status, "Progressing");
    EXPECT_EQ(h.message, "Pending deletion; blocked by finalizers: backup.si.dev/restore-cleanup");
    EXPECT_EQ(kstatus_compute(obj).status, "Terminating");
  }
  std::filesystem::remove_all(dir);
}

TEST(ArgoCdHealth, TheLuaLiteralKeepsQuotesBackslashesControlCharactersAndUtf8) {
  const json obj = {{"kind", "BackupPolicy"},
                    {"metadata", {{"generation", 2}}},
                    {"status", {{"observedGeneration", 2},
                                {"conditions", {{{"type", "Stalled"}, {"status", "True"}, {"reason", "InvalidSpec"},
                                                 {"message", "a \"b\" \\c\td\x01" "9 — é"}}}}}}};
  const auto dir = std::filesystem::temp_directory_path() / ("kstatus-unit-lit-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto h = testing_support::argocd_health(LUA_BIN, SOURCE_DIR, obj, dir, "literal");
  ASSERT_EQ(h.exit_code, 0) << h.output;
  EXPECT_EQ(h.status, "Degraded");
  EXPECT_EQ(h.message, "InvalidSpec: a \"b\" \\c\td\x01" "9 — é");
  std::filesystem::remove_all(dir);
}

// --- the oracle itself, on kstatus' own rules ---

TEST(KstatusOracle, FollowsTheGenericRulesInTheirOrder) {
  auto obj = [](json meta, json status) { return json{{"kind", "X"}, {"metadata", meta}, {"status", status}}; };
  const json rec = {{"type", "Reconciling"}, {"status", "True"}};
  const json stall = {{"type", "Stalled"}, {"status", "True"}};
  EXPECT_EQ(kstatus_compute(obj({{"generation", 1}, {"deletionTimestamp", "t"}}, {{"conditions", {stall}}})).status, "Terminating");
  EXPECT_EQ(kstatus_compute(obj({{"generation", 2}}, {{"observedGeneration", 1}, {"conditions", {stall}}})).status, "InProgress");
  EXPECT_EQ(kstatus_compute(obj({{"generation", 2}}, {{"conditions", json::array()}})).status, "Current");
  EXPECT_EQ(kstatus_compute(obj({{"generation", 1}}, {{"observedGeneration", 1}, {"conditions", {rec, stall}}})).status, "InProgress");
  EXPECT_EQ(kstatus_compute(obj({{"generation", 1}}, {{"observedGeneration", 1}, {"conditions", {stall, rec}}})).status, "Failed");
  // Ready alone decides nothing for kstatus' generic rules.
  EXPECT_EQ(kstatus_compute(obj({{"generation", 1}}, {{"observedGeneration", 1},
                                                     {"conditions", {{{"type", "Ready"}, {"status", "False"}}}}})).status,
            "Current");
}

}  // namespace
