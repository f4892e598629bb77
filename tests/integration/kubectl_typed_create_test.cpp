// kubectl's generators (create job/deployment/service/serviceaccount/role/
// rolebinding/clusterrole/clusterrolebinding, run, expose) build typed objects
// and send them as protobuf ("k8s\0" + runtime.Unknown). kube-local must store
// what kube-apiserver would: each test checks the stored object's fields, and
// that every field kubectl itself prints for the same command with
// --dry-run=client -o json (the object it sends, as JSON) is stored unchanged.
#include <gtest/gtest.h>

#include "harness.h"

using nlohmann::json;
using testing_support::KubeLocal;

namespace {

class KubectlTypedCreateTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new KubeLocal(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  static json get_json(const std::string& what) {
    auto r = server_->kubectl("get " + what + " -o json");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    json j = json::parse(r.output, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.output;
    return j;
  }

  // Runs `kubectl <args>` for real (protobuf) and returns what kubectl would
  // have sent as JSON (the same command with --dry-run=client -o json).
  static json create(const std::string& args) {
    // The flags go before a `--` that starts the container's command.
    std::string dry_args = args;
    const auto dashes = dry_args.find(" -- ");
    dry_args.insert(dashes == std::string::npos ? dry_args.size() : dashes, " --dry-run=client -o json");
    auto dry = server_->kubectl(dry_args);
    EXPECT_EQ(dry.exit_code, 0) << dry.output;
    json sent = json::parse(dry.output, nullptr, false);
    if (sent.is_discarded() || !sent.is_object()) {
      ADD_FAILURE() << "kubectl " << dry_args << ": " << dry.output;
      sent = json::object();
    }
    auto r = server_->kubectl(args);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output.find("unknown format"), std::string::npos) << r.output;
    return sent;
  }

  // Every member of `sent` is in `stored` with the same value (arrays
  // element by element); the server may add defaults, not change or lose.
  static void expect_contains(const json& stored, const json& sent, const std::string& path = "") {
    if (sent.is_object()) {
      ASSERT_TRUE(stored.is_object()) << path << ": " << stored.dump();
      for (const auto& [k, v] : sent.items()) {
        if (v.is_null()) continue;  // metav1.Time's zero value (creationTimestamp: null)
        ASSERT_TRUE(stored.contains(k)) << path << "/" << k << " lost; stored " << stored.dump();
        expect_contains(stored[k], v, path + "/" + k);
      }
    } else if (sent.is_array()) {
      ASSERT_TRUE(stored.is_array()) << path << ": " << stored.dump();
      ASSERT_EQ(stored.size(), sent.size()) << path << ": " << stored.dump();
      for (size_t i = 0; i < sent.size(); ++i) expect_contains(stored[i], sent[i], path + "/" + std::to_string(i));
    } else {
      EXPECT_EQ(stored, sent) << path;
    }
  }

  static void expect_stored_as_sent(const json& stored, json sent) {
    sent.erase("status");  // the server owns status
    expect_contains(stored, sent);
  }

  static KubeLocal* server_;
};
KubeLocal* KubectlTypedCreateTest::server_ = nullptr;

TEST_F(KubectlTypedCreateTest, CreateJob) {
  const json sent = create("create job once --image=busybox:1.36 -- sh -c 'echo hi'");
  const json job = get_json("job once");
  expect_stored_as_sent(job, sent);
  const json& c = job["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["name"], "once");
  EXPECT_EQ(c["image"], "busybox:1.36");
  EXPECT_EQ(c["command"], json({"sh", "-c", "echo hi"}));
  EXPECT_EQ(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
}

TEST_F(KubectlTypedCreateTest, CreateDeployment) {
  const json sent = create("create deployment web --image=nginx:1.27 --replicas=3 --port=8080");
  const json d = get_json("deployment web");
  expect_stored_as_sent(d, sent);
  EXPECT_EQ(d["spec"]["replicas"], 3);
  EXPECT_EQ(d["spec"]["selector"]["matchLabels"], json({{"app", "web"}}));
  EXPECT_EQ(d["spec"]["template"]["metadata"]["labels"], json({{"app", "web"}}));
  const json& c = d["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["image"], "nginx:1.27");
  EXPECT_EQ(c["ports"][0]["containerPort"], 8080);
}

TEST_F(KubectlTypedCreateTest, CreateDeploymentWithZeroReplicasKeepsZero) {
  const json sent = create("create deployment idle --image=nginx --replicas=0");
  const json d = get_json("deployment idle");
  expect_stored_as_sent(d, sent);
  ASSERT_TRUE(d["spec"].contains("replicas")) << d.dump();
  EXPECT_EQ(d["spec"]["replicas"], 0);
}

TEST_F(KubectlTypedCreateTest, CreateServiceClusterIP) {
  const json sent = create("create service clusterip db --tcp=5432:15432 --tcp=8080:http");
  const json s = get_json("service db");
  expect_stored_as_sent(s, sent);
  ASSERT_EQ(s["spec"]["ports"].size(), 2u) << s.dump();
  EXPECT_EQ(s["spec"]["ports"][0]["port"], 5432);
  EXPECT_EQ(s["spec"]["ports"][0]["targetPort"], 15432);
  EXPECT_EQ(s["spec"]["ports"][0]["protocol"], "TCP");
  EXPECT_EQ(s["spec"]["ports"][1]["targetPort"], "http");
  EXPECT_EQ(s["spec"]["selector"], json({{"app", "db"}}));
  EXPECT_EQ(s["spec"]["type"], "ClusterIP");
}

TEST_F(KubectlTypedCreateTest, CreateHeadlessService) {
  const json sent = create("create service clusterip headless --clusterip=None --tcp=80");
  const json s = get_json("service headless");
  expect_stored_as_sent(s, sent);
  EXPECT_EQ(s["spec"]["clusterIP"], "None");
}

TEST_F(KubectlTypedCreateTest, RunPod) {
  const json sent = create(
      "run box --image=busybox --restart=Never --labels=app=box,tier=tools --env=GREETING=hello --port=8080 "
      "--annotations=note=typed --command -- sleep 3600");
  const json p = get_json("pod box");
  expect_stored_as_sent(p, sent);
  EXPECT_EQ(p["metadata"]["labels"], json({{"app", "box"}, {"tier", "tools"}}));
  EXPECT_EQ(p["metadata"]["annotations"]["note"], "typed");
  const json& c = p["spec"]["containers"][0];
  EXPECT_EQ(c["image"], "busybox");
  EXPECT_EQ(c["command"], json({"sleep", "3600"}));
  EXPECT_EQ(c["env"], json::array({{{"name", "GREETING"}, {"value", "hello"}}}));
  EXPECT_EQ(c["ports"][0]["containerPort"], 8080);
  EXPECT_EQ(p["spec"]["restartPolicy"], "Never");
}

TEST_F(KubectlTypedCreateTest, CreateServiceAccount) {
  const json sent = create("create serviceaccount robot");
  const json sa = get_json("serviceaccount robot");
  expect_stored_as_sent(sa, sent);
  EXPECT_EQ(sa["metadata"]["name"], "robot");
}

TEST_F(KubectlTypedCreateTest, CreateRoleAndRoleBinding) {
  json sent = create("create role reader --verb=get,list --resource=pods,deployments.apps --resource-name=one");
  const json role = get_json("role reader");
  expect_stored_as_sent(role, sent);
  ASSERT_EQ(role["rules"].size(), 2u) << role.dump();
  EXPECT_EQ(role["rules"][0]["verbs"], json({"get", "list"}));
  EXPECT_EQ(role["rules"][0]["resources"], json({"pods"}));
  EXPECT_EQ(role["rules"][0]["apiGroups"], json({""}));
  EXPECT_EQ(role["rules"][1]["apiGroups"], json({"apps"}));
  EXPECT_EQ(role["rules"][1]["resourceNames"], json({"one"}));

  sent = create("create rolebinding readers --role=reader --serviceaccount=default:robot --user=alice");
  const json rb = get_json("rolebinding readers");
  expect_stored_as_sent(rb, sent);
  EXPECT_EQ(rb["roleRef"], json({{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "reader"}}));
  ASSERT_EQ(rb["subjects"].size(), 2u) << rb.dump();
  auto r = server_->kubectl("auth can-i list pods --as=system:serviceaccount:default:robot");
  EXPECT_EQ(r.output, "yes\n") << "the stored binding grants what it says";
}

TEST_F(KubectlTypedCreateTest, CreateClusterRoleAndClusterRoleBinding) {
  json sent = create("create clusterrole health --verb=get --non-resource-url=/healthz --non-resource-url=/readyz");
  const json cr = get_json("clusterrole health");
  expect_stored_as_sent(cr, sent);
  EXPECT_EQ(cr["rules"][0]["nonResourceURLs"], json({"/healthz", "/readyz"}));

  sent = create("create clusterrolebinding health --clusterrole=health --group=devs");
  const json crb = get_json("clusterrolebinding health");
  expect_stored_as_sent(crb, sent);
  EXPECT_EQ(crb["subjects"], json::array({{{"kind", "Group"}, {"apiGroup", "rbac.authorization.k8s.io"}, {"name", "devs"}}}));
  EXPECT_EQ(crb["roleRef"]["kind"], "ClusterRole");
}

TEST_F(KubectlTypedCreateTest, ExposeDeployment) {
  ASSERT_EQ(server_->kubectl("create deployment api --image=nginx --port=80").exit_code, 0);
  const json sent = create("expose deployment api --port=8000 --target-port=80 --name=api-svc");
  const json s = get_json("service api-svc");
  expect_stored_as_sent(s, sent);
  EXPECT_EQ(s["spec"]["selector"], json({{"app", "api"}}));
  EXPECT_EQ(s["spec"]["ports"][0]["port"], 8000);
  EXPECT_EQ(s["spec"]["ports"][0]["targetPort"], 80);
}

TEST_F(KubectlTypedCreateTest, CreateIngress) {
  const json sent = create(
      "create ingress web --class=nginx --rule='foo.com/bar*=svc1:8080,tls=foo-cert' --default-backend=svc0:http");
  const json ing = get_json("ingress web");
  expect_stored_as_sent(ing, sent);
  EXPECT_EQ(ing["spec"]["ingressClassName"], "nginx");
  const json& path = ing["spec"]["rules"][0]["http"]["paths"][0];
  EXPECT_EQ(ing["spec"]["rules"][0]["host"], "foo.com");
  EXPECT_EQ(path["path"], "/bar");
  EXPECT_EQ(path["pathType"], "Prefix");
  EXPECT_EQ(path["backend"]["service"], json::parse(R"({"name":"svc1","port":{"number":8080}})"));
  EXPECT_EQ(ing["spec"]["defaultBackend"]["service"], json::parse(R"({"name":"svc0","port":{"name":"http"}})"));
  EXPECT_EQ(ing["spec"]["tls"], json::parse(R"([{"hosts":["foo.com"],"secretName":"foo-cert"}])"));
}

TEST_F(KubectlTypedCreateTest, CreateTokenSendsATokenRequest) {
  ASSERT_EQ(server_->kubectl("create serviceaccount minter").exit_code, 0);
  auto r = server_->kubectl("create token minter --duration=10m --audience=api");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string token = r.output.substr(0, r.output.find('\n'));
  r = server_->kubectl("auth whoami --token=" + token + " -o jsonpath={.status.userInfo.username}");
  EXPECT_EQ(r.output, "system:serviceaccount:default:minter");
}

}  // namespace
