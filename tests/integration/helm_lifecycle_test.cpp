// Helm's whole lifecycle against kube-local with Helm 4's default flags (it
// applies server-side): install, upgrade (a changed value reaches the
// Deployment), rollback and uninstall, and in between the operator, run with
// the installed Deployment's arguments as the chart's service account under
// the installed RBAC (kube-local --authorize), reconciles a policy to Ready.
#include <gtest/gtest.h>

#include "chart_operator.h"
#include "common/certs.h"
#include "harness.h"
#include "reconcile/caches.h"

using namespace bo::kube;
using nlohmann::json;
using testing_support::Child;
using testing_support::CommandResult;
using testing_support::eventually;
using testing_support::KubeLocal;

namespace {

class HelmLifecycle : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("helm");
    server_ = std::make_unique<KubeLocal>(std::vector<std::string>{"--authorize"});
  }
  CommandResult helm(const std::string& args) {
    return testing_support::run("helm --kubeconfig " + server_->kubeconfig().string() + " --namespace bo-system " +
                                    "--repository-cache " + (dir_ / "helm-cache").string() + " " + args,
                                120);
  }
  json deployment() {
    auto d = server_->client()->get(resources::kDeployments, "bo-system", "bo-backup-operator");
    return d ? *d : json();
  }
  std::vector<std::string> args() {
    std::vector<std::string> a;
    for (const auto& v : deployment()["spec"]["template"]["spec"]["containers"][0].value("args", json::array()))
      a.push_back(v);
    return a;
  }
  static bool has(const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  }
  std::filesystem::path dir_;
  std::unique_ptr<KubeLocal> server_;
  const std::string chart_ = std::string(SOURCE_DIR) + "/charts/backup-operator";
};

TEST_F(HelmLifecycle, InstallUpgradeRollbackUninstallWithDefaultFlagsAndTheOperatorReconcilesInBetween) {
  auto r = helm("install bo " + chart_ + " --create-namespace");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = helm("status bo -o json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json::parse(r.output)["info"]["status"], "deployed") << r.output;
  const json d = deployment();
  ASSERT_TRUE(d.is_object());
  EXPECT_EQ(d["spec"]["replicas"], 2);
  // Server-side apply: helm owns what it applied.
  bool helm_applied = false;
  for (const auto& m : d["metadata"]["managedFields"])
    helm_applied |= m["manager"] == "helm" && m["operation"] == "Apply";
  EXPECT_TRUE(helm_applied) << d["metadata"]["managedFields"].dump();

  // The chart's operator: the installed Deployment's arguments, loopback ports, the chart's service account.
  std::vector<std::string> cmd = {OPERATOR_BIN};
  const auto tls = bo::generate_tls("backup-operator-webhook", "127.0.0.1");
  const auto certs = dir_ / "certs";
  std::filesystem::create_directories(certs);
  testing_support::write_file(certs / "tls.crt", tls.server.cert + tls.ca.cert);
  testing_support::write_file(certs / "tls.key", tls.server.key);
  for (const auto& a : args()) {
    const std::string flag = a.substr(0, a.find('='));
    if (flag == "--metrics-bind-address" || flag == "--health-probe-bind-address" || flag == "--webhook-bind-address")
      cmd.push_back(flag + "=127.0.0.1:" + std::to_string(testing_support::free_port()));
    else if (flag == "--webhook-cert-dir")
      cmd.push_back(flag + "=" + certs.string());
    else if (flag == "--metrics-secure" || flag == "--metrics-cert-dir")
      continue;  // TokenReview-guarded metrics are the chart RBAC test's subject
    else
      cmd.push_back(a);
  }
  cmd.push_back("--kubeconfig");
  cmd.push_back(testing_support::service_account_kubeconfig(*server_, "bo-system", "bo-backup-operator",
                                                            dir_ / "operator.kubeconfig"));
  auto admin = server_->client();
  for (const char* ns : {"app", "app-verify"})
    ASSERT_TRUE(admin->create(resources::kNamespaces, "", {{"metadata", {{"name", ns}}}}));
  ASSERT_TRUE(admin->create(resources::kPersistentVolumeClaims, "app", {{"metadata", {{"name", "supabase-db-data"}}}, {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
  ASSERT_TRUE(admin->create(resources::kSecrets, "app",
                            {{"metadata", {{"name", "walg-storage"}}},
                             {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                                             {"WALG_AWS_SECRET_ACCESS_KEY", "s"}, {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
  ASSERT_TRUE(admin->create(resources::kSecrets, "app", {{"metadata", {{"name", "walg-encryption"}}},
                                                         {"stringData", {{"WALG_LIBSODIUM_KEY", "k"}}}}));
  ASSERT_TRUE(admin->create(bo::reconcile::kBackupPolicies, "app",
                            {{"metadata", {{"name", "db"}}},
                             {"spec", {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "supabase-db.app.svc"}}},
                                       {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                                    {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                                       {"verification", {{"targetNamespace", "app-verify"}}}}}}));
  {
    Child op(cmd, dir_ / "operator.log");
    const bool ready = eventually([&] {
      auto p = admin->get(bo::reconcile::kBackupPolicies, "app", "db");
      if (!p) return false;
      for (const auto& c : (*p).value("status", json::object()).value("conditions", json::array()))
        if (c.value("type", "") == "Ready" && c.value("status", "") == "True") return true;
      return false;
    }, std::chrono::seconds(60));
    EXPECT_TRUE(ready) << op.log() << admin->get(bo::reconcile::kBackupPolicies, "app", "db")->dump();
  }

  // An upgrade with changed values reaches the Deployment.
  r = helm("upgrade bo " + chart_ + " --set replicaCount=1 --set logLevel=debug");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(deployment()["spec"]["replicas"], 1);
  EXPECT_TRUE(has(args(), "--log-level=debug"));
  // A value the upgrade no longer sets goes back to the chart's default; a rollback restores revision 1.
  r = helm("rollback bo 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(deployment()["spec"]["replicas"], 2);
  EXPECT_TRUE(has(args(), "--log-level=info"));
  r = helm("history bo -o json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json history = json::parse(r.output);
  ASSERT_EQ(history.size(), 3u) << r.output;
  EXPECT_EQ(history[2]["status"], "deployed");
  EXPECT_EQ(history[2]["description"], "Rollback to 1");

  // Uninstall removes the release's objects and records; the CRDs stay (Helm never deletes crds/).
  r = helm("uninstall bo");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(admin->get(resources::kDeployments, "bo-system", "bo-backup-operator").has_value());
  EXPECT_FALSE(admin->get(resources::kServiceAccounts, "bo-system", "bo-backup-operator").has_value());
  auto releases = admin->list(resources::kSecrets, "bo-system", {"owner=helm", "", 0, "", ""});
  ASSERT_TRUE(releases);
  EXPECT_TRUE((*releases)["items"].empty()) << releases->dump();
  EXPECT_EQ(server_->kubectl("get crd backuppolicies.backup.si.dev").exit_code, 0);
  r = helm("list -o json");
  EXPECT_EQ(json::parse(r.output), json::array()) << r.output;
}

}  // namespace
