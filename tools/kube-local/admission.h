// Admission webhooks as kube-apiserver calls them: every stored
// Mutating/ValidatingWebhookConfiguration whose rules, namespaceSelector and
// objectSelector match a request gets an admission.k8s.io/v1 AdmissionReview
// over HTTPS (server certificate checked against caBundle, timeoutSeconds and
// failurePolicy honoured). Mutating webhooks run first and may return a JSON
// patch; validating webhooks see the final object. Webhooks are reached by
// clientConfig.url (kube-local has no Services to route to).
#pragma once
#include <string>

#include "kube-local/api.h"

namespace kl {

struct AdmissionRequest {
  const ResourceType* type = nullptr;
  std::string subresource;
  std::string ns;
  std::string name;
  std::string operation;  // CREATE | UPDATE | DELETE
  const json* old_object = nullptr;
  UserInfo user;
  bool dry_run = false;
  // The kind of the object admission sees when it is not the resource's own:
  // an autoscaling/v1 Scale for the scale subresource. Empty: the resource's kind.
  std::string kind_api_version;
  std::string kind;
};

// Returns the object after every matching mutating webhook, or the refusal.
ApiResult<json> call_mutating_webhooks(const Store& store, const AdmissionRequest& req, json object);
// ValidatingAdmissionPolicies with their bindings: each validation's CEL
// expression sees object, oldObject and request (operation, userInfo,
// namespace, name, kind, resource, subResource and their request* twins,
// dryRun); a false result denies when the binding's validationActions
// include Deny. A subresource request matches only rules that name it
// (`statefulsets/scale`, `*/scale`, `statefulsets/*`, `*/*`), as
// kube-apiserver's matching does; a binding without resourceRules
// constrains nothing.
ApiResult<void> call_validating_admission_policies(const Store& store, const AdmissionRequest& req, const json& object);
// Ok when every matching validating webhook allows `object` (null for DELETE).
ApiResult<void> call_validating_webhooks(const Store& store, const AdmissionRequest& req, const json& object);

}  // namespace kl
