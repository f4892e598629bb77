// The real kubectl against kube-local: what users will type must work.
#include <gtest/gtest.h>

#include <thread>

#include "harness.h"

using testing_support::eventually;
using testing_support::KubeLocal;
using testing_support::write_file;

namespace {

const char* kCrd = R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, description: How big the widget is.}
              color: {type: string, enum: [red, blue], default: red}
          status:
            type: object
            properties:
              conditions:
                type: array
                items: {type: object, x-kubernetes-preserve-unknown-fields: true}
)";

class KubectlTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new KubeLocal();
    auto r = server_->kubectl("apply -f " + write_file(server_->dir() / "crd.yaml", kCrd));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static KubeLocal* server_;
};
KubeLocal* KubectlTest::server_ = nullptr;

TEST_F(KubectlTest, ApplyCreatesThenConfiguresACustomResource) {
  const auto f = server_->dir() / "w.yaml";
  write_file(f, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3}\n");
  auto r = server_->kubectl("apply -f " + f.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("widget.example.com/w1 created"), std::string::npos) << r.output;
  write_file(f, "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 5}\n");
  r = server_->kubectl("apply -f " + f.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("widget.example.com/w1 configured"), std::string::npos) << r.output;
  r = server_->kubectl("get widget w1 -o jsonpath={.spec.size}/{.spec.color}/{.metadata.generation}");
  EXPECT_EQ(r.output, "5/red/2");
  r = server_->kubectl("apply -f " + f.string());
  EXPECT_NE(r.output.find("unchanged"), std::string::npos) << r.output;
}

TEST_F(KubectlTest, GetPrintsTheCrdPrinterColumns) {
  write_file(server_->dir() / "w2.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 7}\n");
  ASSERT_EQ(server_->kubectl("apply -f " + (server_->dir() / "w2.yaml").string()).exit_code, 0);
  auto r = server_->kubectl("get wd w2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("NAME   SIZE   READY   AGE"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("w2     7"), std::string::npos) << r.output;
}

TEST_F(KubectlTest, InvalidCustomResourceIsRefusedWithTheField) {
  write_file(server_->dir() / "bad.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: bad}\nspec: {size: 0, color: green}\n");
  auto r = server_->kubectl("apply -f " + (server_->dir() / "bad.yaml").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("spec.size"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("spec.color: Unsupported value: \"green\""), std::string::npos) << r.output;
  write_file(server_->dir() / "unknown.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: u}\nspec: {size: 1, shape: round}\n");
  r = server_->kubectl("apply -f " + (server_->dir() / "unknown.yaml").string());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("unknown field \"spec.shape\""), std::string::npos) << r.output;
}

TEST_F(KubectlTest, SecretApplyGetYamlAndDelete) {
  const auto f = server_->dir() / "s.yaml";
  write_file(f, "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {password: hunter2}\n");
  auto r = server_->kubectl("apply -f " + f.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  write_file(f, "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {password: hunter3}\n");
  ASSERT_EQ(server_->kubectl("apply -f " + f.string()).exit_code, 0);
  r = server_->kubectl("get secret creds -o yaml");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("password: aHVudGVyMw=="), std::string::npos) << r.output;
  r = server_->kubectl("delete secret creds");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = server_->kubectl("get secret creds");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("NotFound"), std::string::npos) << r.output;
}

TEST_F(KubectlTest, SortByAFieldOutsideMetadataGetsWholeObjects) {
  // kubectl --sort-by asks for Tables with includeObject=Object and sorts on the embedded objects.
  const auto f = server_->dir() / "events.yaml";
  write_file(f,
             "apiVersion: v1\nkind: Event\nmetadata: {name: later, namespace: default}\n"
             "involvedObject: {kind: Pod, name: p, namespace: default}\nreason: Second\nmessage: m\ntype: Normal\n"
             "lastTimestamp: '2026-11-25T03:00:00Z'\n---\n"
             "apiVersion: v1\nkind: Event\nmetadata: {name: earlier, namespace: default}\n"
             "involvedObject: {kind: Pod, name: p, namespace: default}\nreason: First\nmessage: m\ntype: Normal\n"
             "lastTimestamp: '2026-11-24T03:00:00Z'\n");
  ASSERT_EQ(server_->kubectl("create -f " + f.string()).exit_code, 0);
  auto r = server_->kubectl("get events -n default --sort-by=.lastTimestamp");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto first = r.output.find("First"), second = r.output.find("Second");
  ASSERT_NE(first, std::string::npos) << r.output;
  ASSERT_NE(second, std::string::npos) << r.output;
  EXPECT_LT(first, second) << r.output;
}

TEST_F(KubectlTest, DescribeShowsTheObject) {
  write_file(server_->dir() / "d.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: described}\ndata: {a: b}\n");
  ASSERT_EQ(server_->kubectl("apply -f " + (server_->dir() / "d.yaml").string()).exit_code, 0);
  auto r = server_->kubectl("describe configmap described");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Name:         described"), std::string::npos) << r.output;
}

TEST_F(KubectlTest, WatchStreamsChanges) {
  write_file(server_->dir() / "wc.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: watched}\ndata: {a: '1'}\n");
  ASSERT_EQ(server_->kubectl("apply -f " + (server_->dir() / "wc.yaml").string()).exit_code, 0);
  // kubectl get -w in the background (bounded by timeout); change the object; the change shows up.
  const auto out = server_->dir() / "watch.out";
  const std::string cmd = "timeout 30 kubectl --kubeconfig " + server_->kubeconfig().string() + " --cache-dir " +
                          (server_->dir() / "kubectl-cache").string() +
                          " get configmap watched -w -o jsonpath='{.data.a}{\"\\n\"}' > " + out.string() + " 2>&1 &";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  auto seen = [&](const std::string& v) {
    return eventually([&] { return testing_support::run("cat " + out.string()).output.find(v) != std::string::npos; });
  };
  ASSERT_TRUE(seen("1"));
  ASSERT_EQ(server_->kubectl("patch configmap watched -p '{\"data\":{\"a\":\"2\"}}'").exit_code, 0);
  EXPECT_TRUE(seen("2"));
  testing_support::run("pkill -f 'get configmap watched -w'", 5);
}

TEST_F(KubectlTest, WaitForConditionReady) {
  write_file(server_->dir() / "w3.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {size: 2}\n");
  ASSERT_EQ(server_->kubectl("apply -f " + (server_->dir() / "w3.yaml").string()).exit_code, 0);
  auto none = server_->kubectl("wait --for=condition=Ready widget/w3 --timeout=1s");
  EXPECT_NE(none.exit_code, 0);
  auto patched = server_->kubectl(
      "patch widget w3 --subresource=status --type=merge -p "
      "'{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}'");
  ASSERT_EQ(patched.exit_code, 0) << patched.output;
  auto r = server_->kubectl("wait --for=condition=Ready widget/w3 --timeout=20s");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("condition met"), std::string::npos) << r.output;
}

TEST_F(KubectlTest, AuthCanIAnswers) {
  auto r = server_->kubectl("auth can-i create secrets");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("yes"), std::string::npos) << r.output;
}

TEST_F(KubectlTest, TypedCreateSendsProtobufAndIsUnderstood) {
  auto r = server_->kubectl("create configmap typed --from-literal=a=b");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = server_->kubectl("get configmap typed -o jsonpath={.data.a}");
  EXPECT_EQ(r.output, "b");
  r = server_->kubectl("create secret generic typed --from-literal=password=s3cret");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = server_->kubectl("get secret typed -o jsonpath={.data.password}");
  EXPECT_EQ(r.output, "czNjcmV0");
}

TEST_F(KubectlTest, ExplainDescribesACustomResourceField) {
  auto r = server_->kubectl("explain widget.spec.size");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("How big the widget is."), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("<integer>"), std::string::npos) << r.output;
}

TEST_F(KubectlTest, JobRunsToCompletionThroughTheSimulatedKubelet) {
  const auto f = server_->dir() / "job.yaml";
  write_file(f, R"(apiVersion: batch/v1
kind: Job
metadata:
  name: quick
  annotations:
    kube-local.si.dev/pod-outcome: '{"result":"Succeeded","afterSeconds":0.2,"message":"{\"ok\":true}"}'
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: main, image: busybox}]
)");
  ASSERT_EQ(server_->kubectl("apply -f " + f.string()).exit_code, 0);
  auto r = server_->kubectl("wait --for=condition=Complete job/quick --timeout=30s");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = server_->kubectl("get pods -l job-name=quick -o jsonpath={.items[0].status.containerStatuses[0].state.terminated.message}");
  EXPECT_EQ(r.output, "{\"ok\":true}");
}

}  // namespace

namespace {

TEST_F(KubectlTest, ReapplyingAChangedCrdConfiguresIt) {
  std::string changed = kCrd;
  const std::string marker = "    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}\n";
  changed.replace(changed.find(marker), marker.size(),
                  marker + "    - {name: Color, type: string, jsonPath: .spec.color}\n");
  const auto f = write_file(server_->dir() / "crd2.yaml", changed);
  auto r = server_->kubectl("apply -f " + f);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("customresourcedefinition.apiextensions.k8s.io/widgets.example.com configured"),
            std::string::npos) << r.output;
  write_file(server_->dir() / "w5.yaml", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w5}\nspec: {size: 1}\n");
  ASSERT_EQ(server_->kubectl("apply -f " + (server_->dir() / "w5.yaml").string()).exit_code, 0);
  r = server_->kubectl("get widget w5");
  EXPECT_NE(r.output.find("COLOR"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("red"), std::string::npos) << r.output;
}

TEST(KubeLocalTokens, StaticTokensFileAuthenticatesUsersWithTheirGroups) {
  const auto dir = testing_support::make_temp_dir("tokens");
  const auto tokens = write_file(dir / "tokens.csv", "# token,user,uid,groups\ns3cr3t-token,alice,1001,\"team-a,team-b\"\n");
  KubeLocal server({"--tokens", tokens});
  auto cfg = server.config();
  cfg.token = "s3cr3t-token";
  bo::kube::Client c(std::move(*bo::kube::make_cpprest_transport(cfg)), 0, 1, {1});
  const nlohmann::json review{{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "SelfSubjectReview"}};
  auto who = c.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", &review);
  ASSERT_TRUE(who) << who.error().str();
  EXPECT_EQ((*who)["status"]["userInfo"]["username"], "alice");
  EXPECT_EQ((*who)["status"]["userInfo"]["uid"], "1001");
  EXPECT_EQ((*who)["status"]["userInfo"]["groups"][0], "team-a");
  EXPECT_EQ((*who)["status"]["userInfo"]["groups"][1], "team-b");
  std::filesystem::remove_all(dir);
}

}  // namespace

namespace {

// kubectl 1.35 opens `wait` and `rollout status` as watch-list requests (WatchListClient):
// they only return once kube-local ends the initial events with the annotated bookmark.
TEST_F(KubectlTest, RolloutStatusWaitsForTheDeploymentThroughAWatchList) {
  const auto f = write_file(server_->dir() / "web.yaml", R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: nginx}]
)");
  ASSERT_EQ(server_->kubectl("apply -f " + f).exit_code, 0);
  auto r = server_->kubectl("rollout status deployment/web --timeout=30s", 40);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("successfully rolled out"), std::string::npos) << r.output;
}

TEST_F(KubectlTest, WaitForDeleteReturnsOnceTheObjectIsGone) {
  ASSERT_EQ(server_->kubectl("create configmap doomed").exit_code, 0);
  auto r = server_->kubectl("wait --for=delete configmap/doomed --timeout=1s");
  EXPECT_NE(r.exit_code, 0) << r.output;  // still there: the wait times out
  ASSERT_EQ(server_->kubectl("delete configmap doomed --wait=true --timeout=30s", 40).exit_code, 0);
  r = server_->kubectl("wait --for=delete configmap/doomed --timeout=10s");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

TEST_F(KubectlTest, WaitForAJsonpathValueThatArrivesLater) {
  ASSERT_EQ(server_->kubectl("create configmap later --from-literal=state=pending").exit_code, 0);
  std::thread patcher([&] {
    // kubectl wait is already watching or about to: either way the change must end it.
    (void)server_->kubectl("patch configmap later -p '{\"data\":{\"state\":\"done\"}}'");
  });
  auto r = server_->kubectl("wait --for=jsonpath={.data.state}=done configmap/later --timeout=20s", 30);
  patcher.join();
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace

namespace {

// `kubectl logs` reads pods/log (registry/core/pod/rest/log.go): a process pod's output, a simulated
// pod's termination message; tailLines, limitBytes, previous and follow as PodLogOptions define them.
class KubectlLogs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new KubeLocal({"--exec-image", "shell=/bin/sh"}); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static void job(const std::string& name, const std::string& outcome, const std::string& script) {
    const auto f = write_file(server_->dir() / (name + ".yaml"),
                              "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: " + name +
                                  "\n  annotations:\n    kube-local.si.dev/pod-outcome: '" + outcome +
                                  "'\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n"
                                  "      containers: [{name: main, image: shell, args: ['-c', " + script + "]}]\n");
    auto r = server_->kubectl("apply -f " + f);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static KubeLocal* server_;
};
KubeLocal* KubectlLogs::server_ = nullptr;

TEST_F(KubectlLogs, ShowWhatTheProcessWroteWithTailAndLimit) {
  job("printer", R"({"exec": true})", "'printf \"one\\ntwo\\nthree\\n\"; echo err >&2'");
  ASSERT_EQ(server_->kubectl("wait --for=condition=Complete job/printer --timeout=30s").exit_code, 0);
  auto r = server_->kubectl("logs job/printer");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "one\ntwo\nthree\nerr\n");
  EXPECT_EQ(server_->kubectl("logs job/printer --tail=2").output, "three\nerr\n");
  EXPECT_EQ(server_->kubectl("logs job/printer --tail=0").output, "");
  EXPECT_EQ(server_->kubectl("logs job/printer --limit-bytes=5").output, "one\nt");
  r = server_->kubectl("logs job/printer --previous");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("previous terminated container \"main\" in pod"), std::string::npos) << r.output;
  r = server_->kubectl("logs job/printer -c other");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("container other is not valid for pod"), std::string::npos) << r.output;
}

TEST_F(KubectlLogs, ASimulatedPodShowsItsMessage) {
  job("simulated", R"({"result":"Succeeded","afterSeconds":0.1,"message":"backup done"})", "'true'");
  ASSERT_EQ(server_->kubectl("wait --for=condition=Complete job/simulated --timeout=30s").exit_code, 0);
  EXPECT_EQ(server_->kubectl("logs job/simulated").output, "backup done");
}

TEST_F(KubectlLogs, FollowStreamsUntilTheContainerEnds) {
  const auto gate = server_->dir() / "gate";
  job("follower", R"({"exec": true})",
      "'echo first; while [ ! -e " + gate.string() + " ]; do sleep 0.05; done; echo second'");
  // The process waits on the gate file: the log shows "first" while the container runs.
  ASSERT_TRUE(eventually([&] { return server_->kubectl("logs job/follower").output == "first\n"; },
                         std::chrono::seconds(30)));
  testing_support::CommandResult followed;
  std::thread f([&] { followed = server_->kubectl("logs -f job/follower", 60); });
  // kubectl logs -f is attached or about to be: either way it must print to the end and exit.
  testing_support::write_file(gate, "");
  f.join();
  EXPECT_EQ(followed.exit_code, 0) << followed.output;
  EXPECT_EQ(followed.output, "first\nsecond\n");
}

}  // namespace

namespace {

// `kubectl get -o yaml` prints a kind: List; kubectl validates it against /openapi/v2 before sending
// its items, so a saved list can be applied again, and an invalid item is named before anything is sent.
TEST_F(KubectlTest, ASavedListAppliesAgainAndItsItemsAreValidated) {
  ASSERT_EQ(server_->kubectl("create configmap l1 --from-literal=a=1").exit_code, 0);
  ASSERT_EQ(server_->kubectl("create configmap l2 --from-literal=a=2").exit_code, 0);
  auto saved = server_->kubectl("get configmap l1 l2 -o yaml");
  ASSERT_EQ(saved.exit_code, 0) << saved.output;
  const auto f = write_file(server_->dir() / "list.yaml", saved.output);
  auto r = server_->kubectl("apply -f " + f);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // Once deleted, they can be created from the saved list (kubectl's Helper.Create clears the resourceVersion).
  ASSERT_EQ(server_->kubectl("delete configmap l1 l2").exit_code, 0);
  r = server_->kubectl("create -f " + f);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto fresh = write_file(server_->dir() / "fresh-list.yaml",
                                "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
                                "  metadata: {name: l3}\n  data: {a: '3'}\n- apiVersion: example.com/v1\n  kind: Widget\n"
                                "  metadata: {name: listed}\n  spec: {size: 1}\n");
  r = server_->kubectl("create -f " + fresh);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  const auto bad = write_file(server_->dir() / "bad-list.yaml",
                              "apiVersion: v1\nkind: List\nitems:\n- apiVersion: example.com/v1\n  kind: Widget\n"
                              "  metadata: {name: listed2}\n  spec: {size: 1, shade: dark}\n");
  r = server_->kubectl("create -f " + bad);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("unknown field \"shade\""), std::string::npos) << r.output;
  EXPECT_NE(server_->kubectl("get widget listed2").exit_code, 0);
}

TEST_F(KubectlTest, GetAllListsTheWorkloadKinds) {
  auto r = server_->kubectl("get all");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  auto d = server_->kubectl("api-resources --categories=all -o name");
  EXPECT_EQ(d.exit_code, 0) << d.output;
  for (const char* kind : {"pods", "services", "deployments.apps", "jobs.batch"})
    EXPECT_NE(d.output.find(kind), std::string::npos) << kind << "\n" << d.output;
}

}  // namespace

namespace {

// The Job controller's Events (pkg/controller/job/job_controller.go), as `kubectl describe job` shows them.
TEST_F(KubectlLogs, DescribeJobShowsTheJobControllersEvents) {
  job("described", R"({"result":"Succeeded","afterSeconds":0.1,"message":"ok"})", "'true'");
  ASSERT_EQ(server_->kubectl("wait --for=condition=Complete job/described --timeout=30s").exit_code, 0);
  std::string out;
  ASSERT_TRUE(eventually([&] {
    out = server_->kubectl("describe job described").output;
    return out.find("Completed") != std::string::npos && out.find("Job completed") != std::string::npos;
  })) << out;
  EXPECT_NE(out.find("SuccessfulCreate"), std::string::npos) << out;
  EXPECT_NE(out.find("Created pod: described-"), std::string::npos) << out;
  EXPECT_NE(out.find("job-controller"), std::string::npos) << out;
  job("doomed", R"({"result":"Failed","afterSeconds":0.1,"exitCode":1})", "'false'");
  ASSERT_EQ(server_->kubectl("wait --for=condition=Failed job/doomed --timeout=30s").exit_code, 0);
  ASSERT_TRUE(eventually([&] {
    out = server_->kubectl("get events --field-selector involvedObject.name=doomed,type=Warning -o "
                           "jsonpath={.items[*].reason}").output;
    return out == "BackoffLimitExceeded";
  })) << out;
}

}  // namespace

namespace {

// `kubectl scale` and `kubectl get --subresource=scale` go through the scale subresource
// (pkg/registry/apps/statefulset/storage/storage.go ScaleREST): client-go's scale client finds
// autoscaling/v1 Scale in discovery and patches spec.replicas there; the StatefulSet follows.
TEST_F(KubectlTest, ScaleGoesThroughTheScaleSubresource) {
  using nlohmann::json;
  const auto f = write_file(server_->dir() / "db-sts.yaml", R"(apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: postgres, image: postgres:15}]
)");
  ASSERT_EQ(server_->kubectl("apply -f " + f).exit_code, 0);
  auto r = server_->kubectl("scale statefulset db --replicas=3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("statefulset.apps/db scaled"), std::string::npos) << r.output;
  const json sts = json::parse(server_->kubectl("get statefulset db -o json --show-managed-fields").output, nullptr, false);
  ASSERT_TRUE(sts.is_object());
  EXPECT_EQ(sts["spec"]["replicas"], 3);
  EXPECT_EQ(sts["metadata"]["generation"], 2);  // a spec change, made through /scale
  bool scale_entry = false;
  for (const auto& m : sts["metadata"].value("managedFields", json::array()))
    if (m.value("subresource", "") == "scale")
      scale_entry = m["fieldsV1"].dump().find("\"f:replicas\"") != std::string::npos;
  EXPECT_TRUE(scale_entry) << sts["metadata"]["managedFields"].dump();
  // The StatefulSet controller makes the pods one after the other; status.replicas counts them.
  json scale;
  ASSERT_TRUE(eventually([&] {
    scale = json::parse(server_->kubectl("get --subresource=scale statefulset db -o json").output, nullptr, false);
    return scale.is_object() && scale["status"].value("replicas", -1) == 3;
  }, std::chrono::seconds(30))) << scale.dump();
  EXPECT_EQ(scale["kind"], "Scale");
  EXPECT_EQ(scale["apiVersion"], "autoscaling/v1");
  EXPECT_EQ(scale["metadata"]["name"], "db");
  EXPECT_EQ(scale["metadata"]["uid"], sts["metadata"]["uid"]);
  EXPECT_EQ(scale["metadata"]["creationTimestamp"], sts["metadata"]["creationTimestamp"]);
  EXPECT_EQ(scale["spec"]["replicas"], 3);
  EXPECT_EQ(scale["status"]["selector"], "app=db");
  // The table kubectl prints for a Scale (printScale).
  r = server_->kubectl("get --subresource=scale statefulset db");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("NAME   DESIRED   AVAILABLE   AGE"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("db     3         3"), std::string::npos) << r.output;
  // With a precondition kubectl reads the Scale and checks it itself...
  r = server_->kubectl("scale statefulset db --replicas=1 --current-replicas=2");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Expected replicas to be 2, was 3"), std::string::npos) << r.output;
  // ...then writes it back whole (PUT).
  r = server_->kubectl("scale statefulset db --replicas=2 --current-replicas=3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json::parse(server_->kubectl("get statefulset db -o json").output)["spec"]["replicas"], 2);
  // A Scale written with a stale resourceVersion is the store's 409.
  auto c = server_->client({1});
  const std::string path = "/apis/apps/v1/namespaces/default/statefulsets/db/scale";
  json stale = scale;
  stale["metadata"]["resourceVersion"] = "1";
  stale["spec"]["replicas"] = 1;
  auto conflict = c->request("PUT", path, &stale);
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().status, 409);
  EXPECT_NE(conflict.error().message.find("the object has been modified"), std::string::npos) << conflict.error().message;
  // A JSON patch of the Scale answers with the new Scale.
  const json one = json::parse(R"([{"op": "replace", "path": "/spec/replicas", "value": 1}])");
  auto patched = c->request("PATCH", path, &one, "application/json-patch+json");
  ASSERT_TRUE(patched) << patched.error().message;
  EXPECT_EQ((*patched)["kind"], "Scale");
  EXPECT_EQ((*patched)["spec"]["replicas"], 1);
  // Scaled to 0: the pods go, the highest ordinal first, and the Scale shows no replicas.
  r = server_->kubectl("scale statefulset db --replicas=0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(eventually([&] {
    scale = json::parse(server_->kubectl("get --subresource=scale statefulset db -o json").output, nullptr, false);
    return scale.is_object() && scale["status"].value("replicas", -1) == 0;
  }, std::chrono::seconds(30))) << scale.dump();
  EXPECT_EQ(scale["spec"], json::object());  // autoscaling/v1 omits a zero spec.replicas
  EXPECT_EQ(server_->kubectl("get pods -l app=db -o name").output.find("pod/"), std::string::npos);
  // ValidateScale: negative replicas are refused, naming spec.replicas (kubectl refuses them itself,
  // so the Scale is written directly).
  const json negative = {{"apiVersion", "autoscaling/v1"}, {"kind", "Scale"},
                         {"metadata", {{"name", "db"}, {"namespace", "default"}}}, {"spec", {{"replicas", -1}}}};
  auto refused = c->request("PUT", path, &negative);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, 422);
  EXPECT_NE(refused.error().message.find(
                "Scale.autoscaling \"db\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"),
            std::string::npos)
      << refused.error().message;
  // A Deployment scales the same way.
  ASSERT_EQ(server_->kubectl("create deployment scaled --image=nginx --replicas=1").exit_code, 0);
  r = server_->kubectl("scale deployment scaled --replicas=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  scale = json::parse(server_->kubectl("get --subresource=scale deployment scaled -o json").output, nullptr, false);
  ASSERT_TRUE(scale.is_object());
  EXPECT_EQ(scale["spec"]["replicas"], 2);
  EXPECT_EQ(scale["status"]["selector"], "app=scaled");
  // A missing parent is the parent's 404.
  r = server_->kubectl("get --subresource=scale statefulset nothing -o json");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("statefulsets.apps \"nothing\" not found"), std::string::npos) << r.output;
}

}  // namespace
