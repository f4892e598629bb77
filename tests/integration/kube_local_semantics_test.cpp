// kube-local against what Kubernetes documents, over HTTPS with the real client.
#include <gtest/gtest.h>

#include "common/encoding.h"
#include "harness.h"

using namespace bo::kube;
using nlohmann::json;
using testing_support::eventually;
using testing_support::KubeLocal;

namespace {

json cm(const std::string& name) { return {{"metadata", {{"name", name}}}, {"data", {{"k", "v"}}}}; }

class KubeLocalSemantics : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new KubeLocal(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    c_ = server_->client({1});
    ns_ = "s" + bo::hex_encode(bo::random_bytes(3));
    ASSERT_TRUE(c_->create(resources::kNamespaces, "", {{"metadata", {{"name", ns_}}}}));
  }
  static KubeLocal* server_;
  std::unique_ptr<Client> c_;
  std::string ns_;
};
KubeLocal* KubeLocalSemantics::server_ = nullptr;

TEST_F(KubeLocalSemantics, GenerationBumpsOnSpecChangesOnly) {
  json job = {{"metadata", {{"name", "j"}, {"annotations", {{"kube-local.si.dev/pod-outcome", "{\"result\":\"Succeeded\",\"afterSeconds\":3600}"}}}}},
              {"spec", {{"template", {{"spec", {{"restartPolicy", "Never"}, {"containers", {{{"name", "c"}, {"image", "i"}}}}}}}}}}};
  auto created = c_->create(resources::kJobs, ns_, job);
  ASSERT_TRUE(created) << created.error().str();
  EXPECT_EQ((*created)["metadata"]["generation"], 1);
  auto labelled = c_->patch(resources::kJobs, ns_, "j", PatchType::kMerge, {{"metadata", {{"labels", {{"a", "b"}}}}}});
  ASSERT_TRUE(labelled);
  EXPECT_EQ((*labelled)["metadata"]["generation"], 1);
  auto specced = c_->patch(resources::kJobs, ns_, "j", PatchType::kMerge, {{"spec", {{"backoffLimit", 1}}}});
  ASSERT_TRUE(specced);
  EXPECT_EQ((*specced)["metadata"]["generation"], 2);
  // Immutable fields of a Job stay immutable.
  auto immut = c_->patch(resources::kJobs, ns_, "j", PatchType::kMerge, {{"spec", {{"completions", 3}}}});
  ASSERT_FALSE(immut);
  EXPECT_EQ(immut.error().status, 422);
}

TEST_F(KubeLocalSemantics, NoOpUpdateWritesNothing) {
  auto a = c_->create(resources::kConfigMaps, ns_, cm("same"));
  ASSERT_TRUE(a);
  auto b = c_->update(resources::kConfigMaps, ns_, *a);
  ASSERT_TRUE(b);
  EXPECT_EQ((*b)["metadata"]["resourceVersion"], (*a)["metadata"]["resourceVersion"]);
}

TEST_F(KubeLocalSemantics, FieldAndLabelSelectorsFilterLists) {
  ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", "a"}, {"labels", {{"tier", "db"}}}}}}));
  ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", "b"}, {"labels", {{"tier", "web"}}}}}}));
  auto names = [&](const ListOptions& o) {
    std::vector<std::string> out;
    auto l = c_->list(resources::kConfigMaps, ns_, o);
    if (l)
      for (const auto& i : (*l)["items"]) out.push_back(i["metadata"]["name"]);
    return out;
  };
  EXPECT_EQ(names({"", "metadata.name=a", 0, "", ""}), std::vector<std::string>{"a"});
  EXPECT_EQ(names({"", "metadata.name!=a", 0, "", ""}), std::vector<std::string>{"b"});
  EXPECT_EQ(names({"tier in (web,cache)", "", 0, "", ""}), std::vector<std::string>{"b"});
  EXPECT_EQ(names({"tier", "metadata.namespace=" + ns_, 0, "", ""}), (std::vector<std::string>{"a", "b"}));
  // An unsupported field is refused, as Kubernetes does.
  auto bad = c_->list(resources::kConfigMaps, ns_, {"", "data.k=v", 0, "", ""});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 400);
}

TEST_F(KubeLocalSemantics, GenerateNameMakesUniqueNames) {
  json o = {{"metadata", {{"generateName", "gen-"}}}, {"data", {{"k", "v"}}}};
  auto a = c_->create(resources::kConfigMaps, ns_, o), b = c_->create(resources::kConfigMaps, ns_, o);
  ASSERT_TRUE(a && b);
  EXPECT_TRUE((*a)["metadata"]["name"].get<std::string>().starts_with("gen-"));
  EXPECT_NE((*a)["metadata"]["name"], (*b)["metadata"]["name"]);
  EXPECT_NE((*a)["metadata"]["uid"], (*b)["metadata"]["uid"]);
}

TEST_F(KubeLocalSemantics, FinalizersHoldDeletionUntilRemoved) {
  json o = cm("held");
  o["metadata"]["finalizers"] = {"example.com/keep"};
  ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, o));
  auto del = c_->remove(resources::kConfigMaps, ns_, "held");
  ASSERT_TRUE(del);
  auto still = c_->get(resources::kConfigMaps, ns_, "held");
  ASSERT_TRUE(still);
  EXPECT_TRUE((*still)["metadata"].contains("deletionTimestamp"));
  // No new finalizers while deleting.
  auto add = c_->patch(resources::kConfigMaps, ns_, "held", PatchType::kMerge,
                       {{"metadata", {{"finalizers", {"example.com/keep", "example.com/more"}}}}});
  ASSERT_FALSE(add);
  EXPECT_EQ(add.error().status, 422);
  ASSERT_TRUE(c_->patch(resources::kConfigMaps, ns_, "held", PatchType::kMerge, {{"metadata", {{"finalizers", nullptr}}}}));
  EXPECT_TRUE(c_->get(resources::kConfigMaps, ns_, "held").error().not_found());
}

TEST_F(KubeLocalSemantics, ForegroundDeletionWaitsForDependents) {
  auto owner = c_->create(resources::kConfigMaps, ns_, cm("fg-owner"));
  ASSERT_TRUE(owner);
  json dep = cm("fg-dep");
  dep["metadata"]["ownerReferences"] = json::array({{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "fg-owner"},
                                                     {"uid", (*owner)["metadata"]["uid"]}, {"blockOwnerDeletion", true}}});
  ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, dep));
  ASSERT_TRUE(c_->remove(resources::kConfigMaps, ns_, "fg-owner", {"Foreground", "", ""}));
  ASSERT_TRUE(eventually([&] {
    return c_->get(resources::kConfigMaps, ns_, "fg-owner").error().not_found() &&
           c_->get(resources::kConfigMaps, ns_, "fg-dep").error().not_found();
  }));
}

TEST_F(KubeLocalSemantics, DryRunValidatesWithoutPersisting) {
  const json body = cm("dry");
  auto r = c_->request("POST", resources::kConfigMaps.path(ns_) + "?dryRun=All", &body);
  ASSERT_TRUE(r);
  EXPECT_EQ((*r)["metadata"]["name"], "dry");
  EXPECT_TRUE(c_->get(resources::kConfigMaps, ns_, "dry").error().not_found());
}

TEST_F(KubeLocalSemantics, NamespaceDeletionCascades) {
  const std::string doomed = ns_ + "-x";
  ASSERT_TRUE(c_->create(resources::kNamespaces, "", {{"metadata", {{"name", doomed}}}}));
  ASSERT_TRUE(c_->create(resources::kConfigMaps, doomed, cm("inside")));
  json held = cm("held");
  held["metadata"]["finalizers"] = {"example.com/keep"};
  ASSERT_TRUE(c_->create(resources::kConfigMaps, doomed, held));
  ASSERT_TRUE(c_->remove(resources::kNamespaces, "", doomed));
  // The finalizer keeps the namespace Terminating: contents go, new content is refused.
  ASSERT_TRUE(eventually([&] { return c_->get(resources::kConfigMaps, doomed, "inside").error().not_found(); }));
  auto terminating = c_->get(resources::kNamespaces, "", doomed);
  ASSERT_TRUE(terminating);
  EXPECT_EQ((*terminating)["status"]["phase"], "Terminating");
  auto refused = c_->create(resources::kConfigMaps, doomed, cm("late"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, 403);
  ASSERT_TRUE(c_->patch(resources::kConfigMaps, doomed, "held", PatchType::kMerge, {{"metadata", {{"finalizers", nullptr}}}}));
  ASSERT_TRUE(eventually([&] { return c_->get(resources::kNamespaces, "", doomed).error().not_found(); }));
}

TEST_F(KubeLocalSemantics, BadRequestsGetKubernetesStatusErrors) {
  auto client = server_->client({1});
  // Malformed JSON -> 400
  auto t = make_cpprest_transport(server_->config());
  ASSERT_TRUE(t);
  auto raw = (*t)->send({"POST", resources::kConfigMaps.path(ns_), "application/json", "{not json", {}, ""});
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 400);
  EXPECT_EQ(json::parse(raw->body)["kind"], "Status");
  // Unsupported patch type -> 415
  raw = (*t)->send({"PATCH", resources::kConfigMaps.path(ns_, "x"), "application/x-yaml", "a: b", {}, ""});
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 415);
  // Unknown kind -> 404
  raw = (*t)->send({"GET", "/apis/nope.example.com/v1/widgets", "", "", {}, ""});
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 404);
  // Huge body -> 413
  raw = (*t)->send({"POST", resources::kConfigMaps.path(ns_), "application/json",
                    json{{"metadata", {{"name", "big"}}}, {"data", {{"k", std::string(4 * 1024 * 1024, 'x')}}}}.dump(), {}, ""});
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 413);
  // Unauthenticated -> 401
  auto cfg = server_->config();
  cfg.token = "wrong";
  auto anon = make_cpprest_transport(cfg);
  raw = (*anon)->send({"GET", resources::kConfigMaps.path(ns_), "", "", {}, ""});
  ASSERT_TRUE(raw);
  EXPECT_EQ(raw->status, 401);
  // The server is still fine.
  EXPECT_TRUE(c_->get(resources::kNamespaces, "", ns_));
}

TEST(KubeLocalPersistence, StateSurvivesKillDashNine) {
  const auto data = testing_support::make_temp_dir("kl-data");
  std::string uid;
  {
    KubeLocal server({}, data);
    auto c = server.client();
    auto created = c->create(resources::kConfigMaps, "default", cm("durable"));
    ASSERT_TRUE(created);
    uid = (*created)["metadata"]["uid"];
    server.stop(SIGKILL);
    server.start();
    auto c2 = server.client();
    auto got = c2->get(resources::kConfigMaps, "default", "durable");
    ASSERT_TRUE(got) << got.error().str();
    EXPECT_EQ((*got)["metadata"]["uid"], uid);
    auto next = c2->create(resources::kConfigMaps, "default", cm("after"));
    ASSERT_TRUE(next);
    EXPECT_GT(std::stoull((*next)["metadata"]["resourceVersion"].get<std::string>()),
              std::stoull((*got)["metadata"]["resourceVersion"].get<std::string>()));
  }
  std::filesystem::remove_all(data);
}

// A kubeconfig for `server` that authenticates with `token` instead of the admin's.
std::filesystem::path kubeconfig_with_token(const KubeLocal& server, const std::string& name, const std::string& token) {
  const auto kc = server.dir() / (name + ".kubeconfig");
  const auto text = testing_support::run("cat " + server.kubeconfig().string()).output;
  const auto pos = text.find("token: ");
  testing_support::write_file(kc, text.substr(0, pos) + "token: " + token + text.substr(text.find('\n', pos)));
  return kc;
}

TEST(KubeLocalAuthorization, RbacDecidesAndRefusalsAreKubernetesShaped) {
  KubeLocal server({"--authorize"});
  auto admin = server.client({1});
  ASSERT_TRUE(admin->create(resources::kServiceAccounts, "default", {{"metadata", {{"name", "reader"}}}}));
  const json role{{"metadata", {{"name", "read-cm"}}},
                  {"rules", {{{"apiGroups", {""}}, {"resources", {"configmaps"}}, {"verbs", {"get", "list"}}}}}};
  const json binding{{"metadata", {{"name", "read-cm"}}},
                     {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "read-cm"}}},
                     {"subjects", {{{"kind", "ServiceAccount"}, {"name", "reader"}, {"namespace", "default"}}}}};
  ASSERT_TRUE(admin->request("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles", &role));
  ASSERT_TRUE(admin->request("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", &binding));
  const json token_request = json::object();
  auto token = admin->request("POST", resources::kServiceAccounts.path("default", "reader", "token"), &token_request);
  ASSERT_TRUE(token);
  auto cfg = server.config();
  cfg.token = (*token)["status"]["token"];
  auto t = make_cpprest_transport(cfg);
  Client reader(std::move(*t), 0, 1, {1});
  EXPECT_TRUE(reader.list(resources::kConfigMaps, "default"));
  auto denied = reader.list(resources::kSecrets, "default");
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().status, 403);
  EXPECT_EQ(denied.error().message,
            "secrets is forbidden: User \"system:serviceaccount:default:reader\" cannot list resource \"secrets\" in "
            "API group \"\" in the namespace \"default\"");
  auto other_ns = reader.list(resources::kConfigMaps, "kube-system");
  ASSERT_FALSE(other_ns);
  EXPECT_EQ(other_ns.error().status, 403);
  // kubectl auth can-i agrees, with the service account's own token.
  const auto kc = kubeconfig_with_token(server, "reader", cfg.token);
  auto yes = testing_support::run("kubectl --kubeconfig " + kc.string() + " auth can-i list configmaps");
  EXPECT_NE(yes.output.find("yes"), std::string::npos) << yes.output;
  auto no = testing_support::run("kubectl --kubeconfig " + kc.string() + " auth can-i list secrets");
  EXPECT_NE(no.output.find("no"), std::string::npos) << no.output;
}

// The simulated Job controller and kubelet, against what Kubernetes documents
// for Jobs and Deployments (simulated delays run 100x faster here).
class KubeLocalWorkloads : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new KubeLocal({"--time-scale", "100"}); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    c_ = server_->client({1});
    ns_ = "w" + bo::hex_encode(bo::random_bytes(3));
    ASSERT_TRUE(c_->create(resources::kNamespaces, "", {{"metadata", {{"name", ns_}}}}));
  }
  json job(const std::string& name, json outcome, json spec_extra = json::object()) {
    json spec = {{"template", {{"metadata", {{"annotations", {{"kube-local.si.dev/pod-outcome", outcome.dump()}}}}},
                               {"spec", {{"restartPolicy", "Never"},
                                         {"containers", {{{"name", "c"}, {"image", "busybox"}}}}}}}}};
    spec.merge_patch(spec_extra);
    auto r = c_->create(resources::kJobs, ns_, {{"metadata", {{"name", name}}}, {"spec", spec}});
    EXPECT_TRUE(r) << (r ? "" : r.error().str());
    return r ? *r : json();
  }
  json status(const std::string& name) {
    auto j = c_->get(resources::kJobs, ns_, name);
    return j ? (*j).value("status", json::object()) : json::object();
  }
  std::string condition(const std::string& name, const char* type) {
    const json st = status(name);
    for (const auto& c : st.value("conditions", json::array()))
      if (c.value("type", "") == type && c.value("status", "") == "True") return c.value("reason", "?");
    return "";
  }
  size_t pods_of(const std::string& name) {
    auto l = c_->list(resources::kPods, ns_, {"batch.kubernetes.io/job-name=" + name, "", 0, "", ""});
    return l ? (*l)["items"].size() : 999;
  }
  static KubeLocal* server_;
  std::unique_ptr<Client> c_;
  std::string ns_;
};
KubeLocal* KubeLocalWorkloads::server_ = nullptr;

TEST_F(KubeLocalWorkloads, ASucceedingJobCompletesWithCountsAndTimes) {
  job("ok", {{"result", "Succeeded"}, {"afterSeconds", 1}, {"message", "done"}});
  ASSERT_TRUE(eventually([&] { return condition("ok", "Complete") == "CompletionsReached"; })) << status("ok");
  const json st = status("ok");
  EXPECT_EQ(st.value("succeeded", 0), 1);
  EXPECT_TRUE(st.contains("startTime"));
  EXPECT_TRUE(st.contains("completionTime"));
  auto pods = c_->list(resources::kPods, ns_, {"batch.kubernetes.io/job-name=ok", "", 0, "", ""});
  ASSERT_EQ((*pods)["items"].size(), 1u);
  const json& cs = (*pods)["items"][0]["status"]["containerStatuses"][0];
  EXPECT_EQ(cs["state"]["terminated"]["exitCode"], 0);
  EXPECT_EQ(cs["state"]["terminated"]["message"], "done");
}

TEST_F(KubeLocalWorkloads, FailedPodsAreRetriedUpToTheBackoffLimit) {
  job("retry", {{"result", "Failed"}, {"afterSeconds", 1}, {"exitCode", 3}}, {{"backoffLimit", 2}});
  ASSERT_TRUE(eventually([&] { return condition("retry", "Failed") == "BackoffLimitExceeded"; },
                         std::chrono::seconds(20))) << status("retry");
  EXPECT_EQ(status("retry").value("failed", 0), 3);  // the first try and two retries
  EXPECT_EQ(pods_of("retry"), 3u);
  // A pod that fails once, then succeeds, completes the Job within the limit.
  job("flaky", {{"result", "Succeeded"}, {"afterSeconds", 1}, {"failAttempts", 1}}, {{"backoffLimit", 2}});
  ASSERT_TRUE(eventually([&] { return condition("flaky", "Complete") == "CompletionsReached"; },
                         std::chrono::seconds(20))) << status("flaky");
  EXPECT_EQ(status("flaky").value("failed", 0), 1);
  EXPECT_EQ(status("flaky").value("succeeded", 0), 1);
}

TEST_F(KubeLocalWorkloads, ActiveDeadlineFailsTheJobAndStopsItsPod) {
  job("slow", {{"result", "Succeeded"}, {"afterSeconds", 100000}}, {{"activeDeadlineSeconds", 1}});
  ASSERT_TRUE(eventually([&] { return condition("slow", "Failed") == "DeadlineExceeded"; }, std::chrono::seconds(10)))
      << status("slow");
  EXPECT_TRUE(eventually([&] { return pods_of("slow") == 0; }));
  EXPECT_FALSE(status("slow").contains("active"));
}

TEST_F(KubeLocalWorkloads, FinishedJobsAreDeletedAfterTheirTtlWithTheirPods) {
  const json created = job("short-lived", {{"result", "Succeeded"}, {"afterSeconds", 1}}, {{"ttlSecondsAfterFinished", 100}});
  // 100 s at 100x: about a second after it completes the Job is gone. Polling can miss
  // that second on a loaded machine, so the Job's life is read from a watch instead.
  std::string completed_reason;
  bool deleted = false;
  const std::string rv = created["metadata"].value("resourceVersion", "");
  auto watched = c_->watch(resources::kJobs, ns_, {"", "metadata.name=short-lived", rv, 30, false},
                           [&](const WatchEvent& ev) {
                             if (ev.type == WatchEvent::Type::kDeleted) deleted = true;
                             for (const auto& c : ev.object.value("status", json::object()).value("conditions", json::array()))
                               if (c.value("type", "") == "Complete" && c.value("status", "") == "True" && !deleted)
                                 completed_reason = c.value("reason", "?");
                             return !deleted;
                           });
  ASSERT_TRUE(watched) << watched.error().str();
  EXPECT_EQ(completed_reason, "CompletionsReached");
  ASSERT_TRUE(deleted) << "the Job outlived its TTL by more than the watch's 30 s";
  // The garbage collector takes its pods.
  EXPECT_TRUE(eventually([&] { return pods_of("short-lived") == 0; }));
  // Without a TTL, a finished Job stays.
  job("kept", {{"result", "Succeeded"}, {"afterSeconds", 1}});
  ASSERT_TRUE(eventually([&] { return condition("kept", "Complete") == "CompletionsReached"; }));
  EXPECT_TRUE(c_->get(resources::kJobs, ns_, "kept").has_value());
}

TEST_F(KubeLocalWorkloads, DeploymentsReportReadyReplicas) {
  const json labels = {{"app", "web"}};
  json pod_template = {{"metadata", {{"labels", labels}}}};
  pod_template["spec"]["containers"] = json::array({{{"name", "c"}, {"image", "nginx"}}});
  json deployment = {{"metadata", {{"name", "web"}}}};
  deployment["spec"] = {{"replicas", 2}, {"selector", {{"matchLabels", labels}}}, {"template", pod_template}};
  ASSERT_TRUE(c_->create(resources::kDeployments, ns_, deployment));
  ASSERT_TRUE(eventually([&] {
    auto d = c_->get(resources::kDeployments, ns_, "web");
    if (!d) return false;
    const json st = (*d).value("status", json::object());  // the controller may not have written it yet
    return st.value("readyReplicas", 0) == 2 && st.value("availableReplicas", 0) == 2;
  })) << c_->get(resources::kDeployments, ns_, "web")->dump();
  ASSERT_TRUE(c_->patch(resources::kDeployments, ns_, "web", PatchType::kMerge, {{"spec", {{"replicas", 0}}}}));
  EXPECT_TRUE(eventually([&] {
    auto d = c_->get(resources::kDeployments, ns_, "web");
    return d && (*d).value("status", json::object()).value("readyReplicas", 0) == 0;
  }));
}

}  // namespace

namespace {

const char* kScaledSet = R"(apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: postgres, image: postgres:15}]
)";

// RBAC (plugin/pkg/auth/authorizer/rbac/rbac.go ResourceMatches): scaling is the verb on
// statefulsets/scale; a rule for statefulsets alone does not grant it, "*/scale" does.
TEST(KubeLocalAuthorization, ScalingNeedsTheScaleSubresourceInTheRole) {
  KubeLocal server({"--authorize"});
  auto admin = server.client({1});
  ASSERT_EQ(server.kubectl("apply -f " + testing_support::write_file(server.dir() / "db.yaml", kScaledSet)).exit_code, 0);
  ASSERT_TRUE(admin->create(resources::kServiceAccounts, "default", {{"metadata", {{"name", "scaler"}}}}));
  json role{{"metadata", {{"name", "scaler"}}},
            {"rules", {{{"apiGroups", {"apps"}}, {"resources", {"statefulsets"}},
                        {"verbs", {"get", "list", "watch", "patch", "update"}}}}}};
  const json binding{{"metadata", {{"name", "scaler"}}},
                     {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "scaler"}}},
                     {"subjects", {{{"kind", "ServiceAccount"}, {"name", "scaler"}, {"namespace", "default"}}}}};
  const std::string roles = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles";
  ASSERT_TRUE(admin->request("POST", roles, &role));
  ASSERT_TRUE(admin->request("POST", "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings", &binding));
  const json token_request = json::object();
  auto token = admin->request("POST", resources::kServiceAccounts.path("default", "scaler", "token"), &token_request);
  ASSERT_TRUE(token);
  const auto kc = kubeconfig_with_token(server, "scaler", (*token)["status"]["token"]);
  auto as_scaler = [&](const std::string& args) {
    return testing_support::run("kubectl --kubeconfig " + kc.string() + " --cache-dir " +
                                (server.dir() / "scaler-cache").string() + " " + args);
  };
  auto r = as_scaler("auth can-i patch statefulsets --subresource=scale");
  EXPECT_NE(r.output.find("no"), std::string::npos) << r.output;
  r = as_scaler("scale statefulset db --replicas=1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("statefulsets.apps \"db\" is forbidden: User \"system:serviceaccount:default:scaler\" cannot "
                          "patch resource \"statefulsets/scale\" in API group \"apps\" in the namespace \"default\""),
            std::string::npos)
      << r.output;
  // "*/scale" names the scale subresource of every resource.
  role["rules"].push_back({{"apiGroups", {"apps"}}, {"resources", {"*/scale"}}, {"verbs", {"get", "patch", "update"}}});
  ASSERT_TRUE(admin->request("PUT", roles + "/scaler", &role));
  r = as_scaler("auth can-i patch statefulsets --subresource=scale");
  EXPECT_NE(r.output.find("yes"), std::string::npos) << r.output;
  r = as_scaler("scale statefulset db --replicas=1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json::parse(server.kubectl("get statefulset db -o json").output)["spec"]["replicas"], 1);
}

// ValidatingAdmissionPolicies see a scale request as kube-apiserver matches it: only rules naming
// the subresource (statefulsets/scale, */scale) match, and the object is the autoscaling/v1 Scale.
TEST(ValidatingAdmissionPolicies, ScaleRequestsMatchOnlyRulesNamingTheSubresource) {
  KubeLocal server;
  auto admin = server.client({1});
  ASSERT_EQ(server.kubectl("apply -f " + testing_support::write_file(server.dir() / "db.yaml", kScaledSet)).exit_code, 0);
  auto policy = [&](const std::string& name, const json& rules, const std::string& expression, const std::string& message) {
    ASSERT_TRUE(admin->create(resources::kValidatingAdmissionPolicies, "",
                              {{"metadata", {{"name", name}}},
                               {"spec", {{"failurePolicy", "Fail"},
                                         {"matchConstraints", {{"resourceRules", rules}}},
                                         {"validations", {{{"expression", expression}, {"message", message}}}}}}}));
    // No matchResources: the binding constrains nothing, subresources included.
    ASSERT_TRUE(admin->create(resources::kValidatingAdmissionPolicyBindings, "",
                              {{"metadata", {{"name", name}}},
                               {"spec", {{"policyName", name}, {"validationActions", {"Deny"}}}}}));
  };
  auto rule = [](const std::string& group, const std::string& resource) {
    return json::array({{{"operations", {"UPDATE"}}, {"apiGroups", {group}}, {"apiVersions", {"*"}}, {"resources", {resource}}}});
  };
  policy("never-zero", rule("apps", "statefulsets/scale"),
         "request.subResource == 'scale' && request.kind.group == 'autoscaling' && request.kind.kind == 'Scale' && "
         "request.resource.resource == 'statefulsets' && object.kind == 'Scale' && has(object.spec.replicas) && "
         "object.spec.replicas > 0",
         "a database is never scaled to zero");
  policy("old-is-a-scale", rule("*", "*/scale"), "oldObject.kind == 'Scale' && oldObject.status.selector == 'app=db'",
         "the old object is the Scale");
  policy("frozen", rule("apps", "statefulsets"), "false", "statefulsets are frozen");
  // The freeze on statefulsets holds for the StatefulSet itself...
  auto r = server.kubectl("label statefulset db tier=data");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("statefulsets are frozen"), std::string::npos) << r.output;
  // ...but not for its scale subresource, which the other two policies judge.
  r = server.kubectl("scale statefulset db --replicas=1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = server.kubectl("scale statefulset db --replicas=0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("ValidatingAdmissionPolicy 'never-zero' with binding 'never-zero' denied request: a database is "
                          "never scaled to zero"),
            std::string::npos)
      << r.output;
  // The Status as kube-apiserver words it (policy/validating/dispatcher.go): admission.NewForbidden's
  // message, the policy's reason (Invalid by default) and code.
  const json zero = {{"spec", {{"replicas", 0}}}};
  auto refused = admin->request("PATCH", "/apis/apps/v1/namespaces/default/statefulsets/db/scale", &zero,
                                "application/merge-patch+json");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, 422);
  EXPECT_EQ(refused.error().message,
            "statefulsets.apps \"db\" is forbidden: ValidatingAdmissionPolicy 'never-zero' with binding 'never-zero' "
            "denied request: a database is never scaled to zero");
  EXPECT_EQ(json::parse(server.kubectl("get statefulset db -o json").output)["spec"]["replicas"], 1);
}

}  // namespace

namespace {

// policy/v1 PodDisruptionBudget is served (the chart makes one), stored and
// validated as the API server's ValidatePodDisruptionBudgetSpec does; nothing
// evicts pods here, so no budget is ever consulted.
TEST(KubeLocalPolicy, PodDisruptionBudgetsAreServedAndValidated) {
  KubeLocal server;
  const auto apply = [&](const std::string& name, const std::string& spec) {
    const auto f = testing_support::write_file(server.dir() / (name + ".yaml"),
                                               "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: " + name +
                                                   ", namespace: default}\nspec: " + spec + "\n");
    return server.kubectl("apply --server-side -f " + f);
  };
  auto r = apply("ok", "{minAvailable: 1, selector: {matchLabels: {app: x}}}");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = server.kubectl("get pdb ok -o jsonpath={.spec.minAvailable}");
  EXPECT_EQ(r.output, "1") << r.output;
  EXPECT_EQ(apply("pct", "{maxUnavailable: \"50%\", selector: {matchLabels: {app: x}}}").exit_code, 0);
  r = apply("both", "{minAvailable: 1, maxUnavailable: 1}");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("minAvailable and maxUnavailable cannot be both set"), std::string::npos) << r.output;
  r = apply("negative", "{minAvailable: -1}");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"), std::string::npos)
      << r.output;
  r = apply("over", "{maxUnavailable: \"150%\"}");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("must not be greater than 100%"), std::string::npos) << r.output;
  r = apply("words", "{maxUnavailable: \"half\"}");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("a valid percent string"), std::string::npos) << r.output;
}

}  // namespace
