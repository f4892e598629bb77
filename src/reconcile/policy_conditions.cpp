// Sections of plan_backup_policy that sum the plan up in conditions
// (BackupHealthy, Ready, ContinuousArchiving, Verified, OffsiteCopyCurrent,
// StateBundleHealthy, DrillCurrent; Reconciling and Stalled from Ready) and
// say when to look again.
#include <functional>

#include "common/duration.h"
#include "common/timefmt.h"
#include "reconcile/continuous_archiving.h"
#include "reconcile/policy_plan_parts.h"

namespace bo::reconcile::policy_plan {
namespace {

using json = nlohmann::json;

// A condition that follows the newest recorded run of some actions (recent
// runs are newest first): Unknown before any, True after a success, False
// with the Job's failure otherwise.
void run_health(PolicyPlanning& p, const std::function<bool(const std::string&)>& of_action, const char* type,
                std::pair<const char*, const char*> none, const char* ok_reason, const char* failed_reason) {
  for (const auto& r : *p.status.recent_runs) {
    if (!of_action(r.action.value_or(""))) continue;
    if (r.result.value_or("") == "Succeeded")
      p.cond(type, "True", ok_reason, "Job " + r.job.value_or("") + " succeeded");
    else
      p.cond(type, "False", failed_reason, "Job " + r.job.value_or("") + " failed: " + r.message.value_or(""));
    return;
  }
  p.cond(type, "Unknown", none.first, none.second);
}

}  // namespace

// BackupHealthy follows the newest finished backup run.
void set_backup_healthy(PolicyPlanning& p) {
  run_health(p, is_backup_action, "BackupHealthy", {"NoBackupYet", "no backup has finished yet"}, "LastBackupSucceeded",
             "BackupFailed");
}

void set_ready(PolicyPlanning& p) {
  const json* volume_cond = find_condition(p.conditions, "DataVolumeResolved");
  if (volume_cond && volume_cond->value("status", "") != "True")
    p.cond("Ready", volume_cond->value("status", "") == "False" ? "False" : "Unknown", volume_cond->value("reason", ""),
           volume_cond->value("message", ""));
  else if (p.spec.suspend)
    p.cond("Ready", "True", "Suspended", "valid and resolved; suspended, so no new runs start");
  else
    p.cond("Ready", "True", "Armed", p.next_any ? "schedules armed; next run at " + format_rfc3339(*p.next_any) : "armed");
}

// Reported, never gating Ready or the Jobs.
void set_continuous_archiving(PolicyPlanning& p) {
  json status = json::object();
  if (p.status.continuous_archiving) status["continuousArchiving"] = *p.status.continuous_archiving;
  apply_continuous_archiving(status, p.conditions, p.spec, p.in.secrets, p.in.archiving, p.gen, p.in.now);
  if (auto it = status.find("continuousArchiving"); it != status.end())
    p.status.continuous_archiving = *it;
  else
    p.status.continuous_archiving.reset();
}

// Verified: the newest verification restore, and whether it is recent (daily, so 26 hours).
void set_verified(PolicyPlanning& p) {
  const auto& last = p.status.last_verification;
  if (!p.spec.verification.enabled) {
    p.cond("Verified", "False", "VerificationDisabled",
           "spec.verification.enabled is false: the policy requires a daily verified restore");
  } else if (last && last->completion_time) {
    const std::string request = last->request.value_or(""), done = *last->completion_time;
    const auto at = parse_rfc3339(done).value_or(SysTime{});
    if (last->result.value_or("") != "Succeeded")
      p.cond("Verified", "False", "VerificationFailed",
             "RestoreRequest " + request + " could not verify backup " + last->backup_id.value_or("") +
                 (last->message ? ": " + *last->message : ""));
    else if (p.in.now - at > std::chrono::hours(26))
      p.cond("Verified", "False", "VerificationStale",
             "the newest verified restore (" + request + ") finished at " + done);
    else
      p.cond("Verified", "True", "Verified",
             "backup " + last->backup_id.value_or("") + " restored and validated by RestoreRequest " + request + " at " + done);
  } else {
    p.cond("Verified", "Unknown", "AwaitingVerification", "no verification restore has finished yet");
  }
}

void set_offsite_copy_current(PolicyPlanning& p) {
  const auto& last = p.status.last_offsite_copy;
  if (p.spec.offsite.secret.empty()) {
    p.cond("OffsiteCopyCurrent", "False", "NotConfigured",
           "spec.offsite.secretRef.name is not set: the policy requires an immutable offsite copy");
    return;
  }
  if (!last || !last->completion_time) {
    p.cond("OffsiteCopyCurrent", "Unknown", "NoCopyYet", "no offsite copy yet");
    return;
  }
  const std::string id = last->id.value_or(""), done = *last->completion_time;
  const std::string until_text = last->immutable_until.value_or("");
  const auto at = parse_rfc3339(done).value_or(SysTime{});
  const std::string copied = "backup " + id + " copied offsite at " + done;
  // Immutable only as the offsite store reported it: a date with the retention mode read back.
  const auto until = parse_rfc3339(until_text);
  const std::string mode = last->retention_mode.value_or("");
  const bool read_back = until && (mode == "GOVERNANCE" || mode == "COMPLIANCE");
  std::string unverified = last->immutability ? last->immutability->reason.value_or("") : "";
  if (unverified.empty()) unverified = "ImmutabilityUnverified";
  const std::string why = last->immutability ? last->immutability->message.value_or("") : "";
  // Daily copies: current while the newest is under 26 hours old.
  if (p.in.now - at > std::chrono::hours(26))
    p.cond("OffsiteCopyCurrent", "False", "CopyStale", "the newest offsite copy (" + id + ") is from " + done);
  else if (!read_back)
    p.cond("OffsiteCopyCurrent", "False", unverified,
           copied + ", but its immutability is unverified: " +
               (!why.empty() ? why : std::string("no Object Lock retention was read back from the offsite store")));
  else if (*until <= p.in.now)
    p.cond("OffsiteCopyCurrent", "False", "RetentionExpired", copied + ", but its Object Lock retention ended at " + until_text);
  else
    p.cond("OffsiteCopyCurrent", "True", "CopyCurrent",
           copied + ", Object Lock " + mode + " retention until " + until_text + " (read back from the store)");
}

// StateBundleHealthy follows the newest finished state-bundle run.
void set_state_bundle_healthy(PolicyPlanning& p) {
  if (!p.spec.paas_state.enabled) {
    remove_condition(p.conditions, "StateBundleHealthy");
    return;
  }
  run_health(p, [](const std::string& a) { return a == "state-bundle"; }, "StateBundleHealthy",
             {"NoBundleYet", "no state bundle has finished yet"}, "LastBundleSucceeded", "BundleFailed");
}

void set_drill_current(PolicyPlanning& p) {
  const auto& spec = p.spec;
  const auto drill_interval = parse_duration(spec.drill_interval).value_or(std::chrono::hours(2160));
  const auto& drill = p.status.last_drill;
  if (spec.environment != "production") {
    p.cond("DrillCurrent", "True", "NotRequired", "restore drills are required for production only");
  } else if (drill && drill->completion_time) {
    const auto at = parse_rfc3339(*drill->completion_time).value_or(SysTime{});
    if (p.in.now - at <= drill_interval)
      p.cond("DrillCurrent", "True", "DrillSucceeded",
             "RestoreRequest " + drill->request.value_or("") + " drilled backup " + drill->backup_id.value_or("") + " at " +
                 *drill->completion_time);
    else
      p.cond("DrillCurrent", "False", "DrillOverdue",
             "the newest successful drill (" + drill->request.value_or("") + ") is older than spec.drills.interval " +
                 spec.drill_interval);
  } else if (p.in.now - p.created > drill_interval) {
    p.cond("DrillCurrent", "False", "DrillOverdue",
           "no successful restore drill since the policy was created; spec.drills.interval is " + spec.drill_interval);
  } else {
    p.cond("DrillCurrent", "Unknown", "NoDrillYet", "no restore drill has run yet");
  }
}

// The next slot of any schedule, or the catalog sync's retry, whichever comes first.
void set_requeue(PolicyPlanning& p) {
  std::optional<SysTime> wake = p.next_any;
  if (p.catalog_retry && (!wake || *p.catalog_retry < *wake)) wake = p.catalog_retry;
  if (!wake) return;
  // Rounded up, plus a hair: woken a millisecond early, the slot would not
  // be due yet and the next look would come only after the floor.
  const auto wait = std::chrono::ceil<std::chrono::milliseconds>(*wake - p.in.now) + std::chrono::milliseconds(2);
  p.plan.requeue_after = std::max(wait, std::chrono::milliseconds(10));
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

}  // namespace bo::reconcile::policy_plan
