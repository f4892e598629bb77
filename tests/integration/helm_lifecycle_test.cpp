// Helm's whole lifecycle against kube-local with Helm 4's default flags (it
// applies server-side): install, upgrade (a changed value reaches the
// Deployment), rollback and uninstall, and in between the operator, run with
// the installed Deployment's arguments as the chart's service account under
// the installed RBAC (kube-local --authorize), reconciles a policy to Ready.
// Also: the generated webhook certificate survives upgrades unchanged, and
// the CRD upgrade path the chart README documents (Helm never upgrades crds/).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "chart_operator.h"
#include "common/certs.h"
#include "harness.h"
#include "kube-local/yaml_json.h"
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
  std::optional<json> pdb() {
    auto r = server_->kubectl("-n bo-system get poddisruptionbudgets.policy bo-backup-operator -o json");
    if (r.exit_code != 0) return std::nullopt;
    return json::parse(r.output);
  }
  json secret(const std::string& name) {
    auto s = server_->client()->get(resources::kSecrets, "bo-system", name);
    return s ? *s : json();
  }
  json webhook_configuration() {
    auto m = server_->client()->get(resources::kMutatingWebhookConfigurations, "", "bo-backup-operator");
    return m ? *m : json();
  }
  json crd(const std::string& name) {
    auto c = server_->client()->get(resources::kCustomResourceDefinitions, "", name);
    return c ? *c : json();
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
  // A valid BackupPolicy of the app namespace (its Secrets and claim as the first test creates them).
  static json backup_policy(const std::string& name) {
    return {{"metadata", {{"name", name}}},
            {"spec", {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "supabase-db.app.svc"}}},
                      {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                   {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                      {"verification", {{"targetNamespace", "app-verify"}}}}}};
  }
  // The operator as the installed Deployment runs it: its arguments, with the
  // listeners on loopback ports the operator picks (listening_port reads them back), the
  // certificate directories the Deployment mounts replaced by `mounted` (what
  // the kubelet would put there), and a token of the chart's service account.
  // Without `secure_metrics`, plain HTTP metrics.
  std::vector<std::string> operator_command(const std::filesystem::path& mounted, bool secure_metrics) {
    std::vector<std::string> cmd = {OPERATOR_BIN};
    for (const auto& a : args()) {
      const std::string flag = a.substr(0, a.find('='));
      if (flag == "--metrics-bind-address" || flag == "--health-probe-bind-address" || flag == "--webhook-bind-address") {
        cmd.push_back(flag + "=127.0.0.1:0");
      } else if (flag == "--webhook-cert-dir" || flag == "--metrics-cert-dir") {
        if (flag == "--webhook-cert-dir" || secure_metrics) cmd.push_back(flag + "=" + mounted.string());
      } else if (flag == "--metrics-secure") {
        if (secure_metrics) cmd.push_back(a);
      } else {
        cmd.push_back(a);
      }
    }
    cmd.push_back("--kubeconfig");
    cmd.push_back(testing_support::service_account_kubeconfig(*server_, "bo-system", "bo-backup-operator",
                                                              dir_ / "operator.kubeconfig"));
    return cmd;
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
  // Two replicas: a budget that lets a drain evict one of them at a time.
  const auto budget = pdb();
  ASSERT_TRUE(budget.has_value());
  EXPECT_EQ((*budget)["spec"]["minAvailable"], 1);
  EXPECT_EQ((*budget)["spec"]["selector"]["matchLabels"], d["spec"]["selector"]["matchLabels"]);
  // Server-side apply: helm owns what it applied.
  bool helm_applied = false;
  for (const auto& m : d["metadata"]["managedFields"])
    helm_applied |= m["manager"] == "helm" && m["operation"] == "Apply";
  EXPECT_TRUE(helm_applied) << d["metadata"]["managedFields"].dump();

  // The chart's operator: the installed Deployment's arguments, loopback ports, the chart's service account.
  const auto tls = bo::generate_tls("backup-operator-webhook", "127.0.0.1");
  const auto certs = dir_ / "certs";
  std::filesystem::create_directories(certs);
  testing_support::write_file(certs / "tls.crt", tls.server.cert + tls.ca.cert);
  testing_support::write_file(certs / "tls.key", tls.server.key);
  // TokenReview-guarded metrics are the chart RBAC test's subject (and the generate-mode test's).
  const auto cmd = operator_command(certs, false);
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
  ASSERT_TRUE(admin->create(bo::reconcile::kBackupPolicies, "app", backup_policy("db")));
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
  EXPECT_FALSE(pdb().has_value()) << "one replica: a budget of minAvailable 1 would block every drain";
  // A value the upgrade no longer sets goes back to the chart's default; a rollback restores revision 1.
  r = helm("rollback bo 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(deployment()["spec"]["replicas"], 2);
  EXPECT_TRUE(has(args(), "--log-level=info"));
  EXPECT_TRUE(pdb().has_value());
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

// generate mode: helm makes the CA and leaf at install; an upgrade finds the
// Secret (lookup) and keeps both byte for byte, and the caBundle stays the
// Secret's CA, so the replicas' mounted files and the API server agree.
TEST_F(HelmLifecycle, GenerateModeKeepsTheCertificateAcrossUpgradesAndTheCaBundleIsItsCa) {
  auto r = helm("install bo " + chart_ + " --create-namespace");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json installed = secret("bo-backup-operator-webhook-tls")["data"];
  ASSERT_TRUE(installed.is_object());
  for (const char* k : {"tls.crt", "tls.key", "ca.crt"}) ASSERT_TRUE(installed.contains(k)) << installed.dump();
  EXPECT_EQ(webhook_configuration()["webhooks"][0]["clientConfig"]["caBundle"], installed["ca.crt"]);

  r = helm("upgrade bo " + chart_ + " --set logLevel=debug");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(args(), "--log-level=debug"));  // the upgrade did happen
  EXPECT_EQ(secret("bo-backup-operator-webhook-tls")["data"], installed);
  EXPECT_EQ(webhook_configuration()["webhooks"][0]["clientConfig"]["caBundle"], installed["ca.crt"]);

  // A second upgrade, and a rollback to the install, change nothing either.
  r = helm("upgrade bo " + chart_ + " --set replicaCount=3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = helm("rollback bo 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(secret("bo-backup-operator-webhook-tls")["data"], installed);
  EXPECT_EQ(webhook_configuration()["webhooks"][0]["clientConfig"]["caBundle"], installed["ca.crt"]);
}

// The scrape the chart's ServiceMonitor configures, done with curl against the
// operator run as the installed Deployment: /metrics serves the webhook
// certificate from the mounted Secret, which verifies against the CA and
// serverName in the ServiceMonitor's tlsConfig; a scraper bound to the
// metrics-reader ClusterRole gets the metrics. Without the CA, or for another
// name, verification fails: TLS verification is really on.
TEST_F(HelmLifecycle, MetricsServeTheWebhookCertificateAndTheServiceMonitorsTlsConfigVerifiesIt) {
  auto r = helm("install bo " + chart_ + " --create-namespace");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // kube-local serves no ServiceMonitor kind: render it (its tlsConfig does not depend on the certificate's bytes).
  r = helm("template bo " + chart_ + " --set metrics.serviceMonitor.enabled=true --show-only templates/metrics.yaml");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  json monitor;
  for (std::size_t at = 0; at != std::string::npos;) {
    const std::size_t next = r.output.find("\n---", at + 1);
    std::string error;
    auto doc = kl::yaml_to_json(r.output.substr(at, next == std::string::npos ? std::string::npos : next - at), &error);
    ASSERT_TRUE(doc.has_value()) << error << r.output;
    if (doc->is_object() && doc->value("kind", "") == "ServiceMonitor") monitor = *doc;
    at = next;
  }
  ASSERT_TRUE(monitor.is_object()) << r.output;
  const json tls_config = monitor["spec"]["endpoints"][0]["tlsConfig"];
  ASSERT_EQ(tls_config.value("insecureSkipVerify", true), false) << tls_config.dump();
  const std::string server_name = tls_config["serverName"];
  const json ca = secret(tls_config["ca"]["secret"]["name"])["data"][tls_config["ca"]["secret"]["key"].get<std::string>()];
  ASSERT_TRUE(ca.is_string()) << tls_config.dump();
  const auto ca_file = dir_ / "scraper-ca.crt";
  testing_support::write_file(ca_file, bo::base64_decode(ca.get<std::string>()).value_or(""));

  // What the kubelet mounts: the Secret the Deployment names, file by file.
  std::string mounted_secret;
  const json volumes = deployment()["spec"]["template"]["spec"]["volumes"];
  for (const auto& v : volumes)
    if (v.value("name", "") == "webhook-tls") mounted_secret = v["secret"]["secretName"];
  const auto mounted = dir_ / "mounted";
  std::filesystem::create_directories(mounted);
  const json files = secret(mounted_secret)["data"];
  ASSERT_TRUE(files.is_object()) << mounted_secret;
  for (const auto& [key, value] : files.items())
    testing_support::write_file(mounted / key, bo::base64_decode(value.get<std::string>()).value_or(""));

  Child op(operator_command(mounted, true), dir_ / "operator.log");
  const int metrics_port = testing_support::listening_port(op, "metrics");
  ASSERT_GT(metrics_port, 0) << op.log();
  for (const char* c : {"-n bo-system create serviceaccount prometheus",
                        "create clusterrolebinding prometheus --clusterrole bo-backup-operator-metrics-reader "
                        "--serviceaccount bo-system:prometheus"})
    ASSERT_EQ(server_->kubectl(c).exit_code, 0) << c;
  r = server_->kubectl("-n bo-system create token prometheus");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string token = r.output.substr(0, r.output.find_last_not_of("\n") + 1);
  const std::string port = std::to_string(metrics_port);
  auto scrape = [&](const std::string& name, bool with_ca) {
    return testing_support::run("curl -sS -o " + (dir_ / "metrics.txt").string() + " -w '%{http_code}' " +
                                (with_ca ? "--cacert " + ca_file.string() + " " : std::string()) + "--resolve " +
                                name + ":" + port + ":127.0.0.1 -H 'Authorization: Bearer " + token + "' https://" +
                                name + ":" + port + "/metrics", 20);
  };
  CommandResult last;
  const bool scraped = eventually([&] {
    last = scrape(server_name, true);
    return last.exit_code == 0 && last.output == "200";
  }, std::chrono::seconds(30));
  ASSERT_TRUE(scraped) << last.exit_code << " " << last.output << "\n" << op.log();
  std::stringstream body;
  body << std::ifstream(dir_ / "metrics.txt").rdbuf();
  EXPECT_NE(body.str().find("backup_operator_"), std::string::npos) << body.str().substr(0, 2000);

  // curl's exit 60: the peer's certificate did not verify.
  const auto without_ca = scrape(server_name, false);
  EXPECT_EQ(without_ca.exit_code, 60) << without_ca.output;
  const auto other_name = scrape("bo-backup-operator-metrics.bo-system.svc", true);
  EXPECT_EQ(other_name.exit_code, 60) << other_name.output;
}

// Helm installs crds/ on the first install and never upgrades them: a chart
// whose CRD gained an optional field leaves the served CRD as it was through
// `helm upgrade` (and the new field is pruned from objects); the path the
// chart README documents, `kubectl apply --server-side --force-conflicts -f
// crds/`, upgrades it. Without --force-conflicts the apply is refused: Helm
// created the CRD and is recorded as the manager of its fields.
TEST_F(HelmLifecycle, HelmUpgradeLeavesAChangedCrdAloneAndServerSideApplyOfCrdsUpgradesIt) {
  const auto chart = dir_ / "chart";
  std::filesystem::copy(chart_, chart, std::filesystem::copy_options::recursive);
  auto r = helm("install bo " + chart.string() + " --create-namespace");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string name = "backuppolicies.backup.si.dev";
  const json before = crd(name);
  ASSERT_TRUE(before.is_object());
  auto spec_properties = [](json c) { return c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]; };
  ASSERT_FALSE(spec_properties(before).contains("upgradeProbe"));

  // The next chart version: the same CRD with one optional field more.
  const auto crd_file = chart / "crds" / "backup.si.dev_backuppolicies.yaml";
  std::stringstream text;
  text << std::ifstream(crd_file).rdbuf();
  std::string error;
  auto changed = kl::yaml_to_json(text.str(), &error);
  ASSERT_TRUE(changed.has_value()) << error;
  (*changed)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["upgradeProbe"] =
      {{"type", "string"}, {"description", "added by the next chart version"}};
  testing_support::write_file(crd_file, changed->dump(2));  // JSON is YAML

  r = helm("upgrade bo " + chart.string() + " --set logLevel=debug");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(args(), "--log-level=debug"));  // the upgrade did happen
  const json after_upgrade = crd(name);
  EXPECT_EQ(after_upgrade["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);
  EXPECT_EQ(after_upgrade["spec"], before["spec"]);
  // ... so the new field is pruned from what users write.
  auto admin = server_->client();
  ASSERT_TRUE(admin->create(resources::kNamespaces, "", {{"metadata", {{"name", "app"}}}}));
  json policy = backup_policy("old-schema");
  policy["spec"]["upgradeProbe"] = "x";
  ASSERT_TRUE(admin->create(bo::reconcile::kBackupPolicies, "app", policy));
  EXPECT_FALSE(admin->get(bo::reconcile::kBackupPolicies, "app", "old-schema")->at("spec").contains("upgradeProbe"));

  // The documented path. Server-side without --force-conflicts: refused, Helm owns the fields.
  r = server_->kubectl("apply --server-side -f " + (chart / "crds").string());
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("conflict with \"helm\""), std::string::npos) << r.output;
  EXPECT_EQ(crd(name)["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]);
  r = server_->kubectl("apply --server-side --force-conflicts -f " + (chart / "crds").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(spec_properties(crd(name)).contains("upgradeProbe")) << crd(name).dump();
  // The field is kept now. Polled: a real server switches a CRD's handler to the new schema asynchronously.
  int attempt = 0;
  const bool kept = eventually([&] {
    json p = policy;
    p["metadata"]["name"] = "new-schema-" + std::to_string(attempt++);
    if (!admin->create(bo::reconcile::kBackupPolicies, "app", p)) return false;
    auto stored = admin->get(bo::reconcile::kBackupPolicies, "app", p["metadata"]["name"].get<std::string>());
    return stored && (*stored)["spec"].value("upgradeProbe", "") == "x";
  }, std::chrono::seconds(10));
  EXPECT_TRUE(kept) << "tried " << attempt << " times";

  // A later helm upgrade leaves the applied CRD alone too.
  r = helm("upgrade bo " + chart.string() + " --set logLevel=info");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(spec_properties(crd(name)).contains("upgradeProbe"));
}

}  // namespace
