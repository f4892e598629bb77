#include "kube/leader.h"

#include <condition_variable>
#include <mutex>
#include <random>

#include "common/timefmt.h"

namespace bo::kube {

LeaderElector::LeaderElector(Client& client, LeaderElectionConfig cfg, const Clock& clock)
    : client_(client), cfg_(std::move(cfg)), clock_(clock) {}

bool LeaderElector::try_acquire_or_renew() {
  const std::string now = format_rfc3339_micro(clock_.now());
  const int duration_s = static_cast<int>(std::chrono::duration_cast<std::chrono::seconds>(cfg_.lease_duration).count());
  auto cur = client_.get(resources::kLeases, cfg_.lease_namespace, cfg_.lease_name);
  if (!cur) {
    if (!cur.error().not_found()) return false;
    json lease{{"apiVersion", "coordination.k8s.io/v1"}, {"kind", "Lease"},
               {"metadata", {{"name", cfg_.lease_name}, {"namespace", cfg_.lease_namespace}}},
               {"spec", {{"holderIdentity", cfg_.identity}, {"leaseDurationSeconds", duration_s},
                         {"acquireTime", now}, {"renewTime", now}, {"leaseTransitions", 0}}}};
    auto created = client_.create(resources::kLeases, cfg_.lease_namespace, lease);
    if (!created) return false;
    observed_spec_ = (*created)["spec"];
    observed_at_ = std::chrono::steady_clock::now();
    return true;
  }
  json lease = *cur;
  const json spec = lease.value("spec", json::object());
  // Expiry is judged by when *we* saw the record change, so clock skew
  // between replicas cannot make a live leader look expired.
  if (spec != observed_spec_) {
    observed_spec_ = spec;
    observed_at_ = std::chrono::steady_clock::now();
  }
  const std::string holder = spec.value("holderIdentity", "");
  const auto their_duration = std::chrono::seconds(spec.value("leaseDurationSeconds", duration_s));
  if (!holder.empty() && holder != cfg_.identity &&
      std::chrono::steady_clock::now() < observed_at_ + their_duration)
    return false;
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
  auto updated = client_.update(resources::kLeases, cfg_.lease_namespace, lease);
  if (!updated) return false;
  observed_spec_ = (*updated)["spec"];
  observed_at_ = std::chrono::steady_clock::now();
  return true;
}

void LeaderElector::release() {
  auto cur = client_.get(resources::kLeases, cfg_.lease_namespace, cfg_.lease_name);
  if (!cur || (*cur)["spec"].value("holderIdentity", "") != cfg_.identity) return;
  json lease = *cur;
  lease["spec"]["holderIdentity"] = "";
  lease["spec"]["leaseDurationSeconds"] = 1;
  lease["spec"]["renewTime"] = format_rfc3339_micro(clock_.now());
  (void)client_.update(resources::kLeases, cfg_.lease_namespace, lease);
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
  auto last_renew = std::chrono::steady_clock::now();
  while (pause(cfg_.retry_period)) {
    if (try_acquire_or_renew()) {
      last_renew = std::chrono::steady_clock::now();
      continue;
    }
    if (std::chrono::steady_clock::now() - last_renew >= cfg_.renew_deadline) break;  // lost
  }
  leader_ = false;
  if (stop.stop_requested() && cfg_.release_on_cancel) release();
  on_stopped();
}

}  // namespace bo::kube
