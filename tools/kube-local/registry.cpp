#include "kube-local/registry.h"

#include <algorithm>
#include <set>
#include <mutex>

namespace kl {
namespace {

const std::vector<std::string> kCrudVerbs = {"create", "delete", "deletecollection", "get",
                                             "list",   "patch",  "update",           "watch"};

ResourceType builtin(std::string group, std::string version, std::string resource, std::string kind,
                     bool namespaced, std::vector<std::string> short_names = {},
                     std::vector<std::string> subresources = {}, bool generation = false) {
  ResourceType t;
  t.group = std::move(group);
  t.version = std::move(version);
  t.resource = std::move(resource);
  t.kind = std::move(kind);
  t.singular = t.kind;
  std::transform(t.singular.begin(), t.singular.end(), t.singular.begin(), ::tolower);
  t.namespaced = namespaced;
  t.short_names = std::move(short_names);
  t.subresources = std::move(subresources);
  t.generation = generation;
  t.verbs = kCrudVerbs;
  // `kubectl get all`: the kinds whose storage reports Categories() {"all"} (pkg/registry/*/storage).
  static const std::set<std::string> kAll = {"/pods", "/services", "batch/jobs", "apps/deployments",
                                             "apps/statefulsets", "apps/replicasets"};
  if (kAll.count(t.gr())) t.categories = {"all"};
  return t;
}

ResourceType review(std::string group, std::string resource, std::string kind, bool namespaced = false) {
  ResourceType t = builtin(std::move(group), "v1", std::move(resource), std::move(kind), namespaced);
  t.verbs = {"create"};
  t.virtual_only = true;
  return t;
}

}  // namespace

bool ResourceType::has_subresource(const std::string& s) const {
  return std::find(subresources.begin(), subresources.end(), s) != subresources.end();
}

Registry::Registry() {
  add(builtin("", "v1", "namespaces", "Namespace", false, {"ns"}, {"status", "finalize"}));
  add(builtin("", "v1", "secrets", "Secret", true));
  add(builtin("", "v1", "configmaps", "ConfigMap", true, {"cm"}));
  add(builtin("", "v1", "pods", "Pod", true, {"po"}, {"status", "log"}));
  add(builtin("", "v1", "services", "Service", true, {"svc"}, {"status"}));
  add(builtin("", "v1", "events", "Event", true, {"ev"}));
  add(builtin("", "v1", "serviceaccounts", "ServiceAccount", true, {"sa"}, {"token"}));
  add(builtin("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true, {"pvc"}, {"status"}));
  add(builtin("batch", "v1", "jobs", "Job", true, {}, {"status"}, true));
  add(builtin("apps", "v1", "deployments", "Deployment", true, {"deploy"}, {"status", "scale"}, true));
  add(builtin("apps", "v1", "statefulsets", "StatefulSet", true, {"sts"}, {"status", "scale"}, true));
  add(builtin("apps", "v1", "replicasets", "ReplicaSet", true, {"rs"}, {"status", "scale"}, true));
  add(builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, {"netpol"}, {}, true));
  add(builtin("networking.k8s.io", "v1", "ingresses", "Ingress", true, {"ing"}, {"status"}, true));
  add(builtin("coordination.k8s.io", "v1", "leases", "Lease", true));
  // Stored and validated only: nothing evicts pods here, so no budget is ever consulted.
  add(builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, {"pdb"}, {"status"}, true));
  {
    ResourceType events = builtin("events.k8s.io", "v1", "events", "Event", true, {"ev"});
    events.storage = "/events";  // pkg/registry/events: the core Event storage, converted
    add(std::move(events));
  }
  add(builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true));
  add(builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true));
  add(builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false));
  add(builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false));
  add(review("authorization.k8s.io", "selfsubjectaccessreviews", "SelfSubjectAccessReview"));
  add(review("authorization.k8s.io", "subjectaccessreviews", "SubjectAccessReview"));
  add(review("authorization.k8s.io", "localsubjectaccessreviews", "LocalSubjectAccessReview", true));
  add(review("authentication.k8s.io", "tokenreviews", "TokenReview"));
  add(review("authentication.k8s.io", "selfsubjectreviews", "SelfSubjectReview"));
  add(builtin("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
              "MutatingWebhookConfiguration", false, {}, {}, true));
  add(builtin("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations",
              "ValidatingWebhookConfiguration", false, {}, {}, true));
  add(builtin("admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
              "ValidatingAdmissionPolicy", false, {}, {"status"}, true));
  add(builtin("admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings",
              "ValidatingAdmissionPolicyBinding", false, {}, {}, true));
  add(builtin("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
              false, {"crd", "crds"}, {"status"}, true));
}

void Registry::add(ResourceType t) { types_.push_back(std::make_shared<const ResourceType>(std::move(t))); }

TypePtr Registry::find(const std::string& group, const std::string& version, const std::string& resource) const {
  std::shared_lock lock(mu_);
  for (const auto& t : types_)
    if (t->group == group && t->version == version && t->resource == resource) return t;
  return nullptr;
}

TypePtr Registry::find_kind(const std::string& api_version, const std::string& kind) const {
  std::shared_lock lock(mu_);
  for (const auto& t : types_)
    if (t->api_version() == api_version && t->kind == kind) return t;
  return nullptr;
}

TypePtr Registry::find_gr(const std::string& gr) const {
  std::shared_lock lock(mu_);
  for (const auto& t : types_)
    if (t->gr() == gr) return t;
  return nullptr;
}

std::vector<TypePtr> Registry::all() const {
  std::shared_lock lock(mu_);
  return types_;
}

void Registry::set_crd(const std::string& crd_name, const json& crd) {
  std::unique_lock lock(mu_);
  std::erase_if(types_, [&](const TypePtr& t) { return t->custom && t->crd_name == crd_name; });
  if (crd.is_null()) return;
  const json& spec = crd.at("spec");
  const json& names = spec.at("names");
  for (const auto& v : spec.value("versions", json::array())) {
    if (!v.value("served", false)) continue;
    ResourceType t;
    t.custom = true;
    t.crd_name = crd_name;
    t.group = spec.value("group", "");
    t.version = v.value("name", "");
    t.resource = names.value("plural", "");
    t.kind = names.value("kind", "");
    t.singular = names.value("singular", "");
    if (t.singular.empty()) {
      t.singular = t.kind;
      std::transform(t.singular.begin(), t.singular.end(), t.singular.begin(), ::tolower);
    }
    t.namespaced = spec.value("scope", "Namespaced") == "Namespaced";
    t.short_names = names.value("shortNames", std::vector<std::string>{});
    t.categories = names.value("categories", std::vector<std::string>{});
    t.generation = true;
    t.verbs = kCrudVerbs;
    if (v.contains("subresources") && v["subresources"].contains("status")) t.subresources.push_back("status");
    if (v.contains("subresources") && v["subresources"].contains("scale")) t.subresources.push_back("scale");
    if (v.contains("schema")) t.schema = v["schema"].value("openAPIV3Schema", json::object());
    t.printer_columns = v.value("additionalPrinterColumns", json::array());
    types_.push_back(std::make_shared<const ResourceType>(std::move(t)));
  }
}

}  // namespace kl
