// Section of plan_restore for an in-place restore (in_place.h): with the
// target frozen throughout, stop the database, restore into its claim, start
// it and check it; status.inPlace.step records where it is, so an operator
// killed at any point carries on. Any failure keeps the freeze and the data
// moved aside, and the message says how to roll back.
#include <cmath>

#include "common/timefmt.h"
#include "kube/names.h"
#include "reconcile/in_place.h"
#include "reconcile/restore_plan_parts.h"

namespace bo::reconcile::restore_plan {
namespace {

using json = nlohmann::json;

// One look at an in-place restore: what it acts on, and the steps.
class InPlaceRestore {
 public:
  explicit InPlaceRestore(RestorePlanning& p)
      : p_(p),
        status_(p.status),
        ip_(*p.status.in_place),
        t_(InPlaceTarget::from_status(ip_)),
        step_(ip_.step.value_or("")),
        replicas_(ip_.replicas.value_or(1)),
        workload_(t_ ? t_->kind + " " + t_->name : std::string("the workload")) {
    ji_.request = p.name;
    ji_.request_ns = p.ns;
    ji_.request_uid = p.meta.value("uid", "");
    ji_.policy = p.spec->policy;
    ji_.backup_id = p.backup_id;
    ji_.checksum = p.checksum;
    ji_.point_in_time = p.spec->point_in_time;
    ji_.discard_current_data = p.spec->discard_current_data;
    for (const auto& e : p.in.policy.value("status", json::object()).value("backups", json::array()))
      if (e.value("id", "") == p.backup_id) ji_.uncompressed_bytes = e.value("uncompressedBytes", int64_t{0});
    if (t_) ji_.target = *t_;
    ji_.spec = &*p.policy_spec;
    if (auto it = p.in.secrets.find(p.policy_spec->storage.secret); it != p.in.secrets.end())
      for (const auto& [k, v] : it->second) ji_.storage_keys.push_back(k);
    ji_.operator_image = p.image;
    ji_.checks = p.spec->validation;
  }

  // Each step returns true when it is the one the request is at (and so decided the plan).
  bool stop_database();
  bool follow_restore_job();
  bool rerun_checks();
  bool follow_checks();

 private:
  void scale_to(int64_t n) {
    if (t_) p_.plan.scale = RestorePlan::Scale{t_->kind, p_.ns, t_->name, n};
  }
  const ObservedRestoreJob* find_role(const char* role, const std::string& jn) const {
    for (const auto& j : p_.in.jobs)
      if (j.role == role && j.name == jn) return &j;
    return nullptr;
  }
  // A step failed: the database stays as it is, the freeze stays, the message says how to roll back.
  bool fail(const char* reason, const char* validated_reason, const std::string& what, const std::string& aside_state);
  // A check Job's results into status.validation, replacing the same stage's.
  void record_checks(const ScratchResult& r, const char* stage);

  RestorePlanning& p_;
  api::RestoreRequestStatus& status_;
  api::InPlaceRecord& ip_;
  const std::optional<InPlaceTarget> t_;
  const std::string step_;
  const int64_t replicas_;
  const std::string workload_;
  InPlaceJobInputs ji_;
};

bool InPlaceRestore::fail(const char* reason, const char* validated_reason, const std::string& what,
                          const std::string& aside_state) {
  status_.phase = "Failed";
  status_.completion_time = format_rfc3339(p_.in.now);
  status_.message = p_.redact(what).substr(0, 2048) + "; " + workload_ + " stays " +
                    (aside_state == "restored" ? "running" : "stopped") + " and namespace " + p_.target + " frozen; " +
                    (t_ ? in_place_rollback(*t_, replicas_, aside_state) : std::string());
  p_.cond("Validated", "False", validated_reason, *status_.message);
  p_.cond("Ready", "False", reason, *status_.message);
  p_.event("Warning", reason, *status_.message);
  p_.plan.outcome = outcome_of("failure", p_.seconds_since_start());
  p_.plan.outcome->policy = p_.spec->policy;
  follow_freeze(p_);  // kept (made again if it went missing)
  return true;
}

void InPlaceRestore::record_checks(const ScratchResult& r, const char* stage) {
  std::vector<api::CheckResult> kept;
  for (const auto& c : status_.validation.value_or(std::vector<api::CheckResult>{}))
    if (c.stage.value_or("") != stage) kept.push_back(c);
  for (const auto& c : r.checks) {
    api::CheckResult check = api::check_result_from_json(c);
    check.output = p_.bounded_output(check.output.value_or(""));
    check.stage = stage;
    check.attempt = p_.attempt;
    kept.push_back(std::move(check));
  }
  status_.validation = bounded_validation(std::move(kept));
}

// Stopping: the freeze first (nobody scales it back meanwhile), then the workload to 0 and its pods gone.
bool InPlaceRestore::stop_database() {
  if (p_.phase != "Restoring" || step_ != kStepStopping) return false;
  const auto& in = p_.in;
  if (!in.freeze_present) {
    follow_freeze(p_);
    p_.plan.requeue_after = std::chrono::seconds(1);
    return true;
  }
  if (!in.workload) {
    p_.plan.requeue_after = std::chrono::seconds(1);
    return true;
  }
  if (!in.workload->found)
    return fail("RestoreFailed", "RestoreFailed", workload_ + " disappeared before the restore began", "untouched");
  if (in.workload->replicas != 0) {
    scale_to(0);
    if (!ip_.scaled_down.value_or(false)) {
      ip_.scaled_down = true;
      p_.event("Normal", "StoppingDatabase",
               "scaling " + workload_ + " from " + std::to_string(in.workload->replicas) + " to 0 replicas");
    }
    p_.plan.requeue_after = std::chrono::seconds(1);
    return true;
  }
  if (in.workload->pods > 0) {
    const std::string msg = "waiting for " + std::to_string(in.workload->pods) + " pod(s) of " + workload_ +
                            " to stop before restoring backup " + p_.backup_id;
    status_.message = msg;
    p_.cond("Ready", "False", "StoppingDatabase", msg);
    p_.plan.requeue_after = std::chrono::seconds(2);
    return true;
  }
  p_.plan.create.push_back(build_in_place_restore_job(ji_));
  ip_.step = kStepRestoring;
  status_.message = workload_ + " has stopped; Job " + in_place_restore_job_name(p_.name) + " restores backup " +
                    p_.backup_id + " into claim " + (t_ ? t_->claim : std::string("?"));
  p_.cond("Ready", "False", "Restoring", *status_.message);
  p_.event("Normal", "DatabaseStopped",
           workload_ + " has no pods left; Job " + in_place_restore_job_name(p_.name) + " moves the data directory \"" +
               (t_ ? t_->data_path : std::string()) + "\" aside to \"" + (t_ ? t_->aside_path : std::string()) +
               "\" (or, with spec.discardCurrentData and no room, deletes it) and restores backup " + p_.backup_id);
  return true;
}

// Restoring: the restore Job's result; a recovered database is started and checked.
bool InPlaceRestore::follow_restore_job() {
  if (p_.phase != "Restoring" || step_ != kStepRestoring) return false;
  const ObservedRestoreJob* job = find_role("in-place-restore", in_place_restore_job_name(p_.name));
  if (!job) {
    // Not in the cache yet, or deleted by hand: the same name, so never
    // two; the Job itself never fetches twice into the claim (src/jobs).
    p_.plan.create.push_back(build_in_place_restore_job(ji_));
    p_.plan.requeue_after = std::chrono::seconds(2);
    return true;
  }
  if (job->state == ObservedJob::State::kActive) return true;
  const json reported = json::parse(job->message, nullptr, false);
  const std::string aside = reported.is_object() ? reported.value("aside", "") : "";
  const bool discarded = reported.is_object() && reported.value("discarded", false) == true;
  const std::string aside_state = !aside.empty() ? "moved" : discarded ? "discarded" : "unknown";
  if (!aside.empty()) ip_.aside = aside;
  if (discarded) ip_.discarded = true;
  auto result = parse_scratch_result(job->message, {});
  if (result) {
    record_checks(*result, "recovery");
    status_.recovery = api::RecoveryRecord{result->recovered, std::nullopt, std::nullopt, std::nullopt};
    if (result->recovered) status_.recovery->seconds = result->recovery_seconds;
    if (!result->system_identifier.empty()) status_.recovery->system_identifier = result->system_identifier;
    if (!result->replay_lsn.empty()) status_.recovery->replay_lsn = result->replay_lsn;
  }
  if (!result || !result->passed || job->state == ObservedJob::State::kFailed) {
    std::string error = !result ? "InvalidResult: " + result.error()
                        : !result->error.empty() ? result->error
                        : !result->passed ? "check(s) failed on the recovered copy: " + result->failed_checks()
                                          : "the Job failed (" + job->failure + ")";
    if (job->state == ObservedJob::State::kFailed && !result && !job->failure.empty()) error = job->failure;
    return fail("RestoreFailed", "RecoveryFailed", "in-place restore of backup " + p_.backup_id + " failed: " + error,
                aside_state);
  }
  p_.attempt = 1;
  status_.validation_attempt = p_.attempt;
  status_.restored_time = format_rfc3339(p_.in.now);
  ip_.step = kStepChecking;
  ip_.system_identifier = result->system_identifier;
  p_.phase = "Validating";
  status_.phase = p_.phase;
  status_.message = "backup " + p_.backup_id + " recovered in " +
                    std::to_string(static_cast<long>(std::lround(result->recovery_seconds))) + " s; starting " +
                    workload_ + " with " + std::to_string(replicas_) + " replica(s) and checking it";
  p_.cond("Ready", "False", "Validating", *status_.message);
  p_.event("Normal", "DatabaseRestored",
           *status_.message + (aside.empty() ? std::string()
                                             : "; the data before the restore is at \"" + aside + "\" on claim " +
                                                   (t_ ? t_->claim : std::string("?"))));
  scale_to(replicas_);
  p_.plan.create.push_back(build_in_place_check_job(ji_, p_.attempt, result->system_identifier));
  return true;
}

// A rerun of failed checks, asked for by annotation.
bool InPlaceRestore::rerun_checks() {
  // Kept in status bounded as names are (status.validationRerun has a maxLength; an annotation may not).
  const std::string rerun = bounded_name(annotation(p_.in.request, kAnnotationRerun), kube::kMaxSubdomain);
  if (p_.phase != "Failed" || step_ != kStepChecking || rerun.empty() || rerun == status_.validation_rerun.value_or(""))
    return false;
  status_.validation_rerun = rerun;
  status_.validation_attempt = ++p_.attempt;
  p_.phase = "Validating";
  status_.phase = p_.phase;
  status_.completion_time.reset();
  status_.message = "checking the restored database again (attempt " + std::to_string(p_.attempt) + ")";
  p_.cond("Ready", "False", "Validating", *status_.message);
  p_.event("Normal", "ValidationRerun", *status_.message);
  p_.plan.create.push_back(build_in_place_check_job(ji_, p_.attempt, ip_.system_identifier.value_or("")));
  scale_to(replicas_);
  return true;
}

// Checking: the database runs again; its check Job's result lifts the freeze or keeps it.
bool InPlaceRestore::follow_checks() {
  if (p_.phase != "Validating" || step_ != kStepChecking) return false;
  const auto& in = p_.in;
  // Started again, as recorded (a crash between the scale and the status write repeats it).
  if (in.workload && in.workload->found && in.workload->replicas != replicas_) scale_to(replicas_);
  const ObservedRestoreJob* job = find_role("check", in_place_check_job_name(p_.name, p_.attempt));
  if (!job) {
    p_.plan.create.push_back(build_in_place_check_job(ji_, p_.attempt, ip_.system_identifier.value_or("")));
    p_.plan.requeue_after = std::chrono::seconds(2);
    return true;
  }
  if (job->state == ObservedJob::State::kActive) return true;
  auto result =
      parse_scratch_result(job->message, p_.spec->validation, {"recovered", "system-identifier", "writes-released"});
  if (result) record_checks(*result, "production");
  const std::string aside_state = ip_.aside ? "moved" : ip_.discarded.value_or(false) ? "discarded" : "unknown";
  if (!result || !result->passed || job->state == ObservedJob::State::kFailed) {
    const std::string error =
        !result ? "InvalidResult: " + result.error() + (job->failure.empty() ? "" : " (" + job->failure + ")")
        : !result->error.empty() ? result->error
        : !result->passed        ? "check(s) failed: " + result->failed_checks()
                                 : "the check Job failed (" + job->failure + ")";
    return fail("ValidationFailed", "ChecksFailed",
                "backup " + p_.backup_id + " was restored in place but the restored database did not pass: " + error +
                    "; it refuses writes (default_transaction_read_only = on); rerun the checks with kubectl "
                    "annotate restorerequest -n " + p_.ns + " " + p_.name + " " + kAnnotationRerun +
                    "=$(date +%s), or to keep it as it is run ALTER SYSTEM RESET default_transaction_read_only; "
                    "SELECT pg_reload_conf()",
                aside_state);
  }
  ip_.step = kStepDone;
  status_.phase = "Succeeded";
  status_.completion_time = format_rfc3339(in.now);
  status_.message = "backup " + p_.backup_id + " restored in place into " + workload_ + " and " +
                    std::to_string(result->checks.size()) + " check(s) passed against the running database" +
                    (ip_.aside ? "; the data before the restore is kept at \"" + *ip_.aside + "\" on claim " +
                                     ip_.claim.value_or("") + " (delete it when no longer needed)"
                               : std::string());
  p_.cond("Validated", "True", "ChecksPassed", *status_.message);
  p_.cond("MutationsBlocked", "False", "ChecksPassed", "the restored database passed its checks; the freeze is lifted");
  p_.cond("Ready", "True", "Succeeded", *status_.message);
  p_.event("Normal", "RestoreSucceeded", *status_.message);
  p_.plan.outcome = outcome_of("success", p_.seconds_since_start());
  p_.plan.outcome->policy = p_.spec->policy;
  p_.plan.outcome->recovery_seconds = status_.recovery ? status_.recovery->seconds.value_or(-1.0) : -1.0;
  follow_freeze(p_);
  return true;
}

}  // namespace

bool follow_in_place(RestorePlanning& p) {
  if (!p.in_place || !p.status.in_place) return false;
  InPlaceRestore restore(p);
  if (!(restore.stop_database() || restore.follow_restore_job() || restore.rerun_checks() || restore.follow_checks()))
    follow_freeze(p);
  return true;
}

}  // namespace bo::reconcile::restore_plan
