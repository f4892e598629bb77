// kube-local calls admission webhooks over HTTPS as kube-apiserver does.
#include <gtest/gtest.h>

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

 private:
  kl::Response handle(const kl::Request& r) {
    const json review = json::parse(r.body);
    const json& req = review["request"];
    {
      std::lock_guard lock(mu_);
      seen_.push_back(req);
    }
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
};

json webhook_config(const std::string& name, const std::string& url, const std::string& ca,
                    const std::string& failure_policy = "Fail") {
  return {{"metadata", {{"name", name}}},
          {"webhooks",
           {{{"name", name + ".example.com"},
             {"clientConfig", {{"url", url}, {"caBundle", ca}}},
             {"rules", {{{"operations", {"CREATE", "UPDATE"}}, {"apiGroups", {""}}, {"apiVersions", {"v1"}},
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
