// The scratch instance's manifests and the reading of its result, without a server.
#include <gtest/gtest.h>

#include "reconcile/scratch.h"

using namespace bo::reconcile;
using nlohmann::json;

namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

ScratchInputs inputs() {
  ScratchInputs in;
  in.request = "r1";
  in.request_ns = "shop";
  in.target_ns = "shop-verify";
  in.policy = "db";
  in.purpose = "drill";
  in.backup_id = "base_1";
  in.checksum = "sha256:" + std::string(64, 'a');
  in.verification.storage_secret = "walg-read-only";
  in.verification.timeout_seconds = 900;
  in.profile = "supabase-self-hosted";
  in.run_as_user = 999;
  in.run_as_group = 998;
  in.operator_image = "backup-operator:1";
  in.database_image = "supabase/postgres:15.8.1";
  in.storage_keys = {"WALG_S3_PREFIX", "WALG_AWS_ACCESS_KEY_ID", "WALG_AWS_SECRET_ACCESS_KEY", "WALG_AWS_ENDPOINT",
                     "AWS_S3_FORCE_PATH_STYLE", "WALG_DELTA_MAX_STEPS", "PGPASSWORD"};
  in.encryption_key = "WALG_LIBSODIUM_KEY";
  return in;
}

std::map<std::string, json> env_of(const json& job) {
  std::map<std::string, json> env;
  for (const auto& e : job["spec"]["template"]["spec"]["containers"][0]["env"]) env[e["name"]] = e;
  return env;
}

}  // namespace

TEST(Scratch, TheClaimIsSizedFromTheUncompressedBackupWithRoomForWal) {
  struct Case {
    int64_t bytes;
    std::string override_size, want;
  } cases[] = {
      {0, "", "10Gi"},                    // unknown
      {1, "", "2Gi"},                     // at least 2 GiB
      {2 * kGiB, "", "4Gi"},              // 3 + 1
      {3 * kGiB, "", "6Gi"},              // 5.5 → 6
      {100 * kGiB, "", "151Gi"},          // 150 + 1
      {100 * kGiB, "500Gi", "500Gi"},     // spec.verification.storageSize wins
  };
  for (const auto& c : cases) EXPECT_EQ(scratch_claim_size(c.bytes, c.override_size), c.want) << c.bytes;
}

TEST(Scratch, ThePodRunsTheDatabaseImageWithTheCopiedToolsAndTakesOnlyTheTargetsSecret) {
  auto in = inputs();
  in.verification.storage_class = "fast";
  in.checks = {{"orders", "", {}, "SELECT count(*) FROM orders", std::string("7"), 30}};
  const auto o = build_scratch(in);
  EXPECT_EQ(o.claim["spec"]["storageClassName"], "fast");
  EXPECT_EQ(o.job["spec"]["backoffLimit"], 0) << "a second attempt would fetch again into a used claim";
  EXPECT_EQ(o.job["spec"]["activeDeadlineSeconds"], 900);
  EXPECT_FALSE(o.job["spec"].contains("ttlSecondsAfterFinished")) << "the operator reads the result, then deletes it";
  const json pod = o.job["spec"]["template"]["spec"];
  const json init = pod["initContainers"][0];
  const json c = pod["containers"][0];
  EXPECT_EQ(init["image"], "backup-operator:1");
  EXPECT_EQ(c["image"], "supabase/postgres:15.8.1");
  EXPECT_EQ(c["command"], json::array({"/tools/ld.so", "--library-path", "/tools/lib", "/tools/bin/backup-operator",
                                       "run-job", "verify"}));
  // The tools are read-only to the server's container; the claim is its data.
  std::map<std::string, json> mounts;
  for (const auto& m : c["volumeMounts"]) mounts[m["name"]] = m;
  EXPECT_EQ(mounts["tools"]["readOnly"], true);
  EXPECT_EQ(mounts["data"]["mountPath"], "/var/lib/postgresql/scratch");
  EXPECT_EQ(mounts["run"]["mountPath"], "/run/scratch");
  for (const json& k : {init, c}) {
    EXPECT_EQ(k["securityContext"]["allowPrivilegeEscalation"], false);
    EXPECT_EQ(k["securityContext"]["capabilities"]["drop"], json::array({"ALL"}));
    EXPECT_EQ(k["securityContext"]["runAsNonRoot"], true);
  }
  EXPECT_EQ(pod["securityContext"]["runAsUser"], 999);
  EXPECT_EQ(pod["securityContext"]["fsGroup"], 998);
  const auto env = env_of(o.job);
  // WAL-G's storage keys, by reference to the target's Secret; derived and non-storage keys are not passed.
  EXPECT_EQ(env.count("WALG_DELTA_MAX_STEPS"), 0u);
  EXPECT_EQ(env.count("PGPASSWORD"), 0u);
  EXPECT_EQ(env.at("AWS_S3_FORCE_PATH_STYLE")["valueFrom"]["secretKeyRef"]["optional"], true);
  EXPECT_FALSE(env.at("WALG_AWS_ENDPOINT")["valueFrom"]["secretKeyRef"].contains("optional"));
  for (const auto& [name, e] : env) {
    if (e.contains("valueFrom")) {
      EXPECT_EQ(e["valueFrom"]["secretKeyRef"]["name"], "walg-read-only") << name;
    } else {
      EXPECT_TRUE(e.contains("value")) << name;
    }
  }
  EXPECT_EQ(env.at("VERIFY_PROFILE")["value"], "supabase-self-hosted");
  const json checks = json::parse(env.at("VERIFY_CHECKS")["value"].get<std::string>());
  EXPECT_EQ(checks, json::parse(R"([{"name":"orders","sql":"SELECT count(*) FROM orders","expect":"7","timeoutSeconds":30}])"));
  EXPECT_EQ(env.count("POINT_IN_TIME"), 0u);
  in.point_in_time = "2026-11-24T10:00:00Z";
  EXPECT_EQ(env_of(build_scratch(in).job).at("POINT_IN_TIME")["value"], "2026-11-24T10:00:00Z");
}

TEST(Scratch, TheResultIsReadIntoStatusAndAnythingMissingOrMalformedFails) {
  const std::vector<bo::api::ValidationCheck> user = {{"orders", "", {}, "SELECT 1", std::nullopt, 30}};
  auto ok = [](const char* name) { return json{{"name", name}, {"passed", true}, {"ms", 1}, {"output", "x"}}; };
  const json all = {ok("recovered"), ok("recovery-target"), ok("system-identifier"), ok("orders")};
  struct Case {
    std::string message;
    bool parses, passed;
    std::string failed;
  } cases[] = {
      {json{{"recovered", true}, {"recoverySeconds", 2}, {"checks", all}}.dump(), true, true, ""},
      {json{{"recovered", false}, {"checks", all}}.dump(), true, false, ""},
      {json{{"recovered", true}, {"checks", all}, {"error", "boom"}}.dump(), true, false, ""},
      {json{{"recovered", true}, {"checks", {ok("recovered"), ok("system-identifier"), ok("orders")}}}.dump(), true, false,
       "recovery-target"},
      {json{{"recovered", true}, {"checks", {ok("recovered"), ok("recovery-target"), ok("system-identifier")}}}.dump(),
       true, false, "orders"},
      {json{{"recovered", true}, {"checks", "all"}}.dump(), false, false, ""},
      {"[]", false, false, ""},
      {"", false, false, ""},
  };
  for (const auto& c : cases) {
    auto r = parse_scratch_result(c.message, user);
    ASSERT_EQ(r.has_value(), c.parses) << c.message;
    if (!r) continue;
    EXPECT_EQ(r->passed, c.passed) << c.message;
    EXPECT_EQ(r->failed_checks(), c.failed) << c.message;
  }
  auto r = parse_scratch_result(json{{"recovered", true}, {"recoverySeconds", 2.5}, {"checks", all}}.dump(), user);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->recovery_seconds, 2.5);
  EXPECT_EQ(r->checks[3]["query"], "SELECT 1");
  EXPECT_NE(r->checks[0]["query"].get<std::string>().find("pg_is_in_recovery"), std::string::npos);
}
