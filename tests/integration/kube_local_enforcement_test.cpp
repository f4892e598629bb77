// What kube-apiserver enforces, held against kube-local over HTTPS: metadata
// validation, built-in defaulting, immutable fields, MicroTime decoding,
// OwnerReferencesPermissionEnforcement, Pod Security admission, consistent
// continued lists, and the deletion generation bump. Each test names the
// kube-apiserver source whose behaviour (and message text) it pins.
#include <gtest/gtest.h>

#include "common/encoding.h"
#include "harness.h"

using namespace bo::kube;
using nlohmann::json;
using testing_support::eventually;
using testing_support::KubeLocal;

namespace {

class KubeLocalEnforcement : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new KubeLocal({"--time-scale", "100"}); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    c_ = server_->client({1});
    t_ = server_->transport();
    ns_ = "e" + bo::hex_encode(bo::random_bytes(3));
    ASSERT_TRUE(c_->create(resources::kNamespaces, "", {{"metadata", {{"name", ns_}}}}));
  }
  HttpResponse send(const std::string& method, const std::string& path, const json& body = nullptr,
                    const std::string& ctype = "application/json") {
    auto r = t_->send({method, path, ctype, body.is_null() ? "" : body.dump(), {}, ""});
    EXPECT_TRUE(r) << (r ? "" : r.error().str());
    return r ? *r : HttpResponse{};
  }
  static json body(const HttpResponse& r) { return json::parse(r.body, nullptr, false); }
  static KubeLocal* server_;
  std::unique_ptr<Client> c_;
  std::unique_ptr<Transport> t_;
  std::string ns_;
};
KubeLocal* KubeLocalEnforcement::server_ = nullptr;

json pod_spec(json container_sc = json()) {
  json c{{"name", "c"}, {"image", "busybox:1.36"}};
  if (!container_sc.is_null()) c["securityContext"] = container_sc;
  return {{"restartPolicy", "Never"}, {"containers", {c}}};
}

// pkg/registry/batch/job/strategy.go PrepareForCreate puts the Job's name in the
// job-name labels of its pod template before validation, and
// ValidatePodTemplateSpec holds label values to 63 characters: a Job's name is
// therefore limited to 63, although it is a DNS subdomain (253). The message is
// the one operators report from real clusters ("Job.batch ... is invalid:
// spec.template.labels: Invalid value: ...: must be no more than 63 characters").
TEST_F(KubeLocalEnforcement, AJobNameLongerThanALabelValueIsRefused) {
  const std::string too_long(64, 'j');
  json job{{"metadata", {{"name", too_long}, {"labels", {{"own", "label"}}}}},
           {"spec", {{"template", {{"spec", pod_spec()}}}}}};
  auto r = send("POST", resources::kJobs.path(ns_), job);
  EXPECT_EQ(r.status, 422) << r.body;
  EXPECT_EQ(body(r)["message"], "Job.batch \"" + too_long + "\" is invalid: spec.template.labels: Invalid value: \"" +
                                    too_long + "\": must be no more than 63 characters");
  EXPECT_EQ(body(r)["details"]["causes"].size(), 1u);
  EXPECT_EQ(body(r)["details"]["causes"][0]["field"], "spec.template.labels");
  job["metadata"]["name"] = std::string(63, 'j');
  auto ok = send("POST", resources::kJobs.path(ns_), job);
  EXPECT_EQ(ok.status, 201) << ok.body;
  // The Job controller names its pods by generateName "<job>-", which
  // SimpleNameGenerator cuts to 58 characters before its 5 random ones.
  auto generated = send("POST", resources::kConfigMaps.path(ns_),
                        {{"metadata", {{"generateName", std::string(63, 'j') + "-"}}}});
  ASSERT_EQ(generated.status, 201) << generated.body;
  const std::string gname = body(generated)["metadata"]["name"];
  EXPECT_EQ(gname.size(), 63u);
  EXPECT_EQ(gname.substr(0, 58), std::string(58, 'j'));
}

// apimachinery/pkg/apis/meta/v1/validation ValidateLabels and
// apimachinery/pkg/api/validation/objectmeta.go ValidateAnnotations, called by
// ValidateObjectMeta for every kind (and ValidatePodTemplateSpec for templates).
TEST_F(KubeLocalEnforcement, LabelsAndAnnotationsAreValidatedOnEveryObject) {
  const std::string long_value(64, 'v');
  auto r = send("POST", resources::kConfigMaps.path(ns_),
                {{"metadata", {{"name", "labelled"}, {"labels", {{"tier", long_value}}}}}});
  EXPECT_EQ(r.status, 422);
  const json st = body(r);
  EXPECT_EQ(st["reason"], "Invalid");
  EXPECT_EQ(st["message"], "ConfigMap \"labelled\" is invalid: metadata.labels: Invalid value: \"" + long_value +
                               "\": must be no more than 63 characters");
  EXPECT_EQ(st["details"]["causes"][0]["field"], "metadata.labels");
  EXPECT_EQ(st["details"]["causes"][0]["reason"], "FieldValueInvalid");
  // A bad key, on an update this time.
  ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", "ok"}}}}));
  auto bad_key = c_->patch(resources::kConfigMaps, ns_, "ok", PatchType::kMerge,
                           {{"metadata", {{"labels", {{"a/b/c", "v"}}}}}});
  ASSERT_FALSE(bad_key);
  EXPECT_EQ(bad_key.error().status, 422);
  EXPECT_NE(bad_key.error().message.find("metadata.labels: Invalid value: \"a/b/c\": a qualified name must consist of"),
            std::string::npos)
      << bad_key.error().message;
  // A Job's pod template labels are checked at their own path. (The Job has labels of its
  // own: SetDefaults_Job would copy the template's to a Job without any, and those fail too.)
  json job{{"metadata", {{"name", "j"}, {"labels", {{"own", "label"}}}}},
           {"spec", {{"template", {{"metadata", {{"labels", {{"x", "not ok"}}}}}, {"spec", pod_spec()}}}}}};
  auto bad_template = send("POST", resources::kJobs.path(ns_), job);
  EXPECT_EQ(bad_template.status, 422);
  EXPECT_EQ(body(bad_template)["details"]["causes"][0]["field"], "spec.template.labels");
  // Annotations: 256 KiB for keys and values together.
  json big{{"metadata", {{"name", "annotated"}, {"annotations", {{"k", std::string(256 * 1024, 'x')}}}}}};
  auto too_big = send("POST", resources::kConfigMaps.path(ns_), big);
  EXPECT_EQ(too_big.status, 422);
  EXPECT_EQ(body(too_big)["message"],
            "ConfigMap \"annotated\" is invalid: metadata.annotations: Too long: may not be more than 262144 bytes");
  big["metadata"]["annotations"]["k"] = std::string(256 * 1024 - 1, 'x');
  EXPECT_EQ(send("POST", resources::kConfigMaps.path(ns_), big).status, 201);
}

// pkg/apis/{batch,apps,core}/v1/defaults.go: the defaults a client reads back;
// re-sending an unchanged object is a no-op (no new resourceVersion).
TEST_F(KubeLocalEnforcement, BuiltInDefaultsAreAppliedAndReapplyingChangesNothing) {
  auto job = c_->create(resources::kJobs, ns_,
                        {{"metadata", {{"name", "j"}, {"annotations", {{"kube-local.si.dev/pod-outcome", "{\"result\":\"Succeeded\",\"afterSeconds\":360000}"}}}}},
                         {"spec", {{"template", {{"spec", pod_spec()}}}}}});
  ASSERT_TRUE(job) << job.error().str();
  const json& js = (*job)["spec"];
  EXPECT_EQ(js["completions"], 1);
  EXPECT_EQ(js["parallelism"], 1);
  EXPECT_EQ(js["backoffLimit"], 6);
  EXPECT_EQ(js["completionMode"], "NonIndexed");
  EXPECT_EQ(js["suspend"], false);
  EXPECT_EQ(js["manualSelector"], false);
  EXPECT_EQ(js["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"], (*job)["metadata"]["uid"]);
  EXPECT_EQ(js["template"]["metadata"]["labels"]["job-name"], "j");
  const json& tps = js["template"]["spec"];
  EXPECT_EQ(tps["dnsPolicy"], "ClusterFirst");
  EXPECT_EQ(tps["schedulerName"], "default-scheduler");
  EXPECT_EQ(tps["terminationGracePeriodSeconds"], 30);
  EXPECT_EQ(tps["securityContext"], json::object());
  EXPECT_EQ(tps["containers"][0]["imagePullPolicy"], "IfNotPresent");
  EXPECT_EQ(tps["containers"][0]["terminationMessagePath"], "/dev/termination-log");
  EXPECT_EQ(tps["containers"][0]["terminationMessagePolicy"], "File");
  // An unset restartPolicy defaults to Always, which a Job refuses (ValidateJobSpec: NotSupported).
  json no_policy{{"metadata", {{"name", "no-policy"}}}, {"spec", {{"template", {{"spec", pod_spec()}}}}}};
  no_policy["spec"]["template"]["spec"].erase("restartPolicy");
  auto refused = send("POST", resources::kJobs.path(ns_), no_policy);
  EXPECT_EQ(refused.status, 422);
  EXPECT_EQ(body(refused)["message"], "Job.batch \"no-policy\" is invalid: spec.template.spec.restartPolicy: "
                                      "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"");

  const json labels{{"app", "web"}};
  json deployment{{"metadata", {{"name", "web"}}},
                  {"spec", {{"selector", {{"matchLabels", labels}}},
                            {"template", {{"metadata", {{"labels", labels}}},
                                          {"spec", {{"containers", {{{"name", "c"}, {"image", "nginx"}}}}}}}}}}};
  auto dep = c_->create(resources::kDeployments, ns_, deployment);
  ASSERT_TRUE(dep) << dep.error().str();
  const json& ds = (*dep)["spec"];
  EXPECT_EQ(ds["replicas"], 1);
  EXPECT_EQ(ds["strategy"], (json{{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxUnavailable", "25%"}, {"maxSurge", "25%"}}}}));
  EXPECT_EQ(ds["revisionHistoryLimit"], 10);
  EXPECT_EQ(ds["progressDeadlineSeconds"], 600);
  EXPECT_EQ(ds["template"]["spec"]["restartPolicy"], "Always");
  EXPECT_EQ(ds["template"]["spec"]["containers"][0]["imagePullPolicy"], "Always");  // no tag: latest

  json service{{"metadata", {{"name", "web"}}}, {"spec", {{"selector", labels}, {"ports", {{{"port", 80}}}}}}};
  auto svc = c_->create(resources::kServices, ns_, service);
  ASSERT_TRUE(svc) << svc.error().str();
  EXPECT_EQ((*svc)["spec"]["type"], "ClusterIP");
  EXPECT_EQ((*svc)["spec"]["sessionAffinity"], "None");
  EXPECT_EQ((*svc)["spec"]["ports"][0]["protocol"], "TCP");
  EXPECT_EQ((*svc)["spec"]["ports"][0]["targetPort"], 80);

  // The caller's own, undefaulted object sent back unchanged: nothing is written.
  // (kube-local's controllers may write status meanwhile: a conflict is read again.)
  auto resend = [&](const Resource& res, const std::string& name, const json& original) {
    for (int attempt = 0; attempt < 10; ++attempt) {
      auto cur = c_->get(res, ns_, name);
      if (!cur) return ::testing::AssertionFailure() << cur.error().str();
      json again = original.is_null() ? *cur : original;
      again["metadata"]["resourceVersion"] = (*cur)["metadata"]["resourceVersion"];
      auto put = c_->update(res, ns_, again);
      if (!put && put.error().conflict()) continue;
      if (!put) return ::testing::AssertionFailure() << put.error().str();
      if ((*put)["metadata"]["resourceVersion"] != (*cur)["metadata"]["resourceVersion"] ||
          (*put)["metadata"].value("generation", 0) != (*cur)["metadata"].value("generation", 0))
        return ::testing::AssertionFailure() << res.plural << " changed:\n" << cur->dump() << "\n" << put->dump();
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "conflicts";
  };
  EXPECT_TRUE(resend(resources::kDeployments, "web", deployment));
  EXPECT_TRUE(resend(resources::kServices, "web", service));
  EXPECT_TRUE(resend(resources::kJobs, "j", nullptr));  // a Job's template is immutable: sent back as read
}

// pkg/apis/core/validation ValidateConfigMapUpdate, ValidateSecretUpdate;
// pkg/apis/apps/validation ValidateDeploymentUpdate (spec.selector, apps/v1).
TEST_F(KubeLocalEnforcement, ImmutableFieldsRefuseChanges) {
  ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", "frozen"}}}, {"immutable", true}, {"data", {{"k", "v"}}}}));
  auto change = c_->patch(resources::kConfigMaps, ns_, "frozen", PatchType::kMerge, {{"data", {{"k", "w"}}}});
  ASSERT_FALSE(change);
  EXPECT_EQ(change.error().status, 422);
  EXPECT_EQ(change.error().message,
            "ConfigMap \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set");
  auto thaw = c_->patch(resources::kConfigMaps, ns_, "frozen", PatchType::kMerge, {{"immutable", false}});
  ASSERT_FALSE(thaw);
  EXPECT_EQ(thaw.error().message,
            "ConfigMap \"frozen\" is invalid: immutable: Forbidden: field is immutable when `immutable` is set");
  // Metadata stays mutable.
  EXPECT_TRUE(c_->patch(resources::kConfigMaps, ns_, "frozen", PatchType::kMerge, {{"metadata", {{"labels", {{"a", "b"}}}}}}));
  ASSERT_TRUE(c_->create(resources::kSecrets, ns_, {{"metadata", {{"name", "frozen"}}}, {"immutable", true}, {"data", {{"k", "dg=="}}}}));
  auto secret = c_->patch(resources::kSecrets, ns_, "frozen", PatchType::kMerge, {{"data", {{"k", "dw=="}}}});
  ASSERT_FALSE(secret);
  EXPECT_EQ(secret.error().message,
            "Secret \"frozen\" is invalid: data: Forbidden: field is immutable when `immutable` is set");
  // stringData is data (Convert_v1_Secret_To_core_Secret merges it at decode): refused as well.
  auto string_data = c_->patch(resources::kSecrets, ns_, "frozen", PatchType::kMerge, {{"stringData", {{"k", "new"}}}});
  ASSERT_FALSE(string_data);
  EXPECT_EQ(string_data.error().status, 422);

  const json labels{{"app", "a"}};
  ASSERT_TRUE(c_->create(resources::kDeployments, ns_,
                         {{"metadata", {{"name", "d"}}},
                          {"spec", {{"selector", {{"matchLabels", labels}}},
                                    {"template", {{"metadata", {{"labels", {{"app", "a"}, {"v", "1"}}}}},
                                                  {"spec", {{"containers", {{{"name", "c"}, {"image", "nginx"}}}}}}}}}}}));
  auto reselect = c_->patch(resources::kDeployments, ns_, "d", PatchType::kMerge,
                            {{"spec", {{"selector", {{"matchLabels", {{"app", "a"}, {"v", "1"}}}}}}}});
  ASSERT_FALSE(reselect);
  EXPECT_EQ(reselect.error().status, 422);
  EXPECT_EQ(reselect.error().message, "Deployment.apps \"d\" is invalid: spec.selector: Invalid value: "
                                      "{\"matchLabels\":{\"app\":\"a\",\"v\":\"1\"}}: field is immutable");
}

// metav1.MicroTime.UnmarshalJSON (time.Parse with RFC3339Micro): a decode error, 400,
// as endpoints/handlers transformDecodeError words it.
TEST_F(KubeLocalEnforcement, LeaseTimesMustCarryMicroseconds) {
  json lease{{"metadata", {{"name", "l"}}}, {"spec", {{"holderIdentity", "me"}, {"renewTime", "2026-01-02T03:04:05Z"}}}};
  auto r = send("POST", resources::kLeases.path(ns_), lease);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body(r)["reason"], "BadRequest");
  EXPECT_EQ(body(r)["message"], "Lease in version \"v1\" cannot be handled as a Lease: parsing time "
                                "\"2026-01-02T03:04:05Z\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse "
                                "\"Z\" as \".000000\"");
  lease["spec"]["renewTime"] = "2026-01-02T03:04:05.000001Z";
  EXPECT_EQ(send("POST", resources::kLeases.path(ns_), lease).status, 201);
  auto bad_acquire = c_->patch(resources::kLeases, ns_, "l", PatchType::kMerge, {{"spec", {{"acquireTime", "2026-01-02T03:04:05.1Z"}}}});
  ASSERT_FALSE(bad_acquire);
  EXPECT_EQ(bad_acquire.error().status, 400);
}

// registry/generic/registry/store.go updateForGracefulDeletionAndFinalizers:
// recording a deletion on an object with finalizers bumps its generation.
TEST_F(KubeLocalEnforcement, DeletingAnObjectWithFinalizersBumpsItsGeneration) {
  const json labels{{"app", "a"}};
  auto created = c_->create(resources::kDeployments, ns_,
                            {{"metadata", {{"name", "held"}, {"finalizers", {"example.com/keep"}}}},
                             {"spec", {{"replicas", 0}, {"selector", {{"matchLabels", labels}}},
                                       {"template", {{"metadata", {{"labels", labels}}},
                                                     {"spec", {{"containers", {{{"name", "c"}, {"image", "nginx"}}}}}}}}}}});
  ASSERT_TRUE(created) << created.error().str();
  EXPECT_EQ((*created)["metadata"]["generation"], 1);
  ASSERT_TRUE(c_->remove(resources::kDeployments, ns_, "held"));
  auto deleting = c_->get(resources::kDeployments, ns_, "held");
  ASSERT_TRUE(deleting);
  EXPECT_TRUE((*deleting)["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ((*deleting)["metadata"]["generation"], 2);
  // A second delete changes nothing more.
  ASSERT_TRUE(c_->remove(resources::kDeployments, ns_, "held"));
  EXPECT_EQ((*c_->get(resources::kDeployments, ns_, "held"))["metadata"]["generation"], 2);
  // ConfigMaps carry no generation, and get none.
  ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", "held"}, {"finalizers", {"example.com/keep"}}}}}));
  ASSERT_TRUE(c_->remove(resources::kConfigMaps, ns_, "held"));
  EXPECT_FALSE((*c_->get(resources::kConfigMaps, ns_, "held"))["metadata"].contains("generation"));
  for (const auto* r : {&resources::kDeployments, &resources::kConfigMaps})
    ASSERT_TRUE(c_->patch(*r, ns_, "held", PatchType::kMerge, {{"metadata", {{"finalizers", nullptr}}}}));
}

// storage/etcd3/store.go GetList: a continue token carries the first page's
// revision, and every later page is read at it; compacted away, 410 Expired.
TEST_F(KubeLocalEnforcement, AContinuedListIsASnapshotAtItsFirstPage) {
  for (const char* n : {"a", "b", "c", "d"})
    ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", n}}}, {"data", {{"v", "1"}}}}));
  auto first = c_->list(resources::kConfigMaps, ns_, {"", "", 2, "", ""});
  ASSERT_TRUE(first);
  ASSERT_EQ((*first)["items"].size(), 2u);
  const std::string token = (*first)["metadata"]["continue"];
  ASSERT_FALSE(token.empty());
  // Changes after the first page: one deleted, one changed, one added at the end.
  ASSERT_TRUE(c_->remove(resources::kConfigMaps, ns_, "c"));
  ASSERT_TRUE(c_->patch(resources::kConfigMaps, ns_, "d", PatchType::kMerge, {{"data", {{"v", "2"}}}}));
  ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", "e"}}}, {"data", {{"v", "1"}}}}));
  auto second = c_->list(resources::kConfigMaps, ns_, {"", "", 10, token, ""});
  ASSERT_TRUE(second) << second.error().str();
  std::vector<std::string> seen;
  for (const auto& i : (*second)["items"]) seen.push_back(i["metadata"]["name"].get<std::string>() + "=" + i["data"]["v"].get<std::string>());
  EXPECT_EQ(seen, (std::vector<std::string>{"c=1", "d=1"}));
  EXPECT_EQ((*second)["metadata"]["resourceVersion"], (*first)["metadata"]["resourceVersion"]);
  server_->admin("/kube-local/compact");
  auto expired = c_->list(resources::kConfigMaps, ns_, {"", "", 10, token, ""});
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().status, 410);
}

// pod-security-admission/admission/admission.go: a Pod that violates the
// namespace's enforce level is Forbidden; a workload whose template would
// violate it is admitted with a warning (ValidatePodController).
TEST_F(KubeLocalEnforcement, PodSecurityEnforceRefusesPodsAndWarnsOnWorkloads) {
  ASSERT_TRUE(c_->patch(resources::kNamespaces, "", ns_, PatchType::kMerge,
                        {{"metadata", {{"labels", {{"pod-security.kubernetes.io/enforce", "restricted"}}}}}}));
  const std::string violations =
      "allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), "
      "unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), "
      "runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), "
      "seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or "
      "\"Localhost\")";
  auto pod = send("POST", resources::kPods.path(ns_), {{"metadata", {{"name", "x"}}}, {"spec", pod_spec()}});
  EXPECT_EQ(pod.status, 403);
  const json st = body(pod);
  EXPECT_EQ(st["reason"], "Forbidden");
  EXPECT_EQ(st["message"], "pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": " + violations);
  EXPECT_EQ(st["details"], (json{{"name", "x"}, {"kind", "pods"}}));
  const json restricted_sc{{"allowPrivilegeEscalation", false},
                           {"capabilities", {{"drop", {"ALL"}}}},
                           {"runAsNonRoot", true},
                           {"seccompProfile", {{"type", "RuntimeDefault"}}}};
  EXPECT_EQ(send("POST", resources::kPods.path(ns_), {{"metadata", {{"name", "ok"}}}, {"spec", pod_spec(restricted_sc)}}).status, 201);

  const json labels{{"app", "a"}};
  auto dep = send("POST", resources::kDeployments.path(ns_),
                  {{"metadata", {{"name", "d"}}},
                   {"spec", {{"selector", {{"matchLabels", labels}}},
                             {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod_spec()}}}}}});
  EXPECT_EQ(dep.status, 201);
  std::string escaped;
  for (char ch : "would violate PodSecurity \"restricted:latest\": " + violations) {
    if (ch == '"') escaped += '\\';
    escaped += ch;
  }
  EXPECT_EQ(dep.headers["warning"], "299 - \"" + escaped + "\"");
  // kubectl prints it as a real cluster's client does.
  const json kubectl_job{{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", {{"name", "j"}, {"namespace", ns_}}},
                         {"spec", {{"template", {{"spec", pod_spec()}}}}}};
  const auto file = testing_support::write_file(server_->dir() / ("job-" + ns_ + ".json"), kubectl_job.dump());
  auto out = server_->kubectl("create -f " + file);
  EXPECT_EQ(out.exit_code, 0) << out.output;
  EXPECT_NE(out.output.find("Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
            std::string::npos)
      << out.output;
  // baseline allows the plain pod.
  ASSERT_TRUE(c_->patch(resources::kNamespaces, "", ns_, PatchType::kMerge,
                        {{"metadata", {{"labels", {{"pod-security.kubernetes.io/enforce", "baseline"}}}}}}));
  EXPECT_EQ(send("POST", resources::kPods.path(ns_), {{"metadata", {{"name", "plain"}}}, {"spec", pod_spec()}}).status, 201);
  json host = {{"metadata", {{"name", "host"}}}, {"spec", pod_spec()}};
  host["spec"]["hostNetwork"] = true;
  auto refused = send("POST", resources::kPods.path(ns_), host);
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(body(refused)["message"],
            "pods \"host\" is forbidden: violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)");
  // The warn level admits what enforce allows, with a warning.
  ASSERT_TRUE(c_->patch(resources::kNamespaces, "", ns_, PatchType::kMerge,
                        {{"metadata", {{"labels", {{"pod-security.kubernetes.io/warn", "restricted"},
                                                   {"pod-security.kubernetes.io/warn-version", "v1.35"}}}}}}));
  auto warned = send("POST", resources::kPods.path(ns_), {{"metadata", {{"name", "warned"}}}, {"spec", pod_spec()}});
  EXPECT_EQ(warned.status, 201);
  EXPECT_TRUE(warned.headers["warning"].starts_with("299 - \"would violate PodSecurity \\\"restricted:v1.35\\\": "))
      << warned.headers["warning"];
}

// kube-local's controllers write only fields the real types have:
// DeploymentCondition has lastUpdateTime and lastTransitionTime (no
// lastProbeTime); JobStatus has no kube-local bookkeeping.
TEST_F(KubeLocalEnforcement, ControllersWriteOnlyUpstreamStatusFields) {
  const json labels{{"app", "a"}};
  ASSERT_TRUE(c_->create(resources::kDeployments, ns_,
                         {{"metadata", {{"name", "d"}}},
                          {"spec", {{"selector", {{"matchLabels", labels}}},
                                    {"template", {{"metadata", {{"labels", labels}}},
                                                  {"spec", {{"containers", {{{"name", "c"}, {"image", "nginx"}}}}}}}}}}}));
  json conditions;
  ASSERT_TRUE(eventually([&] {
    auto d = c_->get(resources::kDeployments, ns_, "d");
    conditions = d ? (*d).value("status", json::object()).value("conditions", json::array()) : json::array();
    return !conditions.empty();
  }));
  for (const auto& c : conditions) {
    EXPECT_TRUE(c.contains("lastUpdateTime")) << c;
    EXPECT_TRUE(c.contains("lastTransitionTime")) << c;
    EXPECT_FALSE(c.contains("lastProbeTime")) << c;
  }
  json job{{"metadata", {{"name", "failing"}}},
           {"spec", {{"backoffLimit", 1},
                     {"template", {{"metadata", {{"annotations", {{"kube-local.si.dev/pod-outcome", "{\"result\":\"Failed\",\"afterSeconds\":1}"}}}}},
                                   {"spec", pod_spec()}}}}}};
  ASSERT_TRUE(c_->create(resources::kJobs, ns_, job));
  json status;
  ASSERT_TRUE(eventually([&] {
    auto j = c_->get(resources::kJobs, ns_, "failing");
    status = j ? (*j).value("status", json::object()) : json::object();
    return status.value("failed", 0) >= 1;
  }));
  static const std::set<std::string> kJobStatusFields = {
      "conditions", "startTime", "completionTime", "active", "succeeded", "failed", "terminating",
      "completedIndexes", "failedIndexes", "uncountedTerminatedPods", "ready"};
  for (const auto& [k, v] : status.items()) EXPECT_TRUE(kJobStatusFields.count(k)) << "not a JobStatus field: " << k;
}

// Unknown fields of built-in kinds are dropped at decode: a Warning header
// under fieldValidation=Warn (the default), 400 "strict decoding error" under
// Strict (apiserver/pkg/endpoints/handlers/create.go, the strict serializer).
TEST_F(KubeLocalEnforcement, UnknownFieldsOfBuiltInKindsAreDroppedOrRefused) {
  const json labels{{"app", "a"}};
  json dep{{"metadata", {{"name", "d"}, {"bogus", 1}}},
           {"spec", {{"selector", {{"matchLabels", labels}}},
                     {"foo", "bar"},
                     {"template", {{"metadata", {{"labels", labels}}},
                                   {"spec", {{"containers", {{{"name", "c"}, {"image", "nginx"}, {"imagePullPolice", "x"}}}}}}}}}}};
  auto strict = send("POST", resources::kDeployments.path(ns_) + "?fieldValidation=Strict", dep);
  EXPECT_EQ(strict.status, 400);
  EXPECT_EQ(body(strict)["message"],
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field "
            "\"metadata.bogus\", unknown field \"spec.foo\", unknown field "
            "\"spec.template.spec.containers[0].imagePullPolice\"");
  auto warned = send("POST", resources::kDeployments.path(ns_), dep);
  ASSERT_EQ(warned.status, 201) << warned.body;
  EXPECT_NE(warned.headers["warning"].find("299 - \"unknown field \\\"spec.foo\\\"\""), std::string::npos)
      << warned.headers["warning"];
  const json stored = *c_->get(resources::kDeployments, ns_, "d");
  EXPECT_FALSE(stored["spec"].contains("foo"));
  EXPECT_FALSE(stored["metadata"].contains("bogus"));
  EXPECT_FALSE(stored["spec"]["template"]["spec"]["containers"][0].contains("imagePullPolice"));
  // Known fields all survive, status included.
  ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", "cm"}}}, {"data", {{"a", "b"}}}, {"immutable", false}}));
  auto cm = c_->get(resources::kConfigMaps, ns_, "cm");
  EXPECT_EQ((*cm)["data"], (json{{"a", "b"}}));
  EXPECT_EQ((*cm)["immutable"], false);
  // kubectl asks for Strict by default (--validate=strict) and shows the server's refusal.
  json with_typo = {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "typo"}, {"namespace", ns_}}},
                    {"dta", {{"a", "b"}}}};
  const auto file = testing_support::write_file(server_->dir() / ("typo-" + ns_ + ".json"), with_typo.dump());
  auto out = server_->kubectl("create -f " + file);
  EXPECT_NE(out.exit_code, 0) << out.output;
  EXPECT_NE(out.output.find("unknown field \"dta\""), std::string::npos) << out.output;
}

// pkg/registry/events and pkg/apis/events/v1/conversion.go: events.k8s.io/v1
// and core/v1 Events are one resource, its fields renamed between the two.
TEST_F(KubeLocalEnforcement, EventsAreOneResourceThroughBothApis) {
  const Resource kNewEvents{"events.k8s.io", "v1", "events", "Event", true};
  json core{{"metadata", {{"name", "core-ev"}}},
            {"involvedObject", {{"kind", "Pod"}, {"name", "p"}, {"namespace", ns_}}},
            {"reason", "Started"},
            {"message", "started the container"},
            {"type", "Normal"},
            {"count", 3},
            {"source", {{"component", "kubelet"}}},
            {"reportingComponent", "kubelet"},
            {"reportingInstance", "node-1"},
            {"firstTimestamp", "2026-01-02T03:04:05Z"},
            {"lastTimestamp", "2026-01-02T03:05:05Z"}};
  ASSERT_TRUE(c_->create(resources::kEvents, ns_, core));
  auto as_new = c_->get(kNewEvents, ns_, "core-ev");
  ASSERT_TRUE(as_new) << as_new.error().str();
  EXPECT_EQ((*as_new)["apiVersion"], "events.k8s.io/v1");
  EXPECT_EQ((*as_new)["regarding"], core["involvedObject"]);
  EXPECT_EQ((*as_new)["note"], "started the container");
  EXPECT_EQ((*as_new)["reportingController"], "kubelet");
  EXPECT_EQ((*as_new)["reportingInstance"], "node-1");
  EXPECT_EQ((*as_new)["deprecatedCount"], 3);
  EXPECT_EQ((*as_new)["deprecatedSource"], (json{{"component", "kubelet"}}));
  EXPECT_EQ((*as_new)["deprecatedFirstTimestamp"], "2026-01-02T03:04:05Z");
  EXPECT_FALSE(as_new->contains("message"));
  EXPECT_FALSE(as_new->contains("involvedObject"));

  json fresh{{"metadata", {{"name", "new-ev"}}},
             {"eventTime", "2026-01-02T03:04:05.000001Z"},
             {"regarding", {{"kind", "Job"}, {"name", "j"}, {"namespace", ns_}}},
             {"note", "created pod"},
             {"reason", "SuccessfulCreate"},
             {"type", "Normal"},
             {"action", "Create"},
             {"reportingController", "job-controller"},
             {"reportingInstance", "kube-local"}};
  ASSERT_TRUE(c_->create(kNewEvents, ns_, fresh));
  auto as_core = c_->get(resources::kEvents, ns_, "new-ev");
  ASSERT_TRUE(as_core) << as_core.error().str();
  EXPECT_EQ((*as_core)["apiVersion"], "v1");
  EXPECT_EQ((*as_core)["involvedObject"], fresh["regarding"]);
  EXPECT_EQ((*as_core)["message"], "created pod");
  EXPECT_EQ((*as_core)["reportingComponent"], "job-controller");
  EXPECT_EQ((*as_core)["action"], "Create");
  EXPECT_EQ((*as_core)["eventTime"], "2026-01-02T03:04:05.000001Z");
  // Both lists hold both, and field selectors speak each API's names.
  auto core_list = c_->list(resources::kEvents, ns_, {"", "involvedObject.kind=Job", 0, "", ""});
  ASSERT_TRUE(core_list);
  ASSERT_EQ((*core_list)["items"].size(), 1u);
  EXPECT_EQ((*core_list)["items"][0]["metadata"]["name"], "new-ev");
  auto new_list = c_->list(kNewEvents, ns_, {"", "regarding.kind=Pod", 0, "", ""});
  ASSERT_TRUE(new_list) << new_list.error().str();
  ASSERT_EQ((*new_list)["items"].size(), 1u);
  EXPECT_EQ((*new_list)["items"][0]["note"], "started the container");
  EXPECT_EQ((*c_->list(kNewEvents, ns_))["items"].size(), 2u);
  // A change through one API is seen through the other; deletion too.
  ASSERT_TRUE(c_->patch(kNewEvents, ns_, "core-ev", PatchType::kMerge, {{"note", "restarted"}}));
  EXPECT_EQ((*c_->get(resources::kEvents, ns_, "core-ev"))["message"], "restarted");
  ASSERT_TRUE(c_->remove(resources::kEvents, ns_, "new-ev"));
  EXPECT_TRUE(c_->get(kNewEvents, ns_, "new-ev").error().not_found());
}

// plugin/pkg/admission/gc/gc_admission.go (OwnerReferencesPermissionEnforcement,
// on in kube-local with --authorize): blockOwnerDeletion=true needs update on
// the owner's finalizers subresource; changing ownerReferences on an update
// needs delete on the object. RBAC's refusal has no reason: ", <nil>".
TEST(KubeLocalOwnerReferences, BlockOwnerDeletionNeedsUpdateOnTheOwnersFinalizers) {
  KubeLocal server({"--authorize"});
  auto admin = server.client({1});
  ASSERT_TRUE(admin->create(resources::kServiceAccounts, "default", {{"metadata", {{"name", "writer"}}}}));
  auto grant = [&](const std::string& name, const json& resources_list, const json& verbs) {
    const json role{{"metadata", {{"name", name}}},
                    {"rules", {{{"apiGroups", {""}}, {"resources", resources_list}, {"verbs", verbs}}}}};
    const json binding{{"metadata", {{"name", name}}},
                       {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", name}}},
                       {"subjects", {{{"kind", "ServiceAccount"}, {"name", "writer"}, {"namespace", "default"}}}}};
    return admin->request("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", &role) &&
           admin->request("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", &binding);
  };
  ASSERT_TRUE(grant("write-cm", {"configmaps"}, {"create", "get", "update", "patch"}));
  auto owner = admin->create(resources::kConfigMaps, "default", {{"metadata", {{"name", "owner"}}}});
  ASSERT_TRUE(owner);
  const json token_request = json::object();
  auto token = admin->request("POST", resources::kServiceAccounts.path("default", "writer", "token"), &token_request);
  ASSERT_TRUE(token);
  auto cfg = server.config();
  cfg.token = (*token)["status"]["token"];
  Client writer(std::move(*make_cpprest_transport(cfg)), 0, 1, {1});
  json ref{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "owner"}, {"uid", (*owner)["metadata"]["uid"]}};
  json blocking = ref;
  blocking["blockOwnerDeletion"] = true;
  auto refused = writer.create(resources::kConfigMaps, "default", {{"metadata", {{"name", "dep"}, {"ownerReferences", {blocking}}}}});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, 403);
  EXPECT_EQ(refused.error().message,
            "configmaps \"dep\" is forbidden: cannot set blockOwnerDeletion if an ownerReference refers to a resource "
            "you can't set finalizers on: , <nil>");
  // Creating with a plain reference needs nothing more; changing it later needs delete.
  ASSERT_TRUE(writer.create(resources::kConfigMaps, "default", {{"metadata", {{"name", "dep"}, {"ownerReferences", {ref}}}}}));
  auto change = writer.patch(resources::kConfigMaps, "default", "dep", PatchType::kMerge,
                             {{"metadata", {{"ownerReferences", json::array()}}}});
  ASSERT_FALSE(change);
  EXPECT_EQ(change.error().status, 403);
  EXPECT_EQ(change.error().message,
            "configmaps \"dep\" is forbidden: cannot set an ownerRef on a resource you can't delete: , <nil>");
  // With delete on configmaps and update on configmaps/finalizers, both are allowed.
  ASSERT_TRUE(grant("own-cm", {"configmaps", "configmaps/finalizers"}, {"delete", "update"}));
  auto blocked = writer.patch(resources::kConfigMaps, "default", "dep", PatchType::kMerge,
                              {{"metadata", {{"ownerReferences", {blocking}}}}});
  EXPECT_TRUE(blocked) << blocked.error().str();
}

}  // namespace

namespace {

// pkg/registry/core/service: a cluster IP from the default service CIDR 10.96.0.0/12, one per
// Service; headless and ExternalName Services get none; an update that leaves the allocated
// addresses out keeps them (storage.go patchAllocatedValues).
TEST_F(KubeLocalEnforcement, ServicesGetAClusterIpThatUpdatesKeep) {
  auto make = [&](const std::string& name, const json& spec) {
    auto r = send("POST", "/api/v1/namespaces/" + ns_ + "/services", {{"metadata", {{"name", name}}}, {"spec", spec}});
    EXPECT_EQ(r.status, 201) << r.body;
    return body(r);
  };
  const json ports = json::array({{{"port", 80}}});
  const json a = make("a", {{"ports", ports}});
  const json b = make("b", {{"ports", ports}});
  const std::string ip = a["spec"]["clusterIP"];
  EXPECT_TRUE(ip.starts_with("10.9") || ip.starts_with("10.10") || ip.starts_with("10.11")) << ip;
  EXPECT_NE(ip, b["spec"]["clusterIP"]);
  EXPECT_EQ(a["spec"]["clusterIPs"], json::array({ip}));
  EXPECT_EQ(a["spec"]["ipFamilies"], json::array({"IPv4"}));
  EXPECT_EQ(a["spec"]["ipFamilyPolicy"], "SingleStack");
  EXPECT_EQ(make("headless", {{"clusterIP", "None"}, {"ports", ports}})["spec"]["clusterIP"], "None");
  EXPECT_FALSE(make("ext", {{"type", "ExternalName"}, {"externalName", "db.example.com"}})["spec"].contains("clusterIP"));
  // A PUT without the addresses (as a client that never read them sends) keeps them.
  json put = a;
  put["spec"].erase("clusterIP");
  put["spec"].erase("clusterIPs");
  put["metadata"]["labels"] = {{"x", "y"}};
  auto r = send("PUT", "/api/v1/namespaces/" + ns_ + "/services/a", put);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(body(r)["spec"]["clusterIP"], ip);
}

}  // namespace
