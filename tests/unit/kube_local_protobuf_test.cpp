// kube-local's protobuf request decoder: the "k8s\0" envelope + runtime.Unknown
// that client-go's typed clients send, decoded into the JSON kube-apiserver
// would hold. The messages are written by hand here with a tiny writer, field
// numbers as in k8s.io/api's generated.proto files (core/v1, batch/v1, apps/v1,
// rbac/v1) and k8s.io/apimachinery's (meta/v1, util/intstr, api/resource).
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kube-local/protobuf.h"

using nlohmann::json;

namespace {

// The protobuf wire format, as much of it as the tests need.
struct Pb {
  std::string bytes;
  static std::string varint(uint64_t v) {
    std::string out;
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
    return out;
  }
  Pb& num(uint32_t field, int64_t v) {
    bytes += varint(uint64_t{field} << 3) + varint(static_cast<uint64_t>(v));
    return *this;
  }
  Pb& len(uint32_t field, const std::string& payload) {
    bytes += varint((uint64_t{field} << 3) | 2) + varint(payload.size()) + payload;
    return *this;
  }
  Pb& msg(uint32_t field, const Pb& m) { return len(field, m.bytes); }
  Pb& entry(uint32_t field, const std::string& k, const std::string& v) {
    return msg(field, Pb().len(1, k).len(2, v));
  }
  Pb& fixed32(uint32_t field, uint32_t v) {
    bytes += varint((uint64_t{field} << 3) | 5) + std::string(reinterpret_cast<const char*>(&v), 4);
    return *this;
  }
};

std::string envelope(const std::string& api_version, const std::string& kind, const Pb& raw) {
  // runtime.Unknown: typeMeta = 1 (apiVersion = 1, kind = 2), raw = 2, contentEncoding = 3, contentType = 4.
  return std::string("k8s\0", 4) + Pb().msg(1, Pb().len(1, api_version).len(2, kind)).len(2, raw.bytes).len(3, "").len(4, "").bytes;
}

Pb meta(const std::string& name) { return Pb().len(1, name).len(2, "").len(3, "").len(6, "").num(7, 0).msg(8, Pb()); }
Pb int_or_string(int32_t v) { return Pb().num(1, 0).num(2, v).len(3, ""); }
Pb int_or_string(const std::string& v) { return Pb().num(1, 1).num(2, 0).len(3, v); }
Pb quantity(const std::string& v) { return Pb().len(1, v); }

Pb container() {
  return Pb()
      .len(1, "main")
      .len(2, "busybox")
      .len(3, "sh")
      .len(3, "-c")
      .len(4, "echo hi")
      .len(5, "")  // workingDir "": omitempty, so absent
      .msg(6, Pb().len(1, "http").num(2, 0).num(3, 8080).len(4, "TCP").len(5, ""))
      .msg(7, Pb().len(1, "A").len(2, "b"))
      .msg(7, Pb().len(1, "FROM").msg(3, Pb().msg(4, Pb().msg(1, Pb().len(1, "creds")).len(2, "pw").num(3, 1))))
      .msg(8, Pb().entry(1, "cpu", quantity("500m").bytes).entry(2, "memory", quantity("64Mi").bytes))
      .msg(9, Pb().len(1, "data").num(2, 1).len(3, "/data").len(4, ""))
      .msg(15, Pb().num(4, 0).num(5, 1).num(7, 0).msg(1, Pb().len(2, "ALL")))
      .num(16, 0)
      .num(18, 0)
      .len(14, "IfNotPresent");
}

Pb pod_spec() {
  return Pb()
      .msg(1, Pb().len(1, "data").msg(2, Pb().msg(2, Pb().len(1, "").msg(2, quantity("1Gi")))))
      .msg(1, Pb().len(1, "cfg").msg(2, Pb().msg(19, Pb().msg(1, Pb().len(1, "settings")).num(3, 420))))
      .msg(2, container())
      .len(3, "Never")
      .len(6, "ClusterFirst")
      .num(4, 30)
      .num(11, 0)
      .num(21, 0)
      .msg(14, Pb().num(4, 1000).num(4, 2000));
}

struct Case {
  const char* name;
  std::string body;
  const char* pointer;  // a JSON pointer into the decoded object
  json expected;        // null: the member must be absent
};

std::vector<Case> cases() {
  const std::string job = envelope(
      "batch/v1", "Job",
      Pb().msg(1, meta("nightly")
                      .entry(11, "app", "db")
                      .entry(12, "note", "x")
                      .msg(13, Pb().len(1, "CronJob").len(3, "cron").len(4, "u-1").len(5, "batch/v1").num(6, 1).num(7, 0))
                      .len(14, "example.com/cleanup")
                      .msg(8, Pb().num(1, 1764590400).num(2, 0)))
          .msg(2, Pb().num(7, 0).num(3, 600).num(10, 0).msg(6, Pb().msg(1, meta("")).msg(2, pod_spec())))
          .msg(3, Pb().num(4, 0)));
  const std::string deployment = envelope(
      "apps/v1", "Deployment",
      Pb().msg(1, meta("web").entry(11, "app", "web"))
          .msg(2, Pb().num(1, 3)
                      .msg(2, Pb().entry(1, "app", "web"))
                      .msg(3, Pb().msg(1, meta("").entry(11, "app", "web")).msg(2, Pb().msg(2, container())))
                      .msg(4, Pb().len(1, "RollingUpdate").msg(2, Pb().msg(1, int_or_string("25%")).msg(2, int_or_string(1))))
                      .num(5, 0))
          .msg(3, Pb()));
  const std::string zero_replicas = envelope("apps/v1", "Deployment", Pb().msg(1, meta("idle")).msg(2, Pb().num(1, 0)));
  const std::string service = envelope(
      "v1", "Service",
      Pb().msg(1, meta("web"))
          .msg(2, Pb().msg(1, Pb().len(1, "http").len(2, "TCP").num(3, 80).msg(4, int_or_string(8080)).num(5, 0))
                      .msg(1, Pb().len(1, "admin").len(2, "TCP").num(3, 81).msg(4, int_or_string("admin")))
                      .entry(2, "app", "web")
                      .len(3, "None")
                      .len(4, "ClusterIP"))
          .msg(3, Pb().msg(1, Pb())));
  const std::string role = envelope(
      "rbac.authorization.k8s.io/v1", "Role",
      Pb().msg(1, meta("reader"))
          .msg(2, Pb().len(1, "get").len(1, "list").len(2, "").len(3, "pods").len(4, "one")));
  const std::string binding = envelope(
      "rbac.authorization.k8s.io/v1", "ClusterRoleBinding",
      Pb().msg(1, meta("readers"))
          .msg(2, Pb().len(1, "ServiceAccount").len(2, "").len(3, "robot").len(4, "ops"))
          .msg(3, Pb().len(1, "rbac.authorization.k8s.io").len(2, "ClusterRole").len(3, "view")));
  const std::string sa = envelope("v1", "ServiceAccount", Pb().msg(1, meta("robot")).num(4, 0));
  const std::string unknown_fields = envelope(
      "v1", "Pod",
      Pb().msg(1, meta("p").fixed32(99, 7).len(98, "future").num(97, 1))
          .msg(2, Pb().msg(2, Pb().len(1, "c").len(2, "nginx").msg(99, Pb().len(1, "x"))))
          .num(50, 3));
  const std::string ingress = envelope(
      "networking.k8s.io/v1", "Ingress",
      Pb().msg(1, meta("web"))
          .msg(2, Pb().len(4, "nginx")
                      .msg(1, Pb().msg(4, Pb().len(1, "svc0").msg(2, Pb().len(1, "http").num(2, 0))))
                      .msg(2, Pb().len(1, "foo.com").len(2, "foo-cert"))
                      .msg(3, Pb().len(1, "foo.com").msg(2, Pb().msg(1, Pb().msg(1, Pb().len(1, "/bar").len(3, "Prefix").msg(
                                                                             2, Pb().msg(4, Pb().len(1, "svc1").msg(2, Pb().len(1, "").num(2, 8080))))))))));
  const std::string negative = envelope("v1", "Pod", Pb().msg(1, meta("n")).msg(2, Pb().num(25, -5)));
  return {
      {"JobKind", job, "/kind", "Job"},
      {"JobApiVersion", job, "/apiVersion", "batch/v1"},
      {"MetaName", job, "/metadata/name", "nightly"},
      {"MetaEmptyStringsOmitted", job, "/metadata/namespace", nullptr},
      {"MetaZeroGenerationOmitted", job, "/metadata/generation", nullptr},
      {"MetaLabels", job, "/metadata/labels", {{"app", "db"}}},
      {"MetaAnnotations", job, "/metadata/annotations", {{"note", "x"}}},
      {"MetaFinalizers", job, "/metadata/finalizers", {"example.com/cleanup"}},
      {"MetaOwnerReference", job, "/metadata/ownerReferences/0",
       {{"kind", "CronJob"}, {"name", "cron"}, {"uid", "u-1"}, {"apiVersion", "batch/v1"}, {"controller", true},
        {"blockOwnerDeletion", false}}},
      {"MetaTime", job, "/metadata/creationTimestamp", "2025-12-01T12:00:00Z"},
      {"TemplateZeroTimeOmitted", job, "/spec/template/metadata/creationTimestamp", nullptr},
      {"JobBackoffLimitZeroKept", job, "/spec/backoffLimit", 0},
      {"JobActiveDeadline", job, "/spec/activeDeadlineSeconds", 600},
      {"JobSuspendFalseKept", job, "/spec/suspend", false},
      {"JobStatusEmpty", job, "/status", json::object()},
      {"ContainerImage", job, "/spec/template/spec/containers/0/image", "busybox"},
      {"ContainerCommand", job, "/spec/template/spec/containers/0/command", {"sh", "-c"}},
      {"ContainerArgs", job, "/spec/template/spec/containers/0/args", {"echo hi"}},
      {"ContainerWorkingDirOmitted", job, "/spec/template/spec/containers/0/workingDir", nullptr},
      {"ContainerPort", job, "/spec/template/spec/containers/0/ports",
       json::parse(R"([{"name":"http","containerPort":8080,"protocol":"TCP"}])")},
      {"ContainerEnv", job, "/spec/template/spec/containers/0/env",
       json::parse(R"([{"name":"A","value":"b"},{"name":"FROM","valueFrom":{"secretKeyRef":{"name":"creds","key":"pw","optional":true}}}])")},
      {"ContainerResources", job, "/spec/template/spec/containers/0/resources",
       json::parse(R"({"limits":{"cpu":"500m"},"requests":{"memory":"64Mi"}})")},
      {"ContainerVolumeMount", job, "/spec/template/spec/containers/0/volumeMounts",
       json::parse(R"([{"name":"data","readOnly":true,"mountPath":"/data"}])")},
      {"ContainerSecurityContext", job, "/spec/template/spec/containers/0/securityContext",
       json::parse(R"({"runAsUser":0,"runAsNonRoot":true,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}})")},
      {"ContainerFalseBoolsOmitted", job, "/spec/template/spec/containers/0/stdin", nullptr},
      {"ContainerPullPolicy", job, "/spec/template/spec/containers/0/imagePullPolicy", "IfNotPresent"},
      {"VolumeEmptyDir", job, "/spec/template/spec/volumes/0", json::parse(R"({"name":"data","emptyDir":{"sizeLimit":"1Gi"}})")},
      {"VolumeConfigMapInline", job, "/spec/template/spec/volumes/1",
       json::parse(R"({"name":"cfg","configMap":{"name":"settings","defaultMode":420}})")},
      {"PodRestartPolicy", job, "/spec/template/spec/restartPolicy", "Never"},
      {"PodGracePeriod", job, "/spec/template/spec/terminationGracePeriodSeconds", 30},
      {"PodHostNetworkFalseOmitted", job, "/spec/template/spec/hostNetwork", nullptr},
      {"PodAutomountFalseKept", job, "/spec/template/spec/automountServiceAccountToken", false},
      {"PodSupplementalGroups", job, "/spec/template/spec/securityContext/supplementalGroups", {1000, 2000}},
      {"DeploymentReplicas", deployment, "/spec/replicas", 3},
      {"DeploymentZeroReplicasKept", zero_replicas, "/spec/replicas", 0},
      {"DeploymentSelector", deployment, "/spec/selector", {{"matchLabels", {{"app", "web"}}}}},
      {"DeploymentTemplateLabels", deployment, "/spec/template/metadata/labels", {{"app", "web"}}},
      {"DeploymentStrategy", deployment, "/spec/strategy",
       json::parse(R"({"type":"RollingUpdate","rollingUpdate":{"maxUnavailable":"25%","maxSurge":1}})")},
      {"DeploymentMinReadyZeroOmitted", deployment, "/spec/minReadySeconds", nullptr},
      {"ServicePortIntTarget", service, "/spec/ports/0",
       json::parse(R"({"name":"http","protocol":"TCP","port":80,"targetPort":8080})")},
      {"ServicePortStringTarget", service, "/spec/ports/1/targetPort", "admin"},
      {"ServiceSelector", service, "/spec/selector", {{"app", "web"}}},
      {"ServiceClusterIP", service, "/spec/clusterIP", "None"},
      {"ServiceType", service, "/spec/type", "ClusterIP"},
      {"ServiceStatus", service, "/status", {{"loadBalancer", json::object()}}},
      {"RoleRule", role, "/rules/0",
       json::parse(R"({"verbs":["get","list"],"apiGroups":[""],"resources":["pods"],"resourceNames":["one"]})")},
      {"BindingSubject", binding, "/subjects/0", json::parse(R"({"kind":"ServiceAccount","name":"robot","namespace":"ops"})")},
      {"BindingRoleRef", binding, "/roleRef",
       json::parse(R"({"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"view"})")},
      {"ServiceAccountAutomountFalseKept", sa, "/automountServiceAccountToken", false},
      {"UnknownFieldsSkipped", unknown_fields, "/spec/containers/0", {{"name", "c"}, {"image", "nginx"}}},
      {"UnknownMetaFieldsSkipped", unknown_fields, "/metadata", {{"name", "p"}}},
      {"IngressClass", ingress, "/spec/ingressClassName", "nginx"},
      {"IngressDefaultBackendPortName", ingress, "/spec/defaultBackend", json::parse(R"({"service":{"name":"svc0","port":{"name":"http"}}})")},
      {"IngressTLS", ingress, "/spec/tls", json::parse(R"([{"hosts":["foo.com"],"secretName":"foo-cert"}])")},
      {"IngressRuleValueInline", ingress, "/spec/rules/0",
       json::parse(R"({"host":"foo.com","http":{"paths":[{"path":"/bar","pathType":"Prefix","backend":{"service":{"name":"svc1","port":{"number":8080}}}}]}})")},
      {"NegativeInt32", negative, "/spec/priority", -5},
  };
}

class DecodeK8sProtobuf : public ::testing::TestWithParam<Case> {};

TEST_P(DecodeK8sProtobuf, DecodesAsKubeApiserverWouldHoldIt) {
  const Case& c = GetParam();
  auto decoded = kl::decode_k8s_protobuf(c.body);
  ASSERT_TRUE(decoded.has_value());
  const json::json_pointer ptr(c.pointer);
  if (c.expected.is_null()) {
    EXPECT_FALSE(decoded->contains(ptr)) << decoded->dump();
  } else {
    ASSERT_TRUE(decoded->contains(ptr)) << decoded->dump();
    EXPECT_EQ(decoded->at(ptr), c.expected) << decoded->dump();
  }
}

INSTANTIATE_TEST_SUITE_P(Fields, DecodeK8sProtobuf, ::testing::ValuesIn(cases()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(DecodeK8sProtobufEnvelope, MalformedOrUnsupportedIsRefused) {
  const std::string good = envelope("v1", "ServiceAccount", Pb().msg(1, meta("robot")));
  ASSERT_TRUE(kl::decode_k8s_protobuf(good).has_value());
  EXPECT_FALSE(kl::decode_k8s_protobuf("{\"kind\":\"Pod\"}").has_value()) << "no k8s\\0 magic";
  EXPECT_FALSE(kl::decode_k8s_protobuf(good.substr(0, good.size() - 3)).has_value()) << "truncated";
  EXPECT_FALSE(kl::decode_k8s_protobuf(envelope("v1", "ReplicationController", Pb().msg(1, meta("x")))).has_value());
  EXPECT_FALSE(kl::decode_k8s_protobuf(envelope("example.com/v1", "Job", Pb().msg(1, meta("x")))).has_value())
      << "a Job of another group is another message";
  // A known field with the wrong wire type is an error, as gogo's generated Unmarshal answers it.
  EXPECT_FALSE(kl::decode_k8s_protobuf(envelope("v1", "Pod", Pb().num(1, 5))).has_value());
  // A length that runs past the message.
  EXPECT_FALSE(kl::decode_k8s_protobuf(envelope("v1", "Pod", Pb().len(1, std::string("\x0a\x09" "ab", 4)))).has_value());
}

TEST(DecodeK8sProtobufEnvelope, DeleteOptionsInAnyGroupVersion) {
  for (const char* gv : {"meta.k8s.io/v1", "v1", "batch/v1"}) {
    auto d = kl::decode_k8s_protobuf(
        envelope(gv, "DeleteOptions", Pb().num(1, 0).len(4, "Foreground").len(5, "All")));
    ASSERT_TRUE(d.has_value()) << gv;
    EXPECT_EQ((*d)["gracePeriodSeconds"], 0) << gv;
    EXPECT_EQ((*d)["propagationPolicy"], "Foreground") << gv;
    EXPECT_EQ((*d)["dryRun"], json({"All"})) << gv;
  }
}

}  // namespace
