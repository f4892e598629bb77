// Secrets on a need-to-know basis (reconcile/caches.h): the operator's caches
// against kube-local, as the chart's service account. Secrets are watched as
// metadata only; a Secret no policy names is never read, so its data is
// never in the operator's memory; a named Secret is read (GET) when it
// changes, and of it only key names, fingerprints and the values the
// operator uses are held.
#include <gtest/gtest.h>

#include <fstream>

#include "chart_operator.h"
#include "common/redaction.h"
#include "harness.h"
#include "reconcile/caches.h"

using nlohmann::json;
using testing_support::eventually;
using testing_support::KubeLocal;
namespace res = bo::kube::resources;

namespace {

const std::string kBystander = "CANARY-bystander-7f3a";
const std::string kStorageSecret = "CANARY-storage-91c2";
const std::string kPassword = "CANARY-db-password-44e0";

json policy_spec() {
  return {{"database", {{"host", "db.app.svc"}, {"credentialsSecretRef", {{"name", "db-credentials"}}}}},
          {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                       {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}}};
}

// Lines of kube-local's audit log about Secrets, by the operator's identity.
std::vector<json> secret_requests(const std::filesystem::path& log, const std::string& user) {
  std::vector<json> out;
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    const json e = json::parse(line, nullptr, false);
    if (e.is_object() && e.value("user", "") == user && e.value("resource", "") == "secrets") out.push_back(e);
  }
  return out;
}

class SecretCache : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("secret-cache");
    audit_ = dir_ / "audit.jsonl";
    server_ = std::make_unique<KubeLocal>(std::vector<std::string>{"--authorize", "--audit-log", audit_.string()});
    chart_ = std::make_unique<testing_support::ChartOperator>(testing_support::install_crds_and_chart(*server_, dir_));
    admin_ = server_->client();
    ASSERT_TRUE(admin_->create(res::kNamespaces, "", {{"metadata", {{"name", "app"}}}}));
    ASSERT_TRUE(admin_->create(res::kSecrets, "app",
                               {{"metadata", {{"name", "walg-storage"}}},
                                {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                                                {"WALG_AWS_SECRET_ACCESS_KEY", kStorageSecret},
                                                {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
    ASSERT_TRUE(admin_->create(res::kSecrets, "app",
                               {{"metadata", {{"name", "db-credentials"}}},
                                {"stringData", {{"username", "postgres"}, {"password", kPassword}}}}));
    // Named by no policy: its data must never reach the operator.
    ASSERT_TRUE(admin_->create(res::kSecrets, "app",
                               {{"metadata", {{"name", "bystander"}}}, {"stringData", {{"token", kBystander}}}}));
    auto cfg = bo::kube::load_kubeconfig(chart_->kubeconfig);
    ASSERT_TRUE(cfg) << cfg.error().str();
    op_client_ = std::make_unique<bo::kube::Client>(std::move(*bo::kube::make_cpprest_transport(*cfg)), 100, 200);
    caches_ = std::make_unique<bo::reconcile::Caches>(*op_client_, "");
    caches_->start();
    ASSERT_TRUE(eventually([&] { return caches_->synced(); }));
  }
  void TearDown() override {
    caches_.reset();
    chart_.reset();
    server_.reset();
    std::error_code ec;
    if (!HasFailure()) std::filesystem::remove_all(dir_, ec);
  }

  std::filesystem::path dir_, audit_;
  std::unique_ptr<KubeLocal> server_;
  std::unique_ptr<testing_support::ChartOperator> chart_;
  std::unique_ptr<bo::kube::Client> admin_, op_client_;
  std::unique_ptr<bo::reconcile::Caches> caches_;
};

TEST_F(SecretCache, ASecretNoPolicyNamesIsNeverReadAndTheWatchCarriesNoData) {
  auto data = caches_->secret_data("app", policy_spec());
  ASSERT_TRUE(data) << data.error().str();
  // walg-encryption does not exist; the two that do are held, nothing else.
  EXPECT_EQ(caches_->held_secrets(), (std::vector<std::string>{"app/db-credentials", "app/walg-storage"}));
  // The watch's copy of every Secret is its metadata alone.
  for (const auto& s : caches_->secrets.list()) {
    EXPECT_EQ((*s)["kind"], "PartialObjectMetadata") << s->dump();
    EXPECT_FALSE(s->contains("data")) << s->dump();
    EXPECT_EQ(s->dump().find("CANARY"), std::string::npos) << s->dump();
  }
  ASSERT_TRUE(caches_->secrets.get("app", "bystander"));
  // What kube-local served the operator: every list and watch of Secrets as
  // PartialObjectMetadata, and a get of the named ones only.
  const auto requests = secret_requests(audit_, chart_->username);
  ASSERT_FALSE(requests.empty());
  std::set<std::string> got;
  for (const auto& r : requests) {
    EXPECT_TRUE(r.value("allowed", false)) << r.dump();
    const std::string verb = r.value("verb", "");
    if (verb == "get") got.insert(r.value("name", ""));
    else
      EXPECT_EQ(r.value("as", ""), verb == "list" ? "PartialObjectMetadataList" : "PartialObjectMetadata") << r.dump();
  }
  EXPECT_EQ(got, (std::set<std::string>{"db-credentials", "walg-storage"}));
}

TEST_F(SecretCache, OnlyTheValuesTheOperatorUsesAreHeldAndTheRestStillRedact) {
  auto data = caches_->secret_data("app", policy_spec());
  ASSERT_TRUE(data) << data.error().str();
  const auto storage = caches_->held_secret("app", "walg-storage");
  ASSERT_TRUE(storage);
  EXPECT_EQ(storage->size(), 4u);
  EXPECT_FALSE(storage->at("WALG_AWS_SECRET_ACCESS_KEY").held());
  EXPECT_FALSE(storage->at("WALG_AWS_SECRET_ACCESS_KEY").empty());
  EXPECT_TRUE(storage->at("WALG_AWS_ENDPOINT").held());  // its scheme is checked
  const auto creds = caches_->held_secret("app", "db-credentials");
  ASSERT_TRUE(creds);
  EXPECT_EQ(creds->at("password").value(), kPassword);  // the archiving probe connects with it
  // A value held only by fingerprint is still found in output.
  std::vector<const bo::Fingerprint*> fps;
  for (const auto& [k, v] : *storage) fps.push_back(&v.fingerprint());
  EXPECT_EQ(bo::redact_fingerprints("wal-g: bad key " + kStorageSecret + ".", fps), "wal-g: bad key [redacted].");
}

TEST_F(SecretCache, RotatingANamedSecretsKeysIsPickedUp) {
  ASSERT_TRUE(caches_->secret_data("app", policy_spec()));
  const uint64_t reads = caches_->secret_reads();
  // Unchanged: served from what is held, no read.
  ASSERT_TRUE(caches_->secret_data("app", policy_spec()));
  EXPECT_EQ(caches_->secret_reads(), reads);
  // Keys renamed and a value rotated.
  auto s = admin_->get(res::kSecrets, "app", "walg-storage");
  ASSERT_TRUE(s);
  (*s)["data"].erase("WALG_AWS_ACCESS_KEY_ID");
  (*s)["data"]["AWS_ACCESS_KEY_ID"] = bo::base64_encode("id2");
  (*s)["data"]["WALG_AWS_SECRET_ACCESS_KEY"] = bo::base64_encode("CANARY-rotated-0b7d");
  ASSERT_TRUE(admin_->update(res::kSecrets, "app", *s));
  ASSERT_TRUE(eventually([&] {
    auto d = caches_->secret_data("app", policy_spec());
    return d && (*d)["walg-storage"].count("AWS_ACCESS_KEY_ID") && !(*d)["walg-storage"].count("WALG_AWS_ACCESS_KEY_ID");
  }));
  EXPECT_GT(caches_->secret_reads(), reads);
  auto d = caches_->secret_data("app", policy_spec());
  ASSERT_TRUE(d);
  std::vector<const bo::Fingerprint*> fps;
  for (const auto& [k, v] : (*d)["walg-storage"]) fps.push_back(&v.fingerprint());
  EXPECT_EQ(bo::redact_fingerprints("CANARY-rotated-0b7d", fps), "[redacted]");
  // Deleted: let go.
  ASSERT_TRUE(admin_->remove(res::kSecrets, "app", "db-credentials"));
  ASSERT_TRUE(eventually([&] {
    auto held = caches_->held_secrets();
    return std::find(held.begin(), held.end(), "app/db-credentials") == held.end();
  }));
}

}  // namespace

TEST_F(SecretCache, AKeyTheOperatorWouldUseButTheSecretLacksCostsNoReadEachReconcile) {
  // The storage Secret has no WALG_AWS_ENDPOINT (the operator would hold it
  // to check its scheme): at an unchanged version it stays absent, so what is
  // held still answers, and a fleet of such policies is not a GET storm.
  ASSERT_TRUE(admin_->create(res::kSecrets, "app",
                             {{"metadata", {{"name", "plain-storage"}}}, {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}}}}));
  json spec = policy_spec();
  spec["storage"]["secretRef"]["name"] = "plain-storage";
  ASSERT_TRUE(eventually([&] {
    auto d = caches_->secret_data("app", spec);
    return d && d->count("plain-storage");
  }));
  const uint64_t reads = caches_->secret_reads();
  for (int i = 0; i < 3; ++i) {
    auto d = caches_->secret_data("app", spec);
    ASSERT_TRUE(d) << d.error().str();
    EXPECT_EQ((*d)["plain-storage"].count("WALG_AWS_ENDPOINT"), 0u);
    EXPECT_FALSE((*d)["plain-storage"].at("WALG_S3_PREFIX").held());
  }
  EXPECT_EQ(caches_->secret_reads(), reads);
}
