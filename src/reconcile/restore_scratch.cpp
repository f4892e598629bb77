// Sections of plan_restore for a verification or drill, which restores into
// a scratch instance (scratch.h) in the target namespace: one Job fetches,
// recovers and runs every check, Restoring → (Succeeded | Failed). A
// finished instance goes at once after a success, and keepFailedFor after a
// failure (freezing nothing: the target is not production).
#include <cmath>

#include "common/duration.h"
#include "common/timefmt.h"
#include "reconcile/data_volume.h"
#include "reconcile/restore_plan_parts.h"

namespace bo::reconcile::restore_plan {

using json = nlohmann::json;

std::expected<ScratchInputs, api::Problem> scratch_inputs(const RestorePlanning& p, const std::string& id,
                                                          const std::string& sum) {
  const auto& spec = *p.spec;
  const auto& policy = *p.policy_spec;
  const std::string pname = spec.policy;
  for (size_t i = 0; i < spec.validation.size(); ++i)
    if (!spec.validation[i].is_sql())
      return std::unexpected(api::Problem{
          "UnsupportedCheck", "spec.validation[" + std::to_string(i) + "].image",
          "spec.validation[" + std::to_string(i) + "] (" + spec.validation[i].name + "): a " + spec.purpose +
              " runs its checks inside the scratch instance, which nothing can reach over the network; give it as "
              "sql (image checks are for restores into a running target)"});
  if (policy.verification.storage_secret.empty())
    return std::unexpected(api::Problem{
        "StorageSecretRequired", "spec.verification.storageSecretRef.name",
        "BackupPolicy " + pname + ": spec.verification.storageSecretRef.name is required for a " + spec.purpose +
            ": a Secret in namespace " + p.target +
            " with the storage settings and the decryption key (production Secrets are never copied there)"});
  if (!p.in.verification_keys)
    return std::unexpected(api::Problem{
        "StorageSecretNotFound", "spec.verification.storageSecretRef.name",
        "BackupPolicy " + pname + ": spec.verification.storageSecretRef.name: Secret " +
            policy.verification.storage_secret + " not found in namespace " + p.target + ", where the " +
            spec.purpose + " runs"});
  const json policy_status = p.in.policy.value("status", json::object());
  const auto recorded = from_status(policy_status, data_volume_source(policy));
  ScratchInputs s;
  s.request = p.name;
  s.request_ns = p.ns;
  s.request_uid = p.meta.value("uid", "");
  s.target_ns = p.target;
  s.policy = pname;
  s.purpose = spec.purpose;
  s.backup_id = id;
  s.checksum = sum;
  s.point_in_time = spec.point_in_time;
  for (const auto& e : policy_status.value("backups", json::array()))
    if (e.value("id", "") == id) s.uncompressed_bytes = e.value("uncompressedBytes", int64_t{0});
  s.verification = policy.verification;
  s.profile = policy.profile;
  s.run_as_user = policy.database.run_as_user > 0 ? policy.database.run_as_user : recorded ? recorded->run_as_user : -1;
  s.run_as_group = policy.database.run_as_group >= 0 ? policy.database.run_as_group : recorded ? recorded->run_as_group : -1;
  if (s.run_as_user <= 0 || s.run_as_group < 0)
    return std::unexpected(api::Problem{
        "RunAsUserRequired", "spec.database.runAsUser",
        "BackupPolicy " + pname + ": the uid/gid PostgreSQL runs as is not known (PostgreSQL refuses root): set "
        "spec.database.runAsUser and runAsGroup, or name a spec.database.workloadRef whose pod sets them"});
  s.operator_image = p.image;
  s.database_image = !policy.verification.image.empty() ? policy.verification.image : recorded ? recorded->image : "";
  if (s.database_image.empty())
    return std::unexpected(api::Problem{
        "VerificationImageRequired", "spec.verification.image",
        "BackupPolicy " + pname + ": spec.verification.image is required: the scratch PostgreSQL runs the "
        "database's own image (with spec.database.workloadRef it defaults to the database container's image)"});
  s.image_pull_policy = policy.job_template.image_pull_policy;
  s.storage_keys = *p.in.verification_keys;  // the target's own Secret's keys, never production's
  s.encryption_key = policy.storage.encryption_secret.empty() ? "" : policy.storage.encryption_key;
  s.checks = spec.validation;
  s.node_selector = policy.job_template.node_selector;
  s.tolerations = policy.job_template.tolerations;
  return s;
}

void create_scratch(RestorePlanning& p, const ScratchInputs& s) {
  auto objects = build_scratch(s);
  p.plan.create.push_back(std::move(objects.network_policy));  // before the pod exists
  p.plan.create.push_back(std::move(objects.claim));
  p.plan.create.push_back(std::move(objects.job));
}

bool follow_scratch(RestorePlanning& p) {
  if (!p.scratch || p.phase != "Restoring") return false;
  const auto& in = p.in;
  auto& status = p.status;
  auto& plan = p.plan;
  const ObservedRestoreJob* job = nullptr;
  for (const auto& j : in.jobs)
    if (j.role == "scratch" && j.ns == p.target && j.name == p.scratch_obj) job = &j;
  if (!job) {
    // Not in the cache yet, or deleted by hand: ask again (the same names, so never two).
    if (auto s = scratch_inputs(p, p.backup_id, p.checksum)) create_scratch(p, *s);
    plan.requeue_after = std::chrono::seconds(2);
    return true;
  }
  if (job->state == ObservedJob::State::kActive) return true;
  auto result = parse_scratch_result(job->message, p.spec->validation);
  std::string error;
  if (!result) {
    error = job->state == ObservedJob::State::kFailed
                ? (job->failure.empty() ? std::string("the scratch Job failed") : job->failure) +
                      (job->message.empty() ? "" : ": " + job->message)
                : "InvalidResult: " + result.error();
  } else {
    error = result->error;
    if (error.empty() && result->passed && job->state == ObservedJob::State::kFailed)
      error = "the scratch Job failed (" + job->failure + ") although its result says every check passed";
    std::vector<api::CheckResult> checks;
    for (const auto& c : result->checks) {
      api::CheckResult r = api::check_result_from_json(c);
      r.output = p.bounded_output(r.output.value_or(""));
      r.attempt = 1;
      checks.push_back(std::move(r));
    }
    status.validation = bounded_validation(std::move(checks));
    status.recovery = api::RecoveryRecord{result->recovered, std::nullopt, std::nullopt, std::nullopt};
    if (result->recovered) status.recovery->seconds = result->recovery_seconds;
    if (!result->system_identifier.empty()) status.recovery->system_identifier = result->system_identifier;
    if (!result->replay_lsn.empty()) status.recovery->replay_lsn = result->replay_lsn;
  }
  error = p.redact(error).substr(0, 1024);
  status.completion_time = format_rfc3339(in.now);
  const std::string where = p.target + "/" + p.scratch_obj;
  plan.outcome = outcome_of("failure", p.seconds_since_start());
  plan.outcome->recovery_seconds = result && result->recovered ? result->recovery_seconds : -1;
  plan.outcome->policy = p.spec->policy;
  if (error.empty() && result && result->passed) {
    status.phase = "Succeeded";
    status.message = "backup " + p.backup_id + " restored into scratch instance " + where + ", recovered in " +
                     std::to_string(static_cast<long>(std::lround(result->recovery_seconds))) + " s, and " +
                     std::to_string(result->checks.size()) + " check(s) passed";
    p.cond("Validated", "True", "ChecksPassed", *status.message);
    p.cond("Ready", "True", "Succeeded", *status.message);
    p.event("Normal", "RestoreSucceeded", *status.message);
    plan.outcome->result = "success";
    return true;
  }
  const bool recovered = result && result->recovered && error.empty();
  const std::string failed = result ? result->failed_checks() : "";
  const auto keep = parse_duration(p.policy_spec->verification.keep_failed_for).value_or(std::chrono::hours(24));
  const std::string keep_until = format_rfc3339(in.now + std::chrono::duration_cast<std::chrono::seconds>(keep));
  if (!status.scratch) status.scratch.emplace();
  status.scratch->keep_until = keep_until;
  status.phase = "Failed";
  status.message = (recovered ? "backup " + p.backup_id + " recovered in " + where + " but check(s) failed: " + failed
                              : "backup " + p.backup_id + " did not restore in " + where + ": " + error) +
                   "; the scratch instance is kept until " + keep_until + " (spec.verification.keepFailedFor)";
  p.cond("Validated", "False", recovered ? "ChecksFailed" : "RecoveryFailed", *status.message);
  p.cond("Ready", "False", recovered ? "ChecksFailed" : "RecoveryFailed", *status.message);
  p.event("Warning", recovered ? "ValidationFailed" : "RestoreFailed", *status.message);
  plan.requeue_after = std::chrono::duration_cast<std::chrono::milliseconds>(keep) + std::chrono::seconds(1);
  return true;
}

// A finished scratch instance goes: at once after success, after keepFailedFor after a failure.
bool remove_finished_scratch(RestorePlanning& p) {
  if (!p.scratch || (p.phase != "Succeeded" && p.phase != "Failed") || !p.status.scratch ||
      p.status.scratch->removed.value_or(false))
    return false;
  const auto keep_until = parse_rfc3339(p.status.scratch->keep_until.value_or(""));
  if (p.phase == "Failed" && keep_until && p.in.now < *keep_until) {
    p.plan.requeue_after =
        std::chrono::duration_cast<std::chrono::milliseconds>(*keep_until - p.in.now) + std::chrono::seconds(1);
    return true;
  }
  p.plan.remove.emplace_back(p.target, p.scratch_obj);
  p.remove_scratch();
  p.status.scratch->removed = true;
  p.event("Normal", "ScratchRemoved",
          "deleted scratch instance " + p.target + "/" + p.scratch_obj + " (Job, claim, NetworkPolicy)");
  return true;
}

}  // namespace bo::reconcile::restore_plan
