// The backup-operator binary as users run it: flags, failure messages,
// probes, metrics, leader election and clean shutdown.
#include <gtest/gtest.h>

#include <set>

#include "chart_operator.h"
#include "harness.h"
#include "common/encoding.h"
#include "kube-local/certs.h"

using testing_support::eventually;
using testing_support::KubeLocal;
using testing_support::run;

namespace {

const std::string kOp = OPERATOR_BIN;

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(OperatorCli, HelpAndVersion) {
  auto h = run(kOp + " --help");
  EXPECT_EQ(h.exit_code, 0);
  for (const char* flag : {"--kubeconfig", "--watch-namespace", "--metrics-bind-address", "--health-probe-bind-address",
                           "--leader-elect", "--leader-election-namespace", "--kube-api-qps", "--kube-api-burst",
                           "--log-level", "--log-format", "--version"})
    EXPECT_NE(h.output.find(flag), std::string::npos) << flag;
  auto v = run(kOp + " --version");
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_NE(v.output.find("backup-operator 0."), std::string::npos);
  // "--flag=" is an empty value, never a swallowed next argument (the chart passes --webhook-configuration=).
  v = run(kOp + " --webhook-configuration= --version");
  EXPECT_EQ(v.exit_code, 0) << v.output;
  EXPECT_NE(v.output.find("backup-operator 0."), std::string::npos) << v.output;
}

TEST(OperatorCli, BadFlagsAreOneLineErrors) {
  for (const std::string args : {"--no-such-flag", "--log-format xml", "--log-level loud", "--kube-api-qps -3",
                                 "--kube-api-burst many", "--leader-elect-lease-duration 15parsecs",
                                 "--leader-elect-renew-deadline 20s"}) {
    auto r = run(kOp + " " + args);
    EXPECT_NE(r.exit_code, 0) << args;
    EXPECT_EQ(count_lines(r.output), 1) << args << ": " << r.output;
    EXPECT_EQ(r.output.rfind("backup-operator: ", 0), 0u) << r.output;
  }
}

// The demo clock is refused where a kubelet started the process (its
// environment says so), unless a demo cluster asks for it by name.
TEST(OperatorCli, DemoClockIsRefusedInAClusterUnlessAllowed) {
  for (const std::string args : {"--time-scale 600", "--time-scale-anchor 2026-01-01T00:00:00Z"}) {
    auto r = run("env KUBERNETES_SERVICE_HOST=10.96.0.1 KUBERNETES_SERVICE_PORT=443 " + kOp + " " + args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.output;
    EXPECT_EQ(count_lines(r.output), 1) << args << ": " << r.output;
    EXPECT_NE(r.output.find("refused in a cluster (KUBERNETES_SERVICE_HOST is set)"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("--allow-demo-clock"), std::string::npos) << r.output;
  }
  // Allowed, the start goes on to the next step (here: the in-cluster configuration, which this machine lacks).
  auto r = run("env KUBERNETES_SERVICE_HOST=10.96.0.1 KUBERNETES_SERVICE_PORT=443 " + kOp + " --time-scale 600 --allow-demo-clock");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("refused in a cluster"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("in-cluster"), std::string::npos) << r.output;
}

TEST(OperatorCli, MalformedKubeconfigNamesFileAndField) {
  const auto dir = testing_support::make_temp_dir("op-cli");
  const auto kc = testing_support::write_file(
      dir / "kc", "apiVersion: v1\nkind: Config\ncurrent-context: x\ncontexts:\n- name: x\n  context: {cluster: c}\n"
                  "clusters:\n- name: c\n  cluster: {certificate-authority-data: QQ==}\n");
  auto r = run(kOp + " --kubeconfig " + kc);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find(kc), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("clusters[0].cluster.server"), std::string::npos) << r.output;
  std::filesystem::remove_all(dir);
}

class OperatorAgainstKubeLocal : public ::testing::Test {
 protected:
  KubeLocal server_;
};

TEST_F(OperatorAgainstKubeLocal, UnreachableServerAndWrongCaFailInOneLine) {
  auto text = run("cat " + server_.kubeconfig().string()).output;
  const auto unreachable = server_.dir() / "unreachable";
  auto pos = text.find("https://127.0.0.1:");
  auto end = text.find('\n', pos);
  testing_support::write_file(unreachable, text.substr(0, pos) + "https://127.0.0.1:1" + text.substr(end));
  auto r = run(kOp + " --kubeconfig " + unreachable.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find("cannot reach the Kubernetes API at https://127.0.0.1:1"), std::string::npos) << r.output;

  const auto wrong_ca = server_.dir() / "wrong-ca";
  pos = text.find("certificate-authority-data: ");
  end = text.find('\n', pos);
  testing_support::write_file(wrong_ca, text.substr(0, pos) + "certificate-authority-data: " +
                                            bo::base64_encode(kl::generate_tls("other").ca.cert) + text.substr(end));
  r = run(kOp + " --kubeconfig " + wrong_ca.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.output), 1) << r.output;
  EXPECT_NE(r.output.find("TLS verification failed"), std::string::npos) << r.output;
}

// Every listener on port 0 (an http and two https ones in one process): each
// logs the address it got, distinct ports, and answers there.
TEST_F(OperatorAgainstKubeLocal, ServesProbesAndMetricsHoldsAndReleasesTheLease) {
  const auto certs = server_.dir() / "webhook-certs";
  std::filesystem::create_directories(certs);
  const auto tls = bo::generate_tls("backup-operator-webhook", "127.0.0.1");
  testing_support::write_file(certs / "tls.crt", tls.server.cert + tls.ca.cert);
  testing_support::write_file(certs / "tls.key", tls.server.key);
  testing_support::Child op({kOp, "--kubeconfig", server_.kubeconfig().string(), "--leader-elect",
                             "--leader-elect-retry-period", "200ms", "--health-probe-bind-address", "127.0.0.1:0",
                             "--metrics-bind-address", "127.0.0.1:0", "--webhook-bind-address", "127.0.0.1:0",
                             "--webhook-cert-dir", certs.string(), "--webhook-configuration="},
                            server_.dir() / "op.log");
  const pid_t pid = op.pid();
  const int probes = testing_support::listening_port(op, "health-probe");
  const int metrics = testing_support::listening_port(op, "metrics");
  const int webhook = testing_support::listening_port(op, "webhook");
  ASSERT_GT(probes, 0) << op.log();
  ASSERT_GT(metrics, 0) << op.log();
  ASSERT_GT(webhook, 0) << op.log();
  EXPECT_EQ(std::set<int>({probes, metrics, webhook}).size(), 3u);
  const std::string probe_url = "http://127.0.0.1:" + std::to_string(probes);
  ASSERT_TRUE(eventually([&] { return run("curl -sf " + probe_url + "/readyz").output == "ok"; }));
  EXPECT_EQ(run("curl -sf " + probe_url + "/healthz").output, "ok");
  ASSERT_TRUE(eventually([&] {
    return run("curl -sf http://127.0.0.1:" + std::to_string(metrics) + "/metrics").output.find("backup_operator_leader 1") !=
           std::string::npos;
  }));
  // The webhook answers TLS there (a GET is not a review: 405 or 404, but an HTTP answer).
  EXPECT_EQ(run("curl -sk -o /dev/null -w '%{http_code}' https://127.0.0.1:" + std::to_string(webhook) + "/mutate-restorerequests")
                .output.substr(0, 1),
            "4");
  auto holder = server_.kubectl("get lease backup-operator.backup.si.dev -o jsonpath={.spec.holderIdentity}");
  EXPECT_NE(holder.output.find("_" + std::to_string(pid)), std::string::npos) << holder.output;
  op.stop(SIGTERM);
  holder = server_.kubectl("get lease backup-operator.backup.si.dev -o jsonpath={.spec.holderIdentity}");
  EXPECT_EQ(holder.output, "");  // released on shutdown: a successor need not wait out the lease
  const auto lines = op.log();
  EXPECT_NE(lines.find("\"msg\":\"became leader\""), std::string::npos) << lines;
}

}  // namespace

namespace {

// Every Secret value in this run carries a canary; none may surface anywhere
// the operator writes: its log, Events, the policy's status, Job specs, metrics.
TEST(SecretHygiene, CanaryAppearsInNoLogEventStatusJobOrMetric) {
  KubeLocal server({"--authorize", "--time-scale", "100"});
  const std::string canary = "CANARY-5ec7e7-do-not-leak";
  auto r = server.kubectl("apply -f " + std::string(SOURCE_DIR) + "/crds/");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto manifests = server.dir() / "policy.yaml";
  testing_support::write_file(manifests, R"(apiVersion: v1
kind: Namespace
metadata: {name: hygiene}
---
apiVersion: v1
kind: Namespace
metadata: {name: hygiene-verify}
---
apiVersion: v1
kind: Secret
metadata: {name: walg-storage, namespace: hygiene}
stringData:
  WALG_S3_PREFIX: s3://bucket/)" + canary + R"(
  WALG_AWS_ACCESS_KEY_ID: )" + canary + R"(-id
  WALG_AWS_SECRET_ACCESS_KEY: )" + canary + R"(-secret
  WALG_AWS_ENDPOINT: https://)" + canary + R"(.example
---
apiVersion: v1
kind: Secret
metadata: {name: walg-encryption, namespace: hygiene}
stringData: {WALG_LIBSODIUM_KEY: )" + canary + R"(-key}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: hygiene}
stringData: {username: )" + canary + R"(-user, password: )" + canary + R"(-pw}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: db-data, namespace: hygiene}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: backup.si.dev/v1alpha1
kind: BackupPolicy
metadata: {name: db, namespace: hygiene}
spec:
  database: {host: db, credentialsSecretRef: {name: db}, dataVolume: {claimName: db-data}, runAsUser: 101, runAsGroup: 102}
  storage: {secretRef: {name: walg-storage}, encryption: {secretRef: {name: walg-encryption}}}
  schedule: {backup: "* * * * *"}
  verification: {targetNamespace: hygiene-verify}
)");
  r = server.kubectl("apply -f " + manifests.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The operator as the chart installs it, under the chart's RBAC.
  const auto chart = testing_support::install_chart(server, server.dir());
  const std::string log = (server.dir() / "op.log").string();
  testing_support::Child op(chart.args({"--log-level", "debug", "--time-scale", "100", "--metrics-bind-address", "127.0.0.1:0"}),
                            log);
  const int port = testing_support::listening_port(op, "metrics");
  ASSERT_GT(port, 0) << op.log();
  ASSERT_TRUE(chart.serve_webhook(server, op)) << op.log();
  ASSERT_TRUE(eventually([&] {
    return server.kubectl("get jobs -n hygiene -o name").output.find("job.batch/db-delta-") != std::string::npos;
  }, std::chrono::seconds(30)));
  ASSERT_TRUE(eventually([&] {
    return server.kubectl("get events -n hygiene -o name").output.find("event/") != std::string::npos;
  }));
  const std::string metrics = run("curl -sf http://127.0.0.1:" + std::to_string(port) + "/metrics").output;
  op.stop(SIGTERM);
  EXPECT_NE(metrics.find("backup_operator_policy_condition"), std::string::npos);
  EXPECT_NE(metrics.find("backup_operator_backup_interval_seconds{namespace=\"hygiene\",policy=\"db\"} 60"), std::string::npos);
  // promtool lints the exposition as Prometheus would scrape it.
  const auto scrape = testing_support::write_file(server.dir() / "scrape.txt", metrics);
  auto lint = run("promtool check metrics < " + scrape);
  EXPECT_EQ(lint.exit_code, 0) << lint.output;
  const std::string everything = run("cat " + log).output + metrics +
                                 server.kubectl("get events,jobs,pods,deployments -n hygiene -o json").output +
                                 server.kubectl("get backuppolicy db -n hygiene -o json").output;
  EXPECT_NE(everything.find("\"reason\": \"JobCreated\""), std::string::npos);  // the sample is real
  EXPECT_EQ(everything.find(canary), std::string::npos)
      << everything.substr(everything.find(canary) == std::string::npos ? 0 : everything.find(canary) - 200, 400);
}

}  // namespace
