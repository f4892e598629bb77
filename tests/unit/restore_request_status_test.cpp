// The typed RestoreRequest status (api/restore_request_status.h): a stored
// status comes back out unchanged (the controller writes only when the
// status changed), the fixture names every field of the CRD's status schema,
// and no stored status, however malformed, stops the plan.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "api/restore_request_status.h"
#include "common/timefmt.h"
#include "reconcile/conditions.h"
#include "reconcile/data_volume.h"
#include "reconcile/restore_plan.h"
#include "status_schema_support.h"

using nlohmann::json;
using namespace bo::reconcile;

namespace {

using namespace status_support;

json full_status() { return read_json("tests/unit/data/restore_request_status.json"); }
json status_schema() { return status_support::status_schema("backup.si.dev_restorerequests.yaml"); }

const std::string kSum = "sha256:" + std::string(64, 'c');

// A policy whose database can be restored in place, into a claim or into a scratch instance.
json policy() {
  json p = {{"apiVersion", "backup.si.dev/v1alpha1"},
            {"kind", "BackupPolicy"},
            {"metadata", {{"name", "db"}, {"namespace", "supabase"}, {"uid", "pu"}}},
            {"spec", {{"database", {{"workloadRef", {{"kind", "StatefulSet"}, {"name", "supabase-db"}}},
                                    {"host", "supabase-db.supabase.svc"},
                                    {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
                      {"storage", {{"secretRef", {{"name", "walg-storage"}}}}},
                      {"verification", {{"targetNamespace", "verify"}, {"image", "postgres:15"},
                                        {"storageSecretRef", {{"name", "walg-verify"}}}}}}},
            {"status", {{"backups", {{{"id", "base_2"}, {"checksum", kSum}, {"type", "full"}, {"verified", true},
                                      {"completionTime", "2026-11-24T02:00:00Z"}}}}}}};
  auto spec = bo::api::parse_backup_policy_spec(p["spec"]);
  EXPECT_TRUE(spec) << spec.error().message;
  ResolvedDataVolume v;
  v.claim_name = "data-supabase-db-0";
  v.mount_path = "/var/lib/postgresql/data";
  v.data_directory = "/var/lib/postgresql/data/pgdata";
  v.run_as_user = 999;
  v.run_as_group = 998;
  v.image = "supabase/postgres:15.8.1";
  p["status"]["dataVolume"] = to_status(v, data_volume_source(*spec));
  return p;
}

// The three ways a request restores: in place, into another claim, into a scratch instance.
const json kInPlace = json::object();
const json kIntoClaim = {{"target", {{"dataVolume", {{"claimName", "restored"}}}}}};
const json kVerification = {{"purpose", "verification"}, {"targetNamespace", "verify"}};

RestoreInputs inputs(json status, const json& spec = kInPlace) {
  json s = {{"policyRef", {{"name", "db"}}}};
  s.merge_patch(spec);
  RestoreInputs in;
  in.request = {{"apiVersion", "backup.si.dev/v1alpha1"},
                {"kind", "RestoreRequest"},
                {"metadata", {{"name", "r1"}, {"namespace", "supabase"}, {"uid", "ru"}, {"generation", 3},
                              {"finalizers", {kRestoreFinalizer}},
                              {"annotations", {{kRequestedByAnnotation, json{{"username", "alice"}}.dump()},
                                               {kAnnotationRerun, "1700000001"}}}}},
                {"spec", s},
                {"status", std::move(status)}};
  in.policy = policy();
  in.now = *bo::parse_rfc3339("2026-11-24T10:00:00Z");
  in.secrets = {{"walg-storage", {{"WALG_S3_PREFIX", "s3://b"}, {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY-77"}}}};
  in.verification_keys = std::vector<std::string>{"WALG_S3_PREFIX", "WALG_LIBSODIUM_KEY"};
  in.operator_namespace = "backup-operator-system";
  in.access = {true, true, "alice", "supabase", ""};
  in.workload = RestoreInputs::Workload{true, 0, 0};
  ObservedRestoreJob check;
  check.name = "r1-check-2";
  check.ns = "supabase";
  check.role = "check";
  check.state = ObservedJob::State::kFailed;
  check.failure = "BackoffLimitExceeded";
  in.jobs = {check};
  return in;
}

TEST(RestoreRequestStatus, FixtureNamesEveryFieldOfTheCrdStatusSchema) {
  size_t paths = 0;
  const auto missing = paths_not_held(status_schema(), full_status(), &paths);
  EXPECT_GT(paths, 60u);
  EXPECT_TRUE(missing.empty()) << "tests/unit/data/restore_request_status.json lacks " << json(missing).dump();
}

TEST(RestoreRequestStatus, RoundTripOfAFullStatusIsIdentical) {
  const json stored = full_status();
  EXPECT_EQ(bo::api::to_json(bo::api::restore_request_status_from_json(stored)), stored);
  EXPECT_EQ(bo::api::to_json(bo::api::restore_request_status_from_json(json::object())), json::object());
}

TEST(RestoreRequestStatus, NonObjectStatusReadsAsEmpty) {
  for (const json& v : {json("x"), json(5), json::array(), json(nullptr)})
    EXPECT_EQ(bo::api::to_json(bo::api::restore_request_status_from_json(v)), json::object()) << v.dump();
}

TEST(RestoreRequestStatus, ListEntriesThatAreNotObjectsAreDropped) {
  json stored = full_status();
  stored["validation"].push_back("x");
  stored["validation"].push_back(5);
  stored["conditions"].push_back(json::array());
  stored["requestedBy"]["groups"].push_back(7);
  EXPECT_EQ(bo::api::to_json(bo::api::restore_request_status_from_json(stored)), full_status());
}

// The controller writes when the planned status differs from the stored
// one: a finished restore changes its kstatus conditions and
// observedGeneration, and nothing else.
TEST(RestoreRequestStatus, AFinishedRestoreWritesTheStoredStatusBackUnchanged) {
  const json stored = full_status();
  for (const json& spec : {kInPlace, kIntoClaim}) {
    const RestorePlan plan = plan_restore(inputs(stored, spec));
    json expected = stored, got = plan.status;
    ASSERT_EQ((*find_condition(got["conditions"], "Ready"))["reason"], "Succeeded") << spec.dump();
    for (json* s : {&expected, &got}) {
      s->erase("conditions");
      s->erase("observedGeneration");
    }
    EXPECT_EQ(got, expected) << spec.dump();
    EXPECT_TRUE(plan.create.empty());
    EXPECT_FALSE(plan.outcome);
  }
}

// Every field of a full status, in turn, of each wrong type, in each phase
// and each way of restoring: reading it never throws, the plan still runs,
// and what it writes reads back the same (the next reconcile writes nothing
// new from it).
TEST(RestoreRequestStatus, AFieldOfTheWrongTypeNeverStopsThePlan) {
  const json stored = full_status();
  std::vector<json::json_pointer> all;
  nodes(stored, json::json_pointer(), all);
  size_t cases = 0;
  for (const char* phase : {"Pending", "Restoring", "Validating", "Failed", "Succeeded"}) {
    for (const json& spec : {kInPlace, kIntoClaim, kVerification}) {
      json base = stored;
      base["phase"] = phase;
      for (const auto& at : all) {
        for (const json& wrong : wrong_types(stored[at])) {
          json status = base;
          status[at] = wrong;
          ++cases;
          SCOPED_TRACE(std::string(phase) + " " + spec.dump() + " " + at.to_string() + " = " + wrong.dump());
          EXPECT_NO_THROW((void)bo::api::restore_request_status_from_json(status));
          RestorePlan plan;
          ASSERT_NO_THROW(plan = plan_restore(inputs(status, spec)));
          ASSERT_NE(find_condition(plan.status["conditions"], "Reconciling"), nullptr);
          EXPECT_EQ(bo::api::to_json(bo::api::restore_request_status_from_json(plan.status)), plan.status);
        }
      }
    }
  }
  EXPECT_GT(cases, 5000u);
}

}  // namespace
