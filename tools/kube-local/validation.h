// Built-in validation of kube-apiserver that kube-local enforces for every
// kind, as pure functions: object metadata (labels, annotations), the update
// rules of immutable fields, metav1.MicroTime decoding, and which
// ownerReferences need the OwnerReferencesPermissionEnforcement check.
// Messages are field.Error.Error() renderings, as kube-apiserver sends them.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kube-local/schema.h"

namespace kl {

using json = nlohmann::json;

// staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go
[[nodiscard]] std::vector<std::string> is_qualified_name(const std::string& value);
[[nodiscard]] std::vector<std::string> is_valid_label_value(const std::string& value);
[[nodiscard]] std::vector<std::string> is_dns1123_subdomain(const std::string& value);

// staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/validation/validation.go ValidateLabels:
// every error is reported at `path` itself (metadata.labels), not per key.
[[nodiscard]] std::vector<FieldError> validate_labels(const json& labels, const std::string& path);
// staging/src/k8s.io/apimachinery/pkg/api/validation/objectmeta.go ValidateAnnotations:
// keys are qualified names (case-insensitive), keys and values together at most 256 KiB.
[[nodiscard]] std::vector<FieldError> validate_annotations(const json& annotations, const std::string& path);
constexpr size_t kTotalAnnotationSizeLimitB = 256 * 1024;

// metadata.labels and .annotations of any object, plus the pod template's
// (spec.template.metadata) for the workload kinds, as ValidatePodTemplateSpec does.
[[nodiscard]] std::vector<FieldError> validate_object_meta(const std::string& gr, const json& obj);

// Update rules of built-in kinds that refuse a change (422 Invalid):
// ConfigMap/Secret `immutable` (pkg/apis/core/validation ValidateConfigMapUpdate,
// ValidateSecretUpdate) and apps/v1 Deployment spec.selector (pkg/apis/apps/validation
// ValidateDeploymentUpdate via ValidateImmutableField).
[[nodiscard]] std::vector<FieldError> validate_immutable_update(const std::string& gr, const json& obj, const json& old);

// metav1.MicroTime.UnmarshalJSON: time.Parse(RFC3339Micro, s). Returns Go's
// *time.ParseError text for a value that does not parse, or nullopt.
[[nodiscard]] std::optional<std::string> micro_time_error(const std::string& value);
// The MicroTime fields of a kind that fail to decode (Lease spec.acquireTime,
// spec.renewTime; events.k8s.io eventTime): the 400 BadRequest message body.
[[nodiscard]] std::optional<std::string> decode_error(const std::string& gr, const std::string& kind,
                                                      const std::string& version, const json& obj);

// plugin/pkg/admission/gc/gc_admission.go: do the ownerReferences change
// (isChangingOwnerReference), and which references newly set
// blockOwnerDeletion=true (newBlockingOwnerDeletionRefs).
[[nodiscard]] bool owner_references_change(const json& obj, const json* old);
[[nodiscard]] std::vector<json> new_blocking_owner_refs(const json& obj, const json* old);

}  // namespace kl
