// Sections of plan_backup_policy over status.backups: the catalog read back
// from storage (a catalog Job's result merged in) and retention (what each
// backup is kept for; a retain Job deletes the rest).
#include <algorithm>
#include <map>
#include <set>

#include "api/job_result.h"
#include "common/timefmt.h"
#include "reconcile/policy_plan_parts.h"
#include "reconcile/retention.h"

namespace bo::reconcile::policy_plan {
namespace {

// A catalog Job's result merged into status.backups: storage is the source
// of truth. A backup storage holds and status lacks is added; one status
// has keeps its entry (it knows more: LSNs, who verified it), takes the
// storage's checksum if they differ, and becomes verified when storage holds
// a verification's marker for it; an entry storage no longer holds is
// dropped when the result listed everything and the backup finished before
// the listing (a backup recorded after it is not in the listing yet).
void merge_catalog(std::vector<api::BackupRecord>& catalog, const api::CatalogResult& from, const std::string& job) {
  std::map<std::string, const api::CatalogEntry*> stored;
  for (const auto& e : from.entries) stored[e.backup_id] = &e;
  std::set<std::string> known;
  const bool complete = from.listed == static_cast<int>(from.entries.size());
  const std::string listed_at = format_rfc3339(from.listed_at);
  std::vector<api::BackupRecord> kept;
  for (auto& e : catalog) {
    const std::string id = e.id.value_or("");
    auto it = stored.find(id);
    if (it == stored.end()) {
      if (!complete || e.completion_time.value_or("") > listed_at) kept.push_back(e);
      continue;
    }
    known.insert(id);
    if (e.checksum.value_or("") != it->second->checksum) {
      e.checksum = it->second->checksum;
      e.verified = false;
      e.verified_by.reset();
      e.verified_marker.reset();
    }
    if (it->second->verified) e.verified = e.verified_marker = true;
    kept.push_back(e);
  }
  for (const auto& b : from.entries) {
    if (known.count(b.backup_id)) continue;
    api::BackupRecord entry;
    entry.id = b.backup_id;
    entry.checksum = b.checksum;
    entry.type = b.type;
    entry.start_time = format_rfc3339(b.start);
    entry.completion_time = format_rfc3339(b.finish);
    entry.size_bytes = b.size_bytes;
    entry.verified = entry.verified_marker = b.verified;
    entry.restorable = b.restorable;
    entry.kept_for.emplace();
    entry.job = job;
    if (!b.base.empty()) entry.base = b.base;
    if (!b.full.empty()) entry.full = b.full;
    if (!b.restorable)
      entry.not_restorable_reason = "the WAL from its start to its finish LSN was not all in storage "
                                    "when the catalog was read back from storage";
    kept.push_back(entry);
  }
  catalog = std::move(kept);
}

// A status that lost lastSuccessfulBackup gets the newest restorable backup storage holds.
void restore_last_successful(api::BackupPolicyStatus& status) {
  if (status.last_successful_backup) return;
  const api::BackupRecord* newest = nullptr;
  for (const auto& e : *status.backups)
    if (e.restorable.value_or(false) &&
        (!newest || e.completion_time.value_or("") > newest->completion_time.value_or("")))
      newest = &e;
  if (newest)
    status.last_successful_backup = api::BackupRef{newest->id.value_or(""), newest->checksum.value_or(""),
                                                   newest->type.value_or("full"), newest->completion_time.value_or("")};
}

}  // namespace

// The catalog is in step with storage once a catalog Job's result has been
// read into status.backups: status.schedules.catalog.lastScheduleTime holds
// that Job's slot. Its absence is the trigger for a sync: a new policy, one
// re-applied from git or restored by Velero without its status, or one from
// before the catalog Job existed. (schedules is a map in the CRD's schema, so
// the marker survives the API server's pruning without a schema change.)
bool catalog_synced(const api::BackupPolicyStatus& status) {
  if (!status.schedules) return false;
  const auto it = status.schedules->find("catalog");
  return it != status.schedules->end() && !it->second.last_schedule_time.value_or("").empty();
}

const api::BackupRecord* newest_full(const std::vector<api::BackupRecord>& catalog) {
  for (const auto& e : catalog)
    if (e.type.value_or("") == "full" && e.restorable.value_or(true)) return &e;
  return nullptr;
}

// The first succeeded catalog Job while the marker is missing; then the
// catalog newest first, and no longer than kMaxCatalog.
//
// status.backups holds at most kMaxCatalog entries, newest first. Retention
// bounds the catalog first (a year of hourly deltas and daily fulls under
// the default 7 daily + 4 weekly + 3 monthly peaks at 310 entries, 163 KB of
// status: the deltas of each kept full live as long as it does; measured by
// CatalogPlan.StatusStaysBoundedOverAYearOfHourlyBackups); the cap holds
// status far under the API server's object size whatever the retention. What falls off is still
// in storage, which the catalog Job reads back (run-job catalog).
void read_back_catalog(PolicyPlanning& p) {
  auto& catalog = p.catalog();
  if (!catalog_synced(p.status)) {
    for (const ObservedJob* j : p.finished) {
      if (j->action != "catalog" || j->state != ObservedJob::State::kSucceeded) continue;
      auto result = api::parse_catalog_result(j->termination_message);
      if (!result) continue;
      const size_t before = catalog.size();
      merge_catalog(catalog, *result, j->name);
      if (!p.status.schedules) p.status.schedules.emplace();
      p.schedules()["catalog"].last_schedule_time = format_rfc3339(j->slot);
      restore_last_successful(p.status);
      const size_t left_out = static_cast<size_t>(result->listed) - result->entries.size();
      p.plan.events.push_back(
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
  std::sort(catalog.begin(), catalog.end(), [](const api::BackupRecord& a, const api::BackupRecord& b) {
    return a.completion_time.value_or("") > b.completion_time.value_or("");
  });
  if (catalog.size() > kMaxCatalog) {
    p.plan.events.push_back({"Warning", "CatalogTruncated",
                             "status.backups keeps the newest " + std::to_string(kMaxCatalog) + " of " +
                                 std::to_string(catalog.size()) +
                                 " backups; the older ones are still in storage, outside retention's view (lower "
                                 "spec.retention, or delete them with wal-g)"});
    catalog.resize(kMaxCatalog);
  }
}

// Retention: mark what each backup is kept for; a retain Job deletes the rest.
void apply_retention_section(PolicyPlanning& p) {
  auto& catalog = p.catalog();
  std::vector<RetainedBackup> retained;
  for (const auto& e : catalog)
    retained.push_back({e.id.value_or(""), e.type.value_or(""), e.base.value_or(""),
                        parse_rfc3339(e.completion_time.value_or("")).value_or(p.in.now), e.verified.value_or(false),
                        e.full.value_or(""), e.restorable.value_or(true)});
  const auto& r = p.spec.retention;
  const auto decision = apply_retention(retained, {r.daily, r.weekly, r.monthly}, p.tz);
  for (auto& e : catalog) {
    auto it = decision.kept_for.find(e.id.value_or(""));
    e.kept_for = it == decision.kept_for.end() ? std::vector<std::string>{} : it->second;
  }
  const bool retain_running = std::any_of(p.in.jobs.begin(), p.in.jobs.end(), [](const ObservedJob& j) {
    return j.action == "retain" && j.state == ObservedJob::State::kActive;
  });
  // Not before the catalog is in step with storage: a catalog that is behind
  // would judge the wrong backups (and never see the ones it lacks).
  if (decision.expire.empty() || retain_running || p.spec.suspend || !p.synced) return;
  // Named by the newest expired backup: a restart asks for the same deletion, never a second Job.
  SysTime newest_expired{};
  for (const auto& b : retained)
    if (std::find(decision.expire.begin(), decision.expire.end(), b.id) != decision.expire.end())
      newest_expired = std::max(newest_expired, b.completion);
  const std::string name = job_name(p.name, Action::kRetain, newest_expired);
  if (p.job_exists(name)) return;
  JobInputs ji{p.in.policy, p.spec, Action::kRetain, newest_expired, p.storage_keys, p.in.default_image, decision.expire,
               "", "", "", 0};
  p.plan.create.push_back(build_job(ji));
  p.plan.create_events.push_back({"Normal", "RetentionScheduled", "created Job " + name + " to delete " +
                                                                     std::to_string(decision.expire.size()) +
                                                                     " expired backup(s)"});
}

}  // namespace bo::reconcile::policy_plan
