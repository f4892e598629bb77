// Kubernetes Events for the objects the operator manages, posted from a
// background thread so reconcilers never block on them. Repeats of the same
// event are aggregated into one Event with a count (as client-go's
// EventCorrelator), and a per-object token bucket keeps a hot loop from
// flooding the API server.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "kube/client.h"

namespace bo::kube {

struct EventRecorderOptions {
  std::string component = "backup-operator";
  std::string instance;  // pod name or host
  int burst = 25;                                    // events per object before throttling
  std::chrono::seconds refill{300};                  // one more event per object every refill
  std::chrono::minutes aggregation_window{10};
  size_t max_queue = 1000;
};

class EventRecorder {
 public:
  EventRecorder(Client& client, const Clock& clock, EventRecorderOptions opts = {});
  ~EventRecorder();

  // `object` needs apiVersion, kind, metadata.{name,namespace,uid}. type: Normal | Warning.
  void record(const json& object, const std::string& type, const std::string& reason, const std::string& message);
  // Blocks until every queued event has been posted (tests, shutdown).
  void flush();
  void stop();
  [[nodiscard]] uint64_t dropped() const { return dropped_.load(); }
  [[nodiscard]] uint64_t posted() const { return posted_.load(); }

 private:
  struct Pending {
    json involved;
    std::string ns, type, reason, message;
    SysTime at;
  };
  struct Seen {
    std::string name;
    int count = 0;
    SysTime first, last;
  };
  void run();
  void post(const Pending& p);

  Client& client_;
  const Clock& clock_;
  EventRecorderOptions opts_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Pending> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::map<std::string, Seen> seen_;  // aggregation key -> the Event it became
  std::map<std::string, std::pair<double, SysTime>> buckets_;  // object uid -> tokens, last refill
  std::atomic<uint64_t> dropped_{0};
  std::atomic<uint64_t> posted_{0};
  std::thread thread_;
};

}  // namespace bo::kube
