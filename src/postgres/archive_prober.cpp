#include "postgres/archive_prober.h"

#include <algorithm>

namespace bo::postgres {
namespace {

void wipe(std::string& secret) {
  std::fill(secret.begin(), secret.end(), '\0');
  secret.clear();
  secret.shrink_to_fit();
}

}  // namespace

ArchiveProber::ArchiveProber(ProbeFn probe, WakeFn wake, const Clock& clock, std::chrono::milliseconds interval)
    : probe_(std::move(probe)),
      wake_(std::move(wake)),
      clock_(clock),
      interval_(interval),
      worker_([this](const std::string& key) { run_probe(key); }, [this](const std::string& key) { probe_due(key); }) {}

ArchiveProber::~ArchiveProber() { stop(); }

std::optional<ArchiveObservation> ArchiveProber::observe(const std::string& key, ConnectionParams params) {
  std::lock_guard lock(mu_);
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& e = it->second;
  if (inserted) e.generation = ++generations_;
  const auto now = std::chrono::steady_clock::now();
  if (!stopping_ && !e.running && !e.pending && (!e.last_start || now - *e.last_start >= interval_)) {
    e.pending = std::move(params);
    (void)worker_.enqueue(key);  // queued exactly while pending: forget() and stop() drop both
  } else {
    wipe(params.password);
  }
  return e.latest;
}

std::optional<ArchiveObservation> ArchiveProber::latest(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  return it == entries_.end() ? std::nullopt : it->second.latest;
}

void ArchiveProber::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  if (it->second.pending) wipe(it->second.pending->password);
  entries_.erase(it);
  worker_.cancel(key);
}

void ArchiveProber::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (auto& [key, e] : entries_)
      if (e.pending) {
        wipe(e.pending->password);
        e.pending.reset();
      }
  }
  worker_.stop();
}

ArchiveObservation ArchiveProber::carry(const std::optional<ArchiveObservation>& prev, ArchiveObservation next,
                                       SysTime stamp) {
  next.observed_at = prev && prev->same_essentials(next) ? prev->observed_at : stamp;
  next.waiting_since.reset();
  if (wal_waiting(next))
    next.waiting_since = prev && prev->waiting_since && wal_waiting(*prev) &&
                                 prev->last_archived_wal == next.last_archived_wal
                             ? prev->waiting_since
                             : std::optional<SysTime>(next.server_now);
  return next;
}

bool ArchiveProber::changed(const std::optional<ArchiveObservation>& prev, const ArchiveObservation& next) {
  return !prev || !prev->same_essentials(next) || evaluate_archiving(*prev) != evaluate_archiving(next);
}

int ArchiveProber::probes_started() const {
  std::lock_guard lock(mu_);
  return started_;
}

void ArchiveProber::probe_due(const std::string& key) {
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second.pending || it->second.running) return;
  }
  // The policy is woken to hand over its credentials.
  wake_(key);
}

void ArchiveProber::run_probe(const std::string& key) {
  std::unique_lock lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end() || !it->second.pending) return;
  const auto start = std::chrono::steady_clock::now();
  ConnectionParams params = std::move(*it->second.pending);
  it->second.pending.reset();
  it->second.running = true;
  it->second.last_start = start;
  const uint64_t generation = it->second.generation;
  ++started_;
  lock.unlock();
  ArchiveObservation obs = probe_(params);
  wipe(params.password);
  const SysTime stamp = clock_.now();
  lock.lock();
  it = entries_.find(key);
  if (it == entries_.end() || it->second.generation != generation) return;  // forgotten meanwhile
  Entry& e = it->second;
  e.running = false;
  obs = carry(e.latest, std::move(obs), stamp);
  const bool woken = changed(e.latest, obs);
  e.latest = std::move(obs);
  worker_.schedule_at(key, start + interval_);
  if (woken && !stopping_) {
    lock.unlock();
    wake_(key);
  }
}

}  // namespace bo::postgres
