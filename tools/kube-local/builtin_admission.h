// kube-apiserver's built-in validating admission plugins that kube-local
// runs after field validation (as createValidation/updateValidation run after
// the strategy's Validate in registry/generic/registry/store.go):
// PodSecurity and OwnerReferencesPermissionEnforcement.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "kube-local/api.h"

namespace kl {

// staging/src/k8s.io/pod-security-admission/admission/admission.go: a Pod
// that violates its namespace's enforce level is refused (403); a workload
// whose pod template would (ValidatePodController) only gets a warning, as do
// violations of the warn level. `warnings` receives header-ready text.
ApiResult<void> admit_pod_security(const Store& store, const ResourceType& type, const std::string& op, const json& obj,
                                   const json* old, std::vector<std::string>* warnings);

// An authorization check as the admission plugin asks it (through RBAC).
using Authorize = std::function<bool(const std::string& verb, const std::string& group, const std::string& resource,
                                     const std::string& subresource, const std::string& ns, const std::string& name)>;

// plugin/pkg/admission/gc/gc_admission.go: changing ownerReferences on an
// update needs `delete` on the object; setting blockOwnerDeletion=true needs
// `update` on the owner's finalizers subresource.
ApiResult<void> admit_owner_references(const Registry& registry, const ResourceType& type, const std::string& op,
                                       const std::string& subresource, const json& obj, const json* old,
                                       const Authorize& authorize);

}  // namespace kl
