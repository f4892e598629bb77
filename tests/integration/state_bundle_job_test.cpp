// The state-bundle Job path end to end: the operator (as the chart runs it)
// schedules state-bundle Jobs from spec.paasState; kube-local's process
// kubelet runs them for real (the same backup-operator binary, env from the
// Secrets, the state claim as a directory); bundles land in s3rver over TLS
// next to the WAL-G prefix, or on a destination claim; the policy records
// them; a refused context reports the path; no secret escapes.
#include <gtest/gtest.h>

#include "chart_operator.h"
#include "common/encoding.h"
#include "harness.h"
#include "reconcile/caches.h"
#include "reconcile/conditions.h"

using namespace bo::kube;
using bo::reconcile::kBackupPolicies;
using nlohmann::json;
using testing_support::Child;
using testing_support::eventually;
using testing_support::KubeLocal;
namespace fs = std::filesystem;

namespace {

const std::string kCanary = "canary-state-7e3f";
const std::string kKeyHex = "8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677";

class StateBundleJobs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(testing_support::make_temp_dir("state-jobs"));
    // The Jobs run as their Pod's user (65532) and read the CA and the state from here.
    fs::permissions(*dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
    // s3rver over TLS with a CA the Job trusts through WALG_S3_CA_CERT_FILE.
    s3_ = new testing_support::S3rverTls(testing_support::start_s3rver_tls(*dir_, "backups"));
    s3_port_ = s3_->port;

    const json rules = json::array({{{"selector", "backup.si.dev/action=state-bundle"}, {"outcome", {{"exec", true}}}}});
    // --time-scale shortens kube-local's Job backoff between a refused context's retries; the exec Pods run in real time.
    server_ = new KubeLocal({"--authorize", "--time-scale", "20", "--pod-rules", testing_support::write_file(*dir_ / "rules.json", rules.dump()),
                             "--exec-image", std::string("si-dev/backup-operator:0.1.0=") + OPERATOR_BIN, "--volume-root",
                             (*dir_ / "volumes").string()});
    const auto chart = testing_support::install_crds_and_chart(*server_, *dir_);
    // One scaled hour every 6 s: the "*/15" state schedule falls due every 1.5 s.
    operator_ = new Child(chart.args({"--time-scale", "600", "--metrics-bind-address", "0"}), *dir_ / "operator.log");
    ASSERT_TRUE(testing_support::controller_started(*operator_, "backuppolicy")) << operator_->log();
  }
  static void TearDownTestSuite() {
    delete operator_;
    delete server_;
    delete s3_;
    fs::remove_all(*dir_);
    delete dir_;
  }

  // A namespace with the storage and key Secrets and a state claim holding contexts shop and blog.
  void namespace_with_state(const std::string& ns) {
    auto admin = server_->client();
    ASSERT_TRUE(admin->create(resources::kNamespaces, "", {{"metadata", {{"name", ns}}}}));
    ASSERT_TRUE(admin->create(resources::kPersistentVolumeClaims, ns, {{"metadata", {{"name", "supabase-db-data"}}}, {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
    ASSERT_TRUE(admin->create(resources::kSecrets, ns,
                              {{"metadata", {{"name", "walg-storage"}}},
                               {"stringData", {{"WALG_S3_PREFIX", "s3://backups/" + ns},
                                               {"WALG_AWS_ACCESS_KEY_ID", "S3RVER"},
                                               {"WALG_AWS_SECRET_ACCESS_KEY", kCanary},
                                               {"WALG_AWS_ENDPOINT", "https://127.0.0.1:" + std::to_string(s3_port_)},
                                               {"WALG_S3_CA_CERT_FILE", (*dir_ / "ca.crt").string()}}}}));
    ASSERT_TRUE(admin->create(resources::kSecrets, ns,
                              {{"metadata", {{"name", "walg-encryption"}}},
                               {"stringData", {{"WALG_LIBSODIUM_KEY", kCanary}, {"BUNDLE_KEY", kKeyHex}}}}));
    const fs::path root = *dir_ / "volumes" / ns / "paas-state" / "state" / "contexts";
    for (const char* ctx : {"shop", "blog"}) {
      fs::create_directories(root / ctx / "events");
      fs::create_directories(root / ctx / "releases/r1");
      fs::create_directories(root / ctx / "vault");
      testing_support::write_file(root / ctx / "config.json", std::string(R"({"context":")") + ctx + "\"}");
      testing_support::write_file(root / ctx / "events/audit.jsonl", "{\"e\":1}\n");
      testing_support::write_file(root / ctx / "releases/r1/release.json", R"({"image":"app:1"})");
      testing_support::write_file(root / ctx / "vault/secrets.env", "TOKEN=" + kCanary + "\n");
    }
    // blog keeps a plaintext export among its releases: its bundle must be refused.
    testing_support::write_file(root / "blog/releases/r1/prod.env", "TOKEN=" + kCanary + "\n");
  }

  json policy(const std::string& ns, json paas) {
    return {{"metadata", {{"name", "db"}, {"namespace", ns}}},
            {"spec", {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "supabase-db"}}},
                      {"addons", {"supabase-walg"}},
                      {"schedule", {{"backup", "0 0 1 1 *"}, {"fullBackup", "0 0 1 1 *"}}},
                      {"verification", {{"enabled", false}}},
                      {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                   {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                      {"paasState", paas}}}};
  }

  static json bundles_of(Client& c, const std::string& ns) {
    auto p = c.get(kBackupPolicies, ns, "db");
    if (!p) return json::array();
    const json status = p->value("status", json::object());
    return status.value("paasState", json::object()).value("bundles", json::array());
  }

  static fs::path* dir_;
  static int s3_port_;
  static testing_support::S3rverTls* s3_;
  static KubeLocal* server_;
  static Child* operator_;
};

fs::path* StateBundleJobs::dir_ = nullptr;
int StateBundleJobs::s3_port_ = 0;
testing_support::S3rverTls* StateBundleJobs::s3_ = nullptr;
KubeLocal* StateBundleJobs::server_ = nullptr;
Child* StateBundleJobs::operator_ = nullptr;

}  // namespace

TEST_F(StateBundleJobs, BundlesLandInS3BesideTheWalgBackupsAndAreRecorded) {
  namespace_with_state("state-s3");
  auto admin = server_->client();
  ASSERT_TRUE(admin->create(kBackupPolicies, "state-s3",
                            policy("state-s3", {{"claimName", "paas-state"}, {"subPath", "state"},
                                                {"contexts", {"shop", "blog"}}, {"schedule", "*/15 * * * *"}})));
  json shop;
  ASSERT_TRUE(eventually([&] {
    for (const auto& b : bundles_of(*admin, "state-s3"))
      if (b.value("context", "") == "shop") shop = b;
    return !shop.is_null();
  }, std::chrono::seconds(60))) << server_->kubectl("get pods,jobs,backuppolicies -n state-s3 -o yaml").output;
  EXPECT_EQ(shop["files"], 3);
  EXPECT_EQ(shop["sha256"].get<std::string>().size(), 64u);
  const std::string id = shop["id"];
  // The object is in the bucket under the policy's WAL-G prefix.
  const fs::path object = *dir_ / "s3/backups/state-s3/paas-state/shop" / (id + ".bundle._S3rver_object");
  EXPECT_TRUE(fs::exists(object)) << object;

  // blog was refused, naming the file, and nothing of it was stored.
  ASSERT_TRUE(eventually([&] {
    auto r = server_->kubectl("get events -n state-s3 -o json");
    return r.output.find("releases/r1/prod.env: an environment file is a plaintext secret export") != std::string::npos;
  }, std::chrono::seconds(60)));
  EXPECT_FALSE(fs::exists(*dir_ / "s3/backups/state-s3/paas-state/blog"));

  // What the Job stored verifies and restores with the user-facing command.
  auto r = testing_support::run("env WALG_S3_PREFIX=s3://backups/state-s3 WALG_AWS_ACCESS_KEY_ID=S3RVER "
                                "WALG_AWS_SECRET_ACCESS_KEY=x WALG_AWS_ENDPOINT=https://127.0.0.1:" +
                                std::to_string(s3_port_) + " WALG_S3_CA_CERT_FILE=" + (*dir_ / "ca.crt").string() +
                                " BUNDLE_KEY=" + kKeyHex + " " + OPERATOR_BIN + " bundle restore --store s3 --context shop --id " +
                                id + " --key-env BUNDLE_KEY --state-root " + (*dir_ / "restored").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(*dir_ / "restored/contexts/shop/releases/r1/release.json"));
  EXPECT_FALSE(fs::exists(*dir_ / "restored/contexts/shop/vault"));
  EXPECT_NE(r.output.find(shop["sha256"].get<std::string>()), std::string::npos) << "the status' sha256 is the bundle's";

  // The Jobs carry the key and the storage credentials by reference only; nothing leaks.
  for (const char* what : {"jobs", "backuppolicies", "events"}) {
    auto out = server_->kubectl(std::string("get ") + what + " -n state-s3 -o json");
    EXPECT_EQ(out.output.find(kCanary), std::string::npos) << what;
    EXPECT_EQ(out.output.find(kKeyHex), std::string::npos) << what;
  }
  EXPECT_EQ(operator_->log().find(kCanary), std::string::npos);
}

TEST_F(StateBundleJobs, EveryContextToADestinationClaim) {
  namespace_with_state("state-dir");
  // Only shop here: blog's export would refuse the all-contexts bundle.
  fs::remove_all(*dir_ / "volumes/state-dir/paas-state/state/contexts/blog");
  auto admin = server_->client();
  ASSERT_TRUE(admin->create(kBackupPolicies, "state-dir",
                            policy("state-dir", {{"claimName", "paas-state"}, {"subPath", "state"}, {"contexts", {"*"}},
                                                 {"schedule", "*/15 * * * *"}, {"forensicCache", true},
                                                 {"destination", {{"claimName", "bundles"}, {"path", "prod"}}}})));
  json shop;
  ASSERT_TRUE(eventually([&] {
    for (const auto& b : bundles_of(*admin, "state-dir"))
      if (b.value("context", "") == "shop") shop = b;
    return !shop.is_null();
  }, std::chrono::seconds(60))) << server_->kubectl("get pods,jobs,backuppolicies -n state-dir -o yaml").output;
  const fs::path file = *dir_ / "volumes/state-dir/bundles/prod/paas-state/shop" / (shop["id"].get<std::string>() + ".bundle");
  ASSERT_TRUE(fs::exists(file));
  auto r = testing_support::run("env BUNDLE_KEY=" + kKeyHex + " " + OPERATOR_BIN + " bundle verify --file " + file.string() +
                                " --key-env BUNDLE_KEY");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("\"result\":\"verified\""), std::string::npos);
  auto p = admin->get(kBackupPolicies, "state-dir", "db");
  ASSERT_TRUE(p);
  const json* c = bo::reconcile::find_condition((*p)["status"]["conditions"], "StateBundleHealthy");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "True") << c->dump();
}
