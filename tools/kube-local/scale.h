// The scale subresource (/scale of Deployments, StatefulSets, ReplicaSets and
// of custom resources whose CRD declares subresources.scale) as pure
// functions: the autoscaling/v1 Scale a parent shows, what a written Scale
// changes in its parent, and the Scale's own validation and table.
// kube-apiserver: pkg/registry/apps/{deployment,statefulset,replicaset}/storage/storage.go
// (ScaleREST, scaleFrom*, scaleUpdatedObjectInfo.UpdatedObject) and
// apiextensions-apiserver pkg/registry/customresource/etcd.go (ScaleREST with
// specReplicasPath, statusReplicasPath, labelSelectorPath).
#pragma once
#include <chrono>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kube-local/schema.h"

namespace kl {

using json = nlohmann::json;

// Where a kind keeps what its Scale shows: JSON paths in the CRD's
// `.spec.replicas` form; the built-in kinds' are the defaults.
struct ScalePaths {
  std::string spec_replicas = ".spec.replicas";
  std::string status_replicas = ".status.replicas";
  std::string label_selector;  // empty: the built-in kinds' spec.selector (a LabelSelector object)
};

// A CRD's subresources.scale for one served version, or nullopt when it declares none.
[[nodiscard]] std::optional<ScalePaths> crd_scale_paths(const json& crd, const std::string& version);

// metav1.LabelSelectorAsSelector(sel).String(): requirements sorted by key,
// `k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)` (values sorted), `k`, `!k`;
// an empty or absent selector is "".
[[nodiscard]] std::string selector_string(const json& selector);

// The Scale of `parent` (a stored object), or why it has none: a CRD's
// specReplicasPath without a value or a value that is not an integer
// (customresource ScaleREST.Get answers that as an internal error).
[[nodiscard]] std::expected<json, std::string> scale_of(const json& parent, const ScalePaths& paths = {});

// autoscaling validation.ValidateScale: spec.replicas >= 0.
[[nodiscard]] std::vector<FieldError> validate_scale(const json& scale);

// The Scale body's spec.replicas as autoscaling/v1 decodes it (int32, omitempty: absent is 0),
// or the decoder's 400 message.
[[nodiscard]] std::expected<long long, std::string> scale_replicas(const json& scale);

// `parent` with spec.replicas (at the kind's path) set to `replicas`.
[[nodiscard]] json with_replicas(const json& parent, long long replicas, const ScalePaths& paths = {});

// pkg/printers/internalversion/printers.go printScale: Name, Desired, Available, Age.
[[nodiscard]] json scale_table(const json& scale, std::chrono::system_clock::time_point now,
                               const std::string& include_object);

}  // namespace kl
