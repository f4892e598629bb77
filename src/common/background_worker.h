// One background thread working through keys, shared by the checks that run
// beside the reconciles (postgres::ArchiveProber, reconcile::DataVolumeResolver):
// a FIFO queue holding each key at most once, timers that hand a key back at
// a time, an optional pace of N keys a second (a token bucket with a burst of
// max(1, N)) that a key's first look skips, and a stop that returns promptly, idle or paced, and joins.
//
// The owners keep their per-key state under their own lock. The worker never
// holds its lock while calling them, so they may call it back from inside a
// callback and while holding their own lock (their lock, then the worker's).
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace bo {

class BackgroundWorker {
 public:
  using KeyFn = std::function<void(const std::string& key)>;
  using TimePoint = std::chrono::steady_clock::time_point;

  // `work(key)` for each queued key, in order, at most `per_second` a second
  // (<= 0: unpaced); `due(key)` when a timer set by schedule_at() fires. Both
  // run on the worker thread. The thread starts here.
  BackgroundWorker(KeyFn work, KeyFn due, double per_second = 0);
  ~BackgroundWorker();
  BackgroundWorker(const BackgroundWorker&) = delete;
  BackgroundWorker& operator=(const BackgroundWorker&) = delete;

  // Queues `key` at the back; false (and nothing queued) when it is queued
  // already or the worker is stopping. A key being worked on is not queued.
  // kFirst: work someone waits on (a key's first look) goes ahead of the
  // paced queue, unpaced; the pace is for repeats, which nobody waits on.
  enum class Lane { kPaced, kFirst };
  bool enqueue(const std::string& key, Lane lane = Lane::kPaced);
  // Calls due(key) at `at` (at once when past); ignored once stopping.
  void schedule_at(const std::string& key, TimePoint at);
  // Takes `key` out of the queue. Its timers still fire: owners ignore keys
  // they no longer know.
  void cancel(const std::string& key);
  [[nodiscard]] bool stopping() const;
  // Drops what is queued and every timer, and waits for the thread (a call
  // of work or due under way ends first). Idempotent; from the worker thread
  // itself it does not wait.
  void stop();

 private:
  void run();
  // When the next key may start under the pace (now when unpaced or a token is left).
  TimePoint next_start(TimePoint now);

  KeyFn work_;
  KeyFn due_;
  double per_second_;
  double burst_;
  double tokens_;
  TimePoint refilled_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> queue_;
  std::deque<std::string> first_;  // Lane::kFirst, served before queue_ and unpaced
  std::set<std::string> queued_;
  std::multimap<TimePoint, std::string> timers_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace bo
