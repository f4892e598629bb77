// A rate-limited, de-duplicating work queue with controller-runtime's
// semantics: a key queued many times is processed once; a key being
// processed is never handed to a second worker (it is re-queued when done
// if it was added meanwhile); retries back off per item (5 ms doubling to
// 1000 s) and overall (token bucket, 10 qps burst 100); delayed adds.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

namespace bo::kube {

struct WorkQueueOptions {
  std::chrono::milliseconds item_base{5};
  std::chrono::milliseconds item_cap{1000 * 1000};
  double overall_qps = 10;
  int overall_burst = 100;
};

class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;
  // Hooks for metrics: called on add (after de-duplication) and on rate-limited retries.
  struct Observer {
    std::function<void()> on_add;
    std::function<void()> on_retry;
  };

  explicit WorkQueue(WorkQueueOptions opts = {});

  void add(const std::string& key);
  void add_after(const std::string& key, std::chrono::milliseconds delay);
  // Re-queues with the key's backoff; returns the delay chosen.
  std::chrono::milliseconds add_rate_limited(const std::string& key);
  // Clears the key's failure history (after a success).
  void forget(const std::string& key);
  [[nodiscard]] int retries(const std::string& key) const;

  // Blocks for the next key; nullopt once shut down and drained of ready keys.
  std::optional<std::string> get();
  // Must follow every successful get().
  void done(const std::string& key);
  // Wakes all getters; pending delayed adds are dropped.
  void shutdown();
  [[nodiscard]] bool shutting_down() const;
  [[nodiscard]] size_t depth() const;
  [[nodiscard]] size_t waiting() const;
  // Whether another key is ready for a worker now: queued, or delayed and
  // due (promoted only when a worker asks, so depth() does not count it).
  [[nodiscard]] bool has_ready() const;
  // Threads blocked in get() right now (for tests that must wait for a worker to block).
  [[nodiscard]] size_t blocked_getters() const;
  void set_observer(Observer obs) { observer_ = std::move(obs); }

 private:
  void add_locked(const std::string& key);
  void promote_due_locked(Clock::time_point now);

  WorkQueueOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::set<std::string> dirty_;
  std::set<std::string> processing_;
  std::multimap<Clock::time_point, std::string> delayed_;
  std::map<std::string, Clock::time_point> delayed_at_;
  std::map<std::string, int> failures_;
  double bucket_tokens_;
  Clock::time_point bucket_last_;
  bool shutdown_ = false;
  size_t blocked_getters_ = 0;
  Observer observer_;
};

}  // namespace bo::kube
