// kube-local answers Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1
// as the API server does (endpoints/handlers/response.go, doTransformObject):
// metadata only for gets, lists and watches, 406 NotAcceptable for a list kind
// asked of one object, an object kind asked of a list, or another group version.
#include <gtest/gtest.h>

#include <thread>

#include "common/encoding.h"
#include "harness.h"

using nlohmann::json;
using testing_support::KubeLocal;
namespace res = bo::kube::resources;

namespace {

const std::string kCanary = "CANARY-partial-5e21";

class PartialMetadata : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new KubeLocal();
    auto c = server_->client();
    ASSERT_TRUE(c->create(res::kNamespaces, "", {{"metadata", {{"name", "pm"}}}}));
    for (const char* name : {"one", "two"})
      ASSERT_TRUE(c->create(res::kSecrets, "pm", {{"metadata", {{"name", name}, {"labels", {{"app", "x"}}}}},
                                                  {"stringData", {{"token", kCanary}}}}));
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  inline static KubeLocal* server_ = nullptr;
};

TEST_F(PartialMetadata, AListIsAPartialObjectMetadataListWithoutData) {
  auto c = server_->client();
  auto l = c->request("GET", res::kSecrets.path("pm") + "?limit=1", nullptr, "application/json",
                      bo::kube::kAcceptPartialObjectMetadataList);
  ASSERT_TRUE(l) << l.error().str();
  EXPECT_EQ((*l)["kind"], "PartialObjectMetadataList");
  EXPECT_EQ((*l)["apiVersion"], "meta.k8s.io/v1");
  EXPECT_FALSE((*l)["metadata"].value("continue", "").empty());  // paging as usual
  ASSERT_EQ((*l)["items"].size(), 1u);
  EXPECT_EQ((*l)["items"][0]["kind"], "PartialObjectMetadata");
  EXPECT_EQ((*l)["items"][0]["metadata"]["name"], "one");
  EXPECT_EQ((*l)["items"][0]["metadata"]["labels"]["app"], "x");
  EXPECT_EQ(l->dump().find("CANARY"), std::string::npos) << l->dump();
  EXPECT_EQ(l->dump().find(bo::base64_encode(kCanary)), std::string::npos) << l->dump();
}

TEST_F(PartialMetadata, AGetIsAPartialObjectMetadata) {
  auto c = server_->client();
  auto o = c->request("GET", res::kSecrets.path("pm", "one"), nullptr, "application/json",
                      bo::kube::kAcceptPartialObjectMetadata);
  ASSERT_TRUE(o) << o.error().str();
  EXPECT_EQ(*o, (json{{"kind", "PartialObjectMetadata"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", (*o)["metadata"]}}));
  EXPECT_EQ((*o)["metadata"]["name"], "one");
}

TEST_F(PartialMetadata, AListKindForOneObjectAndAnObjectKindForAListAreNotAcceptable) {
  auto c = server_->client({1});
  auto one = c->request("GET", res::kSecrets.path("pm", "one"), nullptr, "application/json",
                        bo::kube::kAcceptPartialObjectMetadataList);
  ASSERT_FALSE(one);
  EXPECT_EQ(one.error().status, 406);
  EXPECT_EQ(one.error().reason, "NotAcceptable");
  auto list = c->request("GET", res::kSecrets.path("pm"), nullptr, "application/json",
                         bo::kube::kAcceptPartialObjectMetadata);
  ASSERT_FALSE(list);
  EXPECT_EQ(list.error().status, 406);
  auto other = c->request("GET", res::kSecrets.path("pm"), nullptr, "application/json",
                          "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v2");
  ASSERT_FALSE(other);
  EXPECT_EQ(other.error().status, 406);
}

TEST_F(PartialMetadata, AWatchCarriesPartialObjectMetadataEvents) {
  auto c = server_->client();
  auto l = c->list(res::kSecrets, "pm", {"", "", 0, "", "", true});
  ASSERT_TRUE(l) << l.error().str();
  const std::string rv = (*l)["metadata"].value("resourceVersion", "");
  std::thread writer([&] {
    auto w = server_->client();
    (void)w->create(res::kSecrets, "pm", {{"metadata", {{"name", "three"}}}, {"stringData", {{"token", kCanary}}}});
  });
  std::vector<json> seen;
  bo::kube::WatchOptions wo{"", "", rv, 10, false, true};
  auto r = c->watch(res::kSecrets, "pm", wo, [&](const bo::kube::WatchEvent& ev) {
    seen.push_back(ev.object);
    return ev.object["metadata"].value("name", "") != "three";
  });
  writer.join();
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back()["kind"], "PartialObjectMetadata");
  EXPECT_EQ(seen.back()["metadata"]["name"], "three");
  for (const auto& o : seen) EXPECT_EQ(o.dump().find("CANARY"), std::string::npos) << o.dump();
}

}  // namespace
