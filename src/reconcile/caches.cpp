#include "reconcile/caches.h"

#include <algorithm>
#include <cctype>

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

// A pod is read only once it has ended (view_job: the termination message
// of the pod that ended its Job), so only ended pods are cached. The API
// server does the filtering (pods are selectable by status.phase), and a pod
// arrives as ADDED when it enters the selection, as it ends: at a slot, the
// due Jobs' pods are created, scheduled and started without one watch event
// reaching the operator.
kube::InformerOptions ended_pod_options() {
  kube::InformerOptions o = options(kManagedSelector, slim_pod);
  o.field_selector = kEndedPodSelector;
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

JobView view_job(const json& job, const NamespacedInformers& pods, const std::string& container, PodGrace& grace) {
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

bool job_changed(const json& old_job, const json& new_job) {
  auto without_version = [](json j) {
    if (auto m = j.find("metadata"); m != j.end() && m->is_object()) m->erase("resourceVersion");
    return j;
  };
  return without_version(old_job) != without_version(new_job);
}

bool pod_has_ended(const json& pod) {
  // The terminated state of a container status, or null (any field of the wrong type reads as absent).
  auto terminated = [](const json& cs) -> const json* {
    if (!cs.is_object()) return nullptr;
    auto state = cs.find("state");
    if (state == cs.end() || !state->is_object()) return nullptr;
    auto t = state->find("terminated");
    return t != state->end() && t->is_object() ? &*t : nullptr;
  };
  auto status = pod.find("status");
  if (status == pod.end() || !status->is_object()) return false;
  const json& st = *status;
  if (auto phase = st.find("phase"); phase != st.end() && (*phase == "Succeeded" || *phase == "Failed")) return true;
  if (auto list = st.find("containerStatuses"); list != st.end() && list->is_array())
    for (const auto& cs : *list)
      if (terminated(cs)) return true;
  if (auto list = st.find("initContainerStatuses"); list != st.end() && list->is_array())
    for (const auto& cs : *list)
      if (const json* t = terminated(cs); t && t->value("exitCode", 0) != 0) return true;
  return false;
}

NamespacedInformers::NamespacedInformers(kube::Client& client, const kube::Resource& resource,
                                         const std::vector<std::string>& namespaces, const kube::InformerOptions& opts)
    : namespaces_(namespaces.empty() ? std::vector<std::string>{""} : namespaces) {
  for (const auto& ns : namespaces_) informers_.push_back(std::make_unique<kube::Informer>(client, resource, ns, opts));
}

void NamespacedInformers::add_handlers(const kube::InformerHandlers& h) {
  for (auto& inf : informers_) inf->add_handlers(h);
}

void NamespacedInformers::add_index(const std::string& name, const kube::Informer::IndexFn& fn) {
  for (auto& inf : informers_) inf->add_index(name, fn);
}

bool NamespacedInformers::synced() const {
  return std::all_of(informers_.begin(), informers_.end(), [](const auto& inf) { return inf->synced(); });
}

kube::ObjPtr NamespacedInformers::get(const std::string& ns, const std::string& name) const {
  for (size_t i = 0; i < informers_.size(); ++i)
    if (namespaces_[i].empty() || namespaces_[i] == ns) return informers_[i]->get(ns, name);
  return nullptr;
}

std::vector<kube::ObjPtr> NamespacedInformers::list(const std::string& ns) const {
  std::vector<kube::ObjPtr> out;
  for (size_t i = 0; i < informers_.size(); ++i) {
    if (!ns.empty() && !namespaces_[i].empty() && namespaces_[i] != ns) continue;
    auto part = informers_[i]->list(ns);
    out.insert(out.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return out;
}

namespace {
// What part(informer) answers, for every informer in turn, in one vector.
template <class Part>
auto concat(const std::vector<std::unique_ptr<kube::Informer>>& informers, Part part) {
  decltype(part(*informers.front())) out;
  for (const auto& inf : informers) {
    auto p = part(*inf);
    out.insert(out.end(), std::make_move_iterator(p.begin()), std::make_move_iterator(p.end()));
  }
  return out;
}
}  // namespace

std::vector<kube::ObjPtr> NamespacedInformers::by_index(const std::string& index, const std::string& value) const {
  return concat(informers_, [&](const kube::Informer& inf) { return inf.by_index(index, value); });
}

std::vector<std::string> NamespacedInformers::keys_by_index(const std::string& index, const std::string& value) const {
  return concat(informers_, [&](const kube::Informer& inf) { return inf.keys_by_index(index, value); });
}

size_t NamespacedInformers::size() const {
  size_t n = 0;
  for (const auto& inf : informers_) n += inf->size();
  return n;
}

std::expected<std::vector<std::string>, std::string> parse_watch_namespaces(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values) {
    size_t start = 0;
    while (start <= v.size()) {
      size_t end = v.find(',', start);
      if (end == std::string::npos) end = v.size();
      std::string ns = v.substr(start, end - start);
      start = end + 1;
      ns.erase(0, ns.find_first_not_of(" \t"));
      ns.erase(ns.find_last_not_of(" \t") + 1);
      if (ns.empty()) continue;
      // A namespace name is a DNS-1123 label (apimachinery ValidateNamespaceName).
      const bool ok = ns.size() <= 63 && std::isalnum(static_cast<unsigned char>(ns.front())) &&
                      std::isalnum(static_cast<unsigned char>(ns.back())) &&
                      std::all_of(ns.begin(), ns.end(), [](unsigned char c) {
                        return (std::islower(c) || std::isdigit(c) || c == '-');
                      });
      if (!ok) return std::unexpected("\"" + ns + "\" is not a namespace name (a DNS-1123 label: lower-case letters, digits, '-')");
      if (std::find(out.begin(), out.end(), ns) == out.end()) out.push_back(ns);
    }
  }
  return out;
}

namespace {

// A Secret's metadata as the operator keeps it: enough to key it and to see it change.
void secret_metadata(json& obj) {
  const json m = obj.value("metadata", json::object());
  json keep = json::object();
  for (const char* k : {"name", "namespace", "resourceVersion", "uid"})
    if (m.contains(k)) keep[k] = m[k];
  obj["metadata"] = std::move(keep);
}

kube::InformerOptions metadata_options() {
  kube::InformerOptions o;
  o.metadata_only = true;
  o.transform = secret_metadata;
  // A cluster holds many more Secrets than policies name (20 000 in the
  // bench at 10 000 policies): as MessagePack each takes about 240 bytes of
  // heap against 1 260 as nlohmann::json (measured with this metadata), and
  // reconciles decode only the few a policy names.
  o.compact = true;
  return o;
}

}  // namespace

Caches::Caches(kube::Client& client, std::vector<std::string> ns)
    : policies(client, kBackupPolicies, ns, options("")),
      restores(client, kRestoreRequests, ns, options("")),
      jobs(client, kube::resources::kJobs, ns, options(kManagedSelector, slim_job)),
      pods(client, kube::resources::kPods, ns, ended_pod_options()),
      secrets(client, kube::resources::kSecrets, ns, metadata_options()),
      deployments(client, kube::resources::kDeployments, ns, options(kManagedSelector)),
      network_policies(client, kube::resources::kNetworkPolicies, ns, options(kManagedSelector)),
      claims(client, kube::resources::kPersistentVolumeClaims, ns, options(kManagedSelector)),
      services(client, kube::resources::kServices, ns, options("")),
      ingresses(client, kube::resources::kIngresses, ns, options("")),
      client_(client),
      namespaces_(std::move(ns)) {
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
  // What is held is let go when the Secret goes, or when no policy names it any longer.
  auto gone = [this](const kube::ObjPtr& s) {
    std::lock_guard lock(held_mu_);
    held_.erase((*s)["metadata"].value("namespace", "") + "/" + (*s)["metadata"].value("name", ""));
  };
  secrets.add_handlers({nullptr, nullptr, gone});
  auto unnamed = [this](const kube::ObjPtr& old_policy) {
    const std::string ns = (*old_policy)["metadata"].value("namespace", "");
    for (const auto& name : api::referenced_secrets((*old_policy).value("spec", json::object())))
      forget_unnamed(ns, name);
  };
  policies.add_handlers({nullptr, [unnamed](const kube::ObjPtr& o, const kube::ObjPtr&) { unnamed(o); }, unnamed});
}

Caches::~Caches() { stop(); }

void Caches::forget_unnamed(const std::string& ns, const std::string& name) {
  // Keys only: this runs on every policy update, and a Secret many policies
  // share would have each update decode all of them (quadratic in a fleet).
  if (!policies.keys_by_index(kIndexSecretRef, ns + "/" + name).empty()) return;
  std::lock_guard lock(held_mu_);
  held_.erase(ns + "/" + name);
}

void Caches::start() {
  for (auto* set : {&policies, &restores, &jobs, &pods, &secrets, &deployments, &network_policies, &claims, &services, &ingresses})
    for (const auto& inf : set->informers())
      threads_.emplace_back([inf = inf.get()](std::stop_token st) { inf->run(st); });
}

void Caches::stop() {
  for (auto& t : threads_) t.request_stop();
  threads_.clear();
}

bool Caches::synced() const {
  for (const auto* set : {&policies, &restores, &jobs, &pods, &secrets, &deployments, &network_policies, &claims, &services, &ingresses})
    if (!set->synced()) return false;
  return true;
}

bool Caches::watches(const std::string& ns) const {
  return namespaces_.empty() || std::find(namespaces_.begin(), namespaces_.end(), ns) != namespaces_.end();
}

kube::Result<api::SecretData> Caches::secret_data(const std::string& ns, const json& policy_spec) {
  return read_secrets(ns, api::referenced_secrets(policy_spec), api::used_value_keys(policy_spec));
}

kube::Result<api::SecretData> Caches::named_secrets(const std::string& ns, const std::vector<std::string>& names) {
  return read_secrets(ns, names, {});
}

kube::Result<api::SecretData> Caches::read_secrets(const std::string& ns, const std::vector<std::string>& names,
                                                   const std::map<std::string, std::set<std::string>>& wanted) {
  api::SecretData out;
  for (const auto& name : names) {
    const std::string key = ns + "/" + name;
    const auto meta = secrets.get(ns, name);
    if (!meta) {  // absent (as far as the watch has seen)
      std::lock_guard lock(held_mu_);
      held_.erase(key);
      continue;
    }
    const std::string rv = (*meta)["metadata"].value("resourceVersion", "");
    std::set<std::string> value_keys;
    if (auto w = wanted.find(name); w != wanted.end()) value_keys = w->second;
    {
      std::lock_guard lock(held_mu_);
      if (auto it = held_.find(key); it != held_.end()) {
        if (it->second.resource_version == rv && it->second.holds(value_keys)) {
          out[name] = it->second.values();
          continue;
        }
        for (const auto& [k, v] : it->second.data)
          if (v.held()) value_keys.insert(k);  // another policy's too
      }
    }
    ++secret_reads_;
    auto secret = client_.get(kube::resources::kSecrets, ns, name);
    if (!secret) {
      if (secret.error().not_found()) {
        std::lock_guard lock(held_mu_);
        held_.erase(key);
        continue;
      }
      return std::unexpected(secret.error());
    }
    HeldSecret held;
    held.resource_version = (*secret)["metadata"].value("resourceVersion", "");
    if (auto data = secret->find("data"); data != secret->end() && data->is_object())
      for (const auto& [k, v] : data->items()) {  // in key order: json objects are sorted
        if (!v.is_string()) continue;
        const std::string decoded = base64_decode(v.get<std::string>()).value_or("");
        held.data.emplace_back(k, value_keys.count(k) ? api::SecretValue(decoded)
                                                      : api::SecretValue::fingerprint_only(decoded));
      }
    held.data.shrink_to_fit();
    out[name] = held.values();
    std::lock_guard lock(held_mu_);
    held_[key] = std::move(held);
  }
  return out;
}

std::vector<std::string> Caches::held_secrets() const {
  std::lock_guard lock(held_mu_);
  std::vector<std::string> out;
  for (const auto& [k, v] : held_) out.push_back(k);
  return out;
}

std::optional<std::map<std::string, api::SecretValue>> Caches::held_secret(const std::string& ns,
                                                                          const std::string& name) const {
  std::lock_guard lock(held_mu_);
  auto it = held_.find(ns + "/" + name);
  if (it == held_.end()) return std::nullopt;
  return it->second.values();
}

bool Caches::HeldSecret::holds(const std::set<std::string>& keys) const {
  for (const auto& k : keys) {
    auto it = std::lower_bound(data.begin(), data.end(), k, [](const auto& e, const std::string& key) { return e.first < key; });
    if (it != data.end() && it->first == k && !it->second.held()) return false;  // absent keys stay absent at this version
  }
  return true;
}

}  // namespace bo::reconcile
