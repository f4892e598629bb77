// What kube-apiserver's decoder does to a built-in kind's body before
// anything else sees it: MicroTime fields must parse (else 400), fields the
// Go type does not have are dropped (a warning under fieldValidation=Warn,
// 400 "strict decoding error" under Strict: apiserver/pkg/endpoints/handlers
// and the strict JSON serializer), and an events.k8s.io/v1 Event is converted
// to the one stored Event (pkg/apis/events/v1/conversion.go).
#pragma once
#include <string>
#include <vector>

#include "kube-local/api.h"

namespace kl {

// The structural schema of a built-in kind (properties for every field the
// Go type has; deep or rarely used structures preserve their contents), or
// null for kinds kube-local does not describe.
[[nodiscard]] const json& builtin_schema(const ResourceType& type);

// Removes unknown fields from `obj` (metadata included); their paths go to `unknown`.
void prune_builtin(const ResourceType& type, json& obj, std::vector<std::string>* unknown);

// Decodes `obj` (a request body, or a patched object) for `type` in place.
ApiResult<void> decode_builtin(const ResourceType& type, json& obj, const CallContext& ctx);

// pkg/apis/events/v1/conversion.go, on the JSON field names: events.k8s.io/v1 <-> core/v1.
[[nodiscard]] json event_to_core(const json& event);
[[nodiscard]] json core_to_event(const json& event);

}  // namespace kl
