// The StatefulSet controller's decisions as pure functions
// (pkg/controller/statefulset/stateful_set_control.go updateStatefulSet,
// processReplica, processCondemned, computeReplicaStatus; stateful_set_utils.go):
// which ordinals to create and which pods to delete now, and the replica
// counts of the set's status. What kube-local leaves out: revisions and
// rolling updates (every pod counts as current and updated), and replacing a
// pod that has Succeeded or Failed (the kubelet would restart its container).
#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kl {

using json = nlohmann::json;

// getParentNameAndOrdinal: the ordinal of `<set>-<n>`, nullopt for any other name.
[[nodiscard]] std::optional<int> stateful_ordinal(const std::string& set, const std::string& pod_name);

// podutil.IsPodReady: condition Ready is True.
[[nodiscard]] bool pod_ready(const json& pod);
// isRunningAndReady: phase Running and Ready.
[[nodiscard]] bool running_and_ready(const json& pod);
// isTerminating: deletionTimestamp set.
[[nodiscard]] bool terminating(const json& pod);

struct StatefulSetPlan {
  std::vector<int> create;          // ordinals whose pod is made now, in this order
  std::vector<std::string> remove;  // pods deleted now, in this order
};

// `pods` are the set's own (controller reference to it). With the default
// podManagementPolicy OrderedReady one step at a time: the lowest missing
// ordinal is made only when every lower one is Running, Ready and not
// terminating; a pod whose predecessor is terminating waits for it to be gone;
// ordinals at or above spec.replicas go from the highest down, each only once
// the one before it is gone. Parallel makes and deletes all at once.
[[nodiscard]] StatefulSetPlan plan_stateful_set(const json& set, const std::vector<json>& pods);

// status with replicas (pods that exist and have a phase), readyReplicas
// (Running and Ready), availableReplicas (ready for minReadySeconds),
// currentReplicas and updatedReplicas (existing, not terminating) and
// observedGeneration; the other fields of `status` are kept. Zero counts of
// the omitempty fields are left out, as apps/v1 serializes them.
[[nodiscard]] json stateful_set_status(const json& set, const std::vector<json>& pods,
                                       std::chrono::system_clock::time_point now);

}  // namespace kl
