// Runs a reconcile function over a work queue with N workers, as
// controller-runtime's Controller: errors requeue with backoff, "requeue
// after D" schedules the key, anything thrown is caught, logged and retried.
#pragma once
#include <chrono>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kube/workqueue.h"

namespace bo::kube {

struct ReconcileResult {
  std::optional<std::chrono::milliseconds> requeue_after;
  std::optional<std::string> error;  // set: retried with backoff
  bool expected = false;             // a routine race (409 on a stale cache): retried, logged at debug

  static ReconcileResult done() { return {}; }
  static ReconcileResult after(std::chrono::milliseconds d) { return {d, std::nullopt, false}; }
  static ReconcileResult failed(std::string why) { return {std::nullopt, std::move(why), false}; }
  static ReconcileResult conflict(std::string why) { return {std::nullopt, std::move(why), true}; }
};

// What a Controller reports of its queue and reconciles (metrics::Metrics
// implements it). An interface here, so kube does not depend on metrics.
class ControllerObserver {
 public:
  virtual ~ControllerObserver() = default;
  virtual void reconcile(const std::string& controller, const std::string& result, double seconds) = 0;
  virtual void queue_depth(const std::string& controller, double depth) = 0;
  virtual void queue_add(const std::string& controller) = 0;
  virtual void queue_retry(const std::string& controller) = 0;
};

class Controller {
 public:
  using Reconcile = std::function<ReconcileResult(const std::string& key)>;

  Controller(std::string name, Reconcile reconcile, int workers, ControllerObserver* metrics,
             WorkQueueOptions queue_opts = {});
  ~Controller();

  [[nodiscard]] WorkQueue& queue() { return queue_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  void start();
  // Starts the workers once `ready` holds (the caches have synced), polling it.
  void start_when(std::function<bool()> ready);
  // Stops taking keys, lets running reconciles finish, joins the workers.
  void stop();

 private:
  void worker();
  void process(const std::string& key);

  std::string name_;
  Reconcile reconcile_;
  int workers_;
  ControllerObserver* metrics_;
  WorkQueue queue_;
  std::vector<std::thread> threads_;
  std::jthread waiter_;
};

// "namespace/name" -> {namespace, name}.
[[nodiscard]] std::pair<std::string, std::string> split_key(const std::string& key);

}  // namespace bo::kube
