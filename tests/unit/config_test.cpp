#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/encoding.h"
#include "kube/config.h"

using bo::kube::in_cluster_config;
using bo::kube::load_kubeconfig;

namespace {

namespace fs = std::filesystem;

class KubeconfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("kc-" + bo::hex_encode(bo::random_bytes(4)));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

const char* kGood = R"(apiVersion: v1
kind: Config
current-context: main
clusters:
- name: c1
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: Q0EtUEVN
- name: c2
  cluster: {server: https://10.0.0.1, certificate-authority: ca.pem, insecure-skip-tls-verify: false}
users:
- name: u1
  user: {token: abc}
- name: u2
  user: {tokenFile: token.txt, client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
contexts:
- name: main
  context: {cluster: c1, user: u1, namespace: team}
- name: other
  context: {cluster: c2, user: u2}
)";

TEST_F(KubeconfigTest, ReadsCurrentContext) {
  auto cfg = load_kubeconfig(write("config", kGood));
  ASSERT_TRUE(cfg) << cfg.error().str();
  EXPECT_EQ(cfg->server, "https://127.0.0.1:6443");
  EXPECT_EQ(cfg->ca_pem, "CA-PEM");
  EXPECT_EQ(cfg->token, "abc");
  EXPECT_EQ(cfg->default_namespace, "team");
}

TEST_F(KubeconfigTest, ContextOverrideReadsFilesRelativeToTheKubeconfig) {
  write("ca.pem", "FILE-CA");
  write("token.txt", "tok\n");
  auto cfg = load_kubeconfig(write("config", kGood), "other");
  ASSERT_TRUE(cfg) << cfg.error().str();
  EXPECT_EQ(cfg->ca_pem, "FILE-CA");
  EXPECT_EQ(cfg->client_cert_pem, "CERT");
  EXPECT_EQ(cfg->client_key_pem, "KEY");
  EXPECT_EQ(cfg->token_file, (dir_ / "token.txt").string());
  EXPECT_EQ(cfg->default_namespace, "default");
}

struct BadCase {
  const char* name;
  std::string text;
  const char* field;
};

class MalformedKubeconfig : public KubeconfigTest, public ::testing::WithParamInterface<BadCase> {};

TEST_P(MalformedKubeconfig, ErrorNamesFileAndField) {
  const auto path = write("config", GetParam().text);
  auto cfg = load_kubeconfig(path);
  ASSERT_FALSE(cfg);
  EXPECT_EQ(cfg.error().reason, "ConfigError");
  EXPECT_NE(cfg.error().message.find(path), std::string::npos) << cfg.error().message;
  EXPECT_NE(cfg.error().message.find(GetParam().field), std::string::npos) << cfg.error().message;
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  s.replace(s.find(from), from.size(), to);
  return s;
}

INSTANTIATE_TEST_SUITE_P(
    Table, MalformedKubeconfig,
    ::testing::Values(
        BadCase{"NotYaml", "clusters: [unclosed", "line"},
        BadCase{"NotAMapping", "- just\n- a list\n", "mapping"},
        BadCase{"NoCurrentContext", replace(kGood, "current-context: main", "current-context: \"\""), "current-context"},
        BadCase{"MissingContext", replace(kGood, "current-context: main", "current-context: nope"), "contexts"},
        BadCase{"MissingServer", replace(kGood, "server: https://127.0.0.1:6443/", "insecure-skip-tls-verify: true"),
                "clusters[0].cluster.server"},
        BadCase{"BadServerScheme", replace(kGood, "https://127.0.0.1:6443/", "ftp://x"), "clusters[0].cluster.server"},
        BadCase{"BadBase64", replace(kGood, "Q0EtUEVN", "not*base64"),
                "clusters[0].cluster.certificate-authority-data"},
        BadCase{"UnknownUser", replace(kGood, "user: u1, namespace", "user: ghost, namespace"), "users"},
        BadCase{"ClustersNotAList", "current-context: a\ncontexts: [{name: a, context: {cluster: c}}]\nclusters: 3\n",
                "clusters: must be a list"}),
    [](const auto& info) { return info.param.name; });

TEST_F(KubeconfigTest, MissingFileIsAnError) {
  auto cfg = load_kubeconfig((dir_ / "absent").string());
  ASSERT_FALSE(cfg);
  EXPECT_NE(cfg.error().message.find("cannot read"), std::string::npos);
}

TEST_F(KubeconfigTest, InClusterUsesServiceAccountFiles) {
  write("token", "sa-token");
  write("ca.crt", "SA-CA");
  write("namespace", "ops\n");
  std::map<std::string, std::string> env{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
  auto cfg = in_cluster_config(dir_.string(), &env);
  ASSERT_TRUE(cfg) << cfg.error().str();
  EXPECT_EQ(cfg->server, "https://10.96.0.1:443");
  EXPECT_EQ(cfg->token_file, (dir_ / "token").string());
  EXPECT_EQ(cfg->ca_pem, "SA-CA");
  EXPECT_EQ(cfg->default_namespace, "ops");
  std::map<std::string, std::string> none;
  EXPECT_FALSE(in_cluster_config(dir_.string(), &none));
}

}  // namespace
