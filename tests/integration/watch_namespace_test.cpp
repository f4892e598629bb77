// --watch-namespace end to end: the real operator binary watching "shop" and
// its verification target "shop-verify" (given as a repeated flag), under the
// chart rendered with watchNamespaces={shop,shop-verify}, which grants Roles
// in those two namespaces and no ClusterRole on namespaced resources. A
// verification into shop-verify runs to Succeeded (its Jobs are seen there);
// a drill into a namespace the operator does not watch is refused with a
// condition naming the field, instead of waiting forever.
#include <gtest/gtest.h>

#include <fstream>

#include "chart_operator.h"
#include "harness.h"
#include "reconcile/caches.h"
#include "reconcile/conditions.h"

using namespace bo::kube;
using bo::reconcile::kBackupPolicies;
using bo::reconcile::kRestoreRequests;
using nlohmann::json;
using testing_support::Child;
using testing_support::eventually;
using testing_support::KubeLocal;

namespace {

const std::string kSum = "sha256:" + std::string(64, 'b');

std::string rules_file(const std::filesystem::path& dir) {
  auto check = [](const char* name) { return json{{"name", name}, {"passed", true}, {"ms", 1}, {"output", "ok"}}; };
  const json passed = {{"restored", "{{env:BACKUP_ID}}"}, {"checksum", "{{env:BACKUP_CHECKSUM}}"}, {"recovered", true},
                       {"recoverySeconds", 1.5},
                       {"checks", {check("recovered"), check("recovery-target"), check("system-identifier")}}};
  const json rules = json::array({{{"selector", "backup.si.dev/action=scratch"},
                                   {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 0.2}, {"message", passed.dump()}}}}});
  return testing_support::write_file(dir / "rules.json", rules.dump());
}

TEST(WatchNamespace, AVerificationIntoAWatchedTargetSucceedsUnderRolesAndAnUnwatchedTargetIsRefused) {
  const auto dir = testing_support::make_temp_dir("watch-ns");
  const auto audit = dir / "audit.jsonl";
  KubeLocal server({"--authorize", "--audit-log", audit.string(), "--pod-rules", rules_file(dir)});
  auto admin = server.client();
  for (const char* ns : {"shop", "shop-verify", "elsewhere"})
    ASSERT_TRUE(admin->create(resources::kNamespaces, "", {{"metadata", {{"name", ns}}}}));
  ASSERT_TRUE(admin->create(resources::kSecrets, "shop-verify",
                            {{"metadata", {{"name", "walg-read-only"}}},
                             {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "ro"},
                                             {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY-wns"}, {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
  const auto chart = testing_support::install_crds_and_chart(server, dir, {"watchNamespaces={shop,shop-verify}"});
  // The chart grants nothing namespaced cluster-wide: the operator reads shop
  // and shop-verify through Roles only.
  auto crole = server.kubectl("get clusterrole bo-backup-operator -o json");
  ASSERT_EQ(crole.exit_code, 0) << crole.output;
  const json crole_object = json::parse(crole.output);  // not a temporary: the loop reads into it
  for (const auto& rule : crole_object["rules"])
    for (const auto& r : rule["resources"])
      EXPECT_TRUE(r == "namespaces" || r == "validatingadmissionpolicies" || r == "validatingadmissionpolicybindings" ||
                  r == "subjectaccessreviews" || r == "tokenreviews")
          << r;
  ASSERT_TRUE(admin->create(resources::kSecrets, "shop",
                            {{"metadata", {{"name", "walg-storage"}}},
                             {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                                             {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY-wns"}, {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
  ASSERT_TRUE(admin->create(resources::kSecrets, "shop",
                            {{"metadata", {{"name", "walg-encryption"}}}, {"stringData", {{"WALG_LIBSODIUM_KEY", "CANARY-wns"}}}}));
  ASSERT_TRUE(admin->create(resources::kPersistentVolumeClaims, "shop",
                            {{"metadata", {{"name", "supabase-db-data"}}},
                             {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
  ASSERT_TRUE(admin->create(kBackupPolicies, "shop",
                            {{"metadata", {{"name", "db"}}},
                             {"spec", {{"suspend", true},
                                       {"addons", {"supabase-walg"}},
                                       {"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101},
                                                     {"runAsGroup", 102}, {"host", "supabase-db.shop.svc"}}},
                                       {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                                    {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                                       {"verification", {{"targetNamespace", "shop-verify"},
                                                         {"image", "postgres:15"},
                                                         {"storageSecretRef", {{"name", "walg-read-only"}}},
                                                         {"allowedTargetNamespaces", {"elsewhere"}}}}}}}));
  Child op(chart.args({"--watch-namespace", "shop", "--watch-namespace", "shop-verify", "--log-level", "debug"}),
           dir / "operator.log");
  ASSERT_TRUE(testing_support::controller_started(op, "restorerequest")) << op.log();
  ASSERT_TRUE(chart.serve_webhook(server, op)) << op.log();
  ASSERT_TRUE(eventually([&] {
    auto p = admin->get(kBackupPolicies, "shop", "db");
    return p && (*p).contains("status") && (*p)["status"].contains("conditions");
  }, std::chrono::seconds(30))) << op.log();
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto p = admin->get(kBackupPolicies, "shop", "db");
    ASSERT_TRUE(p);
    (*p)["status"]["backups"] = {{{"id", "base_B"}, {"checksum", kSum}, {"type", "full"}, {"verified", false},
                                  {"startTime", "2026-11-21T02:00:00Z"}, {"completionTime", "2026-11-21T02:05:00Z"},
                                  {"keptFor", json::array()}}};
    if (admin->update_status(kBackupPolicies, "shop", *p)) break;
  }
  auto rr = [&](const std::string& name) {
    auto r = admin->get(kRestoreRequests, "shop", name);
    return r ? *r : json::object();
  };
  auto phase = [&](const std::string& name) { return rr(name).value("status", json::object()).value("phase", ""); };

  const auto made = admin->create(kRestoreRequests, "shop",
                                  {{"metadata", {{"name", "verify-b"}}},
                                   {"spec", {{"policyRef", {{"name", "db"}}}, {"backupId", "base_B"}, {"checksum", kSum},
                                             {"purpose", "verification"}, {"targetNamespace", "shop-verify"}}}});
  ASSERT_TRUE(made) << made.error().str();
  EXPECT_TRUE(eventually([&] { return phase("verify-b") == "Succeeded"; }, std::chrono::seconds(60)))
      << rr("verify-b").dump(2) << op.log();

  ASSERT_TRUE(admin->create(kRestoreRequests, "shop",
                            {{"metadata", {{"name", "drill-elsewhere"}}},
                             {"spec", {{"policyRef", {{"name", "db"}}}, {"backupId", "base_B"}, {"checksum", kSum},
                                       {"purpose", "drill"}, {"targetNamespace", "elsewhere"}}}}));
  ASSERT_TRUE(eventually([&] { return phase("drill-elsewhere") == "Blocked"; }, std::chrono::seconds(30)))
      << rr("drill-elsewhere").dump(2);
  const json refused = rr("drill-elsewhere");
  const auto* blocked = bo::reconcile::find_condition(refused["status"]["conditions"], "Blocked");
  ASSERT_TRUE(blocked);
  EXPECT_EQ((*blocked)["reason"], "TargetNotWatched");
  EXPECT_NE((*blocked).value("message", "").find("spec.targetNamespace: \"elsewhere\""), std::string::npos) << blocked->dump();
  // Nothing was created there, and the operator was refused nothing it asked.
  auto jobs = admin->list(resources::kJobs, "elsewhere");
  ASSERT_TRUE(jobs);
  EXPECT_TRUE((*jobs)["items"].empty());
  std::ifstream in(audit);
  for (std::string line; std::getline(in, line);) {
    const json e = json::parse(line, nullptr, false);
    if (e.is_object() && e.value("user", "") == chart.username) {
      EXPECT_TRUE(e.value("allowed", false)) << "refused: " << line;
    }
  }
  EXPECT_EQ(op.log().find("CANARY"), std::string::npos);
  op.stop(SIGTERM);
  std::error_code ec;
  if (!HasFailure()) std::filesystem::remove_all(dir, ec);
}

}  // namespace
