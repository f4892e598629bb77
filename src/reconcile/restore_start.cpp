// Sections of plan_restore that read what the request is and start it: the
// request's and the policy's specs, who asked (only from the identity
// webhook's annotation), and while Pending everything that may block it, the
// API server's answer whether the requester may create Jobs in the target,
// another request holding the target, and then the start, by the way it
// restores: a scratch instance, in place, or a restore Job.
#include <algorithm>

#include "common/timefmt.h"
#include "reconcile/in_place.h"
#include "reconcile/restore_plan_parts.h"

namespace bo::reconcile::restore_plan {
namespace {

using json = nlohmann::json;

// The request's checks: the profile's own, then the user's.
std::vector<api::ValidationCheck> checks_for(const api::RestoreRequestSpec& spec, const api::BackupPolicySpec* policy,
                                             const std::string& image) {
  std::vector<api::ValidationCheck> out;
  if (policy && policy->profile == "supabase-self-hosted") {
    api::ValidationCheck answers;
    answers.name = "database-answers";
    answers.image = image;
    answers.timeout_seconds = 300;
    out.push_back(answers);
  }
  for (const auto& c : spec.validation) out.push_back(c);
  return out;
}

std::string requester(const RestorePlanning& p) {
  return p.status.requested_by ? p.status.requested_by->username.value_or("?") : "?";
}

// A target whose Jobs the operator cannot see would wait forever: "" when it is watched.
std::string unwatched_target(const RestorePlanning& p) {
  const auto& watched = p.in.watched_namespaces;
  if (watched.empty() || p.target.empty() || std::find(watched.begin(), watched.end(), p.target) != watched.end())
    return "";
  std::string names;
  for (const auto& w : watched) names += (names.empty() ? "\"" : ", \"") + w + "\"";
  return std::string(p.spec->target_namespace.empty() ? "spec.targetNamespace (unset: the request's namespace)"
                                                      : "spec.targetNamespace") +
         ": \"" + p.target + "\" is not watched by the operator (--watch-namespace " + names +
         "): its Jobs would never be seen; add it to the chart's watchNamespaces";
}

// An in-place restore starts at Stopping, with what it acts on fixed (in_place.h); false when it cannot
// start yet (blocked, or the workload not read).
bool start_in_place(RestorePlanning& p) {
  const auto& spec = *p.spec;
  for (size_t i = 0; i < spec.validation.size(); ++i)
    if (!spec.validation[i].is_sql()) {
      block_once(p, "UnsupportedCheck",
                 "spec.validation[" + std::to_string(i) + "] (" + spec.validation[i].name +
                     "): an in-place restore runs its checks with the operator's check runner against the restored "
                     "database; give it as sql");
      return false;
    }
  auto t = in_place_target(*p.policy_spec, p.in.policy.value("status", json::object()), spec.policy, p.name);
  if (!t) {
    block_once(p, t.error().reason, t.error().message);
    return false;
  }
  if (!p.in.workload) {  // the controller reads it for an in-place request; ask again
    p.plan.requeue_after = std::chrono::seconds(1);
    return false;
  }
  if (!p.in.workload->found) {
    block_once(p, "WorkloadNotFound", "spec.database.workloadRef: " + t->kind + " " + t->name + " of BackupPolicy " +
                                          spec.policy + " is not in namespace " + p.ns);
    return false;
  }
  api::InPlaceRecord ip = t->to_status();
  ip.step = kStepStopping;
  // What it runs with now, to start it again with (a stopped database is started with one).
  ip.replicas = std::max<int64_t>(p.in.workload->replicas, 1);
  ip.discard_current_data = spec.discard_current_data;
  p.status.in_place = std::move(ip);
  return true;
}

}  // namespace

void parse_request(RestorePlanning& p) {
  const auto& in = p.in;
  auto& status = p.status;
  p.phase = status.phase.value_or("");
  p.spec = in.spec ? *in.spec : api::parse_restore_request_spec(in.request.value("spec", json::object()));
  p.in_place = p.spec && in_place_request(*p.spec, p.ns);
  if (in.policy.is_object())
    if (auto s = in.policy_spec ? *in.policy_spec : api::parse_backup_policy_spec(in.policy.value("spec", json::object())))
      p.policy_spec = *s;
  p.image = p.policy_spec && !p.policy_spec->job_template.image.empty() ? p.policy_spec->job_template.image
                                                                        : in.default_image;
  // requestedBy: only from the webhook's annotation.
  if (!status.requested_by) {
    const json who = json::parse(annotation(in.request, kRequestedByAnnotation), nullptr, false);
    if (who.is_object())
      if (auto r = api::requester_record_from_json(who); !r.username.value_or("").empty()) status.requested_by = r;
  }
  if (!status.purpose && p.spec) status.purpose = p.spec->purpose;
  if (!status.target_namespace) status.target_namespace = p.target;
  // A request blocked for want of its policy is looked at again when the policy appears.
  const auto* blocked = find_condition(p.conditions, "Blocked");
  if (p.phase == "Blocked" && blocked && blocked->value("reason", "") == "PolicyNotFound" && in.policy.is_object()) {
    p.phase = "";
    status.completion_time.reset();
  }
}

bool start_restore(RestorePlanning& p) {
  if (!p.phase.empty() && p.phase != "Pending") return false;
  const auto& in = p.in;
  auto& status = p.status;
  if (!p.spec) return block(p, p.spec.error().reason, p.spec.error().message);
  const auto& spec = *p.spec;
  if (!status.requested_by)
    return block(p, "IdentityMissing",
                 std::string("metadata.annotations[") + kRequestedByAnnotation +
                     "] is missing: the backup-operator admission webhook did not see this request, so who asked "
                     "for it cannot be recorded"),
           true;
  // Before anything else is decided.
  if (const std::string msg = unwatched_target(p); !msg.empty()) return block_once(p, "TargetNotWatched", msg);
  if (in.access.checked) status.access = api::access_record_from_json(api::access_to_json(in.access));
  const auto decision =
      api::decide_restore(spec, p.ns, in.policy, {in.target_is_production, in.operator_namespace, in.access});
  if (decision.blocked) return block_once(p, decision.reason, decision.message);
  if (decision.awaiting_access) {
    // Pending (so the controller asks) until the API server has answered.
    const std::string msg = "asking the API server whether " + requester(p) + " may " + api::kAccessVerb + " " +
                            api::kAccessResource + "." + api::kAccessGroup + " in namespace " +
                            decision.target_namespace;
    status.phase = "Pending";
    status.message = msg;
    status.completion_time.reset();
    p.cond("Ready", "False", "CheckingAccess", msg);
    p.plan.requeue_after = std::chrono::seconds(1);
    return true;
  }
  if (!p.policy_spec) return block(p, "InvalidPolicy", "BackupPolicy " + spec.policy + " has an invalid spec");
  if (!in.waiting_for.empty()) {
    const std::string msg = "waiting for RestoreRequest " + in.waiting_for + ", which is restoring into namespace " +
                            p.target + " (one restore per target namespace at a time)";
    if (p.phase != "Pending") p.event("Normal", "RestoreWaiting", msg);
    status.phase = "Pending";
    status.message = msg;
    p.cond("Ready", "False", "WaitingForTarget", msg);
    p.cond("Blocked", "False", "NotBlocked", "the backup may be restored");
    return true;
  }
  // Start: the decision is fixed here (what "latest" meant at this moment).
  std::string job_name;
  if (p.scratch) {
    auto s = scratch_inputs(p, decision.backup_id, decision.checksum);
    if (!s) return block_once(p, s.error().reason, s.error().message);
    create_scratch(p, *s);
    job_name = p.scratch_obj;
    status.scratch = api::ScratchRecord{p.target, p.scratch_obj, s->database_image,
                                        scratch_claim_size(s->uncompressed_bytes, s->verification.storage_size),
                                        std::nullopt, std::nullopt};
  } else if (p.in_place) {
    if (!start_in_place(p)) return true;
    job_name = in_place_restore_job_name(p.name);
  } else {
    job_name = create_restore_job(p, decision.backup_id, decision.checksum);
  }
  const std::string kind = p.in_place ? p.status.in_place->workload->kind.value_or("") : "",
                    workload = p.in_place ? p.status.in_place->workload->name.value_or("") : "";
  status.phase = "Restoring";
  status.start_time = format_rfc3339(in.now);
  status.backup = api::RestoredBackupRef{decision.backup_id, decision.checksum};
  status.job_name = job_name;
  status.message = p.scratch ? "restoring backup " + decision.backup_id + " into scratch instance " + p.target + "/" +
                                   p.scratch_obj + " and checking it"
                   : p.in_place ? "restoring backup " + decision.backup_id + " in place: stopping " + kind + " " +
                                      workload + " with namespace " + p.target +
                                      " frozen until the restored database passes its checks"
                                : "restoring backup " + decision.backup_id + " into namespace " + p.target;
  status.completion_time.reset();
  p.cond("Blocked", "False", "NotBlocked", "the backup may be restored");
  p.cond("Ready", "False", "Restoring", *status.message);
  p.cond("Validated", "Unknown", "NotValidatedYet",
         p.scratch ? "the checks run in the scratch instance once it has recovered" : "validation runs after the restore");
  if (p.in_place) {
    const auto& ip = *status.in_place;
    p.cond("MutationsBlocked", "True", "InPlaceRestore",
           "Deployments, StatefulSets (and their scale), Secrets and ConfigMaps in " + p.target +
               " accept changes from backup-operator only until the restored database has passed its checks");
    p.event("Normal", "RestoreStarted",
            "restoring backup " + decision.backup_id + " (" + decision.checksum.substr(0, 19) + "…) in place for " +
                requester(p) + ": claim " + ip.claim.value_or("") + ", data directory \"" + ip.data_path.value_or("") +
                "\"; freezing namespace " + p.target + ", then stopping " + kind + " " + workload + " (" +
                std::to_string(ip.replicas.value_or(1)) + " replica(s) now)");
    follow_freeze(p);
    p.plan.requeue_after = std::chrono::seconds(1);
    return true;
  }
  p.cond("MutationsBlocked", "False", "NotFrozen", "the target namespace is not frozen");
  p.event("Normal", "RestoreStarted",
          "Job " + (p.scratch ? p.target + "/" : std::string()) + job_name + " restores backup " + decision.backup_id +
              " (" + decision.checksum.substr(0, 19) + "…) into namespace " + p.target + " for " + requester(p));
  return true;
}

void read_started(RestorePlanning& p) {
  p.checks = checks_for(*p.spec, &*p.policy_spec, p.image);
  p.backup_id = p.status.backup ? p.status.backup->id.value_or("") : "";
  p.checksum = p.status.backup ? p.status.backup->checksum.value_or("") : "";
  p.attempt = static_cast<int>(p.status.validation_attempt.value_or(0));
}

}  // namespace bo::reconcile::restore_plan
