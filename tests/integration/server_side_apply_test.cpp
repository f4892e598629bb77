// Server-side apply at the HTTP level and through the real kubectl
// (apply --server-side): the status codes, Status bodies and managedFields
// kube-apiserver answers with (handlers/patch.go, fieldmanager/internal/
// conflict.go NewConflictError, validation.ValidatePatchOptions).
#include <gtest/gtest.h>

#include "harness.h"

using nlohmann::json;
using testing_support::KubeLocal;
using testing_support::write_file;

namespace {

class ServerSideApply : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new KubeLocal(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  bo::kube::HttpResponse patch(const std::string& name, const std::string& query, const std::string& ctype,
                               const std::string& body) {
    auto r = server_->transport()->send(
        {"PATCH", "/api/v1/namespaces/default/configmaps/" + name + (query.empty() ? "" : "?" + query), ctype, body, {}, ""});
    EXPECT_TRUE(r);
    return r ? *r : bo::kube::HttpResponse{};
  }
  static KubeLocal* server_;
};
KubeLocal* ServerSideApply::server_ = nullptr;

constexpr const char* kApply = "application/apply-patch+yaml";

TEST_F(ServerSideApply, CreatesWith201AndRecordsTheManager) {
  auto r = patch("made", "fieldManager=tester", kApply,
                 "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made\ndata:\n  count: \"1\"\n");
  ASSERT_EQ(r.status, 201) << r.body;
  const json o = json::parse(r.body);
  EXPECT_EQ(o["data"]["count"], "1");
  ASSERT_EQ(o["metadata"]["managedFields"].size(), 1u);
  EXPECT_EQ(o["metadata"]["managedFields"][0]["manager"], "tester");
  EXPECT_EQ(o["metadata"]["managedFields"][0]["operation"], "Apply");
  // Applying the same configuration again is 200 and writes nothing.
  auto again = patch("made", "fieldManager=tester", kApply,
                     "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: made\ndata:\n  count: \"1\"\n");
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(json::parse(again.body)["metadata"]["resourceVersion"], o["metadata"]["resourceVersion"]);
}

TEST_F(ServerSideApply, AFieldManagerIsRequiredAndForceIsForApplyOnly) {
  auto r = patch("x", "", kApply, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n");
  EXPECT_EQ(r.status, 422);
  json st = json::parse(r.body);
  EXPECT_EQ(st["message"], "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch");
  EXPECT_EQ(st["details"]["causes"][0]["field"], "fieldManager");
  ASSERT_EQ(server_->kubectl("create configmap forced").exit_code, 0);
  r = patch("forced", "force=true", "application/merge-patch+json", R"({"data":{"a":"1"}})");
  EXPECT_EQ(r.status, 422);
  EXPECT_EQ(json::parse(r.body)["message"],
            "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch");
  r = patch("y", "fieldManager=t", kApply, "apiVersion: v1\nmetadata: {name: y}\n");
  EXPECT_EQ(r.status, 400) << r.body;
}

TEST_F(ServerSideApply, AConflictNamesTheOtherManagerAndTheFieldUntilForced) {
  ASSERT_EQ(server_->kubectl("create configmap shared --from-literal=a=1").exit_code, 0);
  auto r = patch("shared", "fieldManager=ops", kApply, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {a: '2'}\n");
  ASSERT_EQ(r.status, 409) << r.body;
  const json st = json::parse(r.body);
  EXPECT_EQ(st["reason"], "Conflict");
  EXPECT_EQ(st["message"], "Apply failed with 1 conflict: conflict with \"kubectl-create\" using v1: .data.a");
  EXPECT_EQ(st["details"]["causes"][0]["reason"], "FieldManagerConflict");
  EXPECT_EQ(st["details"]["causes"][0]["message"], "conflict with \"kubectl-create\" using v1");
  EXPECT_EQ(st["details"]["causes"][0]["field"], ".data.a");
  r = patch("shared", "fieldManager=ops&force=true", kApply,
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\ndata: {a: '2'}\n");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["data"]["a"], "2");
}

TEST_F(ServerSideApply, KubectlServerSideApplyPrunesWhatItStopsApplying) {
  const auto dir = server_->dir();
  auto apply = [&](const std::string& yaml, const std::string& flags = "") {
    return server_->kubectl("apply --server-side " + flags + " -f " + write_file(dir / "ssa.yaml", yaml));
  };
  auto r = apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pruned, labels: {app: x}}\ndata: {a: '1', b: '2'}\n");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("serverside-applied"), std::string::npos) << r.output;
  r = apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pruned}\ndata: {a: '1'}\n");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = server_->kubectl("get configmap pruned -o json");
  const json o = json::parse(r.output);
  EXPECT_EQ(o["data"], (json{{"a", "1"}}));
  EXPECT_FALSE(o["metadata"].contains("labels"));
  // Another manager's change to a field this one applies is reported by kubectl as the API words it.
  ASSERT_EQ(server_->kubectl("patch configmap pruned -p '{\"data\":{\"a\":\"9\"}}'").exit_code, 0);
  r = apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pruned}\ndata: {a: '1'}\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("conflict with \"kubectl-patch\" using v1: .data.a"), std::string::npos) << r.output;
  r = apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pruned}\ndata: {a: '1'}\n", "--force-conflicts");
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

// storage/etcd3 store.Create: an object that still carries a resourceVersion is not created; the
// error is not a Status, so the handler answers 500 with no reason (responsewriters.ErrorToAPIStatus).
TEST_F(ServerSideApply, ACreateCarryingAResourceVersionIsRefusedByStorage) {
  auto r = server_->transport()->send({"POST", "/api/v1/namespaces/default/configmaps", "application/json",
                                       R"({"metadata":{"name":"stale","resourceVersion":"7"}})", {}, ""});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500) << r->body;
  const json st = json::parse(r->body);
  EXPECT_EQ(st["message"], "resourceVersion should not be set on objects to be created");
  EXPECT_FALSE(st.contains("reason"));
  // dryRun stops before storage: no refusal there.
  r = server_->transport()->send({"POST", "/api/v1/namespaces/default/configmaps?dryRun=All", "application/json",
                                  R"({"metadata":{"name":"stale","resourceVersion":"7"}})", {}, ""});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201) << r->body;
  EXPECT_NE(server_->kubectl("get configmap stale").exit_code, 0);
}

}  // namespace
