#include "reconcile/restore_plan.h"

#include <algorithm>
#include <cmath>

#include "common/duration.h"
#include "common/encoding.h"
#include "common/timefmt.h"
#include "kube/names.h"
#include "reconcile/conditions.h"
#include "reconcile/data_volume.h"
#include "reconcile/in_place.h"
#include "reconcile/scratch.h"

namespace bo::reconcile {
namespace {

using json = nlohmann::json;
constexpr size_t kOutputLimit = 4096;

// status.validation within the CRD's bounds (maxItems, name's maxLength): a
// scratch Job may report more checks, or longer names, than the request has.
json bounded_validation(const json& entries) {
  json out = json::array();
  for (const auto& e : entries) {
    if (out.size() == kMaxValidationEntries) break;
    json c = e;
    if (c.contains("name") && c["name"].is_string() && c["name"].get<std::string>().size() > kube::kMaxLabelValue)
      c["name"] = bounded_name(c["name"].get<std::string>());
    out.push_back(std::move(c));
  }
  return out;
}

const json& meta_of(const json& obj) { return obj.at("metadata"); }

std::string annotation(const json& obj, const char* key) {
  return obj.at("metadata").value("annotations", json::object()).value(key, "");
}

bool has_finalizer(const json& obj) {
  const json f = obj.at("metadata").value("finalizers", json::array());
  return std::find(f.begin(), f.end(), kRestoreFinalizer) != f.end();
}

// Every value of the policy's Secrets of 4 bytes or more, found by its
// fingerprint (the operator holds most values only so: common/redaction.h).
std::string redact(std::string text, const api::SecretData& secrets) {
  std::vector<const Fingerprint*> values;
  for (const auto& [secret, data] : secrets)
    for (const auto& [key, value] : data) values.push_back(&value.fingerprint());
  return redact_fingerprints(std::move(text), values, 4);
}

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

// The restored database's host as the validation Jobs in the target see it.
std::string target_host(const api::BackupPolicySpec& p, const std::string& policy_ns, const std::string& target) {
  if (target == policy_ns) return p.database.host;
  const std::string short_name = p.database.host.substr(0, p.database.host.find('.'));
  return short_name + "." + target + ".svc";
}

RestorePlan::Outcome outcome_of(const char* result, double seconds) {
  RestorePlan::Outcome o;
  o.result = result;
  o.seconds = seconds;
  return o;
}

json owner_ref(const json& rr) {
  return {{"apiVersion", api::kApiVersion}, {"kind", "RestoreRequest"}, {"name", meta_of(rr).value("name", "")},
          {"uid", meta_of(rr).value("uid", "")}, {"controller", true}, {"blockOwnerDeletion", true}};
}

}  // namespace

std::string restore_target(const json& request) {
  const json spec = request.value("spec", json::object());
  std::string t = spec.is_object() ? spec.value("targetNamespace", "") : "";
  if (t.empty() && (!spec.is_object() || spec.value("purpose", "restore") == "restore"))
    t = request.at("metadata").value("namespace", "");
  return t;
}

bool restore_in_progress(const json& request) {
  const std::string phase = request.value("status", json::object()).value("phase", "");
  return phase == "Restoring" || phase == "Validating";
}

bool restore_pending(const json& request) {
  const std::string phase = request.value("status", json::object()).value("phase", "");
  return phase.empty() || phase == "Pending";
}

std::string freeze_name(const std::string& ns, const std::string& name) {
  return "backup-operator-freeze-" + sha256_hex(ns + "/" + name).substr(0, 12);
}

namespace {
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

RestorePlan plan_restore(const RestoreInputs& in) {
  RestorePlan plan;
  const json& meta = meta_of(in.request);
  const std::string ns = meta.value("namespace", "");
  const std::string name = meta.value("name", "");
  const int64_t gen = meta.value("generation", int64_t{0});
  json status = in.request.value("status", json::object());
  if (!status.is_object()) status = json::object();
  json conditions = status.value("conditions", json::array());
  auto cond = [&](const char* type, const char* st, const std::string& reason, const std::string& msg) {
    set_condition(conditions, type, st, reason, msg, gen, in.now);
  };
  auto finish = [&]() -> RestorePlan& {
    set_progress(conditions, restore_progress(status.value("phase", ""), conditions), gen, in.now);
    status["conditions"] = conditions;
    status["observedGeneration"] = gen;
    plan.status = status;
    return plan;
  };
  auto event = [&](const char* type, const char* reason, const std::string& msg) {
    plan.events.push_back({type, reason, msg});
  };
  const std::string rr_ref = ns + "/" + name;
  const std::string target = restore_target(in.request);

  const auto purpose_of = [&] {
    const json spec = in.request.value("spec", json::object());
    return spec.is_object() ? spec.value("purpose", std::string("restore")) : std::string("restore");
  };
  // Verifications and drills run in a scratch instance (scratch.h).
  const bool scratch = purpose_of() == "verification" || purpose_of() == "drill";
  const std::string scratch_ns = target, scratch_obj = scratch_name(name);
  auto remove_scratch = [&] {
    plan.remove_other.push_back({"PersistentVolumeClaim", scratch_ns, scratch_obj});
    plan.remove_other.push_back({"NetworkPolicy", scratch_ns, scratch_obj});
  };

  // --- the freeze follows MutationsBlocked ---
  auto follow_freeze = [&] {
    const std::string backup_id = status.value("backup", json::object()).value("id", "");
    const bool restoring_in_place = status.contains("inPlace");
    const auto* frozen = find_condition(conditions, "MutationsBlocked");
    if (frozen && frozen->value("status", "") == "True") {
      if (!in.freeze_present) {
        plan.freeze = RestorePlan::Freeze::kApply;
        const std::string fname = freeze_name(ns, name);
        const json labels = {{"app.kubernetes.io/managed-by", kManagedBy},
                             {kLabelRestoreRequest, kube::label_value(name)},
                             {kLabelRestoreNamespace, ns}};
        const std::string who = in.operator_username;
        plan.freeze_policy = {
            {"apiVersion", "admissionregistration.k8s.io/v1"},
            {"kind", "ValidatingAdmissionPolicy"},
            {"metadata", {{"name", fname}, {"labels", labels}}},
            {"spec",
             {{"failurePolicy", "Fail"},
              {"matchConstraints",
               {{"resourceRules", {{{"operations", {"CREATE", "UPDATE", "DELETE"}},
                                    {"apiGroups", {"", "apps"}},
                                    {"apiVersions", {"*"}},
                                    {"resources", {"deployments", "deployments/scale", "statefulsets", "statefulsets/scale", "secrets",
                                                "configmaps"}}}}}}},
              {"validations",
               {{{"expression", "request.userInfo.username == '" + who + "'"},
                 {"reason", "Forbidden"},
                 {"message", restoring_in_place
                                  ? "namespace " + target + " is frozen: RestoreRequest " + rr_ref +
                                        " restores the database in place (backup " + backup_id +
                                        "); changes resume when its checks have passed (kubectl describe "
                                        "restorerequest -n " + ns + " " + name + ")"
                                  : "namespace " + target + " is frozen: validation of RestoreRequest " + rr_ref +
                                        " (backup " + backup_id + ") failed; rerun it with kubectl annotate "
                                        "restorerequest -n " + ns + " " + name + " " + kAnnotationRerun + "=$(date +%s)"}}}}}}};
        plan.freeze_binding = {
            {"apiVersion", "admissionregistration.k8s.io/v1"},
            {"kind", "ValidatingAdmissionPolicyBinding"},
            {"metadata", {{"name", fname}, {"labels", labels}}},
            {"spec", {{"policyName", fname},
                      {"validationActions", {"Deny"}},
                      {"matchResources", {{"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", target}}}}}}}}}};
        event("Warning", "MutationsBlocked", "froze namespace " + target + " (" + fname + ")");
      }
    } else if (in.freeze_present) {
      plan.freeze = RestorePlan::Freeze::kLift;
      event("Normal", "MutationsUnblocked", "lifted the freeze of namespace " + target);
    }
  };

  // --- deletion: remove every Job, the scratch instance and the freeze, then let go ---
  if (meta.contains("deletionTimestamp")) {
    // An in-place restore Job that is running is left to finish: killed
    // mid-fetch it would leave the database's claim half written. The
    // request (and the freeze) go when it has ended; the database is not
    // started again (whoever deleted the request decides).
    bool restore_running = false;
    for (const auto& j : in.jobs) {
      if (j.role == "in-place-restore" && j.state == ObservedJob::State::kActive) {
        restore_running = true;
        continue;
      }
      plan.remove.emplace_back(j.ns, j.name);
    }
    if (restore_running) {
      plan.status = in.request.value("status", json());
      plan.requeue_after = std::chrono::seconds(2);
      return plan;
    }
    // By name, whether or not its creation was recorded (a create may have
    // happened just before a crash); "not found" is done.
    if (scratch && !scratch_ns.empty() && !status.value("scratch", json::object()).value("removed", false))
      remove_scratch();
    if (in.freeze_present) plan.freeze = RestorePlan::Freeze::kLift;
    plan.remove_finalizer = has_finalizer(in.request) && in.jobs.empty() && !in.freeze_present;
    plan.status = in.request.value("status", json());
    return plan;
  }
  // Nothing is created before the finalizer that cleans it up is stored.
  if (!has_finalizer(in.request)) {
    plan.add_finalizer = true;
    plan.status = in.request.value("status", json());
    return plan;
  }

  std::string phase = status.value("phase", "");
  auto spec = api::parse_restore_request_spec(in.request.value("spec", json::object()));
  const bool in_place = spec && in_place_request(*spec, ns);
  std::optional<api::BackupPolicySpec> policy_spec;
  if (in.policy.is_object())
    if (auto p = api::parse_backup_policy_spec(in.policy.value("spec", json::object()))) policy_spec = *p;
  const std::string image = policy_spec && !policy_spec->job_template.image.empty() ? policy_spec->job_template.image
                                                                                    : in.default_image;
  auto seconds_since_start = [&] {
    const auto start = parse_rfc3339(status.value("startTime", "")).value_or(in.now);
    return std::chrono::duration<double>(in.now - start).count();
  };
  auto block = [&](const std::string& reason, const std::string& message) {
    phase = "Blocked";
    status["phase"] = phase;
    status["message"] = message;
    cond("Blocked", "True", reason, message);
    cond("Ready", "False", reason, message);
    if (!status.contains("completionTime")) status["completionTime"] = format_rfc3339(in.now);
    event("Warning", "RestoreBlocked", message);
    plan.outcome = outcome_of("blocked", 0);
    return finish();
  };

  // requestedBy: only from the webhook's annotation.
  if (!status.contains("requestedBy")) {
    const json who = json::parse(annotation(in.request, kRequestedByAnnotation), nullptr, false);
    if (who.is_object() && who.value("username", "") != "") status["requestedBy"] = who;
  }
  if (!status.contains("purpose") && spec) status["purpose"] = spec->purpose;
  if (!status.contains("targetNamespace")) status["targetNamespace"] = target;

  // A request blocked for want of its policy is looked at again when the policy appears.
  const auto* blocked = find_condition(conditions, "Blocked");
  if (phase == "Blocked" && blocked && blocked->value("reason", "") == "PolicyNotFound" && in.policy.is_object()) {
    phase = "";
    status.erase("completionTime");
  }

  // The restore Job: deterministic name, so asking twice never makes two.
  auto restore_job = [&](const std::string& id, const std::string& sum) {
    JobInputs ji{in.policy, *policy_spec, spec->purpose == "verification" ? Action::kVerify : Action::kRestore, in.now,
                 {}, image, {}, "", "", "", 0};
    if (auto it = in.secrets.find(policy_spec->storage.secret); it != in.secrets.end())
      for (const auto& [k, v] : it->second) ji.storage_keys.push_back(k);
    json job = build_job(ji);
    const std::string job_name = bounded_name(name + "-restore");
    job["metadata"]["name"] = job_name;
    job["metadata"]["labels"][kLabelRestoreRequest] = kube::label_value(name);
    job["metadata"]["ownerReferences"] = json::array({owner_ref(in.request)});
    job["metadata"]["annotations"].erase(kAnnotationSlot);
    job["spec"]["template"]["metadata"]["labels"][kLabelRestoreRequest] = kube::label_value(name);
    auto& env = job["spec"]["template"]["spec"]["containers"][0]["env"];
    env.push_back({{"name", "BACKUP_ID"}, {"value", id}});
    env.push_back({{"name", "BACKUP_CHECKSUM"}, {"value", sum}});
    env.push_back({{"name", "RESTORE_PURPOSE"}, {"value", spec->purpose}});
    env.push_back({{"name", "TARGET_NAMESPACE"}, {"value", target}});
    env.push_back({{"name", "RESTORE_REQUEST"}, {"value", rr_ref}});
    if (!spec->point_in_time.empty()) env.push_back({{"name", "POINT_IN_TIME"}, {"value", spec->point_in_time}});
    job["spec"]["template"]["spec"]["containers"][0]["args"] = {"run-job", "restore"};
    auto& pod = job["spec"]["template"]["spec"];
    if (const auto& tv = spec->target_volume; !tv.claim_name.empty()) {
      // Into the claim the restored server will run on, owned by the
      // database's uid/gid (fsGroup makes a fresh claim writable for it).
      json mount = {{"name", "restore"}, {"mountPath", tv.mount_path}};
      if (!tv.sub_path.empty()) mount["subPath"] = tv.sub_path;
      pod["containers"][0]["volumeMounts"].push_back(mount);
      pod["volumes"].push_back({{"name", "restore"}, {"persistentVolumeClaim", {{"claimName", tv.claim_name}}}});
      env.push_back({{"name", "PGDATA"}, {"value", tv.mount_path}});
      const auto& db = policy_spec->database;
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
    plan.create.push_back(std::move(job));
    return job_name;
  };

  // The scratch instance of a verification or drill: everything it needs, or
  // why it cannot run (a reason and a message naming the field).
  auto scratch_inputs = [&](const std::string& id, const std::string& sum) -> std::expected<ScratchInputs, api::Problem> {
    const auto& p = *policy_spec;
    const std::string pname = spec->policy;
    for (size_t i = 0; i < spec->validation.size(); ++i)
      if (!spec->validation[i].is_sql())
        return std::unexpected(api::Problem{
            "UnsupportedCheck", "spec.validation[" + std::to_string(i) + "].image",
            "spec.validation[" + std::to_string(i) + "] (" + spec->validation[i].name + "): a " + spec->purpose +
                " runs its checks inside the scratch instance, which nothing can reach over the network; give it as "
                "sql (image checks are for restores into a running target)"});
    if (p.verification.storage_secret.empty())
      return std::unexpected(api::Problem{
          "StorageSecretRequired", "spec.verification.storageSecretRef.name",
          "BackupPolicy " + pname + ": spec.verification.storageSecretRef.name is required for a " + spec->purpose +
              ": a Secret in namespace " + target +
              " with the storage settings and the decryption key (production Secrets are never copied there)"});
    if (!in.verification_keys)
      return std::unexpected(api::Problem{
          "StorageSecretNotFound", "spec.verification.storageSecretRef.name",
          "BackupPolicy " + pname + ": spec.verification.storageSecretRef.name: Secret " + p.verification.storage_secret +
              " not found in namespace " + target + ", where the " + spec->purpose + " runs"});
    const auto recorded = from_status(in.policy.value("status", json::object()), data_volume_source(p));
    ScratchInputs s;
    s.request = name;
    s.request_ns = ns;
    s.request_uid = meta.value("uid", "");
    s.target_ns = target;
    s.policy = pname;
    s.purpose = spec->purpose;
    s.backup_id = id;
    s.checksum = sum;
    s.point_in_time = spec->point_in_time;
    for (const auto& e : in.policy.value("status", json::object()).value("backups", json::array()))
      if (e.value("id", "") == id) s.uncompressed_bytes = e.value("uncompressedBytes", int64_t{0});
    s.verification = p.verification;
    s.profile = p.profile;
    s.run_as_user = p.database.run_as_user > 0 ? p.database.run_as_user : recorded ? recorded->run_as_user : -1;
    s.run_as_group = p.database.run_as_group >= 0 ? p.database.run_as_group : recorded ? recorded->run_as_group : -1;
    if (s.run_as_user <= 0 || s.run_as_group < 0)
      return std::unexpected(api::Problem{
          "RunAsUserRequired", "spec.database.runAsUser",
          "BackupPolicy " + pname + ": the uid/gid PostgreSQL runs as is not known (PostgreSQL refuses root): set "
          "spec.database.runAsUser and runAsGroup, or name a spec.database.workloadRef whose pod sets them"});
    s.operator_image = image;
    s.database_image = !p.verification.image.empty() ? p.verification.image : recorded ? recorded->image : "";
    if (s.database_image.empty())
      return std::unexpected(api::Problem{
          "VerificationImageRequired", "spec.verification.image",
          "BackupPolicy " + pname + ": spec.verification.image is required: the scratch PostgreSQL runs the "
          "database's own image (with spec.database.workloadRef it defaults to the database container's image)"});
    s.image_pull_policy = p.job_template.image_pull_policy;
    s.storage_keys = *in.verification_keys;  // the target's own Secret's keys, never production's
    s.encryption_key = p.storage.encryption_secret.empty() ? "" : p.storage.encryption_key;
    s.checks = spec->validation;
    s.node_selector = p.job_template.node_selector;
    s.tolerations = p.job_template.tolerations;
    return s;
  };
  auto create_scratch = [&](const ScratchInputs& s) {
    auto objects = build_scratch(s);
    plan.create.push_back(std::move(objects.network_policy));  // before the pod exists
    plan.create.push_back(std::move(objects.claim));
    plan.create.push_back(std::move(objects.job));
  };

  if (phase.empty() || phase == "Pending") {
    if (!spec) return block(spec.error().reason, spec.error().message);
    if (!status.contains("requestedBy"))
      return block("IdentityMissing", std::string("metadata.annotations[") + kRequestedByAnnotation +
                                          "] is missing: the backup-operator admission webhook did not see this "
                                          "request, so who asked for it cannot be recorded");
    // Before anything else is decided: a target whose Jobs the operator
    // cannot see would wait forever.
    if (!in.watched_namespaces.empty() && !target.empty() &&
        std::find(in.watched_namespaces.begin(), in.watched_namespaces.end(), target) == in.watched_namespaces.end()) {
      std::string watched;
      for (const auto& w : in.watched_namespaces) watched += (watched.empty() ? "\"" : ", \"") + w + "\"";
      const std::string msg =
          std::string(spec->target_namespace.empty() ? "spec.targetNamespace (unset: the request's namespace)"
                                                     : "spec.targetNamespace") +
          ": \"" + target + "\" is not watched by the operator (--watch-namespace " + watched +
          "): its Jobs would never be seen; add it to the chart's watchNamespaces";
      if (phase != "Blocked" || status.value("message", "") != msg) return block("TargetNotWatched", msg);
      return finish();
    }
    if (in.access.checked) status["access"] = api::access_to_json(in.access);
    const auto decision =
        api::decide_restore(*spec, ns, in.policy, {in.target_is_production, in.operator_namespace, in.access});
    if (decision.blocked) {
      if (phase != "Blocked" || status.value("message", "") != decision.message)
        return block(decision.reason, decision.message);
      return finish();
    }
    if (decision.awaiting_access) {
      // Pending (so the controller asks) until the API server has answered.
      const std::string msg = "asking the API server whether " + status["requestedBy"].value("username", "?") + " may " +
                              api::kAccessVerb + " " + api::kAccessResource + "." + api::kAccessGroup +
                              " in namespace " + decision.target_namespace;
      status["phase"] = "Pending";
      status["message"] = msg;
      status.erase("completionTime");
      cond("Ready", "False", "CheckingAccess", msg);
      plan.requeue_after = std::chrono::seconds(1);
      return finish();
    }
    if (!policy_spec) return block("InvalidPolicy", "BackupPolicy " + spec->policy + " has an invalid spec");
    if (!in.waiting_for.empty()) {
      const std::string msg = "waiting for RestoreRequest " + in.waiting_for + ", which is restoring into namespace " +
                              target + " (one restore per target namespace at a time)";
      if (phase != "Pending") event("Normal", "RestoreWaiting", msg);
      status["phase"] = "Pending";
      status["message"] = msg;
      cond("Ready", "False", "WaitingForTarget", msg);
      cond("Blocked", "False", "NotBlocked", "the backup may be restored");
      return finish();
    }
    // Start: the decision is fixed here (what "latest" meant at this moment).
    std::string job_name;
    if (scratch) {
      auto s = scratch_inputs(decision.backup_id, decision.checksum);
      if (!s) {
        if (phase != "Blocked" || status.value("message", "") != s.error().message)
          return block(s.error().reason, s.error().message);
        return finish();
      }
      create_scratch(*s);
      job_name = scratch_obj;
      status["scratch"] = {{"namespace", target},
                           {"name", scratch_obj},
                           {"image", s->database_image},
                           {"size", scratch_claim_size(s->uncompressed_bytes, s->verification.storage_size)}};
    } else if (in_place) {
      auto blocked_once = [&](const std::string& reason, const std::string& message) -> RestorePlan {
        if (phase != "Blocked" || status.value("message", "") != message) return block(reason, message);
        return finish();
      };
      for (size_t i = 0; i < spec->validation.size(); ++i)
        if (!spec->validation[i].is_sql())
          return blocked_once("UnsupportedCheck",
                              "spec.validation[" + std::to_string(i) + "] (" + spec->validation[i].name +
                                  "): an in-place restore runs its checks with the operator's check runner against "
                                  "the restored database; give it as sql");
      auto t = in_place_target(*policy_spec, in.policy.value("status", json::object()), spec->policy, name);
      if (!t) return blocked_once(t.error().reason, t.error().message);
      if (!in.workload) {  // the controller reads it for an in-place request; ask again
        plan.requeue_after = std::chrono::seconds(1);
        return finish();
      }
      if (!in.workload->found)
        return blocked_once("WorkloadNotFound", "spec.database.workloadRef: " + t->kind + " " + t->name +
                                                    " of BackupPolicy " + spec->policy + " is not in namespace " + ns);
      json ip = t->to_status();
      ip["step"] = kStepStopping;
      // What it runs with now, to start it again with (a stopped database is started with one).
      ip["replicas"] = std::max<int64_t>(in.workload->replicas, 1);
      ip["discardCurrentData"] = spec->discard_current_data;
      status["inPlace"] = ip;
      job_name = in_place_restore_job_name(name);
    } else {
      job_name = restore_job(decision.backup_id, decision.checksum);
    }
    status["phase"] = "Restoring";
    status["startTime"] = format_rfc3339(in.now);
    status["backup"] = {{"id", decision.backup_id}, {"checksum", decision.checksum}};
    status["jobName"] = job_name;
    status["message"] = scratch ? "restoring backup " + decision.backup_id + " into scratch instance " + target + "/" +
                                      scratch_obj + " and checking it"
                        : in_place ? "restoring backup " + decision.backup_id + " in place: stopping " +
                                         status["inPlace"]["workload"].value("kind", "") + " " +
                                         status["inPlace"]["workload"].value("name", "") + " with namespace " + target +
                                         " frozen until the restored database passes its checks"
                                   : "restoring backup " + decision.backup_id + " into namespace " + target;
    status.erase("completionTime");
    cond("Blocked", "False", "NotBlocked", "the backup may be restored");
    cond("Ready", "False", "Restoring", status["message"].get<std::string>());
    cond("Validated", "Unknown", "NotValidatedYet",
         scratch ? "the checks run in the scratch instance once it has recovered" : "validation runs after the restore");
    if (in_place) {
      const auto& ip = status["inPlace"];
      cond("MutationsBlocked", "True", "InPlaceRestore",
           "Deployments, StatefulSets (and their scale), Secrets and ConfigMaps in " + target +
               " accept changes from backup-operator only until the restored database has passed its checks");
      event("Normal", "RestoreStarted",
            "restoring backup " + decision.backup_id + " (" + decision.checksum.substr(0, 19) + "…) in place for " +
                status["requestedBy"].value("username", "?") + ": claim " + ip.value("claim", "") +
                ", data directory \"" + ip.value("dataPath", "") + "\"; freezing namespace " + target + ", then stopping " +
                ip["workload"].value("kind", "") + " " + ip["workload"].value("name", "") + " (" +
                std::to_string(ip.value("replicas", 1)) + " replica(s) now)");
      follow_freeze();
      plan.requeue_after = std::chrono::seconds(1);
      return finish();
    }
    cond("MutationsBlocked", "False", "NotFrozen", "the target namespace is not frozen");
    event("Normal", "RestoreStarted",
          "Job " + (scratch ? target + "/" : std::string()) + job_name + " restores backup " + decision.backup_id + " (" + decision.checksum.substr(0, 19) +
              "…) into namespace " + target + " for " + status["requestedBy"].value("username", "?"));
    return finish();
  }

  if (!spec || !policy_spec) {
    // The spec is immutable; a vanished policy mid-run fails the run.
    if (phase == "Restoring" || phase == "Validating") {
      status["phase"] = "Failed";
      status["message"] = "BackupPolicy " + (spec ? spec->policy : std::string("?")) + " disappeared during the restore";
      status["completionTime"] = format_rfc3339(in.now);
      cond("Ready", "False", "PolicyNotFound", status["message"].get<std::string>());
      event("Warning", "RestoreFailed", status["message"].get<std::string>());
      plan.outcome = outcome_of("failure", seconds_since_start());
    }
    return finish();
  }
  const auto checks = checks_for(*spec, &*policy_spec, image);
  const std::string backup_id = status.value("backup", json::object()).value("id", "");
  const std::string checksum = status.value("backup", json::object()).value("checksum", "");
  int attempt = status.value("validationAttempt", 0);

  auto validation_jobs = [&](int n) {
    for (size_t i = 0; i < checks.size(); ++i) {
      const auto& c = checks[i];
      const std::string jn = bounded_name(name + "-v" + std::to_string(n) + "-" + c.name);
      const json labels = {{"app.kubernetes.io/managed-by", kManagedBy},
                           {"app.kubernetes.io/name", "backup-operator"},
                           {kLabelPolicy, kube::label_value(spec->policy)},
                           {kLabelService, "supabase-walg-restore"},
                           {kLabelAction, "validate"},
                           {kLabelRestoreRequest, kube::label_value(name)},
                           {kLabelRestoreNamespace, ns},
                           {kLabelCheck, bounded_name(c.name)},
                           {kLabelAttempt, std::to_string(n)}};
      json env = json::array({{{"name", "RESTORE_REQUEST"}, {"value", rr_ref}},
                              {{"name", "TARGET_NAMESPACE"}, {"value", target}},
                              {{"name", "BACKUP_ID"}, {"value", backup_id}},
                              {{"name", "BACKUP_CHECKSUM"}, {"value", checksum}},
                              {{"name", "PGHOST"}, {"value", target_host(*policy_spec, ns, target)}},
                              {{"name", "PGPORT"}, {"value", std::to_string(policy_spec->database.port)}},
                              {{"name", "PGDATABASE"}, {"value", policy_spec->database.name}}});
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
      plan.create.push_back({{"apiVersion", "batch/v1"},
                             {"kind", "Job"},
                             {"metadata", {{"name", jn}, {"namespace", target}, {"labels", labels}}},
                             {"spec", {{"backoffLimit", 0},
                                       {"activeDeadlineSeconds", std::max<long>(c.timeout_seconds, 1)},
                                       {"ttlSecondsAfterFinished", policy_spec->job_template.ttl_seconds_after_finished},
                                       {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod}}}}}});
    }
  };
  auto find_job = [&](const std::string& jn) -> const ObservedRestoreJob* {
    for (const auto& j : in.jobs)
      if (j.name == jn) return &j;
    return nullptr;
  };

  // --- the scratch instance: one Job fetches, recovers and checks ---
  if (scratch && phase == "Restoring") {
    const ObservedRestoreJob* job = nullptr;
    for (const auto& j : in.jobs)
      if (j.role == "scratch" && j.ns == target && j.name == scratch_obj) job = &j;
    if (!job) {
      // Not in the cache yet, or deleted by hand: ask again (the same names, so never two).
      if (auto s = scratch_inputs(backup_id, checksum)) create_scratch(*s);
      plan.requeue_after = std::chrono::seconds(2);
      return finish();
    }
    if (job->state == ObservedJob::State::kActive) return finish();
    auto result = parse_scratch_result(job->message, spec->validation);
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
      json checks_out = json::array();
      for (auto c : result->checks) {
        std::string out = redact(c.value("output", ""), in.secrets);
        if (out.size() > kOutputLimit) out = out.substr(out.size() - kOutputLimit);
        c["output"] = out;
        c["attempt"] = 1;
        checks_out.push_back(c);
      }
      status["validation"] = bounded_validation(checks_out);
      json recovery = {{"recovered", result->recovered}};
      if (result->recovered) recovery["seconds"] = result->recovery_seconds;
      if (!result->system_identifier.empty()) recovery["systemIdentifier"] = result->system_identifier;
      if (!result->replay_lsn.empty()) recovery["replayLSN"] = result->replay_lsn;
      status["recovery"] = recovery;
    }
    error = redact(error, in.secrets).substr(0, 1024);
    status["completionTime"] = format_rfc3339(in.now);
    const std::string where = target + "/" + scratch_obj;
    plan.outcome = outcome_of("failure", seconds_since_start());
    plan.outcome->recovery_seconds = result && result->recovered ? result->recovery_seconds : -1;
    plan.outcome->policy = spec->policy;
    if (error.empty() && result && result->passed) {
      status["phase"] = "Succeeded";
      status["message"] = "backup " + backup_id + " restored into scratch instance " + where + ", recovered in " +
                          std::to_string(static_cast<long>(std::lround(result->recovery_seconds))) + " s, and " +
                          std::to_string(result->checks.size()) + " check(s) passed";
      cond("Validated", "True", "ChecksPassed", status["message"].get<std::string>());
      cond("Ready", "True", "Succeeded", status["message"].get<std::string>());
      event("Normal", "RestoreSucceeded", status["message"].get<std::string>());
      plan.outcome->result = "success";
      return finish();
    }
    const bool recovered = result && result->recovered && error.empty();
    const std::string failed = result ? result->failed_checks() : "";
    const auto keep = parse_duration(policy_spec->verification.keep_failed_for).value_or(std::chrono::hours(24));
    status["scratch"]["keepUntil"] = format_rfc3339(in.now + std::chrono::duration_cast<std::chrono::seconds>(keep));
    status["phase"] = "Failed";
    status["message"] = (recovered ? "backup " + backup_id + " recovered in " + where + " but check(s) failed: " + failed
                                   : "backup " + backup_id + " did not restore in " + where + ": " + error) +
                        "; the scratch instance is kept until " + status["scratch"]["keepUntil"].get<std::string>() +
                        " (spec.verification.keepFailedFor)";
    cond("Validated", "False", recovered ? "ChecksFailed" : "RecoveryFailed", status["message"].get<std::string>());
    cond("Ready", "False", recovered ? "ChecksFailed" : "RecoveryFailed", status["message"].get<std::string>());
    event("Warning", recovered ? "ValidationFailed" : "RestoreFailed", status["message"].get<std::string>());
    plan.requeue_after = std::chrono::duration_cast<std::chrono::milliseconds>(keep) + std::chrono::seconds(1);
    return finish();
  }
  // A finished scratch instance goes: at once after success, after keepFailedFor after a failure.
  if (scratch && (phase == "Succeeded" || phase == "Failed") && status.contains("scratch") &&
      !status["scratch"].value("removed", false)) {
    const auto keep_until = parse_rfc3339(status["scratch"].value("keepUntil", ""));
    if (phase == "Failed" && keep_until && in.now < *keep_until) {
      plan.requeue_after = std::chrono::duration_cast<std::chrono::milliseconds>(*keep_until - in.now) +
                           std::chrono::seconds(1);
      return finish();
    }
    plan.remove.emplace_back(target, scratch_obj);
    remove_scratch();
    status["scratch"]["removed"] = true;
    event("Normal", "ScratchRemoved", "deleted scratch instance " + target + "/" + scratch_obj + " (Job, claim, NetworkPolicy)");
    return finish();
  }

  // --- in place: stop, restore, start, check (in_place.h) ---
  if (in_place && status.contains("inPlace")) {
    json& ip = status["inPlace"];
    const auto t = InPlaceTarget::from_status(ip);
    const std::string step = ip.value("step", "");
    const int64_t replicas = ip.value("replicas", int64_t{1});
    const std::string workload = t ? t->kind + " " + t->name : std::string("the workload");
    auto scale_to = [&](int64_t n) {
      if (t) plan.scale = RestorePlan::Scale{t->kind, ns, t->name, n};
    };
    InPlaceJobInputs ji;
    ji.request = name;
    ji.request_ns = ns;
    ji.request_uid = meta.value("uid", "");
    ji.policy = spec->policy;
    ji.backup_id = backup_id;
    ji.checksum = checksum;
    ji.point_in_time = spec->point_in_time;
    ji.discard_current_data = spec->discard_current_data;
    for (const auto& e : in.policy.value("status", json::object()).value("backups", json::array()))
      if (e.value("id", "") == backup_id) ji.uncompressed_bytes = e.value("uncompressedBytes", int64_t{0});
    if (t) ji.target = *t;
    ji.spec = &*policy_spec;
    if (auto it = in.secrets.find(policy_spec->storage.secret); it != in.secrets.end())
      for (const auto& [k, v] : it->second) ji.storage_keys.push_back(k);
    ji.operator_image = image;
    ji.checks = spec->validation;
    auto fail = [&](const char* reason, const char* validated_reason, const std::string& what,
                    const std::string& aside_state) -> RestorePlan& {
      status["phase"] = "Failed";
      status["completionTime"] = format_rfc3339(in.now);
      status["message"] = redact(what, in.secrets).substr(0, 2048) + "; " + workload + " stays " +
                          (aside_state == "restored" ? "running" : "stopped") + " and namespace " + target +
                          " frozen; " + (t ? in_place_rollback(*t, replicas, aside_state) : std::string());
      cond("Validated", "False", validated_reason, status["message"].get<std::string>());
      cond("Ready", "False", reason, status["message"].get<std::string>());
      event("Warning", reason, status["message"].get<std::string>());
      plan.outcome = outcome_of("failure", seconds_since_start());
      plan.outcome->policy = spec->policy;
      follow_freeze();  // kept (made again if it went missing)
      return finish();
    };
    auto find_role = [&](const char* role, const std::string& jn) -> const ObservedRestoreJob* {
      for (const auto& j : in.jobs)
        if (j.role == role && j.name == jn) return &j;
      return nullptr;
    };
    auto record_checks = [&](const ScratchResult& r, const char* stage) {
      json out = status.value("validation", json::array());
      json kept = json::array();
      for (const auto& c : out)
        if (c.value("stage", "") != stage) kept.push_back(c);
      for (auto c : r.checks) {
        std::string o = redact(c.value("output", ""), in.secrets);
        if (o.size() > kOutputLimit) o = o.substr(o.size() - kOutputLimit);
        c["output"] = o;
        c["stage"] = stage;
        c["attempt"] = attempt;
        kept.push_back(c);
      }
      status["validation"] = bounded_validation(kept);
    };

    if (phase == "Restoring" && step == kStepStopping) {
      // Nothing is stopped before the freeze holds (nobody scales it back meanwhile).
      if (!in.freeze_present) {
        follow_freeze();
        plan.requeue_after = std::chrono::seconds(1);
        return finish();
      }
      if (!in.workload) {
        plan.requeue_after = std::chrono::seconds(1);
        return finish();
      }
      if (!in.workload->found)
        return fail("RestoreFailed", "RestoreFailed", workload + " disappeared before the restore began", "untouched");
      if (in.workload->replicas != 0) {
        scale_to(0);
        if (!ip.value("scaledDown", false)) {
          ip["scaledDown"] = true;
          event("Normal", "StoppingDatabase",
                "scaling " + workload + " from " + std::to_string(in.workload->replicas) + " to 0 replicas");
        }
        plan.requeue_after = std::chrono::seconds(1);
        return finish();
      }
      if (in.workload->pods > 0) {
        const std::string msg = "waiting for " + std::to_string(in.workload->pods) + " pod(s) of " + workload +
                                " to stop before restoring backup " + backup_id;
        if (status.value("message", "") != msg) status["message"] = msg;
        cond("Ready", "False", "StoppingDatabase", msg);
        plan.requeue_after = std::chrono::seconds(2);
        return finish();
      }
      plan.create.push_back(build_in_place_restore_job(ji));
      ip["step"] = kStepRestoring;
      status["message"] = workload + " has stopped; Job " + in_place_restore_job_name(name) + " restores backup " +
                          backup_id + " into claim " + (t ? t->claim : std::string("?"));
      cond("Ready", "False", "Restoring", status["message"].get<std::string>());
      event("Normal", "DatabaseStopped",
            workload + " has no pods left; Job " + in_place_restore_job_name(name) + " moves the data directory \"" +
                (t ? t->data_path : std::string()) + "\" aside to \"" + (t ? t->aside_path : std::string()) +
                "\" (or, with spec.discardCurrentData and no room, deletes it) and restores backup " + backup_id);
      return finish();
    }

    if (phase == "Restoring" && step == kStepRestoring) {
      const std::string jn = in_place_restore_job_name(name);
      const ObservedRestoreJob* job = find_role("in-place-restore", jn);
      if (!job) {
        // Not in the cache yet, or deleted by hand: the same name, so never
        // two; the Job itself never fetches twice into the claim (src/jobs).
        plan.create.push_back(build_in_place_restore_job(ji));
        plan.requeue_after = std::chrono::seconds(2);
        return finish();
      }
      if (job->state == ObservedJob::State::kActive) return finish();
      const json reported = json::parse(job->message, nullptr, false);
      const std::string aside = reported.is_object() ? reported.value("aside", "") : "";
      const bool discarded = reported.is_object() && reported.value("discarded", false) == true;
      const std::string aside_state = !aside.empty() ? "moved" : discarded ? "discarded" : "unknown";
      if (!aside.empty()) ip["aside"] = aside;
      if (discarded) ip["discarded"] = true;
      auto result = parse_scratch_result(job->message, {});
      if (result) {
        record_checks(*result, "recovery");
        json recovery = {{"recovered", result->recovered}};
        if (result->recovered) recovery["seconds"] = result->recovery_seconds;
        if (!result->system_identifier.empty()) recovery["systemIdentifier"] = result->system_identifier;
        if (!result->replay_lsn.empty()) recovery["replayLSN"] = result->replay_lsn;
        status["recovery"] = recovery;
      }
      if (!result || !result->passed || job->state == ObservedJob::State::kFailed) {
        std::string error = !result ? "InvalidResult: " + result.error()
                            : !result->error.empty() ? result->error
                            : !result->passed ? "check(s) failed on the recovered copy: " + result->failed_checks()
                                              : "the Job failed (" + job->failure + ")";
        if (job->state == ObservedJob::State::kFailed && !result && !job->failure.empty()) error = job->failure;
        return fail("RestoreFailed", "RecoveryFailed", "in-place restore of backup " + backup_id + " failed: " + error,
                    aside_state);
      }
      attempt = 1;
      status["validationAttempt"] = attempt;
      status["restoredTime"] = format_rfc3339(in.now);
      ip["step"] = kStepChecking;
      ip["systemIdentifier"] = result->system_identifier;
      phase = "Validating";
      status["phase"] = phase;
      status["message"] = "backup " + backup_id + " recovered in " +
                          std::to_string(static_cast<long>(std::lround(result->recovery_seconds))) + " s; starting " +
                          workload + " with " + std::to_string(replicas) + " replica(s) and checking it";
      cond("Ready", "False", "Validating", status["message"].get<std::string>());
      event("Normal", "DatabaseRestored", status["message"].get<std::string>() +
                                              (aside.empty() ? std::string() : "; the data before the restore is at \"" + aside + "\" on claim " + (t ? t->claim : std::string("?"))));
      scale_to(replicas);
      plan.create.push_back(build_in_place_check_job(ji, attempt, result->system_identifier));
      return finish();
    }

    // A rerun of failed checks, asked for by annotation.
    // Kept in status bounded as names are (status.validationRerun has a maxLength; an annotation may not).
    const std::string rerun = bounded_name(annotation(in.request, kAnnotationRerun), kube::kMaxSubdomain);
    if (phase == "Failed" && step == kStepChecking && !rerun.empty() && rerun != status.value("validationRerun", "")) {
      status["validationRerun"] = rerun;
      status["validationAttempt"] = ++attempt;
      phase = "Validating";
      status["phase"] = phase;
      status.erase("completionTime");
      status["message"] = "checking the restored database again (attempt " + std::to_string(attempt) + ")";
      cond("Ready", "False", "Validating", status["message"].get<std::string>());
      event("Normal", "ValidationRerun", status["message"].get<std::string>());
      plan.create.push_back(build_in_place_check_job(ji, attempt, ip.value("systemIdentifier", "")));
      scale_to(replicas);
      return finish();
    }

    if (phase == "Validating" && step == kStepChecking) {
      // Started again, as recorded (a crash between the scale and the status write repeats it).
      if (in.workload && in.workload->found && in.workload->replicas != replicas) scale_to(replicas);
      const std::string jn = in_place_check_job_name(name, attempt);
      const ObservedRestoreJob* job = find_role("check", jn);
      if (!job) {
        plan.create.push_back(build_in_place_check_job(ji, attempt, ip.value("systemIdentifier", "")));
        plan.requeue_after = std::chrono::seconds(2);
        return finish();
      }
      if (job->state == ObservedJob::State::kActive) return finish();
      auto result =
          parse_scratch_result(job->message, spec->validation, {"recovered", "system-identifier", "writes-released"});
      if (result) record_checks(*result, "production");
      const std::string aside_state = ip.contains("aside") ? "moved" : ip.value("discarded", false) ? "discarded" : "unknown";
      if (!result || !result->passed || job->state == ObservedJob::State::kFailed) {
        const std::string error = !result ? "InvalidResult: " + result.error() + (job->failure.empty() ? "" : " (" + job->failure + ")")
                                  : !result->error.empty() ? result->error
                                  : !result->passed ? "check(s) failed: " + result->failed_checks()
                                                    : "the check Job failed (" + job->failure + ")";
        return fail("ValidationFailed", "ChecksFailed",
                    "backup " + backup_id + " was restored in place but the restored database did not pass: " + error +
                        "; it refuses writes (default_transaction_read_only = on); rerun the checks with kubectl "
                        "annotate restorerequest -n " + ns + " " + name + " " + kAnnotationRerun +
                        "=$(date +%s), or to keep it as it is run ALTER SYSTEM RESET default_transaction_read_only; "
                        "SELECT pg_reload_conf()",
                    aside_state == "moved" ? "moved" : aside_state);
      }
      ip["step"] = kStepDone;
      status["phase"] = "Succeeded";
      status["completionTime"] = format_rfc3339(in.now);
      status["message"] = "backup " + backup_id + " restored in place into " + workload + " and " +
                          std::to_string(result->checks.size()) + " check(s) passed against the running database" +
                          (ip.contains("aside") ? "; the data before the restore is kept at \"" +
                                                      ip.value("aside", "") + "\" on claim " + ip.value("claim", "") +
                                                      " (delete it when no longer needed)"
                                                : std::string());
      cond("Validated", "True", "ChecksPassed", status["message"].get<std::string>());
      cond("MutationsBlocked", "False", "ChecksPassed", "the restored database passed its checks; the freeze is lifted");
      cond("Ready", "True", "Succeeded", status["message"].get<std::string>());
      event("Normal", "RestoreSucceeded", status["message"].get<std::string>());
      plan.outcome = outcome_of("success", seconds_since_start());
      plan.outcome->policy = spec->policy;
      plan.outcome->recovery_seconds = status.value("recovery", json::object()).value("seconds", -1.0);
      follow_freeze();
      return finish();
    }
    follow_freeze();
    return finish();
  }

  if (phase == "Restoring") {
    const std::string jn = status.value("jobName", "");
    const ObservedRestoreJob* job = find_job(jn);
    if (!job) {
      // Not in the cache yet, or deleted by hand: ask for it again (same name, so never two).
      if (spec && policy_spec) restore_job(backup_id, checksum);
      plan.requeue_after = std::chrono::seconds(2);
      return finish();
    }
    if (job->state == ObservedJob::State::kActive) return finish();
    std::string error;
    if (job->state == ObservedJob::State::kFailed) {
      const json t = json::parse(job->message, nullptr, false);
      error = t.is_object() && t.contains("error") && t["error"].is_string() ? t["error"].get<std::string>()
                                                                              : job->failure;
      if (error.empty()) error = "the restore Job failed";
    } else {
      const json t = json::parse(job->message, nullptr, false);
      if (!t.is_object() || t.value("restored", "") != backup_id)
        error = "InvalidResult: the restore Job must report {\"restored\": \"" + backup_id + "\", \"checksum\": …}";
      else if (!checksum.empty() && t.value("checksum", "") != checksum)
        error = "ChecksumMismatch: storage holds " + t.value("checksum", "?") + " for " + backup_id +
                ", the catalog recorded " + checksum;
    }
    if (!error.empty()) {
      error = redact(error, in.secrets).substr(0, 1024);
      status["phase"] = "Failed";
      status["message"] = "restore of " + backup_id + " failed: " + error;
      status["completionTime"] = format_rfc3339(in.now);
      cond("Ready", "False", "RestoreFailed", status["message"].get<std::string>());
      cond("Validated", "False", "RestoreFailed", "the restore failed, so nothing was validated");
      event("Warning", "RestoreFailed", status["message"].get<std::string>());
      plan.outcome = outcome_of("failure", seconds_since_start());
      return finish();
    }
    attempt = 1;
    status["validationAttempt"] = attempt;
    status["restoredTime"] = format_rfc3339(in.now);
    phase = "Validating";
    status["phase"] = phase;
    status["message"] = "backup " + backup_id + " restored; running " + std::to_string(checks.size()) + " validation check(s)";
    cond("Ready", "False", "Validating", status["message"].get<std::string>());
    event("Normal", "RestoreCompleted", "Job " + jn + " restored backup " + backup_id + "; validating");
    validation_jobs(attempt);
    return finish();
  }

  // A rerun of a failed validation, asked for by annotation.
  const std::string rerun = bounded_name(annotation(in.request, kAnnotationRerun), kube::kMaxSubdomain);
  if (phase == "Failed" && !rerun.empty() && rerun != status.value("validationRerun", "") && attempt > 0) {
    status["validationRerun"] = rerun;
    for (const auto& j : in.jobs)
      if (j.role == "validate") plan.remove.emplace_back(j.ns, j.name);
    ++attempt;
    status["validationAttempt"] = attempt;
    phase = "Validating";
    status["phase"] = phase;
    status.erase("completionTime");
    status["message"] = "validation rerun " + std::to_string(attempt) + " of backup " + backup_id;
    cond("Ready", "False", "Validating", status["message"].get<std::string>());
    event("Normal", "ValidationRerun", status["message"].get<std::string>());
    validation_jobs(attempt);
    return finish();
  }

  if (phase == "Validating") {
    json results = json::array();
    bool all_done = true, all_passed = true;
    bool missing = false;
    for (const auto& c : checks) {
      const std::string jn = bounded_name(name + "-v" + std::to_string(attempt) + "-" + c.name);
      const ObservedRestoreJob* j = find_job(jn);
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
      std::string output = j->message.empty() && !passed ? j->failure : j->message;
      output = redact(output, in.secrets);
      if (output.size() > kOutputLimit) output = output.substr(output.size() - kOutputLimit);
      results.push_back({{"name", c.name}, {"passed", passed}, {"exitCode", j->exit_code}, {"output", output},
                         {"job", jn}, {"attempt", attempt}});
      all_passed = all_passed && passed;
    }
    if (missing) {
      validation_jobs(attempt);  // creating an existing one again is harmless
      plan.requeue_after = std::chrono::seconds(2);
    }
    if (!all_done) return finish();
    status["validation"] = bounded_validation(results);
    status["completionTime"] = format_rfc3339(in.now);
    if (all_passed) {
      status["phase"] = "Succeeded";
      status["message"] = "backup " + backup_id + " restored into " + target + " and " + std::to_string(checks.size()) +
                          " validation check(s) passed";
      cond("Validated", "True", checks.empty() ? "NoChecks" : "ChecksPassed", status["message"].get<std::string>());
      cond("MutationsBlocked", "False", "NotFrozen", "the target namespace is not frozen");
      cond("Ready", "True", "Succeeded", status["message"].get<std::string>());
      event("Normal", "RestoreSucceeded", status["message"].get<std::string>());
      plan.outcome = outcome_of("success", seconds_since_start());
    } else {
      std::string failed;
      for (const auto& r : results)
        if (!r.value("passed", true)) failed += (failed.empty() ? "" : ", ") + r.value("name", "");
      status["phase"] = "Failed";
      status["message"] = "validation of backup " + backup_id + " in " + target + " failed (" + failed +
                          "); namespace " + target + " is frozen until a rerun passes (annotate " +
                          kAnnotationRerun + ")";
      cond("Validated", "False", "ValidationFailed", "failed check(s): " + failed);
      cond("MutationsBlocked", "True", "ValidationFailed",
           "Deployments, StatefulSets, Secrets and ConfigMaps in " + target + " accept changes from backup-operator only");
      cond("Ready", "False", "ValidationFailed", status["message"].get<std::string>());
      event("Warning", "ValidationFailed", status["message"].get<std::string>());
      plan.outcome = outcome_of("failure", seconds_since_start());
    }
  }

  follow_freeze();
  return finish();
}

}  // namespace bo::reconcile
