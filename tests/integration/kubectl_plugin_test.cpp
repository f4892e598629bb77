// `kubectl backup …` through the real kubectl's plugin mechanism (kubectl
// finds kubectl-backup on the PATH and runs it with the rest of the command
// line) against kube-local: the status table, the catalog, a restore and a
// verification created and followed to their outcome, and a bad flag.
// The request's outcome is written by the test here (no operator runs): what
// is proven is the plugin's side, the RestoreRequests it creates and how it
// follows one.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>

#include "harness.h"
#include "reconcile/caches.h"

using nlohmann::json;
using testing_support::eventually;
using testing_support::KubeLocal;

namespace {

const std::string kFull = "base_000000010000000000000005";
const std::string kSum = "sha256:" + std::string(64, 'f');

class KubectlPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = server_.kubectl("apply -f " + std::string(SOURCE_DIR) + "/crds/");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    admin_ = server_.client();
    for (const char* ns : {"shop", "shop-verify", "shop-drill"})
      ASSERT_TRUE(admin_->create(bo::kube::resources::kNamespaces, "", {{"metadata", {{"name", ns}}}}));
    const json policy = {
        {"apiVersion", "backup.si.dev/v1alpha1"},
        {"kind", "BackupPolicy"},
        {"metadata", {{"name", "db"}}},
        {"spec", {{"database", {{"host", "db"}, {"dataVolume", {{"claimName", "db-data"}}}}},
                  {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                               {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                  {"verification", {{"targetNamespace", "shop-verify"}}}}}};
    auto made = admin_->create(bo::reconcile::kBackupPolicies, "shop", policy);
    ASSERT_TRUE(made) << made.error().str();
    json p = *made;
    p["status"] = {{"lastSuccessfulBackup", {{"id", kFull}, {"completionTime", "2026-11-24T02:05:00Z"}}},
                   {"nextScheduleTime", "2026-11-24T11:00:00Z"},
                   {"conditions", {{{"type", "Ready"}, {"status", "True"}, {"reason", "Reconciled"}, {"message", ""},
                                    {"lastTransitionTime", "2026-11-24T02:05:00Z"}},
                                   {{"type", "ContinuousArchiving"}, {"status", "False"}, {"reason", "NoArchiveYet"},
                                    {"message", ""}, {"lastTransitionTime", "2026-11-24T02:05:00Z"}}}},
                   {"backups", {{{"id", kFull}, {"type", "full"}, {"checksum", kSum}, {"restorable", true},
                                 {"verified", true}, {"completionTime", "2026-11-24T02:05:00Z"}, {"sizeBytes", 4096},
                                 {"keptFor", {"daily"}}}}}};
    auto st = admin_->update_status(bo::reconcile::kBackupPolicies, "shop", p);
    ASSERT_TRUE(st) << st.error().str();
  }

  // kubectl as a user runs it: KUBECONFIG set, the plugin on the PATH.
  testing_support::CommandResult kubectl(const std::string& args, int timeout_s = 60) {
    return testing_support::run("env KUBECONFIG=" + server_.kubeconfig().string() + " PATH=" + std::string(PLUGIN_DIR) +
                                    ":$PATH kubectl " + args,
                                timeout_s);
  }

  KubeLocal server_;
  std::unique_ptr<bo::kube::Client> admin_;
};

}  // namespace

TEST_F(KubectlPlugin, KubectlFindsThePluginAndStatusAndListPrintTheTables) {
  auto r = kubectl("plugin list");
  EXPECT_NE(r.output.find("kubectl-backup"), std::string::npos) << r.output;
  r = kubectl("backup status -n shop");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.substr(0, r.output.find('\n')),
            "NAME   LAST BACKUP                     AGE   ARCHIVING   LAST VERIFIED   NEXT                   NOT TRUE");
  EXPECT_NE(r.output.find("db     " + kFull), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("ContinuousArchiving=False(NoArchiveYet)"), std::string::npos) << r.output;
  r = kubectl("backup status -A");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("shop        db"), std::string::npos) << r.output;
  r = kubectl("backup list db -n shop");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(kFull + "   full"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("daily"), std::string::npos) << r.output;
}

TEST_F(KubectlPlugin, RestoreCreatesTheRequestWithTheCatalogsChecksumAndBadFlagsAreOneLineErrors) {
  auto r = kubectl("backup restore db -n shop --id " + kFull + " --to shop-drill --drill --name q4 --no-wait");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("restorerequest/q4 created (drill of backup " + kFull + " into namespace shop-drill)"),
            std::string::npos) << r.output;
  auto rr = admin_->get(bo::reconcile::kRestoreRequests, "shop", "q4");
  ASSERT_TRUE(rr) << rr.error().str();
  EXPECT_EQ((*rr)["spec"]["checksum"], kSum);
  EXPECT_EQ((*rr)["spec"]["purpose"], "drill");
  EXPECT_EQ((*rr)["spec"]["policyRef"]["name"], "db");

  struct Case {
    std::string args, error;
  } cases[] = {
      {"backup restore db -n shop --to shop-drill", "error: restore: one of --latest or --id is required\n"},
      {"backup restore db -n shop --latest --to shop-drill --point-in-time yesterday",
       "error: --point-in-time: \"yesterday\" is not an RFC 3339 time\n"},
      {"backup list nope -n shop", "error: get backuppolicy shop/nope: "},
      {"backup logs nope -n shop", "error: no Job and no RestoreRequest named nope in namespace shop\n"},
      {"backup status --bogus", "error: The following argument was not expected: --bogus\n"},
      {"backup verify db later -n shop", "error: when: later not in {now,NOW}\n"},
  };
  for (const auto& c : cases) {
    r = kubectl(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_TRUE(r.output.starts_with(c.error)) << c.args << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.args << ": " << r.output;
  }
}

TEST_F(KubectlPlugin, VerifyNowFollowsTheRequestToItsOutcome) {
  auto verify = std::async(std::launch::async, [&] { return kubectl("backup verify db now -n shop --timeout 60s", 90); });
  std::string name;
  ASSERT_TRUE(eventually([&] {
    auto l = admin_->list(bo::reconcile::kRestoreRequests, "shop");
    if (!l || (*l)["items"].empty()) return false;
    name = (*l)["items"][0]["metadata"]["name"];
    return true;
  }));
  auto rr = admin_->get(bo::reconcile::kRestoreRequests, "shop", name);
  ASSERT_TRUE(rr);
  EXPECT_EQ((*rr)["spec"]["purpose"], "verification");
  EXPECT_EQ((*rr)["spec"]["backupId"], kFull);
  EXPECT_EQ((*rr)["spec"]["targetNamespace"], "shop-verify");
  // What the operator writes when it ends; the plugin prints it and exits 0.
  rr = admin_->get(bo::reconcile::kRestoreRequests, "shop", name);
  ASSERT_TRUE(rr);
  (*rr)["status"] = {{"phase", "Succeeded"}, {"message", "backup " + kFull + " verified"}};
  ASSERT_TRUE(admin_->update_status(bo::reconcile::kRestoreRequests, "shop", *rr));
  const auto r = verify.get();
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("restorerequest/" + name + ": Succeeded: backup " + kFull + " verified"), std::string::npos)
      << r.output;
}
