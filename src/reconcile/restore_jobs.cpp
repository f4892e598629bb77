// Sections of plan_restore for a restore into a namespace or another claim:
// one restore Job (the operator's image, `run-job restore`) fetches the
// backup and reports what it restored; Restoring → Validating when it matches
// the backup the request fixed, Failed when not.
#include "common/timefmt.h"
#include "kube/names.h"
#include "reconcile/restore_plan_parts.h"

namespace bo::reconcile::restore_plan {

using json = nlohmann::json;

std::string create_restore_job(RestorePlanning& p, const std::string& id, const std::string& sum) {
  const auto& in = p.in;
  const auto& spec = *p.spec;
  const auto& policy = *p.policy_spec;
  JobInputs ji{in.policy, policy, spec.purpose == "verification" ? Action::kVerify : Action::kRestore, in.now,
               {}, p.image, {}, "", "", "", 0};
  if (auto it = in.secrets.find(policy.storage.secret); it != in.secrets.end())
    for (const auto& [k, v] : it->second) ji.storage_keys.push_back(k);
  json job = build_job(ji);
  const std::string job_name = bounded_name(p.name + "-restore");
  job["metadata"]["name"] = job_name;
  job["metadata"]["labels"][kLabelRestoreRequest] = kube::label_value(p.name);
  job["metadata"]["ownerReferences"] = json::array({p.owner_ref()});
  job["metadata"]["annotations"].erase(kAnnotationSlot);
  job["spec"]["template"]["metadata"]["labels"][kLabelRestoreRequest] = kube::label_value(p.name);
  auto& env = job["spec"]["template"]["spec"]["containers"][0]["env"];
  env.push_back({{"name", "BACKUP_ID"}, {"value", id}});
  env.push_back({{"name", "BACKUP_CHECKSUM"}, {"value", sum}});
  env.push_back({{"name", "RESTORE_PURPOSE"}, {"value", spec.purpose}});
  env.push_back({{"name", "TARGET_NAMESPACE"}, {"value", p.target}});
  env.push_back({{"name", "RESTORE_REQUEST"}, {"value", p.rr_ref}});
  if (!spec.point_in_time.empty()) env.push_back({{"name", "POINT_IN_TIME"}, {"value", spec.point_in_time}});
  job["spec"]["template"]["spec"]["containers"][0]["args"] = {"run-job", "restore"};
  auto& pod = job["spec"]["template"]["spec"];
  if (const auto& tv = spec.target_volume; !tv.claim_name.empty()) {
    // Into the claim the restored server will run on, owned by the
    // database's uid/gid (fsGroup makes a fresh claim writable for it).
    json mount = {{"name", "restore"}, {"mountPath", tv.mount_path}};
    if (!tv.sub_path.empty()) mount["subPath"] = tv.sub_path;
    pod["containers"][0]["volumeMounts"].push_back(mount);
    pod["volumes"].push_back({{"name", "restore"}, {"persistentVolumeClaim", {{"claimName", tv.claim_name}}}});
    env.push_back({{"name", "PGDATA"}, {"value", tv.mount_path}});
    const auto& db = policy.database;
    if (db.run_as_user > 0) pod["securityContext"]["runAsUser"] = db.run_as_user;
    if (db.run_as_group >= 0) {
      pod["securityContext"]["runAsGroup"] = db.run_as_group;
      pod["securityContext"]["fsGroup"] = db.run_as_group;
      pod["securityContext"]["fsGroupChangePolicy"] = "OnRootMismatch";
    }
  } else {
    pod["containers"][0]["volumeMounts"].push_back({{"name", "restore"}, {"mountPath", "/var/lib/postgresql/restore"}});
    pod["volumes"].push_back({{"name", "restore"}, {"emptyDir", json::object()}});
    env.push_back({{"name", "PGDATA"}, {"value", "/var/lib/postgresql/restore"}});
  }
  p.plan.create.push_back(std::move(job));
  return job_name;
}

bool follow_restore_job(RestorePlanning& p) {
  if (p.phase != "Restoring") return false;
  auto& status = p.status;
  const std::string jn = status.job_name.value_or("");
  const ObservedRestoreJob* job = p.find_job(jn);
  if (!job) {
    // Not in the cache yet, or deleted by hand: ask for it again (same name, so never two).
    create_restore_job(p, p.backup_id, p.checksum);
    p.plan.requeue_after = std::chrono::seconds(2);
    return true;
  }
  if (job->state == ObservedJob::State::kActive) return true;
  std::string error;
  const json reported = json::parse(job->message, nullptr, false);
  if (job->state == ObservedJob::State::kFailed) {
    error = reported.is_object() && reported.contains("error") && reported["error"].is_string()
                ? reported["error"].get<std::string>()
                : job->failure;
    if (error.empty()) error = "the restore Job failed";
  } else if (!reported.is_object() || reported.value("restored", "") != p.backup_id) {
    error = "InvalidResult: the restore Job must report {\"restored\": \"" + p.backup_id + "\", \"checksum\": …}";
  } else if (!p.checksum.empty() && reported.value("checksum", "") != p.checksum) {
    error = "ChecksumMismatch: storage holds " + reported.value("checksum", "?") + " for " + p.backup_id +
            ", the catalog recorded " + p.checksum;
  }
  if (!error.empty()) {
    error = p.redact(error).substr(0, 1024);
    status.phase = "Failed";
    status.message = "restore of " + p.backup_id + " failed: " + error;
    status.completion_time = format_rfc3339(p.in.now);
    p.cond("Ready", "False", "RestoreFailed", *status.message);
    p.cond("Validated", "False", "RestoreFailed", "the restore failed, so nothing was validated");
    p.event("Warning", "RestoreFailed", *status.message);
    p.plan.outcome = outcome_of("failure", p.seconds_since_start());
    return true;
  }
  p.attempt = 1;
  status.validation_attempt = p.attempt;
  status.restored_time = format_rfc3339(p.in.now);
  p.phase = "Validating";
  status.phase = p.phase;
  status.message = "backup " + p.backup_id + " restored; running " + std::to_string(p.checks.size()) +
                   " validation check(s)";
  p.cond("Ready", "False", "Validating", *status.message);
  p.event("Normal", "RestoreCompleted", "Job " + jn + " restored backup " + p.backup_id + "; validating");
  create_validation_jobs(p, p.attempt);
  return true;
}

}  // namespace bo::reconcile::restore_plan
