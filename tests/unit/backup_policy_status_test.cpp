// The typed BackupPolicy status (api/backup_policy_status.h): a stored
// status comes back out unchanged (the controller writes only when the
// status changed), the fixture names every field of the CRD's status schema,
// and no stored status, however malformed, stops the plan.
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "api/backup_policy_status.h"
#include "common/timefmt.h"
#include "plan_fixtures.h"
#include "reconcile/backup_policy_plan.h"
#include "reconcile/conditions.h"
#include "status_schema_support.h"

using nlohmann::json;
using namespace bo::reconcile;

namespace {

using namespace status_support;

json full_status() { return read_json("tests/unit/data/backup_policy_status.json"); }
json status_schema() { return status_support::status_schema("backup.si.dev_backuppolicies.yaml"); }

// A policy using every part of the plan: verification, an offsite copy, PaaS state, drills.
json policy_with(json status) {
  json spec = {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102},
                             {"host", "db"}, {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
               {"storage", {{"secretRef", {{"name", "walg-storage"}}}, {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
               {"verification", {{"targetNamespace", "verify"}}},
               {"offsite", {{"secretRef", {{"name", "walg-storage"}}}}},
               {"environment", "production"},
               {"paasState", {{"claimName", "paas-state"}, {"contexts", {"shop"}}}}};
  json p = plan_fixtures::policy_object(std::move(spec));
  p["status"] = std::move(status);
  return p;
}

PlanInputs inputs(json status) {
  PlanInputs in;
  in.policy = policy_with(std::move(status));
  in.secrets = {{"walg-storage", plan_fixtures::storage_secret()},
                {"walg-encryption", {{"WALG_LIBSODIUM_KEY", "CANARY"}, {"BUNDLE_KEY", "CANARY"}}},
                {"supabase-db", {{"username", "u"}, {"password", "CANARY"}}}};
  in.now = *bo::parse_rfc3339("2026-11-24T11:00:10Z");
  in.data_volume = plan_fixtures::claim_found();
  // A backup, a state bundle and a retention that finished, a verification and a drill.
  ObservedJob backup;
  backup.name = "db-delta-202611241100";
  backup.action = "backup";
  backup.slot = *bo::parse_rfc3339("2026-11-24T11:00:00Z");
  backup.state = ObservedJob::State::kSucceeded;
  backup.finished = in.now;
  backup.termination_message =
      json{{"backupId", "base_000000010000000000000007_D_000000010000000000000002"}, {"checksum", "sha256:" + std::string(64, 'a')},
           {"type", "delta"}, {"base", "base_000000010000000000000002"}, {"startTime", "2026-11-24T11:00:01Z"},
           {"finishTime", "2026-11-24T11:00:05Z"}, {"sizeBytes", 10}, {"walArchived", true}}
          .dump();
  ObservedJob bundle = backup;
  bundle.name = "db-state-bundle-shop-202611241100";
  bundle.action = "state-bundle";
  bundle.context = "shop";
  bundle.termination_message = R"({"bundles":[{"context":"shop","id":"shop-new","sha256":"dd","files":1,"size":1}]})";
  ObservedJob retain = backup;
  retain.name = "db-retain-202611230203";
  retain.action = "retain";
  retain.expire = {"base_000000010000000000000001"};
  retain.termination_message = "{}";
  in.jobs = {backup, bundle, retain};
  ObservedRestore verification{"db-verify-202611241000", "verification", "Succeeded", "base_000000010000000000000002",
                               "sha256:aa", "", in.now, true};
  ObservedRestore drill{"drill-2", "drill", "Succeeded", "base_000000010000000000000002", "sha256:aa", "", in.now, false};
  in.restores = {verification, drill};
  return in;
}

TEST(BackupPolicyStatus, FixtureNamesEveryFieldOfTheCrdStatusSchema) {
  const auto missing = paths_not_held(status_schema(), full_status());
  EXPECT_TRUE(missing.empty()) << "tests/unit/data/backup_policy_status.json lacks " << json(missing).dump();
}

TEST(BackupPolicyStatus, RoundTripOfAFullStatusIsIdentical) {
  const json stored = full_status();
  EXPECT_EQ(bo::api::to_json(bo::api::backup_policy_status_from_json(stored)), stored);
  EXPECT_EQ(bo::api::to_json(bo::api::backup_policy_status_from_json(json::object())), json::object());
}

// The controller writes when the planned status differs from the stored one:
// a plan that cannot act (an invalid spec) changes its conditions and
// observedGeneration, and nothing else.
TEST(BackupPolicyStatus, AnInvalidSpecWritesTheStoredStatusBackUnchanged) {
  PlanInputs in = inputs(full_status());
  in.policy["spec"]["schedule"] = {{"backup", 5}};
  const PolicyPlan plan = plan_backup_policy(in);
  json expected = full_status(), got = plan.status;
  ASSERT_EQ((*find_condition(got["conditions"], "Ready"))["reason"], "InvalidSpec");
  for (json* s : {&expected, &got}) {
    s->erase("conditions");
    s->erase("observedGeneration");
  }
  EXPECT_EQ(got, expected);
}

TEST(BackupPolicyStatus, NonObjectStatusReadsAsEmpty) {
  for (const json& v : {json("x"), json(5), json::array(), json(nullptr)})
    EXPECT_EQ(bo::api::to_json(bo::api::backup_policy_status_from_json(v)), json::object()) << v.dump();
}

// Every field of a full status, in turn, of each wrong type: reading it
// never throws, and the plan still runs and judges the policy.
TEST(BackupPolicyStatus, AFieldOfTheWrongTypeNeverStopsThePlan) {
  const json stored = full_status();
  std::vector<json::json_pointer> all;
  nodes(stored, json::json_pointer(), all);
  size_t cases = 0;
  for (const auto& at : all) {
    for (const json& wrong : wrong_types(stored[at])) {
      json status = stored;
      status[at] = wrong;
      ++cases;
      SCOPED_TRACE(at.to_string() + " = " + wrong.dump());
      EXPECT_NO_THROW((void)bo::api::backup_policy_status_from_json(status));
      PolicyPlan plan;
      ASSERT_NO_THROW(plan = plan_backup_policy(inputs(status)));
      const json* ready = find_condition(plan.status["conditions"], "Ready");
      ASSERT_NE(ready, nullptr);
      EXPECT_EQ((*ready)["status"], "True");
      // What was written reads back the same: the next reconcile writes nothing new from it.
      EXPECT_EQ(bo::api::to_json(bo::api::backup_policy_status_from_json(plan.status)), plan.status);
    }
  }
  EXPECT_GT(cases, 500u);
}

// The same plan over the full status, as a baseline: it records the runs and outcomes.
TEST(BackupPolicyStatus, ThePlanOverTheFullStatusRecordsWhatFinished) {
  const PolicyPlan plan = plan_backup_policy(inputs(full_status()));
  std::set<std::string> newest;
  for (size_t i = 0; i < 3; ++i) newest.insert(plan.status["recentRuns"][i]["job"].get<std::string>());
  EXPECT_EQ(newest, (std::set<std::string>{"db-delta-202611241100", "db-state-bundle-shop-202611241100",
                                           "db-retain-202611230203"}));
  EXPECT_EQ(plan.status["lastDrill"]["request"], "drill-2");
  EXPECT_EQ(plan.status["lastVerification"]["result"], "Succeeded");
  EXPECT_EQ(plan.status["paasState"]["bundles"][0]["id"], "shop-new");
  EXPECT_EQ(plan.status["backups"][0]["id"], "base_000000010000000000000007_D_000000010000000000000002");
  for (const auto& b : plan.status["backups"]) EXPECT_NE(b["id"], "base_000000010000000000000001");
}

// The controller parses the spec once and hands it in: the plan uses that, not policy.spec again.
TEST(BackupPolicyStatus, ThePlanUsesTheSpecItIsGiven) {
  PlanInputs in = inputs(full_status());
  in.spec = std::unexpected(bo::api::Problem{"InvalidSpec", "spec.x", "given, not parsed"});
  const PolicyPlan plan = plan_backup_policy(in);
  EXPECT_EQ((*find_condition(plan.status["conditions"], "Ready"))["message"], "given, not parsed");
}

}  // namespace
