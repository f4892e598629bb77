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
};

// Returns the object after every matching mutating webhook, or the refusal.
ApiResult<json> call_mutating_webhooks(const Store& store, const AdmissionRequest& req, json object);
// ValidatingAdmissionPolicies with their bindings: each validation's CEL
// expression sees object, oldObject and request (operation, userInfo,
// namespace, name); a false result denies when the binding's
// validationActions include Deny.
ApiResult<void> call_validating_admission_policies(const Store& store, const AdmissionRequest& req, const json& object);
// Ok when every matching validating webhook allows `object` (null for DELETE).
ApiResult<void> call_validating_webhooks(const Store& store, const AdmissionRequest& req, const json& object);

}  // namespace kl
