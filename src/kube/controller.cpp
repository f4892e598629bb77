#include "kube/controller.h"

#include "common/log.h"

namespace bo::kube {

Controller::Controller(std::string name, Reconcile reconcile, int workers, ControllerObserver* metrics,
                       WorkQueueOptions queue_opts)
    : name_(std::move(name)), reconcile_(std::move(reconcile)), workers_(workers), metrics_(metrics), queue_(queue_opts) {
  if (metrics_)
    queue_.set_observer({[this] { metrics_->queue_add(name_); }, [this] { metrics_->queue_retry(name_); }});
}

Controller::~Controller() { stop(); }

void Controller::start() {
  for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { worker(); });
}

void Controller::start_when(std::function<bool()> ready) {
  waiter_ = std::jthread([this, ready = std::move(ready)](std::stop_token st) {
    while (!st.stop_requested() && !ready()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (st.stop_requested()) return;
    log::info("caches synced, starting workers", {{"controller", name_}, {"workers", workers_}});
    start();
  });
}

std::pair<std::string, std::string> split_key(const std::string& key) {
  const auto slash = key.find('/');
  if (slash == std::string::npos) return {"", key};
  return {key.substr(0, slash), key.substr(slash + 1)};
}

void Controller::stop() {
  if (waiter_.joinable()) {
    waiter_.request_stop();
    waiter_.join();
  }
  queue_.shutdown();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void Controller::worker() {
  while (auto key = queue_.get()) {
    process(*key);
    queue_.done(*key);
    if (metrics_) metrics_->queue_depth(name_, static_cast<double>(queue_.depth()));
  }
}

void Controller::process(const std::string& key) {
  const auto start = std::chrono::steady_clock::now();
  std::string result;
  try {
    const ReconcileResult r = reconcile_(key);
    if (r.error) {
      const auto delay = queue_.add_rate_limited(key);
      log::write(r.expected ? log::Level::kDebug : log::Level::kWarn, "reconcile failed",
                 {{"controller", name_}, {"key", key}, {"error", *r.error}, {"retryInMs", delay.count()}});
      result = r.expected ? "requeue" : "error";
    } else {
      queue_.forget(key);
      if (r.requeue_after) {
        queue_.add_after(key, *r.requeue_after);
        result = "requeue_after";
        log::debug("reconciled", {{"controller", name_}, {"key", key}, {"requeueAfterMs", r.requeue_after->count()}});
      } else {
        result = "success";
      }
    }
  } catch (const std::exception& e) {
    // Like controller-runtime recovering a panic: log, count, retry.
    queue_.add_rate_limited(key);
    log::error("reconcile threw", {{"controller", name_}, {"key", key}, {"error", e.what()}});
    result = "error";
  }
  if (metrics_)
    metrics_->reconcile(name_, result,
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace bo::kube
