// Sections of plan_restore that set its conditions and outcome across the
// phases: Blocked, a restore whose policy vanished mid-run, and, once per
// plan, Reconciling and Stalled (kstatus) with the status written.
#include "common/timefmt.h"
#include "reconcile/restore_plan_parts.h"

namespace bo::reconcile::restore_plan {
namespace {

using json = nlohmann::json;

// Reconciling and Stalled (kstatus) from the phase: a final failure (Blocked,
// Failed) waits for a human, with Ready's reason; anything before Succeeded is
// in progress.
Progress restore_progress(const std::string& phase, const json& conditions) {
  using State = Progress::State;
  const json* ready = find_condition(conditions, "Ready");
  const std::string reason = ready ? ready->value("reason", "") : "", message = ready ? ready->value("message", "") : "";
  if (phase == "Succeeded") return {};
  if (phase == "Blocked" || phase == "Failed") return {State::kStalled, reason.empty() ? phase : reason, message};
  if (ready && ready->value("status", "") != "True" && !reason.empty()) return {State::kReconciling, reason, message};
  return {State::kReconciling, "Pending", "the operator has not started the restore yet"};
}

}  // namespace

bool block(RestorePlanning& p, const std::string& reason, const std::string& message) {
  p.phase = "Blocked";
  p.status.phase = p.phase;
  p.status.message = message;
  p.cond("Blocked", "True", reason, message);
  p.cond("Ready", "False", reason, message);
  if (!p.status.completion_time) p.status.completion_time = format_rfc3339(p.in.now);
  p.event("Warning", "RestoreBlocked", message);
  p.plan.outcome = outcome_of("blocked", 0);
  return true;
}

bool block_once(RestorePlanning& p, const std::string& reason, const std::string& message) {
  if (p.phase != "Blocked" || p.status.message.value_or("") != message) block(p, reason, message);
  return true;
}

// The spec is immutable; a vanished policy mid-run fails the run.
bool fail_without_policy(RestorePlanning& p) {
  if (p.spec && p.policy_spec) return false;
  if (p.phase == "Restoring" || p.phase == "Validating") {
    auto& status = p.status;
    status.phase = "Failed";
    status.message = "BackupPolicy " + (p.spec ? p.spec->policy : std::string("?")) + " disappeared during the restore";
    status.completion_time = format_rfc3339(p.in.now);
    p.cond("Ready", "False", "PolicyNotFound", *status.message);
    p.event("Warning", "RestoreFailed", *status.message);
    p.plan.outcome = outcome_of("failure", p.seconds_since_start());
  }
  return true;
}

void finish(RestorePlanning& p) {
  set_progress(p.conditions, restore_progress(p.status.phase.value_or(""), p.conditions), p.gen, p.in.now);
  p.status.conditions = p.conditions;
  p.status.observed_generation = p.gen;
  p.plan.status = api::to_json(p.status);
}

}  // namespace bo::reconcile::restore_plan
