#include "kube-local/protobuf.h"

#include <cstdint>
#include <chrono>
#include <map>
#include <utility>

#include "common/encoding.h"
#include "common/timefmt.h"

namespace kl {
namespace {

using json = nlohmann::json;

struct Schema;
struct Field {
  enum class Kind {
    kString,          // string; "" is dropped (omitempty) unless `keep`
    kBytes,           // bytes, as base64
    kInt,             // int32/int64 varint; 0 is dropped unless `keep` (a pointer field)
    kBool,            // bool varint; false is dropped unless `keep` (a pointer field)
    kMessage,         // a nested message
    kInline,          // an embedded Go struct (`json:",inline"`): its fields join the parent's
    kRepeatedMessage,
    kRepeatedString,
    kRepeatedInt,     // packed or not
    kMapString,       // map<string, string>
    kMapBytes,        // map<string, bytes>
    kMapQuantity,     // map<string, resource.Quantity> (ResourceList)
    kIntOrString,     // k8s.io.apimachinery.pkg.util.intstr.IntOrString
    kQuantity,        // k8s.io.apimachinery.pkg.api.resource.Quantity
    kTime,            // k8s.io.apimachinery.pkg.apis.meta.v1.Time
  };
  std::string name;
  Kind kind;
  const Schema* message = nullptr;
  bool keep = false;
};
struct Schema {
  std::map<uint32_t, Field> fields;
};

using K = Field::Kind;
// Go's JSON for these types: a non-pointer scalar with omitempty vanishes at its
// zero value, a pointer one (proto2 `optional` that the Go struct holds as *T)
// is written whenever it was set, even to 0/false/"". gogo's Marshal writes
// every non-pointer field, so the zero values arrive on the wire and are
// dropped here as kube-apiserver's JSON would drop them.
Field str(const char* n) { return {n, K::kString}; }
Field strp(const char* n) { return {n, K::kString, nullptr, true}; }
Field i(const char* n) { return {n, K::kInt}; }
Field ip(const char* n) { return {n, K::kInt, nullptr, true}; }
Field b(const char* n) { return {n, K::kBool}; }
Field bp(const char* n) { return {n, K::kBool, nullptr, true}; }
Field msg(const char* n, const Schema* s) { return {n, K::kMessage, s}; }
Field inl(const Schema* s) { return {"", K::kInline, s}; }
Field rep(const char* n, const Schema* s) { return {n, K::kRepeatedMessage, s}; }
Field rstr(const char* n) { return {n, K::kRepeatedString}; }
Field rint(const char* n) { return {n, K::kRepeatedInt}; }
Field mstr(const char* n) { return {n, K::kMapString}; }
Field mqty(const char* n) { return {n, K::kMapQuantity}; }
Field ios(const char* n) { return {n, K::kIntOrString}; }
Field qty(const char* n) { return {n, K::kQuantity}; }
Field tm(const char* n) { return {n, K::kTime}; }

// --- k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto -------------------
const Schema kOwnerReference{{{1, str("kind")}, {3, str("name")}, {4, str("uid")}, {5, str("apiVersion")},
                              {6, bp("controller")}, {7, bp("blockOwnerDeletion")}}};
const Schema kObjectMeta{{{1, str("name")}, {2, str("generateName")}, {3, str("namespace")},
                          {4, str("selfLink")}, {5, str("uid")}, {6, str("resourceVersion")}, {7, i("generation")},
                          {8, tm("creationTimestamp")}, {9, tm("deletionTimestamp")},
                          {10, ip("deletionGracePeriodSeconds")}, {11, mstr("labels")}, {12, mstr("annotations")},
                          {13, rep("ownerReferences", &kOwnerReference)}, {14, rstr("finalizers")}}};
const Schema kLabelSelectorRequirement{{{1, str("key")}, {2, str("operator")}, {3, rstr("values")}}};
const Schema kLabelSelector{{{1, mstr("matchLabels")}, {2, rep("matchExpressions", &kLabelSelectorRequirement)}}};
const Schema kEmpty{};  // a message whose fields kube-local does not keep (statuses: the server owns them)

// --- k8s.io/api/core/v1/generated.proto --------------------------------------
const Schema kLocalObjectReference{{{1, str("name")}}};
const Schema kObjectReference{{{1, str("kind")}, {2, str("namespace")}, {3, str("name")}, {4, str("uid")},
                               {5, str("apiVersion")}, {6, str("resourceVersion")}, {7, str("fieldPath")}}};
const Schema kObjectFieldSelector{{{1, str("apiVersion")}, {2, str("fieldPath")}}};
const Schema kResourceFieldSelector{{{1, str("containerName")}, {2, str("resource")}, {3, qty("divisor")}}};
const Schema kKeySelector{{{1, inl(&kLocalObjectReference)}, {2, str("key")}, {3, bp("optional")}}};
const Schema kEnvVarSource{{{1, msg("fieldRef", &kObjectFieldSelector)},
                            {2, msg("resourceFieldRef", &kResourceFieldSelector)},
                            {3, msg("configMapKeyRef", &kKeySelector)}, {4, msg("secretKeyRef", &kKeySelector)}}};
const Schema kEnvVar{{{1, str("name")}, {2, str("value")}, {3, msg("valueFrom", &kEnvVarSource)}}};
const Schema kEnvSource{{{1, inl(&kLocalObjectReference)}, {2, bp("optional")}}};
const Schema kEnvFromSource{{{1, str("prefix")}, {2, msg("configMapRef", &kEnvSource)},
                             {3, msg("secretRef", &kEnvSource)}}};
const Schema kContainerPort{{{1, str("name")}, {2, i("hostPort")}, {3, i("containerPort")}, {4, str("protocol")},
                             {5, str("hostIP")}}};
const Schema kResourceClaim{{{1, str("name")}, {2, str("request")}}};
const Schema kResourceRequirements{{{1, mqty("limits")}, {2, mqty("requests")},
                                    {3, rep("claims", &kResourceClaim)}}};
const Schema kVolumeMount{{{1, str("name")}, {2, b("readOnly")}, {3, str("mountPath")}, {4, str("subPath")},
                           {5, strp("mountPropagation")}, {6, str("subPathExpr")}, {7, strp("recursiveReadOnly")}}};
const Schema kCapabilities{{{1, rstr("add")}, {2, rstr("drop")}}};
const Schema kSELinuxOptions{{{1, str("user")}, {2, str("role")}, {3, str("type")}, {4, str("level")}}};
const Schema kSeccompProfile{{{1, str("type")}, {2, strp("localhostProfile")}}};
const Schema kAppArmorProfile{{{1, str("type")}, {2, strp("localhostProfile")}}};
const Schema kSecurityContext{{{1, msg("capabilities", &kCapabilities)}, {2, bp("privileged")},
                               {3, msg("seLinuxOptions", &kSELinuxOptions)}, {4, ip("runAsUser")},
                               {5, bp("runAsNonRoot")}, {6, bp("readOnlyRootFilesystem")},
                               {7, bp("allowPrivilegeEscalation")}, {8, ip("runAsGroup")}, {9, strp("procMount")},
                               {11, msg("seccompProfile", &kSeccompProfile)},
                               {12, msg("appArmorProfile", &kAppArmorProfile)}}};
const Schema kExecAction{{{1, rstr("command")}}};
const Schema kHTTPHeader{{{1, str("name")}, {2, str("value")}}};
const Schema kHTTPGetAction{{{1, str("path")}, {2, ios("port")}, {3, str("host")}, {4, str("scheme")},
                            {5, rep("httpHeaders", &kHTTPHeader)}}};
const Schema kTCPSocketAction{{{1, ios("port")}, {2, str("host")}}};
const Schema kGRPCAction{{{1, i("port")}, {2, strp("service")}}};
const Schema kProbeHandler{{{1, msg("exec", &kExecAction)}, {2, msg("httpGet", &kHTTPGetAction)},
                            {3, msg("tcpSocket", &kTCPSocketAction)}, {4, msg("grpc", &kGRPCAction)}}};
const Schema kProbe{{{1, inl(&kProbeHandler)}, {2, i("initialDelaySeconds")}, {3, i("timeoutSeconds")},
                     {4, i("periodSeconds")}, {5, i("successThreshold")}, {6, i("failureThreshold")},
                     {7, ip("terminationGracePeriodSeconds")}}};
const Schema kContainer{{{1, str("name")}, {2, str("image")}, {3, rstr("command")}, {4, rstr("args")},
                         {5, str("workingDir")}, {6, rep("ports", &kContainerPort)}, {7, rep("env", &kEnvVar)},
                         {8, msg("resources", &kResourceRequirements)}, {9, rep("volumeMounts", &kVolumeMount)},
                         {10, msg("livenessProbe", &kProbe)}, {11, msg("readinessProbe", &kProbe)},
                         {13, str("terminationMessagePath")}, {14, str("imagePullPolicy")},
                         {15, msg("securityContext", &kSecurityContext)}, {16, b("stdin")}, {17, b("stdinOnce")},
                         {18, b("tty")}, {19, rep("envFrom", &kEnvFromSource)},
                         {20, str("terminationMessagePolicy")}, {22, msg("startupProbe", &kProbe)},
                         {24, strp("restartPolicy")}}};
const Schema kKeyToPath{{{1, str("key")}, {2, str("path")}, {3, ip("mode")}}};
const Schema kHostPathVolumeSource{{{1, str("path")}, {2, strp("type")}}};
const Schema kEmptyDirVolumeSource{{{1, str("medium")}, {2, qty("sizeLimit")}}};
const Schema kSecretVolumeSource{{{1, str("secretName")}, {2, rep("items", &kKeyToPath)}, {3, ip("defaultMode")},
                                  {4, bp("optional")}}};
const Schema kPersistentVolumeClaimVolumeSource{{{1, str("claimName")}, {2, b("readOnly")}}};
const Schema kConfigMapVolumeSource{{{1, inl(&kLocalObjectReference)}, {2, rep("items", &kKeyToPath)},
                                     {3, ip("defaultMode")}, {4, bp("optional")}}};
const Schema kVolumeSource{{{1, msg("hostPath", &kHostPathVolumeSource)}, {2, msg("emptyDir", &kEmptyDirVolumeSource)},
                            {6, msg("secret", &kSecretVolumeSource)},
                            {10, msg("persistentVolumeClaim", &kPersistentVolumeClaimVolumeSource)},
                            {19, msg("configMap", &kConfigMapVolumeSource)}}};
const Schema kVolume{{{1, str("name")}, {2, inl(&kVolumeSource)}}};
const Schema kPodSecurityContext{{{1, msg("seLinuxOptions", &kSELinuxOptions)}, {2, ip("runAsUser")},
                                  {3, bp("runAsNonRoot")}, {4, rint("supplementalGroups")}, {5, ip("fsGroup")},
                                  {6, ip("runAsGroup")}, {9, strp("fsGroupChangePolicy")},
                                  {10, msg("seccompProfile", &kSeccompProfile)},
                                  {11, msg("appArmorProfile", &kAppArmorProfile)}}};
const Schema kToleration{{{1, str("key")}, {2, str("operator")}, {3, str("value")}, {4, str("effect")},
                          {5, ip("tolerationSeconds")}}};
const Schema kPodSpec{{{1, rep("volumes", &kVolume)}, {2, rep("containers", &kContainer)},
                       {3, str("restartPolicy")}, {4, ip("terminationGracePeriodSeconds")},
                       {5, ip("activeDeadlineSeconds")}, {6, str("dnsPolicy")}, {7, mstr("nodeSelector")},
                       {8, str("serviceAccountName")}, {9, str("serviceAccount")}, {10, str("nodeName")},
                       {11, b("hostNetwork")}, {12, b("hostPID")}, {13, b("hostIPC")},
                       {14, msg("securityContext", &kPodSecurityContext)},
                       {15, rep("imagePullSecrets", &kLocalObjectReference)}, {16, str("hostname")},
                       {17, str("subdomain")}, {19, str("schedulerName")}, {20, rep("initContainers", &kContainer)},
                       {21, bp("automountServiceAccountToken")}, {22, rep("tolerations", &kToleration)},
                       {24, str("priorityClassName")}, {25, ip("priority")}, {27, bp("shareProcessNamespace")},
                       {29, strp("runtimeClassName")}, {30, bp("enableServiceLinks")}}};
const Schema kPodTemplateSpec{{{1, msg("metadata", &kObjectMeta)}, {2, msg("spec", &kPodSpec)}}};
const Schema kPod{{{1, msg("metadata", &kObjectMeta)}, {2, msg("spec", &kPodSpec)}, {3, msg("status", &kEmpty)}}};
const Schema kServicePort{{{1, str("name")}, {2, str("protocol")}, {3, i("port")}, {4, ios("targetPort")},
                           {5, i("nodePort")}, {6, strp("appProtocol")}}};
const Schema kServiceSpec{{{1, rep("ports", &kServicePort)}, {2, mstr("selector")}, {3, str("clusterIP")},
                           {4, str("type")}, {5, rstr("externalIPs")}, {7, str("sessionAffinity")},
                           {8, str("loadBalancerIP")}, {9, rstr("loadBalancerSourceRanges")},
                           {10, str("externalName")}, {11, str("externalTrafficPolicy")},
                           {12, i("healthCheckNodePort")}, {13, b("publishNotReadyAddresses")},
                           {17, strp("ipFamilyPolicy")}, {18, rstr("clusterIPs")}, {19, rstr("ipFamilies")},
                           {20, bp("allocateLoadBalancerNodePorts")}, {21, strp("loadBalancerClass")},
                           {22, strp("internalTrafficPolicy")}}};
const Schema kLoadBalancerStatus{};
const Schema kServiceStatus{{{1, msg("loadBalancer", &kLoadBalancerStatus)}}};
const Schema kService{{{1, msg("metadata", &kObjectMeta)}, {2, msg("spec", &kServiceSpec)},
                       {3, msg("status", &kServiceStatus)}}};
const Schema kServiceAccount{{{1, msg("metadata", &kObjectMeta)}, {2, rep("secrets", &kObjectReference)},
                              {3, rep("imagePullSecrets", &kLocalObjectReference)},
                              {4, bp("automountServiceAccountToken")}}};
const Schema kConfigMap{{{1, msg("metadata", &kObjectMeta)}, {2, mstr("data")},
                         {3, {"binaryData", K::kMapBytes}}, {4, bp("immutable")}}};
const Schema kSecret{{{1, msg("metadata", &kObjectMeta)}, {2, {"data", K::kMapBytes}}, {3, str("type")},
                      {4, mstr("stringData")}, {5, bp("immutable")}}};
const Schema kNamespaceSpec{{{1, rstr("finalizers")}}};
const Schema kNamespace{{{1, msg("metadata", &kObjectMeta)}, {2, msg("spec", &kNamespaceSpec)},
                         {3, msg("status", &kEmpty)}}};

// --- k8s.io/api/batch/v1/generated.proto -------------------------------------
const Schema kJobSpec{{{1, ip("parallelism")}, {2, ip("completions")}, {3, ip("activeDeadlineSeconds")},
                       {4, msg("selector", &kLabelSelector)}, {5, bp("manualSelector")},
                       {6, msg("template", &kPodTemplateSpec)}, {7, ip("backoffLimit")},
                       {8, ip("ttlSecondsAfterFinished")}, {9, strp("completionMode")}, {10, bp("suspend")}}};
const Schema kJob{{{1, msg("metadata", &kObjectMeta)}, {2, msg("spec", &kJobSpec)}, {3, msg("status", &kEmpty)}}};

// --- k8s.io/api/apps/v1/generated.proto --------------------------------------
const Schema kRollingUpdateDeployment{{{1, ios("maxUnavailable")}, {2, ios("maxSurge")}}};
const Schema kDeploymentStrategy{{{1, str("type")}, {2, msg("rollingUpdate", &kRollingUpdateDeployment)}}};
const Schema kDeploymentSpec{{{1, ip("replicas")}, {2, msg("selector", &kLabelSelector)},
                              {3, msg("template", &kPodTemplateSpec)}, {4, msg("strategy", &kDeploymentStrategy)},
                              {5, i("minReadySeconds")}, {6, ip("revisionHistoryLimit")}, {7, b("paused")},
                              {9, ip("progressDeadlineSeconds")}}};
const Schema kDeployment{{{1, msg("metadata", &kObjectMeta)}, {2, msg("spec", &kDeploymentSpec)},
                          {3, msg("status", &kEmpty)}}};

// --- k8s.io/api/networking/v1/generated.proto --------------------------------
const Schema kTypedLocalObjectReference{{{1, strp("apiGroup")}, {2, str("kind")}, {3, str("name")}}};  // core/v1
const Schema kServiceBackendPort{{{1, str("name")}, {2, i("number")}}};
const Schema kIngressServiceBackend{{{1, str("name")}, {2, msg("port", &kServiceBackendPort)}}};
const Schema kIngressBackend{{{3, msg("resource", &kTypedLocalObjectReference)},
                              {4, msg("service", &kIngressServiceBackend)}}};
const Schema kHTTPIngressPath{{{1, str("path")}, {2, msg("backend", &kIngressBackend)}, {3, strp("pathType")}}};
const Schema kHTTPIngressRuleValue{{{1, rep("paths", &kHTTPIngressPath)}}};
const Schema kIngressRuleValue{{{1, msg("http", &kHTTPIngressRuleValue)}}};
const Schema kIngressRule{{{1, str("host")}, {2, inl(&kIngressRuleValue)}}};
const Schema kIngressTLS{{{1, rstr("hosts")}, {2, str("secretName")}}};
const Schema kIngressSpec{{{1, msg("defaultBackend", &kIngressBackend)}, {2, rep("tls", &kIngressTLS)},
                           {3, rep("rules", &kIngressRule)}, {4, strp("ingressClassName")}}};
const Schema kIngressStatus{{{1, msg("loadBalancer", &kEmpty)}}};
const Schema kIngress{{{1, msg("metadata", &kObjectMeta)}, {2, msg("spec", &kIngressSpec)},
                       {3, msg("status", &kIngressStatus)}}};

// --- k8s.io/api/rbac/v1/generated.proto --------------------------------------
const Schema kPolicyRule{{{1, rstr("verbs")}, {2, rstr("apiGroups")}, {3, rstr("resources")},
                          {4, rstr("resourceNames")}, {5, rstr("nonResourceURLs")}}};
const Schema kAggregationRule{{{1, rep("clusterRoleSelectors", &kLabelSelector)}}};
const Schema kSubject{{{1, str("kind")}, {2, str("apiGroup")}, {3, str("name")}, {4, str("namespace")}}};
const Schema kRoleRef{{{1, str("apiGroup")}, {2, str("kind")}, {3, str("name")}}};
const Schema kRole{{{1, msg("metadata", &kObjectMeta)}, {2, rep("rules", &kPolicyRule)}}};
const Schema kClusterRole{{{1, msg("metadata", &kObjectMeta)}, {2, rep("rules", &kPolicyRule)},
                           {3, msg("aggregationRule", &kAggregationRule)}}};
const Schema kRoleBinding{{{1, msg("metadata", &kObjectMeta)}, {2, rep("subjects", &kSubject)},
                           {3, msg("roleRef", &kRoleRef)}}};

// --- k8s.io/api/authorization/v1/generated.proto -----------------------------
const Schema kResourceAttributes{{{1, str("namespace")}, {2, str("verb")}, {3, str("group")},
                                  {4, str("version")}, {5, str("resource")}, {6, str("subresource")},
                                  {7, str("name")}}};
const Schema kNonResourceAttributes{{{1, str("path")}, {2, str("verb")}}};
const Schema kSsarSpec{{{1, msg("resourceAttributes", &kResourceAttributes)},
                        {2, msg("nonResourceAttributes", &kNonResourceAttributes)}}};
const Schema kSelfSubjectAccessReview{{{1, msg("metadata", &kObjectMeta)}, {2, msg("spec", &kSsarSpec)}}};

// --- k8s.io/api/authentication/v1/generated.proto ----------------------------
const Schema kBoundObjectReference{{{1, str("kind")}, {2, str("apiVersion")}, {3, str("name")}, {4, str("uid")}}};
const Schema kTokenRequestSpec{{{1, rstr("audiences")}, {3, msg("boundObjectRef", &kBoundObjectReference)},
                                {4, ip("expirationSeconds")}}};
const Schema kTokenRequest{{{1, msg("metadata", &kObjectMeta)}, {2, msg("spec", &kTokenRequestSpec)},
                            {3, msg("status", &kEmpty)}}};

// SelfSubjectReview (kubectl auth whoami): metadata = 1, status = 2 (the server's to fill).
const Schema kSelfSubjectReview{{{1, msg("metadata", &kObjectMeta)}}};

// k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto: what client-go sends with a delete (Helm's uninstall).
const Schema kPreconditions{{{1, strp("uid")}, {2, strp("resourceVersion")}}};
const Schema kDeleteOptions{{{1, ip("gracePeriodSeconds")}, {2, msg("preconditions", &kPreconditions)},
                             {3, bp("orphanDependents")}, {4, strp("propagationPolicy")},
                             {5, rstr("dryRun")}, {6, bp("ignoreStoreReadErrorWithClusterBreakingPotential")}}};
// k8s.io/apimachinery/pkg/runtime/generated.proto: TypeMeta inside runtime.Unknown.
const Schema kTypeMeta{{{1, str("apiVersion")}, {2, str("kind")}}};

class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), end_(p + n) {}
  bool done() const { return p_ >= end_; }
  bool varint(uint64_t* out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return false;
      const auto b = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        *out = v;
        return true;
      }
    }
    return false;
  }
  bool bytes(std::string* out) {
    uint64_t n;
    if (!varint(&n) || n > static_cast<uint64_t>(end_ - p_)) return false;
    out->assign(p_, n);
    p_ += n;
    return true;
  }
  bool skip(uint32_t wire) {
    uint64_t v;
    std::string s;
    switch (wire) {
      case 0: return varint(&v);
      case 1: return advance(8);
      case 2: return bytes(&s);
      case 5: return advance(4);
      default: return false;
    }
  }

 private:
  bool advance(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }
  const char* p_;
  const char* end_;
};

bool decode(const std::string& data, const Schema& schema, json* out, int depth = 0);

// A map entry message: key = 1, value = 2 (both length-delimited here).
bool map_entry(const std::string& payload, std::string* k, std::string* v) {
  Reader e(payload.data(), payload.size());
  while (!e.done()) {
    uint64_t ek;
    if (!e.varint(&ek)) return false;
    std::string* target = (ek >> 3) == 1 ? k : (ek >> 3) == 2 ? v : nullptr;
    if (!target) {
      if (!e.skip(ek & 7)) return false;
    } else if ((ek & 7) != 2 || !e.bytes(target)) {
      return false;
    }
  }
  return true;
}

// resource.Quantity: `optional string string = 1` (api/resource/generated.proto).
bool quantity(const std::string& payload, json* out) {
  json q;
  static const Schema kQuantity{{{1, strp("string")}}};
  if (!decode(payload, kQuantity, &q)) return false;
  *out = q.value("string", "");
  return true;
}

// intstr.IntOrString: type = 1 (0 Int, 1 String), intVal = 2, strVal = 3 (util/intstr/generated.proto).
bool int_or_string(const std::string& payload, json* out) {
  json v;
  static const Schema kIntOrString{{{1, ip("type")}, {2, ip("intVal")}, {3, strp("strVal")}}};
  if (!decode(payload, kIntOrString, &v)) return false;
  if (v.value("type", 0) == 1) {
    *out = v.value("strVal", "");
  } else {
    *out = v.value("intVal", 0);
  }
  return true;
}

// metav1.Time: seconds = 1, nanos = 2 (apis/meta/v1/generated.proto); its JSON is
// RFC 3339 to the second, and the zero time is null, which here means: not set.
bool time_value(const std::string& payload, json* out) {
  json t;
  static const Schema kTimestamp{{{1, ip("seconds")}, {2, ip("nanos")}}};
  if (!decode(payload, kTimestamp, &t)) return false;
  const int64_t seconds = t.value("seconds", int64_t{0});
  if (seconds == 0 && t.value("nanos", 0) == 0) {
    *out = nullptr;
    return true;
  }
  *out = bo::format_rfc3339(bo::SysTime{std::chrono::seconds{seconds}});
  return true;
}

bool decode(const std::string& data, const Schema& schema, json* out, int depth) {
  if (depth > 32) return false;
  if (!out->is_object()) *out = json::object();
  Reader r(data.data(), data.size());
  while (!r.done()) {
    uint64_t key;
    if (!r.varint(&key)) return false;
    const auto field = static_cast<uint32_t>(key >> 3);
    const auto wire = static_cast<uint32_t>(key & 7);
    if (field == 0) return false;
    auto it = schema.fields.find(field);
    if (it == schema.fields.end()) {
      if (!r.skip(wire)) return false;
      continue;
    }
    const Field& f = it->second;
    if (f.kind == K::kInt || f.kind == K::kBool || (f.kind == K::kRepeatedInt && wire == 0)) {
      uint64_t v;
      if (wire != 0 || !r.varint(&v)) return false;
      if (f.kind == K::kRepeatedInt) {
        (*out)[f.name].push_back(static_cast<int64_t>(v));
      } else if (v != 0 || f.keep) {
        (*out)[f.name] = f.kind == K::kBool ? json(v != 0) : json(static_cast<int64_t>(v));
      } else {
        out->erase(f.name);
      }
      continue;
    }
    std::string payload;
    if (wire != 2 || !r.bytes(&payload)) return false;
    switch (f.kind) {
      case K::kString:
        if (!payload.empty() || f.keep) {
          (*out)[f.name] = payload;
        } else {
          out->erase(f.name);
        }
        break;
      case K::kBytes: (*out)[f.name] = bo::base64_encode(payload); break;
      case K::kRepeatedString: (*out)[f.name].push_back(payload); break;
      case K::kRepeatedInt: {  // packed
        Reader p(payload.data(), payload.size());
        json& arr = (*out)[f.name];
        if (!arr.is_array()) arr = json::array();
        while (!p.done()) {
          uint64_t v;
          if (!p.varint(&v)) return false;
          arr.push_back(static_cast<int64_t>(v));
        }
        break;
      }
      case K::kMessage: {
        // A repeated occurrence of a singular message merges into the first (protobuf's rule).
        json& sub = (*out)[f.name];
        if (!decode(payload, *f.message, &sub, depth + 1)) return false;
        break;
      }
      case K::kInline:
        if (!decode(payload, *f.message, out, depth + 1)) return false;
        break;
      case K::kRepeatedMessage: {
        json sub = json::object();
        if (!decode(payload, *f.message, &sub, depth + 1)) return false;
        (*out)[f.name].push_back(std::move(sub));
        break;
      }
      case K::kMapString:
      case K::kMapBytes:
      case K::kMapQuantity: {
        std::string k, v;
        if (!map_entry(payload, &k, &v)) return false;
        json value = v;
        if (f.kind == K::kMapBytes) value = bo::base64_encode(v);
        if (f.kind == K::kMapQuantity && !quantity(v, &value)) return false;
        (*out)[f.name][k] = std::move(value);
        break;
      }
      case K::kQuantity: {
        json v;
        if (!quantity(payload, &v)) return false;
        (*out)[f.name] = std::move(v);
        break;
      }
      case K::kIntOrString: {
        json v;
        if (!int_or_string(payload, &v)) return false;
        (*out)[f.name] = std::move(v);
        break;
      }
      case K::kTime: {
        json v;
        if (!time_value(payload, &v)) return false;
        if (v.is_null()) {
          out->erase(f.name);
        } else {
          (*out)[f.name] = std::move(v);
        }
        break;
      }
      default: break;
    }
  }
  return true;
}

}  // namespace

std::optional<nlohmann::json> decode_k8s_protobuf(const std::string& body) {
  static const std::string kMagic("k8s\0", 4);
  if (body.size() < 4 || body.compare(0, 4, kMagic) != 0) return std::nullopt;
  // runtime.Unknown: typeMeta = 1, raw = 2.
  Reader r(body.data() + 4, body.size() - 4);
  json type_meta;
  std::string raw;
  while (!r.done()) {
    uint64_t key;
    if (!r.varint(&key)) return std::nullopt;
    std::string payload;
    if ((key & 7) != 2) {
      if (!r.skip(key & 7)) return std::nullopt;
      continue;
    }
    if (!r.bytes(&payload)) return std::nullopt;
    if ((key >> 3) == 1 && !decode(payload, kTypeMeta, &type_meta)) return std::nullopt;
    if ((key >> 3) == 2) raw = std::move(payload);
  }
  const std::string kind = type_meta.value("kind", "");
  // Keyed by group/version and kind: the same kind name in another group is another message.
  static const std::map<std::pair<std::string, std::string>, const Schema*> kKinds = {
      {{"authorization.k8s.io/v1", "SelfSubjectAccessReview"}, &kSelfSubjectAccessReview},
      {{"v1", "ConfigMap"}, &kConfigMap},
      {{"v1", "Secret"}, &kSecret},
      {{"v1", "Namespace"}, &kNamespace},
      {{"v1", "Pod"}, &kPod},
      {{"v1", "Service"}, &kService},
      {{"v1", "ServiceAccount"}, &kServiceAccount},
      {{"authentication.k8s.io/v1", "TokenRequest"}, &kTokenRequest},
      {{"authentication.k8s.io/v1", "SelfSubjectReview"}, &kSelfSubjectReview},
      {{"batch/v1", "Job"}, &kJob},
      {{"apps/v1", "Deployment"}, &kDeployment},
      {{"networking.k8s.io/v1", "Ingress"}, &kIngress},
      {{"rbac.authorization.k8s.io/v1", "Role"}, &kRole},
      {{"rbac.authorization.k8s.io/v1", "ClusterRole"}, &kClusterRole},
      {{"rbac.authorization.k8s.io/v1", "RoleBinding"}, &kRoleBinding},
      {{"rbac.authorization.k8s.io/v1", "ClusterRoleBinding"}, &kRoleBinding},
  };
  const std::string api_version = type_meta.value("apiVersion", "");
  // DeleteOptions is registered in every group version (metav1.AddToGroupVersion), so it
  // arrives as the group version of the resource deleted: meta.k8s.io/v1, v1, batch/v1...
  auto it = kKinds.find({api_version, kind});
  const Schema* schema = kind == "DeleteOptions" ? &kDeleteOptions : it == kKinds.end() ? nullptr : it->second;
  if (!schema) return std::nullopt;
  json obj = json::object();
  if (!decode(raw, *schema, &obj)) return std::nullopt;
  obj["apiVersion"] = type_meta.value("apiVersion", "");
  obj["kind"] = kind;
  return obj;
}

}  // namespace kl
