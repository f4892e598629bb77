#include <gtest/gtest.h>

#include <date/tz.h>

#include "common/timefmt.h"
#include "reconcile/backup_policy_plan.h"
#include "reconcile/conditions.h"
#include "plan_fixtures.h"

using namespace bo::reconcile;
using nlohmann::json;
using State = ObservedJob::State;

namespace {

bo::SysTime at(const char* s) { return *bo::parse_rfc3339(s); }

json policy(json spec_patch = json::object()) {
  json spec = {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "db"}, {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
               {"storage", {{"secretRef", {{"name", "walg-storage"}}}, {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
               {"verification", {{"targetNamespace", "verify"}}},
               {"offsite", {{"secretRef", {{"name", "walg-storage"}}}}}};
  spec.merge_patch(spec_patch);
  return plan_fixtures::policy_object(std::move(spec));
}

bo::api::SecretData secrets() {
  return {{"walg-storage", plan_fixtures::storage_secret()},
          {"walg-encryption", {{"WALG_LIBSODIUM_KEY", "CANARY"}}},
          {"supabase-db", {{"username", "u"}, {"password", "CANARY"}}}};
}

ObservedJob active(const char* name, const char* action, bo::SysTime slot) {
  ObservedJob j;
  j.name = name;
  j.action = action;
  j.slot = slot;
  return j;
}

PlanInputs inputs(json p, const char* now, std::vector<ObservedJob> jobs = {}) {
  return plan_fixtures::plan_inputs(std::move(p), secrets(), now, std::move(jobs));
}

const json* cond(const PolicyPlan& p, const std::string& type) { return find_condition(p.status["conditions"], type); }

std::string result_json(const char* id, const char* type = "full") {
  return json{{"backupId", id}, {"checksum", "sha256:" + std::string(64, 'a')}, {"type", type},
              {"base", std::string(type) == "delta" ? "base_1" : ""}, {"startTime", "2026-11-24T10:00:01Z"},
              {"finishTime", "2026-11-24T10:03:00Z"}, {"sizeBytes", 1024}, {"walArchived", true}}
      .dump();
}

TEST(PlanBackupPolicy, CreatesOneJobForTheDueSlotAndIsIdempotent) {
  auto p = plan_backup_policy(inputs(policy(), "2026-11-24T10:00:10Z"));
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(p.create[0]["metadata"]["name"], "db-delta-202611241000");
  EXPECT_EQ((*cond(p, "Ready"))["status"], "True");
  EXPECT_EQ(p.status["nextScheduleTime"], "2026-11-24T11:00:00Z");
  EXPECT_EQ(p.status["schedules"]["backup"]["lastScheduleTime"], "2026-11-24T10:00:00Z");
  // A second pass (status written, Job observed) creates nothing and changes nothing.
  json stored = policy();
  stored["status"] = p.status;
  auto again = plan_backup_policy(inputs(stored, "2026-11-24T10:00:20Z",
                                         {active("db-delta-202611241000", "backup", at("2026-11-24T10:00:00Z"))}));
  EXPECT_TRUE(again.create.empty());
  again.status["activeJobs"] = p.status["activeJobs"];
  EXPECT_EQ(again.status, p.status);
  // A crash before the status write: the same slot, the same name, no second Job.
  auto replay = plan_backup_policy(inputs(policy(), "2026-11-24T10:00:30Z",
                                          {active("db-delta-202611241000", "backup", at("2026-11-24T10:00:00Z"))}));
  EXPECT_TRUE(replay.create.empty());
}

TEST(PlanBackupPolicy, FullBackupSlotReplacesTheDelta) {
  auto p = plan_backup_policy(inputs(policy(), "2026-11-25T02:00:05Z"));
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(p.create[0]["metadata"]["labels"]["backup.si.dev/action"], "full-backup");
}

TEST(PlanBackupPolicy, ForbidSkipsWhileABackupRuns) {
  json stored = policy();
  stored["status"]["schedules"]["backup"]["lastScheduleTime"] = "2026-11-24T10:00:00Z";
  stored["status"]["schedules"]["full-backup"]["lastScheduleTime"] = "2026-11-24T10:00:00Z";
  auto p = plan_backup_policy(inputs(stored, "2026-11-24T11:00:05Z",
                                     {active("db-delta-202611241000", "backup", at("2026-11-24T10:00:00Z"))}));
  EXPECT_TRUE(p.create.empty());
  ASSERT_FALSE(p.events.empty());
  EXPECT_EQ(p.events.back().reason, "SkippedConcurrent");
}

TEST(PlanBackupPolicy, DowntimeRunsTheLatestSlotAndCountsTheRestOnce) {
  json stored = policy();
  stored["status"]["schedules"]["backup"]["lastScheduleTime"] = "2026-11-24T05:00:00Z";
  stored["status"]["schedules"]["full-backup"]["lastScheduleTime"] = "2026-11-24T05:00:00Z";
  auto p = plan_backup_policy(inputs(stored, "2026-11-24T10:05:00Z"));
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(p.create[0]["metadata"]["name"], "db-delta-202611241000");
  EXPECT_EQ(p.status["missedSchedules"], 4);
  EXPECT_EQ(p.new_missed, 4);
  stored["status"] = p.status;
  auto again = plan_backup_policy(inputs(stored, "2026-11-24T10:06:00Z",
                                         {active("db-delta-202611241000", "backup", at("2026-11-24T10:00:00Z"))}));
  EXPECT_EQ(again.status["missedSchedules"], 4);
  EXPECT_EQ(again.new_missed, 0);
}

TEST(PlanBackupPolicy, SuspendStartsNothingAndMissesNothing) {
  auto p = plan_backup_policy(inputs(policy({{"suspend", true}}), "2026-11-24T10:00:10Z"));
  EXPECT_TRUE(p.create.empty());
  EXPECT_EQ(p.status["missedSchedules"], 0);
  EXPECT_EQ((*cond(p, "Ready"))["reason"], "Suspended");
}

TEST(PlanBackupPolicy, InvalidSpecStopsRunsAndNamesTheField) {
  auto p = plan_backup_policy(inputs(policy({{"schedule", {{"backup", "61 * * * *"}}}}), "2026-11-24T10:00:10Z"));
  EXPECT_TRUE(p.create.empty());
  EXPECT_EQ((*cond(p, "Ready"))["status"], "False");
  EXPECT_EQ((*cond(p, "Ready"))["reason"], "InvalidSchedule");
  EXPECT_NE((*cond(p, "Ready"))["message"].get<std::string>().find("spec.schedule.backup"), std::string::npos);
}

TEST(PlanBackupPolicy, MissingSecretStopsRunsUntilItAppears) {
  auto in = inputs(policy(), "2026-11-24T10:00:10Z");
  in.secrets.erase("walg-encryption");
  auto p = plan_backup_policy(in);
  EXPECT_TRUE(p.create.empty());
  EXPECT_EQ((*cond(p, "SecretsResolved"))["reason"], "SecretNotFound");
  EXPECT_EQ((*cond(p, "Ready"))["status"], "False");
  EXPECT_EQ(p.status.dump().find("CANARY"), std::string::npos);
}

TEST(PlanBackupPolicy, SuccessfulRunEntersTheCatalogOnce) {
  json stored = policy();
  stored["status"]["schedules"]["backup"]["lastScheduleTime"] = "2026-11-24T10:00:00Z";
  stored["status"]["schedules"]["full-backup"]["lastScheduleTime"] = "2026-11-24T10:00:00Z";
  std::vector<ObservedJob> jobs = {{"db-full-202611241000", "full-backup", at("2026-11-24T10:00:00Z"), State::kSucceeded,
                                    result_json("base_000000010000000000000002"), "", at("2026-11-24T10:03:00Z"), {}, ""}};
  auto p = plan_backup_policy(inputs(stored, "2026-11-24T10:04:00Z", jobs));
  ASSERT_EQ(p.status["backups"].size(), 1u);
  EXPECT_EQ(p.status["backups"][0]["id"], "base_000000010000000000000002");
  EXPECT_EQ(p.status["backups"][0]["verified"], false);
  EXPECT_EQ(p.status["lastSuccessfulBackup"]["id"], "base_000000010000000000000002");
  EXPECT_EQ((*cond(p, "BackupHealthy"))["status"], "True");
  ASSERT_EQ(p.events.size(), 1u);
  EXPECT_EQ(p.events[0].reason, "BackupSucceeded");
  stored["status"] = p.status;
  auto again = plan_backup_policy(inputs(stored, "2026-11-24T10:05:00Z", jobs));
  EXPECT_TRUE(again.events.empty());
  EXPECT_EQ(again.status["backups"].size(), 1u);
}

// status.backups never exceeds the CRD's maxItems: beyond it the API server
// would refuse every status write of the policy. The newest entries stay.
TEST(PlanBackupPolicy, TheCatalogInStatusKeepsTheNewestUpToTheCrdsMaxItems) {
  json stored = policy();
  stored["status"]["schedules"]["backup"]["lastScheduleTime"] = "2026-11-24T10:00:00Z";
  stored["status"]["schedules"]["full-backup"]["lastScheduleTime"] = "2026-11-24T10:00:00Z";
  json catalog = json::array();
  for (size_t i = 0; i < kMaxCatalog + 5; ++i) {
    const auto done = at("2026-11-24T09:00:00Z") - std::chrono::minutes(i);
    catalog.push_back({{"id", "base_" + std::to_string(100000 + i)}, {"checksum", "sha256:" + std::string(64, 'c')},
                       {"type", "full"}, {"startTime", bo::format_rfc3339(done - std::chrono::minutes(1))},
                       {"completionTime", bo::format_rfc3339(done)}, {"verified", false}, {"keptFor", json::array()}});
  }
  stored["status"]["backups"] = catalog;
  std::vector<ObservedJob> jobs;
  for (size_t i = 0; i < kMaxActiveJobs + 3; ++i) {
    ObservedJob j = active(("db-retain-" + std::to_string(i)).c_str(), "retain", at("2026-11-24T10:00:00Z"));
    jobs.push_back(j);
  }
  auto p = plan_backup_policy(inputs(stored, "2026-11-24T10:04:00Z", jobs));
  ASSERT_EQ(p.status["backups"].size(), kMaxCatalog);
  EXPECT_EQ(p.status["backups"][0]["id"], "base_100000");
  EXPECT_EQ(p.status["backups"][kMaxCatalog - 1]["id"], "base_" + std::to_string(100000 + kMaxCatalog - 1));
  EXPECT_EQ(p.status["activeJobs"].size(), kMaxActiveJobs);
}

TEST(PlanBackupPolicy, MalformedResultFailsTheRunWithAReason) {
  std::vector<ObservedJob> jobs = {{"db-delta-202611241000", "backup", at("2026-11-24T10:00:00Z"), State::kSucceeded,
                                    "{\"backupId\":\"x\"}", "", at("2026-11-24T10:03:00Z"), {}, ""}};
  auto p = plan_backup_policy(inputs(policy(), "2026-11-24T10:04:00Z", jobs));
  EXPECT_EQ((*cond(p, "BackupHealthy"))["status"], "False");
  EXPECT_NE((*cond(p, "BackupHealthy"))["message"].get<std::string>().find("InvalidResult: result.checksum"),
            std::string::npos);
  EXPECT_TRUE(p.status["backups"].empty());
}

TEST(PlanBackupPolicy, HistoryLimitsDeleteTheOldestFinishedJobs) {
  std::vector<ObservedJob> jobs;
  for (int h = 1; h <= 5; ++h) {
    const std::string stamp = "2026-11-24T0" + std::to_string(h) + ":00:00Z";
    jobs.push_back({"db-delta-202611240" + std::to_string(h) + "00", "backup", at(stamp.c_str()), State::kFailed, "",
                    "BackoffLimitExceeded", at(stamp.c_str()), {}, ""});
  }
  auto p = plan_backup_policy(inputs(policy({{"historyLimits", {{"failed", 2}}}}), "2026-11-24T06:30:00Z", jobs));
  EXPECT_EQ(p.remove, (std::vector<std::string>{"db-delta-202611240300", "db-delta-202611240200",
                                                "db-delta-202611240100"}));
}

TEST(PlanBackupPolicy, RetentionMarksKeptBackupsAndDeletesTheRestOnce) {
  json stored = policy({{"retention", {{"daily", 2}, {"weekly", 1}, {"monthly", 1}}}});
  stored["status"]["schedules"]["backup"]["lastScheduleTime"] = "2026-11-24T10:00:00Z";
  stored["status"]["schedules"]["full-backup"]["lastScheduleTime"] = "2026-11-24T10:00:00Z";
  json catalog = json::array();
  for (int d = 10; d <= 20; ++d)
    catalog.push_back({{"id", "full-" + std::to_string(d)}, {"type", "full"}, {"verified", false},
                       {"completionTime", "2026-11-" + std::to_string(d) + "T02:05:00Z"}});
  stored["status"]["backups"] = catalog;
  auto p = plan_backup_policy(inputs(stored, "2026-11-24T10:30:00Z"));
  ASSERT_EQ(p.create.size(), 1u);
  const json& job = p.create[0];
  EXPECT_EQ(job["metadata"]["labels"]["backup.si.dev/action"], "retain");
  std::string expire;
  for (const auto& e : job["spec"]["template"]["spec"]["containers"][0]["env"])
    if (e["name"] == "RETAIN_EXPIRE") expire = e["value"];
  EXPECT_EQ(expire, "full-10,full-11,full-12,full-13,full-14,full-15,full-16,full-17,full-18");
  for (const auto& e : p.status["backups"]) {
    if (e["id"] == "full-20") {
      EXPECT_EQ(e["keptFor"], json({"daily", "weekly", "monthly"}));
    }
  }
  // The retain Job finishes: the deleted backups leave the catalog; nothing more to expire.
  stored["status"] = p.status;
  ObservedJob done;
  done.name = job["metadata"]["name"];
  done.action = "retain";
  done.slot = at("2026-11-18T02:05:00Z");
  done.state = State::kSucceeded;
  done.finished = at("2026-11-24T10:31:00Z");
  done.expire = {"full-10", "full-11", "full-12", "full-13", "full-14", "full-15", "full-16", "full-17", "full-18"};
  auto after = plan_backup_policy(inputs(stored, "2026-11-24T10:32:00Z", {done}));
  EXPECT_TRUE(after.create.empty());
  EXPECT_EQ(after.status["backups"].size(), 2u);
  ASSERT_FALSE(after.events.empty());
  EXPECT_EQ(after.events[0].reason, "RetentionApplied");
}

}  // namespace

namespace {

ObservedJob offsite_done(const std::string& termination) {
  ObservedJob done;
  done.name = "db-offsite-202611250430";
  done.action = "offsite-copy";
  done.slot = at("2026-11-25T04:30:00Z");
  done.state = State::kSucceeded;
  done.finished = at("2026-11-25T04:35:00Z");
  done.termination_message = termination;
  return done;
}

TEST(PlanBackupPolicy, OffsiteCopyCopiesTheNewestFullAndReportsCurrency) {
  json stored = policy();
  for (const char* a : {"backup", "full-backup", "offsite-copy"})
    stored["status"]["schedules"][a]["lastScheduleTime"] = "2026-11-25T04:00:00Z";
  stored["status"]["backups"] = json::array(
      {{{"id", "base_2"}, {"type", "full"}, {"completionTime", "2026-11-25T02:04:00Z"}, {"verified", false}},
       {{"id", "base_1"}, {"type", "full"}, {"completionTime", "2026-11-24T02:04:00Z"}, {"verified", false}}});
  auto p = plan_backup_policy(inputs(stored, "2026-11-25T04:30:10Z"));
  const json* offsite = nullptr;
  for (const auto& j : p.create)
    if (j["metadata"]["labels"]["backup.si.dev/action"] == "offsite-copy") offsite = &j;
  ASSERT_NE(offsite, nullptr);
  EXPECT_EQ((*offsite)["metadata"]["name"], "db-offsite-202611250430");
  std::map<std::string, json> env;
  for (const auto& e : (*offsite)["spec"]["template"]["spec"]["containers"][0]["env"]) env[e["name"]] = e;
  EXPECT_EQ(env["OFFSITE_BACKUP_ID"]["value"], "base_2");
  EXPECT_EQ(env["OFFSITE_WALG_AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"], "walg-storage");
  EXPECT_EQ(env["OFFSITE_IMMUTABLE_DAYS"]["value"], "30");
  // What wal-g also needs for a path-style endpoint or a private CA, when the offsite Secret has it.
  EXPECT_EQ(env["OFFSITE_WALG_S3_CA_CERT_FILE"]["valueFrom"]["secretKeyRef"]["optional"], true);
  EXPECT_EQ(env["OFFSITE_AWS_S3_FORCE_PATH_STYLE"]["valueFrom"]["secretKeyRef"]["key"], "AWS_S3_FORCE_PATH_STYLE");
  // The copy finishes with a retention read back: OffsiteCopyCurrent turns True with that date, and goes stale after 26 hours.
  stored["status"] = p.status;
  const ObservedJob done = offsite_done(R"({"copied":"base_2","checksum":"sha256:)" + std::string(64, 'a') +
                                        R"(","restorable":true,"walSegments":1,"immutableUntil":"2026-12-24T04:33:17Z",)"
                                        R"("retentionMode":"COMPLIANCE","retentionObjects":3})");
  auto after = plan_backup_policy(inputs(stored, "2026-11-25T04:36:00Z", {done}));
  const json* current = cond(after, "OffsiteCopyCurrent");
  EXPECT_EQ((*current)["status"], "True");
  EXPECT_EQ((*current)["reason"], "CopyCurrent");
  EXPECT_NE((*current)["message"].get<std::string>().find("COMPLIANCE retention until 2026-12-24T04:33:17Z"),
            std::string::npos)
      << (*current)["message"];
  EXPECT_EQ(after.status["lastOffsiteCopy"]["id"], "base_2");
  EXPECT_EQ(after.status["lastOffsiteCopy"]["immutableUntil"], "2026-12-24T04:33:17Z");
  EXPECT_EQ(after.status["lastOffsiteCopy"]["retentionMode"], "COMPLIANCE");
  EXPECT_FALSE(after.status["lastOffsiteCopy"].contains("immutability"));
  ASSERT_FALSE(after.events.empty());
  EXPECT_EQ(after.events[0].reason, "OffsiteCopied");
  EXPECT_EQ(after.events[0].type, "Normal");
  EXPECT_NE(after.events[0].message.find("until 2026-12-24T04:33:17Z (read back from the store)"), std::string::npos)
      << after.events[0].message;
  stored["status"] = after.status;
  auto later = plan_backup_policy(inputs(stored, "2026-11-26T07:00:00Z", {done}));
  EXPECT_EQ((*cond(later, "OffsiteCopyCurrent"))["reason"], "CopyStale");
}

TEST(PlanBackupPolicy, OffsiteCopyWithoutARetentionReadBackIsNotCurrentAndCarriesNoDate) {
  json stored = policy();
  stored["status"]["schedules"]["offsite-copy"]["lastScheduleTime"] = "2026-11-25T04:30:00Z";
  const std::string message =
      "GetObjectRetention on s3://offsite/shop/basebackups_005/base_2_backup_stop_sentinel.json: HTTP 501 NotImplemented";
  const ObservedJob done = offsite_done(
      json{{"copied", "base_2"}, {"restorable", true}, {"immutability", {{"reason", "RetentionNotReported"}, {"message", message}}}}
          .dump());
  auto after = plan_backup_policy(inputs(stored, "2026-11-25T04:36:00Z", {done}));
  const json* current = cond(after, "OffsiteCopyCurrent");
  ASSERT_NE(current, nullptr);
  EXPECT_EQ((*current)["status"], "False");
  EXPECT_EQ((*current)["reason"], "RetentionNotReported");
  EXPECT_NE((*current)["message"].get<std::string>().find(message), std::string::npos) << (*current)["message"];
  const json& last = after.status["lastOffsiteCopy"];
  EXPECT_EQ(last["id"], "base_2");
  EXPECT_FALSE(last.contains("immutableUntil")) << last;
  EXPECT_EQ(last["immutability"]["reason"], "RetentionNotReported");
  ASSERT_FALSE(after.events.empty());
  EXPECT_EQ(after.events[0].reason, "OffsiteCopied");
  EXPECT_EQ(after.events[0].type, "Warning");
  EXPECT_NE(after.events[0].message.find("immutability unverified (RetentionNotReported)"), std::string::npos)
      << after.events[0].message;
  EXPECT_EQ(after.events[0].message.find("immutable until"), std::string::npos) << after.events[0].message;
  // Its run succeeded: the copy is there and restorable; only the immutability is unverified.
  EXPECT_EQ(after.status["recentRuns"][0]["result"], "Succeeded");
  // A stale copy is stale, whatever its immutability.
  stored["status"] = after.status;
  auto later = plan_backup_policy(inputs(stored, "2026-11-26T07:00:00Z", {done}));
  EXPECT_EQ((*cond(later, "OffsiteCopyCurrent"))["reason"], "CopyStale");
}

TEST(PlanBackupPolicy, OffsiteCopyDateWithoutAModeReadBackIsUnverified) {
  // What run-job wrote before it read retention back: a date computed from the clock.
  json stored = policy();
  stored["status"]["schedules"]["offsite-copy"]["lastScheduleTime"] = "2026-11-25T04:30:00Z";
  auto after = plan_backup_policy(
      inputs(stored, "2026-11-25T04:36:00Z", {offsite_done(R"({"copied":"base_2","immutableUntil":"2026-12-25T04:35:00Z"})")}));
  EXPECT_EQ((*cond(after, "OffsiteCopyCurrent"))["status"], "False");
  EXPECT_EQ((*cond(after, "OffsiteCopyCurrent"))["reason"], "ImmutabilityUnverified");
  EXPECT_FALSE(after.status["lastOffsiteCopy"].contains("immutableUntil")) << after.status["lastOffsiteCopy"];
  // A status written by that version (a date, no mode) is not believed either.
  stored["status"]["lastOffsiteCopy"] = {{"id", "base_1"}, {"completionTime", "2026-11-25T04:35:00Z"},
                                         {"immutableUntil", "2026-12-25T04:35:00Z"}, {"job", "db-offsite-1"}};
  auto legacy = plan_backup_policy(inputs(stored, "2026-11-25T04:36:00Z"));
  EXPECT_EQ((*cond(legacy, "OffsiteCopyCurrent"))["reason"], "ImmutabilityUnverified");
  // A retention read back that has ended protects nothing any more.
  stored["status"]["lastOffsiteCopy"]["retentionMode"] = "GOVERNANCE";
  stored["status"]["lastOffsiteCopy"]["immutableUntil"] = "2026-11-25T04:35:30Z";
  auto expired = plan_backup_policy(inputs(stored, "2026-11-25T04:36:00Z"));
  EXPECT_EQ((*cond(expired, "OffsiteCopyCurrent"))["status"], "False");
  EXPECT_EQ((*cond(expired, "OffsiteCopyCurrent"))["reason"], "RetentionExpired");
}

TEST(PlanBackupPolicy, OffsiteCopyWithAnUnreadableResultFailsTheRun) {
  json stored = policy();
  stored["status"]["schedules"]["offsite-copy"]["lastScheduleTime"] = "2026-11-25T04:30:00Z";
  auto after = plan_backup_policy(inputs(
      stored, "2026-11-25T04:36:00Z",
      {offsite_done(R"({"copied":"base_2","immutableUntil":"soon","retentionMode":"COMPLIANCE"})")}));
  EXPECT_FALSE(after.status.contains("lastOffsiteCopy"));
  EXPECT_EQ(after.status["recentRuns"][0]["result"], "Failed");
  EXPECT_NE(after.status["recentRuns"][0]["message"].get<std::string>().find("InvalidResult: result.immutableUntil"),
            std::string::npos);
}

ObservedRestore finished_restore(const std::string& name, const char* purpose, const char* phase, const char* done,
                                 bool owned = true) {
  ObservedRestore r;
  r.name = name;
  r.purpose = purpose;
  r.phase = phase;
  r.backup_id = "base_2";
  r.checksum = "sha256:" + std::string(64, 'a');
  r.completion = at(done);
  r.owned = owned;
  return r;
}

TEST(PlanBackupPolicy, DailyVerificationRestoresTheNewestFullAndMarksItVerified) {
  json stored = policy();
  stored["status"]["backups"] = json::array(
      {{{"id", "base_2_D_base_2"}, {"type", "delta"}, {"base", "base_2"}, {"completionTime", "2026-11-25T03:00:00Z"}},
       {{"id", "base_2"}, {"type", "full"}, {"checksum", "sha256:" + std::string(64, 'a')},
        {"completionTime", "2026-11-25T02:04:00Z"}, {"verified", false}},
       {{"id", "base_1"}, {"type", "full"}, {"checksum", "sha256:" + std::string(64, 'b')},
        {"completionTime", "2026-11-24T02:04:00Z"}, {"verified", false}}});
  auto p = plan_backup_policy(inputs(stored, "2026-11-25T04:00:10Z"));
  ASSERT_EQ(p.create_restores.size(), 1u);
  const json& rr = p.create_restores[0];
  EXPECT_EQ(rr["metadata"]["name"], "db-verify-202611250400");
  EXPECT_EQ(rr["metadata"]["ownerReferences"][0]["uid"], "u1");
  EXPECT_EQ(rr["spec"]["backupId"], "base_2");
  EXPECT_EQ(rr["spec"]["checksum"], "sha256:" + std::string(64, 'a'));
  EXPECT_EQ(rr["spec"]["purpose"], "verification");
  EXPECT_EQ(rr["spec"]["targetNamespace"], "verify");
  EXPECT_EQ((*cond(p, "Verified"))["status"], "Unknown");

  // Running: not asked for twice.
  stored["status"] = p.status;
  auto in = inputs(stored, "2026-11-25T04:00:20Z");
  in.restores = {finished_restore("db-verify-202611250400", "verification", "Restoring", "2026-11-25T04:00:20Z")};
  in.restores[0].completion.reset();
  EXPECT_TRUE(plan_backup_policy(in).create_restores.empty());

  // Succeeded: the backup and its checksum become verified.
  in.now = at("2026-11-25T04:10:00Z");
  in.restores = {finished_restore("db-verify-202611250400", "verification", "Succeeded", "2026-11-25T04:09:00Z")};
  p = plan_backup_policy(in);
  EXPECT_EQ((*cond(p, "Verified"))["status"], "True");
  EXPECT_EQ(p.status["lastVerifiedBackup"]["id"], "base_2");
  EXPECT_EQ(p.status["lastVerifiedBackup"]["verifiedAt"], "2026-11-25T04:09:00Z");
  for (const auto& e : p.status["backups"]) EXPECT_EQ(e.value("verified", false), e["id"] == "base_2") << e.dump();
  EXPECT_TRUE(std::any_of(p.events.begin(), p.events.end(), [](const EventSpec& e) { return e.reason == "BackupVerified"; }));
  // Once: the next reconcile announces nothing new.
  stored["status"] = p.status;
  in.policy = stored;
  auto again = plan_backup_policy(in);
  EXPECT_FALSE(std::any_of(again.events.begin(), again.events.end(), [](const EventSpec& e) { return e.reason == "BackupVerified"; }));
  EXPECT_EQ(again.status, p.status);

  // 26 hours without a newer one: stale. A failed one: failed.
  in.now = at("2026-11-26T06:10:00Z");
  in.restores.clear();
  EXPECT_EQ((*cond(plan_backup_policy(in), "Verified"))["reason"], "VerificationStale");
  in.restores = {finished_restore("db-verify-202611260400", "verification", "Failed", "2026-11-26T04:20:00Z")};
  in.restores[0].message = "validation failed (database-answers)";
  auto failed = plan_backup_policy(in);
  EXPECT_EQ((*cond(failed, "Verified"))["reason"], "VerificationFailed");
  EXPECT_NE((*cond(failed, "Verified"))["message"].get<std::string>().find("database-answers"), std::string::npos);
}

TEST(PlanBackupPolicy, AVerificationSlotWithoutAFullBackupWarns) {
  auto p = plan_backup_policy(inputs(policy(), "2026-11-25T04:00:10Z"));
  EXPECT_TRUE(p.create_restores.empty());
  EXPECT_TRUE(std::any_of(p.events.begin(), p.events.end(), [](const EventSpec& e) { return e.reason == "NoBackupToVerify"; }));
}

TEST(PlanBackupPolicy, DrillsKeepDrillCurrentWithinTheInterval) {
  json stored = policy({{"drills", {{"interval", "720h"}}}});
  auto in = inputs(stored, "2026-11-25T10:00:00Z");
  EXPECT_EQ((*cond(plan_backup_policy(in), "DrillCurrent"))["reason"], "NoDrillYet");
  in.restores = {finished_restore("drill-1", "drill", "Succeeded", "2026-11-25T09:00:00Z", false)};
  auto p = plan_backup_policy(in);
  EXPECT_EQ((*cond(p, "DrillCurrent"))["status"], "True");
  EXPECT_EQ(p.status["lastDrill"]["request"], "drill-1");
  // A failed drill does not count; an old one goes overdue.
  stored["status"] = p.status;
  in.policy = stored;
  in.restores = {finished_restore("drill-2", "drill", "Failed", "2026-12-01T09:00:00Z", false)};
  in.now = at("2026-12-26T10:00:00Z");
  p = plan_backup_policy(in);
  EXPECT_EQ((*cond(p, "DrillCurrent"))["reason"], "DrillOverdue");
  EXPECT_EQ(p.status["lastDrill"]["request"], "drill-1");
  // With no drill at all, a policy older than the interval is overdue too.
  auto fresh = inputs(policy({{"drills", {{"interval", "720h"}}}}), "2026-12-30T10:00:00Z");
  EXPECT_EQ((*cond(plan_backup_policy(fresh), "DrillCurrent"))["reason"], "DrillOverdue");
}

TEST(PlanBackupPolicy, FinishedVerificationsBeyondTheHistoryLimitsAreDeleted) {
  auto in = inputs(policy(), "2026-11-30T10:00:00Z");
  for (int d = 24; d <= 29; ++d)
    in.restores.push_back(finished_restore("v" + std::to_string(d), "verification", "Succeeded",
                                           ("2026-11-" + std::to_string(d) + "T04:10:00Z").c_str()));
  in.restores.push_back(finished_restore("user-drill", "drill", "Succeeded", "2026-11-20T04:10:00Z", false));
  auto p = plan_backup_policy(in);
  std::sort(p.remove_restores.begin(), p.remove_restores.end());
  EXPECT_EQ(p.remove_restores, (std::vector<std::string>{"v24", "v25", "v26"}));
}

}  // namespace

namespace {

const json* env_of(const json& job, const std::string& name) {
  for (const auto& e : job["spec"]["template"]["spec"]["containers"][0]["env"])
    if (e["name"] == name) return &e;
  return nullptr;
}

TEST(PlanBackupPolicy, BackupJobsReadTheDataVolumeAsTheDatabaseUserBesideItsPod) {
  auto in = inputs(policy({{"database", {{"podLabels", {{"app", "supabase-db"}}}}}}), "2026-11-24T10:00:30Z");
  in.secrets["walg-storage"]["WALG_DELTA_MAX_STEPS"] = "99";  // the operator's value wins, once
  auto p = plan_backup_policy(in);
  ASSERT_EQ(p.create.size(), 1u);
  const json& pod = p.create[0]["spec"]["template"]["spec"];
  EXPECT_EQ(pod["securityContext"]["runAsUser"], 101);
  EXPECT_EQ(pod["securityContext"]["runAsGroup"], 102);
  EXPECT_FALSE(pod["securityContext"].contains("fsGroup")) << "a kubelet would chown the database's files";
  bool mounted = false;
  for (const auto& m : pod["containers"][0]["volumeMounts"])
    if (m["name"] == "pgdata") {
      mounted = true;
      EXPECT_EQ(m["mountPath"], "/var/lib/postgresql/data");
      EXPECT_EQ(m["readOnly"], true);
    }
  EXPECT_TRUE(mounted);
  bool claim = false;
  for (const auto& v : pod["volumes"])
    if (v["name"] == "pgdata") {
      claim = true;
      EXPECT_EQ(v["persistentVolumeClaim"]["claimName"], "supabase-db-data");
      EXPECT_EQ(v["persistentVolumeClaim"]["readOnly"], true);
    }
  EXPECT_TRUE(claim);
  const auto& term = pod["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0];
  EXPECT_EQ(term["labelSelector"]["matchLabels"]["app"], "supabase-db");
  EXPECT_EQ(term["topologyKey"], "kubernetes.io/hostname");
  ASSERT_TRUE(env_of(p.create[0], "PGDATA"));
  EXPECT_EQ((*env_of(p.create[0], "PGDATA"))["value"], "/var/lib/postgresql/data");
  // Hourly deltas, a daily full: 23 delta slots between two fulls, chained on the previous backup.
  EXPECT_EQ((*env_of(p.create[0], "WALG_DELTA_MAX_STEPS"))["value"], "23");
  int steps = 0;
  for (const auto& e : p.create[0]["spec"]["template"]["spec"]["containers"][0]["env"]) steps += e["name"] == "WALG_DELTA_MAX_STEPS";
  EXPECT_EQ(steps, 1);
  EXPECT_EQ((*env_of(p.create[0], "WALG_DELTA_ORIGIN"))["value"], "LATEST");
}

TEST(PlanBackupPolicy, WithoutADataVolumeNothingRunsAndTheFieldIsNamed) {
  json stored = policy();
  stored["spec"]["database"].erase("dataVolume");
  auto p = plan_backup_policy(inputs(stored, "2026-11-24T10:00:30Z"));
  EXPECT_TRUE(p.create.empty());
  EXPECT_EQ((*cond(p, "Ready"))["reason"], "DataVolumeRequired");
  EXPECT_NE((*cond(p, "Ready"))["message"].get<std::string>().find("spec.database.dataVolume.claimName"),
            std::string::npos);
}

TEST(PlanBackupPolicy, ADataDirectoryOutsideTheMountStartsNoBackup) {
  auto in = inputs(policy(), "2026-11-24T10:00:30Z");
  in.archiving = bo::postgres::ArchiveObservation{};
  in.archiving->data_directory = "/var/lib/postgresql/15/main";
  auto p = plan_backup_policy(in);
  EXPECT_TRUE(p.create.empty());
  EXPECT_EQ((*cond(p, "BackupHealthy"))["reason"], "DataDirectoryMismatch");
  EXPECT_NE((*cond(p, "BackupHealthy"))["message"].get<std::string>().find("spec.database.dataVolume.mountPath"),
            std::string::npos);
  in.archiving->data_directory = "/var/lib/postgresql/data/pgdata";  // below the mount: wal-g gets that path
  p = plan_backup_policy(in);
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ((*env_of(p.create[0], "PGDATA"))["value"], "/var/lib/postgresql/data/pgdata");
}

TEST(PlanBackupPolicy, ABackupWhoseWalWasNotArchivedIsRecordedButNeverCountsAsSuccessful) {
  json stored = policy();
  stored["status"]["schedules"]["backup"]["lastScheduleTime"] = "2026-11-24T10:00:00Z";
  stored["status"]["schedules"]["full-backup"]["lastScheduleTime"] = "2026-11-24T10:00:00Z";
  json result = json::parse(result_json("base_000000010000000000000002"));
  result["walArchived"] = false;
  result["walMessage"] = "WAL segment 000000010000000000000002 is not in storage";
  std::vector<ObservedJob> jobs = {{"db-full-202611241000", "full-backup", at("2026-11-24T10:00:00Z"), State::kSucceeded,
                                    result.dump(), "", at("2026-11-24T10:03:00Z"), {}, ""}};
  auto p = plan_backup_policy(inputs(stored, "2026-11-24T10:04:00Z", jobs));
  ASSERT_EQ(p.status["backups"].size(), 1u);
  EXPECT_EQ(p.status["backups"][0]["restorable"], false);
  EXPECT_FALSE(p.status.contains("lastSuccessfulBackup"));
  EXPECT_EQ((*cond(p, "BackupHealthy"))["status"], "False");
  EXPECT_NE((*cond(p, "BackupHealthy"))["message"].get<std::string>().find("BackupNotRestorable"), std::string::npos);
}

TEST(PlanBackupPolicy, TypeBaseAndChainComeFromTheResultNotTheName) {
  json stored = policy();
  stored["status"]["schedules"]["backup"]["lastScheduleTime"] = "2026-11-24T11:00:00Z";
  stored["status"]["schedules"]["full-backup"]["lastScheduleTime"] = "2026-11-24T10:00:00Z";
  json result = json::parse(result_json("base_000000010000000000000006_D_000000010000000000000004", "delta"));
  result["base"] = "base_000000010000000000000004_D_000000010000000000000002";
  result["full"] = "base_000000010000000000000002";
  result["deltaCount"] = 2;
  std::vector<ObservedJob> jobs = {{"db-delta-202611241100", "backup", at("2026-11-24T11:00:00Z"), State::kSucceeded,
                                    result.dump(), "", at("2026-11-24T11:03:00Z"), {}, ""}};
  auto p = plan_backup_policy(inputs(stored, "2026-11-24T11:04:00Z", jobs));
  ASSERT_EQ(p.status["backups"].size(), 1u);
  EXPECT_EQ(p.status["backups"][0]["base"], "base_000000010000000000000004_D_000000010000000000000002");
  EXPECT_EQ(p.status["backups"][0]["full"], "base_000000010000000000000002");
  EXPECT_EQ(p.status["backups"][0]["deltaCount"], 2);
}

TEST(PlanBackupPolicy, RetainRemovesWhatStorageReportsDeletedIncludingCascades) {
  json stored = policy();
  stored["status"]["backups"] = {{{"id", "f1_D1"}, {"type", "delta"}, {"base", "f1"}, {"full", "f1"}},
                                 {{"id", "f1"}, {"type", "full"}}, {{"id", "f0"}, {"type", "full"}}};
  ObservedJob retain{"db-retain-202611241000", "retain", at("2026-11-24T10:00:00Z"), State::kSucceeded,
                     R"({"deleted":["f1","f1_D1"]})", "", at("2026-11-24T10:01:00Z"), {"f1"}, ""};
  auto p = plan_backup_policy(inputs(stored, "2026-11-24T10:02:00Z", {retain}));
  ASSERT_EQ(p.status["backups"].size(), 1u);
  EXPECT_EQ(p.status["backups"][0]["id"], "f0");
}

TEST(DeltaMaxSteps, CountsDeltaSlotsBetweenTwoFulls) {
  const auto* utc = date::locate_zone("UTC");
  auto c = [](const char* e) { return *bo::schedule::Cron::parse(e); };
  const auto from = at("2026-11-24T10:00:00Z");
  EXPECT_EQ(delta_max_steps(c("0 * * * *"), c("0 2 * * *"), utc, from), 23);
  EXPECT_EQ(delta_max_steps(c("0 * * * *"), c("0 2 * * 0"), utc, from), 7 * 24 - 1);
  EXPECT_EQ(delta_max_steps(c("0 */6 * * *"), c("0 2 * * *"), utc, from), 4);
  // Deltas that never fall between two fulls: every push is full (wal-g's default, 0).
  EXPECT_EQ(delta_max_steps(c("0 2 * * *"), c("0 2 * * *"), utc, from), 0);
}

// The count is remembered per schedule pair, zone and full cycle: the same
// expressions in another zone, or from another cycle, are counted afresh.
TEST(DeltaMaxSteps, RemembersEachZoneAndCycleApart) {
  const auto* utc = date::locate_zone("UTC");
  // The Azores keep UTC+0 in summer, so their first full (02:00) is the same
  // instant as UTC's; their 2026-10-25 has 25 hours: 24 hourly deltas between two fulls.
  const auto* azores = date::locate_zone("Atlantic/Azores");
  auto c = [](const char* e) { return *bo::schedule::Cron::parse(e); };
  const auto before_fall_back = at("2026-10-20T10:00:00Z");
  EXPECT_EQ(delta_max_steps(c("0 * * * *"), c("0 2 * * *"), utc, before_fall_back), 23);
  EXPECT_EQ(delta_max_steps(c("0 * * * *"), c("0 2 * * *"), azores, before_fall_back), 24);
  EXPECT_EQ(delta_max_steps(c("0 * * * *"), c("0 2 * * *"), utc, before_fall_back), 23);
  // Eight cycles later the 25-hour day is behind: 23 again.
  EXPECT_EQ(delta_max_steps(c("0 * * * *"), c("0 2 * * *"), azores, at("2026-11-02T10:00:00Z")), 23);
}

}  // namespace

namespace {

// Each outcome of the background data volume check: no backup Job unless it
// resolved; Ready and DataVolumeResolved carry the reason and the field.
struct VolumeCase {
  const char* name;
  std::optional<DataVolumeCheck> check;
  const char* status;  // DataVolumeResolved
  const char* reason;
  const char* field;
};

class PlanDataVolume : public ::testing::TestWithParam<VolumeCase> {};

TEST_P(PlanDataVolume, NoBackupJobUnlessResolved) {
  const auto& c = GetParam();
  auto in = inputs(policy(), "2026-11-24T10:00:30Z");
  in.data_volume = c.check;
  const auto p = plan_backup_policy(in);
  for (const auto& j : p.create) {
    const std::string action = j["metadata"]["labels"]["backup.si.dev/action"];
    EXPECT_TRUE(action != "backup" && action != "full-backup") << c.name << " created " << j["metadata"]["name"];
  }
  const json* dv = cond(p, "DataVolumeResolved");
  ASSERT_TRUE(dv) << p.status["conditions"].dump();
  EXPECT_EQ((*dv)["status"], c.status);
  EXPECT_EQ((*dv)["reason"], c.reason);
  EXPECT_NE((*dv)["message"].get<std::string>().find(c.field), std::string::npos) << (*dv)["message"];
  const json* ready = cond(p, "Ready");
  EXPECT_EQ((*ready)["status"], std::string(c.status) == "Unknown" ? "Unknown" : "False");
  EXPECT_EQ((*ready)["reason"], c.reason);
}

INSTANTIATE_TEST_SUITE_P(
    Table, PlanDataVolume,
    ::testing::Values(
        VolumeCase{"Pending", std::nullopt, "Unknown", "DataVolumePending", "spec.database.dataVolume.claimName"},
        VolumeCase{"ClaimMissing",
                   check_failed("DataVolumeNotFound", "spec.database.dataVolume.claimName",
                                "PersistentVolumeClaim supabase-db-data not found in namespace supabase"),
                   "False", "DataVolumeNotFound", "spec.database.dataVolume.claimName"},
        VolumeCase{"ReadWriteOncePod",
                   check_failed("DataVolumeReadWriteOncePod", "spec.database.dataVolume.claimName", "claim is RWOP"),
                   "False", "DataVolumeReadWriteOncePod", "spec.database.dataVolume.claimName"},
        VolumeCase{"WorkloadMissing",
                   check_failed("WorkloadNotFound", "spec.database.workloadRef", "StatefulSet db not found"), "False",
                   "WorkloadNotFound", "spec.database.workloadRef"},
        VolumeCase{"WorkloadNotRunning",
                   check_failed("WorkloadNotRunning", "spec.database.workloadRef", "StatefulSet db has no Ready pod"),
                   "False", "WorkloadNotRunning", "spec.database.workloadRef"},
        VolumeCase{"UserUnknown",
                   check_failed("RunAsUserRequired", "spec.database.runAsUser", "the image chooses its user"), "False",
                   "RunAsUserRequired", "spec.database.runAsUser"},
        VolumeCase{"Forbidden",
                   check_failed("DataVolumeCheckFailed", "spec.database.dataVolume.claimName",
                                "could not read PersistentVolumeClaim supabase-db-data (HTTP 403 Forbidden): nope"),
                   "False", "DataVolumeCheckFailed", "HTTP 403 Forbidden): nope"}),
    [](const auto& info) { return info.param.name; });

TEST(PlanDataVolume, APendingCheckAfterARestartRunsDueBackupsOnTheLastResolvedVolume) {
  auto first = plan_backup_policy(inputs(policy(), "2026-11-24T09:59:00Z"));
  ASSERT_EQ((*cond(first, "DataVolumeResolved"))["status"], "True");
  ASSERT_EQ(first.status["dataVolume"]["claimName"], "supabase-db-data") << first.status.dump();
  json stored = policy();
  stored["status"] = first.status;
  auto in = inputs(stored, "2026-11-24T10:00:30Z");
  in.data_volume.reset();  // an operator restart: no check has finished yet
  const auto p = plan_backup_policy(in);
  ASSERT_EQ(p.create.size(), 1u) << p.status["conditions"].dump();
  EXPECT_EQ(p.create[0]["metadata"]["name"], "db-delta-202611241000");
  EXPECT_EQ(*cond(p, "DataVolumeResolved"), *cond(first, "DataVolumeResolved"));
  EXPECT_EQ((*cond(p, "Ready"))["status"], "True");
  EXPECT_EQ(p.status["dataVolume"], first.status["dataVolume"]);
}

TEST(PlanDataVolume, APendingCheckNeverReusesAVolumeResolvedForAnotherSpecOrAFailedOne) {
  auto first = plan_backup_policy(inputs(policy(), "2026-11-24T09:59:00Z"));
  // The spec now names another claim: what was resolved for the old one is not used.
  json changed = policy();
  changed["spec"]["database"]["dataVolume"]["claimName"] = "other-claim";
  changed["status"] = first.status;
  auto in = inputs(changed, "2026-11-24T10:00:30Z");
  in.data_volume.reset();
  auto p = plan_backup_policy(in);
  EXPECT_TRUE(p.create.empty()) << p.create.size();
  // The slot is not recorded as scheduled: once the check ends, it runs inside its starting deadline.
  changed["status"] = p.status;
  auto later = inputs(changed, "2026-11-24T10:01:00Z");
  const auto ran = plan_backup_policy(later);
  ASSERT_EQ(ran.create.size(), 1u);
  EXPECT_EQ(ran.create[0]["metadata"]["name"], "db-delta-202611241000");

  // A failed check drops the record, so a later pending check starts nothing.
  json stored = policy();
  stored["status"] = first.status;
  auto failed_in = inputs(stored, "2026-11-24T09:59:30Z");
  failed_in.data_volume = check_failed("DataVolumeNotFound", "spec.database.dataVolume.claimName", "not found");
  const auto failed = plan_backup_policy(failed_in);
  EXPECT_FALSE(failed.status.contains("dataVolume"));
  stored["status"] = failed.status;
  auto pending = inputs(stored, "2026-11-24T10:00:30Z");
  pending.data_volume.reset();
  EXPECT_TRUE(plan_backup_policy(pending).create.empty());
}

TEST(PlanDataVolume, TheRecordedVolumeRoundTripsAndRejectsWhatItCannotUse) {
  ResolvedDataVolume v{"data-db-0", "/var/lib/postgresql/data", "pgdata", 105, 106, "node-a", "db-0",
                       "/var/lib/postgresql/data", "supabase/postgres:15.8.1"};
  const json status = {{"dataVolume", to_status(v, "StatefulSet/db as -1:-1")}};
  EXPECT_EQ(from_status(status, "StatefulSet/db as -1:-1"), v);
  EXPECT_EQ(from_status(status, "StatefulSet/other as -1:-1"), std::nullopt);
  for (const char* key : {"claimName", "mountPath", "runAsUser"}) {
    json broken = status;
    broken["dataVolume"].erase(key);
    EXPECT_EQ(from_status(broken, "StatefulSet/db as -1:-1"), std::nullopt) << key;
  }
  json root = status;
  root["dataVolume"]["runAsUser"] = 0;  // never root
  EXPECT_EQ(from_status(root, "StatefulSet/db as -1:-1"), std::nullopt);
  EXPECT_EQ(from_status(json{{"dataVolume", "garbage"}}, "x"), std::nullopt);
  EXPECT_EQ(from_status(json::array(), "x"), std::nullopt);
}

TEST(PlanDataVolume, SlotsPassedWhileTheClaimWasMissingCountAsMissed) {
  auto in = inputs(policy(), "2026-11-24T12:00:30Z");
  in.data_volume = check_failed("DataVolumeNotFound", "spec.database.dataVolume.claimName", "not found");
  auto p = plan_backup_policy(in);
  EXPECT_TRUE(p.create.empty());
  EXPECT_EQ(p.new_missed, 0);
  json stored = policy();
  stored["status"] = p.status;
  auto fixed = inputs(stored, "2026-11-24T12:01:00Z");
  p = plan_backup_policy(fixed);
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(p.create[0]["metadata"]["name"], "db-delta-202611241200");
  EXPECT_EQ(p.new_missed, 2);  // the 10:00 and 11:00 slots
}

TEST(PlanDataVolume, AWorkloadsPodGivesTheJobItsClaimMountUserAndNode) {
  json stored = policy();
  stored["spec"]["database"].erase("dataVolume");
  stored["spec"]["database"].erase("runAsUser");
  stored["spec"]["database"].erase("runAsGroup");
  stored["spec"]["database"]["workloadRef"] = {{"kind", "StatefulSet"}, {"name", "supabase-db"}};
  auto in = inputs(stored, "2026-11-24T10:00:30Z");
  DataVolumeCheck c;
  c.resolved = true;
  c.volume = {"data-supabase-db-0", "/var/lib/postgresql/data", "pgdata", 105, 106, "node-a", "supabase-db-0",
              "/var/lib/postgresql/data", ""};
  in.data_volume = c;
  const auto p = plan_backup_policy(in);
  ASSERT_EQ(p.create.size(), 1u) << p.status["conditions"].dump();
  const json& pod = p.create[0]["spec"]["template"]["spec"];
  EXPECT_EQ(pod["securityContext"]["runAsUser"], 105);
  EXPECT_EQ(pod["securityContext"]["runAsGroup"], 106);
  bool mounted = false;
  for (const auto& m : pod["containers"][0]["volumeMounts"])
    if (m["name"] == "pgdata") {
      mounted = true;
      EXPECT_EQ(m["mountPath"], "/var/lib/postgresql/data");
      EXPECT_EQ(m["subPath"], "pgdata");
      EXPECT_EQ(m["readOnly"], true);
    }
  EXPECT_TRUE(mounted);
  bool claimed = false;
  for (const auto& v : pod["volumes"])
    if (v["name"] == "pgdata") {
      claimed = true;
      EXPECT_EQ(v["persistentVolumeClaim"]["claimName"], "data-supabase-db-0");
    }
  EXPECT_TRUE(claimed);
  const auto& terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
  ASSERT_EQ(terms.size(), 1u) << pod.dump();
  EXPECT_EQ(terms[0]["matchFields"][0]["key"], "metadata.name");
  EXPECT_EQ(terms[0]["matchFields"][0]["values"], json({"node-a"}));
  EXPECT_FALSE(pod["affinity"].contains("podAffinity"));
  EXPECT_EQ((*env_of(p.create[0], "PGDATA"))["value"], "/var/lib/postgresql/data");
  EXPECT_EQ((*cond(p, "DataVolumeResolved"))["status"], "True");
  EXPECT_EQ((*cond(p, "Ready"))["status"], "True");
}

}  // namespace
