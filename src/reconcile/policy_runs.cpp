// Sections of plan_backup_policy: the outcomes of finished runs (each
// action's result read into the status once), the state bundles they
// recorded, the history limits and the active Jobs.
#include <algorithm>
#include <map>
#include <set>

#include "api/job_result.h"
#include "common/timefmt.h"
#include "reconcile/policy_plan_parts.h"

namespace bo::reconcile::policy_plan {
namespace {

using json = nlohmann::json;
constexpr size_t kRecentRuns = 20;
// Bundles recorded per context in status.paasState.bundles (a day of hourly bundles).
constexpr size_t kStateBundlesPerContext = 24;

// What one finished run came to: recorded in status.recentRuns.
struct Outcome {
  bool ok = false;
  std::string why;  // when it failed
  double seconds = 0;
};

void record_backup(PolicyPlanning& p, const ObservedJob& j, Outcome& o) {
  auto result = api::parse_job_result(j.termination_message);
  if (!result) {
    o.ok = false;
    o.why = "InvalidResult: " + result.error();
    return;
  }
  o.seconds = std::chrono::duration<double>(result->finish - result->start).count();
  api::BackupRecord entry;
  entry.id = result->backup_id;
  entry.checksum = result->checksum;
  entry.type = result->type;
  entry.start_time = format_rfc3339(result->start);
  entry.completion_time = format_rfc3339(result->finish);
  entry.size_bytes = result->size_bytes;
  entry.verified = false;
  entry.restorable = result->wal_archived;
  entry.kept_for.emplace();
  entry.job = j.name;
  if (result->uncompressed_bytes > 0) entry.uncompressed_bytes = result->uncompressed_bytes;
  if (!result->base.empty()) entry.base = result->base;
  if (!result->full.empty()) entry.full = result->full;
  if (result->delta_count > 0) entry.delta_count = result->delta_count;
  if (!result->start_lsn.empty()) entry.start_lsn = result->start_lsn;
  if (!result->finish_lsn.empty()) entry.finish_lsn = result->finish_lsn;
  if (!result->wal_archived)
    entry.not_restorable_reason = result->wal_message.empty() ? "WALNotArchived" : result->wal_message.substr(0, 512);
  auto& catalog = p.catalog();
  const bool known = std::any_of(catalog.begin(), catalog.end(),
                                 [&](const api::BackupRecord& e) { return e.id.value_or("") == result->backup_id; });
  if (!known) catalog.push_back(entry);
  // The verified markers this Job left in storage (VERIFIED_MARKERS).
  for (auto& e : catalog)
    if (e.verified.value_or(false) &&
        std::find(result->markers.begin(), result->markers.end(), e.id.value_or("")) != result->markers.end())
      e.verified_marker = true;
  if (!result->wal_archived) {
    // wal-g pushed the files, but without the WAL up to its finish LSN
    // nothing can restore them: a run that did not protect anything.
    o.ok = false;
    o.why = "BackupNotRestorable: backup " + result->backup_id + " was pushed but " +
            (result->wal_message.empty() ? std::string("the WAL it needs is not archived") : result->wal_message);
    return;
  }
  const auto& last = p.status.last_successful_backup;
  if ((last ? last->completion_time.value_or("") : "") <= *entry.completion_time)
    p.status.last_successful_backup = api::BackupRef{result->backup_id, result->checksum, result->type, entry.completion_time};
  p.plan.events.push_back({"Normal", "BackupSucceeded",
                           "Job " + j.name + " made " + result->type + " backup " + result->backup_id + " (" +
                               result->checksum.substr(0, 19) + "…)"});
}

void record_offsite_copy(PolicyPlanning& p, const ObservedJob& j, Outcome& o) {
  auto copy = api::parse_offsite_copy_result(j.termination_message);
  if (!copy) {
    o.ok = false;
    o.why = "InvalidResult: " + copy.error();
    return;
  }
  // immutableUntil only as the offsite store reported it; otherwise why not.
  api::OffsiteCopyRecord last;
  last.id = copy->backup_id;
  last.completion_time = format_rfc3339(j.finished.value_or(p.in.now));
  last.job = j.name;
  if (!copy->checksum.empty()) last.checksum = copy->checksum;
  std::string text = "Job " + j.name + " copied backup " + copy->backup_id +
                     " offsite, restorable from the offsite storage alone; ";
  if (copy->immutable_until) {
    last.immutable_until = format_rfc3339(*copy->immutable_until);
    last.retention_mode = copy->retention_mode;
    text += "Object Lock " + copy->retention_mode + " retention until " + *last.immutable_until + " (read back from the store)";
  } else {
    last.immutability = api::OffsiteCopyRecord::Immutability{copy->immutability_reason,
                                                             copy->immutability_message.substr(0, 512)};
    text += "immutability unverified (" + copy->immutability_reason + "): " + copy->immutability_message.substr(0, 512);
  }
  p.status.last_offsite_copy = std::move(last);
  p.plan.events.push_back({copy->immutable_until ? "Normal" : "Warning", "OffsiteCopied", text});
}

void record_state_bundle(PolicyPlanning& p, const ObservedJob& j, Outcome& o) {
  const json t = json::parse(j.termination_message, nullptr, false);
  const json* list = t.is_object() && t.contains("bundles") && t["bundles"].is_array() ? &t["bundles"] : nullptr;
  if (!list || list->empty()) {
    o.ok = false;
    o.why = "InvalidResult: a state-bundle Job must report {\"bundles\": [{context, id, sha256, files, size}]}";
    return;
  }
  auto& bundles = p.state_bundles;
  for (const auto& b : *list) {
    if (!b.is_object() || !b.value("id", json()).is_string() || !b.value("sha256", json()).is_string()) continue;
    const std::string id = b["id"];
    if (std::any_of(bundles.begin(), bundles.end(), [&](const api::StateBundleRecord& e) { return e.id.value_or("") == id; }))
      continue;
    bundles.push_back({b.value("context", ""), id, b["sha256"].get<std::string>(), b.value("files", int64_t{0}),
                       b.value("size", int64_t{0}), format_rfc3339(j.finished.value_or(p.in.now)), j.name});
    p.plan.events.push_back({"Normal", "StateBundled",
                             "Job " + j.name + " bundled context " + b.value("context", "") + " as " + id + " (" +
                                 std::to_string(b.value("files", 0)) + " files, sha256 " +
                                 b["sha256"].get<std::string>().substr(0, 12) + "…)"});
  }
}

void record_retain(PolicyPlanning& p, const ObservedJob& j) {
  // What storage no longer holds after the Job (wal-g's delete target
  // also removes a full's deltas); the ids it was asked for otherwise.
  std::set<std::string> gone(j.expire.begin(), j.expire.end());
  const json t = json::parse(j.termination_message, nullptr, false);
  if (t.is_object() && t.contains("deleted") && t["deleted"].is_array())
    for (const auto& id : t["deleted"])
      if (id.is_string()) gone.insert(id.get<std::string>());
  auto& catalog = p.catalog();
  const size_t before = catalog.size();
  std::erase_if(catalog, [&](const api::BackupRecord& e) { return gone.count(e.id.value_or("")) > 0; });
  p.plan.events.push_back({"Normal", "RetentionApplied", "Job " + j.name + " deleted " +
                                                             std::to_string(before - catalog.size()) + " expired backup(s)"});
}

// One finished Job, read once: what its result adds to the status, and the run it records.
api::RunRecord record_run(PolicyPlanning& p, const ObservedJob& j) {
  api::RunRecord run{j.name, j.action, std::nullopt, format_rfc3339(j.finished.value_or(p.in.now)), std::nullopt};
  Outcome o{j.state == ObservedJob::State::kSucceeded, j.failure, 0};
  // run-job writes {"error": "..."} when it fails: the actionable part.
  if (!o.ok) {
    const json t = json::parse(j.termination_message, nullptr, false);
    if (t.is_object() && t.contains("error") && t["error"].is_string())
      o.why = t["error"].get<std::string>() + (o.why.empty() ? "" : " (" + o.why + ")");
  }
  if (o.ok && is_backup_action(j.action)) {
    record_backup(p, j, o);
  } else if (o.ok && j.action == "offsite-copy") {
    record_offsite_copy(p, j, o);
  } else if (o.ok && j.action == "state-bundle") {
    record_state_bundle(p, j, o);
  } else if (o.ok && j.action == "catalog") {
    // Read into status.backups by read_back_catalog, whether recorded now or before.
    if (auto result = api::parse_catalog_result(j.termination_message); !result) {
      o.ok = false;
      o.why = "InvalidResult: " + result.error();
    }
  } else if (o.ok && j.action == "retain") {
    record_retain(p, j);
  } else if (o.ok) {
    p.plan.events.push_back({"Normal", "RunSucceeded", "Job " + j.name + " (" + j.action + ") succeeded"});
  }
  if (!o.ok) {
    if (o.why.empty()) o.why = "the Job failed";
    run.message = o.why.substr(0, 512);
    p.plan.events.push_back({"Warning", is_backup_action(j.action) ? "BackupFailed" : "RunFailed",
                             "Job " + j.name + " (" + j.action + ") failed: " + o.why.substr(0, 512)});
  }
  run.result = o.ok ? "Succeeded" : "Failed";
  p.plan.finished_runs.push_back({j.action, o.ok ? "success" : "failure", o.seconds});
  return run;
}

}  // namespace

void record_runs(PolicyPlanning& p) {
  auto& recent = p.status.recent_runs ? *p.status.recent_runs : p.status.recent_runs.emplace();
  if (!p.status.backups) p.status.backups.emplace();
  if (p.status.paas_state && p.status.paas_state->bundles) p.state_bundles = *p.status.paas_state->bundles;
  p.state_bundles_before = p.state_bundles.size();
  std::set<std::string> recorded;
  for (const auto& r : recent) recorded.insert(r.job.value_or(""));
  for (const auto& j : p.in.jobs)
    if (j.state != ObservedJob::State::kActive) p.finished.push_back(&j);
  std::sort(p.finished.begin(), p.finished.end(), [](const ObservedJob* a, const ObservedJob* b) { return a->slot < b->slot; });
  for (const ObservedJob* j : p.finished) {
    if (recorded.count(j->name)) continue;
    recent.insert(recent.begin(), record_run(p, *j));
    recorded.insert(j->name);
  }
  if (recent.size() > kRecentRuns) recent.resize(kRecentRuns);
}

void trim_state_bundles(PolicyPlanning& p) {
  auto& bundles = p.state_bundles;
  if (bundles.size() == p.state_bundles_before) return;
  // Newest first; the newest kStateBundlesPerContext of each context stay.
  std::stable_sort(bundles.begin(), bundles.end(), [](const api::StateBundleRecord& a, const api::StateBundleRecord& b) {
    return a.completion_time.value_or("") > b.completion_time.value_or("");
  });
  std::map<std::string, size_t> per_context;
  std::vector<api::StateBundleRecord> kept;
  for (const auto& b : bundles)
    if (++per_context[b.context.value_or("")] <= kStateBundlesPerContext && kept.size() < kMaxStateBundles)
      kept.push_back(b);
  if (!p.status.paas_state) p.status.paas_state.emplace();
  p.status.paas_state->bundles = std::move(kept);
}

// History limits: finished Jobs already recorded, oldest first out. While
// the catalog is not synced, its two newest attempts stay whatever else
// ran since: they name the next attempt and set its backoff.
void apply_history_limits(PolicyPlanning& p) {
  const bool catalog_pending = p.in.sync_catalog && !catalog_synced(p.status);
  int kept_ok = 0, kept_failed = 0, kept_catalog = 0;
  for (auto it = p.finished.rbegin(); it != p.finished.rend(); ++it) {
    const ObservedJob* j = *it;
    if (catalog_pending && j->action == "catalog" && ++kept_catalog <= 2) continue;
    const bool ok = j->state == ObservedJob::State::kSucceeded;
    int& kept = ok ? kept_ok : kept_failed;
    const int limit = ok ? p.spec.history_limits.successful : p.spec.history_limits.failed;
    if (++kept > limit) p.plan.remove.push_back(j->name);
  }
}

void list_active_jobs(PolicyPlanning& p) {
  std::vector<std::string> active;
  for (const auto& j : p.in.jobs)
    if (j.state == ObservedJob::State::kActive && active.size() < kMaxActiveJobs) active.push_back(j.name);
  p.status.active_jobs = std::move(active);
}

}  // namespace bo::reconcile::policy_plan
