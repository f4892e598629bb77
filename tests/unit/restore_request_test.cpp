#include <gtest/gtest.h>

#include "api/restore_request.h"

using namespace bo::api;
using nlohmann::json;

namespace {

const std::string kSumA = "sha256:" + std::string(64, 'a');
const std::string kSumB = "sha256:" + std::string(64, 'b');

json policy() {
  return {{"metadata", {{"name", "db"}, {"namespace", "supabase"}}},
          {"status", {{"backups", {{{"id", "base_3"}, {"checksum", kSumB}, {"verified", false}, {"completionTime", "2026-11-24T02:00:00Z"}},
                                   {{"id", "base_2"}, {"checksum", kSumA}, {"verified", true}, {"completionTime", "2026-11-23T02:00:00Z"}},
                                   {{"id", "base_1"}, {"checksum", kSumA}, {"verified", true}, {"completionTime", "2026-11-22T02:00:00Z"}}}}}}};
}

RestoreRequestSpec spec(json j) {
  j["policyRef"] = {{"name", "db"}};
  auto s = parse_restore_request_spec(j);
  EXPECT_TRUE(s) << s.error().message;
  return *s;
}

struct Case {
  const char* name;
  json spec;
  bool production_target;
  const char* reason;  // "" = allowed
  const char* backup;
};

class DecideRestore : public ::testing::TestWithParam<Case> {};

TEST_P(DecideRestore, RefusesWhatThePolicyForbids) {
  const auto& c = GetParam();
  const auto d = decide_restore(spec(c.spec), "supabase", policy(), c.production_target);
  EXPECT_EQ(d.reason, c.reason) << d.message;
  EXPECT_EQ(d.blocked, std::string(c.reason) != "");
  if (d.blocked && d.reason == "InvalidTarget") {
    EXPECT_NE(d.message.find("spec.targetNamespace"), std::string::npos) << d.message;
  } else if (d.blocked) {
    EXPECT_NE(d.message.find("base_2"), std::string::npos) << "must name the last verified backup: " << d.message;
  } else {
    EXPECT_EQ(d.backup_id, c.backup);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, DecideRestore,
    ::testing::Values(Case{"LatestIsTheNewestVerified", json::object(), false, "", "base_2"},
                      Case{"NamedVerifiedBackup", {{"backupId", "base_1"}}, false, "", "base_1"},
                      Case{"UnknownBackup", {{"backupId", "base_9"}}, false, "UnknownBackup", ""},
                      Case{"UnverifiedBackup", {{"backupId", "base_3"}}, false, "UnverifiedBackup", ""},
                      Case{"ChecksumMismatch", {{"backupId", "base_2"}, {"checksum", kSumB}}, false, "ChecksumMismatch", ""},
                      Case{"MatchingChecksum", {{"backupId", "base_2"}, {"checksum", kSumA}}, false, "", "base_2"},
                      Case{"VerificationMayRestoreUnverified",
                           {{"backupId", "base_3"}, {"purpose", "verification"}, {"targetNamespace", "verify"}}, false, "", "base_3"},
                      Case{"VerificationNeverIntoProduction",
                           {{"backupId", "base_3"}, {"purpose", "verification"}, {"targetNamespace", "supabase"}}, true,
                           "InvalidTarget", ""},
                      Case{"DrillNeedsATarget", {{"purpose", "drill"}}, false, "InvalidTarget", ""}),
    [](const auto& info) { return info.param.name; });

TEST(DecideRestore, NoVerifiedBackupAndMissingPolicy) {
  json p = policy();
  for (auto& e : p["status"]["backups"]) e["verified"] = false;
  const auto d = decide_restore(spec(json::object()), "supabase", p, false);
  EXPECT_EQ(d.reason, "NoVerifiedBackup");
  EXPECT_NE(d.message.find("no backup of policy db has been verified"), std::string::npos);
  EXPECT_EQ(decide_restore(spec(json::object()), "supabase", json(), false).reason, "PolicyNotFound");
}

TEST(RestoreRequestSpec, DefaultsAndShapeErrors) {
  auto s = parse_restore_request_spec({{"policyRef", {{"name", "db"}}}});
  ASSERT_TRUE(s);
  EXPECT_EQ(s->backup_id, "latest");
  EXPECT_EQ(s->purpose, "restore");
  EXPECT_EQ(parse_restore_request_spec(json::object()).error().field, "spec.policyRef.name");
  EXPECT_EQ(parse_restore_request_spec({{"policyRef", {{"name", "db"}}}, {"purpose", "yolo"}}).error().field, "spec.purpose");
  EXPECT_EQ(parse_restore_request_spec({{"policyRef", {{"name", "db"}}}, {"validation", {{{"name", "x"}}}}}).error().field,
            "spec.validation[0]");
}

TEST(RestoreRequestSpec, ATargetDataVolumeIsCheckedByField) {
  const json ref = {{"name", "db"}};
  auto with_target = [&](json target) { return parse_restore_request_spec({{"policyRef", ref}, {"target", target}}); };
  auto ok = with_target({{"dataVolume", {{"claimName", "restored"}}}});
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->target_volume.claim_name, "restored");
  EXPECT_EQ(ok->target_volume.mount_path, "/var/lib/postgresql/data");
  EXPECT_EQ(with_target("x").error().field, "spec.target");
  EXPECT_EQ(with_target({{"dataVolume", 3}}).error().field, "spec.target.dataVolume");
  EXPECT_EQ(with_target({{"dataVolume", json::object()}}).error().field, "spec.target.dataVolume.claimName");
  EXPECT_EQ(with_target({{"dataVolume", {{"claimName", 1}}}}).error().field, "spec.target.dataVolume.claimName");
  EXPECT_EQ(with_target({{"dataVolume", {{"claimName", "c"}, {"mountPath", "rel"}}}}).error().field,
            "spec.target.dataVolume.mountPath");
  EXPECT_EQ(with_target({{"dataVolume", {{"claimName", "c"}, {"subPath", "../x"}}}}).error().field,
            "spec.target.dataVolume.subPath");
}

TEST(DecideRestore, ABackupWhoseWalWasNotArchivedIsNeverRestored) {
  json p = {{"status", {{"backups", {{{"id", "base_5"}, {"checksum", "sha256:" + std::string(64, 'a')}, {"type", "full"},
                                      {"verified", true}, {"restorable", false}, {"notRestorableReason", "WAL missing"}}}}}}};
  auto s = parse_restore_request_spec({{"policyRef", {{"name", "db"}}}, {"backupId", "base_5"}});
  ASSERT_TRUE(s);
  const auto d = decide_restore(*s, "supabase", p, false);
  EXPECT_TRUE(d.blocked);
  EXPECT_EQ(d.reason, "NotRestorable");
  EXPECT_NE(d.message.find("WAL missing"), std::string::npos) << d.message;
}

}  // namespace

TEST(RestoreRequestSpec, MistypedValidationEntriesAreRefusedByFieldNotThrown) {
  // Found by fuzzing: a number where the image belongs threw out of the parser.
  const json base = {{"policyRef", {{"name", "db"}}}, {"purpose", "drill"}, {"targetNamespace", "v"}};
  const std::vector<std::pair<json, std::string>> cases = {
      {json::array({42}), "spec.validation[0]"},
      {json::array({{{"name", "n"}, {"image", 38}}}), "spec.validation[0].image"},
      {json::array({{{"name", 1}, {"image", "i"}}}), "spec.validation[0].name"},
      {json::array({{{"name", "n"}, {"image", "i"}, {"timeoutSeconds", "10"}}}), "spec.validation[0].timeoutSeconds"},
      {json::array({{{"name", "n"}, {"image", "i"}, {"command", "psql"}}}), "spec.validation[0].command"},
      {json::array({{{"name", "n"}, {"image", "i"}}, {{"name", "m"}, {"image", "i"}, {"command", {"a", 2}}}}),
       "spec.validation[1].command"},
  };
  for (const auto& [validation, field] : cases) {
    json spec = base;
    spec["validation"] = validation;
    std::expected<bo::api::RestoreRequestSpec, bo::api::Problem> r;
    ASSERT_NO_THROW(r = bo::api::parse_restore_request_spec(spec)) << validation;
    ASSERT_FALSE(r) << validation;
    EXPECT_EQ(r.error().field, field);
    EXPECT_EQ(r.error().reason, "InvalidSpec");
  }
  json ok = base;
  ok["validation"] = {{{"name", "n"}, {"image", "i"}, {"timeoutSeconds", 30}, {"command", {"pg_isready"}}}};
  auto r = bo::api::parse_restore_request_spec(ok);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->validation[0].timeout_seconds, 30);
  EXPECT_EQ(r->validation[0].command, std::vector<std::string>{"pg_isready"});
}
