#include "reconcile/restore_controller.h"

#include <algorithm>

#include "common/encoding.h"
#include "common/log.h"
#include "kube/names.h"
#include "kube/selector.h"
#include "reconcile/in_place.h"
#include "reconcile/restore_plan.h"
#include "reconcile/scratch.h"

namespace bo::reconcile {
namespace {

using json = nlohmann::json;

std::string name_of(const json& obj) { return obj["metadata"].value("name", ""); }
std::string ns_of(const json& obj) { return obj["metadata"].value("namespace", ""); }

// What the planner creates and deletes besides the freeze.
const kube::Resource* resource_of(const std::string& kind) {
  if (kind == "Job") return &kube::resources::kJobs;
  if (kind == "PersistentVolumeClaim") return &kube::resources::kPersistentVolumeClaims;
  if (kind == "NetworkPolicy") return &kube::resources::kNetworkPolicies;
  return nullptr;
}

const kube::Resource kStatefulSets{"apps", "v1", "statefulsets", "StatefulSet", true};

const kube::Resource& workload_resource(const std::string& kind) {
  return kind == "StatefulSet" ? kStatefulSets : kube::resources::kDeployments;
}

// Order of arrival among requests for one target: creation time, then identity.
bool arrived_before(const json& a, const json& b) {
  const auto ta = a["metadata"].value("creationTimestamp", ""), tb = b["metadata"].value("creationTimestamp", "");
  if (ta != tb) return ta < tb;
  return ns_of(a) + "/" + name_of(a) < ns_of(b) + "/" + name_of(b);
}

}  // namespace

RestoreController::RestoreController(kube::Client& client, Caches& caches, const Clock& clock,
                                     kube::EventRecorder& events, metrics::Metrics& metrics,
                                     RestoreControllerOptions opts)
    : client_(client),
      caches_(caches),
      clock_(clock),
      events_(events),
      metrics_(metrics),
      opts_(std::move(opts)),
      controller_("restorerequest", [this](const std::string& key) { return reconcile(key); }, opts_.workers,
                  &metrics) {
  if (opts_.default_image.empty()) opts_.default_image = kDefaultImage;
  auto on_request = [this](const kube::ObjPtr& o) {
    enqueue(ns_of(*o), name_of(*o));
    enqueue_waiting();  // a request that finished or went away may free a target
  };
  caches_.restores.add_handlers(
      {on_request, [on_request](const kube::ObjPtr&, const kube::ObjPtr& n) { on_request(n); }, on_request});
  auto on_job = [this](const kube::ObjPtr& o) {
    const json labels = (*o)["metadata"].value("labels", json::object());
    const std::string rr = labels.value(kLabelRestoreRequest, "");
    if (rr.empty()) return;
    const std::string rns = labels.value(kLabelRestoreNamespace, ns_of(*o));
    // The label holds the request's name, or a hash of a name too long to be a label (kube::label_value).
    bool found = false;
    for (const auto& r : caches_.restores.by_index(kIndexLabelName, rns + "/" + rr)) {
      enqueue(rns, name_of(*r));
      found = true;
    }
    if (!found) enqueue(rns, rr);
  };
  caches_.jobs.add_handlers({on_job,
                             [on_job](const kube::ObjPtr& o, const kube::ObjPtr& n) {
                               if (job_changed(*o, *n)) on_job(n);
                             },
                             on_job});
  caches_.pods.add_handlers({on_job, [on_job](const kube::ObjPtr&, const kube::ObjPtr& n) { on_job(n); }, on_job});
  auto on_policy = [this](const kube::ObjPtr& p) {
    for (const auto& rr : caches_.restores.by_index(kIndexPolicyRef, name_of(*p)))
      if (ns_of(*rr) == ns_of(*p)) enqueue(ns_of(*rr), name_of(*rr));
  };
  caches_.policies.add_handlers(
      {on_policy, [on_policy](const kube::ObjPtr&, const kube::ObjPtr& n) { on_policy(n); }, on_policy});
}

RestoreController::~RestoreController() { stop(); }

void RestoreController::enqueue(const std::string& ns, const std::string& name) { controller_.queue().add(ns + "/" + name); }

void RestoreController::enqueue_waiting() {
  for (const auto& rr : caches_.restores.list())
    if (restore_pending(*rr)) enqueue(ns_of(*rr), name_of(*rr));
}

void RestoreController::start() { controller_.start_when([this] { return caches_.synced(); }); }

void RestoreController::stop() { controller_.stop(); }

// The request that holds `request`'s target namespace: one in progress, or an
// older one still waiting (so two pending requests never both start).
std::string RestoreController::waiting_for(const json& request) const {
  const std::string target = restore_target(request);
  const std::string self = ns_of(request) + "/" + name_of(request);
  std::string holder;
  for (const auto& other : caches_.restores.list()) {
    const std::string key = ns_of(*other) + "/" + name_of(*other);
    if (key == self || restore_target(*other) != target) continue;
    if ((*other)["metadata"].contains("deletionTimestamp")) continue;
    if (restore_in_progress(*other)) return key;
    if (restore_pending(*other) && arrived_before(*other, request) && holder.empty()) holder = key;
  }
  return holder;
}

// A production namespace: one labelled backup.si.dev/environment=production,
// or one holding a BackupPolicy whose environment is production (the default).
kube::Result<bool> RestoreController::target_is_production(const std::string& target) const {
  for (const auto& p : caches_.policies.list(target))
    if ((*p).value("spec", json::object()).value("environment", "production") == "production") return true;
  auto ns = client_.get(kube::resources::kNamespaces, "", target);
  if (!ns) {
    if (ns.error().not_found()) return false;
    return std::unexpected(ns.error());
  }
  return (*ns)["metadata"].value("labels", json::object()).value("backup.si.dev/environment", "") == "production";
}

// Whether the requester may create Jobs in the target: a SubjectAccessReview
// with their user, uid, groups and extra, unless status.access already holds
// the API server's yes for the same user and namespace. An error is returned
// (and retried), never taken for an answer.
kube::Result<api::AccessCheck> RestoreController::requester_access(const json& request, const std::string& target) const {
  const auto who = api::requester_of(request);
  if (!who || target.empty()) return api::AccessCheck{};  // the planner blocks or waits without it
  const json status = request.value("status", json::object());
  if (status.is_object()) {
    const auto kept = api::access_from_json(status.value("access", json()));
    if (kept.checked && kept.allowed && kept.user == who->username && kept.ns == target) return kept;
  }
  auto review = client_.create(kube::resources::kSubjectAccessReviews, "", api::job_access_review(*who, target));
  if (!review) return std::unexpected(review.error());
  auto answer = api::read_access_review(*review, *who, target);
  log::info("requester access checked", {{"restoreRequest", ns_of(request) + "/" + name_of(request)},
                                         {"user", who->username},
                                         {"namespace", target},
                                         {"allowed", answer.allowed}});
  return answer;
}

kube::Result<bool> RestoreController::freeze_present(const std::string& name) const {
  bool both = true;
  for (const auto* r : {&kube::resources::kValidatingAdmissionPolicies, &kube::resources::kValidatingAdmissionPolicyBindings}) {
    auto got = client_.get(*r, "", name);
    if (!got && !got.error().not_found()) return std::unexpected(got.error());
    both = both && got.has_value();
  }
  return both;
}

kube::Result<void> RestoreController::apply_freeze(const json& policy, const json& binding) {
  for (const auto& [r, obj] : {std::pair{&kube::resources::kValidatingAdmissionPolicies, &policy},
                               std::pair{&kube::resources::kValidatingAdmissionPolicyBindings, &binding}}) {
    auto created = client_.create(*r, "", *obj);
    if (created || created.error().already_exists()) continue;
    return std::unexpected(created.error());
  }
  return {};
}

kube::Result<void> RestoreController::lift_freeze(const std::string& name) {
  for (const auto* r : {&kube::resources::kValidatingAdmissionPolicyBindings, &kube::resources::kValidatingAdmissionPolicies}) {
    auto removed = client_.remove(*r, "", name);
    if (!removed && !removed.error().not_found()) return std::unexpected(removed.error());
  }
  return {};
}

kube::Result<RestoreInputs::Workload> RestoreController::observe_workload(const std::string& ns,
                                                                           const std::string& kind,
                                                                           const std::string& name) const {
  RestoreInputs::Workload w;
  auto got = client_.get(workload_resource(kind), ns, name);
  if (!got) {
    if (got.error().not_found()) return w;
    return std::unexpected(got.error());
  }
  w.found = true;
  const json spec = got->value("spec", json::object());
  w.replicas = spec.value("replicas", int64_t{1});
  std::string err;
  auto sel = kube::LabelSelector::from_json(spec.value("selector", json::object()), &err);
  if (!sel || sel->empty()) return w;  // selects nothing: no pods to wait for
  kube::ListOptions opts;
  opts.label_selector = sel->to_string();
  auto pods = client_.list(kube::resources::kPods, ns, opts);
  if (!pods) return std::unexpected(pods.error());
  w.pods = static_cast<int>(pods->value("items", json::array()).size());
  return w;
}

// The request's finalizers as `finalizers`: a merge patch of that list
// alone, guarded by the resourceVersion it was computed from (a conflict if
// the request changed since), as controller-runtime's
// MergeFromWithOptimisticLock does. Never a PUT of the cached object, which
// is slimmed and would drop what it lacks (kubectl's last-applied annotation).
kube::Result<nlohmann::json> RestoreController::set_finalizers(const std::string& ns, const nlohmann::json& request,
                                                                const nlohmann::json& finalizers) {
  const json patch = {{"metadata",
                       {{"resourceVersion", request["metadata"].value("resourceVersion", "")}, {"finalizers", finalizers}}}};
  return client_.patch(kRestoreRequests, ns, request["metadata"].value("name", ""), kube::PatchType::kMerge, patch);
}

kube::ReconcileResult RestoreController::reconcile(const std::string& key) {
  const auto [ns, name] = kube::split_key(key);
  const auto rr = caches_.restores.get(ns, name);
  if (!rr) return kube::ReconcileResult::done();
  const json& request = *rr;
  const json spec = request.value("spec", json::object());
  const std::string policy_name =
      spec.is_object() ? spec.value("policyRef", json::object()).value("name", "") : std::string();

  RestoreInputs in;
  in.request = request;
  in.now = clock_.now();
  in.default_image = opts_.default_image;
  in.operator_username = opts_.operator_username;
  in.operator_namespace = opts_.operator_namespace;
  in.watched_namespaces = caches_.namespaces();
  if (auto p = caches_.policies.get(ns, policy_name)) in.policy = *p;
  // Both specs parsed once: here, and the plan reads them from `in`.
  in.spec = api::parse_restore_request_spec(spec);
  if (in.policy.is_object()) in.policy_spec = api::parse_backup_policy_spec(in.policy.value("spec", json::object()));
  const std::string target = restore_target(request);
  const bool deleting = request["metadata"].contains("deletionTimestamp");
  if (!deleting && restore_pending(request)) {
    in.waiting_for = waiting_for(request);
    if (!target.empty()) {
      auto prod = target_is_production(target);
      if (!prod) return kube::ReconcileResult::failed("read namespace " + target + ": " + prod.error().str());
      in.target_is_production = *prod;
    }
    // Nothing runs before the finalizer is stored, so nothing is asked before either.
    const json finalizers = request["metadata"].value("finalizers", json::array());
    if (std::find(finalizers.begin(), finalizers.end(), kRestoreFinalizer) != finalizers.end()) {
      auto access = requester_access(request, target);
      if (!access)
        return kube::ReconcileResult::failed("SubjectAccessReview for the requester in " + target + ": " +
                                             access.error().str());
      in.access = *access;
    }
  }
  // An in-place restore reads its database workload while it runs (a GET and a list: restores are rare).
  if (!deleting && spec.is_object()) {
    const std::string phase = request.value("status", json::object()).value("phase", "");
    const auto& parsed = *in.spec;
    if (parsed && in_place_request(*parsed, ns) && (phase.empty() || phase == "Pending" || phase == "Restoring" || phase == "Validating")) {
      std::string kind, wname;
      const json recorded = request.value("status", json::object()).value("inPlace", json::object());
      if (recorded.is_object() && recorded.contains("workload")) {
        kind = recorded["workload"].value("kind", "");
        wname = recorded["workload"].value("name", "");
      } else if (in.policy.is_object()) {
        const json ref = in.policy.value("spec", json::object()).value("database", json::object()).value("workloadRef", json::object());
        if (ref.is_object()) {
          kind = ref.value("kind", "");
          wname = ref.value("name", "");
        }
      }
      if (!kind.empty() && !wname.empty()) {
        auto w = observe_workload(ns, kind, wname);
        if (!w) return kube::ReconcileResult::failed("read " + kind + " " + ns + "/" + wname + ": " + w.error().str());
        in.workload = *w;
      }
    }
  }
  bool wait_for_pods = false;
  const std::string uid = request["metadata"].value("uid", "");
  for (const auto& j : caches_.jobs.by_index(kIndexRestore, kube::label_value(name))) {
    const json& job = *j;
    const json labels = job["metadata"].value("labels", json::object());
    ObservedRestoreJob o;
    o.name = name_of(job);
    o.ns = ns_of(job);
    const std::string action = labels.value(kLabelAction, "");
    if (action == kLabelScratch) {
      if (labels.value(kLabelRestoreNamespace, "") != ns) continue;
      o.role = "scratch";
    } else if (action == "validate") {
      if (labels.value(kLabelRestoreNamespace, "") != ns) continue;
      o.role = "validate";
      o.check = labels.value(kLabelCheck, "");
      o.attempt = std::atoi(labels.value(kLabelAttempt, "0").c_str());
    } else {
      bool owned = false;
      for (const auto& r : job["metadata"].value("ownerReferences", json::array()))
        owned = owned || r.value("uid", "") == uid;
      if (!owned || o.ns != ns) continue;
      o.role = action == kLabelInPlaceRestore ? "in-place-restore" : action == kLabelCheckDatabase ? "check" : "restore";
    }
    const std::string container = o.role == "restore"            ? "walg"
                                  : o.role == "scratch"          ? kScratchContainer
                                  : o.role == "in-place-restore" ? kInPlaceContainer
                                                                 : kCheckContainer;
    const JobView v = view_job(job, caches_.pods, container, grace_);
    o.state = v.state;
    o.message = v.message;
    o.exit_code = v.exit_code;
    o.failure = v.failure;
    wait_for_pods = wait_for_pods || v.awaiting_pod;
    in.jobs.push_back(std::move(o));
  }
  const json status = request.value("status", json::object());
  const std::string fname = freeze_name(ns, name);
  bool frozen_wanted = deleting;
  for (const auto& c : status.is_object() ? status.value("conditions", json::array()) : json::array())
    if (c.value("type", "") == "MutationsBlocked" && c.value("status", "") == "True") frozen_wanted = true;
  if (frozen_wanted) {
    auto present = freeze_present(fname);
    if (!present) return kube::ReconcileResult::failed("read freeze " + fname + ": " + present.error().str());
    in.freeze_present = *present;
  }
  if (in.policy.is_object()) {
    auto secrets = caches_.secret_data(ns, in.policy.value("spec", json::object()));
    if (!secrets) return kube::ReconcileResult::failed("read the policy's Secrets: " + secrets.error().str());
    in.secrets = std::move(*secrets);
  }
  if (in.policy.is_object() && !target.empty()) {
    const json ver = in.policy.value("spec", json::object()).value("verification", json::object());
    const std::string vs = ver.is_object() ? ver.value("storageSecretRef", json::object()).value("name", "") : "";
    if (!vs.empty()) {
      auto found = caches_.named_secrets(target, {vs});
      if (!found) return kube::ReconcileResult::failed("read Secret " + target + "/" + vs + ": " + found.error().str());
      if (auto it = found->find(vs); it != found->end()) {
        in.verification_keys.emplace();
        for (const auto& [k, v] : it->second) in.verification_keys->push_back(k);
      }
    }
  }

  const RestorePlan plan = plan_restore(in);

  if (plan.add_finalizer) {
    json finalizers = request["metadata"].value("finalizers", json::array());
    finalizers.push_back(kRestoreFinalizer);
    auto r = set_finalizers(ns, request, finalizers);
    if (!r) {
      if (r.error().not_found()) return kube::ReconcileResult::done();
      if (r.error().conflict()) return kube::ReconcileResult::conflict("add finalizer: " + r.error().str());
      return kube::ReconcileResult::failed("add finalizer: " + r.error().str());
    }
    return kube::ReconcileResult::done();  // the update brings us back
  }
  for (const auto& [jns, jn] : plan.remove) {
    auto r = client_.remove(kube::resources::kJobs, jns, jn, {"Background", "", ""});
    if (!r && !r.error().not_found()) return kube::ReconcileResult::failed("delete Job " + jns + "/" + jn + ": " + r.error().str());
  }
  for (const auto& o : plan.remove_other) {
    const auto* res = resource_of(o.kind);
    if (!res) continue;
    auto r = client_.remove(*res, o.ns, o.name, {"Background", "", ""});
    if (!r && !r.error().not_found())
      return kube::ReconcileResult::failed("delete " + o.kind + " " + o.ns + "/" + o.name + ": " + r.error().str());
    if (r) log::info("deleted", {{"restoreRequest", key}, {"kind", o.kind}, {"object", o.ns + "/" + o.name}});
  }
  for (const auto& obj : plan.create) {
    const std::string kind = obj.value("kind", "Job");
    const std::string ons = obj["metadata"].value("namespace", "");
    const auto* res = resource_of(kind);
    if (!res) return kube::ReconcileResult::failed("cannot create a " + kind);
    auto r = client_.create(*res, ons, obj);
    if (!r && !r.error().already_exists())
      return kube::ReconcileResult::failed("create " + kind + " " + ons + "/" + name_of(obj) + ": " + r.error().str());
    if (r) log::info(kind == "Job" ? "job created" : "created", {{"restoreRequest", key}, {"kind", kind}, {"object", ons + "/" + name_of(obj)}});
  }
  if (plan.freeze == RestorePlan::Freeze::kApply) {
    if (auto r = apply_freeze(plan.freeze_policy, plan.freeze_binding); !r)
      return kube::ReconcileResult::failed("freeze " + target + ": " + r.error().str());
  } else if (plan.freeze == RestorePlan::Freeze::kLift) {
    if (auto r = lift_freeze(fname); !r) return kube::ReconcileResult::failed("lift freeze " + fname + ": " + r.error().str());
  }
  if (plan.scale) {
    // Through the scale subresource: RBAC grants it apart from the workload itself.
    const auto& sc = *plan.scale;
    auto r = client_.patch(workload_resource(sc.kind), sc.ns, sc.name, kube::PatchType::kMerge,
                           json{{"spec", {{"replicas", sc.replicas}}}}, "scale");
    if (!r) return kube::ReconcileResult::failed("scale " + sc.kind + " " + sc.ns + "/" + sc.name + " to " +
                                                 std::to_string(sc.replicas) + ": " + r.error().str());
    log::info("scaled", {{"restoreRequest", key}, {"workload", sc.kind + " " + sc.ns + "/" + sc.name},
                         {"replicas", sc.replicas}});
  }
  // Status before Events and metrics: a failed write is retried with nothing announced twice.
  if (!deleting && plan.status != request.value("status", json())) {
    json updated = request;
    updated["status"] = plan.status;
    auto r = client_.update_status(kRestoreRequests, ns, updated);
    if (!r) {
      if (r.error().not_found()) return kube::ReconcileResult::done();
      if (r.error().conflict()) return kube::ReconcileResult::conflict("update status: " + r.error().str());
      return kube::ReconcileResult::failed("update status: " + r.error().str());
    }
  }
  for (const auto& e : plan.events) {
    events_.record(request, e.type, e.reason, e.message);
    log::info("restore step", {{"restoreRequest", key},
                               {"step", e.reason},
                               {"phase", plan.status.is_object() ? plan.status.value("phase", "") : ""},
                               {"target", target},
                               {"message", e.message}});
  }
  if (plan.outcome) {
    metrics_.restore_run(ns, plan.status.value("purpose", "restore"), plan.outcome->result, plan.outcome->seconds);
    if (plan.outcome->recovery_seconds >= 0)
      metrics_.restore_recovery(ns, plan.outcome->policy, plan.status.value("purpose", "restore"),
                                plan.outcome->recovery_seconds);
  }
  if (plan.remove_finalizer) {
    json kept = json::array();
    for (const auto& f : request["metadata"].value("finalizers", json::array()))
      if (f != kRestoreFinalizer) kept.push_back(f);
    auto r = set_finalizers(ns, request, kept);
    if (!r && !r.error().not_found()) {
      if (r.error().conflict()) return kube::ReconcileResult::conflict("remove finalizer: " + r.error().str());
      return kube::ReconcileResult::failed("remove finalizer: " + r.error().str());
    }
    log::info("restore request released", {{"restoreRequest", key}});
  }
  if (deleting && !plan.remove_finalizer) return kube::ReconcileResult::after(std::chrono::milliseconds(500));
  if (wait_for_pods) return kube::ReconcileResult::after(std::chrono::milliseconds(500));
  if (plan.requeue_after) return kube::ReconcileResult::after(*plan.requeue_after);
  return kube::ReconcileResult::done();
}

}  // namespace bo::reconcile
