#include "kube-local/builtin_admission.h"

#include "kube-local/pod_security.h"
#include "kube-local/validation.h"

namespace kl {
namespace {

std::string qualified(const ResourceType& t) { return t.group.empty() ? t.resource : t.resource + "." + t.group; }

// apierrors.NewForbidden(groupResource, name, err)
ApiError forbidden(const ResourceType& t, const std::string& name, const std::string& why) {
  json details{{"name", name}, {"kind", t.resource}};
  if (!t.group.empty()) details["group"] = t.group;
  return {403, "Forbidden", qualified(t) + (name.empty() ? "" : " \"" + name + "\"") + " is forbidden: " + why, details};
}

// A Warning header's text is a quoted string: escape what would end it.
std::string header_text(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

const json& member(const json& o, const char* k) {
  static const json null;
  if (!o.is_object()) return null;
  auto it = o.find(k);
  return it == o.end() ? null : *it;
}

// isSignificantPodUpdate: container changes other than images, or a different container count.
bool significant_pod_update(const json& spec, const json& old_spec) {
  for (const char* list : {"initContainers", "containers", "ephemeralContainers"}) {
    json a = member(spec, list), b = member(old_spec, list);
    if (a.is_null()) a = json::array();
    if (b.is_null()) b = json::array();
    if (!a.is_array() || !b.is_array() || a.size() != b.size()) return true;
    for (size_t i = 0; i < a.size(); ++i) {
      json x = a[i], y = b[i];
      if (x.is_object()) x.erase("image");
      if (y.is_object()) y.erase("image");
      if (x != y) return true;
    }
  }
  json a = spec, b = old_spec;
  for (json* s : {&a, &b})
    if (s->is_object())
      for (const char* k : {"initContainers", "containers", "ephemeralContainers", "nodeName", "activeDeadlineSeconds",
                            "tolerations", "terminationGracePeriodSeconds", "schedulingGates"})
        s->erase(k);
  return a != b;
}

}  // namespace

ApiResult<void> admit_pod_security(const Store& store, const ResourceType& type, const std::string& op, const json& obj,
                                   const json* old, std::vector<std::string>* warnings) {
  const std::string gr = type.gr();
  const bool pod = gr == "/pods";
  const bool controller = gr == "batch/jobs" || gr == "apps/deployments" || gr == "apps/statefulsets" ||
                          gr == "apps/replicasets" || gr == "apps/daemonsets";
  if ((!pod && !controller) || (op != "CREATE" && op != "UPDATE")) return {};
  const json& meta = member(obj, "metadata");
  const std::string ns = member(meta, "namespace").is_string() ? member(meta, "namespace").get<std::string>() : "";
  auto nsobj = store.get("/namespaces", "", ns);
  if (!nsobj) return {};
  const json labels = member((*nsobj)["metadata"], "labels");
  const auto enforce = pod_security_level(labels, "enforce");
  const auto warn = pod_security_level(labels, "warn");
  if (!enforce && !warn) return {};
  json pod_meta, spec, old_spec;
  if (pod) {
    pod_meta = meta;
    spec = member(obj, "spec");
    if (old) old_spec = member(*old, "spec");
    if (old && !significant_pod_update(spec, old_spec)) return {};
  } else {
    const json& tmpl = member(member(obj, "spec"), "template");
    pod_meta = member(tmpl, "metadata");
    spec = member(tmpl, "spec");
    // ValidatePodController: an update that leaves the pod template alone is allowed.
    if (old && member(member(*old, "spec"), "template") == member(member(obj, "spec"), "template")) return {};
  }
  std::string name = member(meta, "name").is_string() ? member(meta, "name").get<std::string>() : "";
  if (name.empty() && member(meta, "generateName").is_string()) name = member(meta, "generateName").get<std::string>();
  std::string enforce_violations;
  if (enforce) {
    enforce_violations = pod_security_violations(enforce->level, pod_meta, spec);
    if (!enforce_violations.empty()) {
      if (pod)
        return std::unexpected(
            forbidden(type, name, "violates PodSecurity \"" + enforce->str() + "\": " + enforce_violations));
      if (warnings)
        warnings->push_back(header_text("would violate PodSecurity \"" + enforce->str() + "\": " + enforce_violations));
    }
  }
  // The warn level adds its own warning; the same text twice is one warning (the recorder dedups).
  if (warn && !(enforce && warn->str() == enforce->str())) {
    const std::string v = pod_security_violations(warn->level, pod_meta, spec);
    if (!v.empty() && warnings) warnings->push_back(header_text("would violate PodSecurity \"" + warn->str() + "\": " + v));
  }
  return {};
}

ApiResult<void> admit_owner_references(const Registry& registry, const ResourceType& type, const std::string& op,
                                       const std::string& subresource, const json& obj, const json* old,
                                       const Authorize& authorize) {
  if (op != "CREATE" && op != "UPDATE") return {};
  if (type.gr() == "/pods" && subresource == "status") return {};  // the plugin's whitelist
  if (!owner_references_change(obj, old)) return {};
  const json& meta = member(obj, "metadata");
  std::string name = member(meta, "name").is_string() ? member(meta, "name").get<std::string>() : "";
  if (name.empty() && member(meta, "generateName").is_string()) name = member(meta, "generateName").get<std::string>();
  const std::string ns = type.namespaced && member(meta, "namespace").is_string()
                             ? member(meta, "namespace").get<std::string>()
                             : "";
  if (op == "UPDATE" && !authorize("delete", type.group, type.resource, subresource, ns, name))
    return std::unexpected(forbidden(type, name, "cannot set an ownerRef on a resource you can't delete: , <nil>"));
  for (const auto& ref : new_blocking_owner_refs(obj, old)) {
    const std::string api_version = member(ref, "apiVersion").is_string() ? member(ref, "apiVersion").get<std::string>() : "";
    const std::string kind = member(ref, "kind").is_string() ? member(ref, "kind").get<std::string>() : "";
    auto owner = registry.find_kind(api_version, kind);
    if (!owner)
      return std::unexpected(forbidden(type, name, "cannot set blockOwnerDeletion in this case because cannot find "
                                                   "RESTMapping for APIVersion " + api_version + " Kind " + kind +
                                                   ": no matches for kind \"" + kind + "\" in version \"" +
                                                   api_version + "\""));
    const std::string owner_name = member(ref, "name").is_string() ? member(ref, "name").get<std::string>() : "";
    // ownerRefToDeleteAttributeRecords: update on <owner>/finalizers, in the dependent's namespace.
    if (!authorize("update", owner->group, owner->resource, "finalizers", ns, owner_name))
      return std::unexpected(forbidden(type, name, "cannot set blockOwnerDeletion if an ownerReference refers to a "
                                                   "resource you can't set finalizers on: , <nil>"));
  }
  return {};
}

}  // namespace kl
