#include "kube-local/pod_deletion.h"

#include <algorithm>
#include <optional>

#include "common/timefmt.h"

namespace kl {
namespace {

std::optional<long long> int_field(const json& o, const char* key) {
  if (!o.is_object() || !o.contains(key) || !o[key].is_number_integer()) return std::nullopt;
  return o[key].get<long long>();
}

}  // namespace

PodDeletion plan_pod_deletion(const json& pod, const json& options, bool containers_running,
                              std::chrono::system_clock::time_point now) {
  const json meta = pod.value("metadata", json::object());
  std::optional<long long> asked = int_field(options, "gracePeriodSeconds");
  // BeforeDelete: "Negative values will be treated as the value `1s` on the delete path."
  if (asked && *asked < 0) asked = 1;
  if (meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null()) {
    long long current = int_field(meta, "deletionGracePeriodSeconds").value_or(0);
    if (current < 0) current = 1;  // as a negative request
    // A deletion left with grace 0 (or none) is finished by deleting now.
    if (current == 0) return {PodDeletion::Kind::kNotGraceful, 0, ""};
    // Only a shorter grace period may be asked for; the deletion time moves by the difference.
    if (!asked || *asked >= current) return {PodDeletion::Kind::kPending, current, ""};
    const auto was = bo::parse_rfc3339(meta.value("deletionTimestamp", "")).value_or(now);
    const auto moved = was - std::chrono::seconds(current) + std::chrono::seconds(*asked);
    return {PodDeletion::Kind::kGraceful, *asked, bo::format_rfc3339(moved)};
  }
  // CheckGracefulDelete: the request's period, else the Pod's terminationGracePeriodSeconds, else 0;
  // 0 for a Pod on no node and for one that has already terminated.
  const json spec = pod.value("spec", json::object());
  long long period = asked ? *asked : int_field(spec, "terminationGracePeriodSeconds").value_or(0);
  if (spec.value("nodeName", "").empty()) period = 0;
  const std::string phase = pod.value("status", json::object()).value("phase", "");
  if (phase == "Succeeded" || phase == "Failed") period = 0;
  if (period < 0) period = 1;
  if (!containers_running) period = 0;
  return {PodDeletion::Kind::kGraceful, period, bo::format_rfc3339(now + std::chrono::seconds(period))};
}

long long kubelet_grace_seconds(const json& pod) {
  constexpr long long kMinimumGracePeriodInSeconds = 2;
  long long grace = 30;
  if (auto d = int_field(pod.value("metadata", json::object()), "deletionGracePeriodSeconds"))
    grace = *d;
  else if (auto t = int_field(pod.value("spec", json::object()), "terminationGracePeriodSeconds"))
    grace = *t;
  return std::max(grace, kMinimumGracePeriodInSeconds);
}

}  // namespace kl
