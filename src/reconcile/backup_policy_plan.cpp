// plan_backup_policy: the sections of one BackupPolicy reconcile, in order.
// Each is a function of its own (policy_plan_parts.h says where it lives)
// over the typed status (api/backup_policy_status.h), read once from the
// stored object and written once into PolicyPlan::status.
#include "reconcile/backup_policy_plan.h"

#include <algorithm>

#include "reconcile/policy_plan_parts.h"

namespace bo::reconcile {

namespace policy_plan {

PolicyPlanning::PolicyPlanning(const PlanInputs& in_, const api::BackupPolicySpec& spec_, api::BackupPolicyStatus& status_,
                               nlohmann::json& conditions_, PolicyPlan& plan_)
    : in(in_),
      spec(spec_),
      meta(in_.policy.at("metadata")),
      ns(meta.value("namespace", "")),
      name(meta.value("name", "")),
      gen(meta.value("generation", int64_t{0})),
      status(status_),
      conditions(conditions_),
      plan(plan_) {}

void PolicyPlanning::cond(const char* type, const char* st, const std::string& reason, const std::string& msg) {
  set_condition(conditions, type, st, reason, msg, gen, in.now);
}

bool PolicyPlanning::job_exists(const std::string& job_name) const {
  return std::any_of(in.jobs.begin(), in.jobs.end(), [&](const ObservedJob& j) { return j.name == job_name; });
}

std::string PolicyPlanning::last_slot(const std::string& action) const {
  if (!status.schedules) return "";
  const auto it = status.schedules->find(action);
  return it == status.schedules->end() ? "" : it->second.last_schedule_time.value_or("");
}

bool is_backup_action(const std::string& a) { return a == "backup" || a == "full-backup"; }

}  // namespace policy_plan

using namespace policy_plan;

std::expected<api::BackupPolicySpec, api::Problem> policy_spec(const PlanInputs& in) {
  if (in.spec) return *in.spec;
  return api::parse_backup_policy_spec(in.policy.value("spec", nlohmann::json::object()));
}

PolicyPlan plan_backup_policy(const PlanInputs& in) {
  PolicyPlan plan;
  api::BackupPolicyStatus status = api::backup_policy_status_from_json(in.policy.value("status", nlohmann::json::object()));
  nlohmann::json conditions = status.conditions.value_or(nlohmann::json::array());
  const int64_t gen = in.policy.at("metadata").value("generation", int64_t{0});
  Progress acting;  // what the operator is still doing for this generation (Reconciling)
  auto finish = [&]() -> PolicyPlan& {
    set_progress(conditions, policy_progress(conditions, acting), gen, in.now);
    status.conditions = conditions;
    status.observed_generation = gen;
    plan.status = api::to_json(status);
    return plan;
  };
  const auto spec = policy_spec(in);
  if (!spec) {
    set_condition(conditions, "Ready", "False", spec.error().reason, spec.error().message, gen, in.now);
    return finish();
  }
  PolicyPlanning p(in, *spec, status, conditions, plan);
  // What happened since the last look: recorded even while the spec is invalid.
  record_runs(p);
  read_back_catalog(p);
  record_restore_outcomes(p);
  trim_state_bundles(p);
  set_backup_healthy(p);
  apply_history_limits(p);
  list_active_jobs(p);
  // What to start: only for a valid policy whose Secrets exist.
  if (!check_validity(p)) {
    acting = p.acting;
    return finish();
  }
  check_data_volume(p);
  start_schedules(p);
  schedule_catalog_sync(p);
  schedule_backups(p);
  schedule_state_bundles(p);
  schedule_verification(p);
  prune_verifications(p);
  apply_retention_section(p);
  finish_schedules(p);
  // What it all adds up to.
  set_ready(p);
  set_continuous_archiving(p);
  set_verified(p);
  set_offsite_copy_current(p);
  set_state_bundle_healthy(p);
  set_drill_current(p);
  set_requeue(p);
  acting = p.acting;
  return finish();
}

}  // namespace bo::reconcile
