#include "reconcile/data_volume_resolver.h"

#include <algorithm>
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
                                       double checks_per_second)
    : check_(std::move(check)),
      wake_(std::move(wake)),
      interval_(interval),
      limiter_(checks_per_second, std::max(1, static_cast<int>(checks_per_second))) {
  worker_ = std::thread([this] { run(); });
}

DataVolumeResolver::~DataVolumeResolver() { stop(); }

std::optional<DataVolumeCheck> DataVolumeResolver::observe(const std::string& key, const DataVolumeRequest& req) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& e = it->second;
  if (inserted || e.request != req) {
    e.request = req;
    e.latest.reset();  // an outcome of another request says nothing about this one
    e.generation = ++generations_;
    if (!e.queued && !stopping_) {
      e.queued = true;
      queue_.push_back(key);
      cv_.notify_one();
    }
  }
  return e.latest;
}

void DataVolumeResolver::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  if (entries_.erase(key)) queue_.erase(std::remove(queue_.begin(), queue_.end(), key), queue_.end());
}

void DataVolumeResolver::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

int DataVolumeResolver::checks_started() const {
  std::lock_guard lock(mu_);
  return started_;
}

void DataVolumeResolver::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const auto now = std::chrono::steady_clock::now();
    // Re-checks that came due join the queue (the worker holds the request).
    while (!due_.empty() && due_.begin()->first <= now) {
      const std::string key = due_.begin()->second;
      due_.erase(due_.begin());
      auto it = entries_.find(key);
      if (it != entries_.end() && !it->second.queued && !it->second.running) {
        it->second.queued = true;
        queue_.push_back(key);
      }
    }
    if (queue_.empty()) {
      if (due_.empty()) cv_.wait(lock);
      else cv_.wait_until(lock, due_.begin()->first);
      continue;
    }
    const std::string key = queue_.front();
    queue_.pop_front();
    auto it = entries_.find(key);
    if (it == entries_.end()) continue;
    it->second.queued = false;
    it->second.running = true;
    const DataVolumeRequest req = it->second.request;
    const uint64_t generation = it->second.generation;
    ++started_;
    lock.unlock();
    limiter_.acquire();
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
    if (it == entries_.end()) continue;  // forgotten meanwhile
    Entry& e = it->second;
    e.running = false;
    due_.emplace(std::chrono::steady_clock::now() + interval_, key);
    if (e.generation != generation) {
      // The request changed while this ran: check the new one now.
      if (!e.queued) {
        e.queued = true;
        queue_.push_back(key);
      }
      continue;
    }
    const bool changed = e.latest != outcome;
    e.latest = std::move(outcome);
    if (changed && !stopping_) {
      lock.unlock();
      wake_(key);
      lock.lock();
    }
  }
}

}  // namespace bo::reconcile
