// The sections of plan_backup_policy (backup_policy_plan.cpp), one function
// each, in the order the plan runs them. They share one PolicyPlanning: the
// inputs and the parsed spec (read only), the typed status and the plan
// being built, and what an earlier section found that a later one needs.
// Where each lives:
//   policy_runs.cpp          outcomes of finished runs, state-bundle records, history limits, active Jobs
//   policy_catalog.cpp       the catalog read back from storage, retention
//   policy_verification.cpp  verification and drill outcomes, verification slots, finished verifications
//   policy_schedules.cpp     validity and the data volume, schedules (catalog sync, backups, state bundles)
//   policy_conditions.cpp    the conditions that sum it up, and when to look again
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <date/tz.h>
#include <nlohmann/json.hpp>

#include "api/backup_policy.h"
#include "api/backup_policy_status.h"
#include "reconcile/backup_policy_plan.h"
#include "reconcile/conditions.h"

namespace bo::reconcile::policy_plan {

struct PolicyPlanning {
  PolicyPlanning(const PlanInputs& in, const api::BackupPolicySpec& spec, api::BackupPolicyStatus& status,
                 nlohmann::json& conditions, PolicyPlan& plan);

  const PlanInputs& in;
  const api::BackupPolicySpec& spec;
  const nlohmann::json& meta;  // the policy's metadata
  const std::string ns, name;
  const int64_t gen;
  api::BackupPolicyStatus& status;
  nlohmann::json& conditions;  // status.conditions, written when the plan ends
  PolicyPlan& plan;

  // Finished Jobs, oldest slot first (record_runs).
  std::vector<const ObservedJob*> finished;
  // status.paasState.bundles with what record_runs added; written by
  // trim_state_bundles only when it grew.
  std::vector<api::StateBundleRecord> state_bundles;
  size_t state_bundles_before = 0;
  // What the operator is still doing for this generation (Reconciling).
  Progress acting;
  // The data volume (check_data_volume).
  std::optional<DataVolumeCheck> volume;
  bool volume_ok = false;
  std::string data_directory;  // the server's, from the archiving probe
  bool data_dir_ok = true;
  // Schedules (start_schedules and the schedule_* sections).
  const date::time_zone* tz = nullptr;
  SysTime created;
  std::vector<std::string> storage_keys;
  bool synced = false;                    // the catalog is in step with storage (or its sync is off)
  std::optional<SysTime> next_any;        // the soonest slot of any schedule
  std::optional<SysTime> catalog_retry;   // a failed catalog sync's next attempt, when it is not due yet
  bool created_backup = false;            // a backup Job is created by this plan

  void cond(const char* type, const char* st, const std::string& reason, const std::string& msg);
  [[nodiscard]] std::vector<api::BackupRecord>& catalog() { return *status.backups; }
  [[nodiscard]] std::map<std::string, api::ScheduleMark>& schedules() { return *status.schedules; }
  [[nodiscard]] bool job_exists(const std::string& job_name) const;
  // status.schedules.<action>.lastScheduleTime ("" when none), read without adding the action.
  [[nodiscard]] std::string last_slot(const std::string& action) const;
};

[[nodiscard]] bool is_backup_action(const std::string& action);
// A RestoreRequest phase nothing follows.
[[nodiscard]] bool is_final(const std::string& phase);
// status.schedules.catalog.lastScheduleTime: a catalog Job's result has been read into status.backups.
[[nodiscard]] bool catalog_synced(const api::BackupPolicyStatus& status);
// The newest full backup that can be restored (the catalog is newest first); none when there is none.
[[nodiscard]] const api::BackupRecord* newest_full(const std::vector<api::BackupRecord>& catalog);

// --- outcomes of finished runs: recorded once, even while the spec is invalid (policy_runs.cpp) ---
void record_runs(PolicyPlanning& p);
// --- the catalog read back from storage (policy_catalog.cpp) ---
void read_back_catalog(PolicyPlanning& p);
// --- verification and drill outcomes (policy_verification.cpp) ---
void record_restore_outcomes(PolicyPlanning& p);
// State bundles, the history limits and the active Jobs (policy_runs.cpp).
void trim_state_bundles(PolicyPlanning& p);
void apply_history_limits(PolicyPlanning& p);
void list_active_jobs(PolicyPlanning& p);
// --- validity: spec, then Secrets; false when the policy cannot be acted on (policy_schedules.cpp) ---
[[nodiscard]] bool check_validity(PolicyPlanning& p);
void check_data_volume(PolicyPlanning& p);
// --- schedules (policy_schedules.cpp) ---
void start_schedules(PolicyPlanning& p);
void schedule_catalog_sync(PolicyPlanning& p);
void schedule_backups(PolicyPlanning& p);
// --- PaaS-state bundles (policy_schedules.cpp) ---
void schedule_state_bundles(PolicyPlanning& p);
// --- verification (policy_verification.cpp) ---
void schedule_verification(PolicyPlanning& p);
void prune_verifications(PolicyPlanning& p);
// --- retention (policy_catalog.cpp) ---
void apply_retention_section(PolicyPlanning& p);
void finish_schedules(PolicyPlanning& p);
// --- conditions (policy_conditions.cpp) ---
void set_backup_healthy(PolicyPlanning& p);
void set_ready(PolicyPlanning& p);
void set_continuous_archiving(PolicyPlanning& p);
void set_verified(PolicyPlanning& p);
void set_offsite_copy_current(PolicyPlanning& p);
void set_state_bundle_healthy(PolicyPlanning& p);
void set_drill_current(PolicyPlanning& p);
void set_requeue(PolicyPlanning& p);
// Reconciling and Stalled from Ready and p.acting.
[[nodiscard]] Progress policy_progress(const nlohmann::json& conditions, const Progress& acting);

}  // namespace bo::reconcile::policy_plan
