#include "kube/leader.h"

#include <condition_variable>
#include <mutex>
#include <random>

#include "common/log.h"
#include "common/timefmt.h"

namespace bo::kube {

using steady = std::chrono::steady_clock;

LeaderElector::LeaderElector(std::unique_ptr<Client> client, LeaderElectionConfig cfg, const Clock& clock)
    : client_(std::move(client)), cfg_(std::move(cfg)), clock_(clock) {
  client_->set_write_gate([this] { return lease_writes_.open(); });
}

LeaderElector::~LeaderElector() {
  if (abandoned_.valid()) abandoned_.wait();
}

bool LeaderElector::try_acquire_or_renew() {
  lease_writes_.open_until(steady::now() + cfg_.renew_deadline);
  return attempt();
}

bool LeaderElector::attempt() {
  const auto started = steady::now();
  const std::string now = format_rfc3339_micro(clock_.now());
  const int duration_s = static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(cfg_.lease_duration).count());
  // Whatever the server stores from here on was written after `started`: others
  // count the lease from when they see it, so it is ours until at least
  // started + leaseDuration, and we write until started + renewDeadline.
  auto succeeded = [&](const json& stored) {
    observed_spec_ = stored["spec"];
    observed_at_ = steady::now();
    std::lock_guard lock(fence_mu_);
    if (!given_up_) fence_.open_until(started + cfg_.renew_deadline);  // an abandoned attempt never reopens it
    return true;
  };
  auto cur = client_->get(resources::kLeases, cfg_.lease_namespace, cfg_.lease_name);
  if (!cur) {
    if (!cur.error().not_found()) return false;
    json lease{{"apiVersion", "coordination.k8s.io/v1"}, {"kind", "Lease"},
               {"metadata", {{"name", cfg_.lease_name}, {"namespace", cfg_.lease_namespace}}},
               {"spec", {{"holderIdentity", cfg_.identity}, {"leaseDurationSeconds", duration_s},
                         {"acquireTime", now}, {"renewTime", now}, {"leaseTransitions", 0}}}};
    auto created = client_->create(resources::kLeases, cfg_.lease_namespace, lease);
    if (!created) return false;
    return succeeded(*created);
  }
  json lease = *cur;
  const json spec = lease.value("spec", json::object());
  // Expiry is judged by when *we* saw the record change, so clock skew
  // between replicas cannot make a live leader look expired.
  if (spec != observed_spec_) {
    observed_spec_ = spec;
    observed_at_ = steady::now();
  }
  const std::string holder = spec.value("holderIdentity", "");
  const auto their_duration = std::chrono::seconds(spec.value("leaseDurationSeconds", duration_s));
  if (!holder.empty() && holder != cfg_.identity && steady::now() < observed_at_ + their_duration) return false;
  json next = spec;
  if (holder != cfg_.identity) {
    next["acquireTime"] = now;
    next["leaseTransitions"] = spec.value("leaseTransitions", 0) + (holder.empty() ? 0 : 1);
  }
  next["holderIdentity"] = cfg_.identity;
  next["leaseDurationSeconds"] = duration_s;
  next["renewTime"] = now;
  lease["spec"] = next;
  // The update carries the resourceVersion we read: a racing candidate gets 409.
  auto updated = client_->update(resources::kLeases, cfg_.lease_namespace, lease);
  if (!updated) return false;
  return succeeded(*updated);
}

bool LeaderElector::attempt_until(steady::time_point deadline) {
  if (abandoned_.valid()) {
    // The last attempt overran its deadline; it cannot write any more, but
    // it owns the elector's state until it returns.
    if (abandoned_.wait_until(deadline) != std::future_status::ready) return false;
    abandoned_.get();
  }
  lease_writes_.open_until(deadline);
  auto running = std::async(std::launch::async, [this] { return attempt(); });
  if (running.wait_until(deadline) == std::future_status::ready) return running.get();
  lease_writes_.close();  // the gate had closed at the deadline already; this keeps it so
  abandoned_ = std::move(running);
  return false;
}

void LeaderElector::release() {
  lease_writes_.open_until(steady::now() + cfg_.renew_deadline);
  auto cur = client_->get(resources::kLeases, cfg_.lease_namespace, cfg_.lease_name);
  if (!cur || (*cur)["spec"].value("holderIdentity", "") != cfg_.identity) return;
  json lease = *cur;
  lease["spec"]["holderIdentity"] = "";
  lease["spec"]["leaseDurationSeconds"] = 1;
  lease["spec"]["renewTime"] = format_rfc3339_micro(clock_.now());
  // The resourceVersion we read: if another replica took the Lease meanwhile, this is a 409 and changes nothing.
  if (auto r = client_->update(resources::kLeases, cfg_.lease_namespace, lease); r)
    log::info("lease released", {{"lease", cfg_.lease_namespace + "/" + cfg_.lease_name}});
  else
    log::warn("lease not released", {{"lease", cfg_.lease_namespace + "/" + cfg_.lease_name}, {"error", r.error().str()}});
}

void LeaderElector::run(std::stop_token stop, const std::function<void()>& on_started,
                        const std::function<void()>& on_stopped) {
  std::mutex m;
  std::condition_variable_any cv;
  std::mt19937 rng(std::random_device{}());
  auto pause = [&](std::chrono::milliseconds d) {
    std::unique_lock lock(m);
    cv.wait_for(lock, stop, d, [] { return false; });
    return !stop.stop_requested();
  };
  auto jittered = [&] {
    std::uniform_real_distribution<double> j(1.0, 1.2);
    return std::chrono::milliseconds(static_cast<long long>(cfg_.retry_period.count() * j(rng)));
  };
  while (!try_acquire_or_renew())
    if (!pause(jittered())) return;
  leader_ = true;
  on_started();
  // client-go's renew(): every retryPeriod a renewal cycle, which retries
  // every retryPeriod until it succeeds or renewDeadline has passed since the
  // cycle began; a cycle that fails ends leadership.
  bool lost = false;
  while (!lost && pause(cfg_.retry_period)) {
    const auto deadline = steady::now() + cfg_.renew_deadline;
    while (!attempt_until(deadline)) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now());
      if (left.count() <= 0) {
        lost = true;
        break;
      }
      if (!pause(std::min(cfg_.retry_period, left))) break;
    }
  }
  leader_ = false;
  auto give_up = [&] {
    std::lock_guard lock(fence_mu_);
    given_up_ = true;
    fence_.close();
  };
  if (lost) {
    give_up();
    log::error("leader election lost: the lease was not renewed within the renew deadline",
               {{"lease", cfg_.lease_namespace + "/" + cfg_.lease_name},
                {"renewDeadlineMs", static_cast<long long>(cfg_.renew_deadline.count())}});
    on_stopped();
    return;
  }
  // Stopping: the work stops while the lease is still ours, then we let it go
  // (controller-runtime's manager stops its runnables before it cancels the
  // leader election, whose ReleaseOnCancel then clears the holder).
  on_stopped();
  give_up();
  if (cfg_.release_on_cancel) {
    if (abandoned_.valid()) abandoned_.wait();
    release();
  }
}

}  // namespace bo::kube
