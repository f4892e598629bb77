#include "reconcile/backup_policy_plan.h"

#include <date/tz.h>

#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "api/job_result.h"
#include "common/duration.h"
#include "common/timefmt.h"
#include "kube/names.h"
#include "reconcile/conditions.h"
#include "reconcile/continuous_archiving.h"
#include "reconcile/retention.h"

namespace bo::reconcile {
namespace {

using json = nlohmann::json;
constexpr size_t kRecentRuns = 20;

bool is_backup_action(const std::string& a) { return a == "backup" || a == "full-backup"; }

// status.backups holds at most kMaxCatalog entries, newest first. Retention
// bounds the catalog first (a year of hourly deltas and daily fulls under
// the default 7 daily + 4 weekly + 3 monthly peaks at 310 entries, 163 KB of
// status: the deltas of each kept full live as long as it does; measured by
// CatalogPlan.StatusStaysBoundedOverAYearOfHourlyBackups); the cap holds
// status far under the API server's object size whatever the retention. What falls off is still
// in storage, which the catalog Job reads back (run-job catalog).
// bounded_catalog is the backstop where status.backups is written (the CRD's maxItems).
json bounded_catalog(json catalog) {
  if (catalog.is_array() && catalog.size() > kMaxCatalog) catalog.erase(catalog.begin() + kMaxCatalog, catalog.end());
  return catalog;
}

// The catalog is in step with storage once a catalog Job's result has been
// read into status.backups: status.schedules.catalog.lastScheduleTime holds
// that Job's slot. Its absence is the trigger for a sync: a new policy, one
// re-applied from git or restored by Velero without its status, or one from
// before the catalog Job existed. (schedules is a map in the CRD's schema, so
// the marker survives the API server's pruning without a schema change.)
bool catalog_synced(const json& status) {
  const json s = status.value("schedules", json::object());
  return s.is_object() && s.value("catalog", json::object()).is_object() &&
         !s.value("catalog", json::object()).value("lastScheduleTime", "").empty();
}

// A catalog Job's result merged into status.backups: storage is the source
// of truth. A backup storage holds and status lacks is added; one status
// has keeps its entry (it knows more: LSNs, who verified it), takes the
// storage's checksum if they differ, and becomes verified when storage holds
// a verification's marker for it; an entry storage no longer holds is
// dropped when the result listed everything and the backup finished before
// the listing (a backup recorded after it is not in the listing yet).
void merge_catalog(json& catalog, const api::CatalogResult& from, const std::string& job) {
  std::map<std::string, const api::CatalogEntry*> stored;
  for (const auto& e : from.entries) stored[e.backup_id] = &e;
  std::set<std::string> known;
  const bool complete = from.listed == static_cast<int>(from.entries.size());
  const std::string listed_at = format_rfc3339(from.listed_at);
  json kept = json::array();
  for (auto& e : catalog) {
    const std::string id = e.value("id", "");
    auto it = stored.find(id);
    if (it == stored.end()) {
      if (!complete || e.value("completionTime", "") > listed_at) kept.push_back(e);
      continue;
    }
    known.insert(id);
    if (e.value("checksum", "") != it->second->checksum) {
      e["checksum"] = it->second->checksum;
      e["verified"] = false;
      e.erase("verifiedBy");
      e.erase("verifiedMarker");
    }
    if (it->second->verified) e["verified"] = e["verifiedMarker"] = true;
    kept.push_back(e);
  }
  for (const auto& b : from.entries) {
    if (known.count(b.backup_id)) continue;
    json entry{{"id", b.backup_id},           {"checksum", b.checksum},
               {"type", b.type},              {"startTime", format_rfc3339(b.start)},
               {"completionTime", format_rfc3339(b.finish)}, {"sizeBytes", b.size_bytes},
               {"verified", b.verified},      {"verifiedMarker", b.verified}, {"restorable", b.restorable},
               {"keptFor", json::array()},    {"job", job}};
    if (!b.base.empty()) entry["base"] = b.base;
    if (!b.full.empty()) entry["full"] = b.full;
    if (!b.restorable) entry["notRestorableReason"] = "the WAL from its start to its finish LSN was not all in storage "
                                                      "when the catalog was read back from storage";
    kept.push_back(entry);
  }
  catalog = kept;
}

// Bundles recorded per context in status.paasState.bundles (a day of hourly bundles).
constexpr size_t kStateBundlesPerContext = 24;

// A condition that follows the newest recorded run of some actions (recent
// runs are newest first): Unknown before any, True after a success, False
// with the Job's failure otherwise.
template <class Cond>
void run_health(const json& recent, const std::function<bool(const std::string&)>& of_action, const char* type,
                std::pair<const char*, const char*> none, const char* ok_reason, const char* failed_reason,
                const Cond& cond) {
  for (const auto& r : recent) {
    if (!of_action(r.value("action", ""))) continue;
    if (r.value("result", "") == "Succeeded")
      cond(type, "True", ok_reason, "Job " + r.value("job", "") + " succeeded");
    else
      cond(type, "False", failed_reason, "Job " + r.value("job", "") + " failed: " + r.value("message", ""));
    return;
  }
  cond(type, "Unknown", none.first, none.second);
}

std::string join_messages(const std::vector<api::Problem>& ps) {
  std::string out;
  for (const auto& p : ps) out += (out.empty() ? "" : "; ") + p.message;
  return out;
}

// Reconciling and Stalled (kstatus) from Ready and what is still in
// progress: Ready=False needs a human (a bad spec, a missing Secret, claim or
// workload), except a data volume check the API server failed, which is
// retried in the background; Ready=Unknown is a check still pending.
Progress policy_progress(const json& conditions, const Progress& acting) {
  using State = Progress::State;
  const json* ready = find_condition(conditions, "Ready");
  if (!ready) return {State::kReconciling, "Pending", "the operator has not judged this generation yet"};
  const std::string st = ready->value("status", ""), reason = ready->value("reason", ""), msg = ready->value("message", "");
  if (st == "False") return {reason == "DataVolumeCheckFailed" ? State::kReconciling : State::kStalled, reason, msg};
  if (st != "True") return {State::kReconciling, reason, msg};
  return acting;
}

}  // namespace

PolicyPlan plan_backup_policy(const PlanInputs& in) {
  PolicyPlan plan;
  const json& meta = in.policy.at("metadata");
  const std::string ns = meta.value("namespace", "");
  const int64_t gen = meta.value("generation", int64_t{0});
  json status = in.policy.value("status", json::object());
  if (!status.is_object()) status = json::object();
  json conditions = status.value("conditions", json::array());
  auto cond = [&](const char* type, const char* st, const std::string& reason, const std::string& msg) {
    set_condition(conditions, type, st, reason, msg, gen, in.now);
  };
  // What the operator is still doing for this generation (Reconciling), found below.
  Progress acting;
  auto finish = [&]() -> PolicyPlan& {
    set_progress(conditions, policy_progress(conditions, acting), gen, in.now);
    status["conditions"] = conditions;
    status["observedGeneration"] = gen;
    plan.status = status;
    return plan;
  };

  auto spec = api::parse_backup_policy_spec(in.policy.value("spec", json::object()));
  if (!spec) {
    cond("Ready", "False", spec.error().reason, spec.error().message);
    return finish();
  }

  // --- outcomes of finished runs: recorded once, even while the spec is invalid ---
  json recent = status.value("recentRuns", json::array());
  json catalog = status.value("backups", json::array());
  json state_bundles = status.value("paasState", json::object()).value("bundles", json::array());
  const size_t state_bundles_before = state_bundles.size();
  std::set<std::string> recorded;
  for (const auto& r : recent) recorded.insert(r.value("job", ""));
  std::vector<const ObservedJob*> finished;
  for (const auto& j : in.jobs)
    if (j.state != ObservedJob::State::kActive) finished.push_back(&j);
  std::sort(finished.begin(), finished.end(),
            [](const ObservedJob* a, const ObservedJob* b) { return a->slot < b->slot; });
  for (const ObservedJob* j : finished) {
    if (recorded.count(j->name)) continue;
    json run{{"job", j->name}, {"action", j->action},
             {"completionTime", format_rfc3339(j->finished.value_or(in.now))}};
    bool ok = j->state == ObservedJob::State::kSucceeded;
    std::string why = j->failure;
    // run-job writes {"error": "..."} when it fails: the actionable part.
    if (!ok) {
      const json t = json::parse(j->termination_message, nullptr, false);
      if (t.is_object() && t.contains("error") && t["error"].is_string())
        why = t["error"].get<std::string>() + (why.empty() ? "" : " (" + why + ")");
    }
    double seconds = 0;
    if (ok && is_backup_action(j->action)) {
      auto result = api::parse_job_result(j->termination_message);
      if (!result) {
        ok = false;
        why = "InvalidResult: " + result.error();
      } else {
        seconds = std::chrono::duration<double>(result->finish - result->start).count();
        json entry{{"id", result->backup_id},       {"checksum", result->checksum},
                   {"type", result->type},          {"startTime", format_rfc3339(result->start)},
                   {"completionTime", format_rfc3339(result->finish)},
                   {"sizeBytes", result->size_bytes}, {"verified", false},
                   {"restorable", result->wal_archived},
                   {"keptFor", json::array()},      {"job", j->name}};
        if (result->uncompressed_bytes > 0) entry["uncompressedBytes"] = result->uncompressed_bytes;
        if (!result->base.empty()) entry["base"] = result->base;
        if (!result->full.empty()) entry["full"] = result->full;
        if (result->delta_count > 0) entry["deltaCount"] = result->delta_count;
        if (!result->start_lsn.empty()) entry["startLSN"] = result->start_lsn;
        if (!result->finish_lsn.empty()) entry["finishLSN"] = result->finish_lsn;
        if (!result->wal_archived)
          entry["notRestorableReason"] = result->wal_message.empty() ? "WALNotArchived" : result->wal_message.substr(0, 512);
        const bool known = std::any_of(catalog.begin(), catalog.end(),
                                       [&](const json& e) { return e.value("id", "") == result->backup_id; });
        if (!known) catalog.push_back(entry);
        // The verified markers this Job left in storage (VERIFIED_MARKERS).
        for (auto& e : catalog)
          if (e.value("verified", false) &&
              std::find(result->markers.begin(), result->markers.end(), e.value("id", "")) != result->markers.end())
            e["verifiedMarker"] = true;
        if (result->wal_archived) {
          const auto last = status.value("lastSuccessfulBackup", json::object());
          if (last.value("completionTime", "") <= entry.value("completionTime", ""))
            status["lastSuccessfulBackup"] = {{"id", result->backup_id}, {"checksum", result->checksum},
                                              {"type", result->type}, {"completionTime", entry["completionTime"]}};
          plan.events.push_back({"Normal", "BackupSucceeded",
                                 "Job " + j->name + " made " + result->type + " backup " + result->backup_id + " (" +
                                     result->checksum.substr(0, 19) + "…)"});
        } else {
          // wal-g pushed the files, but without the WAL up to its finish LSN
          // nothing can restore them: a run that did not protect anything.
          ok = false;
          why = "BackupNotRestorable: backup " + result->backup_id + " was pushed but " +
                (result->wal_message.empty() ? std::string("the WAL it needs is not archived") : result->wal_message);
        }
      }
    } else if (ok && j->action == "offsite-copy") {
      auto copy = api::parse_offsite_copy_result(j->termination_message);
      if (!copy) {
        ok = false;
        why = "InvalidResult: " + copy.error();
      } else {
        // immutableUntil only as the offsite store reported it; otherwise why not.
        json last{{"id", copy->backup_id},
                  {"completionTime", format_rfc3339(j->finished.value_or(in.now))},
                  {"job", j->name}};
        if (!copy->checksum.empty()) last["checksum"] = copy->checksum;
        std::string text = "Job " + j->name + " copied backup " + copy->backup_id +
                           " offsite, restorable from the offsite storage alone; ";
        if (copy->immutable_until) {
          last["immutableUntil"] = format_rfc3339(*copy->immutable_until);
          last["retentionMode"] = copy->retention_mode;
          text += "Object Lock " + copy->retention_mode + " retention until " + last["immutableUntil"].get<std::string>() +
                  " (read back from the store)";
        } else {
          last["immutability"] = {{"reason", copy->immutability_reason},
                                  {"message", copy->immutability_message.substr(0, 512)}};
          text += "immutability unverified (" + copy->immutability_reason + "): " + copy->immutability_message.substr(0, 512);
        }
        status["lastOffsiteCopy"] = last;
        plan.events.push_back({copy->immutable_until ? "Normal" : "Warning", "OffsiteCopied", text});
      }
    } else if (ok && j->action == "state-bundle") {
      const json t = json::parse(j->termination_message, nullptr, false);
      const json* list = t.is_object() && t.contains("bundles") && t["bundles"].is_array() ? &t["bundles"] : nullptr;
      if (!list || list->empty()) {
        ok = false;
        why = "InvalidResult: a state-bundle Job must report {\"bundles\": [{context, id, sha256, files, size}]}";
      } else {
        json& bundles = state_bundles;
        for (const auto& b : *list) {
          if (!b.is_object() || !b.value("id", json()).is_string() || !b.value("sha256", json()).is_string()) continue;
          const std::string id = b["id"];
          if (std::any_of(bundles.begin(), bundles.end(), [&](const json& e) { return e.value("id", "") == id; })) continue;
          bundles.push_back({{"context", b.value("context", "")}, {"id", id}, {"sha256", b["sha256"]},
                             {"files", b.value("files", 0)}, {"sizeBytes", b.value("size", 0)},
                             {"completionTime", format_rfc3339(j->finished.value_or(in.now))}, {"job", j->name}});
          plan.events.push_back({"Normal", "StateBundled",
                                 "Job " + j->name + " bundled context " + b.value("context", "") + " as " + id + " (" +
                                     std::to_string(b.value("files", 0)) + " files, sha256 " +
                                     b["sha256"].get<std::string>().substr(0, 12) + "…)"});
        }
      }
    } else if (ok && j->action == "catalog") {
      // Read into status.backups below, whether recorded now or before.
      auto result = api::parse_catalog_result(j->termination_message);
      if (!result) {
        ok = false;
        why = "InvalidResult: " + result.error();
      }
    } else if (ok && j->action == "retain") {
      // What storage no longer holds after the Job (wal-g's delete target
      // also removes a full's deltas); the ids it was asked for otherwise.
      std::set<std::string> gone(j->expire.begin(), j->expire.end());
      const json t = json::parse(j->termination_message, nullptr, false);
      if (t.is_object() && t.contains("deleted") && t["deleted"].is_array())
        for (const auto& id : t["deleted"])
          if (id.is_string()) gone.insert(id.get<std::string>());
      const size_t before = catalog.size();
      catalog.erase(std::remove_if(catalog.begin(), catalog.end(),
                                   [&](const json& e) { return gone.count(e.value("id", "")) > 0; }),
                    catalog.end());
      plan.events.push_back({"Normal", "RetentionApplied", "Job " + j->name + " deleted " +
                                                               std::to_string(before - catalog.size()) +
                                                               " expired backup(s)"});
    } else if (ok) {
      plan.events.push_back({"Normal", "RunSucceeded", "Job " + j->name + " (" + j->action + ") succeeded"});
    }
    if (!ok) {
      if (why.empty()) why = "the Job failed";
      run["message"] = why.substr(0, 512);
      plan.events.push_back({"Warning", is_backup_action(j->action) ? "BackupFailed" : "RunFailed",
                             "Job " + j->name + " (" + j->action + ") failed: " + why.substr(0, 512)});
    }
    run["result"] = ok ? "Succeeded" : "Failed";
    plan.finished_runs.push_back({j->action, ok ? "success" : "failure", seconds});
    recent.insert(recent.begin(), run);
    recorded.insert(j->name);
  }
  while (recent.size() > kRecentRuns) recent.erase(recent.end() - 1);
  // --- the catalog read back from storage: the first succeeded catalog Job while the marker is missing ---
  if (!catalog_synced(status)) {
    for (const ObservedJob* j : finished) {
      if (j->action != "catalog" || j->state != ObservedJob::State::kSucceeded) continue;
      auto result = api::parse_catalog_result(j->termination_message);
      if (!result) continue;
      const size_t before = catalog.size();
      merge_catalog(catalog, *result, j->name);
      status["schedules"]["catalog"]["lastScheduleTime"] = format_rfc3339(j->slot);
      // A status that lost lastSuccessfulBackup gets the newest restorable backup storage holds.
      if (!status.contains("lastSuccessfulBackup")) {
        const json* newest = nullptr;
        for (const auto& e : catalog)
          if (e.value("restorable", false) &&
              (!newest || e.value("completionTime", "") > newest->value("completionTime", "")))
            newest = &e;
        if (newest)
          status["lastSuccessfulBackup"] = {{"id", newest->value("id", "")},
                                            {"checksum", newest->value("checksum", "")},
                                            {"type", newest->value("type", "full")},
                                            {"completionTime", newest->value("completionTime", "")}};
      }
      const size_t left_out = static_cast<size_t>(result->listed) - result->entries.size();
      plan.events.push_back(
          {left_out ? "Warning" : "Normal", "CatalogRebuilt",
           "Job " + j->name + " read the catalog back from storage: " + std::to_string(result->listed) +
               " backup(s) there, status.backups went from " + std::to_string(before) + " to " +
               std::to_string(catalog.size()) + " entries" +
               (left_out ? "; " + std::to_string(left_out) +
                               " backup(s) did not fit the Job's 4096-byte result (fulls go first; wal-g deletes a full's deltas with it)"
                         : "")});
      break;
    }
  }
  std::sort(catalog.begin(), catalog.end(), [](const json& a, const json& b) {
    return a.value("completionTime", "") > b.value("completionTime", "");
  });
  if (catalog.size() > kMaxCatalog) {
    plan.events.push_back({"Warning", "CatalogTruncated",
                           "status.backups keeps the newest " + std::to_string(kMaxCatalog) + " of " +
                               std::to_string(catalog.size()) +
                               " backups; the older ones are still in storage, outside retention's view (lower "
                               "spec.retention, or delete them with wal-g)"});
    catalog.erase(catalog.begin() + kMaxCatalog, catalog.end());
  }
  // --- verification and drill outcomes (RestoreRequests naming this policy) ---
  auto is_final = [](const std::string& phase) { return phase == "Succeeded" || phase == "Failed" || phase == "Blocked"; };
  for (const auto& r : in.restores) {
    if (!is_final(r.phase) || !r.completion) continue;
    const std::string done_at = format_rfc3339(*r.completion);
    if (r.purpose == "verification" && r.owned) {
      const json last = status.value("lastVerification", json::object());
      if (last.value("completionTime", "") < done_at ||
          (last.value("completionTime", "") == done_at && last.value("request", "") != r.name)) {
        status["lastVerification"] = {{"request", r.name}, {"result", r.phase == "Succeeded" ? "Succeeded" : "Failed"},
                                      {"backupId", r.backup_id}, {"completionTime", done_at}};
        if (r.phase != "Succeeded") status["lastVerification"]["message"] = r.message.substr(0, 512);
      }
      if (r.phase != "Succeeded") continue;
      for (auto& e : catalog) {
        if (e.value("id", "") != r.backup_id || e.value("checksum", "") != r.checksum) continue;
        if (!e.value("verified", false)) {
          e["verified"] = true;
          e["verifiedBy"] = r.name;
          plan.events.push_back({"Normal", "BackupVerified",
                                 "backup " + r.backup_id + " restored and validated by RestoreRequest " + r.name});
        }
        const json lv = status.value("lastVerifiedBackup", json::object());
        if (lv.value("verifiedAt", "") < done_at)
          status["lastVerifiedBackup"] = {{"id", r.backup_id}, {"checksum", r.checksum}, {"type", e.value("type", "full")},
                                          {"completionTime", e.value("completionTime", "")}, {"verifiedAt", done_at},
                                          {"request", r.name}};
      }
    } else if (r.purpose == "drill" && r.phase == "Succeeded") {
      if (status.value("lastDrill", json::object()).value("completionTime", "") < done_at)
        status["lastDrill"] = {{"request", r.name}, {"backupId", r.backup_id}, {"completionTime", done_at}};
    }
  }
  status["recentRuns"] = recent;
  status["backups"] = bounded_catalog(catalog);
  if (state_bundles.size() != state_bundles_before) {
    // Newest first; the newest kStateBundlesPerContext of each context stay.
    std::stable_sort(state_bundles.begin(), state_bundles.end(), [](const json& a, const json& b) {
      return a.value("completionTime", "") > b.value("completionTime", "");
    });
    std::map<std::string, size_t> per_context;
    json kept = json::array();
    for (const auto& b : state_bundles)
      if (++per_context[b.value("context", "")] <= kStateBundlesPerContext && kept.size() < kMaxStateBundles)
        kept.push_back(b);
    status["paasState"]["bundles"] = kept;
  }

  // BackupHealthy follows the newest finished backup run.
  run_health(recent, is_backup_action, "BackupHealthy", {"NoBackupYet", "no backup has finished yet"},
             "LastBackupSucceeded", "BackupFailed", cond);

  // History limits: finished Jobs already recorded, oldest first out. While
  // the catalog is not synced, its two newest attempts stay whatever else
  // ran since: they name the next attempt and set its backoff.
  const bool catalog_pending = in.sync_catalog && !catalog_synced(status);
  int kept_ok = 0, kept_failed = 0, kept_catalog = 0;
  for (auto it = finished.rbegin(); it != finished.rend(); ++it) {
    const ObservedJob* j = *it;
    if (catalog_pending && j->action == "catalog" && ++kept_catalog <= 2) continue;
    const bool ok = j->state == ObservedJob::State::kSucceeded;
    int& kept = ok ? kept_ok : kept_failed;
    const int limit = ok ? spec->history_limits.successful : spec->history_limits.failed;
    if (++kept > limit) plan.remove.push_back(j->name);
  }
  json active = json::array();
  for (const auto& j : in.jobs)
    if (j.state == ObservedJob::State::kActive && active.size() < kMaxActiveJobs) active.push_back(j.name);
  status["activeJobs"] = active;

  // --- validity: spec, then Secrets ---
  const auto problems = api::validate(*spec, ns, in.operator_namespace);
  if (!problems.empty()) {
    cond("Ready", "False", problems[0].reason, join_messages(problems));
    return finish();
  }
  const auto secret_problems = api::check_secrets(*spec, in.secrets);
  if (!secret_problems.empty()) {
    cond("SecretsResolved", "False", secret_problems[0].reason, join_messages(secret_problems));
    cond("Ready", "False", secret_problems[0].reason, join_messages(secret_problems));
    return finish();
  }
  cond("SecretsResolved", "True", "Resolved", "every referenced Secret and key is present");
  // wal-g backup-push refuses a PGDATA that is not the server's
  // data_directory: known before any Job runs, so none is started.
  // The data volume, checked in the background before any backup Job: a
  // missing or ReadWriteOncePod claim, or a workload without a running pod,
  // is known before a Job would fail on it.
  const std::string volume_source = data_volume_source(*spec);
  std::optional<DataVolumeCheck> volume = in.data_volume;
  if (!volume) {
    // Pending after an operator restart: the volume last resolved for this
    // same spec, while the condition still says so, keeps due backups going.
    const json* c = find_condition(conditions, "DataVolumeResolved");
    if (auto last = from_status(status, volume_source); last && c && c->value("status", "") == "True") {
      volume.emplace();
      volume->resolved = true;
      volume->volume = *last;
    }
  }
  const bool volume_ok = volume && volume->resolved;
  if (in.data_volume && volume_ok) {
    cond("DataVolumeResolved", "True", "Resolved", in.data_volume->message);
    status["dataVolume"] = to_status(in.data_volume->volume, volume_source);
  } else if (in.data_volume) {
    cond("DataVolumeResolved", "False", in.data_volume->reason, in.data_volume->message);
    status.erase("dataVolume");
  } else if (!find_condition(conditions, "DataVolumeResolved"))
    // Kept as it was while a check is pending (an operator restart forgets no fact, and writes nothing).
    cond("DataVolumeResolved", "Unknown", "DataVolumePending",
         std::string(spec->database.has_workload_ref ? "spec.database.workloadRef" : "spec.database.dataVolume.claimName") +
             ": the check of the data volume has not finished; no backup Job starts before it has");
  // wal-g backup-push refuses a PGDATA that is not the server's
  // data_directory: known before any Job runs, so none is started.
  const std::string mount = volume_ok ? volume->volume.mount_path : spec->database.data_volume.mount_path;
  const std::string data_directory = in.archiving ? in.archiving->data_directory : "";
  const bool data_dir_ok = data_directory.empty() || (!volume_ok && spec->database.has_workload_ref) ||
                           data_directory == mount || mount == "/" ||
                           data_directory.starts_with(mount.ends_with("/") ? mount : mount + "/");
  if (!data_dir_ok)
    cond("BackupHealthy", "False", "DataDirectoryMismatch",
         std::string(spec->database.has_workload_ref ? "spec.database.workloadRef: the database pod's mount "
                                                     : "spec.database.dataVolume.mountPath ") +
             mount + " does not hold the server's data_directory " + data_directory +
             ": wal-g backup-push would refuse it; mount the claim where the server has it");

  // --- schedules ---
  const auto* tz = *schedule::find_zone(spec->schedule.time_zone);
  const auto created = parse_rfc3339(meta.value("creationTimestamp", "")).value_or(in.now);
  json schedules = status.value("schedules", json::object());
  std::optional<SysTime> next_any;
  std::optional<SysTime> catalog_retry;  // a failed catalog sync's next attempt, when it is not due yet
  std::optional<SysTime> full_slot_now;
  int missed_total = status.value("missedSchedules", 0);
  std::vector<std::string> storage_keys;
  if (auto it = in.secrets.find(spec->storage.secret); it != in.secrets.end())
    for (const auto& [k, v] : it->second) storage_keys.push_back(k);
  const bool synced = !in.sync_catalog || catalog_synced(status);
  if (!synced && !spec->suspend) {
    acting = {Progress::State::kReconciling, "CatalogSyncing",
              "a catalog Job reads the backups in storage back into status.backups; retention waits for it"};
    // One catalog Job per sync, named by its slot: the policy's creation, or
    // when the previous attempt failed (a retry gets a name of its own, so
    // its outcome is recorded too). A restart computes the same name.
    SysTime slot = created;
    // An attempt failed when its Job did, or succeeded with a result that cannot be read.
    auto failed_attempt = [](const ObservedJob& j) {
      return j.state == ObservedJob::State::kFailed ||
             (j.state == ObservedJob::State::kSucceeded && !api::parse_catalog_result(j.termination_message));
    };
    // Retries back off as a Job's pods do: the wait after a failed attempt
    // doubles the gap between the two newest failed attempts (derived from
    // their names' slots, so it survives restarts and needs no counter),
    // from one minute (names have minutes) up to an hour.
    std::vector<SysTime> failed_slots;
    for (const auto& j : in.jobs)
      if (j.action == "catalog" && failed_attempt(j)) {
        failed_slots.push_back(std::chrono::floor<std::chrono::minutes>(j.slot));
        slot = std::max(slot, SysTime(std::chrono::floor<std::chrono::minutes>(j.finished.value_or(j.slot))));
      }
    std::sort(failed_slots.rbegin(), failed_slots.rend());
    if (!failed_slots.empty()) {
      const auto gap = failed_slots.size() < 2 ? std::chrono::minutes(1)
                                               : std::clamp(std::chrono::duration_cast<std::chrono::minutes>(
                                                                2 * (failed_slots[0] - failed_slots[1])),
                                                            std::chrono::minutes(1), std::chrono::minutes(60));
      slot = std::max(slot, failed_slots[0] + gap);
    }
    const std::string name = job_name(meta.value("name", ""), Action::kCatalog, slot);
    if (slot > in.now) {
      catalog_retry = slot;  // not yet: the requeue below wakes the policy then
    } else if (std::none_of(in.jobs.begin(), in.jobs.end(), [&](const ObservedJob& j) { return j.name == name; })) {
      JobInputs ci{in.policy, *spec, Action::kCatalog, slot, storage_keys, in.default_image, {}, "", "", "", 0};
      plan.create.push_back(build_job(ci));
      plan.create_events.push_back({"Normal", "JobCreated", "created Job " + name +
                                                            " to read the backup catalog back from storage "
                                                            "(status.backups is not known to match it)"});
    }
  }
  const bool any_active_backup = std::any_of(in.jobs.begin(), in.jobs.end(), [](const ObservedJob& j) {
    return j.state == ObservedJob::State::kActive && is_backup_action(j.action);
  });
  bool created_one = false;
  std::vector<std::pair<Action, std::string>> order = {{Action::kFullBackup, spec->schedule.full_backup},
                                                       {Action::kBackup, spec->schedule.backup}};
  if (!spec->offsite.secret.empty()) order.push_back({Action::kOffsiteCopy, spec->offsite.schedule});
  // The newest full backup is what an offsite copy copies.
  std::string newest_full;
  for (const auto& e : catalog)
    if (e.value("type", "") == "full" && e.value("restorable", true)) {
      newest_full = e.value("id", "");
      break;  // the catalog is newest first
    }
  for (const auto& [action, expr] : order) {
    const std::string aname = action_name(action);
    const auto cron = *schedule::Cron::parse(expr);
    const auto since = parse_rfc3339(schedules.value(aname, json::object()).value("lastScheduleTime", ""))
                           .value_or(created);
    const auto slots = plan_slots(cron, tz, since, in.now, std::chrono::seconds(spec->schedule.starting_deadline_seconds));
    if (slots.next && (!next_any || *slots.next < *next_any)) next_any = slots.next;
    if (!slots.latest) continue;
    // Until the data volume resolves, backup slots stay unrecorded: a pending
    // check (an operator restart) runs the slot once it ends, inside the
    // starting deadline; a failing one counts them missed when it clears.
    if (!volume_ok && (action == Action::kBackup || action == Action::kFullBackup)) continue;
    schedules[aname]["lastScheduleTime"] = format_rfc3339(*slots.latest);
    if (spec->suspend) continue;  // suspended slots are skipped on purpose, not missed
    if (slots.missed > 0) {
      missed_total += slots.missed;
      plan.new_missed += slots.missed;
      plan.events.push_back({"Warning", "MissedSchedule",
                             std::to_string(slots.missed) + " " + aname + " slot(s) passed without a run (operator down "
                                                                          "or startingDeadlineSeconds exceeded)"});
    }
    if (!slots.run) continue;
    if (!data_dir_ok && (action == Action::kBackup || action == Action::kFullBackup)) continue;
    if (action == Action::kFullBackup) full_slot_now = slots.run;
    // A delta due at the same instant as a full backup adds nothing.
    if (action == Action::kBackup && full_slot_now && *full_slot_now == *slots.run) continue;
    const std::string name = job_name(meta.value("name", ""), action, *slots.run);
    if (std::any_of(in.jobs.begin(), in.jobs.end(), [&](const ObservedJob& j) { return j.name == name; })) continue;
    if (action == Action::kOffsiteCopy) {
      if (newest_full.empty()) {
        plan.events.push_back({"Warning", "NoBackupToCopy",
                               "the " + format_rfc3339(*slots.run) + " offsite-copy slot found no full backup to copy"});
        continue;
      }
      JobInputs oi{in.policy, *spec, action, *slots.run, storage_keys, in.default_image, {}, newest_full, "", "", 0};
      plan.create.push_back(build_job(oi));
      plan.create_events.push_back({"Normal", "JobCreated", "created Job " + name + " to copy " + newest_full + " offsite"});
      continue;
    }
    if ((any_active_backup || created_one) && spec->schedule.concurrency_policy == "Forbid") {
      plan.events.push_back({"Normal", "SkippedConcurrent",
                             "skipped the " + format_rfc3339(*slots.run) + " " + aname +
                                 " slot: a backup is still running (concurrencyPolicy Forbid)"});
      continue;
    }
    if (any_active_backup && spec->schedule.concurrency_policy == "Replace")
      for (const auto& j : in.jobs)
        if (j.state == ObservedJob::State::kActive && is_backup_action(j.action)) plan.remove.push_back(j.name);
    JobInputs ji{in.policy, *spec, action, *slots.run, storage_keys, in.default_image, {}, "", "", "", 0};
    ji.delta_max_steps = delta_max_steps(*schedule::Cron::parse(spec->schedule.backup),
                                         *schedule::Cron::parse(spec->schedule.full_backup), tz, *slots.run);
    ji.data_directory = data_directory;
    ji.data_volume = volume->volume;
    for (const auto& e : catalog) {  // newest first
      if (ji.verified_markers.size() == kMarkersPerJob) break;
      if (e.value("verified", false) && !e.value("verifiedMarker", false) && !e.value("checksum", "").empty())
        ji.verified_markers.push_back(e.value("id", "") + "@" + e.value("checksum", "") + "@" + e.value("verifiedBy", ""));
    }
    plan.create.push_back(build_job(ji));
    created_one = true;
    plan.create_events.push_back({"Normal", "JobCreated", "created Job " + name + " for the " + format_rfc3339(*slots.run) +
                                                       " " + aname + " slot"});
  }
  // A new policy's first backup: in progress until its Job reports.
  const bool backup_recorded = status.contains("lastSuccessfulBackup") || !catalog.empty() ||
                               std::any_of(recent.begin(), recent.end(),
                                           [](const json& r) { return is_backup_action(r.value("action", "")); });
  if (acting.state == Progress::State::kSteady && (any_active_backup || created_one) && !backup_recorded)
    acting = {Progress::State::kReconciling, "FirstBackupRunning", "the policy's first backup Job has not reported yet"};
  // --- PaaS-state bundles: one Job per context (or one for every context) per slot ---
  if (const auto& ps = spec->paas_state; ps.enabled) {
    const auto cron = *schedule::Cron::parse(ps.schedule);
    const auto since =
        parse_rfc3339(schedules.value("state-bundle", json::object()).value("lastScheduleTime", "")).value_or(created);
    const auto slots = plan_slots(cron, tz, since, in.now, std::chrono::seconds(spec->schedule.starting_deadline_seconds));
    if (slots.next && (!next_any || *slots.next < *next_any)) next_any = slots.next;
    if (slots.latest) schedules["state-bundle"]["lastScheduleTime"] = format_rfc3339(*slots.latest);
    if (slots.latest && !spec->suspend) {
      if (slots.missed > 0) {
        missed_total += slots.missed;
        plan.new_missed += slots.missed;
        plan.events.push_back({"Warning", "MissedSchedule",
                               std::to_string(slots.missed) + " state-bundle slot(s) passed without a run"});
      }
      for (const auto& context : slots.run ? ps.contexts : std::vector<std::string>{}) {
        const std::string name = job_name(meta.value("name", ""), Action::kStateBundle, *slots.run, context);
        if (std::any_of(in.jobs.begin(), in.jobs.end(), [&](const ObservedJob& j) { return j.name == name; })) continue;
        const std::string label = context == "*" ? "all" : context;
        if (std::any_of(in.jobs.begin(), in.jobs.end(), [&](const ObservedJob& j) {
              return j.state == ObservedJob::State::kActive && j.action == "state-bundle" && j.context == label;
            })) {
          plan.events.push_back({"Normal", "SkippedConcurrent", "skipped the " + format_rfc3339(*slots.run) +
                                                                    " state-bundle slot for context " + label +
                                                                    ": the previous bundle is still running"});
          continue;
        }
        JobInputs si{in.policy, *spec, Action::kStateBundle, *slots.run, storage_keys, in.default_image, {}, "", context, "", 0};
        plan.create.push_back(build_job(si));
        plan.create_events.push_back({"Normal", "JobCreated", "created Job " + name + " to bundle the PaaS state of context " +
                                                           label + " (" + format_rfc3339(*slots.run) + " slot)"});
      }
    }
  }
  // --- verification: daily, a RestoreRequest restores the newest full backup into the target ---
  if (spec->verification.enabled && !spec->verification.target_namespace.empty()) {
    const auto cron = *schedule::Cron::parse(spec->verification.schedule);
    const auto since = parse_rfc3339(schedules.value("verify", json::object()).value("lastScheduleTime", "")).value_or(created);
    const auto slots = plan_slots(cron, tz, since, in.now, std::chrono::seconds(spec->schedule.starting_deadline_seconds));
    if (slots.next && (!next_any || *slots.next < *next_any)) next_any = slots.next;
    if (slots.latest) schedules["verify"]["lastScheduleTime"] = format_rfc3339(*slots.latest);
    const bool verifying = std::any_of(in.restores.begin(), in.restores.end(), [&](const ObservedRestore& r) {
      return r.owned && r.purpose == "verification" && !is_final(r.phase);
    });
    if (slots.run && !spec->suspend) {
      const std::string name = job_name(meta.value("name", ""), Action::kVerify, *slots.run);
      const bool exists = std::any_of(in.restores.begin(), in.restores.end(),
                                      [&](const ObservedRestore& r) { return r.name == name; });
      const json* full = nullptr;
      for (const auto& e : catalog)
        if (e.value("type", "") == "full" && e.value("restorable", true)) {
          full = &e;
          break;  // newest first
        }
      if (exists) {
      } else if (!full) {
        plan.events.push_back({"Warning", "NoBackupToVerify",
                               "the " + format_rfc3339(*slots.run) + " verification slot found no full backup"});
      } else if (verifying) {
        plan.events.push_back({"Normal", "SkippedConcurrent", "skipped the " + format_rfc3339(*slots.run) +
                                                                  " verification slot: a verification is still running"});
      } else {
        plan.create_restores.push_back(
            {{"apiVersion", api::kApiVersion},
             {"kind", "RestoreRequest"},
             {"metadata",
              {{"name", name},
               {"namespace", ns},
               {"labels", {{"app.kubernetes.io/managed-by", kManagedBy}, {kLabelPolicy, kube::label_value(meta.value("name", ""))},
                           {kLabelAction, "verify"}}},
               {"annotations", {{kAnnotationSlot, format_rfc3339(*slots.run)}}},
               {"ownerReferences", {{{"apiVersion", api::kApiVersion}, {"kind", "BackupPolicy"},
                                     {"name", meta.value("name", "")}, {"uid", meta.value("uid", "")},
                                     {"controller", true}, {"blockOwnerDeletion", true}}}}}},
             {"spec", {{"policyRef", {{"name", meta.value("name", "")}}},
                       {"backupId", full->value("id", "")},
                       {"checksum", full->value("checksum", "")},
                       {"purpose", "verification"},
                       {"targetNamespace", spec->verification.target_namespace},
                       {"validation", spec->verification.checks}}}});
        plan.events.push_back({"Normal", "VerificationScheduled", "created RestoreRequest " + name + " to verify backup " +
                                                                      full->value("id", "") + " in namespace " +
                                                                      spec->verification.target_namespace});
      }
    }
  }
  // Finished verifications beyond the history limits go, oldest first.
  {
    std::vector<const ObservedRestore*> done;
    for (const auto& r : in.restores)
      if (r.owned && r.purpose == "verification" && is_final(r.phase) && r.completion) done.push_back(&r);
    std::sort(done.begin(), done.end(),
              [](const ObservedRestore* a, const ObservedRestore* b) { return *a->completion > *b->completion; });
    int ok = 0, bad = 0;
    for (const ObservedRestore* r : done) {
      const bool good = r->phase == "Succeeded";
      if (++(good ? ok : bad) > (good ? spec->history_limits.successful : spec->history_limits.failed))
        plan.remove_restores.push_back(r->name);
    }
  }
  // --- retention: mark what each backup is kept for; a retain Job deletes the rest ---
  std::vector<RetainedBackup> retained;
  for (const auto& e : catalog)
    retained.push_back({e.value("id", ""), e.value("type", ""), e.value("base", ""),
                        parse_rfc3339(e.value("completionTime", "")).value_or(in.now), e.value("verified", false),
                        e.value("full", ""), e.value("restorable", true)});
  const auto decision = apply_retention(retained, {spec->retention.daily, spec->retention.weekly, spec->retention.monthly}, tz);
  for (auto& e : catalog) {
    auto it = decision.kept_for.find(e.value("id", ""));
    e["keptFor"] = it == decision.kept_for.end() ? json::array() : json(it->second);
  }
  status["backups"] = bounded_catalog(catalog);
  const bool retain_running = std::any_of(in.jobs.begin(), in.jobs.end(), [](const ObservedJob& j) {
    return j.action == "retain" && j.state == ObservedJob::State::kActive;
  });
  // Not before the catalog is in step with storage: a catalog that is behind
  // would judge the wrong backups (and never see the ones it lacks).
  if (!decision.expire.empty() && !retain_running && !spec->suspend && synced) {
    // Named by the newest expired backup: a restart asks for the same deletion, never a second Job.
    SysTime newest_expired{};
    for (const auto& r : retained)
      if (std::find(decision.expire.begin(), decision.expire.end(), r.id) != decision.expire.end())
        newest_expired = std::max(newest_expired, r.completion);
    const std::string name = job_name(meta.value("name", ""), Action::kRetain, newest_expired);
    if (std::none_of(in.jobs.begin(), in.jobs.end(), [&](const ObservedJob& j) { return j.name == name; })) {
      JobInputs ji{in.policy, *spec, Action::kRetain, newest_expired, storage_keys, in.default_image, decision.expire, "", "", "", 0};
      plan.create.push_back(build_job(ji));
      plan.create_events.push_back({"Normal", "RetentionScheduled", "created Job " + name + " to delete " +
                                                                 std::to_string(decision.expire.size()) +
                                                                 " expired backup(s)"});
    }
  }
  status["schedules"] = schedules;
  status["missedSchedules"] = missed_total;
  std::string last_schedule;
  for (const auto& [a, v] : schedules.items())
    if (a != "catalog") last_schedule = std::max(last_schedule, v.value("lastScheduleTime", ""));
  if (!last_schedule.empty()) status["lastScheduleTime"] = last_schedule;
  if (next_any) status["nextScheduleTime"] = format_rfc3339(*next_any);

  const json* volume_cond = find_condition(conditions, "DataVolumeResolved");
  if (volume_cond && volume_cond->value("status", "") != "True")
    cond("Ready", volume_cond->value("status", "") == "False" ? "False" : "Unknown", volume_cond->value("reason", ""),
         volume_cond->value("message", ""));
  else if (spec->suspend)
    cond("Ready", "True", "Suspended", "valid and resolved; suspended, so no new runs start");
  else
    cond("Ready", "True", "Armed", next_any ? "schedules armed; next run at " + format_rfc3339(*next_any) : "armed");
  // Reported, never gating Ready or the Jobs.
  apply_continuous_archiving(status, conditions, *spec, in.secrets, in.archiving, gen, in.now);
  // Verified: the newest verification restore, and whether it is recent (daily, so 26 hours).
  if (!spec->verification.enabled) {
    cond("Verified", "False", "VerificationDisabled",
         "spec.verification.enabled is false: the policy requires a daily verified restore");
  } else if (const json last = status.value("lastVerification", json::object()); last.contains("completionTime")) {
    const auto at = parse_rfc3339(last.value("completionTime", "")).value_or(SysTime{});
    if (last.value("result", "") != "Succeeded")
      cond("Verified", "False", "VerificationFailed",
           "RestoreRequest " + last.value("request", "") + " could not verify backup " + last.value("backupId", "") +
               (last.contains("message") ? ": " + last.value("message", "") : ""));
    else if (in.now - at > std::chrono::hours(26))
      cond("Verified", "False", "VerificationStale",
           "the newest verified restore (" + last.value("request", "") + ") finished at " + last.value("completionTime", ""));
    else
      cond("Verified", "True", "Verified",
           "backup " + last.value("backupId", "") + " restored and validated by RestoreRequest " + last.value("request", "") +
               " at " + last.value("completionTime", ""));
  } else {
    cond("Verified", "Unknown", "AwaitingVerification", "no verification restore has finished yet");
  }
  if (spec->offsite.secret.empty())
    cond("OffsiteCopyCurrent", "False", "NotConfigured",
         "spec.offsite.secretRef.name is not set: the policy requires an immutable offsite copy");
  else if (const json last = status.value("lastOffsiteCopy", json::object()); last.contains("completionTime")) {
    const auto at = parse_rfc3339(last.value("completionTime", "")).value_or(SysTime{});
    const std::string copied = "backup " + last.value("id", "") + " copied offsite at " + last.value("completionTime", "");
    // Immutable only as the offsite store reported it: a date with the retention mode read back.
    const auto until = parse_rfc3339(last.value("immutableUntil", ""));
    const std::string mode = last.value("retentionMode", "");
    const bool read_back = until && (mode == "GOVERNANCE" || mode == "COMPLIANCE");
    const json imm = last.value("immutability", json::object());
    std::string unverified = imm.is_object() ? imm.value("reason", "") : "";
    if (unverified.empty()) unverified = "ImmutabilityUnverified";
    // Daily copies: current while the newest is under 26 hours old.
    if (in.now - at > std::chrono::hours(26))
      cond("OffsiteCopyCurrent", "False", "CopyStale",
           "the newest offsite copy (" + last.value("id", "") + ") is from " + last.value("completionTime", ""));
    else if (!read_back)
      cond("OffsiteCopyCurrent", "False", unverified,
           copied + ", but its immutability is unverified: " +
               (imm.is_object() && !imm.value("message", "").empty()
                    ? imm.value("message", "")
                    : std::string("no Object Lock retention was read back from the offsite store")));
    else if (*until <= in.now)
      cond("OffsiteCopyCurrent", "False", "RetentionExpired",
           copied + ", but its Object Lock retention ended at " + last.value("immutableUntil", ""));
    else
      cond("OffsiteCopyCurrent", "True", "CopyCurrent",
           copied + ", Object Lock " + mode + " retention until " + last.value("immutableUntil", "") +
               " (read back from the store)");
  } else {
    cond("OffsiteCopyCurrent", "Unknown", "NoCopyYet", "no offsite copy yet");
  }
  // StateBundleHealthy follows the newest finished state-bundle run.
  if (spec->paas_state.enabled) {
    run_health(recent, [](const std::string& a) { return a == "state-bundle"; }, "StateBundleHealthy",
               {"NoBundleYet", "no state bundle has finished yet"}, "LastBundleSucceeded", "BundleFailed", cond);
  } else {
    remove_condition(conditions, "StateBundleHealthy");
  }
  const auto drill_interval = parse_duration(spec->drill_interval).value_or(std::chrono::hours(2160));
  if (spec->environment != "production") {
    cond("DrillCurrent", "True", "NotRequired", "restore drills are required for production only");
  } else if (const json drill = status.value("lastDrill", json::object()); drill.contains("completionTime")) {
    const auto at = parse_rfc3339(drill.value("completionTime", "")).value_or(SysTime{});
    if (in.now - at <= drill_interval)
      cond("DrillCurrent", "True", "DrillSucceeded",
           "RestoreRequest " + drill.value("request", "") + " drilled backup " + drill.value("backupId", "") + " at " +
               drill.value("completionTime", ""));
    else
      cond("DrillCurrent", "False", "DrillOverdue",
           "the newest successful drill (" + drill.value("request", "") + ") is older than spec.drills.interval " +
               spec->drill_interval);
  } else if (in.now - created > drill_interval) {
    cond("DrillCurrent", "False", "DrillOverdue",
         "no successful restore drill since the policy was created; spec.drills.interval is " + spec->drill_interval);
  } else {
    cond("DrillCurrent", "Unknown", "NoDrillYet", "no restore drill has run yet");
  }
  std::optional<SysTime> wake = next_any;
  if (catalog_retry && (!wake || *catalog_retry < *wake)) wake = catalog_retry;
  if (wake) {
    // Rounded up, plus a hair: woken a millisecond early, the slot would not
    // be due yet and the next look would come only after the floor.
    const auto wait = std::chrono::ceil<std::chrono::milliseconds>(*wake - in.now) + std::chrono::milliseconds(2);
    plan.requeue_after = std::max(wait, std::chrono::milliseconds(10));
  }
  return finish();
}

}  // namespace bo::reconcile
