// kubectl backup's tables and requests (src/cli/plugin.cpp), from objects as
// the operator writes them.
#include <gtest/gtest.h>

#include "cli/plugin.h"

using nlohmann::json;

namespace {

bo::SysTime at(const char* s) { return *bo::parse_rfc3339(s); }

json policy(const std::string& ns = "shop") {
  return {{"metadata", {{"name", "db"}, {"namespace", ns}}},
          {"spec", {{"verification", {{"targetNamespace", "shop-verify"}}}}},
          {"status",
           {{"lastSuccessfulBackup", {{"id", "base_000000010000000000000009"}, {"completionTime", "2026-11-24T10:02:00Z"}}},
            {"lastVerifiedBackup", {{"id", "base_000000010000000000000005"}, {"verifiedAt", "2026-11-24T04:10:00Z"}}},
            {"nextScheduleTime", "2026-11-24T11:00:00Z"},
            {"conditions",
             {{{"type", "Ready"}, {"status", "True"}},
              {{"type", "Reconciling"}, {"status", "False"}, {"reason", "Reconciled"}},
              {{"type", "Stalled"}, {"status", "False"}, {"reason", "NotStalled"}},
              {{"type", "ContinuousArchiving"}, {"status", "True"}},
              {{"type", "OffsiteCopyCurrent"}, {"status", "False"}, {"reason", "NoOffsiteCopyYet"}},
              {{"type", "DrillCurrent"}, {"status", "Unknown"}, {"reason", "NoDrillYet"}}}},
            {"backups",
             {{{"id", "base_000000010000000000000009_D_000000010000000000000005"}, {"type", "delta"},
               {"checksum", "sha256:" + std::string(64, 'd')}, {"completionTime", "2026-11-24T10:02:00Z"},
               {"sizeBytes", 5 * 1024 * 1024}, {"restorable", true}, {"verified", false}, {"keptFor", json::array()}},
              {{"id", "base_000000010000000000000005"}, {"type", "full"}, {"checksum", "sha256:" + std::string(64, 'f')},
               {"completionTime", "2026-11-24T02:05:00Z"}, {"sizeBytes", 512}, {"restorable", true}, {"verified", true},
               {"keptFor", {"daily", "verified"}}},
              {{"id", "base_000000010000000000000003"}, {"type", "full"}, {"checksum", "sha256:" + std::string(64, '3')},
               {"completionTime", "2026-11-23T02:05:00Z"}, {"sizeBytes", 512}, {"restorable", false},
               {"verified", false}}}}}}};
}

const bo::SysTime kNow = at("2026-11-24T10:30:00Z");

}  // namespace

TEST(KubectlBackup, StatusSaysLastBackupArchivingVerifiedNextAndWhatIsNotTrue) {
  const json list = {{"items", {policy()}}};
  EXPECT_EQ(bo::cli::status_table(list, kNow, false),
            "NAME   LAST BACKUP                     AGE   ARCHIVING   LAST VERIFIED   NEXT                   NOT TRUE\n"
            "db     base_000000010000000000000009   28m   True        6h20m           2026-11-24T11:00:00Z   "
            "OffsiteCopyCurrent=False(NoOffsiteCopyYet),DrillCurrent=Unknown(NoDrillYet)\n");
  // Reconciling and Stalled show when they are True (abnormal-true).
  json stalled = policy();
  stalled["status"]["conditions"][2] = {{"type", "Stalled"}, {"status", "True"}, {"reason", "SecretNotFound"}};
  EXPECT_NE(bo::cli::status_table({{"items", {stalled}}}, kNow, false).find("Stalled=True(SecretNotFound),OffsiteCopyCurrent"),
            std::string::npos);
  // A new policy with no status yet, across namespaces.
  const json fresh = {{"metadata", {{"name", "new"}, {"namespace", "other"}}}};
  const std::string all = bo::cli::status_table({{"items", {policy(), fresh}}}, kNow, true);
  EXPECT_NE(all.find("NAMESPACE   NAME"), std::string::npos) << all;
  EXPECT_NE(all.find("other       new    -"), std::string::npos) << all;
}

TEST(KubectlBackup, ListShowsTheCatalogNewestFirst) {
  const std::string t = bo::cli::catalog_table(policy(), kNow);
  EXPECT_EQ(t.substr(0, t.find('\n')),
            "ID                                                         TYPE    COMPLETED   SIZE      RESTORABLE   "
            "VERIFIED   KEPT FOR");
  EXPECT_NE(t.find("base_000000010000000000000009_D_000000010000000000000005   delta   28m         5.0 MiB   yes"),
            std::string::npos) << t;
  EXPECT_NE(t.find("base_000000010000000000000005                              full    8h          512 B     yes"
                   "          yes        daily,verified"),
            std::string::npos) << t;
  EXPECT_NE(t.find("base_000000010000000000000003                              full    32h         512 B     NO"),
            std::string::npos) << t;
}

TEST(KubectlBackup, VerifyNowRestoresTheNewestRestorableFullIntoTheVerificationTarget) {
  auto rr = bo::cli::verification_request(policy(), kNow);
  ASSERT_TRUE(rr) << rr.error();
  EXPECT_EQ((*rr)["metadata"]["name"], "db-verify-now-20261124103000");
  EXPECT_EQ((*rr)["metadata"]["namespace"], "shop");
  EXPECT_EQ((*rr)["spec"], json({{"policyRef", {{"name", "db"}}},
                                 {"backupId", "base_000000010000000000000005"},
                                 {"checksum", "sha256:" + std::string(64, 'f')},
                                 {"purpose", "verification"},
                                 {"targetNamespace", "shop-verify"}}));
  json off = policy();
  off["spec"]["verification"]["enabled"] = false;
  EXPECT_EQ(bo::cli::verification_request(off, kNow).error(), "BackupPolicy db: spec.verification.enabled is false");
  json empty = policy();
  empty["status"]["backups"] = json::array();
  EXPECT_EQ(bo::cli::verification_request(empty, kNow).error(),
            "BackupPolicy db has no restorable full backup in its catalog to verify");
}

TEST(KubectlBackup, RestoreNamesTheBackupAndItsChecksumOrLatestAndRefusesBadFlagsByName) {
  bo::cli::RestoreOptions o;
  o.to = "shop-drill";
  o.purpose = "drill";
  auto latest = bo::cli::restore_request(policy(), o, kNow);
  ASSERT_TRUE(latest) << latest.error();
  EXPECT_EQ((*latest)["metadata"]["name"], "db-drill-20261124103000");
  EXPECT_EQ((*latest)["spec"]["backupId"], "latest");
  EXPECT_FALSE((*latest)["spec"].contains("checksum"));

  o.backup_id = "base_000000010000000000000005";
  o.point_in_time = "2026-11-24T03:00:00Z";
  o.purpose = "restore";
  o.name = "undo";
  auto by_id = bo::cli::restore_request(policy(), o, kNow);
  ASSERT_TRUE(by_id) << by_id.error();
  EXPECT_EQ((*by_id)["metadata"]["name"], "undo");
  EXPECT_EQ((*by_id)["spec"]["checksum"], "sha256:" + std::string(64, 'f'));
  EXPECT_EQ((*by_id)["spec"]["pointInTime"], "2026-11-24T03:00:00Z");

  struct Case {
    void (*change)(bo::cli::RestoreOptions&);
    std::string error;
  } cases[] = {
      {[](bo::cli::RestoreOptions& r) { r.to.clear(); }, "--to: the target namespace is required"},
      {[](bo::cli::RestoreOptions& r) { r.point_in_time = "yesterday"; },
       "--point-in-time: \"yesterday\" is not an RFC 3339 time"},
      {[](bo::cli::RestoreOptions& r) { r.backup_id = "base_0000000100000000000000FF"; },
       "--id: backup base_0000000100000000000000FF is not in the catalog of BackupPolicy db"},
      {[](bo::cli::RestoreOptions& r) { r.purpose = "verification"; }, "--purpose: \"verification\" is not restore or drill"},
  };
  for (const auto& c : cases) {
    bo::cli::RestoreOptions bad = o;
    c.change(bad);
    auto r = bo::cli::restore_request(policy(), bad, kNow);
    ASSERT_FALSE(r) << c.error;
    EXPECT_EQ(r.error(), c.error);
  }
}

TEST(KubectlBackup, AGeneratedNameFitsALabelValue) {
  json p = policy();
  p["metadata"]["name"] = std::string(80, 'p');
  auto rr = bo::cli::verification_request(p, kNow);
  ASSERT_TRUE(rr);
  const std::string name = (*rr)["metadata"]["name"];
  EXPECT_EQ(name.size(), 63u);
  EXPECT_TRUE(name.ends_with("-verify-now-20261124103000")) << name;
}

TEST(KubectlBackup, ProgressPrintsEachChangeOnceAndEndsOnAFinalPhase) {
  json rr = {{"status", {{"phase", "Restoring"}, {"message", "Job db-drill-x-restore running"}}}};
  auto p = bo::cli::progress(rr, "");
  EXPECT_EQ(p.line, "Restoring: Job db-drill-x-restore running");
  EXPECT_FALSE(p.ended);
  EXPECT_EQ(bo::cli::progress(rr, p.line).line, "") << "nothing new";
  EXPECT_EQ(bo::cli::progress(json::object(), "").line, "Pending");
  for (const char* phase : {"Succeeded", "Failed", "Blocked"}) {
    auto end = bo::cli::progress({{"status", {{"phase", phase}}}}, "");
    EXPECT_TRUE(end.ended) << phase;
    EXPECT_EQ(end.succeeded, std::string(phase) == "Succeeded") << phase;
  }
}
