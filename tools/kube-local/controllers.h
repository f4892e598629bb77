// The control loops kube-local runs in place of kube-controller-manager and a
// kubelet: namespace finalization, default service accounts, garbage
// collection by ownerReferences, the Job controller (backoffLimit,
// activeDeadlineSeconds, ttlSecondsAfterFinished), simulated pod outcomes, and
// Deployment/StatefulSet readiness, the StatefulSet controller (stateful_set.h)
// and the kubelet's part of a Pod's graceful deletion: SIGTERM to the running
// container, SIGKILL when the grace period (kubelet_grace_seconds, scaled by
// --time-scale) is over, and the Pod deleted with grace 0 once its process is
// gone; a process whose Pod vanished (deleted with grace 0) is stopped the same way.
// A process Pod whose first container has a tcpSocket readinessProbe is Ready
// only while the probe succeeds (probe.h).
//
// Pod outcomes follow the annotation kube-local.si.dev/pod-outcome on the Pod
// or its Job, a JSON object:
//   {"result": "Succeeded"|"Failed", "afterSeconds": 1, "exitCode": 0,
//    "message": "termination message", "failAttempts": 0}
// or {"exec": true}: the Pod really runs (exec_kubelet.h).
// failAttempts makes the first N attempts fail before `result` applies.
// Pods without the annotation take the first matching rule of --pod-rules
// (a JSON list of {"selector": "label selector", "outcome": {...}}).
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <tuple>

#include "kube-local/api.h"
#include "kube-local/exec_kubelet.h"
#include "kube-local/probe.h"

namespace kl {

inline constexpr const char* kPodOutcomeAnnotation = "kube-local.si.dev/pod-outcome";

struct PodRule {
  std::string selector;  // label selector text matched against the Pod's labels
  json outcome;          // as the annotation
};

struct ControllerOptions {
  double time_scale = 1.0;  // > 1 speeds up every simulated delay (pod run time, Job backoff, TTL)
  std::vector<PodRule> pod_rules;  // --pod-rules: outcomes for Pods without the annotation; first match wins
  ExecOptions exec;                // --exec-image[-path] / --exec-runtime / --volume-root: Pods with outcome {"exec": true} really run
};

class Controllers {
 public:
  Controllers(ApiServer& api, ControllerOptions opts);
  ~Controllers();
  void start();
  void stop();

 private:
  using Key = std::tuple<std::string, std::string, std::string>;  // gr, ns, name
  using Clock = std::chrono::system_clock;
  void run();
  void resync_all();
  void sync(const Key& key);
  void sync_namespace(const std::string& name);
  void sync_job(const std::string& ns, const std::string& name);
  void sync_pod(const std::string& ns, const std::string& name);
  void sync_stateful_pods(const std::string& ns, const nlohmann::json& set);
  [[nodiscard]] std::vector<json> stateful_pods(const std::string& ns, const json& set) const;
  void sync_workload(const std::string& gr, const std::string& ns, const std::string& name);
  void collect_garbage(const Event& ev);
  void check_owners(const std::string& gr, const json& obj);
  void after(std::chrono::duration<double> delay, const Key& key);
  // Containers being stopped, by Pod uid: SIGTERM sent; SIGKILL due at kill_at.
  struct Stopping {
    std::string ns, name;
    Clock::time_point kill_at;
    bool killed = false;
  };
  std::map<std::string, Stopping> stopping_;
  void stop_containers(const json& pod);
  // SIGKILL for what outlived its grace; a Pod whose process is gone is synced. Returns when to look again.
  Clock::time_point tend_stopping();
  // The readinessProbe (tcpSocket) of running process Pods, by Pod uid (probe.h).
  struct Probing {
    ProbeState state;
    Clock::time_point next;
  };
  std::map<std::string, Probing> probes_;
  void probe_readiness(const json& pod);
  void record_event(const json& involved, const std::string& type, const std::string& reason, const std::string& message);
  [[nodiscard]] std::chrono::duration<double> scaled(double seconds) const;

  ApiServer& api_;
  ControllerOptions opts_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::multimap<Clock::time_point, Key> timers_;
  std::set<Key> dirty_;
  void finish_pod(const std::string& ns, const std::string& name, bool success, int exit_code, const std::string& reason,
                  const std::string& message);
  // Changes init container `index`'s status of a Pod that has not ended.
  void update_init_status(const std::string& ns, const std::string& name, size_t index,
                          const std::function<void(json& status, json& statuses, const std::string& now)>& change);
  void init_container_started(const std::string& ns, const std::string& name, size_t index);
  void init_container_ended(const std::string& ns, const std::string& name, size_t index, const ExecResult& r);
  void pod_initialized(const std::string& ns, const std::string& name);
  std::unique_ptr<ExecKubelet> exec_;  // last: its waiters still call finish_pod while it is destroyed
};

}  // namespace kl
