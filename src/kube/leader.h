// Leader election on a coordination.k8s.io/v1 Lease, as client-go's
// leaderelection and controller-runtime's manager use it: acquire when the
// holder's lease has expired by our own observation (not its clock), renew
// every retryPeriod, give up at once when a renewal has not succeeded within
// renewDeadline, and on shutdown release the Lease only after the work has
// stopped.
//
// Writes are fenced: the controllers' client asks write_gate() before each
// write, and the gate is open only until renewDeadline after the start of the
// last successful acquire or renewal. Another candidate takes the Lease no
// sooner than leaseDuration after it saw that renewal, which happened after it
// started; so with renewDeadline < leaseDuration no write from this process
// goes out once another may have become leader, even if the elector's thread
// is stuck (clocks only need to run at the same rate, as client-go assumes).
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
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

// Open until a point in steady time; closed by default. Lock-free, so a
// client's write path can ask it on every request.
class WriteFence {
 public:
  void open_until(std::chrono::steady_clock::time_point t) { until_.store(t.time_since_epoch().count()); }
  void close() { until_.store(kClosed); }
  [[nodiscard]] bool open() const {
    return std::chrono::steady_clock::now().time_since_epoch().count() < until_.load();
  }

 private:
  static constexpr std::chrono::steady_clock::rep kClosed = std::chrono::steady_clock::time_point::min().time_since_epoch().count();
  std::atomic<std::chrono::steady_clock::rep> until_{kClosed};
};

class LeaderElector {
 public:
  // `client` is the elector's own (its own limiter, timeouts bounded by the
  // renew deadline, no retries of its own: the renew loop retries every
  // retryPeriod), so a busy reconciler cannot starve renewals. The elector
  // sets its write gate: no Lease write leaves after the deadline of the
  // attempt it belongs to.
  LeaderElector(std::unique_ptr<Client> client, LeaderElectionConfig cfg, const Clock& clock);
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  // Blocks: waits to acquire, runs `on_started` (which must return promptly;
  // start work on other threads), then renews. When a renewal cycle has not
  // succeeded within renewDeadline, the fence closes and `on_stopped` runs
  // (stop the work there, synchronously). When `stop` is requested, renewals
  // end, `on_stopped` runs while the fence is still open from the last
  // renewal, and only then the fence closes and the Lease is released
  // (release_on_cancel): the work stops before another replica can take over.
  // Returns after that.
  void run(std::stop_token stop, const std::function<void()>& on_started, const std::function<void()>& on_stopped);

  [[nodiscard]] bool is_leader() const { return leader_.load() && fence_.open(); }
  // For the client the controllers write with (Client::set_write_gate).
  // Valid while this elector lives.
  [[nodiscard]] Client::WriteGate write_gate() const {
    return [this] { return fence_.open(); };
  }
  // One acquire-or-renew attempt (exposed for tests).
  bool try_acquire_or_renew();
  void release();

 private:
  // Runs one attempt on a helper thread and waits for it until `deadline`
  // (client-go bounds each renewal by a context with the renew deadline).
  bool attempt_until(std::chrono::steady_clock::time_point deadline);
  // One attempt, its Lease writes allowed while lease_writes_ is open.
  bool attempt();

  std::unique_ptr<Client> client_;
  LeaderElectionConfig cfg_;
  const Clock& clock_;
  std::atomic<bool> leader_{false};
  WriteFence fence_;
  std::mutex fence_mu_;    // orders opening the fence against giving up
  bool given_up_ = false;  // set once run() has ended leadership; guarded by fence_mu_
  WriteFence lease_writes_;  // the elector's own client: open until the current attempt's deadline
  std::future<bool> abandoned_;  // an attempt still running past its deadline
  json observed_spec_;
  std::chrono::steady_clock::time_point observed_at_{};
};

}  // namespace bo::kube
