// Probes each policy's database for its archiving state in the background,
// so a reconcile never waits on a database: the reconcile hands over the
// connection parameters and gets the newest observation back at once.
//
// One worker thread; at most one probe per policy queued or in flight; a
// policy is probed at most once per interval. A password is held only from
// the reconcile that hands it over until its probe ends. `wake(key)` is
// called (from the worker) when a policy's observation changed in what the
// status reports or in its evaluation, and when a new probe is due, so the
// controller enqueues the policy and its reconcile hands over fresh
// credentials: continuous checking without keeping the password around.
#pragma once
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "common/background_worker.h"
#include "common/clock.h"
#include "postgres/archiving.h"

namespace bo::postgres {

class ArchiveProber {
 public:
  using ProbeFn = std::function<ArchiveObservation(const ConnectionParams&)>;
  using WakeFn = std::function<void(const std::string& key)>;

  // `clock` stamps observed_at; `interval` bounds how often a policy is probed.
  ArchiveProber(ProbeFn probe, WakeFn wake, const Clock& clock, std::chrono::milliseconds interval);
  ~ArchiveProber();
  ArchiveProber(const ArchiveProber&) = delete;
  ArchiveProber& operator=(const ArchiveProber&) = delete;

  // The newest observation of `key` (none before its first probe ends), and a
  // probe of it queued when due (never probed, or the interval has passed
  // since the last one started) and none is queued or running.
  [[nodiscard]] std::optional<ArchiveObservation> observe(const std::string& key, ConnectionParams params);
  // The newest observation, without asking for a probe.
  [[nodiscard]] std::optional<ArchiveObservation> latest(const std::string& key) const;
  // Drops the policy (deleted, or no credentials any more): its observation,
  // its queued probe and password. A probe already running is discarded.
  void forget(const std::string& key);
  // Stops the worker and waits for it (a running probe ends within its
  // connect and statement timeouts). Idempotent.
  void stop();

  // What a new reading becomes, given the previous one: observed_at kept
  // when the essentials are unchanged (else `stamp`), waiting_since carried
  // while WAL keeps waiting behind the same last archived segment.
  [[nodiscard]] static ArchiveObservation carry(const std::optional<ArchiveObservation>& prev, ArchiveObservation next,
                                                SysTime stamp);
  // Whether the policy is woken for `next`: the first reading, other
  // essentials, or another evaluation (e.g. it just turned stale).
  [[nodiscard]] static bool changed(const std::optional<ArchiveObservation>& prev, const ArchiveObservation& next);

  // For tests: probes started so far.
  [[nodiscard]] int probes_started() const;

 private:
  struct Entry {
    std::optional<ArchiveObservation> latest;
    std::optional<ConnectionParams> pending;  // queued: the parameters to use
    bool running = false;
    std::optional<std::chrono::steady_clock::time_point> last_start;
    uint64_t generation = 0;  // bumped by forget(): a running probe's result is then dropped
  };
  // On the worker: the queued probe of `key`; and a probe of it came due (woken then).
  void run_probe(const std::string& key);
  void probe_due(const std::string& key);

  ProbeFn probe_;
  WakeFn wake_;
  const Clock& clock_;
  std::chrono::milliseconds interval_;
  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  bool stopping_ = false;  // under mu_, so no password is handed over once stop() wiped them
  int started_ = 0;
  uint64_t generations_ = 0;
  BackgroundWorker worker_;  // last: its thread calls into everything above
};

}  // namespace bo::postgres
