// Leader election on a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection: acquire when the holder's lease has expired by our own
// observation (not its clock), renew every retryPeriod, and give up at once
// when a renewal has not succeeded within renewDeadline.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <stop_token>
#include <string>

#include "common/clock.h"
#include "kube/client.h"

namespace bo::kube {

struct LeaderElectionConfig {
  std::string lease_namespace;
  std::string lease_name;
  std::string identity;
  std::chrono::milliseconds lease_duration{15000};
  std::chrono::milliseconds renew_deadline{10000};
  std::chrono::milliseconds retry_period{2000};
  bool release_on_cancel = true;
};

class LeaderElector {
 public:
  LeaderElector(Client& client, LeaderElectionConfig cfg, const Clock& clock);

  // Blocks: waits to acquire, runs `on_started` (which must return promptly;
  // start work on other threads), renews, and returns after calling
  // `on_stopped` once leadership is lost or `stop` is requested.
  void run(std::stop_token stop, const std::function<void()>& on_started, const std::function<void()>& on_stopped);

  [[nodiscard]] bool is_leader() const { return leader_.load(); }
  // One acquire-or-renew attempt (exposed for tests).
  bool try_acquire_or_renew();
  void release();

 private:
  Client& client_;
  LeaderElectionConfig cfg_;
  const Clock& clock_;
  std::atomic<bool> leader_{false};
  json observed_spec_;
  std::chrono::steady_clock::time_point observed_at_{};
};

}  // namespace bo::kube
