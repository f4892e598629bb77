#include "kube-local/decode.h"

#include <map>

#include "kube-local/schema.h"
#include "kube-local/validation.h"

namespace kl {
namespace {

using Props = std::vector<std::pair<std::string, json>>;

// Any value: a leaf, or a structure whose contents kube-local does not check.
json any() { return {{"x-kubernetes-preserve-unknown-fields", true}}; }
json obj(const Props& props) {
  json p = json::object();
  for (const auto& [k, v] : props) p[k] = v;
  return {{"type", "object"}, {"properties", p}};
}
json leaves(std::initializer_list<const char*> names) {
  Props p;
  for (const char* n : names) p.emplace_back(n, any());
  return obj(p);
}
json with(json o, const Props& more) {
  for (const auto& [k, v] : more) o["properties"][k] = v;
  return o;
}
json arr(json items) { return {{"type", "array"}, {"items", std::move(items)}}; }
json map_of(json v) { return {{"type", "object"}, {"additionalProperties", std::move(v)}}; }

// k8s.io/apimachinery/pkg/apis/meta/v1 ObjectMeta, LabelSelector
const json& object_meta() {
  static const json s = with(leaves({"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
                                     "generation", "creationTimestamp", "deletionTimestamp",
                                     "deletionGracePeriodSeconds", "finalizers", "managedFields"}),
                             {{"labels", map_of(any())},
                              {"annotations", map_of(any())},
                              {"ownerReferences", arr(leaves({"apiVersion", "kind", "name", "uid", "controller",
                                                              "blockOwnerDeletion"}))}});
  return s;
}
json label_selector() {
  return obj({{"matchLabels", map_of(any())},
              {"matchExpressions", arr(leaves({"key", "operator", "values"}))}});
}

// k8s.io/api/core/v1 Container, PodSpec, PodTemplateSpec
json container() {
  static const json sc = with(leaves({"privileged", "seLinuxOptions", "windowsOptions", "runAsUser", "runAsGroup",
                                      "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
                                      "procMount", "seccompProfile", "appArmorProfile"}),
                              {{"capabilities", leaves({"add", "drop"})}});
  static const json env_var = with(leaves({"name", "value"}),
                                   {{"valueFrom", leaves({"fieldRef", "resourceFieldRef", "configMapKeyRef",
                                                          "secretKeyRef", "fileKeyRef"})}});
  return with(leaves({"name", "image", "command", "args", "workingDir", "envFrom", "resources", "resizePolicy",
                      "restartPolicy", "restartPolicyRules", "volumeDevices", "livenessProbe", "readinessProbe",
                      "startupProbe", "lifecycle", "terminationMessagePath", "terminationMessagePolicy",
                      "imagePullPolicy", "stdin", "stdinOnce", "tty", "targetContainerName"}),
              {{"ports", arr(leaves({"name", "hostPort", "containerPort", "protocol", "hostIP"}))},
               {"env", arr(env_var)},
               {"volumeMounts", arr(leaves({"name", "readOnly", "recursiveReadOnly", "mountPath", "subPath",
                                            "mountPropagation", "subPathExpr"}))},
               {"securityContext", sc}});
}
json pod_spec() {
  static const json s = [] {
    json volume = leaves({"name", "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo",
                          "secret", "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume",
                          "cinder", "cephfs", "flocker", "downwardAPI", "fc", "azureFile", "configMap",
                          "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "projected",
                          "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral", "image"});
    json pod_sc = leaves({"seLinuxOptions", "windowsOptions", "runAsUser", "runAsGroup", "runAsNonRoot",
                          "supplementalGroups", "supplementalGroupsPolicy", "fsGroup", "sysctls",
                          "fsGroupChangePolicy", "seccompProfile", "appArmorProfile", "seLinuxChangePolicy"});
    return with(leaves({"restartPolicy", "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy",
                        "nodeSelector", "serviceAccountName", "serviceAccount", "automountServiceAccountToken",
                        "nodeName", "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "imagePullSecrets",
                        "hostname", "subdomain", "affinity", "schedulerName", "tolerations", "hostAliases",
                        "priorityClassName", "priority", "dnsConfig", "readinessGates", "runtimeClassName",
                        "enableServiceLinks", "preemptionPolicy", "overhead", "topologySpreadConstraints",
                        "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates", "resourceClaims", "resources",
                        "hostnameOverride"}),
                {{"volumes", arr(volume)},
                 {"initContainers", arr(container())},
                 {"containers", arr(container())},
                 {"ephemeralContainers", arr(container())},
                 {"securityContext", pod_sc}});
  }();
  return s;
}
json pod_template() { return obj({{"metadata", object_meta()}, {"spec", pod_spec()}}); }

json kind_schema(const Props& top) {
  Props p = {{"apiVersion", any()}, {"kind", any()}, {"metadata", object_meta()}};
  p.insert(p.end(), top.begin(), top.end());
  return obj(p);
}

const std::map<std::string, json>& schemas() {
  static const std::map<std::string, json> s = [] {
    std::map<std::string, json> m;
    m["/configmaps"] = kind_schema({{"data", map_of(any())}, {"binaryData", map_of(any())}, {"immutable", any()}});
    m["/secrets"] = kind_schema({{"data", map_of(any())}, {"stringData", map_of(any())}, {"type", any()},
                                 {"immutable", any()}});
    m["/namespaces"] = kind_schema({{"spec", leaves({"finalizers"})}, {"status", any()}});
    m["/serviceaccounts"] = kind_schema({{"secrets", any()}, {"imagePullSecrets", any()},
                                         {"automountServiceAccountToken", any()}});
    m["/pods"] = kind_schema({{"spec", pod_spec()}, {"status", any()}});
    m["/services"] = kind_schema(
        {{"spec", with(leaves({"clusterIP", "clusterIPs", "type", "externalIPs", "sessionAffinity", "loadBalancerIP",
                               "loadBalancerSourceRanges", "externalName", "externalTrafficPolicy",
                               "healthCheckNodePort", "publishNotReadyAddresses", "sessionAffinityConfig",
                               "ipFamilies", "ipFamilyPolicy", "allocateLoadBalancerNodePorts", "loadBalancerClass",
                               "internalTrafficPolicy", "trafficDistribution"}),
                       {{"ports", arr(leaves({"name", "protocol", "appProtocol", "port", "targetPort", "nodePort"}))},
                        {"selector", map_of(any())}})},
         {"status", any()}});
    m["/persistentvolumeclaims"] = kind_schema(
        {{"spec", with(leaves({"accessModes", "resources", "volumeName", "storageClassName", "volumeMode",
                               "dataSource", "dataSourceRef", "volumeAttributesClassName"}),
                       {{"selector", label_selector()}})},
         {"status", any()}});
    m["/events"] = kind_schema({{"involvedObject", any()}, {"reason", any()}, {"message", any()}, {"source", any()},
                                {"firstTimestamp", any()}, {"lastTimestamp", any()}, {"count", any()},
                                {"type", any()}, {"eventTime", any()}, {"series", any()}, {"action", any()},
                                {"related", any()}, {"reportingComponent", any()}, {"reportingInstance", any()}});
    m["events.k8s.io/events"] = kind_schema(
        {{"eventTime", any()}, {"series", any()}, {"reportingController", any()}, {"reportingInstance", any()},
         {"action", any()}, {"reason", any()}, {"regarding", any()}, {"related", any()}, {"note", any()},
         {"type", any()}, {"deprecatedSource", any()}, {"deprecatedFirstTimestamp", any()},
         {"deprecatedLastTimestamp", any()}, {"deprecatedCount", any()}});
    m["batch/jobs"] = kind_schema(
        {{"spec", with(leaves({"parallelism", "completions", "activeDeadlineSeconds", "podFailurePolicy",
                               "successPolicy", "backoffLimit", "backoffLimitPerIndex", "maxFailedIndexes",
                               "manualSelector", "ttlSecondsAfterFinished", "completionMode", "suspend",
                               "podReplacementPolicy", "managedBy"}),
                       {{"selector", label_selector()}, {"template", pod_template()}})},
         {"status", any()}});
    m["apps/deployments"] = kind_schema(
        {{"spec", with(leaves({"replicas", "minReadySeconds", "revisionHistoryLimit", "paused",
                               "progressDeadlineSeconds"}),
                       {{"selector", label_selector()},
                        {"template", pod_template()},
                        {"strategy", with(leaves({"type"}), {{"rollingUpdate", leaves({"maxUnavailable", "maxSurge"})}})}})},
         {"status", any()}});
    m["apps/statefulsets"] = kind_schema(
        {{"spec", with(leaves({"replicas", "volumeClaimTemplates", "serviceName", "podManagementPolicy",
                               "updateStrategy", "revisionHistoryLimit", "minReadySeconds",
                               "persistentVolumeClaimRetentionPolicy", "ordinals"}),
                       {{"selector", label_selector()}, {"template", pod_template()}})},
         {"status", any()}});
    m["apps/replicasets"] = kind_schema(
        {{"spec", with(leaves({"replicas", "minReadySeconds"}),
                       {{"selector", label_selector()}, {"template", pod_template()}})},
         {"status", any()}});
    m["coordination.k8s.io/leases"] = kind_schema(
        {{"spec", leaves({"holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions",
                          "strategy", "preferredHolder"})}});
    m["networking.k8s.io/networkpolicies"] =
        kind_schema({{"spec", with(leaves({"ingress", "egress", "policyTypes"}), {{"podSelector", label_selector()}})}});
    m["policy/poddisruptionbudgets"] = kind_schema(
        {{"spec", with(leaves({"minAvailable", "maxUnavailable", "unhealthyPodEvictionPolicy"}),
                       {{"selector", label_selector()}})},
         {"status", any()}});
    m["networking.k8s.io/ingresses"] =
        kind_schema({{"spec", leaves({"ingressClassName", "defaultBackend", "tls", "rules"})}, {"status", any()}});
    const json rule = leaves({"verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"});
    m["rbac.authorization.k8s.io/roles"] = kind_schema({{"rules", arr(rule)}});
    m["rbac.authorization.k8s.io/clusterroles"] = kind_schema({{"rules", arr(rule)}, {"aggregationRule", any()}});
    const json subject = leaves({"kind", "apiGroup", "name", "namespace"});
    const json role_ref = leaves({"apiGroup", "kind", "name"});
    m["rbac.authorization.k8s.io/rolebindings"] = kind_schema({{"subjects", arr(subject)}, {"roleRef", role_ref}});
    m["rbac.authorization.k8s.io/clusterrolebindings"] = kind_schema({{"subjects", arr(subject)}, {"roleRef", role_ref}});
    return m;
  }();
  return s;
}

// events.k8s.io/v1 field -> core/v1 field; the rest share their names.
const std::vector<std::pair<std::string, std::string>>& event_renames() {
  static const std::vector<std::pair<std::string, std::string>> r = {
      {"regarding", "involvedObject"},
      {"note", "message"},
      {"reportingController", "reportingComponent"},
      {"deprecatedSource", "source"},
      {"deprecatedFirstTimestamp", "firstTimestamp"},
      {"deprecatedLastTimestamp", "lastTimestamp"},
      {"deprecatedCount", "count"}};
  return r;
}

}  // namespace

const json& builtin_schema(const ResourceType& type) {
  static const json null;
  if (type.custom) return null;
  // events.k8s.io shares core's storage; its schema is its own API's.
  auto it = schemas().find(type.group + "/" + type.resource);
  return it == schemas().end() ? null : it->second;
}

void prune_builtin(const ResourceType& type, json& o, std::vector<std::string>* unknown) {
  const json& schema = builtin_schema(type);
  if (!schema.is_object() || !o.is_object()) return;
  std::vector<std::string> rest, in_meta;
  prune(o, schema, &rest, true);
  if (o.contains("metadata") && o["metadata"].is_object()) prune(o["metadata"], object_meta(), &in_meta, false);
  if (!unknown) return;
  // In the order a decoder meets them in a body with sorted keys: metadata's among the top-level fields.
  size_t i = 0;
  for (; i < rest.size() && rest[i].substr(0, rest[i].find_first_of(".[")) < "metadata"; ++i) unknown->push_back(rest[i]);
  for (const auto& f : in_meta) unknown->push_back("metadata." + f);
  for (; i < rest.size(); ++i) unknown->push_back(rest[i]);
}

ApiResult<void> decode_builtin(const ResourceType& type, json& o, const CallContext& ctx) {
  if (auto err = decode_error(type.group + "/" + type.resource, type.kind, type.version, o))
    return std::unexpected(ApiError{400, "BadRequest", *err});
  std::vector<std::string> unknown;
  prune_builtin(type, o, &unknown);
  if (!unknown.empty()) {
    if (ctx.field_validation == "Strict") {
      // create.go/update.go transformDecodeError: "<Kind> in version "<v>" cannot be handled as a <Kind>: ...".
      std::string msg = type.kind + " in version \"" + type.version + "\" cannot be handled as a " + type.kind +
                        ": strict decoding error: ";
      for (size_t i = 0; i < unknown.size(); ++i) msg += (i ? ", " : "") + std::string("unknown field \"") + unknown[i] + "\"";
      return std::unexpected(ApiError{400, "BadRequest", msg});
    }
    if (ctx.field_validation == "Warn" && ctx.warnings)
      for (const auto& u : unknown) ctx.warnings->push_back("unknown field \\\"" + u + "\\\"");
  }
  if (type.group == "events.k8s.io") o = event_to_core(o);
  return {};
}

json event_to_core(const json& event) {
  json out = event;
  for (const auto& [from, to] : event_renames())
    if (out.contains(from)) {
      out[to] = out[from];
      out.erase(from);
    }
  return out;
}

json core_to_event(const json& event) {
  json out = event;
  for (const auto& [to, from] : event_renames()) {
    if (out.contains(from)) out[to] = out[from];
    out.erase(from);
  }
  // events.k8s.io/v1 eventTime has no omitempty: a core Event without one shows null.
  if (!out.contains("eventTime")) out["eventTime"] = nullptr;
  return out;
}

}  // namespace kl
