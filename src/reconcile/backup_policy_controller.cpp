#include "reconcile/backup_policy_controller.h"

#include "common/encoding.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "kube/names.h"
#include "reconcile/backup_policy_plan.h"
#include "reconcile/conditions.h"
#include "reconcile/continuous_archiving.h"
#include "reconcile/databasus.h"
#include "schedule/cron.h"

namespace bo::reconcile {
namespace {

using json = nlohmann::json;

}  // namespace

BackupPolicyController::BackupPolicyController(kube::Client& client, Caches& caches, const Clock& clock,
                                               kube::EventRecorder& events, metrics::Metrics& metrics,
                                               BackupPolicyControllerOptions opts)
    : client_(client),
      clock_(clock),
      events_(events),
      metrics_(metrics),
      opts_(std::move(opts)),
      caches_(caches),
      controller_("backuppolicy", [this](const std::string& key) { return reconcile(key); }, opts_.workers, &metrics) {
  if (opts_.default_image.empty()) opts_.default_image = kDefaultImage;
  // Probes run in the background: a reconcile only hands over credentials and
  // reads the newest observation; a changed one (or a due probe) enqueues the policy.
  prober_ = std::make_unique<postgres::ArchiveProber>(
      opts_.archive_probe ? opts_.archive_probe : postgres::ArchiveProber::ProbeFn(postgres::probe_archiving),
      [this](const std::string& key) { controller_.queue().add(key); }, clock_, opts_.archive_probe_interval);
  // The data volume is checked in the background too: a reconcile reads the
  // newest outcome, a changed one enqueues the policy.
  volumes_ = std::make_unique<DataVolumeResolver>(
      [this](const DataVolumeRequest& req) { return check_data_volume(client_, req); },
      [this](const std::string& key) { controller_.queue().add(key); }, opts_.data_volume_interval,
      opts_.data_volume_checks_per_second, opts_.workers);
  auto key_handler = [this](const kube::ObjPtr& o) {
    enqueue_policy((*o)["metadata"].value("namespace", ""), (*o)["metadata"].value("name", ""));
  };
  caches_.policies.add_handlers({key_handler, [key_handler](const kube::ObjPtr&, const kube::ObjPtr& n) { key_handler(n); },
                          key_handler});
  auto owner_handler = [this](const kube::ObjPtr& o) { enqueue_owner(o); };
  caches_.jobs.add_handlers({owner_handler,
                             [owner_handler](const kube::ObjPtr& o, const kube::ObjPtr& n) {
                               if (job_changed(*o, *n)) owner_handler(n);
                             },
                             owner_handler});
  // A policy reads a pod only once its Job has finished (the termination
  // message, view_job): a pod starting or running changes nothing it
  // decides, and at a slot every due Job's pod is scheduled and started
  // while other due policies wait in the queue.
  auto pod_handler = [this](const kube::ObjPtr& p) {
    if (pod_has_ended(*p)) enqueue_owner(p);
  };
  caches_.pods.add_handlers({pod_handler, [pod_handler](const kube::ObjPtr&, const kube::ObjPtr& n) { pod_handler(n); },
                             owner_handler});
  auto restore_handler = [this](const kube::ObjPtr& rr) {
    const json spec = (*rr).value("spec", json::object());
    if (!spec.is_object()) return;
    const json ref = spec.value("policyRef", json::object());
    if (ref.is_object() && ref.contains("name") && ref["name"].is_string())
      enqueue_policy((*rr)["metadata"].value("namespace", ""), ref["name"].get<std::string>());
  };
  caches_.restores.add_handlers({restore_handler,
                                 [restore_handler](const kube::ObjPtr&, const kube::ObjPtr& n) { restore_handler(n); },
                                 restore_handler});
  for (auto* inf : {&caches_.deployments, &caches_.network_policies, &caches_.claims})
    inf->add_handlers({owner_handler, [owner_handler](const kube::ObjPtr&, const kube::ObjPtr& n) { owner_handler(n); },
                       owner_handler});
  // Any Service or Ingress may expose Databasus: look at the namespace's policies again.
  auto namespace_handler = [this](const kube::ObjPtr& o) {
    const std::string ns = (*o)["metadata"].value("namespace", "");
    for (const auto& p : caches_.policies.list(ns)) enqueue_policy(ns, (*p)["metadata"].value("name", ""));
  };
  for (auto* inf : {&caches_.services, &caches_.ingresses})
    inf->add_handlers({namespace_handler,
                       [namespace_handler](const kube::ObjPtr&, const kube::ObjPtr& n) { namespace_handler(n); },
                       namespace_handler});
  auto secret_handler = [this](const kube::ObjPtr& s) { enqueue_secret_users(s); };
  caches_.secrets.add_handlers({secret_handler,
                         [secret_handler](const kube::ObjPtr&, const kube::ObjPtr& n) { secret_handler(n); },
                         secret_handler});
}

BackupPolicyController::~BackupPolicyController() { stop(); }

void BackupPolicyController::enqueue_policy(const std::string& ns, const std::string& name) {
  controller_.queue().add(ns + "/" + name);
}

void BackupPolicyController::enqueue_owner(const kube::ObjPtr& obj) {
  const auto labels = (*obj)["metadata"].value("labels", json::object());
  auto it = labels.find(kLabelPolicy);
  if (it == labels.end() || !it->is_string()) return;
  const std::string ns = (*obj)["metadata"].value("namespace", "");
  // The label holds the policy's name, or a hash of a name too long to be a label (kube::label_value).
  bool found = false;
  for (const auto& p : caches_.policies.by_index(kIndexLabelName, ns + "/" + it->get<std::string>())) {
    enqueue_policy(ns, (*p)["metadata"].value("name", ""));
    found = true;
  }
  if (!found) enqueue_policy(ns, it->get<std::string>());
}

void BackupPolicyController::enqueue_secret_users(const kube::ObjPtr& secret) {
  const std::string ns = (*secret)["metadata"].value("namespace", "");
  const std::string name = (*secret)["metadata"].value("name", "");
  for (const auto& key : caches_.policies.keys_by_index(kIndexSecretRef, ns + "/" + name))
    enqueue_policy(ns, kube::split_key(key).second);
}

void BackupPolicyController::start() { controller_.start_when([this] { return caches_.synced(); }); }

void BackupPolicyController::stop() {
  volumes_->stop();
  prober_->stop();
  controller_.stop();
}

bool BackupPolicyController::synced() const { return caches_.synced(); }

// Creates `obj`, or brings an existing one back to its declared labels, owner and spec.
std::expected<void, std::string> BackupPolicyController::apply_object(const json& obj) {
  const std::string kind = obj.value("kind", "");
  const kube::Resource& res = kind == "Deployment"      ? kube::resources::kDeployments
                              : kind == "NetworkPolicy" ? kube::resources::kNetworkPolicies
                                                        : kube::resources::kPersistentVolumeClaims;
  const std::string ns = obj["metadata"].value("namespace", ""), obj_name = obj["metadata"].value("name", "");
  auto created = client_.create(res, ns, obj);
  if (created) {
    log::info("databasus object created", {{"kind", kind}, {"name", ns + "/" + obj_name}});
    return {};
  }
  if (!created.error().already_exists()) return std::unexpected("create " + kind + " " + obj_name + ": " + created.error().str());
  if (kind == "PersistentVolumeClaim") return {};  // a claim's spec is immutable: the existing one serves
  auto current = client_.get(res, ns, obj_name);
  if (!current) return std::unexpected("read " + kind + " " + obj_name + ": " + current.error().str());
  json updated = *current;
  updated["metadata"]["labels"] = obj["metadata"]["labels"];
  updated["metadata"]["ownerReferences"] = obj["metadata"]["ownerReferences"];
  updated["spec"] = obj["spec"];
  auto r = client_.update(res, ns, updated);
  if (!r) return std::unexpected("restore " + kind + " " + obj_name + ": " + r.error().str());
  log::info("databasus object restored", {{"kind", kind}, {"name", ns + "/" + obj_name}});
  return {};
}

// Slot to create, once per Job this replica created (a 409 is someone
// else's create, or our own seen again, and is not observed), as the CronJob
// controller observes cronjob_controller_job_creation_skew_duration_seconds
// right after a successful CreateJob and not on IsAlreadyExists
// (pkg/controller/cronjob/cronjob_controllerv2.go). It measures with the
// operator's clock, not the Job's creationTimestamp: the slot was computed
// on that clock (a ScaledClock in demos), and creationTimestamp has whole
// seconds where the goal is under one. Only scheduled actions: a catalog
// or retain Job's backup.si.dev/scheduled-at is not a schedule slot.
void BackupPolicyController::observe_schedule_skew(const json& job) {
  const json& meta = job["metadata"];
  const std::string action = meta.value("labels", json::object()).value(kLabelAction, "");
  if (action != action_name(Action::kBackup) && action != action_name(Action::kFullBackup) &&
      action != action_name(Action::kOffsiteCopy) && action != action_name(Action::kStateBundle))
    return;
  const auto slot = parse_rfc3339(meta.value("annotations", json::object()).value(kAnnotationSlot, ""));
  if (!slot) return;
  metrics_.schedule_skew(action, std::chrono::duration<double>(clock_.now() - *slot).count());
}

kube::ReconcileResult BackupPolicyController::reconcile(const std::string& key) {
  const auto [ns, name] = kube::split_key(key);
  const auto policy = caches_.policies.get(ns, name);
  if (!policy) {
    prober_->forget(key);
    volumes_->forget(key);
    metrics_.forget_policy(ns, name);
    return kube::ReconcileResult::done();
  }
  if ((*policy)["metadata"].contains("deletionTimestamp")) {
    prober_->forget(key);
    volumes_->forget(key);
    return kube::ReconcileResult::done();
  }

  PlanInputs in;
  in.policy = *policy;
  in.now = clock_.now();
  // A requeue is for an instant (a slot), counted from in.now: the time this
  // reconcile spends writing comes off it, or every slot would start that late.
  const auto started = std::chrono::steady_clock::now();
  in.default_image = opts_.default_image;
  in.operator_namespace = opts_.operator_namespace;
  in.sync_catalog = opts_.catalog_sync;
  const std::string uid = (*policy)["metadata"].value("uid", "");
  bool wait_for_pods = false;
  for (const auto& j : caches_.jobs.by_index(kIndexPolicy, kube::label_value(name))) {
    const json& job = *j;
    if (job["metadata"].value("namespace", "") != ns) continue;
    bool owned = false;
    for (const auto& r : job["metadata"].value("ownerReferences", json::array())) owned = owned || r.value("uid", "") == uid;
    if (!owned) continue;  // a Job of a deleted namesake is left to the garbage collector
    ObservedJob o;
    o.name = job["metadata"].value("name", "");
    o.action = job["metadata"].value("labels", json::object()).value(kLabelAction, "");
    o.slot = parse_rfc3339(job["metadata"].value("annotations", json::object()).value(kAnnotationSlot, ""))
                 .value_or(parse_rfc3339(job["metadata"].value("creationTimestamp", "")).value_or(in.now));
    if (o.action == "retain")
      o.expire = split_ids(job["metadata"].value("annotations", json::object()).value(kAnnotationExpire, ""));
    o.context = job["metadata"].value("labels", json::object()).value(kLabelContext, "");
    const JobView v = view_job(job, caches_.pods, o.action == "state-bundle" ? "state-bundle" : "walg", grace_);
    o.state = v.state;
    o.termination_message = v.message;
    o.failure = v.failure;
    o.finished = v.finished;
    wait_for_pods = wait_for_pods || v.awaiting_pod;
    in.jobs.push_back(std::move(o));
  }
  for (const auto& r : caches_.restores.by_index(kIndexPolicyRef, name)) {
    const json& rr = *r;
    if (rr["metadata"].value("namespace", "") != ns || rr["metadata"].contains("deletionTimestamp")) continue;
    ObservedRestore o;
    o.name = rr["metadata"].value("name", "");
    const json rspec = rr.value("spec", json::object());
    const json rst = rr.value("status", json::object());
    if (!rspec.is_object() || !rst.is_object()) continue;
    o.purpose = rst.value("purpose", rspec.value("purpose", "restore"));
    o.phase = rst.value("phase", "");
    o.backup_id = rst.value("backup", json::object()).value("id", rspec.value("backupId", ""));
    o.checksum = rst.value("backup", json::object()).value("checksum", "");
    o.message = rst.value("message", "");
    o.completion = parse_rfc3339(rst.value("completionTime", ""));
    for (const auto& ref : rr["metadata"].value("ownerReferences", json::array())) o.owned = o.owned || ref.value("uid", "") == uid;
    in.restores.push_back(std::move(o));
  }
  const json spec = (*policy).value("spec", json::object());
  auto secrets = caches_.secret_data(ns, spec);
  if (!secrets) return kube::ReconcileResult::failed("read the policy's Secrets: " + secrets.error().str());
  in.secrets = std::move(*secrets);
  // The spec, parsed once for this reconcile: the plan, Databasus and the metrics below read it.
  in.spec = api::parse_backup_policy_spec(spec);
  const auto& sp = *in.spec;
  // WAL archiving: the newest background probe (the password goes to the prober only until its probe ends).
  if (sp) {
    if (auto conn = archive_connection(*sp, in.secrets); conn.params)
      in.archiving = prober_->observe(key, std::move(*conn.params));
    else
      prober_->forget(key);
    if (auto req = data_volume_request(*sp, ns, in.archiving ? in.archiving->data_directory : ""))
      in.data_volume = volumes_->observe(key, *req);
    else
      volumes_->forget(key);
  }

  PolicyPlan plan = plan_backup_policy(in);
  std::string databasus_error;  // why Databasus' objects could not be applied, if they could not

  // Databasus: its objects as declared, and the exposure audit.
  if (sp) {
    DatabasusInputs di;
    di.policy = *policy;
    di.spec = *sp;
    di.operator_image = opts_.default_image;
    di.now = in.now;
    auto owned = [&](const NamespacedInformers& inf, const std::string& object_name) -> json {
      auto o = inf.get(ns, object_name);
      if (!o) return json();
      for (const auto& r : (*o)["metadata"].value("ownerReferences", json::array()))
        if (r.value("uid", "") == uid) return *o;
      return json();  // a namesake's, or a stranger's: not ours to judge
    };
    const std::string objects = bounded_name(name + "-databasus");
    di.deployment = owned(caches_.deployments, objects);
    di.network_policy = owned(caches_.network_policies, objects);
    di.pvc = owned(caches_.claims, bounded_name(name + "-databasus-data"));
    for (const auto& svc : caches_.services.list(ns)) di.services.push_back(*svc);
    for (const auto& ing : caches_.ingresses.list(ns)) di.ingresses.push_back(*ing);
    const DatabasusPlan dp = plan_databasus(di);
    // An optional add-on: its failure (a quota, a refused object) is its own
    // condition and a retry, never a reason to skip the backups below.
    for (const auto& obj : dp.apply)
      if (auto r = apply_object(obj); !r) {
        databasus_error = r.error();
        break;
      }
    for (const auto& [kind, object_name] : dp.remove) {
      if (!databasus_error.empty()) break;
      const kube::Resource& res = kind == "Deployment"      ? kube::resources::kDeployments
                                  : kind == "NetworkPolicy" ? kube::resources::kNetworkPolicies
                                                            : kube::resources::kPersistentVolumeClaims;
      auto r = client_.remove(res, ns, object_name, {"Background", "", ""});
      if (!r && !r.error().not_found()) {
        databasus_error = "delete " + kind + " " + object_name + ": " + r.error().str();
        break;
      }
      log::info("databasus removed", {{"policy", key}, {"kind", kind}, {"name", object_name}});
    }
    json conditions = plan.status.value("conditions", json::array());
    const int64_t generation = (*policy)["metadata"].value("generation", int64_t{0});
    // These Events report what was just found and done (an exposure repaired,
    // an apply refused): recorded now, with the effect. After the status
    // write they would be lost when it conflicts, since the next look finds
    // nothing left to repair.
    for (const auto& e : databasus_conditions(dp, conditions, generation, in.now))
      events_.record(*policy, e.type, e.reason, e.message);
    if (!databasus_error.empty()) {
      log::warn("databasus objects not applied", {{"policy", key}, {"error", databasus_error}});
      set_condition(conditions, "DatabasusReady", "False", "ApplyFailed", databasus_error, generation, in.now);
      events_.record(*policy, "Warning", "DatabasusApplyFailed", databasus_error);
    }
    plan.status["conditions"] = conditions;
    metrics_.databasus_exposed(ns, name, dp.enabled, !dp.exposures.empty());
    if (!dp.exposures.empty()) log::warn("databasus exposed", {{"policy", key}, {"exposures", dp.exposures}});
  }

  bool created = false;
  for (size_t i = 0; i < plan.create.size(); ++i) {
    const json& job = plan.create[i];
    auto r = client_.create(kube::resources::kJobs, ns, job);
    if (!r && !r.error().already_exists())
      return kube::ReconcileResult::failed("create Job " + job["metadata"].value("name", "") + ": " + r.error().str());
    // Another replica's (or an earlier life's) Job that the cache has not
    // shown yet: look again once it has, and record nothing of its slot
    // before then (a status naming a slot whose Job was never seen would
    // count it run).
    if (!r && !caches_.jobs.get(ns, job["metadata"].value("name", "")))
      return kube::ReconcileResult::conflict("create Job " + job["metadata"].value("name", "") +
                                             ": it exists, but not yet in the cache");
    if (r) {
      created = true;
      log::info("job created", {{"policy", key}, {"job", job["metadata"]["name"]}});
      observe_schedule_skew(job);
      if (i < plan.create_events.size())
        events_.record(*policy, plan.create_events[i].type, plan.create_events[i].reason, plan.create_events[i].message);
    }
  }
  for (const auto& jn : plan.remove) {
    auto r = client_.remove(kube::resources::kJobs, ns, jn, {"Background", "", ""});
    if (!r && !r.error().not_found()) return kube::ReconcileResult::failed("delete Job " + jn + ": " + r.error().str());
  }
  for (const auto& rr : plan.create_restores) {
    auto r = client_.create(kRestoreRequests, ns, rr);
    if (!r && !r.error().already_exists())
      return kube::ReconcileResult::failed("create RestoreRequest " + rr["metadata"].value("name", "") + ": " + r.error().str());
    if (r) log::info("verification requested", {{"policy", key}, {"restoreRequest", rr["metadata"]["name"]}});
  }
  for (const auto& rn : plan.remove_restores) {
    auto r = client_.remove(kRestoreRequests, ns, rn, {"Background", "", ""});
    if (!r && !r.error().not_found()) return kube::ReconcileResult::failed("delete RestoreRequest " + rn + ": " + r.error().str());
  }
  // Act first, record after: when other keys wait (at a slot, every due
  // policy), this one's status write goes behind them, so each due Job is
  // created one create after the last instead of a create and a status write
  // (on a busy API server the write costs more than the create). Safe as a
  // conflict is: the next pass plans again from the status as it is and
  // finds the Job (its name is fixed by the slot), so nothing runs twice and
  // the Events and counters that follow the write come once, with it.
  if (created && controller_.queue().has_ready()) return kube::ReconcileResult::after(std::chrono::milliseconds(0));
  if (auto last = plan.status.value("lastSuccessfulBackup", json::object()); last.contains("completionTime"))
    if (auto t = parse_rfc3339(last.value("completionTime", "")))
      metrics_.backup_last_success(ns, name, last.value("type", "full"),
                                   std::chrono::duration<double>(t->time_since_epoch()).count());
  auto stamp = [&](const char* field, const char* time_key) -> std::optional<double> {
    const json v = plan.status.value(field, json::object());
    if (auto t = parse_rfc3339(v.value(time_key, "")))
      return std::chrono::duration<double>(t->time_since_epoch()).count();
    return std::nullopt;
  };
  if (auto t = stamp("lastVerifiedBackup", "verifiedAt")) metrics_.backup_last_verified(ns, name, *t);
  if (auto t = stamp("lastDrill", "completionTime")) metrics_.drill_last_success(ns, name, *t);
  // Reconciling and Stalled restate Ready for kstatus (False when all is
  // well, which a "not True" panel or alert would misread): no series, so
  // they cost no memory per policy either.
  for (const auto& c : plan.status.value("conditions", json::array()))
    if (const std::string type = c.value("type", ""); type != "Reconciling" && type != "Stalled")
      metrics_.policy_condition(ns, name, type, c.value("status", ""));
  const json final_conditions = plan.status.value("conditions", json::array());
  if (const json* ca = find_condition(final_conditions, postgres::kConditionType)) {
    std::optional<double> last_archived, failed;
    if (in.archiving && in.archiving->error.empty()) {
      if (in.archiving->last_archived_time)
        last_archived = std::chrono::duration<double>(in.archiving->last_archived_time->time_since_epoch()).count();
      failed = static_cast<double>(in.archiving->failed_count);
    }
    metrics_.continuous_archiving(ns, name, ca->value("status", "") == "True", last_archived, failed);
  }
  // The delta schedule's interval, for the BackupMissed alert.
  if (sp) {
    auto cron = schedule::Cron::parse(sp->schedule.backup);
    auto tz = schedule::find_zone(sp->schedule.time_zone);
    if (cron && tz)
      if (auto a = cron->next(in.now, *tz))
        if (auto b = cron->next(*a, *tz)) metrics_.backup_interval(ns, name, std::chrono::duration<double>(*b - *a).count());
  }

  // A new (or changed) data volume's first check is a GET or three, and its
  // answer wakes this key: a status written before it would say "pending"
  // and be rewritten moments later. Held a while, a new policy costs one
  // status write instead of two; a check slower than the hold gets its
  // pending status written. Nothing is held when this reconcile acted.
  // (The check may have ended since observe() above: its wake brings the answer.)
  if (sp && !in.data_volume && plan.create.empty() && plan.remove.empty() && plan.create_restores.empty() &&
      plan.remove_restores.empty())
    if (auto since = volumes_->asked_at(key)) {
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - *since);
      if (waited < opts_.first_status_hold) return kube::ReconcileResult::after(opts_.first_status_hold - waited);
    }

  // Quiet when nothing changes: no write.
  if (plan.status != (*policy).value("status", json())) {
    json updated = *policy;
    updated["status"] = plan.status;
    auto r = client_.update_status(kBackupPolicies, ns, updated);
    if (!r) {
      if (r.error().not_found()) return kube::ReconcileResult::done();
      if (r.error().conflict()) return kube::ReconcileResult::conflict("update status: " + r.error().str());
      return kube::ReconcileResult::failed("update status: " + r.error().str());
    }
  }
  // What the status now records is announced once: Events and counters come
  // only after it was written (a conflict or an error above recomputes the
  // plan, and these with it, from the status as it is). A created Job's
  // Event went with its create, above.
  for (const auto& e : plan.events) events_.record(*policy, e.type, e.reason, e.message);
  if (plan.new_missed > 0) metrics_.backup_missed(ns, name, plan.new_missed);
  for (const auto& run : plan.finished_runs) metrics_.backup_run(ns, name, run.action, run.result, run.seconds);
  if (!databasus_error.empty()) {
    // Retried at a steady pace (not the failure backoff, which would grow past the next backup slot).
    auto retry = opts_.addon_retry;
    if (plan.requeue_after)
      retry = std::min(retry, std::max(std::chrono::milliseconds(static_cast<long long>(plan.requeue_after->count() / clock_.rate())),
                                       std::chrono::milliseconds(50)));
    return kube::ReconcileResult::after(retry);
  }
  if (wait_for_pods) return kube::ReconcileResult::after(std::chrono::milliseconds(500));
  if (plan.requeue_after) {
    const auto real = std::chrono::milliseconds(static_cast<long long>(plan.requeue_after->count() / clock_.rate()));
    const auto spent = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
    return kube::ReconcileResult::after(std::max(std::max(real, std::chrono::milliseconds(50)) - spent,
                                                 std::chrono::milliseconds(1)));
  }
  return kube::ReconcileResult::done();
}

}  // namespace bo::reconcile
