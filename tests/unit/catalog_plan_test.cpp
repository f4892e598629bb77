// The catalog that survives the loss of status (issue 18 item 4): with no
// sign that status.backups is in step with storage, the planner creates one
// catalog Job; its result (run-job catalog) is read back into status.backups,
// verification markers from storage keep backups verified, retention works on
// the rebuilt catalog (and waits for it), and status stays bounded.
#include <gtest/gtest.h>

#include <date/tz.h>

#include <cstdio>
#include <iostream>
#include <optional>

#include "api/job_result.h"
#include "common/encoding.h"
#include "common/timefmt.h"
#include "plan_fixtures.h"
#include "reconcile/backup_policy_plan.h"
#include "reconcile/conditions.h"

using namespace bo::reconcile;
using nlohmann::json;
using State = ObservedJob::State;

namespace {

bo::SysTime at(const char* s) { return *bo::parse_rfc3339(s); }
int64_t unix_at(const char* s) {
  return std::chrono::duration_cast<std::chrono::seconds>(at(s).time_since_epoch()).count();
}

json policy(json spec_patch = json::object()) {
  json spec = {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102},
                             {"host", "db"}, {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
               {"storage", {{"secretRef", {{"name", "walg-storage"}}}, {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
               {"verification", {{"targetNamespace", "verify"}}}};
  spec.merge_patch(spec_patch);
  return plan_fixtures::policy_object(std::move(spec));
}

bo::api::SecretData secrets() {
  return {{"walg-storage", plan_fixtures::storage_secret()},
          {"walg-encryption", {{"WALG_LIBSODIUM_KEY", "CANARY"}}},
          {"supabase-db", {{"username", "u"}, {"password", "CANARY"}}}};
}

// A policy whose status does not say the catalog is in step with storage.
PlanInputs unsynced(json p, const char* now, std::vector<ObservedJob> jobs = {}) {
  return plan_fixtures::plan_inputs(std::move(p), secrets(), now, std::move(jobs), /*catalog_synced=*/false);
}

std::vector<const json*> jobs_of(const PolicyPlan& p, const std::string& action) {
  std::vector<const json*> out;
  for (const auto& j : p.create)
    if (j["metadata"]["labels"].value("backup.si.dev/action", "") == action) out.push_back(&j);
  return out;
}

std::string hex_of(const std::string& id) { return bo::sha256_hex(id); }

// A catalog row: [id, hex, base, full, finish, seconds, size, flags].
json row(const std::string& id, const char* finish, json base = "", json full = "", int flags = 1) {
  return json::array({id, hex_of(id), base, full, unix_at(finish), 120, 4096, flags});
}

std::string catalog_result(json rows, const char* listed_at = "2026-11-24T10:00:30Z", int listed = -1) {
  const int n = listed < 0 ? static_cast<int>(rows.size()) : listed;
  return json{{"listedAt", listed_at}, {"listed", n}, {"backups", std::move(rows)}}.dump();
}

ObservedJob catalog_job(const std::string& result, State state = State::kSucceeded,
                        const char* slot = "2026-11-24T09:30:00Z", const char* finished = "2026-11-24T10:01:00Z") {
  ObservedJob j;
  j.name = job_name("db", Action::kCatalog, at(slot));
  j.action = "catalog";
  j.slot = at(slot);
  j.state = state;
  j.termination_message = result;
  j.finished = at(finished);
  return j;
}

// Eleven daily fulls (Nov 14..24 at 02:05), newest first, plus a delta on the newest.
json eleven_days() {
  json rows = json::array();
  for (int d = 24; d >= 14; --d) {
    const std::string t = "2026-11-" + std::to_string(d) + "T02:05:00Z";
    rows.push_back(row("base_0000000100000000000000" + std::to_string(d), t.c_str()));
  }
  rows.push_back(row("base_000000010000000000000030_D_000000010000000000000024", "2026-11-24T03:05:00Z", 0, 0));
  return rows;
}

const json* entry(const json& status, const std::string& id) {
  for (const auto& e : status["backups"])
    if (e["id"] == id) return &e;
  return nullptr;
}

TEST(CatalogPlan, StatusWithoutTheSyncMarkerGetsExactlyOneCatalogJobAndNoRetentionYet) {
  // A policy re-applied from git: its status lost everything but a stale
  // catalog that retention would act on.
  json stored = policy();
  json stale = json::array();
  for (int d = 10; d <= 20; ++d)
    stale.push_back({{"id", "full-" + std::to_string(d)}, {"type", "full"}, {"verified", false},
                     {"completionTime", "2026-11-" + std::to_string(d) + "T02:05:00Z"}});
  stored["status"]["backups"] = stale;
  auto p = plan_backup_policy(unsynced(stored, "2026-11-24T10:30:00Z"));
  const auto catalog = jobs_of(p, "catalog");
  ASSERT_EQ(catalog.size(), 1u);
  EXPECT_TRUE(jobs_of(p, "retain").empty()) << "retention waits for the catalog to match storage";
  const json& job = *catalog[0];
  EXPECT_EQ(job["metadata"]["name"], "db-catalog-202611240930");  // by the policy's creation: the same on every restart
  const json& c = job["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["args"], json({"run-job", "catalog"}));
  EXPECT_EQ(job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"], true);
  bool by_ref = false;
  for (const auto& e : c["env"])
    if (e["name"] == "WALG_AWS_SECRET_ACCESS_KEY") by_ref = e["valueFrom"]["secretKeyRef"]["name"] == "walg-storage";
  EXPECT_TRUE(by_ref) << c["env"].dump();
  EXPECT_EQ(job.dump().find("CANARY"), std::string::npos) << "secret values reach the pod by reference only";
  EXPECT_FALSE(p.status["schedules"].contains("catalog"));

  // The operator restarts (or the status write was lost): the same Job is seen, no second one.
  ObservedJob running = catalog_job("", State::kActive);
  running.finished.reset();
  auto again = plan_backup_policy(unsynced(stored, "2026-11-24T10:31:00Z", {running}));
  EXPECT_TRUE(jobs_of(again, "catalog").empty());
  EXPECT_TRUE(jobs_of(again, "retain").empty());
}

TEST(CatalogPlan, ResultRebuildsStatusBackupsThenRetentionWorksOnIt) {
  json stored = policy();  // status lost entirely
  const ObservedJob done = catalog_job(catalog_result(eleven_days()));
  auto p = plan_backup_policy(unsynced(stored, "2026-11-24T10:30:00Z", {done}));
  ASSERT_EQ(p.status["backups"].size(), 12u) << p.status["backups"].dump();
  EXPECT_EQ(p.status["schedules"]["catalog"]["lastScheduleTime"], "2026-11-24T09:30:00Z");
  EXPECT_TRUE(jobs_of(p, "catalog").empty());
  const json* newest = entry(p.status, "base_000000010000000000000024");
  ASSERT_TRUE(newest);
  EXPECT_EQ((*newest)["checksum"], "sha256:" + hex_of("base_000000010000000000000024"));
  EXPECT_EQ((*newest)["type"], "full");
  EXPECT_EQ((*newest)["completionTime"], "2026-11-24T02:05:00Z");
  EXPECT_EQ((*newest)["startTime"], "2026-11-24T02:03:00Z");
  EXPECT_EQ((*newest)["restorable"], true);
  const json* delta = entry(p.status, "base_000000010000000000000030_D_000000010000000000000024");
  ASSERT_TRUE(delta);
  EXPECT_EQ((*delta)["type"], "delta");
  EXPECT_EQ((*delta)["base"], "base_000000010000000000000024");
  EXPECT_EQ((*delta)["full"], "base_000000010000000000000024");
  EXPECT_EQ(p.status["lastSuccessfulBackup"]["id"], "base_000000010000000000000030_D_000000010000000000000024");
  bool rebuilt = false;
  for (const auto& e : p.events) rebuilt = rebuilt || e.reason == "CatalogRebuilt";
  EXPECT_TRUE(rebuilt);

  // Retention works on the rebuilt catalog at once: 7 daily (18..24) + weekly + monthly keep some, the rest go.
  const auto retain = jobs_of(p, "retain");
  ASSERT_EQ(retain.size(), 1u);
  std::string expire;
  for (const auto& e : (*retain[0])["spec"]["template"]["spec"]["containers"][0]["env"])
    if (e["name"] == "RETAIN_EXPIRE") expire = e["value"];
  // Daily keeps Nov 18..24; weekly the newest of each ISO week (24, 22, 15); monthly Nov 24.
  EXPECT_EQ(expire, "base_000000010000000000000014,base_000000010000000000000016,base_000000010000000000000017");
  EXPECT_EQ((*newest)["keptFor"], json({"daily", "weekly", "monthly"}));

  // Reading the same result again (the status write was lost, or the Job is still there) changes nothing.
  json written = stored;
  written["status"] = p.status;
  auto replay = plan_backup_policy(unsynced(written, "2026-11-24T10:31:00Z", {done}));
  EXPECT_EQ(replay.status["backups"], p.status["backups"]);
  EXPECT_TRUE(jobs_of(replay, "catalog").empty());
  auto crash = plan_backup_policy(unsynced(stored, "2026-11-24T10:31:00Z", {done}));
  EXPECT_EQ(crash.status["backups"], p.status["backups"]);
}

TEST(CatalogPlan, AVerifiedMarkerInStorageSurvivesTheRebuild) {
  json rows = eleven_days();
  rows[5][7] = bo::api::kCatalogRestorable | bo::api::kCatalogVerified;  // Nov 19: a verification left its marker
  const auto p = plan_backup_policy(unsynced(policy(), "2026-11-24T10:30:00Z", {catalog_job(catalog_result(rows))}));
  const json* verified = entry(p.status, "base_000000010000000000000019");
  ASSERT_TRUE(verified);
  EXPECT_EQ((*verified)["verified"], true);
  EXPECT_EQ(entry(p.status, "base_000000010000000000000020")->value("verified", true), false);
  // Retention keeps the newest verified backup, whatever else expires.
  const auto kept = (*verified)["keptFor"];
  EXPECT_NE(std::find(kept.begin(), kept.end(), "verified"), kept.end()) << kept.dump();

  // A catalog that was kept (status intact, the marker's verification recorded) gains the flag too.
  json stored = policy();
  stored["status"]["backups"] = json::array({{{"id", "base_000000010000000000000019"}, {"type", "full"},
                                              {"checksum", "sha256:" + hex_of("base_000000010000000000000019")},
                                              {"completionTime", "2026-11-19T02:05:00Z"}, {"verified", false},
                                              {"startLSN", "0/2000028"}}});
  const auto merged = plan_backup_policy(unsynced(stored, "2026-11-24T10:30:00Z", {catalog_job(catalog_result(rows))}));
  const json* kept_entry = entry(merged.status, "base_000000010000000000000019");
  ASSERT_TRUE(kept_entry);
  EXPECT_EQ((*kept_entry)["verified"], true);
  EXPECT_EQ((*kept_entry)["startLSN"], "0/2000028") << "what status knew beyond storage's listing is kept";
}

TEST(CatalogPlan, StorageDropsWhatItNoLongerHoldsButNotWhatCameAfterTheListing) {
  json stored = policy();
  stored["status"]["backups"] = json::array(
      {{{"id", "base_gone"}, {"type", "full"}, {"completionTime", "2026-11-23T02:05:00Z"}, {"verified", false}},
       {{"id", "base_after"}, {"type", "full"}, {"completionTime", "2026-11-24T10:00:45Z"}, {"verified", false}}});
  const json rows = json::array({row("base_000000010000000000000024", "2026-11-24T02:05:00Z")});
  auto p = plan_backup_policy(unsynced(stored, "2026-11-24T10:30:00Z", {catalog_job(catalog_result(rows))}));
  EXPECT_FALSE(entry(p.status, "base_gone"));
  EXPECT_TRUE(entry(p.status, "base_after")) << "finished after listedAt: a backup the listing could not see yet";
  EXPECT_TRUE(entry(p.status, "base_000000010000000000000024"));
  // A result that left backups out (no room in 4096 bytes) drops nothing it did not list.
  auto partial = plan_backup_policy(
      unsynced(stored, "2026-11-24T10:30:00Z", {catalog_job(catalog_result(rows, "2026-11-24T10:00:30Z", 40))}));
  EXPECT_TRUE(entry(partial.status, "base_gone"));
  bool warned = false;
  for (const auto& e : partial.events)
    warned = warned || (e.reason == "CatalogRebuilt" && e.type == "Warning" &&
                        e.message.find("39 backup(s) did not fit") != std::string::npos);
  EXPECT_TRUE(warned);
}

TEST(CatalogPlan, AFailedCatalogJobIsRecordedAndRetriedUnderANameOfItsOwn) {
  const ObservedJob failed = catalog_job(json{{"error", "wal-g backup-list failed (exit 1): no route to host"}}.dump(),
                                         State::kFailed, "2026-11-24T09:30:00Z", "2026-11-24T10:02:40Z");
  auto p = plan_backup_policy(unsynced(policy(), "2026-11-24T10:03:00Z", {failed}));
  const auto retry = jobs_of(p, "catalog");
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ((*retry[0])["metadata"]["name"], "db-catalog-202611241002");
  EXPECT_EQ(p.status["recentRuns"][0]["result"], "Failed");
  EXPECT_NE(p.status["recentRuns"][0]["message"].get<std::string>().find("no route to host"), std::string::npos);
  EXPECT_FALSE(p.status["schedules"].contains("catalog"));
  // An invalid result is a failed sync too: nothing is read from it.
  const auto bad = plan_backup_policy(unsynced(policy(), "2026-11-24T10:03:00Z", {catalog_job("{\"backups\": 3}")}));
  EXPECT_FALSE(bad.status["schedules"].contains("catalog"));
  EXPECT_EQ(bad.status["recentRuns"][0]["result"], "Failed");
  EXPECT_NE(bad.status["recentRuns"][0]["message"].get<std::string>().find("InvalidResult"), std::string::npos);
  // ...and is retried under a name of its own, as a failed Job is.
  const ObservedJob unreadable = catalog_job("{\"backups\": 3}");
  const auto bad_retry = jobs_of(bad, "catalog");
  ASSERT_EQ(bad_retry.size(), 1u);
  EXPECT_NE((*bad_retry[0])["metadata"]["name"], unreadable.name);
  // Catalog Jobs carry no TTL: the newest attempt names the next one, so it stays
  // until history limits remove it (a TTL that deleted every failed attempt would
  // bring the first name back: one Job name, two Jobs).
  EXPECT_FALSE((*retry[0])["spec"].contains("ttlSecondsAfterFinished")) << retry[0]->dump();
}

// A catalog sync that keeps failing backs off: the wait doubles the gap
// between the two newest failed attempts, from a minute to an hour, and the
// policy is woken when the retry is due (not a Job every minute forever).
TEST(CatalogPlan, FailedCatalogSyncsBackOffUpToAnHour) {
  const std::string err = json{{"error", "wal-g backup-list failed (exit 1): no route to host"}}.dump();
  // Attempts at 10:00 and 10:02 failed: the next waits 4 minutes, until 10:06.
  const std::vector<ObservedJob> two = {catalog_job(err, State::kFailed, "2026-11-24T10:00:00Z", "2026-11-24T10:00:10Z"),
                                        catalog_job(err, State::kFailed, "2026-11-24T10:02:00Z", "2026-11-24T10:02:10Z")};
  const auto early = plan_backup_policy(unsynced(policy(), "2026-11-24T10:03:00Z", two));
  EXPECT_TRUE(jobs_of(early, "catalog").empty());
  ASSERT_TRUE(early.requeue_after);
  EXPECT_LE(*early.requeue_after, std::chrono::minutes(3) + std::chrono::milliseconds(10));
  EXPECT_GE(*early.requeue_after, std::chrono::minutes(3));
  const auto due = plan_backup_policy(unsynced(policy(), "2026-11-24T10:06:05Z", two));
  const auto retry = jobs_of(due, "catalog");
  ASSERT_EQ(retry.size(), 1u);
  EXPECT_EQ((*retry[0])["metadata"]["name"], "db-catalog-202611241006");
  // Gaps of an hour or more wait an hour.
  const std::vector<ObservedJob> far = {catalog_job(err, State::kFailed, "2026-11-24T08:00:00Z", "2026-11-24T08:00:10Z"),
                                        catalog_job(err, State::kFailed, "2026-11-24T10:00:00Z", "2026-11-24T10:00:10Z")};
  EXPECT_TRUE(jobs_of(plan_backup_policy(unsynced(policy(), "2026-11-24T10:59:00Z", far)), "catalog").empty());
  const auto after_an_hour = plan_backup_policy(unsynced(policy(), "2026-11-24T11:00:00Z", far));
  const auto hour = jobs_of(after_an_hour, "catalog");
  ASSERT_EQ(hour.size(), 1u);
  EXPECT_EQ((*hour[0])["metadata"]["name"], "db-catalog-202611241100");
  // Other Jobs finishing meanwhile never push the two newest attempts out of
  // the history limits (3): the backoff would start over at a minute.
  std::vector<ObservedJob> busy = two;
  for (int m = 3; m <= 5; ++m) {
    ObservedJob b = catalog_job("{}", State::kFailed, "2026-11-24T10:00:00Z", "2026-11-24T10:05:00Z");
    b.action = "backup";
    b.name = "db-backup-20261124100" + std::to_string(m);
    b.slot = at(("2026-11-24T10:0" + std::to_string(m) + ":00Z").c_str());
    b.finished = b.slot + std::chrono::seconds(30);
    busy.push_back(b);
  }
  busy.push_back(busy.back());
  busy.back().name = "db-backup-202611241006";
  const auto pruned = plan_backup_policy(unsynced(policy(), "2026-11-24T10:06:40Z", busy));
  for (const auto& name : pruned.remove) EXPECT_EQ(name.find("catalog"), std::string::npos) << name;
  EXPECT_FALSE(pruned.remove.empty()) << "the oldest backup Job goes";
}

TEST(CatalogPlan, ASyncedCatalogStartsNoCatalogJobAndSuspendStartsNone) {
  auto synced = plan_backup_policy(plan_fixtures::plan_inputs(policy(), secrets(), "2026-11-24T10:30:00Z", {}));
  EXPECT_TRUE(jobs_of(synced, "catalog").empty());
  auto suspended = plan_backup_policy(unsynced(policy({{"suspend", true}}), "2026-11-24T10:30:00Z"));
  EXPECT_TRUE(suspended.create.empty());
  // With catalog sync off (PlanInputs::sync_catalog), no catalog Job, and retention does not wait.
  json stored = policy();
  for (int d = 10; d <= 20; ++d)
    stored["status"]["backups"].push_back({{"id", "full-" + std::to_string(d)}, {"type", "full"}, {"verified", false},
                                           {"completionTime", "2026-11-" + std::to_string(d) + "T02:05:00Z"}});
  auto in = unsynced(stored, "2026-11-24T10:30:00Z");
  in.sync_catalog = false;
  const auto off = plan_backup_policy(in);
  EXPECT_TRUE(jobs_of(off, "catalog").empty());
  EXPECT_EQ(jobs_of(off, "retain").size(), 1u);
}

TEST(CatalogPlan, StatusBackupsKeepsTheNewest400) {
  // More than the cap (retention set very long): the newest 400 stay, with an Event saying so.
  json stored = policy({{"retention", {{"daily", 1000}}}});
  json many = json::array();
  auto t = at("2025-01-01T02:05:00Z");
  for (int i = 0; i < 450; ++i, t += std::chrono::hours(24))
    many.push_back({{"id", "full-" + std::to_string(1000 + i)}, {"type", "full"}, {"verified", false},
                    {"restorable", true}, {"completionTime", bo::format_rfc3339(t)}});
  stored["status"]["backups"] = many;
  const auto p = plan_backup_policy(plan_fixtures::plan_inputs(stored, secrets(), "2026-11-24T10:30:00Z", {}));
  ASSERT_EQ(p.status["backups"].size(), 400u);
  EXPECT_EQ(p.status["backups"][0]["id"], "full-1449");
  EXPECT_EQ(p.status["backups"][399]["id"], "full-1050");
  bool said = false;
  for (const auto& e : p.events) said = said || e.reason == "CatalogTruncated";
  EXPECT_TRUE(said);
}

TEST(CatalogResult, BasesByIndexOrNameAndBadRowsNamed) {
  const auto r = bo::api::parse_catalog_result(catalog_result(eleven_days(), "2026-11-24T10:00:30Z", 15));
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->listed, 15);
  ASSERT_EQ(r->entries.size(), 12u);
  EXPECT_EQ(r->entries[11].base, "base_000000010000000000000024");
  EXPECT_EQ(r->entries[11].type, "delta");
  EXPECT_TRUE(r->entries[0].restorable);
  EXPECT_FALSE(r->entries[0].verified);
  json by_name = json::array({row("base_000000010000000000000030_D_000000010000000000000024", "2026-11-24T03:05:00Z",
                                  "base_000000010000000000000024", "base_000000010000000000000024", 0)});
  const auto n = bo::api::parse_catalog_result(catalog_result(by_name));
  ASSERT_TRUE(n) << n.error();
  EXPECT_EQ(n->entries[0].base, "base_000000010000000000000024");
  EXPECT_FALSE(n->entries[0].restorable);
  json bad_index = json::array({row("base_000000010000000000000030_D_1", "2026-11-24T03:05:00Z", 7, 7)});
  EXPECT_NE(bo::api::parse_catalog_result(catalog_result(bad_index)).error().find("result.backups[0]"), std::string::npos);
  json bad_sum = json::array({row("base_1", "2026-11-24T03:05:00Z")});
  bad_sum[0][1] = "sha256:abc";
  EXPECT_NE(bo::api::parse_catalog_result(catalog_result(bad_sum)).error().find("checksum"), std::string::npos);
  EXPECT_FALSE(bo::api::parse_catalog_result(R"({"listed": 0, "backups": []})"));  // no listedAt
  const auto empty = bo::api::parse_catalog_result(catalog_result(json::array(), "2026-11-24T10:00:30Z", 0));
  ASSERT_TRUE(empty) << empty.error();  // empty storage: a valid, empty catalog
  EXPECT_TRUE(empty->entries.empty());
}

// A year of hourly backups under the default schedule (a full at 02:00, a
// delta every other hour, chained on the previous backup) and the default
// retention (7 daily + 4 weekly + 3 monthly), through the planner: each day's
// 24 backup Jobs' results enter the catalog in one pass (so the size is
// measured before that day's retention, the larger side), and whenever the
// planner asks for a retain Job, its deletions come back in the next pass.
// Prints the size of status (bytes of its JSON) and asserts the bound.
TEST(CatalogPlan, StatusStaysBoundedOverAYearOfHourlyBackups) {
  json stored = policy({{"verification", {{"enabled", false}}}});
  auto t = at("2026-01-01T00:00:00Z");
  std::string full_id, prev_id;
  size_t most_entries = 0, most_bytes = 0;
  uint64_t segment = 2;
  std::vector<ObservedJob> pending_retain;
  for (int day = 0; day < 365; ++day) {
    std::vector<ObservedJob> jobs = pending_retain;
    pending_retain.clear();
    bo::SysTime finish;
    for (int hour = 0; hour < 24; ++hour, t += std::chrono::hours(1)) {
      const bool full = hour == 2 || full_id.empty();
      char seg[25];
      std::snprintf(seg, sizeof seg, "%08X%08X%08X", 1u, static_cast<unsigned>(segment >> 8),
                    static_cast<unsigned>(segment & 0xff));
      ++segment;
      const std::string id = full ? "base_" + std::string(seg) : "base_" + std::string(seg) + "_D_" + prev_id.substr(5, 24);
      finish = t + std::chrono::minutes(3);
      json result{{"backupId", id}, {"checksum", "sha256:" + hex_of(id)}, {"type", full ? "full" : "delta"},
                  {"base", full ? "" : prev_id}, {"full", full ? "" : full_id}, {"startLsn", "1/2000028"},
                  {"finishLsn", "1/2000138"}, {"walArchived", true}, {"startTime", bo::format_rfc3339(t)},
                  {"finishTime", bo::format_rfc3339(finish)}, {"sizeBytes", 123456789}, {"uncompressedBytes", 987654321}};
      if (full) full_id = id;
      prev_id = id;
      jobs.push_back({"db-run-" + std::to_string(day) + "-" + std::to_string(hour), full ? "full-backup" : "backup", t,
                      State::kSucceeded, result.dump(), "", finish, {}, ""});
    }
    const std::string now = bo::format_rfc3339(finish + std::chrono::minutes(1));
    auto p = plan_backup_policy(plan_fixtures::plan_inputs(stored, secrets(), now.c_str(), jobs));
    stored["status"] = p.status;
    for (const auto& c : p.create) {
      if (c["metadata"]["labels"]["backup.si.dev/action"] != "retain") continue;
      pending_retain.push_back({c["metadata"]["name"], "retain", finish, State::kSucceeded, "", "",
                                finish + std::chrono::minutes(2),
                                split_ids(c["metadata"]["annotations"][kAnnotationExpire].get<std::string>()), ""});
    }
    most_entries = std::max(most_entries, p.status["backups"].size());
    most_bytes = std::max(most_bytes, p.status.dump().size());
  }
  const size_t bytes = stored["status"].dump().size();
  std::cout << "after a year of hourly backups (default retention): status.backups has "
            << stored["status"]["backups"].size() << " entries, status is " << bytes << " bytes of JSON (at most "
            << most_entries << " entries, " << most_bytes << " bytes over the year)\n";
  EXPECT_LE(most_entries, kMaxCatalog);  // the controller's cap
  EXPECT_LT(most_bytes, size_t{256} * 1024) << "status must stay far below the API server's 1.5 MiB object limit";
}

}  // namespace

// A verification's own Secret is read-only by policy, so it cannot leave its
// marker in storage: the next backup Job writes it with the storage Secret's
// credentials (VERIFIED_MARKERS), and its result says which it wrote.
TEST(CatalogPlan, AVerifiedBackupsMarkerIsWrittenByTheNextBackupJobAndRecorded) {
  const std::string id = "base_000000010000000000000019";
  const std::string sum = "sha256:" + hex_of(id);
  json stored = policy();
  stored["status"]["backups"] = json::array({{{"id", id}, {"type", "full"}, {"checksum", sum}, {"restorable", true},
                                              {"completionTime", "2026-11-24T02:05:00Z"}, {"verified", true},
                                              {"verifiedBy", "db-verify-202611240400"}}});
  auto markers_env = [](const PolicyPlan& p) -> std::optional<std::string> {
    for (const auto& j : p.create) {
      const std::string action = j["metadata"]["labels"].value("backup.si.dev/action", "");
      if (action != "backup" && action != "full-backup") continue;
      for (const auto& c : j["spec"]["template"]["spec"]["containers"])
        for (const auto& e : c.value("env", json::array()))
          if (e.value("name", "") == kVerifiedMarkersEnv) return e.value("value", "");
      return std::string();
    }
    return std::nullopt;  // no backup Job
  };
  const auto first = plan_backup_policy(plan_fixtures::plan_inputs(stored, secrets(), "2026-11-24T11:00:05Z", {}));
  ASSERT_EQ(markers_env(first), id + "@" + sum + "@db-verify-202611240400");

  // The Job reports the marker written: the entry says so, and the next Job carries none.
  ObservedJob done;
  done.name = first.create[0]["metadata"]["name"];
  done.action = first.create[0]["metadata"]["labels"]["backup.si.dev/action"];
  done.slot = at("2026-11-24T11:00:00Z");
  done.finished = at("2026-11-24T11:02:00Z");
  done.state = State::kSucceeded;
  done.termination_message =
      json{{"backupId", "base_000000010000000000000021"}, {"checksum", "sha256:" + hex_of("21")}, {"type", "full"},
           {"walArchived", true}, {"startTime", "2026-11-24T11:00:01Z"}, {"finishTime", "2026-11-24T11:01:50Z"},
           {"sizeBytes", 4096}, {"markers", {id}}}
          .dump();
  const auto second = plan_backup_policy(plan_fixtures::plan_inputs(stored, secrets(), "2026-11-24T11:05:00Z", {done}));
  ASSERT_TRUE(entry(second.status, id));
  EXPECT_EQ(entry(second.status, id)->value("verifiedMarker", false), true) << second.status["backups"].dump();
  json later = stored;
  later["status"] = second.status;
  const auto third = plan_backup_policy(plan_fixtures::plan_inputs(later, secrets(), "2026-11-24T12:00:05Z", {done}));
  EXPECT_EQ(markers_env(third), "") << "a backup Job, with no marker left to write";

  // A result whose markers are not backup ids is refused, naming the field.
  json bad = json::parse(done.termination_message);
  bad["markers"] = {"../x"};
  const auto refused = bo::api::parse_job_result(bad.dump());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error(), "result.markers: must be an array of backup ids");
}
