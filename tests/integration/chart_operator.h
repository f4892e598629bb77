// The operator as the Helm chart installs it, on kube-local: the chart's
// ServiceAccount, RBAC and webhook configuration rendered by the real helm and
// applied, a token of that service account in a kubeconfig, and the webhook's
// certificate (given to the chart as an existing Secret) as files.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "common/certs.h"
#include "common/encoding.h"
#include "harness.h"

namespace testing_support {

struct ChartOperator {
  std::string kubeconfig;
  fs::path cert_dir;
  std::string ca_bundle;  // base64 of the webhook certificate's CA
  std::string username = "system:serviceaccount:backup-operator-system:bo-backup-operator";

  // The operator's command line, as the chart's Deployment runs it (its webhook on port 0: see serve_webhook).
  [[nodiscard]] std::vector<std::string> args(std::vector<std::string> extra) const {
    std::vector<std::string> a = {OPERATOR_BIN, "--kubeconfig", kubeconfig, "--webhook-bind-address",
                                  "127.0.0.1:0", "--webhook-cert-dir", cert_dir.string(),
                                  "--webhook-configuration=", "--leader-elect", "--leader-election-namespace",
                                  "backup-operator-system", "--leader-elect-retry-period", "200ms",
                                  "--health-probe-bind-address", "0"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // kube-local calls webhooks by URL only: once the operator `op` (started
  // with args()) logs the port its webhook got, point the chart's webhook
  // configuration there. Until then admission fails as against a Service
  // with no endpoint. Again after a restart: the port changes. False when no
  // port was logged within 30 s or the patch was refused.
  [[nodiscard]] bool serve_webhook(const KubeLocal& server, const Child& op) const {
    const int port = listening_port(op, "webhook");
    if (port == 0) return false;
    const nlohmann::json patch = nlohmann::json::array(
        {{{"op", "add"}, {"path", "/webhooks/0/clientConfig"},
          {"value", {{"url", "https://127.0.0.1:" + std::to_string(port) + "/mutate-restorerequests"}, {"caBundle", ca_bundle}}}}});
    return server.kubectl("patch mutatingwebhookconfiguration bo-backup-operator --type json -p '" + patch.dump() + "'")
               .exit_code == 0;
  }
};

// A kubeconfig holding a fresh token of the service account `ns`/`name`.
inline std::string service_account_kubeconfig(const KubeLocal& server, const std::string& ns, const std::string& name,
                                              const fs::path& path) {
  auto admin = server.client({1});
  const nlohmann::json tr = nlohmann::json::object();
  auto token = admin->request("POST", bo::kube::resources::kServiceAccounts.path(ns, name, "token"), &tr);
  if (!token) throw std::runtime_error("token of the service account " + ns + "/" + name + ": " + token.error().str());
  const auto cfg = server.config();
  return write_file(path, "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n    server: " +
                              cfg.server + "\n    certificate-authority-data: " + bo::base64_encode(cfg.ca_pem) +
                              "\nusers:\n- name: op\n  user:\n    token: " +
                              (*token)["status"]["token"].get<std::string>() +
                              "\ncontexts:\n- name: op\n  context: {cluster: local, user: op, namespace: " + ns +
                              "}\ncurrent-context: op\n");
}

// `sets`: more helm --set values (e.g. "watchNamespaces={shop,shop-verify}").
// `webhook_hosts`: the names the webhook certificate (which the chart's
// /metrics serves too) carries, comma-separated.
inline ChartOperator install_chart(const KubeLocal& server, const fs::path& dir, const std::vector<std::string>& sets = {},
                                   const std::string& webhook_hosts = "127.0.0.1") {
  auto fail = [](const std::string& what, const CommandResult& r) {
    throw std::runtime_error(what + ": " + r.output);
  };
  ChartOperator op;
  auto admin = server.client({1});
  if (!admin->create(bo::kube::resources::kNamespaces, "", {{"metadata", {{"name", "backup-operator-system"}}}}))
    throw std::runtime_error("create namespace backup-operator-system");
  const auto tls = bo::generate_tls("backup-operator-webhook", webhook_hosts);
  if (!admin->create(bo::kube::resources::kSecrets, "backup-operator-system",
                     {{"metadata", {{"name", "webhook-tls"}}}, {"type", "kubernetes.io/tls"},
                      {"stringData", {{"tls.crt", tls.server.cert + tls.ca.cert}, {"tls.key", tls.server.key}, {"ca.crt", tls.ca.cert}}}}))
    throw std::runtime_error("create the webhook Secret");
  const std::string rendered = (dir / "chart.yaml").string();
  auto r = run("helm template bo " + std::string(SOURCE_DIR) + "/charts/backup-operator --namespace backup-operator-system"
               " --set webhook.certificate.mode=secret --set webhook.certificate.existingSecret=webhook-tls"
               " --set webhook.certificate.caBundle=" + bo::base64_encode(tls.ca.cert) + [&] {
                 std::string more;
                 for (const auto& s : sets) more += " --set '" + s + "'";
                 return more;
               }() +
               " --show-only templates/serviceaccount.yaml --show-only templates/rbac.yaml --show-only templates/webhook.yaml > " +
               rendered);
  if (r.exit_code != 0) fail("helm template", r);
  r = server.kubectl("apply -f " + rendered);
  if (r.exit_code != 0) fail("kubectl apply of the chart", r);
  op.ca_bundle = bo::base64_encode(tls.ca.cert);
  op.kubeconfig = service_account_kubeconfig(server, "backup-operator-system", "bo-backup-operator",
                                             dir / "operator.kubeconfig");
  op.cert_dir = dir / "certs";
  fs::create_directories(op.cert_dir);
  write_file(op.cert_dir / "tls.crt", tls.server.cert + tls.ca.cert);
  write_file(op.cert_dir / "tls.key", tls.server.key);
  return op;
}

// The repository's CRDs applied to `server`, then the chart installed
// (install_chart, its files in `dir`): where every suite that runs the
// operator as the chart does begins. Throws, with kubectl's output, when
// the CRDs are refused.
inline ChartOperator install_crds_and_chart(const KubeLocal& server, const fs::path& dir,
                                            const std::vector<std::string>& sets = {},
                                            const std::string& webhook_hosts = "127.0.0.1") {
  const auto r = server.kubectl("apply -f " + std::string(SOURCE_DIR) + "/crds/");
  if (r.exit_code != 0) throw std::runtime_error("kubectl apply of the CRDs: " + r.output);
  return install_chart(server, dir, sets, webhook_hosts);
}

// Whether the operator process logs that `controller` runs (it has won the
// lease and started its controllers) within 30 s.
[[nodiscard]] inline bool controller_started(const Child& op, const std::string& controller) {
  return eventually([&] { return op.log().find("\"controller\":\"" + controller + "\"") != std::string::npos; },
                    std::chrono::seconds(30));
}

}  // namespace testing_support
