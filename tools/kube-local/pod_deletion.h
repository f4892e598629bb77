// Graceful deletion of Pods as pure functions: what a DELETE does to a Pod
// (apiserver pkg/registry/rest/delete.go BeforeDelete with
// pkg/registry/core/pod/strategy.go CheckGracefulDelete, as
// pkg/registry/generic/registry/store.go Delete applies them) and how long
// the kubelet then gives the containers between SIGTERM and SIGKILL.
//
// kube-local's one departure: a Pod whose containers are not running as
// processes (a simulated Pod, or an exec Pod not started yet) has nothing a
// kubelet would have to stop, so it is treated as a Pod on no node and goes
// at once, as it always did here.
#pragma once
#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

namespace kl {

using json = nlohmann::json;

struct PodDeletion {
  enum class Kind {
    // BeforeDelete answered (false, false): finalizers alone decide (kept with
    // deletionTimestamp now and grace 0) or the Pod goes now.
    kNotGraceful,
    // deletionTimestamp and deletionGracePeriodSeconds become these; with
    // grace 0 the Pod goes now unless finalizers keep it.
    kGraceful,
    // Already being deleted and the request does not shorten the grace: nothing changes.
    kPending,
  };
  Kind kind = Kind::kNotGraceful;
  long long grace = 0;
  std::string deletion_timestamp;
};

// `options` is the DeleteOptions body (gracePeriodSeconds, possibly absent or null);
// `containers_running`: whether the process kubelet runs the Pod's containers.
[[nodiscard]] PodDeletion plan_pod_deletion(const json& pod, const json& options, bool containers_running,
                                            std::chrono::system_clock::time_point now);

// pkg/kubelet/kuberuntime/kuberuntime_container.go killContainer (setTerminationGracePeriod,
// minimumGracePeriodInSeconds): the Pod's deletionGracePeriodSeconds, else
// spec.terminationGracePeriodSeconds, else 30; never less than 2 seconds.
[[nodiscard]] long long kubelet_grace_seconds(const json& pod);

}  // namespace kl
