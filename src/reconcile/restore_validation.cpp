// Sections of plan_restore after a restore Job: one validation Job per check
// (the profile's own, then spec.validation) in the target namespace,
// Validating → (Succeeded | Failed). A failed validation freezes the target
// until the annotation backup.si.dev/rerun-validation asks for a rerun and
// it passes.
#include <algorithm>

#include "common/timefmt.h"
#include "kube/names.h"
#include "reconcile/restore_plan_parts.h"

namespace bo::reconcile::restore_plan {
namespace {

using json = nlohmann::json;

// The restored database's host as the validation Jobs in the target see it.
std::string target_host(const api::BackupPolicySpec& p, const std::string& policy_ns, const std::string& target) {
  if (target == policy_ns) return p.database.host;
  const std::string short_name = p.database.host.substr(0, p.database.host.find('.'));
  return short_name + "." + target + ".svc";
}

std::string validation_job_name(const RestorePlanning& p, int attempt, const api::ValidationCheck& c) {
  return bounded_name(p.name + "-v" + std::to_string(attempt) + "-" + c.name);
}

}  // namespace

void create_validation_jobs(RestorePlanning& p, int n) {
  const auto& policy = *p.policy_spec;
  for (const auto& c : p.checks) {
    const std::string jn = validation_job_name(p, n, c);
    const json labels = {{"app.kubernetes.io/managed-by", kManagedBy},
                         {"app.kubernetes.io/name", "backup-operator"},
                         {kLabelPolicy, kube::label_value(p.spec->policy)},
                         {kLabelService, "supabase-walg-restore"},
                         {kLabelAction, "validate"},
                         {kLabelRestoreRequest, kube::label_value(p.name)},
                         {kLabelRestoreNamespace, p.ns},
                         {kLabelCheck, bounded_name(c.name)},
                         {kLabelAttempt, std::to_string(n)}};
    json env = json::array({{{"name", "RESTORE_REQUEST"}, {"value", p.rr_ref}},
                            {{"name", "TARGET_NAMESPACE"}, {"value", p.target}},
                            {{"name", "BACKUP_ID"}, {"value", p.backup_id}},
                            {{"name", "BACKUP_CHECKSUM"}, {"value", p.checksum}},
                            {{"name", "PGHOST"}, {"value", target_host(policy, p.ns, p.target)}},
                            {{"name", "PGPORT"}, {"value", std::to_string(policy.database.port)}},
                            {{"name", "PGDATABASE"}, {"value", policy.database.name}}});
    json container = {{"name", "check"},
                      {"image", c.image},
                      {"env", env},
                      {"terminationMessagePath", "/dev/termination-log"},
                      {"terminationMessagePolicy", "FallbackToLogsOnError"},
                      {"volumeMounts", {{{"name", "tmp"}, {"mountPath", "/tmp"}}}},
                      {"securityContext", restricted_container_security()}};
    if (c.command.empty()) container["args"] = {"run-job", "validate-" + c.name};
    else container["command"] = c.command;
    json pod = {{"restartPolicy", "Never"},
                {"automountServiceAccountToken", false},
                {"securityContext", {{"runAsNonRoot", true}, {"runAsUser", 65532}, {"runAsGroup", 65532},
                                     {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
                {"containers", {container}},
                {"volumes", {{{"name", "tmp"}, {"emptyDir", json::object()}}}}};
    // Cross-namespace owners are not allowed: the finalizer removes these.
    p.plan.create.push_back({{"apiVersion", "batch/v1"},
                             {"kind", "Job"},
                             {"metadata", {{"name", jn}, {"namespace", p.target}, {"labels", labels}}},
                             {"spec", {{"backoffLimit", 0},
                                       {"activeDeadlineSeconds", std::max<long>(c.timeout_seconds, 1)},
                                       {"ttlSecondsAfterFinished", policy.job_template.ttl_seconds_after_finished},
                                       {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod}}}}}});
  }
}

// A rerun of a failed validation, asked for by annotation: the old Jobs go, the next run starts.
bool rerun_validation(RestorePlanning& p) {
  auto& status = p.status;
  // Kept in status bounded as names are (status.validationRerun has a maxLength; an annotation may not).
  const std::string rerun = bounded_name(annotation(p.in.request, kAnnotationRerun), kube::kMaxSubdomain);
  if (p.phase != "Failed" || rerun.empty() || rerun == status.validation_rerun.value_or("") || p.attempt <= 0)
    return false;
  status.validation_rerun = rerun;
  for (const auto& j : p.in.jobs)
    if (j.role == "validate") p.plan.remove.emplace_back(j.ns, j.name);
  ++p.attempt;
  status.validation_attempt = p.attempt;
  p.phase = "Validating";
  status.phase = p.phase;
  status.completion_time.reset();
  status.message = "validation rerun " + std::to_string(p.attempt) + " of backup " + p.backup_id;
  p.cond("Ready", "False", "Validating", *status.message);
  p.event("Normal", "ValidationRerun", *status.message);
  create_validation_jobs(p, p.attempt);
  return true;
}

// When every validation Job has ended: Succeeded, or Failed with the target frozen.
bool follow_validation(RestorePlanning& p) {
  if (p.phase != "Validating") return false;
  auto& status = p.status;
  std::vector<api::CheckResult> results;
  bool all_done = true, all_passed = true;
  bool missing = false;
  for (const auto& c : p.checks) {
    const std::string jn = validation_job_name(p, p.attempt, c);
    const ObservedRestoreJob* j = p.find_job(jn);
    if (!j) {
      missing = true;
      all_done = false;
      continue;
    }
    if (j->state == ObservedJob::State::kActive) {
      all_done = false;
      continue;
    }
    const bool passed = j->state == ObservedJob::State::kSucceeded;
    api::CheckResult r;
    r.name = c.name;
    r.passed = passed;
    r.exit_code = j->exit_code;
    r.output = p.bounded_output(j->message.empty() && !passed ? j->failure : j->message);
    r.job = jn;
    r.attempt = p.attempt;
    results.push_back(std::move(r));
    all_passed = all_passed && passed;
  }
  if (missing) {
    create_validation_jobs(p, p.attempt);  // creating an existing one again is harmless
    p.plan.requeue_after = std::chrono::seconds(2);
  }
  if (!all_done) return true;
  std::string failed;
  for (const auto& r : results)
    if (!r.passed.value_or(true)) failed += (failed.empty() ? "" : ", ") + r.name.value_or("");
  status.validation = bounded_validation(std::move(results));
  status.completion_time = format_rfc3339(p.in.now);
  if (all_passed) {
    status.phase = "Succeeded";
    status.message = "backup " + p.backup_id + " restored into " + p.target + " and " +
                     std::to_string(p.checks.size()) + " validation check(s) passed";
    p.cond("Validated", "True", p.checks.empty() ? "NoChecks" : "ChecksPassed", *status.message);
    p.cond("MutationsBlocked", "False", "NotFrozen", "the target namespace is not frozen");
    p.cond("Ready", "True", "Succeeded", *status.message);
    p.event("Normal", "RestoreSucceeded", *status.message);
  } else {
    status.phase = "Failed";
    status.message = "validation of backup " + p.backup_id + " in " + p.target + " failed (" + failed +
                     "); namespace " + p.target + " is frozen until a rerun passes (annotate " + kAnnotationRerun + ")";
    p.cond("Validated", "False", "ValidationFailed", "failed check(s): " + failed);
    p.cond("MutationsBlocked", "True", "ValidationFailed",
           "Deployments, StatefulSets, Secrets and ConfigMaps in " + p.target +
               " accept changes from backup-operator only");
    p.cond("Ready", "False", "ValidationFailed", *status.message);
    p.event("Warning", "ValidationFailed", *status.message);
  }
  p.plan.outcome = outcome_of(all_passed ? "success" : "failure", p.seconds_since_start());
  follow_freeze(p);
  return true;
}

}  // namespace bo::reconcile::restore_plan
