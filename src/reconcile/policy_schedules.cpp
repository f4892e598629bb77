// Sections of plan_backup_policy that decide what to start: whether the
// policy can be acted on (a valid spec, its Secrets, the data volume), then
// each schedule's due slot: the catalog sync, the backups and offsite
// copies, and the PaaS-state bundles.
#include <algorithm>

#include "api/job_result.h"
#include "common/timefmt.h"
#include "reconcile/policy_plan_parts.h"

namespace bo::reconcile::policy_plan {
namespace {

using json = nlohmann::json;

std::string join_messages(const std::vector<api::Problem>& ps) {
  std::string out;
  for (const auto& p : ps) out += (out.empty() ? "" : "; ") + p.message;
  return out;
}

// A schedule's slots since its last recorded one (or the policy's creation).
SlotPlan slots_of(const PolicyPlanning& p, const std::string& action, const std::string& expr) {
  const auto cron = *schedule::Cron::parse(expr);
  const auto since = parse_rfc3339(p.last_slot(action)).value_or(p.created);
  return plan_slots(cron, p.tz, since, p.in.now, std::chrono::seconds(p.spec.schedule.starting_deadline_seconds));
}

void note_next(PolicyPlanning& p, const SlotPlan& slots) {
  if (slots.next && (!p.next_any || *slots.next < *p.next_any)) p.next_any = slots.next;
}

void count_missed(PolicyPlanning& p, int missed, const std::string& message) {
  *p.status.missed_schedules += missed;
  p.plan.new_missed += missed;
  p.plan.events.push_back({"Warning", "MissedSchedule", std::to_string(missed) + " " + message});
}

}  // namespace

// Spec, then Secrets.
bool check_validity(PolicyPlanning& p) {
  const auto problems = api::validate(p.spec, p.ns, p.in.operator_namespace);
  if (!problems.empty()) {
    p.cond("Ready", "False", problems[0].reason, join_messages(problems));
    return false;
  }
  const auto secret_problems = api::check_secrets(p.spec, p.in.secrets);
  if (!secret_problems.empty()) {
    p.cond("SecretsResolved", "False", secret_problems[0].reason, join_messages(secret_problems));
    p.cond("Ready", "False", secret_problems[0].reason, join_messages(secret_problems));
    return false;
  }
  p.cond("SecretsResolved", "True", "Resolved", "every referenced Secret and key is present");
  return true;
}

// The data volume, checked in the background before any backup Job: a
// missing or ReadWriteOncePod claim, or a workload without a running pod,
// is known before a Job would fail on it. And wal-g backup-push refuses a
// PGDATA that is not the server's data_directory: known before any Job
// runs, so none is started.
void check_data_volume(PolicyPlanning& p) {
  const auto& spec = p.spec;
  const std::string volume_source = data_volume_source(spec);
  p.volume = p.in.data_volume;
  if (!p.volume) {
    // Pending after an operator restart: the volume last resolved for this
    // same spec, while the condition still says so, keeps due backups going.
    const json* c = find_condition(p.conditions, "DataVolumeResolved");
    json recorded = json::object();
    if (p.status.data_volume) recorded["dataVolume"] = *p.status.data_volume;
    if (auto last = from_status(recorded, volume_source); last && c && c->value("status", "") == "True") {
      p.volume.emplace();
      p.volume->resolved = true;
      p.volume->volume = *last;
    }
  }
  p.volume_ok = p.volume && p.volume->resolved;
  if (p.in.data_volume && p.volume_ok) {
    p.cond("DataVolumeResolved", "True", "Resolved", p.in.data_volume->message);
    p.status.data_volume = to_status(p.in.data_volume->volume, volume_source);
  } else if (p.in.data_volume) {
    p.cond("DataVolumeResolved", "False", p.in.data_volume->reason, p.in.data_volume->message);
    p.status.data_volume.reset();
  } else if (!find_condition(p.conditions, "DataVolumeResolved")) {
    // Kept as it was while a check is pending (an operator restart forgets no fact, and writes nothing).
    p.cond("DataVolumeResolved", "Unknown", "DataVolumePending",
           std::string(spec.database.has_workload_ref ? "spec.database.workloadRef" : "spec.database.dataVolume.claimName") +
               ": the check of the data volume has not finished; no backup Job starts before it has");
  }
  const std::string mount = p.volume_ok ? p.volume->volume.mount_path : spec.database.data_volume.mount_path;
  p.data_directory = p.in.archiving ? p.in.archiving->data_directory : "";
  const std::string& dir = p.data_directory;
  p.data_dir_ok = dir.empty() || (!p.volume_ok && spec.database.has_workload_ref) || dir == mount || mount == "/" ||
                  dir.starts_with(mount.ends_with("/") ? mount : mount + "/");
  if (!p.data_dir_ok)
    p.cond("BackupHealthy", "False", "DataDirectoryMismatch",
           std::string(spec.database.has_workload_ref ? "spec.database.workloadRef: the database pod's mount "
                                                      : "spec.database.dataVolume.mountPath ") +
               mount + " does not hold the server's data_directory " + dir +
               ": wal-g backup-push would refuse it; mount the claim where the server has it");
}

void start_schedules(PolicyPlanning& p) {
  p.tz = *schedule::find_zone(p.spec.schedule.time_zone);
  p.created = parse_rfc3339(p.meta.value("creationTimestamp", "")).value_or(p.in.now);
  if (!p.status.schedules) p.status.schedules.emplace();
  p.status.missed_schedules = p.status.missed_schedules.value_or(0);
  if (auto it = p.in.secrets.find(p.spec.storage.secret); it != p.in.secrets.end())
    for (const auto& [k, v] : it->second) p.storage_keys.push_back(k);
  p.synced = !p.in.sync_catalog || catalog_synced(p.status);
}

// A catalog Job reads status.backups back from storage while the catalog is not synced.
void schedule_catalog_sync(PolicyPlanning& p) {
  if (p.synced || p.spec.suspend) return;
  p.acting = {Progress::State::kReconciling, "CatalogSyncing",
              "a catalog Job reads the backups in storage back into status.backups; retention waits for it"};
  // One catalog Job per sync, named by its slot: the policy's creation, or
  // when the previous attempt failed (a retry gets a name of its own, so
  // its outcome is recorded too). A restart computes the same name.
  SysTime slot = p.created;
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
  for (const auto& j : p.in.jobs)
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
  const std::string name = job_name(p.name, Action::kCatalog, slot);
  if (slot > p.in.now) {
    p.catalog_retry = slot;  // not yet: the requeue wakes the policy then
  } else if (!p.job_exists(name)) {
    JobInputs ci{p.in.policy, p.spec, Action::kCatalog, slot, p.storage_keys, p.in.default_image, {}, "", "", "", 0};
    p.plan.create.push_back(build_job(ci));
    p.plan.create_events.push_back({"Normal", "JobCreated", "created Job " + name +
                                                                " to read the backup catalog back from storage "
                                                                "(status.backups is not known to match it)"});
  }
}

// Full and delta backups, and offsite copies of the newest full backup.
void schedule_backups(PolicyPlanning& p) {
  const auto& spec = p.spec;
  const bool any_active_backup = std::any_of(p.in.jobs.begin(), p.in.jobs.end(), [](const ObservedJob& j) {
    return j.state == ObservedJob::State::kActive && is_backup_action(j.action);
  });
  std::optional<SysTime> full_slot_now;
  std::vector<std::pair<Action, std::string>> order = {{Action::kFullBackup, spec.schedule.full_backup},
                                                       {Action::kBackup, spec.schedule.backup}};
  if (!spec.offsite.secret.empty()) order.push_back({Action::kOffsiteCopy, spec.offsite.schedule});
  // The newest full backup is what an offsite copy copies.
  const api::BackupRecord* full = newest_full(p.catalog());
  const std::string newest_full_id = full ? full->id.value_or("") : "";
  for (const auto& [action, expr] : order) {
    const std::string aname = action_name(action);
    const bool backup = action == Action::kBackup || action == Action::kFullBackup;
    const auto slots = slots_of(p, aname, expr);
    note_next(p, slots);
    if (!slots.latest) continue;
    // Until the data volume resolves, backup slots stay unrecorded: a pending
    // check (an operator restart) runs the slot once it ends, inside the
    // starting deadline; a failing one counts them missed when it clears.
    if (!p.volume_ok && backup) continue;
    p.schedules()[aname].last_schedule_time = format_rfc3339(*slots.latest);
    if (spec.suspend) continue;  // suspended slots are skipped on purpose, not missed
    if (slots.missed > 0)
      count_missed(p, slots.missed,
                   aname + " slot(s) passed without a run (operator down or startingDeadlineSeconds exceeded)");
    if (!slots.run) continue;
    if (!p.data_dir_ok && backup) continue;
    if (action == Action::kFullBackup) full_slot_now = slots.run;
    // A delta due at the same instant as a full backup adds nothing.
    if (action == Action::kBackup && full_slot_now && *full_slot_now == *slots.run) continue;
    const std::string name = job_name(p.name, action, *slots.run);
    if (p.job_exists(name)) continue;
    if (action == Action::kOffsiteCopy) {
      if (newest_full_id.empty()) {
        p.plan.events.push_back({"Warning", "NoBackupToCopy",
                                 "the " + format_rfc3339(*slots.run) + " offsite-copy slot found no full backup to copy"});
        continue;
      }
      JobInputs oi{p.in.policy, spec, action, *slots.run, p.storage_keys, p.in.default_image, {}, newest_full_id, "", "", 0};
      p.plan.create.push_back(build_job(oi));
      p.plan.create_events.push_back({"Normal", "JobCreated", "created Job " + name + " to copy " + newest_full_id + " offsite"});
      continue;
    }
    if ((any_active_backup || p.created_backup) && spec.schedule.concurrency_policy == "Forbid") {
      p.plan.events.push_back({"Normal", "SkippedConcurrent",
                               "skipped the " + format_rfc3339(*slots.run) + " " + aname +
                                   " slot: a backup is still running (concurrencyPolicy Forbid)"});
      continue;
    }
    if (any_active_backup && spec.schedule.concurrency_policy == "Replace")
      for (const auto& j : p.in.jobs)
        if (j.state == ObservedJob::State::kActive && is_backup_action(j.action)) p.plan.remove.push_back(j.name);
    JobInputs ji{p.in.policy, spec, action, *slots.run, p.storage_keys, p.in.default_image, {}, "", "", "", 0};
    ji.delta_max_steps = delta_max_steps(*schedule::Cron::parse(spec.schedule.backup),
                                         *schedule::Cron::parse(spec.schedule.full_backup), p.tz, *slots.run);
    ji.data_directory = p.data_directory;
    ji.data_volume = p.volume->volume;
    for (const auto& e : p.catalog()) {  // newest first
      if (ji.verified_markers.size() == kMarkersPerJob) break;
      if (e.verified.value_or(false) && !e.verified_marker.value_or(false) && !e.checksum.value_or("").empty())
        ji.verified_markers.push_back(e.id.value_or("") + "@" + e.checksum.value_or("") + "@" + e.verified_by.value_or(""));
    }
    p.plan.create.push_back(build_job(ji));
    p.created_backup = true;
    p.plan.create_events.push_back({"Normal", "JobCreated", "created Job " + name + " for the " +
                                                                format_rfc3339(*slots.run) + " " + aname + " slot"});
  }
  // A new policy's first backup: in progress until its Job reports.
  const auto& recent = *p.status.recent_runs;
  const bool backup_recorded =
      p.status.last_successful_backup || !p.catalog().empty() ||
      std::any_of(recent.begin(), recent.end(), [](const api::RunRecord& r) { return is_backup_action(r.action.value_or("")); });
  if (p.acting.state == Progress::State::kSteady && (any_active_backup || p.created_backup) && !backup_recorded)
    p.acting = {Progress::State::kReconciling, "FirstBackupRunning", "the policy's first backup Job has not reported yet"};
}

// One Job per context (or one for every context) per slot.
void schedule_state_bundles(PolicyPlanning& p) {
  const auto& ps = p.spec.paas_state;
  if (!ps.enabled) return;
  const auto slots = slots_of(p, "state-bundle", ps.schedule);
  note_next(p, slots);
  if (slots.latest) p.schedules()["state-bundle"].last_schedule_time = format_rfc3339(*slots.latest);
  if (!slots.latest || p.spec.suspend) return;
  if (slots.missed > 0) count_missed(p, slots.missed, "state-bundle slot(s) passed without a run");
  for (const auto& context : slots.run ? ps.contexts : std::vector<std::string>{}) {
    const std::string name = job_name(p.name, Action::kStateBundle, *slots.run, context);
    if (p.job_exists(name)) continue;
    const std::string label = context == "*" ? "all" : context;
    if (std::any_of(p.in.jobs.begin(), p.in.jobs.end(), [&](const ObservedJob& j) {
          return j.state == ObservedJob::State::kActive && j.action == "state-bundle" && j.context == label;
        })) {
      p.plan.events.push_back({"Normal", "SkippedConcurrent", "skipped the " + format_rfc3339(*slots.run) +
                                                                  " state-bundle slot for context " + label +
                                                                  ": the previous bundle is still running"});
      continue;
    }
    JobInputs si{p.in.policy, p.spec, Action::kStateBundle, *slots.run, p.storage_keys, p.in.default_image, {}, "", context,
                 "", 0};
    p.plan.create.push_back(build_job(si));
    p.plan.create_events.push_back({"Normal", "JobCreated", "created Job " + name +
                                                                " to bundle the PaaS state of context " + label + " (" +
                                                                format_rfc3339(*slots.run) + " slot)"});
  }
}

// status.lastScheduleTime (the newest slot of any schedule but the catalog's) and nextScheduleTime.
void finish_schedules(PolicyPlanning& p) {
  std::string last_schedule;
  for (const auto& [a, mark] : p.schedules())
    if (a != "catalog") last_schedule = std::max(last_schedule, mark.last_schedule_time.value_or(""));
  if (!last_schedule.empty()) p.status.last_schedule_time = last_schedule;
  if (p.next_any) p.status.next_schedule_time = format_rfc3339(*p.next_any);
}

}  // namespace bo::reconcile::policy_plan
