// The RestoreRequest controller: reads requests, their policies and Jobs from
// the shared caches, asks the pure planner (restore_plan.h) what to do, and
// does it: Jobs, the freeze policy and binding, status, Events, metrics and
// one structured log line per step.
#pragma once
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "api/restore_request.h"
#include "common/clock.h"
#include "kube/client.h"
#include "kube/controller.h"
#include "kube/events.h"
#include "metrics/metrics.h"
#include "reconcile/caches.h"
#include "reconcile/restore_plan.h"

namespace bo::reconcile {

struct RestoreControllerOptions {
  int workers = 2;
  std::string default_image;
  std::string operator_username;  // the only identity a frozen namespace still accepts
  std::string operator_namespace{};  // never a restore target (nor is kube-system)
};

class RestoreController {
 public:
  RestoreController(kube::Client& client, Caches& caches, const Clock& clock, kube::EventRecorder& events,
                    metrics::Metrics& metrics, RestoreControllerOptions opts);
  ~RestoreController();
  void start();
  void stop();
  kube::ReconcileResult reconcile(const std::string& key);

 private:
  void enqueue(const std::string& ns, const std::string& name);
  kube::Result<nlohmann::json> set_finalizers(const std::string& ns, const nlohmann::json& request,
                                              const nlohmann::json& finalizers);
  void enqueue_waiting();
  std::string waiting_for(const nlohmann::json& request) const;
  kube::Result<bool> target_is_production(const std::string& target) const;
  kube::Result<api::AccessCheck> requester_access(const nlohmann::json& request, const std::string& target) const;
  kube::Result<bool> freeze_present(const std::string& name) const;
  kube::Result<void> apply_freeze(const nlohmann::json& policy, const nlohmann::json& binding);
  kube::Result<void> lift_freeze(const std::string& name);
  // An in-place restore's workload: found, spec.replicas and how many pods its selector matches.
  kube::Result<RestoreInputs::Workload> observe_workload(const std::string& ns, const std::string& kind,
                                                         const std::string& name) const;

  kube::Client& client_;
  Caches& caches_;
  const Clock& clock_;
  kube::EventRecorder& events_;
  metrics::Metrics& metrics_;
  RestoreControllerOptions opts_;
  kube::Controller controller_;
  PodGrace grace_;
};

}  // namespace bo::reconcile
