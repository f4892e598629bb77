// kube-local calls admission webhooks over HTTPS as kube-apiserver does.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <mutex>

#include "common/encoding.h"
#include "harness.h"
#include "kube-local/certs.h"
#include "kube-local/server.h"

using namespace bo::kube;
using nlohmann::json;
using testing_support::KubeLocal;

namespace {

// A webhook server: denies ConfigMaps with a "forbidden" key, labels the rest.
class Webhook {
 public:
  Webhook() : tls_(kl::generate_tls("webhook")) {
    server_ = std::make_unique<kl::HttpsServer>([this](const kl::Request& r) { return handle(r); }, tls_.server, 0);
    server_->start();
  }
  ~Webhook() { server_->stop(); }
  std::string url(const std::string& path) const { return "https://127.0.0.1:" + std::to_string(server_->port()) + path; }
  std::string ca_bundle() const { return bo::base64_encode(tls_.ca.cert); }
  std::vector<json> requests() {
    std::lock_guard lock(mu_);
    return seen_;
  }
  // Runs while a DELETE is being admitted, before the server commits it.
  void on_delete(std::function<void(const json& request)> fn) {
    std::lock_guard lock(mu_);
    on_delete_ = std::move(fn);
  }

 private:
  kl::Response handle(const kl::Request& r) {
    const json review = json::parse(r.body);
    const json& req = review["request"];
    std::function<void(const json&)> on_delete;
    {
      std::lock_guard lock(mu_);
      seen_.push_back(req);
      on_delete = on_delete_;
    }
    if (req.value("operation", "") == "DELETE" && on_delete) on_delete(req);
    json resp{{"uid", req["uid"]}, {"allowed", true}};
    if (r.path == "/validate" && req["object"].is_object() && req["object"].value("data", json::object()).contains("forbidden"))
      resp = {{"uid", req["uid"]}, {"allowed", false}, {"status", {{"code", 403}, {"message", "forbidden keys are forbidden"}}}};
    if (r.path == "/mutate") {
      const json patch = json::array({{{"op", "add"}, {"path", "/metadata/labels/mutated"}, {"value", "yes"}}});
      resp["patchType"] = "JSONPatch";
      resp["patch"] = bo::base64_encode(patch.dump());
    }
    kl::Response out;
    out.body = json{{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"response", resp}}.dump();
    return out;
  }
  kl::TlsMaterial tls_;
  std::unique_ptr<kl::HttpsServer> server_;
  std::mutex mu_;
  std::vector<json> seen_;
  std::function<void(const json&)> on_delete_;
};

json webhook_config(const std::string& name, const std::string& url, const std::string& ca,
                    const std::string& failure_policy = "Fail", const json& operations = {"CREATE", "UPDATE"}) {
  return {{"metadata", {{"name", name}}},
          {"webhooks",
           {{{"name", name + ".example.com"},
             {"clientConfig", {{"url", url}, {"caBundle", ca}}},
             {"rules", {{{"operations", operations}, {"apiGroups", {""}}, {"apiVersions", {"v1"}},
                         {"resources", {"configmaps"}}}}},
             {"objectSelector", {{"matchLabels", {{"webhook", "on"}}}}},
             {"failurePolicy", failure_policy},
             {"sideEffects", "None"},
             {"admissionReviewVersions", {"v1"}},
             {"timeoutSeconds", 5}}}}};
}

const Resource kValidating{"admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "", false};
const Resource kMutating{"admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "", false};

json labelled(const std::string& name, json data) {
  return {{"metadata", {{"name", name}, {"labels", {{"webhook", "on"}}}}}, {"data", data}};
}

TEST(AdmissionWebhooks, ValidatingAndMutatingWebhooksAreCalledWithTheCallersIdentity) {
  KubeLocal server;
  Webhook hook;
  auto c = server.client({1});
  ASSERT_TRUE(c->create(kValidating, "", webhook_config("deny-forbidden", hook.url("/validate"), hook.ca_bundle())));
  ASSERT_TRUE(c->create(kMutating, "", webhook_config("add-label", hook.url("/mutate"), hook.ca_bundle())));
  auto denied = c->create(resources::kConfigMaps, "default", labelled("bad", {{"forbidden", "x"}}));
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().status, 403);
  EXPECT_EQ(denied.error().message,
            "admission webhook \"deny-forbidden.example.com\" denied the request: forbidden keys are forbidden");
  auto ok = c->create(resources::kConfigMaps, "default", labelled("good", {{"fine", "x"}}));
  ASSERT_TRUE(ok) << ok.error().str();
  EXPECT_EQ((*ok)["metadata"]["labels"]["mutated"], "yes");
  // Unlabelled objects are outside the objectSelector: no call.
  const size_t before = hook.requests().size();
  ASSERT_TRUE(c->create(resources::kConfigMaps, "default", {{"metadata", {{"name", "plain"}}}}));
  EXPECT_EQ(hook.requests().size(), before);
  const json first = hook.requests().front();
  EXPECT_EQ(first["operation"], "CREATE");
  EXPECT_EQ(first["userInfo"]["username"], "kube-local-admin");
  EXPECT_EQ(first["resource"]["resource"], "configmaps");
}

// A write that lands between a DELETE's read and its commit (here: while the DELETE is being
// admitted) makes the API server read again and retry (store.go Delete: GuaranteedUpdate;
// etcd3 conditionalDelete). The caller sees a 409 only for its own stale preconditions.
TEST(AdmissionWebhooks, AWriteThatLandsDuringADeleteIsRetriedNotAConflict) {
  KubeLocal server;
  Webhook hook;
  auto c = server.client({1});
  auto writer = server.client({1});
  ASSERT_TRUE(c->create(kValidating, "", webhook_config("watch-deletes", hook.url("/validate"), hook.ca_bundle(),
                                                        "Fail", {"DELETE"})));
  std::atomic<int> writes{0};
  hook.on_delete([&](const json& req) {
    if (writes.fetch_add(1) > 0) return;  // one racing write per test object
    const json patch{{"metadata", {{"labels", {{"raced", "yes"}}}}}};
    auto w = writer->patch(resources::kConfigMaps, "default", req.value("name", ""), PatchType::kMerge, patch);
    ASSERT_TRUE(w) << w.error().str();
  });
  // With a finalizer, the delete is an update that sets deletionTimestamp.
  json kept = labelled("kept", {{"k", "v"}});
  kept["metadata"]["finalizers"] = {"example.com/keep"};
  ASSERT_TRUE(c->create(resources::kConfigMaps, "default", kept));
  auto marked = c->remove(resources::kConfigMaps, "default", "kept");
  ASSERT_TRUE(marked) << marked.error().str();
  EXPECT_TRUE((*marked)["metadata"].contains("deletionTimestamp"));
  EXPECT_EQ((*marked)["metadata"]["labels"]["raced"], "yes") << "the retry starts from what the racing write stored";
  EXPECT_EQ(writes.load(), 2) << "the retry is admitted again";
  // Without one, it removes the object.
  writes = 0;
  ASSERT_TRUE(c->create(resources::kConfigMaps, "default", labelled("gone", {{"k", "v"}})));
  auto removed = c->remove(resources::kConfigMaps, "default", "gone");
  ASSERT_TRUE(removed) << removed.error().str();
  EXPECT_FALSE(c->get(resources::kConfigMaps, "default", "gone"));
  // The caller's own stale precondition is still a 409.
  writes = 0;
  auto created = c->create(resources::kConfigMaps, "default", labelled("stale", {{"k", "v"}}));
  ASSERT_TRUE(created);
  DeleteOptions stale;
  stale.precondition_resource_version = (*created)["metadata"].value("resourceVersion", "");
  auto refused = c->remove(resources::kConfigMaps, "default", "stale", stale);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, 409);
  EXPECT_TRUE(c->get(resources::kConfigMaps, "default", "stale"));
}

TEST(AdmissionWebhooks, FailurePolicyDecidesWhenTheWebhookIsDownOrUntrusted) {
  KubeLocal server;
  Webhook hook;
  auto c = server.client({1});
  const std::string wrong_ca = bo::base64_encode(kl::generate_tls("other").ca.cert);
  ASSERT_TRUE(c->create(kValidating, "", webhook_config("untrusted", hook.url("/validate"), wrong_ca)));
  auto refused = c->create(resources::kConfigMaps, "default", labelled("a", {{"k", "v"}}));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().status, 500);
  EXPECT_NE(refused.error().message.find("failed calling webhook \"untrusted.example.com\""), std::string::npos)
      << refused.error().message;
  ASSERT_TRUE(c->remove(kValidating, "", "untrusted"));
  ASSERT_TRUE(c->create(kValidating, "", webhook_config("down", "https://127.0.0.1:1/validate", hook.ca_bundle(), "Ignore")));
  EXPECT_TRUE(c->create(resources::kConfigMaps, "default", labelled("b", {{"k", "v"}})));
}

}  // namespace

namespace {

TEST(CelRules, CrdValidationRulesAndTransitionRulesAreEnforced) {
  KubeLocal server;
  const auto crd = testing_support::write_file(server.dir() / "crd.yaml", R"(apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ranges.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: ranges, singular: range, kind: Range}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            x-kubernetes-validations:
            - {rule: "self.min <= self.max", message: "min must not exceed max"}
            - {rule: "self.owner == oldSelf.owner", message: "owner is immutable"}
            properties:
              min: {type: integer}
              max: {type: integer}
              owner: {type: string}
)");
  ASSERT_EQ(server.kubectl("apply -f " + crd).exit_code, 0);
  auto c = server.client({1});
  const Resource ranges{"example.com", "v1", "ranges", "Range", true};
  auto bad = c->create(ranges, "default", {{"metadata", {{"name", "r"}}}, {"spec", {{"min", 5}, {"max", 1}, {"owner", "a"}}}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 422);
  EXPECT_NE(bad.error().message.find("spec: Invalid value: \"object\": min must not exceed max"), std::string::npos)
      << bad.error().message;
  ASSERT_TRUE(c->create(ranges, "default", {{"metadata", {{"name", "r"}}}, {"spec", {{"min", 1}, {"max", 5}, {"owner", "a"}}}}));
  auto moved = c->patch(ranges, "default", "r", PatchType::kMerge, {{"spec", {{"owner", "b"}}}});
  ASSERT_FALSE(moved);
  EXPECT_NE(moved.error().message.find("owner is immutable"), std::string::npos) << moved.error().message;
  EXPECT_TRUE(c->patch(ranges, "default", "r", PatchType::kMerge, {{"spec", {{"max", 9}}}}));
}

TEST(ValidatingAdmissionPolicies, FreezeANamespaceForEveryoneButOneServiceAccount) {
  KubeLocal server;
  auto admin = server.client({1});
  ASSERT_TRUE(admin->create(resources::kNamespaces, "", {{"metadata", {{"name", "frozen"}}}}));
  ASSERT_TRUE(admin->create(resources::kSecrets, "frozen", {{"metadata", {{"name", "s"}}}, {"stringData", {{"k", "v"}}}}));
  ASSERT_TRUE(admin->create(resources::kServiceAccounts, "frozen", {{"metadata", {{"name", "operator"}}}}));
  ASSERT_TRUE(admin->create(resources::kValidatingAdmissionPolicies, "",
                            {{"metadata", {{"name", "freeze"}}},
                             {"spec", {{"failurePolicy", "Fail"},
                                       {"matchConstraints", {{"resourceRules", {{{"operations", {"CREATE", "UPDATE", "DELETE"}},
                                                                                 {"apiGroups", {"", "apps"}},
                                                                                 {"apiVersions", {"*"}},
                                                                                 {"resources", {"secrets", "configmaps", "deployments", "statefulsets"}}}}}}},
                                       {"validations", {{{"expression", "request.userInfo.username == 'system:serviceaccount:frozen:operator'"},
                                                         {"message", "mutations are blocked until the restore validates"},
                                                         {"reason", "Forbidden"}}}}}}}));
  ASSERT_TRUE(admin->create(resources::kValidatingAdmissionPolicyBindings, "",
                            {{"metadata", {{"name", "freeze-frozen"}}},
                             {"spec", {{"policyName", "freeze"}, {"validationActions", {"Deny"}},
                                       {"matchResources", {{"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", "frozen"}}}}}}}}}}));
  // kubectl as admin: refused, with the policy's message.
  const auto f = testing_support::write_file(server.dir() / "s.yaml",
                                             "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: frozen}\nstringData: {k: changed}\n");
  auto r = server.kubectl("apply -f " + f);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("mutations are blocked until the restore validates"), std::string::npos) << r.output;
  // Other namespaces are untouched.
  EXPECT_TRUE(admin->create(resources::kSecrets, "default", {{"metadata", {{"name", "free"}}}, {"stringData", {{"k", "v"}}}}));
  // The exempt service account may still write.
  const json tr = json::object();
  auto token = admin->request("POST", resources::kServiceAccounts.path("frozen", "operator", "token"), &tr);
  ASSERT_TRUE(token);
  auto cfg = server.config();
  cfg.token = (*token)["status"]["token"];
  Client op(std::move(*make_cpprest_transport(cfg)), 0, 1, {1});
  EXPECT_TRUE(op.patch(resources::kSecrets, "frozen", "s", PatchType::kMerge, {{"stringData", {{"k", "by-operator"}}}}));
  // Lifting the freeze: delete the binding.
  ASSERT_TRUE(admin->remove(resources::kValidatingAdmissionPolicyBindings, "", "freeze-frozen"));
  EXPECT_EQ(server.kubectl("apply -f " + f).exit_code, 0);
}

}  // namespace
