#include "kube-local/controllers.h"

#include <algorithm>

#include "common/encoding.h"
#include "common/timefmt.h"
#include "kube-local/pod_deletion.h"
#include "kube-local/stateful_set.h"
#include "kube/selector.h"

namespace kl {
namespace {

constexpr const char* kNs = "/namespaces";
constexpr const char* kPods = "/pods";
constexpr const char* kJobs = "batch/jobs";

std::string meta(const json& o, const char* f) {
  return o["metadata"].value(f, "");
}

bool has_condition(const json& o, const std::string& type) {
  for (const auto& c : o.value("status", json::object()).value("conditions", json::array()))
    if (c.value("type", "") == type && c.value("status", "") == "True") return true;
  return false;
}

json condition(const std::string& type, const std::string& reason, const std::string& message) {
  const std::string now = bo::format_rfc3339(std::chrono::system_clock::now());
  return {{"type", type}, {"status", "True"}, {"reason", reason}, {"message", message},
          {"lastProbeTime", now}, {"lastTransitionTime", now}};
}

json false_condition(const std::string& type, const std::string& reason, const std::string& message) {
  json c = condition(type, reason, message);
  c["status"] = "False";
  return c;
}

// The kubelet's messages (pkg/kubelet/status/generate.go): "containers with incomplete status: [a b]".
std::string names_message(const char* what, const json& containers) {
  std::string names;
  for (const auto& c : containers) names += (names.empty() ? "" : " ") + c.value("name", "");
  return std::string("containers with ") + what + " status: [" + names + "]";
}

// Sets a Pod condition's status, reason and message, moving lastTransitionTime only when the status changes.
void set_condition(json& status, const std::string& type, bool value, const std::string& reason, const std::string& message) {
  const std::string now = bo::format_rfc3339(std::chrono::system_clock::now());
  for (auto& c : status["conditions"])
    if (c.value("type", "") == type) {
      if (c.value("status", "") != (value ? "True" : "False")) c["lastTransitionTime"] = now;
      c["status"] = value ? "True" : "False";
      c["reason"] = reason;
      c["message"] = message;
      c["lastProbeTime"] = now;
      return;
    }
  json c = condition(type, reason, message);
  c["status"] = value ? "True" : "False";
  status["conditions"].push_back(c);
}

json waiting_status(const json& c, const std::string& reason) {
  return {{"name", c.value("name", "")}, {"image", c.value("image", "")}, {"ready", false}, {"restartCount", 0},
          {"started", false}, {"state", {{"waiting", {{"reason", reason}}}}}};
}

// A container status's terminated state as a kubelet reports it.
json terminated_state(const json& cs, const std::string& pod, int exit_code, const std::string& reason,
                      const std::string& message, const std::string& finished) {
  json term{{"exitCode", exit_code}, {"reason", reason},
            {"startedAt", cs.value("state", json::object()).value("running", json::object()).value("startedAt", finished)},
            {"finishedAt", finished}, {"containerID", "kube-local://" + pod + "/" + cs.value("name", "")}};
  if (!message.empty()) term["message"] = message.substr(0, 4096);
  return term;
}

// Whether a Pod's init containers had begun: one of them is running or terminated.
bool initializing(const json& pod) {
  for (const auto& s : pod.value("status", json::object()).value("initContainerStatuses", json::array()))
    if (s.is_object() && s.value("state", json::object()).value("waiting", json()).is_null()) return true;
  return false;
}

// apps/v1 DeploymentCondition: lastUpdateTime and lastTransitionTime (no lastProbeTime).
json deployment_condition(const std::string& type, const std::string& reason, const std::string& message) {
  const std::string now = bo::format_rfc3339(std::chrono::system_clock::now());
  return {{"type", type}, {"status", "True"}, {"reason", reason}, {"message", message},
          {"lastUpdateTime", now}, {"lastTransitionTime", now}};
}

// When a failed pod finished (pkg/controller/job/backoff_utils.go getFinishedTime):
// its containers' termination times, else its last status change.
std::optional<std::chrono::system_clock::time_point> finished_time(const json& pod) {
  std::optional<std::chrono::system_clock::time_point> latest;
  const json st = pod.value("status", json::object());
  for (const char* list : {"initContainerStatuses", "containerStatuses"})
    for (const auto& c : st.value(list, json::array())) {
      const auto t =
          bo::parse_rfc3339(c.value("state", json::object()).value("terminated", json::object()).value("finishedAt", ""));
      if (t && (!latest || *t > *latest)) latest = *t;
    }
  if (!latest)
    for (const auto& c : st.value("conditions", json::array()))
      if (c.value("type", "") == "Ready")
        if (auto t = bo::parse_rfc3339(c.value("lastTransitionTime", ""))) latest = *t;
  return latest;
}

}  // namespace

// An Event as client-go's legacy recorder writes it for the Job controller
// (pkg/controller/job/job_controller.go: SuccessfulCreate, SuccessfulDelete,
// Completed, BackoffLimitExceeded, DeadlineExceeded), so `kubectl describe job`
// and `kubectl events` show what happened.
void Controllers::record_event(const json& involved, const std::string& type, const std::string& reason,
                               const std::string& message) {
  auto events = api_.registry().find("", "v1", "events");
  if (!events) return;
  const auto now = Clock::now();
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".%llx",
                static_cast<unsigned long long>(
                    std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count()));
  const std::string ts = bo::format_rfc3339(now);
  const json& m = involved["metadata"];
  json ev{{"metadata", {{"name", m.value("name", "") + suffix}, {"namespace", m.value("namespace", "")}}},
          {"involvedObject", {{"kind", involved.value("kind", "Job")}, {"namespace", m.value("namespace", "")},
                              {"name", m.value("name", "")}, {"uid", m.value("uid", "")},
                              {"apiVersion", involved.value("apiVersion", "batch/v1")},
                              {"resourceVersion", m.value("resourceVersion", "")}}},
          {"reason", reason}, {"message", message}, {"source", {{"component", "job-controller"}}},
          {"firstTimestamp", ts}, {"lastTimestamp", ts}, {"count", 1}, {"type", type},
          {"eventTime", nullptr}, {"reportingComponent", "job-controller"}, {"reportingInstance", ""}};
  (void)api_.create(*events, m.value("namespace", ""), std::move(ev), ApiServer::system_context());
}

Controllers::Controllers(ApiServer& api, ControllerOptions opts) : api_(api), opts_(opts) {
  if (opts_.time_scale <= 0) opts_.time_scale = 1.0;
  if (!opts_.exec.images.empty() || !opts_.exec.image_paths.empty() || !opts_.exec.runtime.empty()) {
    exec_ = std::make_unique<ExecKubelet>(opts_.exec);
    api_.set_log_source([this](const json& pod, const std::string& container) { return exec_->log_path(pod, container); });
    api_.set_pod_runtime([this](const json& pod) { return exec_->running(meta(pod, "uid")); });
  }
}

Controllers::~Controllers() {
  stop();
  api_.set_log_source({});
  api_.set_pod_runtime({});
  exec_.reset();
}

void Controllers::start() {
  thread_ = std::thread([this] { run(); });
}

void Controllers::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::chrono::duration<double> Controllers::scaled(double seconds) const {
  return std::chrono::duration<double>(seconds / opts_.time_scale);
}

void Controllers::after(std::chrono::duration<double> delay, const Key& key) {
  timers_.emplace(Clock::now() + std::chrono::duration_cast<Clock::duration>(delay), key);
}

void Controllers::resync_all() {
  for (const auto& gr : {std::string(kNs), std::string(kJobs), std::string(kPods), std::string("apps/deployments"),
                         std::string("apps/statefulsets")})
    for (const auto& o : api_.store().list(gr, "")) dirty_.insert({gr, meta(*o, "namespace"), meta(*o, "name")});
}

void Controllers::run() {
  Store& store = api_.store();
  uint64_t cursor = store.current_rv();
  resync_all();
  while (!stop_ && !store.closed()) {
    for (const auto& key : std::set<Key>(std::exchange(dirty_, {}))) {
      try {
        sync(key);
      } catch (const std::exception&) {
        after(std::chrono::seconds(1), key);  // retried, never dropped
      }
    }
    auto next_wake = std::min(Clock::now() + std::chrono::milliseconds(500), tend_stopping());
    if (!timers_.empty()) next_wake = std::min(next_wake, timers_.begin()->first);
    const auto steady_deadline =
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                               std::max(next_wake - Clock::now(), Clock::duration::zero()));
    store.wait_past(cursor, steady_deadline);
    auto poll = store.events_since(cursor);
    if (poll.gone) {
      cursor = store.current_rv();
      resync_all();
    }
    for (const auto& ev : poll.events) {
      cursor = ev.rv;
      const std::string ns = ev.ns;
      if (ev.gr == kNs || ev.gr == kJobs || ev.gr == kPods || ev.gr == "apps/deployments" ||
          ev.gr == "apps/statefulsets")
        if (ev.type != EventType::kDeleted) dirty_.insert({ev.gr, ns, ev.name});
      if (ev.gr == kNs && ev.type == EventType::kAdded) dirty_.insert({kNs, "", ev.name});
      // A Pod gone while its process runs (deleted with grace 0, or before the kubelet saw it
      // start): the kubelet still stops its containers (HandlePodRemoves, killPod).
      if (ev.gr == kPods && ev.type == EventType::kDeleted && exec_ && exec_->running(meta(*ev.obj, "uid")))
        stop_containers(*ev.obj);
      if (ev.gr == kPods && ev.type == EventType::kDeleted) probes_.erase(meta(*ev.obj, "uid"));
      if (ev.gr == "/serviceaccounts" && ev.type == EventType::kDeleted) dirty_.insert({kNs, "", ns});
      if (ev.gr == kPods)
        for (const auto& ref : (*ev.obj)["metadata"].value("ownerReferences", json::array())) {
          if (ref.value("kind", "") == "Job") dirty_.insert({kJobs, ns, ref.value("name", "")});
          // A StatefulSet's pod gone (or changed): the set makes it again.
          else if (ref.value("kind", "") == "StatefulSet") dirty_.insert({"apps/statefulsets", ns, ref.value("name", "")});
        }
      // Objects left in a terminating namespace keep its finalization moving.
      if (ev.type == EventType::kDeleted && !ns.empty()) dirty_.insert({kNs, "", ns});
      collect_garbage(ev);
      if (ev.type == EventType::kAdded) check_owners(ev.gr, *ev.obj);
      // A dependent gone may let an owner waiting in foreground deletion finish.
      if (ev.type == EventType::kDeleted)
        for (const auto& ref : (*ev.obj)["metadata"].value("ownerReferences", json::array())) {
          auto t = api_.registry().find_kind(ref.value("apiVersion", ""), ref.value("kind", ""));
          if (!t) continue;
          auto owner = store.get(t->gr(), t->namespaced ? ns : "", ref.value("name", ""));
          if (owner && (*owner)["metadata"].contains("deletionTimestamp"))
            collect_garbage(Event{ev.rv, EventType::kModified, t->gr(), t->namespaced ? ns : "",
                                  ref.value("name", ""), owner, nullptr});
        }
    }
    const auto now = Clock::now();
    while (!timers_.empty() && timers_.begin()->first <= now) {
      dirty_.insert(timers_.begin()->second);
      timers_.erase(timers_.begin());
    }
  }
}

void Controllers::sync(const Key& key) {
  const auto& [gr, ns, name] = key;
  if (gr == kNs) sync_namespace(name);
  else if (gr == kJobs) sync_job(ns, name);
  else if (gr == kPods) sync_pod(ns, name);
  else sync_workload(gr, ns, name);
}

// --- namespaces ---------------------------------------------------------------

void Controllers::sync_namespace(const std::string& name) {
  Store& store = api_.store();
  auto ns = store.get(kNs, "", name);
  if (!ns) return;
  CallContext ctx = ApiServer::system_context();
  if (!(*ns)["metadata"].contains("deletionTimestamp")) {
    // The service-account controller's part: every namespace has "default".
    if (!store.get("/serviceaccounts", name, "default")) {
      auto sa_type = api_.registry().find("", "v1", "serviceaccounts");
      (void)api_.create(*sa_type, name, json{{"metadata", {{"name", "default"}}}}, ctx);
    }
    return;
  }
  bool remaining = false;
  for (const auto& t : api_.registry().all()) {
    if (!t->namespaced || t->virtual_only) continue;
    for (const auto& o : store.list(t->gr(), name)) {
      remaining = true;
      if (!(*o)["metadata"].contains("deletionTimestamp"))
        (void)api_.remove(*t, name, meta(*o, "name"), json{{"propagationPolicy", "Background"}}, ctx);
    }
  }
  if (remaining) {
    after(std::chrono::milliseconds(200), {kNs, "", name});
    return;
  }
  auto ns_type = api_.registry().find("", "v1", "namespaces");
  (void)api_.mutate(*ns_type, "", name, [](json& o) {
    o["spec"]["finalizers"] = json::array();
    return true;
  }, "finalize");
}

// --- garbage collection ---------------------------------------------------------

void Controllers::check_owners(const std::string& gr, const json& obj) {
  const auto refs = obj["metadata"].value("ownerReferences", json::array());
  if (refs.empty()) return;
  Store& store = api_.store();
  for (const auto& ref : refs) {
    auto t = api_.registry().find_kind(ref.value("apiVersion", ""), ref.value("kind", ""));
    if (!t) return;  // unknown owner kind: leave it, as the GC does until discovery knows it
    auto owner = store.get(t->gr(), t->namespaced ? meta(obj, "namespace") : "", ref.value("name", ""));
    if (owner && meta(*owner, "uid") == ref.value("uid", "")) return;
  }
  // Every owner is absent: the dependent goes (background).
  if (auto t = api_.registry().find_gr(gr))
    (void)api_.remove(*t, meta(obj, "namespace"), meta(obj, "name"), json{{"propagationPolicy", "Background"}},
                      ApiServer::system_context());
}

void Controllers::collect_garbage(const Event& ev) {
  const json& obj = *ev.obj;
  const std::string uid = meta(obj, "uid");
  const auto finalizers = obj["metadata"].value("finalizers", json::array());
  const bool deleting = obj["metadata"].contains("deletionTimestamp");
  const bool orphan = deleting && std::find(finalizers.begin(), finalizers.end(), "orphan") != finalizers.end();
  const bool foreground =
      deleting && std::find(finalizers.begin(), finalizers.end(), "foregroundDeletion") != finalizers.end();
  if (ev.type != EventType::kDeleted && !orphan && !foreground) return;
  Store& store = api_.store();
  CallContext ctx = ApiServer::system_context();
  bool dependents_left = false;
  for (const auto& [gr, o] : store.dependents(uid)) {
    auto t = api_.registry().find_gr(gr);
    if (!t) continue;
    if (orphan) {
      (void)api_.mutate(*t, meta(*o, "namespace"), meta(*o, "name"), [&](json& d) {
        auto& rs = d["metadata"]["ownerReferences"];
        rs.erase(std::remove_if(rs.begin(), rs.end(), [&](const json& r) { return r.value("uid", "") == uid; }),
                 rs.end());
        if (rs.empty()) d["metadata"].erase("ownerReferences");
        return true;
      });
    } else if (foreground) {
      dependents_left = true;
      if (!(*o)["metadata"].contains("deletionTimestamp"))
        (void)api_.remove(*t, meta(*o, "namespace"), meta(*o, "name"), json{{"propagationPolicy", "Foreground"}}, ctx);
    } else {
      check_owners(gr, *o);
    }
  }
  if (orphan || (foreground && !dependents_left)) {
    auto t = api_.registry().find_gr(ev.gr);
    if (!t) return;
    const std::string drop = orphan ? "orphan" : "foregroundDeletion";
    (void)api_.mutate(*t, ev.ns, ev.name, [&](json& o) {
      auto& fs = o["metadata"]["finalizers"];
      fs.erase(std::remove(fs.begin(), fs.end(), drop), fs.end());
      return true;
    });
  }
}

// --- jobs and pods --------------------------------------------------------------

void Controllers::sync_job(const std::string& ns, const std::string& name) {
  Store& store = api_.store();
  auto job = store.get(kJobs, ns, name);
  if (!job) return;
  const json& j = *job;
  if (j["metadata"].contains("deletionTimestamp")) return;
  const json spec = j.value("spec", json::object());
  const auto now = Clock::now();
  const bool finished = has_condition(j, "Complete") || has_condition(j, "Failed");
  auto jobs_type = api_.registry().find("batch", "v1", "jobs");
  auto pods_type = api_.registry().find("", "v1", "pods");
  CallContext ctx = ApiServer::system_context();

  if (finished) {
    if (spec.contains("ttlSecondsAfterFinished")) {
      const auto done = bo::parse_rfc3339(j["status"].value("completionTime", j["status"].value("startTime", "")));
      const auto ttl = scaled(spec["ttlSecondsAfterFinished"].get<double>());
      const auto expiry = (done ? *done : now) + std::chrono::duration_cast<Clock::duration>(ttl);
      if (now >= expiry)
        (void)api_.remove(*jobs_type, ns, name, json{{"propagationPolicy", "Background"}}, ctx);
      else
        after(expiry - now, {kJobs, ns, name});
    }
    return;
  }
  if (spec.value("suspend", false)) return;

  const std::string uid = meta(j, "uid");
  int active = 0, succeeded = 0, failed = 0;
  std::vector<std::string> active_pods;
  std::optional<Clock::time_point> last_failure;
  for (const auto& [gr, p] : store.dependents(uid)) {
    if (gr != kPods || meta(*p, "namespace") != ns) continue;
    // A Pod being deleted is no longer active (controller.FilterActivePods), and a replacement may be
    // made at once (podReplacementPolicy TerminatingOrFailed). The real controller counts it as failed
    // through its job-tracking finalizer; kube-local never counted a deleted Pod, and still does not.
    if (terminating(*p)) continue;
    const std::string phase = (*p).value("status", json::object()).value("phase", "Pending");
    if (phase == "Succeeded") ++succeeded;
    else if (phase == "Failed") {
      ++failed;
      if (auto t = finished_time(*p); t && (!last_failure || *t > *last_failure)) last_failure = t;
    } else {
      ++active;
      active_pods.push_back(meta(*p, "name"));
    }
  }
  const int completions = spec.value("completions", 1);
  const int backoff_limit = spec.value("backoffLimit", 6);
  json status = j.value("status", json::object());
  if (!status.contains("startTime")) status["startTime"] = bo::format_rfc3339(now);
  const auto start = bo::parse_rfc3339(status["startTime"].get<std::string>()).value_or(now);
  std::string fail_reason, fail_message;
  if (succeeded >= completions) {
    status["conditions"] = json::array({condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                                        condition("Complete", "CompletionsReached", "Reached expected number of succeeded pods")});
    status["completionTime"] = bo::format_rfc3339(now);
    record_event(j, "Normal", "Completed", "Job completed");
  } else if (failed > backoff_limit) {
    fail_reason = "BackoffLimitExceeded";
    fail_message = "Job has reached the specified backoff limit";
  } else if (spec.contains("activeDeadlineSeconds") &&
             now - start >= std::chrono::duration_cast<Clock::duration>(
                                 std::chrono::duration<double>(spec["activeDeadlineSeconds"].get<double>()))) {
    fail_reason = "DeadlineExceeded";
    fail_message = "Job was active longer than specified deadline";
  }
  if (!fail_reason.empty()) {
    status["conditions"] = json::array({condition("FailureTarget", fail_reason, fail_message),
                                        condition("Failed", fail_reason, fail_message)});
    for (const auto& pn : active_pods)
      if (api_.remove(*pods_type, ns, pn, json{{"propagationPolicy", "Background"}}, ctx))
        record_event(j, "Normal", "SuccessfulDelete", "Deleted pod: " + pn);
    record_event(j, "Warning", fail_reason, fail_message);
    active = 0;
  } else if (succeeded < completions && active == 0) {
    // Pod failure backoff: 10 s doubling, capped at 6 min (scaled).
    // The last failure is read from the pods themselves, as the Job controller does;
    // the Job's status holds only JobStatus fields.
    bool wait = false;
    if (failed > 0 && last_failure) {
      const double backoff = std::min(360.0, 10.0 * std::pow(2.0, failed - 1));
      const auto at = *last_failure + std::chrono::duration_cast<Clock::duration>(scaled(backoff));
      if (at > now) {
        after(at - now, {kJobs, ns, name});
        wait = true;
      }
    }
    if (!wait) {
      json tmpl = spec.value("template", json::object());
      json pod{{"metadata", tmpl.value("metadata", json::object())}, {"spec", tmpl.value("spec", json::object())}};
      pod["metadata"]["generateName"] = name + "-";
      pod["metadata"]["annotations"]["kube-local.si.dev/attempt"] = std::to_string(succeeded + failed);
      if (auto a = j["metadata"].value("annotations", json::object()); a.contains(kPodOutcomeAnnotation))
        if (!pod["metadata"]["annotations"].contains(kPodOutcomeAnnotation))
          pod["metadata"]["annotations"][kPodOutcomeAnnotation] = a[kPodOutcomeAnnotation];
      pod["metadata"]["ownerReferences"] = json::array({{{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"name", name},
                                                         {"uid", uid}, {"controller", true},
                                                         {"blockOwnerDeletion", true}}});
      if (auto made = api_.create(*pods_type, ns, pod, ctx)) {
        active = 1;
        record_event(j, "Normal", "SuccessfulCreate",
                     "Created pod: " + (*made)["metadata"].value("name", ""));
      }
    }
  }
  if (spec.contains("activeDeadlineSeconds") && fail_reason.empty() && succeeded < completions) {
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(spec["activeDeadlineSeconds"].get<double>()));
    if (deadline > now) after(deadline - now, {kJobs, ns, name});
  }
  status["active"] = active;
  status["succeeded"] = succeeded;
  status["failed"] = failed;
  status["ready"] = 0;
  if (status["active"] == 0) status.erase("active");
  if (status["succeeded"] == 0) status.erase("succeeded");
  if (status["failed"] == 0) status.erase("failed");
  status.erase("kubeLocalLastFailure");  // written by kube-local before it kept to JobStatus
  // Only the fields this controller computes change: a status field someone else wrote since this
  // sync read the Job (the read-modify-write below runs on the current object) is kept.
  (void)api_.mutate(*jobs_type, ns, name, [&](json& o) {
    const json cur = o.value("status", json::object());
    json next = cur.is_object() ? cur : json::object();
    next.erase("kubeLocalLastFailure");
    for (const char* k : {"active", "succeeded", "failed", "ready", "startTime", "completionTime", "conditions"}) {
      if (status.contains(k)) next[k] = status[k];
      else next.erase(k);
    }
    if (next == cur) return false;
    o["status"] = std::move(next);
    return true;
  }, "status");
  if (has_condition(json{{"status", status}}, "Complete") || has_condition(json{{"status", status}}, "Failed"))
    dirty_.insert({kJobs, ns, name});  // arm the TTL
}

void Controllers::sync_pod(const std::string& ns, const std::string& name) {
  Store& store = api_.store();
  auto pod = store.get(kPods, ns, name);
  if (!pod) return;
  const json& p = *pod;
  auto pods_type = api_.registry().find("", "v1", "pods");
  const std::string phase = p.value("status", json::object()).value("phase", "");
  const bool ended = phase == "Succeeded" || phase == "Failed";
  if (terminating(p)) {
    // The kubelet's part of a deletion: while the Pod's process runs, stop it (SIGTERM, then
    // SIGKILL at the end of the grace period); once it is gone, delete the Pod for good
    // (pkg/kubelet/status/status_manager.go syncPod: grace 0, the Pod's uid as precondition).
    if (exec_ && exec_->running(meta(p, "uid"))) {
      stop_containers(p);
      return;
    }
    const long long grace = p["metadata"].value("deletionGracePeriodSeconds", 0);
    // A Pod that had ended before its deletion waits for its finalizers' owners.
    if (ended && grace == 0) return;
    // kube-local's kubelet lets no finalizer hold a Pod whose containers have stopped, as it always did.
    if (!p["metadata"].value("finalizers", json::array()).empty())
      (void)api_.mutate(*pods_type, ns, name, [](json& o) {
        o["metadata"].erase("finalizers");
        return true;
      });
    if (grace > 0)
      (void)api_.remove(*pods_type, ns, name,
                        json{{"gracePeriodSeconds", 0}, {"preconditions", {{"uid", meta(p, "uid")}}}},
                        ApiServer::system_context());
    return;
  }
  if (ended) return;
  const auto now = Clock::now();
  json outcome;
  {
    const std::string a = p["metadata"].value("annotations", json::object()).value(kPodOutcomeAnnotation, "");
    if (!a.empty()) outcome = json::parse(a, nullptr, false);
    if (!outcome.is_object()) outcome = json::object();
    if (a.empty())
      for (const auto& rule : opts_.pod_rules) {
        auto sel = bo::kube::LabelSelector::parse(rule.selector);
        if (sel && sel->matches(p["metadata"].value("labels", json::object()))) {
          outcome = rule.outcome;
          break;
        }
      }
  }
  const std::string restart = p.value("spec", json::object()).value("restartPolicy", "Always");
  const bool exec = outcome.value("exec", false) == true && exec_ && exec_->handles(p);
  const bool terminates = outcome.contains("result") || restart != "Always" || exec;
  const json containers = p.value("spec", json::object()).value("containers", json::array());
  json init = p.value("spec", json::object()).value("initContainers", json::array());
  if (!init.is_array()) init = json::array();
  const std::string pod_uid = p["metadata"].value("uid", "");
  // From its start the process kubelet reports the Pod's status (its callbacks below) and probes it.
  if (exec && exec_->started(pod_uid)) {
    if (phase == "Running") probe_readiness(p);
    return;
  }
  if (exec && (phase == "Running" || (phase == "Pending" && initializing(p)))) {
    // Started, and not by this process: its process died with a previous kube-local (a
    // container of the runtime may not have: it goes now, as a kubelet kills what it no longer tracks).
    exec_->remove_leftovers(p);
    finish_pod(ns, name, false, 137, "Error", "kube-local restarted while the container ran");
    return;
  }
  if (phase != "Running") {
    const bool pending = exec && !init.empty();  // the init containers run first
    // A readiness probe the process kubelet runs: not ready until it has succeeded.
    const bool probed = exec && !containers.empty() && tcp_readiness_probe(containers[0]).has_value();
    json st{{"phase", pending ? "Pending" : "Running"}, {"startTime", bo::format_rfc3339(now)}, {"hostIP", "127.0.0.1"},
            {"podIP", "10.244.0." + std::to_string(1 + (std::hash<std::string>{}(name) % 250))}};
    if (pending)
      st["conditions"] = json::array({condition("PodScheduled", "", ""),
                                      false_condition("Initialized", "ContainersNotInitialized", names_message("incomplete", init)),
                                      false_condition("ContainersReady", "ContainersNotReady", names_message("unready", containers)),
                                      false_condition("Ready", "ContainersNotReady", names_message("unready", containers))});
    else if (probed)
      st["conditions"] = json::array({condition("PodScheduled", "", ""), condition("Initialized", "", ""),
                                      false_condition("ContainersReady", "ContainersNotReady", names_message("unready", containers)),
                                      false_condition("Ready", "ContainersNotReady", names_message("unready", containers))});
    else
      st["conditions"] = json::array({condition("PodScheduled", "", ""), condition("Initialized", "", ""),
                                      condition("ContainersReady", "", ""), condition("Ready", "", "")});
    json cs = json::array();
    for (const auto& c : containers)
      cs.push_back(pending ? waiting_status(c, "PodInitializing")
                           : json{{"name", c.value("name", "")}, {"image", c.value("image", "")}, {"ready", !probed},
                                  {"restartCount", 0}, {"started", true},
                                  {"state", {{"running", {{"startedAt", bo::format_rfc3339(now)}}}}}});
    st["containerStatuses"] = cs;
    if (!init.empty()) {
      // A simulated Pod's init containers completed at once; a process Pod's wait for their turn.
      json is = json::array();
      for (const auto& c : init) {
        json s = waiting_status(c, "PodInitializing");
        if (!pending) {
          s["ready"] = true;
          s["state"] = {{"terminated", {{"exitCode", 0}, {"reason", "Completed"}, {"startedAt", bo::format_rfc3339(now)},
                                        {"finishedAt", bo::format_rfc3339(now)},
                                        {"containerID", "kube-local://" + name + "/" + c.value("name", "")}}}};
        }
        is.push_back(s);
      }
      st["initContainerStatuses"] = is;
    }
    (void)api_.mutate(*pods_type, ns, name, [&](json& o) {
      o["spec"]["nodeName"] = "kube-local-node";
      return true;
    });
    (void)api_.mutate(*pods_type, ns, name, [&](json& o) {
      o["status"] = st;
      return true;
    }, "status");
    if (exec) {
      auto secrets = [this](const std::string& sns, const std::string& sname) -> std::optional<std::map<std::string, std::string>> {
        auto secret = api_.store().get("/secrets", sns, sname);
        if (!secret) return std::nullopt;
        std::map<std::string, std::string> data;
        const json encoded = secret->value("data", json::object());  // a local: never iterate a temporary's items()
        for (const auto& [k, v] : encoded.items())
          if (v.is_string()) data[k] = bo::base64_decode(v.get<std::string>()).value_or("");
        return data;
      };
      auto fresh = store.get(kPods, ns, name);
      ExecCallbacks callbacks;
      callbacks.init_started = [this, ns, name](size_t i) {
        if (!stop_) init_container_started(ns, name, i);
      };
      callbacks.init_ended = [this, ns, name](size_t i, const ExecResult& r) {
        if (!stop_) init_container_ended(ns, name, i, r);
      };
      callbacks.started = [this, ns, name] {
        if (!stop_) pod_initialized(ns, name);
      };
      callbacks.done = [this, ns, name](const ExecResult& r) {
        if (stop_) return;
        finish_pod(ns, name, r.exit_code == 0, r.exit_code, r.reason, r.message);
      };
      exec_->start(fresh ? *fresh : p, secrets, std::move(callbacks));
      return;
    }
    if (terminates) after(scaled(outcome.value("afterSeconds", 1.0)), {kPods, ns, name});
    return;
  }
  if (exec) return;
  if (!terminates) return;
  const auto started = bo::parse_rfc3339(p["status"].value("startTime", "")).value_or(now);
  const auto due = started + std::chrono::duration_cast<Clock::duration>(scaled(outcome.value("afterSeconds", 1.0)));
  if (due > now) {
    after(due - now, {kPods, ns, name});
    return;
  }
  int attempt = 0;
  try {
    attempt = std::stoi(p["metadata"].value("annotations", json::object()).value("kube-local.si.dev/attempt", "0"));
  } catch (...) {
  }
  bool success = outcome.value("result", "Succeeded") == "Succeeded";
  int exit_code = outcome.value("exitCode", success ? 0 : 1);
  if (attempt < outcome.value("failAttempts", 0)) {
    success = false;
    exit_code = 1;
  }
  // {{pod}} and {{now}} in the message let one rule give each run its own result.
  std::string message = outcome.value("message", "");
  for (const auto& [token, value] : {std::pair<std::string, std::string>{"{{pod}}", name},
                                     {"{{now}}", bo::format_rfc3339(now)}})
    for (size_t pos; (pos = message.find(token)) != std::string::npos;) message.replace(pos, token.size(), value);
  // {{env:NAME}}: a literal env value of the pod's first container (what a real
  // program would echo back, e.g. the backup it was asked to restore).
  for (size_t pos; (pos = message.find("{{env:")) != std::string::npos;) {
    const size_t end = message.find("}}", pos);
    if (end == std::string::npos) break;
    const std::string var = message.substr(pos + 6, end - pos - 6);
    std::string value;
    if (!containers.empty())
      for (const auto& e : containers[0].value("env", json::array()))
        if (e.value("name", "") == var && e.contains("value") && e["value"].is_string()) value = e["value"];
    message.replace(pos, end + 2 - pos, value);
  }
  finish_pod(ns, name, success, exit_code, success ? "Completed" : "Error", message);
}

// kuberuntime killContainer: the stop signal now, SIGKILL once the grace period is over.
void Controllers::stop_containers(const json& pod) {
  const std::string uid = meta(pod, "uid");
  if (!exec_ || stopping_.count(uid)) return;
  exec_->stop(uid);
  const auto grace = std::chrono::duration_cast<Clock::duration>(scaled(static_cast<double>(kubelet_grace_seconds(pod))));
  stopping_[uid] = Stopping{meta(pod, "namespace"), meta(pod, "name"), Clock::now() + grace, false};
}

Controllers::Clock::time_point Controllers::tend_stopping() {
  const auto now = Clock::now();
  auto wake = now + std::chrono::hours(1);
  for (auto it = stopping_.begin(); it != stopping_.end();) {
    if (!exec_->running(it->first)) {
      // The process has ended: its Pod (if still there, Terminating) can go now.
      dirty_.insert({kPods, it->second.ns, it->second.name});
      it = stopping_.erase(it);
      continue;
    }
    if (!it->second.killed && now >= it->second.kill_at) {
      exec_->kill(it->first);
      it->second.killed = true;
    }
    // A process's end is noticed by looking: soon, and at the end of its grace period.
    wake = std::min({wake, now + std::chrono::milliseconds(50),
                     it->second.killed ? wake : it->second.kill_at});
    ++it;
  }
  return wake;
}

void Controllers::finish_pod(const std::string& ns, const std::string& name, bool success, int exit_code,
                             const std::string& reason, const std::string& message) {
  auto pods_type = api_.registry().find("", "v1", "pods");
  const auto now = Clock::now();
  (void)api_.mutate(*pods_type, ns, name, [&](json& o) {
    auto& st = o["status"];
    if (st.value("phase", "") == "Succeeded" || st.value("phase", "") == "Failed") return false;
    st["phase"] = success ? "Succeeded" : "Failed";
    for (auto& c : st["conditions"])
      if (c["type"] == "Ready" || c["type"] == "ContainersReady") {
        c["status"] = "False";
        c["reason"] = "PodCompleted";
      }
    for (auto& c : st["containerStatuses"]) {
      c["ready"] = false;
      c["started"] = false;
      json term{{"exitCode", exit_code}, {"reason", reason},
                {"startedAt", c["state"].value("running", json::object()).value("startedAt", "")},
                {"finishedAt", bo::format_rfc3339(now)}, {"containerID", "kube-local://" + name}};
      if (!message.empty()) term["message"] = message.substr(0, 4096);
      c["state"] = {{"terminated", term}};
    }
    return true;
  }, "status");
}

// The process kubelet's reports for a Pod with init containers (exec_kubelet.h): each init
// container's state in status.initContainerStatuses, the Pod Pending with Initialized False
// until the last one succeeded, then Running; a failed one fails the Pod.
void Controllers::update_init_status(const std::string& ns, const std::string& name, size_t index,
                                     const std::function<void(json& status, json& statuses, const std::string& now)>& change) {
  auto pods_type = api_.registry().find("", "v1", "pods");
  const std::string now = bo::format_rfc3339(Clock::now());
  (void)api_.mutate(*pods_type, ns, name, [&](json& o) {
    auto& st = o["status"];
    if (st.value("phase", "") == "Succeeded" || st.value("phase", "") == "Failed") return false;
    auto& is = st["initContainerStatuses"];
    if (!is.is_array() || index >= is.size()) return false;
    change(st, is, now);
    return true;
  }, "status");
}

void Controllers::init_container_started(const std::string& ns, const std::string& name, size_t index) {
  update_init_status(ns, name, index, [&](json&, json& is, const std::string& now) {
    is[index]["state"] = {{"running", {{"startedAt", now}}}};
    is[index]["started"] = true;
  });
}

void Controllers::init_container_ended(const std::string& ns, const std::string& name, size_t index, const ExecResult& r) {
  update_init_status(ns, name, index, [&](json& st, json& is, const std::string& now) {
    const bool ok = r.exit_code == 0;
    is[index]["state"] = {{"terminated", terminated_state(is[index], name, r.exit_code, r.reason, r.message, now)}};
    is[index]["started"] = false;
    is[index]["ready"] = ok;
    // Incomplete: this one when it failed, and those after it.
    json incomplete = json::array();
    for (size_t i = ok ? index + 1 : index; i < is.size(); ++i) incomplete.push_back(is[i]);
    if (!incomplete.empty()) set_condition(st, "Initialized", false, "ContainersNotInitialized", names_message("incomplete", incomplete));
    // With restartPolicy Never a failed init container fails the Pod; kube-local restarts no container.
    if (!ok) st["phase"] = "Failed";
  });
}

void Controllers::pod_initialized(const std::string& ns, const std::string& name) {
  auto pods_type = api_.registry().find("", "v1", "pods");
  const std::string now = bo::format_rfc3339(Clock::now());
  (void)api_.mutate(*pods_type, ns, name, [&](json& o) {
    auto& st = o["status"];
    if (st.value("phase", "") == "Succeeded" || st.value("phase", "") == "Failed") return false;
    const json containers = o.value("spec", json::object()).value("containers", json::array());
    // With a readiness probe the containers are ready only once it succeeds (probe_readiness).
    const bool ready = containers.empty() || !tcp_readiness_probe(containers[0]);
    st["phase"] = "Running";
    set_condition(st, "Initialized", true, "", "");
    set_condition(st, "ContainersReady", ready, ready ? "" : "ContainersNotReady",
                  ready ? "" : names_message("unready", containers));
    set_condition(st, "Ready", ready, ready ? "" : "ContainersNotReady", ready ? "" : names_message("unready", containers));
    for (auto& c : st["containerStatuses"]) {
      c["ready"] = ready;
      c["started"] = true;
      c["state"] = {{"running", {{"startedAt", now}}}};
    }
    return true;
  }, "status");
}

// pkg/kubelet/prober/worker.go: the first probe after initialDelaySeconds from the container's
// start, then one every periodSeconds (both scaled by --time-scale); Ready and ContainersReady
// (and the container's ready) follow the thresholds.
void Controllers::probe_readiness(const json& pod) {
  const json containers = pod.value("spec", json::object()).value("containers", json::array());
  if (containers.empty()) return;
  const auto probe = tcp_readiness_probe(containers[0]);
  if (!probe) return;
  const std::string ns = meta(pod, "namespace"), name = meta(pod, "name");
  const auto now = Clock::now();
  auto [it, fresh] = probes_.try_emplace(meta(pod, "uid"));
  if (fresh) {
    const json cs = pod.value("status", json::object()).value("containerStatuses", json::array());
    const std::string started =
        cs.empty() ? "" : cs[0].value("state", json::object()).value("running", json::object()).value("startedAt", "");
    it->second.next = bo::parse_rfc3339(started).value_or(now) +
                      std::chrono::duration_cast<Clock::duration>(scaled(probe->initial_delay_seconds));
    if (it->second.next > now) {
      after(it->second.next - now, {kPods, ns, name});
      return;
    }
  }
  if (now < it->second.next) return;  // a timer for the next probe is set
  const bool ok = tcp_connects(probe->port, std::chrono::seconds(probe->timeout_seconds));
  it->second.state = after_probe(it->second.state, ok, *probe);
  it->second.next = now + std::chrono::duration_cast<Clock::duration>(scaled(probe->period_seconds));
  after(it->second.next - now, {kPods, ns, name});
  const bool ready = it->second.state.ready;
  auto pods_type = api_.registry().find("", "v1", "pods");
  (void)api_.mutate(*pods_type, ns, name, [&](json& o) {
    auto& st = o["status"];
    if (st.value("phase", "") != "Running" || terminating(o)) return false;
    auto& cs = st["containerStatuses"];
    if (!cs.is_array() || cs.empty() || cs[0].value("ready", false) == ready) return false;
    cs[0]["ready"] = ready;
    const json c = o["spec"]["containers"];
    set_condition(st, "ContainersReady", ready, ready ? "" : "ContainersNotReady", ready ? "" : names_message("unready", c));
    set_condition(st, "Ready", ready, ready ? "" : "ContainersNotReady", ready ? "" : names_message("unready", c));
    return true;
  }, "status");
}

// --- deployments and statefulsets -------------------------------------------------

// The StatefulSet controller's pods and claims (pkg/controller/statefulset,
// stateful_set_utils.go): pod <set>-<ordinal> from the template, labelled
// statefulset.kubernetes.io/pod-name and apps.kubernetes.io/pod-index, owned
// by the set; for each volumeClaimTemplate a claim <template>-<set>-<ordinal>
// (labels: the selector's matchLabels), made with the pod, that the pod
// mounts as the template's volume name. Which pods are made and deleted when
// is plan_stateful_set's (stateful_set.h): one at a time in ordinal order,
// never a pod while the old one of that name terminates; ordinals at or above
// spec.replicas are deleted gracefully from the highest down (claims stay,
// the default persistentVolumeClaimRetentionPolicy Retain).
std::vector<json> Controllers::stateful_pods(const std::string& ns, const json& set) const {
  std::vector<json> pods;
  for (const auto& [gr, p] : api_.store().dependents(meta(set, "uid"))) {
    if (gr != kPods || meta(*p, "namespace") != ns) continue;
    for (const auto& r : (*p)["metadata"]["ownerReferences"])
      if (r.is_object() && r.value("kind", "") == "StatefulSet" && r.value("uid", "") == meta(set, "uid") &&
          r.value("controller", false)) {
        pods.push_back(*p);
        break;
      }
  }
  return pods;
}

void Controllers::sync_stateful_pods(const std::string& ns, const json& set) {
  if (set["metadata"].contains("deletionTimestamp")) return;
  Store& store = api_.store();
  auto pods_type = api_.registry().find("", "v1", "pods");
  auto claims_type = api_.registry().find("", "v1", "persistentvolumeclaims");
  CallContext ctx = ApiServer::system_context();
  const std::string name = meta(set, "name");
  const json spec = set.value("spec", json::object());
  const json tmpl = spec.value("template", json::object());
  const json match = spec.value("selector", json::object()).value("matchLabels", json::object());
  const StatefulSetPlan plan = plan_stateful_set(set, stateful_pods(ns, set));
  for (int i : plan.create) {
    const std::string pod_name = name + "-" + std::to_string(i);
    json volumes = tmpl.value("spec", json::object()).value("volumes", json::array());
    for (const auto& ct : spec.value("volumeClaimTemplates", json::array())) {
      const std::string vol = ct.value("metadata", json::object()).value("name", "");
      const std::string claim = vol + "-" + pod_name;
      if (!store.get("/persistentvolumeclaims", ns, claim)) {
        json pvc{{"metadata", {{"name", claim}, {"labels", match}}}, {"spec", ct.value("spec", json::object())}};
        (void)api_.create(*claims_type, ns, pvc, ctx);
      }
      json kept = json::array();
      for (const auto& v : volumes)
        if (v.value("name", "") != vol) kept.push_back(v);
      kept.push_back({{"name", vol}, {"persistentVolumeClaim", {{"claimName", claim}}}});
      volumes = kept;
    }
    json pod{{"metadata", tmpl.value("metadata", json::object())}, {"spec", tmpl.value("spec", json::object())}};
    pod["metadata"]["name"] = pod_name;
    pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] = pod_name;
    pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] = std::to_string(i);
    pod["metadata"]["ownerReferences"] = json::array({{{"apiVersion", "apps/v1"}, {"kind", "StatefulSet"}, {"name", name},
                                                       {"uid", meta(set, "uid")}, {"controller", true},
                                                       {"blockOwnerDeletion", true}}});
    pod["spec"]["hostname"] = pod_name;
    if (spec.contains("serviceName")) pod["spec"]["subdomain"] = spec["serviceName"];
    if (!volumes.empty()) pod["spec"]["volumes"] = volumes;
    (void)api_.create(*pods_type, ns, pod, ctx);
  }
  // podControl.DeleteStatefulPod: default DeleteOptions, so the pod's own grace period.
  for (const auto& pod_name : plan.remove)
    (void)api_.remove(*pods_type, ns, pod_name, json{{"propagationPolicy", "Background"}}, ctx);
}

void Controllers::sync_workload(const std::string& gr, const std::string& ns, const std::string& name) {
  auto t = api_.registry().find_gr(gr);
  if (!t) return;
  if (gr == "apps/statefulsets") {
    auto set = api_.store().get(gr, ns, name);
    if (!set) return;
    sync_stateful_pods(ns, *set);
    // updateStatefulSetStatus: the counts of the set's own pods as they are now.
    bool waiting_for_min_ready = false;
    (void)api_.mutate(*t, ns, name, [&](json& o) {
      const json st = stateful_set_status(o, stateful_pods(ns, o), Clock::now());
      waiting_for_min_ready = st.value("readyReplicas", 0) > st.value("availableReplicas", 0);
      if (st == o.value("status", json::object())) return false;
      o["status"] = st;
      return true;
    }, "status");
    // A ready pod becomes available after minReadySeconds, with no event to say so.
    if (waiting_for_min_ready) after(std::chrono::seconds(1), {gr, ns, name});
    return;
  }
  (void)api_.mutate(*t, ns, name, [](json& o) {
    const int replicas = o.value("spec", json::object()).value("replicas", 1);
    json st = o.value("status", json::object());
    st["observedGeneration"] = o["metadata"].value("generation", 1);
    st["replicas"] = replicas;
    st["readyReplicas"] = replicas;
    st["availableReplicas"] = replicas;
    st["updatedReplicas"] = replicas;
    if (!st.contains("conditions")) {
      st["conditions"] = json::array({deployment_condition("Available", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                                      deployment_condition("Progressing", "NewReplicaSetAvailable", "ReplicaSet has successfully progressed.")});
    }
    if (replicas == 0) {
      st.erase("readyReplicas");
      st.erase("availableReplicas");
    }
    if (st == o.value("status", json::object())) return false;
    o["status"] = st;
    return true;
  }, "status");
}

}  // namespace kl
