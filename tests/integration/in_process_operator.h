// The fixture of suites that run the BackupPolicy controller in-process
// against kube-local (backup_policy_test.cpp, data_volume_test.cpp): one
// kube-local per suite with the CRDs and the chart's RBAC (chart_operator.h);
// per test the test's client (an administrator), the controllers' client
// (the chart's service account), a fresh namespace and its "-verify", and a
// fake clock just past an hour, so the hourly delta slot is due and stays
// due for its starting deadline (the fake clock does not move by itself).
//
// A suite derives as `class XIT : public InProcessOperatorIT<XIT>` (each
// suite its own server), starts the server from SetUpTestSuite and calls
// set_up_namespace from SetUp.
#pragma once
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "chart_operator.h"
#include "common/clock.h"
#include "common/encoding.h"
#include "harness.h"
#include "reconcile/backup_policy_controller.h"
#include "reconcile/conditions.h"

namespace testing_support {

// The controllers' transport with a hook that may answer a request itself, as
// the API server would under a race the test cannot time (a 409 on a write).
class InterceptingTransport : public bo::kube::Transport {
 public:
  using Hook = std::function<std::optional<bo::kube::HttpResponse>(const bo::kube::HttpRequest&)>;
  explicit InterceptingTransport(std::unique_ptr<bo::kube::Transport> inner) : inner_(std::move(inner)) {}
  void set_hook(Hook hook) {
    std::lock_guard lock(mu_);
    hook_ = std::move(hook);
  }
  bo::kube::Result<bo::kube::HttpResponse> send(const bo::kube::HttpRequest& req) override {
    Hook hook;
    {
      std::lock_guard lock(mu_);
      hook = hook_;
    }
    if (hook)
      if (auto answer = hook(req)) return *answer;
    return inner_->send(req);
  }
  bo::kube::Result<bo::kube::HttpResponse> stream(const bo::kube::HttpRequest& req,
                                                  const std::function<bool(std::string_view)>& on_line,
                                                  bo::kube::Canceller* cancel) override {
    return inner_->stream(req, on_line, cancel);
  }

 private:
  std::unique_ptr<bo::kube::Transport> inner_;
  std::mutex mu_;
  Hook hook_;
};

template <class Suite>
class InProcessOperatorIT : public ::testing::Test {
 protected:
  // kube-local with `args`, the CRDs and the chart. No identity webhook runs
  // in these suites except where a test starts one.
  static void start_server(std::vector<std::string> args) {
    server_ = new KubeLocal(std::move(args));
    chart_ = new ChartOperator(install_crds_and_chart(*server_, server_->dir()));
    const auto r = server_->kubectl("delete mutatingwebhookconfiguration bo-backup-operator");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete chart_;
    chart_ = nullptr;
    delete server_;
    server_ = nullptr;
  }

  // The clients, the namespaces `prefix`<random> and its "-verify", the clock and the event recorder.
  void set_up_namespace(const std::string& prefix) {
    client_ = server_->client();
    auto cfg = bo::kube::load_kubeconfig(chart_->kubeconfig);
    ASSERT_TRUE(cfg) << cfg.error().str();
    auto transport = std::make_unique<InterceptingTransport>(std::move(*bo::kube::make_cpprest_transport(*cfg)));
    op_transport_ = transport.get();
    op_client_ = std::make_unique<bo::kube::Client>(std::move(transport), 100, 200);
    ns_ = prefix + bo::hex_encode(bo::random_bytes(3));
    ASSERT_TRUE(client_->create(bo::kube::resources::kNamespaces, "", {{"metadata", {{"name", ns_}}}}));
    ASSERT_TRUE(client_->create(bo::kube::resources::kNamespaces, "", {{"metadata", {{"name", ns_ + "-verify"}}}}));
    // The verification target's own storage Secret (spec.verification.storageSecretRef): a scratch pod's keys come from it.
    ASSERT_TRUE(client_->create(bo::kube::resources::kSecrets, ns_ + "-verify",
                                {{"metadata", {{"name", "walg-read-only"}}},
                                 {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "ro"},
                                                 {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY-read-only"},
                                                 {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
    clock_ = std::make_unique<bo::FakeClock>(std::chrono::ceil<std::chrono::hours>(std::chrono::system_clock::now()) +
                                             std::chrono::seconds(5));
    recorder_ = std::make_unique<bo::kube::EventRecorder>(*op_client_, *clock_);
  }
  // The wal-g storage Secret "walg-storage", its secret key `canary`.
  void create_storage_secret(const std::string& canary) {
    ASSERT_TRUE(client_->create(bo::kube::resources::kSecrets, ns_,
                                {{"metadata", {{"name", "walg-storage"}}},
                                 {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                                                 {"WALG_AWS_SECRET_ACCESS_KEY", canary},
                                                 {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
  }
  void TearDown() override {
    if (controller_) controller_->stop();
    if (caches_) caches_->stop();
    if (recorder_) recorder_->flush();
  }

  // The condition `type` of the policy "db" in the test's namespace (an empty object when absent).
  nlohmann::json condition(const std::string& type) {
    auto p = client_->get(bo::reconcile::kBackupPolicies, ns_, "db");
    if (!p) return nlohmann::json::object();
    const nlohmann::json conditions =
        (*p).value("status", nlohmann::json::object()).value("conditions", nlohmann::json::array());
    auto c = bo::reconcile::find_condition(conditions, type);
    return c ? *c : nlohmann::json::object();
  }

  inline static KubeLocal* server_ = nullptr;
  inline static ChartOperator* chart_ = nullptr;
  std::unique_ptr<bo::kube::Client> client_;     // the test, as an administrator
  std::unique_ptr<bo::kube::Client> op_client_;  // the controllers, as the chart's service account
  InterceptingTransport* op_transport_ = nullptr;  // op_client_'s
  std::string ns_;
  std::unique_ptr<bo::FakeClock> clock_;
  std::unique_ptr<bo::kube::EventRecorder> recorder_;
  bo::metrics::Metrics metrics_;
  std::unique_ptr<bo::reconcile::Caches> caches_;
  std::unique_ptr<bo::reconcile::BackupPolicyController> controller_;
};

}  // namespace testing_support
