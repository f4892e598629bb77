#include "reconcile/data_volume_resolver.h"

#include <algorithm>
#include <functional>
#include <memory>
#include <vector>

#include "common/log.h"
#include "kube/selector.h"

namespace bo::reconcile {
namespace {

using json = nlohmann::json;

const kube::Resource kStatefulSets{"apps", "v1", "statefulsets", "StatefulSet", true};

DataVolumeCheck api_failed(const std::string& field, const std::string& what, const kube::Error& e) {
  return check_failed("DataVolumeCheckFailed", field,
                      "could not " + what + " (HTTP " + std::to_string(e.status) + " " + e.reason + "): " + e.message);
}

DataVolumeCheck from_problem(const api::Problem& p) {
  DataVolumeCheck c;
  c.reason = p.reason;
  c.field = p.field;
  c.message = p.message;
  return c;
}

}  // namespace

DataVolumeCheck check_data_volume(kube::Client& client, const DataVolumeRequest& req) {
  if (!req.workload()) {
    const std::string field = "spec.database.dataVolume.claimName";
    auto pvc = client.get(kube::resources::kPersistentVolumeClaims, req.ns, req.claim_name);
    if (!pvc && pvc.error().not_found())
      return check_failed("DataVolumeNotFound", field,
                          "PersistentVolumeClaim " + req.claim_name + " not found in namespace " + req.ns);
    if (!pvc) return api_failed(field, "read PersistentVolumeClaim " + req.claim_name, pvc.error());
    if (auto p = check_claim(*pvc, field)) return from_problem(*p);
    DataVolumeCheck c;
    c.resolved = true;
    c.volume.claim_name = req.claim_name;
    c.volume.mount_path = req.mount_path;
    c.volume.sub_path = req.sub_path;
    c.volume.run_as_user = req.run_as_user;
    c.volume.run_as_group = req.run_as_group;
    c.message = "claim " + req.claim_name + " exists";
    return c;
  }
  const std::string field = "spec.database.workloadRef";
  const kube::Resource& res = req.kind == "StatefulSet" ? kStatefulSets : kube::resources::kDeployments;
  auto workload = client.get(res, req.ns, req.name);
  if (!workload && workload.error().not_found())
    return check_failed("WorkloadNotFound", field, req.kind + " " + req.name + " not found in namespace " + req.ns);
  if (!workload) return api_failed(field, "read " + req.kind + " " + req.name, workload.error());
  std::string err;
  const json sel_json = workload->value("spec", json::object()).value("selector", json::object());
  auto sel = kube::LabelSelector::from_json(sel_json, &err);
  if (!sel || sel->empty())
    return check_failed("WorkloadNotRunning", field,
                        req.kind + " " + req.name + " has no usable spec.selector" + (err.empty() ? "" : ": " + err));
  kube::ListOptions opts;
  opts.label_selector = sel->to_string();
  auto pods = client.list(kube::resources::kPods, req.ns, opts);
  if (!pods) return api_failed(field, "list the pods of " + req.kind + " " + req.name, pods.error());
  std::vector<json> items;
  for (auto& p : (*pods).value("items", json::array())) items.push_back(std::move(p));
  const json* pod = pick_pod(req.kind, req.name, items);
  if (!pod)
    return check_failed("WorkloadNotRunning", field,
                        req.kind + " " + req.name + " has no Ready pod (" + std::to_string(items.size()) +
                            " pod(s) match its selector): backup Jobs run beside the running database");
  auto vol = resolve_pod_volume(*pod, req.data_directory, req.container, req.run_as_user, req.run_as_group);
  if (!vol) return from_problem(vol.error());
  auto pvc = client.get(kube::resources::kPersistentVolumeClaims, req.ns, vol->claim_name);
  if (!pvc && pvc.error().not_found())
    return check_failed("DataVolumeNotFound", field,
                        "PersistentVolumeClaim " + vol->claim_name + " of pod " + vol->pod + " not found in namespace " +
                            req.ns);
  if (!pvc) return api_failed(field, "read PersistentVolumeClaim " + vol->claim_name, pvc.error());
  if (auto p = check_claim(*pvc, field)) return from_problem(*p);
  DataVolumeCheck c;
  c.resolved = true;
  c.volume = *vol;
  c.message = "claim " + vol->claim_name + " of pod " + vol->pod + " at " + vol->mount_path + " on node " +
              vol->node_name + ", uid " + std::to_string(vol->run_as_user) + " gid " + std::to_string(vol->run_as_group);
  return c;
}

DataVolumeResolver::DataVolumeResolver(CheckFn check, WakeFn wake, std::chrono::milliseconds interval,
                                       double checks_per_second, int threads)
    : check_(std::move(check)), wake_(std::move(wake)), interval_(interval) {
  const int n = std::max(1, threads);
  for (int i = 0; i < n; ++i)
    workers_.push_back(std::make_unique<BackgroundWorker>([this](const std::string& key) { run_check(key); },
                                                          [this](const std::string& key) { check_due(key); },
                                                          checks_per_second > 0 ? checks_per_second / n : checks_per_second));
}

BackgroundWorker& DataVolumeResolver::worker(const std::string& key) {
  return *workers_[std::hash<std::string>{}(key) % workers_.size()];
}

DataVolumeResolver::~DataVolumeResolver() { stop(); }

std::optional<DataVolumeCheck> DataVolumeResolver::observe(const std::string& key, const DataVolumeRequest& req) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& e = it->second;
  if (inserted || e.request != req) {
    e.request = req;
    e.latest.reset();  // an outcome of another request says nothing about this one
    e.asked = std::chrono::steady_clock::now();
    e.generation = ++generations_;
    // The policy waits on this outcome (no backup Job before it): ahead of the paced re-checks.
    (void)worker(key).enqueue(key, BackgroundWorker::Lane::kFirst);  // unless queued already (it then checks the new request) or stopped
  }
  return e.latest;
}

std::optional<std::chrono::steady_clock::time_point> DataVolumeResolver::asked_at(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.asked;
}

void DataVolumeResolver::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  if (entries_.erase(key)) worker(key).cancel(key);
}

void DataVolumeResolver::stop() {
  for (auto& w : workers_) w->stop();
}

int DataVolumeResolver::checks_started() const {
  std::lock_guard lock(mu_);
  return started_;
}

void DataVolumeResolver::check_due(const std::string& key) {
  // The worker holds the request: a re-check joins the queue (unless the key is queued already).
  std::lock_guard lock(mu_);
  if (entries_.contains(key)) (void)worker(key).enqueue(key);
}

void DataVolumeResolver::run_check(const std::string& key) {
  std::unique_lock lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  const DataVolumeRequest req = it->second.request;
  const uint64_t generation = it->second.generation;
  ++started_;
  lock.unlock();
  DataVolumeCheck outcome;
  try {
    outcome = check_(req);
  } catch (const std::exception& e) {
    outcome = check_failed("DataVolumeCheckFailed", req.workload() ? "spec.database.workloadRef"
                                                                  : "spec.database.dataVolume.claimName",
                           std::string("the check failed: ") + e.what());
  }
  lock.lock();
  it = entries_.find(key);
  if (it == entries_.end()) return;  // forgotten meanwhile
  Entry& e = it->second;
  worker(key).schedule_at(key, std::chrono::steady_clock::now() + interval_);
  if (e.generation != generation) {
    // The request changed while this ran: check the new one now.
    (void)worker(key).enqueue(key);
    return;
  }
  const bool changed = e.latest != outcome;
  e.latest = std::move(outcome);
  if (changed && !worker(key).stopping()) {
    lock.unlock();
    wake_(key);
  }
}

}  // namespace bo::reconcile
