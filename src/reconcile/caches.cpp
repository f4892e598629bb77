#include "reconcile/caches.h"

#include "api/backup_policy.h"
#include "common/encoding.h"
#include "common/timefmt.h"
#include "kube/names.h"
#include "reconcile/backup_jobs.h"

namespace bo::reconcile {
namespace {

using json = nlohmann::json;
const std::string kManagedSelector = "app.kubernetes.io/managed-by=backup-operator";

kube::InformerOptions options(const std::string& label_selector, std::function<void(json&)> transform = slim_object) {
  kube::InformerOptions o;
  o.label_selector = label_selector;
  o.transform = std::move(transform);
  o.compact = true;  // MessagePack in memory; reconciles decode the few objects they read
  return o;
}

}  // namespace

void slim_object(json& obj) {
  auto& m = obj["metadata"];
  m.erase("managedFields");
  if (m.contains("annotations")) {
    m["annotations"].erase("kubectl.kubernetes.io/last-applied-configuration");
    if (m["annotations"].empty()) m.erase("annotations");
  }
}

bool PodGrace::wait(const std::string& job_uid) {
  std::lock_guard lock(mu_);
  const auto first = first_seen_.try_emplace(job_uid, std::chrono::steady_clock::now()).first->second;
  return std::chrono::steady_clock::now() - first < std::chrono::seconds(30);
}

void PodGrace::done(const std::string& job_uid) {
  std::lock_guard lock(mu_);
  first_seen_.erase(job_uid);
}

namespace {

bool has_true(const json& obj, const char* type) {
  for (const auto& c : obj.value("status", json::object()).value("conditions", json::array()))
    if (c.value("type", "") == type && c.value("status", "") == "True") return true;
  return false;
}

}  // namespace

JobView view_job(const json& job, const kube::Informer& pods, const std::string& container, PodGrace& grace) {
  JobView v;
  if (has_true(job, "Complete")) v.state = ObservedJob::State::kSucceeded;
  else if (has_true(job, "Failed")) v.state = ObservedJob::State::kFailed;
  if (v.state == ObservedJob::State::kActive) return v;
  const json st = job.value("status", json::object());
  for (const auto& c : st.value("conditions", json::array()))
    if ((c.value("type", "") == "Failed" || c.value("type", "") == "Complete") && c.value("status", "") == "True") {
      v.finished = parse_rfc3339(c.value("lastTransitionTime", ""));
      if (c.value("type", "") == "Failed") v.failure = c.value("reason", "") + ": " + c.value("message", "");
    }
  if (auto ct = parse_rfc3339(st.value("completionTime", ""))) v.finished = ct;
  // The result is in the termination message of the pod that ended the Job.
  bool seen = false;
  const std::string job_ns = job["metadata"].value("namespace", "");
  for (const auto& p : pods.by_index(kIndexJob, job["metadata"].value("name", ""))) {
    if ((*p)["metadata"].value("namespace", "") != job_ns) continue;
    const std::string phase = (*p).value("status", json::object()).value("phase", "");
    if ((v.state == ObservedJob::State::kSucceeded) != (phase == "Succeeded")) continue;
    for (const auto& cs : (*p)["status"].value("containerStatuses", json::array()))
      if (cs.value("name", "") == container && cs.value("state", json::object()).contains("terminated")) {
        seen = true;
        v.message = cs["state"]["terminated"].value("message", "");
        v.exit_code = cs["state"]["terminated"].value("exitCode", 0);
      }
  }
  // A pod that never reached its container: the failed init container says why.
  if (!seen && v.state == ObservedJob::State::kFailed)
    for (const auto& p : pods.by_index(kIndexJob, job["metadata"].value("name", ""))) {
      if ((*p)["metadata"].value("namespace", "") != job_ns) continue;
      for (const auto& cs : (*p).value("status", json::object()).value("initContainerStatuses", json::array())) {
        const json t = cs.value("state", json::object()).value("terminated", json::object());
        if (t.value("exitCode", 0) == 0) continue;
        seen = true;
        v.exit_code = t.value("exitCode", 1);
        v.failure = "init container " + cs.value("name", std::string("?")) + " exited " + std::to_string(v.exit_code) +
                    (t.value("message", "").empty() ? "" : ": " + t.value("message", "")) +
                    (v.failure.empty() ? "" : " (" + v.failure + ")");
      }
    }
  const std::string uid = job["metadata"].value("uid", "");
  // A failure by deadline may have no terminated pod; a failure by backoff has one.
  const bool expect_pod = v.state == ObservedJob::State::kSucceeded || v.failure.starts_with("BackoffLimitExceeded");
  if (!seen && expect_pod && grace.wait(uid)) {
    v.awaiting_pod = true;
    v.state = ObservedJob::State::kActive;
  } else {
    grace.done(uid);
  }
  return v;
}

Caches::Caches(kube::Client& client, const std::string& ns)
    : policies(client, kBackupPolicies, ns, options("")),
      restores(client, kRestoreRequests, ns, options("")),
      jobs(client, kube::resources::kJobs, ns, options(kManagedSelector, slim_job)),
      pods(client, kube::resources::kPods, ns, options(kManagedSelector, slim_pod)),
      secrets(client, kube::resources::kSecrets, ns, options("")),
      deployments(client, kube::resources::kDeployments, ns, options(kManagedSelector)),
      network_policies(client, kube::resources::kNetworkPolicies, ns, options(kManagedSelector)),
      claims(client, kube::resources::kPersistentVolumeClaims, ns, options(kManagedSelector)),
      services(client, kube::resources::kServices, ns, options("")),
      ingresses(client, kube::resources::kIngresses, ns, options("")) {
  jobs.add_index(kIndexPolicy, kube::index_by_label(kLabelPolicy));
  jobs.add_index(kIndexRestore, kube::index_by_label("backup.si.dev/restore-request"));
  auto by_label_name = [](const json& o) -> std::vector<std::string> {
    return {o["metadata"].value("namespace", "") + "/" + kube::label_value(o["metadata"].value("name", ""))};
  };
  policies.add_index(kIndexLabelName, by_label_name);
  restores.add_index(kIndexLabelName, by_label_name);
  pods.add_index(kIndexJob, kube::index_by_label("batch.kubernetes.io/job-name"));
  policies.add_index(kIndexSecretRef, [](const json& p) -> std::vector<std::string> {
    std::vector<std::string> out;
    const std::string ns = p["metadata"].value("namespace", "");
    for (const auto& name : api::referenced_secrets(p.value("spec", json::object()))) out.push_back(ns + "/" + name);
    return out;
  });
  restores.add_index(kIndexPolicyRef, [](const json& rr) -> std::vector<std::string> {
    const json spec = rr.value("spec", json::object());
    if (!spec.is_object()) return {};
    const json ref = spec.value("policyRef", json::object());
    if (!ref.is_object() || !ref.contains("name") || !ref["name"].is_string()) return {};
    return {ref["name"].get<std::string>()};
  });
}

Caches::~Caches() { stop(); }

void Caches::start() {
  for (auto* inf : {&policies, &restores, &jobs, &pods, &secrets, &deployments, &network_policies, &claims, &services, &ingresses})
    threads_.emplace_back([inf](std::stop_token st) { inf->run(st); });
}

void Caches::stop() {
  for (auto& t : threads_) t.request_stop();
  threads_.clear();
}

bool Caches::synced() const {
  for (const auto* inf : {&policies, &restores, &jobs, &pods, &secrets, &deployments, &network_policies, &claims, &services, &ingresses})
    if (!inf->synced()) return false;
  return true;
}

api::SecretData Caches::secret_data(const std::string& ns, const std::vector<std::string>& names) const {
  api::SecretData out;
  for (const auto& sn : names) {
    auto s = secrets.get(ns, sn);
    if (!s) continue;
    auto& data = out[sn];
    const json secret_data = (*s).value("data", json::object());
    for (const auto& [k, v] : secret_data.items())
      if (v.is_string()) data[k] = base64_decode(v.get<std::string>()).value_or("");
  }
  return out;
}

}  // namespace bo::reconcile
