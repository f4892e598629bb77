// Checks each policy's data volume in the background (as postgres::
// ArchiveProber probes archiving), so a reconcile never waits on the API:
// the reconcile hands over its request and gets the newest outcome for that
// request back at once (none while the first check of it is pending).
//
// One worker; at most one check per policy queued or running; each policy
// re-checked by the worker itself every `interval` (it holds no secret, so
// it keeps the request) and checks started at most `checks_per_second`, so
// 10 000 policies stay a bounded load on the API server. `wake(key)` is
// called when a policy's outcome changed, so its reconcile reads the new one.
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/background_worker.h"
#include "kube/client.h"
#include "reconcile/data_volume.h"

namespace bo::reconcile {

// One check through the API (GET the claim; or GET the workload, list its
// pods by its selector, GET the pod's claim): the I/O around data_volume.h.
[[nodiscard]] DataVolumeCheck check_data_volume(kube::Client& client, const DataVolumeRequest& req);

class DataVolumeResolver {
 public:
  using CheckFn = std::function<DataVolumeCheck(const DataVolumeRequest&)>;
  using WakeFn = std::function<void(const std::string& key)>;

  // `threads` checks run at once (each key always on the same thread, so a
  // key's checks never overlap); `checks_per_second` paces the re-checks of
  // all of them together.
  DataVolumeResolver(CheckFn check, WakeFn wake, std::chrono::milliseconds interval, double checks_per_second,
                     int threads = 1);
  ~DataVolumeResolver();
  DataVolumeResolver(const DataVolumeResolver&) = delete;
  DataVolumeResolver& operator=(const DataVolumeResolver&) = delete;

  // The newest outcome of `req` for `key`; a new or changed request is
  // queued at once and has none until its check ends.
  [[nodiscard]] std::optional<DataVolumeCheck> observe(const std::string& key, const DataVolumeRequest& req);
  // When `key`'s current request was first observed (its check queued then);
  // none for a key not observed. Read beside an observe() that returned none:
  // the check may end between the two calls, and its wake() follows.
  [[nodiscard]] std::optional<std::chrono::steady_clock::time_point> asked_at(const std::string& key) const;
  // Drops the policy (deleted, or no data volume to check).
  void forget(const std::string& key);
  void stop();

  // For tests: checks started so far.
  [[nodiscard]] int checks_started() const;

 private:
  struct Entry {
    DataVolumeRequest request;
    std::optional<DataVolumeCheck> latest;
    std::chrono::steady_clock::time_point asked;  // when `request` was first seen
    uint64_t generation = 0;  // a changed request or forget() drops a running check's result
  };
  // On the worker: the queued check of `key`; and its re-check came due.
  void run_check(const std::string& key);
  void check_due(const std::string& key);

  CheckFn check_;
  WakeFn wake_;
  std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  int started_ = 0;
  uint64_t generations_ = 0;
  // The key's thread: one per key, by hash.
  [[nodiscard]] BackgroundWorker& worker(const std::string& key);
  // Last: their threads call into everything above. One thread made every new
  // policy's first check wait for all before it (10 000 GETs in a row).
  std::vector<std::unique_ptr<BackgroundWorker>> workers_;
};

}  // namespace bo::reconcile
