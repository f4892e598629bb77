// A real Prometheus (Debian's /usr/bin/prometheus) against the operator as
// the chart runs it on kube-local (issue 20 item 5):
// - it scrapes /metrics the way the chart's ServiceMonitor says: HTTPS,
//   verifying the served certificate against the CA Secret and serverName the
//   ServiceMonitor names, with a bearer token of its own service account that
//   the operator checks by TokenReview and SubjectAccessReview (the chart's
//   metrics-reader ClusterRole);
// - it evaluates the chart's PrometheusRule (rendered by the real helm, its
//   spec.groups as the rule file), with prometheusRule.for set to seconds;
// - a policy whose backups fail and one whose verification fails bring
//   BackupFailing, BackupMissed and VerificationFailed to pending, then
//   firing, as Prometheus' own /api/v1/alerts reports;
// - every query of every panel of the chart's Grafana dashboard returns data.
// Prometheus cannot listen on port 0: it is started on a port free when asked
// and started again on another when it lost that port to someone else.
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <regex>
#include <set>

#include "chart_operator.h"
#include "common/encoding.h"
#include "common/listener_port.h"
#include "harness.h"
#include "kube-local/yaml_json.h"
#include "reconcile/caches.h"
#include "support/pod_rules.h"

using nlohmann::json;
using testing_support::Child;
using testing_support::eventually;
using testing_support::KubeLocal;
using testing_support::run;
using testing_support::write_file;
namespace fs = std::filesystem;

namespace {

constexpr const char* kPrometheusBin = "/usr/bin/prometheus";
constexpr const char* kRelease = "backup-operator-system";

// Outcomes of the simulated pods: "broken"'s backups fail, "shaky"'s
// verification restores do not recover; everything else succeeds.
std::string pod_rules(const fs::path& dir) {
  json rules = json::array(
      {testing_support::pod_rule("backup.si.dev/policy=broken,backup.si.dev/action in (backup,full-backup)", "Failed",
                                 "wal-g: storage unreachable"),
       testing_support::pod_rule("backup.si.dev/policy=shaky,backup.si.dev/action=scratch", "Failed",
                                 "the scratch server did not recover")});
  for (auto& r : testing_support::healthy_pod_rules(testing_support::backup_result("{{now}}", "{{now}}")))
    rules.push_back(std::move(r));
  return write_file(dir / "pod-rules.json", rules.dump());
}

// The documents of a helm template output, as JSON.
std::vector<json> documents(const std::string& yaml) {
  std::vector<json> docs;
  for (std::size_t at = 0; at != std::string::npos;) {
    const std::size_t next = yaml.find("\n---", at + 1);
    std::string error;
    auto doc = kl::yaml_to_json(yaml.substr(at, next == std::string::npos ? std::string::npos : next - at), &error);
    if (!doc) throw std::runtime_error("helm template output does not parse: " + error);
    if (doc->is_object() && !doc->empty()) docs.push_back(*doc);
    at = next;
  }
  return docs;
}

json of_kind(const std::vector<json>& docs, const std::string& kind) {
  for (const auto& d : docs)
    if (d.value("kind", "") == kind) return d;
  throw std::runtime_error("no " + kind + " rendered");
}

class PrometheusServer {
 public:
  // Started on a free port; again on another, at most 5 times, when the port was taken first.
  PrometheusServer(const fs::path& dir, const fs::path& config) {
    for (int attempt = 1;; ++attempt) {
      port_ = bo::kernel_free_port("127.0.0.1");
      fs::create_directories(dir / "tsdb");
      process_ = std::make_unique<Child>(
          std::vector<std::string>{kPrometheusBin, "--config.file=" + config.string(),
                                   "--storage.tsdb.path=" + (dir / "tsdb").string(),
                                   "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
          dir / ("prometheus-" + std::to_string(attempt) + ".log"));
      // Ready when our own process says so and answers: after a lost race,
      // whoever holds the port answers, but our process has exited.
      bool exited = false;
      const bool ready = eventually([&] {
        if (!process_->running()) return exited = true;
        return process_->log().find("Server is ready to receive web requests") != std::string::npos &&
               run("curl -sf -o /dev/null http://127.0.0.1:" + std::to_string(port_) + "/-/ready", 10).exit_code == 0;
      }, std::chrono::seconds(60), std::chrono::milliseconds(100));
      if (ready && !exited) return;
      const std::string log = process_->log();
      if (exited && log.find("address already in use") != std::string::npos && attempt < 5) {
        std::fprintf(stderr, "prometheus: port %d was taken before it bound it (attempt %d); starting on another\n", port_,
                     attempt);
        continue;
      }
      throw std::runtime_error("prometheus did not start: " + log);
    }
  }

  // GET of the HTTP API; `query` URL-encoded (written to a file, so no shell quoting applies).
  [[nodiscard]] json api(const std::string& path, const std::string& query = "") const {
    std::string cmd = "curl -sS --max-time 10 -G http://127.0.0.1:" + std::to_string(port_) + path;
    if (!query.empty()) {
      const auto file = fs::temp_directory_path() / ("promql-" + std::to_string(::getpid()) + ".txt");
      write_file(file, query);
      cmd += " --data-urlencode query@" + file.string();
    }
    const auto r = run(cmd, 20);
    const auto j = json::parse(r.output, nullptr, false);
    return j.is_discarded() ? json{{"status", "error"}, {"error", r.output}} : j;
  }
  [[nodiscard]] json query(const std::string& promql) const { return api("/api/v1/query", promql); }
  [[nodiscard]] std::string log() const { return process_->log(); }

 private:
  int port_ = 0;
  std::unique_ptr<Child> process_;
};

class PrometheusIT : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("prometheus-it");
    server_ = std::make_unique<KubeLocal>(std::vector<std::string>{"--authorize", "--pod-rules", pod_rules(dir_)});
    // The webhook certificate, which /metrics serves by default, carries the
    // Service name the ServiceMonitor verifies (as the chart's generated one does).
    chart_ = std::make_unique<testing_support::ChartOperator>(testing_support::install_crds_and_chart(
        *server_, dir_, {}, std::string("127.0.0.1,bo-backup-operator-webhook.") + kRelease + ".svc"));
    admin_ = server_->client();
  }
  void TearDown() override {
    if (HasFailure() && operator_) std::cerr << "operator log:\n" << operator_->log().substr(0, 20000) << "\n";
  }

  // The chart's objects for this install with `sets`: what `--show-only` names.
  std::vector<json> render(const std::vector<std::string>& sets, const std::string& show_only) {
    std::string cmd = "helm template bo " + std::string(SOURCE_DIR) + "/charts/backup-operator --namespace " + kRelease +
                      " --set webhook.certificate.mode=secret --set webhook.certificate.existingSecret=webhook-tls"
                      " --set webhook.certificate.caBundle=" + chart_->ca_bundle;
    for (const auto& s : sets) cmd += " --set '" + s + "'";
    cmd += " --show-only " + show_only;
    const auto r = run(cmd);
    if (r.exit_code != 0) throw std::runtime_error("helm template: " + r.output);
    return documents(r.output);
  }

  void create_app() {
    for (const char* ns : {"app", "app-verify"})
      ASSERT_TRUE(admin_->create(bo::kube::resources::kNamespaces, "", {{"metadata", {{"name", ns}}}}));
    const json storage = {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                          {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY-5e1"}, {"WALG_AWS_ENDPOINT", "https://s3.local"}};
    ASSERT_TRUE(admin_->create(bo::kube::resources::kSecrets, "app", {{"metadata", {{"name", "walg-storage"}}}, {"stringData", storage}}));
    ASSERT_TRUE(admin_->create(bo::kube::resources::kSecrets, "app-verify",
                               {{"metadata", {{"name", "walg-read-only"}}}, {"stringData", storage}}));
    ASSERT_TRUE(admin_->create(bo::kube::resources::kSecrets, "app",
                               {{"metadata", {{"name", "supabase-db"}}},
                                {"stringData", {{"username", "postgres"}, {"password", "CANARY-5e1"}}}}));
    ASSERT_TRUE(admin_->create(bo::kube::resources::kSecrets, "app",
                               {{"metadata", {{"name", "walg-encryption"}}}, {"stringData", {{"WALG_LIBSODIUM_KEY", "CANARY-5e1"}}}}));
    ASSERT_TRUE(admin_->create(bo::kube::resources::kPersistentVolumeClaims, "app",
                               {{"metadata", {{"name", "supabase-db-data"}}},
                                {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
    // Hourly backups and verifications: at --time-scale 600 an hour passes every 6 s.
    for (const char* name : {"steady", "shaky", "broken"}) {
      const json policy = {
          {"apiVersion", "backup.si.dev/v1alpha1"},
          {"kind", "BackupPolicy"},
          {"metadata", {{"name", name}}},
          {"spec", {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102},
                                  {"host", "db"}, {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
                    {"schedule", {{"backup", "0 * * * *"}, {"fullBackup", "0 * * * *"}}},
                    {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                 {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                    {"verification", {{"targetNamespace", "app-verify"}, {"image", "postgres:15"}, {"schedule", "30 * * * *"},
                                      {"storageSecretRef", {{"name", "walg-read-only"}}}}}}}};
      auto made = admin_->create(bo::reconcile::kBackupPolicies, "app", policy);
      ASSERT_TRUE(made) << made.error().str();
    }
  }

  fs::path dir_;
  std::unique_ptr<KubeLocal> server_;
  std::unique_ptr<testing_support::ChartOperator> chart_;
  std::unique_ptr<bo::kube::Client> admin_;
  std::unique_ptr<Child> operator_;
};

TEST_F(PrometheusIT, ScrapesLikeTheServiceMonitorFiresTheShippedAlertsAndEveryDashboardPanelHasData) {
  ASSERT_NO_FATAL_FAILURE(create_app());
  // The operator as the chart's Deployment runs it: secure metrics, served with the webhook certificate.
  operator_ = std::make_unique<Child>(
      chart_->args({"--time-scale", "600", "--metrics-secure", "--metrics-bind-address", "127.0.0.1:0",
                    "--metrics-cert-dir", chart_->cert_dir.string()}),
      dir_ / "operator.log");
  const int metrics_port = testing_support::listening_port(*operator_, "metrics");
  ASSERT_GT(metrics_port, 0) << operator_->log();
  ASSERT_TRUE(chart_->serve_webhook(*server_, *operator_)) << operator_->log();

  // Prometheus' identity: a service account bound to the chart's metrics-reader ClusterRole.
  for (const char* c : {"create namespace monitoring", "-n monitoring create serviceaccount prometheus",
                        "create clusterrolebinding prometheus-metrics --clusterrole bo-backup-operator-metrics-reader "
                        "--serviceaccount monitoring:prometheus"}) {
    const auto r = server_->kubectl(c);
    ASSERT_EQ(r.exit_code, 0) << c << ": " << r.output;
  }
  auto r = server_->kubectl("-n monitoring create token prometheus");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string token_file = write_file(dir_ / "prometheus.token", r.output.substr(0, r.output.find_last_not_of('\n') + 1));

  // What the chart renders for monitoring: the Service, ServiceMonitor and PrometheusRule, with
  // seconds for the `for:` of the alerts this test brings about (VerificationFailed ships with
  // none; one is added so its pending state can be seen).
  const std::vector<std::string> sets = {"metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.interval=1s",
                                         "prometheusRule.enabled=true", "prometheusRule.for.BackupFailing=10s",
                                         "prometheusRule.for.BackupMissed=10s", "prometheusRule.for.VerificationFailed=10s"};
  const auto docs = render(sets, "templates/metrics.yaml");
  const json monitor = of_kind(docs, "ServiceMonitor");
  const json service = of_kind(docs, "Service");
  const json rule = of_kind(docs, "PrometheusRule");
  const json endpoint = monitor["spec"]["endpoints"][0];
  ASSERT_EQ(endpoint.value("scheme", ""), "https") << monitor.dump(2);
  ASSERT_TRUE(endpoint.contains("bearerTokenFile")) << monitor.dump(2);
  const json tls = endpoint["tlsConfig"];
  ASSERT_FALSE(tls.value("insecureSkipVerify", true)) << monitor.dump(2);
  // The CA from the Secret and key the ServiceMonitor names, as the Prometheus Operator mounts it.
  auto ca_secret = admin_->get(bo::kube::resources::kSecrets, kRelease, tls["ca"]["secret"]["name"].get<std::string>());
  ASSERT_TRUE(ca_secret) << ca_secret.error().str();
  const std::string ca_file = write_file(
      dir_ / "ca.crt",
      bo::base64_decode((*ca_secret)["data"][tls["ca"]["secret"]["key"].get<std::string>()].get<std::string>()).value_or(""));
  // The job label: the Service's value of the label the ServiceMonitor's jobLabel names.
  const std::string job = service["metadata"]["labels"][monitor["spec"]["jobLabel"].get<std::string>()];
  const std::string rules_file = write_file(dir_ / "rules.json", json{{"groups", rule["spec"]["groups"]}}.dump(2));
  r = run("promtool check rules " + rules_file);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json config = {
      {"global", {{"scrape_interval", "1s"}, {"scrape_timeout", "1s"}, {"evaluation_interval", "1s"}}},
      {"rule_files", {rules_file}},
      {"scrape_configs",
       {{{"job_name", job},
         {"scrape_interval", endpoint["interval"]},
         {"scheme", endpoint["scheme"]},
         {"metrics_path", endpoint.value("path", "/metrics")},
         {"authorization", {{"type", "Bearer"}, {"credentials_file", token_file}}},
         {"tls_config", {{"ca_file", ca_file}, {"server_name", tls["serverName"]}, {"insecure_skip_verify", false}}},
         {"static_configs", {{{"targets", {"127.0.0.1:" + std::to_string(metrics_port)}},
                              {"labels", {{"namespace", kRelease}}}}}}}}}};
  const std::string config_file = write_file(dir_ / "prometheus.json", config.dump(2));
  // Prometheus starts once the two healthy policies have a backup: before
  // their first one, BackupMissed's never-succeeded rule rightly holds for them too.
  for (const char* name : {"steady", "shaky"})
    ASSERT_TRUE(eventually([&] {
      auto p = admin_->get(bo::reconcile::kBackupPolicies, "app", name);
      return p && (*p).value("status", json::object()).contains("lastSuccessfulBackup");
    }, std::chrono::seconds(60))) << name << "\n" << operator_->log().substr(0, 20000);
  PrometheusServer prometheus(dir_, config_file);

  // The scrape works: TLS verified, the token accepted (up is 1, and operator series arrive).
  json last;
  ASSERT_TRUE(eventually([&] {
    last = prometheus.api("/api/v1/targets");
    const json active = last["data"].value("activeTargets", json::array());
    return active.size() == 1 && active[0].value("health", "") == "up";
  }, std::chrono::seconds(60), std::chrono::milliseconds(250))) << last.dump(2) << prometheus.log();
  ASSERT_TRUE(eventually([&] {
    last = prometheus.query("backup_operator_leader == 1");
    return !last["data"]["result"].empty();
  }, std::chrono::seconds(60), std::chrono::milliseconds(250))) << last.dump(2);

  // The alerts go pending, then firing, for the policies that earn them (and only those).
  struct Expected {
    std::string alert, policy;
  };
  const std::vector<Expected> expected = {{"BackupFailing", "broken"}, {"BackupMissed", "broken"},
                                          {"VerificationFailed", "shaky"}};
  std::map<std::string, std::vector<std::string>> seen;  // "alert/policy" -> the states in the order seen
  std::set<std::string> stray;
  auto key = [](const std::string& a, const std::string& p) { return a + "/" + p; };
  const bool all_fired = eventually([&] {
    last = prometheus.api("/api/v1/alerts");
    for (const auto& a : last["data"].value("alerts", json::array())) {
      const std::string name = a["labels"].value("alertname", ""), policy = a["labels"].value("policy", "");
      const std::string state = a.value("state", "");
      bool wanted = false;
      for (const auto& e : expected) wanted = wanted || (e.alert == name && e.policy == policy);
      if (!wanted) {
        if (state == "firing" && (name == "BackupFailing" || name == "BackupMissed" || name == "VerificationFailed"))
          stray.insert(key(name, policy));
        continue;
      }
      auto& states = seen[key(name, policy)];
      if (states.empty() || states.back() != state) states.push_back(state);
    }
    for (const auto& e : expected) {
      const auto it = seen.find(key(e.alert, e.policy));
      if (it == seen.end() || it->second.back() != "firing") return false;
    }
    return true;
  }, std::chrono::seconds(180), std::chrono::milliseconds(200));
  auto describe = [&] {
    std::string s;
    for (const auto& [k, states] : seen) {
      s += k + ":";
      for (const auto& st : states) s += " " + st;
      s += "\n";
    }
    return s;
  };
  ASSERT_TRUE(all_fired) << describe() << last.dump(2);
  std::cout << "alert states seen:\n" << describe();
  for (const auto& e : expected)
    EXPECT_EQ(seen[key(e.alert, e.policy)], (std::vector<std::string>{"pending", "firing"})) << describe();
  EXPECT_TRUE(stray.empty()) << "alerts firing for policies that back up and verify fine: " << [&] {
    std::string s;
    for (const auto& k : stray) s += k + " ";
    return s;
  }();
  // The verification really failed (not merely disabled or stale).
  auto shaky = admin_->get(bo::reconcile::kBackupPolicies, "app", "shaky");
  ASSERT_TRUE(shaky);
  for (const auto& c : (*shaky)["status"]["conditions"]) {
    if (c.value("type", "") == "Verified") {
      EXPECT_EQ(c.value("reason", ""), "VerificationFailed") << c.dump();
    }
  }
  // The operator is scraped: BackupOperatorDown stays quiet.
  EXPECT_EQ(prometheus.query("ALERTS{alertname=\"BackupOperatorDown\"}")["data"]["result"], json::array());

  // Every query of every panel of the chart's dashboard returns data, with
  // Grafana's variables as Grafana would fill them for "All" and a 1 s scrape.
  const json configmap = of_kind(render({"grafanaDashboard.enabled=true"}, "templates/dashboard.yaml"), "ConfigMap");
  const json dashboard = json::parse(configmap["data"]["backup-operator.json"].get<std::string>());
  const std::vector<std::pair<std::string, std::string>> variables = {
      {"$__rate_interval", "1m"}, {"$__range", "5m"}, {"$namespace", ".*"}, {"$policy", ".*"}};
  std::vector<std::pair<std::string, std::string>> queries;  // panel title, query
  for (const auto& panel : dashboard["panels"])
    for (const auto& target : panel.value("targets", json::array())) {
      std::string q = target.value("expr", "");
      for (const auto& [var, value] : variables)
        for (std::size_t at; (at = q.find(var)) != std::string::npos;) q.replace(at, var.size(), value);
      ASSERT_EQ(q.find('$'), std::string::npos) << panel["title"] << ": a variable left unsubstituted: " << q;
      queries.emplace_back(panel.value("title", ""), q);
    }
  ASSERT_GE(queries.size(), 15u);
  std::vector<std::string> without_data;
  eventually([&] {
    without_data.clear();
    for (const auto& [title, q] : queries) {
      const json answer = prometheus.query(q);
      if (answer.value("status", "") != "success" || answer["data"]["result"].empty())
        without_data.push_back(title + ": " + q + " -> " + answer.dump());
    }
    return without_data.empty();
  }, std::chrono::seconds(90), std::chrono::milliseconds(500));
  std::cout << queries.size() << " dashboard queries, " << without_data.size() << " without data\n";
  EXPECT_TRUE(without_data.empty()) << [&] {
    std::string s;
    for (const auto& w : without_data) s += w + "\n";
    return s;
  }();
}

}  // namespace
