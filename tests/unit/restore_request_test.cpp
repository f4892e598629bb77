#include <gtest/gtest.h>

#include "api/restore_request.h"

using namespace bo::api;
using nlohmann::json;

namespace {

const std::string kSumA = "sha256:" + std::string(64, 'a');
const std::string kSumB = "sha256:" + std::string(64, 'b');

const std::string kOperatorNs = "backup-operator-system";

json policy() {
  return {{"metadata", {{"name", "db"}, {"namespace", "supabase"}}},
          {"spec", {{"verification", {{"targetNamespace", "verify"},
                                      {"allowedTargetNamespaces", {"drills"}},
                                      {"checkImages", {"busybox", "images.example/sql-check:1"}}}}}},
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

// The API server said yes to alice creating Jobs in `target`.
RestoreContext allowed_in(const std::string& target, bool production = false) {
  RestoreContext c;
  c.target_is_production = production;
  c.operator_namespace = kOperatorNs;
  c.access = {true, true, "alice", target, ""};
  return c;
}

std::string target_of(const RestoreRequestSpec& s) { return s.target_namespace.empty() ? "supabase" : s.target_namespace; }

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
  const auto s = spec(c.spec);
  const auto d = decide_restore(s, "supabase", policy(), allowed_in(target_of(s), c.production_target));
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
  const auto d = decide_restore(spec(json::object()), "supabase", p, allowed_in("supabase"));
  EXPECT_EQ(d.reason, "NoVerifiedBackup");
  EXPECT_NE(d.message.find("no backup of policy db has been verified"), std::string::npos);
  EXPECT_EQ(decide_restore(spec(json::object()), "supabase", json(), allowed_in("supabase")).reason, "PolicyNotFound");
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
  const auto d = decide_restore(*s, "supabase", p, allowed_in("supabase"));
  EXPECT_TRUE(d.blocked);
  EXPECT_EQ(d.reason, "NotRestorable");
  EXPECT_NE(d.message.find("WAL missing"), std::string::npos) << d.message;
}

// --- no confused deputy: where, with which images, and for whom ---

struct TargetCase {
  const char* name;
  json spec;
  const char* reason;  // "" = allowed
  const char* field;   // named in the message
};

class TargetsAndImages : public ::testing::TestWithParam<TargetCase> {};

TEST_P(TargetsAndImages, OnlyWhatThePolicyListsAndNeverKubeSystemOrTheOperator) {
  const auto& c = GetParam();
  const auto s = spec(c.spec);
  const auto d = decide_restore(s, "supabase", policy(), allowed_in(target_of(s)));
  EXPECT_EQ(d.reason, c.reason) << d.message;
  EXPECT_EQ(d.blocked, std::string(c.reason) != "");
  if (d.blocked) {
    EXPECT_NE(d.message.find(c.field), std::string::npos) << d.message;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, TargetsAndImages,
    ::testing::Values(
        TargetCase{"DrillIntoThePolicysVerificationTarget", {{"purpose", "drill"}, {"targetNamespace", "verify"}}, "", ""},
        TargetCase{"DrillIntoAListedNamespace", {{"purpose", "drill"}, {"targetNamespace", "drills"}}, "", ""},
        TargetCase{"DrillIntoAnUnlistedNamespace", {{"purpose", "drill"}, {"targetNamespace", "payments"}},
                   "TargetNotAllowed", "spec.verification.allowedTargetNamespaces"},
        TargetCase{"VerificationIntoAnUnlistedNamespace",
                   {{"purpose", "verification"}, {"backupId", "base_3"}, {"targetNamespace", "payments"}}, "TargetNotAllowed",
                   "spec.targetNamespace"},
        TargetCase{"DrillIntoKubeSystem", {{"purpose", "drill"}, {"targetNamespace", "kube-system"}}, "TargetNotAllowed",
                   "spec.targetNamespace"},
        TargetCase{"DrillIntoTheOperatorsNamespace", {{"purpose", "drill"}, {"targetNamespace", "backup-operator-system"}},
                   "TargetNotAllowed", "the operator's own namespace"},
        TargetCase{"RestoreIntoKubeSystem", {{"targetNamespace", "kube-system"}}, "TargetNotAllowed", "kube-system"},
        TargetCase{"RestoreInPlaceNeedsNoListing", json::object(), "", ""},
        TargetCase{"ListedCheckImages",
                   {{"validation", {{{"name", "a"}, {"image", "busybox"}}, {{"name", "b"}, {"image", "images.example/sql-check:1"}}}}},
                   "", ""},
        TargetCase{"UnlistedCheckImage",
                   {{"validation", {{{"name", "a"}, {"image", "busybox"}}, {{"name", "b"}, {"image", "evil/miner"}}}}},
                   "ImageNotAllowed", "spec.validation[1].image"},
        // Compared as written: the same image under another name is not listed.
        TargetCase{"ImagesAreComparedAsWritten", {{"validation", {{{"name", "a"}, {"image", "busybox:latest"}}}}},
                   "ImageNotAllowed", "spec.verification.checkImages"}),
    [](const auto& info) { return info.param.name; });

TEST(DecideRestore, WithoutCheckImagesNoImageCheckRuns) {
  json p = policy();
  p["spec"]["verification"].erase("checkImages");
  const auto s = spec({{"validation", {{{"name", "a"}, {"image", "busybox"}}}}});
  EXPECT_EQ(decide_restore(s, "supabase", p, allowed_in("supabase")).reason, "ImageNotAllowed");
  EXPECT_FALSE(decide_restore(spec(json::object()), "supabase", p, allowed_in("supabase")).blocked);
}

TEST(DecideRestore, ARequesterWhoMayNotCreateJobsInTheTargetIsForbidden) {
  const auto s = spec({{"purpose", "drill"}, {"targetNamespace", "drills"}});
  RestoreContext c = allowed_in("drills");
  c.access = {true, false, "mallory", "drills", "no RBAC policy matched"};
  const auto d = decide_restore(s, "supabase", policy(), c);
  EXPECT_TRUE(d.blocked);
  EXPECT_EQ(d.reason, "Forbidden");
  for (const char* part : {"\"mallory\"", "create", "jobs.batch", "namespace drills", "no RBAC policy matched"})
    EXPECT_NE(d.message.find(part), std::string::npos) << part << " in " << d.message;
  EXPECT_TRUE(d.backup_id.empty());
}

TEST(DecideRestore, NothingStartsBeforeTheRequestersRightIsKnownForThisTarget) {
  const auto s = spec({{"purpose", "drill"}, {"targetNamespace", "drills"}});
  RestoreContext c = allowed_in("drills");
  c.access = {};
  auto d = decide_restore(s, "supabase", policy(), c);
  EXPECT_FALSE(d.blocked);
  EXPECT_TRUE(d.awaiting_access);
  EXPECT_TRUE(d.backup_id.empty());
  // A yes for another namespace is no yes for this one.
  c = allowed_in("verify");
  d = decide_restore(s, "supabase", policy(), c);
  EXPECT_TRUE(d.awaiting_access);
  // A target refused anyway is refused without asking.
  d = decide_restore(spec({{"purpose", "drill"}, {"targetNamespace", "kube-system"}}), "supabase", policy(), RestoreContext{});
  EXPECT_EQ(d.reason, "TargetNotAllowed");
  d = decide_restore(s, "supabase", policy(), allowed_in("drills"));
  EXPECT_FALSE(d.awaiting_access);
  EXPECT_EQ(d.backup_id, "base_2");
}

TEST(Requester, ReadFromStatusElseTheWebhooksAnnotation) {
  const json who = {{"username", "alice"}, {"uid", "a-1"}, {"groups", {"sre", "system:authenticated"}},
                    {"extra", {{"scopes.example/scope", {"read", "jobs"}}}}};
  json rr = {{"metadata", {{"annotations", {{"backup.si.dev/requested-by", who.dump()}}}}}};
  auto r = requester_of(rr);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->username, "alice");
  EXPECT_EQ(r->uid, "a-1");
  EXPECT_EQ(r->groups, (std::vector<std::string>{"sre", "system:authenticated"}));
  EXPECT_EQ(r->extra.at("scopes.example/scope"), (std::vector<std::string>{"read", "jobs"}));
  rr["status"]["requestedBy"] = {{"username", "recorded"}};
  EXPECT_EQ(requester_of(rr)->username, "recorded");
  // Bad input never crashes and names nobody.
  for (const json& bad : {json(), json("x"), json{{"metadata", 1}}, json{{"metadata", {{"annotations", 2}}}},
                          json{{"metadata", {{"annotations", {{"backup.si.dev/requested-by", "not json"}}}}}},
                          json{{"metadata", {{"annotations", {{"backup.si.dev/requested-by", R"({"username":7})"}}}}}},
                          json{{"status", {{"requestedBy", {{"username", ""}}}}}}}) {
    std::optional<Requester> got;
    ASSERT_NO_THROW(got = requester_of(bad)) << bad;
    EXPECT_FALSE(got) << bad;
  }
}

TEST(AccessReview, AsksAboutTheRequestersWholeIdentityAndReadsOnlyAYes) {
  Requester who{"alice", "a-1", {"sre"}, {{"scopes.example/scope", {"jobs"}}}};
  const json sar = job_access_review(who, "drills");
  EXPECT_EQ(sar["apiVersion"], "authorization.k8s.io/v1");
  EXPECT_EQ(sar["kind"], "SubjectAccessReview");
  EXPECT_EQ(sar["spec"]["user"], "alice");
  EXPECT_EQ(sar["spec"]["uid"], "a-1");
  EXPECT_EQ(sar["spec"]["groups"], json({"sre"}));
  EXPECT_EQ(sar["spec"]["extra"], json({{"scopes.example/scope", {"jobs"}}}));
  EXPECT_EQ(sar["spec"]["resourceAttributes"],
            json({{"namespace", "drills"}, {"verb", "create"}, {"group", "batch"}, {"resource", "jobs"}}));

  json answer = sar;
  answer["status"] = {{"allowed", true}};
  auto a = read_access_review(answer, who, "drills");
  EXPECT_TRUE(a.checked);
  EXPECT_TRUE(a.allowed);
  EXPECT_EQ(a.user, "alice");
  EXPECT_EQ(a.ns, "drills");
  answer["status"] = {{"allowed", true}, {"denied", true}, {"reason", "denied by a webhook authorizer"}};
  a = read_access_review(answer, who, "drills");
  EXPECT_FALSE(a.allowed);
  EXPECT_EQ(a.reason, "denied by a webhook authorizer");
  for (const json& no : {json(), json("x"), json::object(), json{{"status", "yes"}}, json{{"status", {{"allowed", "true"}}}},
                         json{{"status", {{"allowed", false}, {"evaluationError", "webhook timed out"}}}}}) {
    a = read_access_review(no, who, "drills");
    EXPECT_TRUE(a.checked) << no;
    EXPECT_FALSE(a.allowed) << no;
  }
  EXPECT_EQ(a.reason, "webhook timed out");

  // Kept in status and read back; anything else there is no answer.
  const AccessCheck kept{true, true, "alice", "drills", ""};
  const json j = access_to_json(kept);
  EXPECT_EQ(j, json({{"user", "alice"}, {"verb", "create"}, {"resource", "jobs.batch"}, {"namespace", "drills"}, {"allowed", true}}));
  const auto back = access_from_json(j);
  EXPECT_TRUE(back.checked && back.allowed);
  EXPECT_EQ(back.user, "alice");
  EXPECT_EQ(back.ns, "drills");
  for (const json& bad : {json(), json("x"), json{{"allowed", true}}, json{{"allowed", "yes"}, {"verb", "create"}, {"resource", "jobs.batch"}},
                          json{{"allowed", true}, {"verb", "get"}, {"resource", "jobs.batch"}}})
    EXPECT_FALSE(access_from_json(bad).checked) << bad;
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
