// kube-local's built-in validation, defaulting and admission checks, as pure
// functions against kube-apiserver's source. Each table cites the Go function
// whose behaviour (and message text) it pins.
#include <gtest/gtest.h>

#include "kube-local/defaults.h"
#include "kube-local/pod_security.h"
#include "kube-local/store.h"
#include "kube-local/validation.h"

using nlohmann::json;

namespace {

std::vector<std::string> messages(const std::vector<kl::FieldError>& errs) {
  std::vector<std::string> out;
  for (const auto& e : errs) out.push_back(e.message);
  return out;
}

// staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go: IsQualifiedName, IsValidLabelValue
// (RegexError joins its examples with "', " + " or ": two spaces, as kube-apiserver prints them).
TEST(KubeLocalValidation, QualifiedNamesAndLabelValues) {
  const std::string kNameRegex =
      "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
      "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
      "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
  struct Case {
    std::string key;
    std::vector<std::string> errs;
  };
  const std::vector<Case> keys = {
      {"app", {}},
      {"app.kubernetes.io/name", {}},
      {"Example.com/x", {"prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                         "characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
                         "'example.com', regex used for validation is "
                         "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"}},
      {"/x", {"prefix part must be non-empty"}},
      {"a/", {"name part must be non-empty", kNameRegex}},
      {std::string(64, 'a'), {"name part must be no more than 63 characters"}},
      {"-bad", {kNameRegex}},
      {"a/b/c", {"a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                 "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                 "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix "
                 "and '/' (e.g. 'example.com/MyName')"}},
  };
  for (const auto& c : keys) EXPECT_EQ(kl::is_qualified_name(c.key), c.errs) << c.key;
  const std::string kValueRegex =
      "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
      "and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation "
      "is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
  const std::vector<Case> values = {
      {"", {}},
      {"v1.2_x-y", {}},
      {std::string(63, 'a'), {}},
      {std::string(64, 'a'), {"must be no more than 63 characters"}},
      {"has space", {kValueRegex}},
      {"trailing-", {kValueRegex}},
      {std::string(64, '-'), {"must be no more than 63 characters", kValueRegex}},
  };
  for (const auto& c : values) EXPECT_EQ(kl::is_valid_label_value(c.key), c.errs) << c.key;
}

// apimachinery/pkg/apis/meta/v1/validation ValidateLabels: errors sit at metadata.labels itself.
TEST(KubeLocalValidation, LabelErrorsAreAtTheLabelsField) {
  const auto errs = kl::validate_labels(json{{"ok", "fine"}, {"tier", std::string(64, 'x')}}, "metadata.labels");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].type, "FieldValueInvalid");
  EXPECT_EQ(errs[0].field, "metadata.labels");
  EXPECT_EQ(errs[0].message, "metadata.labels: Invalid value: \"" + std::string(64, 'x') +
                                 "\": must be no more than 63 characters");
  // The pod template's labels of a workload are checked at their own path.
  const json job{{"metadata", {{"name", "j"}}},
                 {"spec", {{"template", {{"metadata", {{"labels", {{"bad key", "v"}}}}}}}}}};
  const auto tmpl = kl::validate_object_meta("batch/jobs", job);
  ASSERT_EQ(tmpl.size(), 1u);
  EXPECT_EQ(tmpl[0].field, "spec.template.labels");
  EXPECT_TRUE(kl::validate_object_meta("/configmaps", job).empty());
}

// apimachinery/pkg/api/validation/objectmeta.go ValidateAnnotations: case-insensitive
// qualified-name keys; keys plus values at most 256 KiB (field.TooLong hides the value).
TEST(KubeLocalValidation, AnnotationKeysAndTotalSize) {
  EXPECT_TRUE(kl::validate_annotations(json{{"Example.COM/Key", "v"}}, "metadata.annotations").empty());
  const std::string key = "k";
  const json at_limit{{key, std::string(kl::kTotalAnnotationSizeLimitB - key.size(), 'x')}};
  EXPECT_TRUE(kl::validate_annotations(at_limit, "metadata.annotations").empty());
  const json over{{key, std::string(kl::kTotalAnnotationSizeLimitB - key.size() + 1, 'x')}};
  EXPECT_EQ(messages(kl::validate_annotations(over, "metadata.annotations")),
            std::vector<std::string>{"metadata.annotations: Too long: may not be more than 262144 bytes"});
  EXPECT_EQ(kl::validate_annotations(over, "metadata.annotations")[0].type, "FieldValueTooLong");
  EXPECT_EQ(kl::validate_annotations(json{{"a b", "v"}}, "metadata.annotations").size(), 1u);
}

// pkg/apis/core/validation ValidateConfigMapUpdate / ValidateSecretUpdate;
// pkg/apis/apps/validation ValidateDeploymentUpdate (apps/v1: selector immutable).
TEST(KubeLocalValidation, ImmutableUpdates) {
  const json frozen{{"immutable", true}, {"data", {{"k", "v"}}}};
  struct Case {
    std::string gr;
    json old_obj, new_obj;
    std::vector<std::string> errs;
  };
  const std::vector<Case> cases = {
      {"/configmaps", frozen, frozen, {}},
      {"/configmaps", frozen, json{{"immutable", true}, {"data", {{"k", "changed"}}}},
       {"data: Forbidden: field is immutable when `immutable` is set"}},
      {"/configmaps", frozen, json{{"immutable", false}, {"data", {{"k", "v"}}}},
       {"immutable: Forbidden: field is immutable when `immutable` is set"}},
      {"/configmaps", frozen, json{{"immutable", true}, {"data", {{"k", "v"}}}, {"binaryData", {{"b", "AA=="}}}},
       {"binaryData: Forbidden: field is immutable when `immutable` is set"}},
      {"/secrets", frozen, json{{"data", {{"k", "dg=="}}}},
       {"immutable: Forbidden: field is immutable when `immutable` is set",
        "data: Forbidden: field is immutable when `immutable` is set"}},
      {"/configmaps", json{{"data", {{"k", "v"}}}}, json{{"immutable", true}, {"data", {{"k", "w"}}}}, {}},
      {"apps/deployments", json{{"spec", {{"selector", {{"matchLabels", {{"app", "a"}}}}}}}},
       json{{"spec", {{"selector", {{"matchLabels", {{"app", "b"}}}}}}}},
       {"spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"b\"}}: field is immutable"}},
  };
  for (const auto& c : cases)
    EXPECT_EQ(messages(kl::validate_immutable_update(c.gr, c.new_obj, c.old_obj)), c.errs) << c.new_obj;
}

// metav1.MicroTime.UnmarshalJSON parses RFC3339Micro; Go's time.ParseError text.
TEST(KubeLocalValidation, MicroTimeNeedsSixFractionalDigits) {
  const std::string layout = "\"2006-01-02T15:04:05.000000Z07:00\"";
  struct Case {
    std::string value;
    std::optional<std::string> err;
  };
  const std::vector<Case> cases = {
      {"2026-01-02T03:04:05.123456Z", std::nullopt},
      {"2026-01-02T03:04:05.123456+02:00", std::nullopt},
      {"2026-01-02T03:04:05Z",
       "parsing time \"2026-01-02T03:04:05Z\" as " + layout + ": cannot parse \"Z\" as \".000000\""},
      {"2026-01-02T03:04:05.123Z",
       "parsing time \"2026-01-02T03:04:05.123Z\" as " + layout + ": cannot parse \".123Z\" as \".000000\""},
      {"2026-01-02", "parsing time \"2026-01-02\" as " + layout + ": cannot parse \"\" as \"T\""},
  };
  for (const auto& c : cases) EXPECT_EQ(kl::micro_time_error(c.value), c.err) << c.value;
  EXPECT_EQ(kl::decode_error("coordination.k8s.io/leases", "Lease", "v1",
                             json{{"spec", {{"renewTime", "2026-01-02T03:04:05Z"}}}}),
            "Lease in version \"v1\" cannot be handled as a Lease: parsing time \"2026-01-02T03:04:05Z\" as " + layout +
                ": cannot parse \"Z\" as \".000000\"");
}

// pkg/apis/core/v1/defaults.go SetDefaults_Container: parsers.ParseImageName.
TEST(KubeLocalDefaults, ImagePullPolicyFollowsTheTag) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"busybox", "Always"},
      {"busybox:latest", "Always"},
      {"busybox:1.36", "IfNotPresent"},
      {"registry:5000/team/app", "Always"},
      {"registry:5000/team/app:v2", "IfNotPresent"},
      {"app@sha256:0123456789abcdef", "IfNotPresent"},
      {"app:latest@sha256:0123456789abcdef", "Always"},
  };
  for (const auto& [image, policy] : cases) EXPECT_EQ(kl::default_image_pull_policy(image), policy) << image;
}

// pkg/apis/{core,batch,apps}/v1/defaults.go: what each kind gets, and applying twice changes nothing.
TEST(KubeLocalDefaults, WorkloadsServicesAndPodsAreDefaultedIdempotently) {
  json job{{"metadata", {{"name", "j"}}},
           {"spec", {{"template", {{"metadata", {{"labels", {{"app", "x"}}}}},
                                   {"spec", {{"containers", {{{"name", "c"}, {"image", "busybox:1"}}}}}}}}}}};
  kl::apply_builtin_defaults("batch/jobs", job);
  const json& js = job["spec"];
  EXPECT_EQ(js["completions"], 1);
  EXPECT_EQ(js["parallelism"], 1);
  EXPECT_EQ(js["backoffLimit"], 6);
  EXPECT_EQ(js["completionMode"], "NonIndexed");
  EXPECT_EQ(js["suspend"], false);
  EXPECT_EQ(js["manualSelector"], false);
  EXPECT_EQ(js["podReplacementPolicy"], "TerminatingOrFailed");
  EXPECT_EQ(job["metadata"]["labels"], (json{{"app", "x"}}));  // the template's labels, the Job having none
  const json& ps = js["template"]["spec"];
  EXPECT_EQ(ps["restartPolicy"], "Always");
  EXPECT_EQ(ps["dnsPolicy"], "ClusterFirst");
  EXPECT_EQ(ps["schedulerName"], "default-scheduler");
  EXPECT_EQ(ps["terminationGracePeriodSeconds"], 30);
  EXPECT_EQ(ps["securityContext"], json::object());
  EXPECT_FALSE(ps.contains("enableServiceLinks"));  // SetDefaults_Pod only, not templates
  const json& c = ps["containers"][0];
  EXPECT_EQ(c["imagePullPolicy"], "IfNotPresent");
  EXPECT_EQ(c["terminationMessagePath"], "/dev/termination-log");
  EXPECT_EQ(c["terminationMessagePolicy"], "File");
  // Parallelism alone leaves completions unset.
  json par{{"spec", {{"parallelism", 3}, {"template", json::object()}}}};
  kl::apply_builtin_defaults("batch/jobs", par);
  EXPECT_FALSE(par["spec"].contains("completions"));

  json dep{{"metadata", {{"name", "d"}}}, {"spec", {{"template", {{"spec", {{"containers", json::array()}}}}}}}};
  kl::apply_builtin_defaults("apps/deployments", dep);
  EXPECT_EQ(dep["spec"]["replicas"], 1);
  EXPECT_EQ(dep["spec"]["strategy"],
            (json{{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", "25%"}, {"maxSurge", "25%"}}}}));
  EXPECT_EQ(dep["spec"]["revisionHistoryLimit"], 10);
  EXPECT_EQ(dep["spec"]["progressDeadlineSeconds"], 600);
  json recreate{{"metadata", json::object()}, {"spec", {{"strategy", {{"type", "Recreate"}}}}}};
  kl::apply_builtin_defaults("apps/deployments", recreate);
  EXPECT_FALSE(recreate["spec"]["strategy"].contains("rollingUpdate"));

  json svc{{"spec", {{"ports", {{{"port", 80}}, {{"port", 443}, {"targetPort", "https"}}}}}}};
  kl::apply_builtin_defaults("/services", svc);
  EXPECT_EQ(svc["spec"]["type"], "ClusterIP");
  EXPECT_EQ(svc["spec"]["sessionAffinity"], "None");
  EXPECT_EQ(svc["spec"]["internalTrafficPolicy"], "Cluster");
  EXPECT_EQ(svc["spec"]["ports"][0], (json{{"port", 80}, {"protocol", "TCP"}, {"targetPort", 80}}));
  EXPECT_EQ(svc["spec"]["ports"][1]["targetPort"], "https");

  json pod{{"spec", {{"containers", {{{"name", "c"}, {"image", "nginx"}, {"ports", {{{"containerPort", 80}}}}}}}}}};
  kl::apply_builtin_defaults("/pods", pod);
  EXPECT_EQ(pod["spec"]["restartPolicy"], "Always");
  EXPECT_EQ(pod["spec"]["enableServiceLinks"], true);
  EXPECT_EQ(pod["spec"]["containers"][0]["imagePullPolicy"], "Always");
  EXPECT_EQ(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");

  for (auto [gr, obj] : std::vector<std::pair<std::string, json>>{{"batch/jobs", job}, {"apps/deployments", dep},
                                                                  {"/services", svc}, {"/pods", pod}}) {
    json again = obj;
    kl::apply_builtin_defaults(gr, again);
    EXPECT_EQ(again, obj) << gr;
  }
}

json container(const std::string& name, json security_context = json()) {
  json c{{"name", name}, {"image", "i"}};
  if (!security_context.is_null()) c["securityContext"] = security_context;
  return c;
}

const json kRestrictedContainerSc{{"allowPrivilegeEscalation", false},
                                  {"capabilities", {{"drop", {"ALL"}}}},
                                  {"runAsNonRoot", true},
                                  {"seccompProfile", {{"type", "RuntimeDefault"}}}};

// staging/src/k8s.io/pod-security-admission/policy/check_*.go, in registry.go's order.
TEST(KubeLocalPodSecurity, RestrictedAndBaselineChecks) {
  struct Case {
    std::string level;
    json spec;
    std::string violations;
  };
  const std::vector<Case> cases = {
      {"restricted", json{{"containers", {container("c")}}},
       "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), "
       "unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), "
       "runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), "
       "seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or "
       "\"Localhost\")"},
      {"restricted", json{{"containers", {container("c", kRestrictedContainerSc)}}}, ""},
      // Pod-level runAsNonRoot and seccompProfile cover every container.
      {"restricted",
       json{{"securityContext", {{"runAsNonRoot", true}, {"seccompProfile", {{"type", "Localhost"}}}}},
            {"containers",
             {container("a", {{"allowPrivilegeEscalation", false}, {"capabilities", {{"drop", {"ALL"}}}}}),
              container("b", {{"allowPrivilegeEscalation", false},
                              {"capabilities", {{"drop", {"ALL"}}, {"add", {"NET_BIND_SERVICE"}}}}})}}},
       ""},
      {"restricted",
       json{{"securityContext", {{"runAsNonRoot", false}, {"runAsUser", 0}}},
            {"initContainers", {container("init", kRestrictedContainerSc)}},
            {"containers",
             {container("a", json{{"allowPrivilegeEscalation", false},
                                  {"capabilities", {{"drop", {"ALL"}}, {"add", {"SYS_ADMIN", "NET_ADMIN"}}}},
                                  {"seccompProfile", {{"type", "Unconfined"}}}}),
              container("b", kRestrictedContainerSc)}},
            {"volumes", {{{"name", "data"}, {"hostPath", {{"path", "/"}}}}, {{"name", "cfg"}, {"configMap", {{"name", "x"}}}}}}},
       "hostPath volumes (volume \"data\"), "
       "unrestricted capabilities (container \"a\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in "
       "securityContext.capabilities.add), "
       "restricted volume types (volume \"data\" uses restricted volume type \"hostPath\"), "
       "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false), "
       "runAsUser=0 (pod must not set runAsUser=0), "
       "seccompProfile (container \"a\" must not set securityContext.seccompProfile.type to \"Unconfined\")"},
      {"baseline",
       json{{"hostNetwork", true},
            {"hostPID", true},
            {"containers",
             {container("a", {{"privileged", true}, {"capabilities", {{"add", {"CHOWN", "SYS_ADMIN"}}}}}),
              json{{"name", "b"}, {"image", "i"}, {"ports", {{{"containerPort", 80}, {"hostPort", 8080}}, {{"containerPort", 9}, {"hostPort", 443}}}}}}},
            {"volumes", {{{"name", "h1"}, {"hostPath", {{"path", "/"}}}}, {{"name", "h2"}, {"hostPath", {{"path", "/x"}}}}}}},
       "host namespaces (hostNetwork=true, hostPID=true), hostPath volumes (volumes \"h1\", \"h2\"), "
       "hostPort (container \"b\" uses hostPorts 443, 8080), "
       "privileged (container \"a\" must not set securityContext.privileged=true), "
       "non-default capabilities (container \"a\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)"},
      // Baseline allows what restricted refuses.
      {"baseline", json{{"containers", {container("c")}}}, ""},
      {"baseline", json{{"securityContext", {{"seccompProfile", {{"type", "Unconfined"}}}}}, {"containers", {container("c")}}},
       "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"},
      {"privileged", json{{"hostNetwork", true}, {"containers", {container("c", {{"privileged", true}})}}}, ""},
      // The other baseline checks, in check-file order.
      {"baseline", json::parse(R"({
         "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}, {"name": "net.ipv4.tcp_rmem", "value": "1"}],
                             "seLinuxOptions": {"type": "spc_t"}},
         "containers": [{"name": "a", "image": "i",
                         "securityContext": {"procMount": "Unmasked", "appArmorProfile": {"type": "Unconfined"}},
                         "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}}}]})"),
       "forbidden AppArmor profile (container \"a\" must not set AppArmor profile type to \"Unconfined\"), "
       "probe or lifecycle host (container \"a\" uses probe or lifecycle host \"10.0.0.1\"), "
       "procMount (container \"a\" must not set securityContext.procMount to \"Unmasked\"), "
       "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: type \"spc_t\"), "
       "forbidden sysctls (kernel.msgmax)"},
      {"baseline", json::parse(R"({"containers": [{"name": "c", "image": "i", "securityContext":
                                  {"appArmorProfile": {"type": "RuntimeDefault"}, "procMount": "Default"}}]})"),
       ""},
      // A pod in a user namespace (hostUsers: false) may run as root inside it (KEP-127).
      {"restricted",
       json{{"hostUsers", false},
            {"securityContext", {{"runAsUser", 0}}},
            {"containers", {container("c", {{"allowPrivilegeEscalation", false},
                                            {"capabilities", {{"drop", {"ALL"}}}},
                                            {"seccompProfile", {{"type", "RuntimeDefault"}}}})}}},
       ""},
  };
  for (const auto& c : cases) EXPECT_EQ(kl::pod_security_violations(c.level, json::object(), c.spec), c.violations) << c.spec;
  // The deprecated AppArmor annotation is judged from the pod's metadata.
  const json meta{{"annotations", {{"container.apparmor.security.beta.kubernetes.io/c", "unconfined"}}}};
  EXPECT_EQ(kl::pod_security_violations("baseline", meta, json{{"containers", {container("c")}}}),
            "forbidden AppArmor profile (annotation must not set AppArmor profile type to "
            "\"container.apparmor.security.beta.kubernetes.io/c=\\\"unconfined\\\"\")");
}

TEST(KubeLocalPodSecurity, NamespaceLabelsChooseTheLevel) {
  const json labels{{"pod-security.kubernetes.io/enforce", "restricted"},
                    {"pod-security.kubernetes.io/warn", "baseline"},
                    {"pod-security.kubernetes.io/warn-version", "v1.30"}};
  ASSERT_TRUE(kl::pod_security_level(labels, "enforce"));
  EXPECT_EQ(kl::pod_security_level(labels, "enforce")->str(), "restricted:latest");
  EXPECT_EQ(kl::pod_security_level(labels, "warn")->str(), "baseline:v1.30");
  EXPECT_FALSE(kl::pod_security_level(labels, "audit"));
  EXPECT_FALSE(kl::pod_security_level(json::object(), "enforce"));
}

// plugin/pkg/admission/gc/gc_admission.go isChangingOwnerReference, newBlockingOwnerDeletionRefs.
TEST(KubeLocalValidation, OwnerReferencesThatNeedTheFinalizersPermission) {
  auto with_refs = [](json refs) { return json{{"metadata", {{"name", "x"}, {"ownerReferences", refs}}}}; };
  const json plain{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "o"}, {"uid", "u1"}};
  json blocking = plain;
  blocking["blockOwnerDeletion"] = true;
  EXPECT_FALSE(kl::owner_references_change(json{{"metadata", json::object()}}, nullptr));
  EXPECT_TRUE(kl::owner_references_change(with_refs({plain}), nullptr));
  const json old = with_refs({plain});
  EXPECT_FALSE(kl::owner_references_change(with_refs({plain}), &old));
  EXPECT_TRUE(kl::owner_references_change(with_refs({blocking}), &old));
  EXPECT_TRUE(kl::new_blocking_owner_refs(with_refs({plain}), nullptr).empty());
  EXPECT_EQ(kl::new_blocking_owner_refs(with_refs({blocking}), nullptr).size(), 1u);
  EXPECT_EQ(kl::new_blocking_owner_refs(with_refs({blocking}), &old).size(), 1u);  // false -> true
  const json old_blocking = with_refs({blocking});
  EXPECT_TRUE(kl::new_blocking_owner_refs(with_refs({blocking}), &old_blocking).empty());  // already set
}

// A continued list reads the store as of the first page (storage/etcd3 GetList at the continue revision).
TEST(Store, SnapshotAtAnEarlierVersionUndoesLaterChanges) {
  kl::Store s;
  auto obj = [](const std::string& name, const std::string& v) {
    return json{{"metadata", {{"namespace", "n"}, {"name", name}}}, {"data", {{"v", v}}}};
  };
  s.create("/configmaps", obj("a", "1"));
  s.create("/configmaps", obj("b", "1"));
  s.create("/secrets", obj("z", "1"));
  const uint64_t at = s.current_rv();
  s.create("/configmaps", obj("c", "1"));
  s.update("/configmaps", obj("a", "2"), 0);
  s.remove("/configmaps", "n", "b", 0);
  s.create("/configmaps", obj("b", "again"));
  auto then = s.snapshot_at("/configmaps", "n", at);
  ASSERT_TRUE(then);
  std::vector<std::string> seen;
  for (const auto& o : *then) seen.push_back((*o)["metadata"]["name"].get<std::string>() + "=" + (*o)["data"]["v"].get<std::string>());
  EXPECT_EQ(seen, (std::vector<std::string>{"a=1", "b=1"}));
  EXPECT_EQ(s.snapshot_at("/configmaps", "other", at)->size(), 0u);
  s.compact();
  EXPECT_FALSE(s.snapshot_at("/configmaps", "n", at));
  EXPECT_TRUE(s.snapshot_at("/configmaps", "n", s.current_rv()));
}

}  // namespace
