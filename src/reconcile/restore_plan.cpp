// plan_restore: the sections of one RestoreRequest reconcile, in order. Each
// is a function of its own (restore_plan_parts.h says where it lives) over
// the typed status (api/restore_request_status.h), read once from the stored
// object and written once into RestorePlan::status.
#include "reconcile/restore_plan.h"

#include "common/encoding.h"
#include "common/timefmt.h"
#include "kube/names.h"
#include "reconcile/restore_plan_parts.h"

namespace bo::reconcile {

using json = nlohmann::json;

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

namespace restore_plan {
namespace {

std::string purpose_of(const json& request) {
  const json spec = request.value("spec", json::object());
  return spec.is_object() ? spec.value("purpose", std::string("restore")) : std::string("restore");
}

}  // namespace

RestorePlanning::RestorePlanning(const RestoreInputs& in_, api::RestoreRequestStatus& status_, json& conditions_,
                                 RestorePlan& plan_)
    : in(in_),
      meta(in_.request.at("metadata")),
      ns(meta.value("namespace", "")),
      name(meta.value("name", "")),
      gen(meta.value("generation", int64_t{0})),
      status(status_),
      conditions(conditions_),
      plan(plan_),
      rr_ref(ns + "/" + name),
      target(restore_target(in_.request)),
      scratch(purpose_of(in_.request) == "verification" || purpose_of(in_.request) == "drill"),
      scratch_obj(scratch_name(name)) {}

void RestorePlanning::cond(const char* type, const char* st, const std::string& reason, const std::string& msg) {
  set_condition(conditions, type, st, reason, msg, gen, in.now);
}

void RestorePlanning::event(const char* type, const char* reason, const std::string& msg) {
  plan.events.push_back({type, reason, msg});
}

double RestorePlanning::seconds_since_start() const {
  const auto start = parse_rfc3339(status.start_time.value_or("")).value_or(in.now);
  return std::chrono::duration<double>(in.now - start).count();
}

const ObservedRestoreJob* RestorePlanning::find_job(const std::string& job_name) const {
  for (const auto& j : in.jobs)
    if (j.name == job_name) return &j;
  return nullptr;
}

// By fingerprint: the operator holds most values only so (common/redaction.h).
std::string RestorePlanning::redact(std::string text) const {
  std::vector<const Fingerprint*> values;
  for (const auto& [secret, data] : in.secrets)
    for (const auto& [key, value] : data) values.push_back(&value.fingerprint());
  return redact_fingerprints(std::move(text), values, 4);
}

std::string RestorePlanning::bounded_output(const std::string& output) const {
  std::string out = redact(output);
  if (out.size() > kOutputLimit) out = out.substr(out.size() - kOutputLimit);
  return out;
}

json RestorePlanning::owner_ref() const {
  return {{"apiVersion", api::kApiVersion}, {"kind", "RestoreRequest"}, {"name", meta.value("name", "")},
          {"uid", meta.value("uid", "")}, {"controller", true}, {"blockOwnerDeletion", true}};
}

void RestorePlanning::remove_scratch() {
  plan.remove_other.push_back({"PersistentVolumeClaim", target, scratch_obj});
  plan.remove_other.push_back({"NetworkPolicy", target, scratch_obj});
}

std::vector<api::CheckResult> bounded_validation(std::vector<api::CheckResult> entries) {
  if (entries.size() > kMaxValidationEntries) entries.resize(kMaxValidationEntries);
  for (auto& c : entries)
    if (c.name && c.name->size() > kube::kMaxLabelValue) c.name = bounded_name(*c.name);
  return entries;
}

RestorePlan::Outcome outcome_of(const char* result, double seconds) {
  RestorePlan::Outcome o;
  o.result = result;
  o.seconds = seconds;
  return o;
}

std::string annotation(const json& request, const char* key) {
  return request.at("metadata").value("annotations", json::object()).value(key, "");
}

}  // namespace restore_plan

using namespace restore_plan;

RestorePlan plan_restore(const RestoreInputs& in) {
  RestorePlan plan;
  api::RestoreRequestStatus status = api::restore_request_status_from_json(in.request.value("status", json::object()));
  json conditions = status.conditions.value_or(json::array());
  RestorePlanning p(in, status, conditions, plan);
  // Before anything is planned (the stored status goes back as it was).
  if (follow_deletion(p) || add_finalizer_first(p)) return plan;
  parse_request(p);
  // Each section returns true when it decided the plan: the ones after it do not run.
  const bool decided = [&] {
    // Pending: blocked, waiting, or started.
    if (start_restore(p) || fail_without_policy(p)) return true;
    // Started: what its Jobs did, by the way it restores.
    read_started(p);
    return follow_scratch(p) || remove_finished_scratch(p) || follow_in_place(p) || follow_restore_job(p) ||
           rerun_validation(p) || follow_validation(p);
  }();
  if (!decided) follow_freeze(p);
  finish(p);
  return plan;
}

}  // namespace bo::reconcile
