// The RestoreRequest planner, phase by phase, without a server.
#include <gtest/gtest.h>

#include <functional>

#include "common/encoding.h"
#include "common/timefmt.h"
#include "reconcile/conditions.h"
#include "reconcile/data_volume.h"
#include "reconcile/restore_plan.h"
#include "webhook/restore_identity.h"

using namespace bo::reconcile;
using nlohmann::json;
using State = ObservedJob::State;

namespace {

const std::string kSum = "sha256:" + std::string(64, 'c');

bo::SysTime at(const char* s) { return *bo::parse_rfc3339(s); }

json policy() {
  return {{"apiVersion", "backup.si.dev/v1alpha1"},
          {"kind", "BackupPolicy"},
          {"metadata", {{"name", "db"}, {"namespace", "supabase"}, {"uid", "pu"}}},
          {"spec", {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "supabase-db.supabase.svc"}}},
                    {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                 {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                    {"verification", {{"targetNamespace", "verify"}, {"image", "postgres:15"},
                                      {"storageSecretRef", {{"name", "walg-verify"}}},
                                      {"allowedTargetNamespaces", {"drill"}}, {"checkImages", {"busybox"}}}}}},
          {"status", {{"backups", {{{"id", "base_2"}, {"checksum", kSum}, {"type", "full"}, {"verified", true},
                                    {"completionTime", "2026-11-24T02:00:00Z"}},
                                   {{"id", "base_3"}, {"checksum", kSum}, {"type", "full"}, {"verified", false},
                                    {"uncompressedBytes", int64_t{3} << 30}, {"completionTime", "2026-11-24T03:00:00Z"}}}}}}};
}

json request(json spec = json::object(), bool stamped = true) {
  json s = {{"policyRef", {{"name", "db"}}}};
  s.merge_patch(spec);
  json rr = {{"apiVersion", "backup.si.dev/v1alpha1"},
             {"kind", "RestoreRequest"},
             {"metadata", {{"name", "r1"}, {"namespace", "supabase"}, {"uid", "ru"}, {"generation", 1},
                           {"finalizers", {kRestoreFinalizer}}}},
             {"spec", s}};
  if (stamped)
    rr["metadata"]["annotations"][kRequestedByAnnotation] =
        json{{"username", "alice"}, {"uid", "a-1"}, {"groups", {"sre"}}}.dump();
  return rr;
}

RestoreInputs inputs(json rr, std::vector<ObservedRestoreJob> jobs = {}) {
  RestoreInputs in;
  in.request = std::move(rr);
  in.policy = policy();
  in.jobs = std::move(jobs);
  in.now = at("2026-11-24T10:00:00Z");
  in.operator_username = "system:serviceaccount:backup-operator-system:backup-operator";
  in.secrets = {{"walg-storage", {{"WALG_S3_PREFIX", "s3://b"}, {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY-77"},
                                  {"WALG_S3_STORAGE_CLASS", "STANDARD"}}}};
  // The target's own Secret (walg-verify in "verify"): its key names only.
  in.verification_keys = std::vector<std::string>{"WALG_S3_PREFIX", "WALG_AWS_ACCESS_KEY_ID", "WALG_AWS_SECRET_ACCESS_KEY",
                                                  "WALG_AWS_ENDPOINT", "WALG_S3_CA_CERT_FILE", "WALG_LIBSODIUM_KEY"};
  in.operator_namespace = "backup-operator-system";
  // The API server said alice may create Jobs in the target (the controller asks while Pending).
  in.access = {true, true, "alice", restore_target(in.request), ""};
  return in;
}

const json* cond(const RestorePlan& p, const char* type) { return find_condition(p.status["conditions"], type); }

// Runs the plan and stores its status back, as the controller would.
RestorePlan step(RestoreInputs& in) {
  auto p = plan_restore(in);
  in.request["status"] = p.status;
  return p;
}

ObservedRestoreJob job(const std::string& name, const std::string& ns, const char* role, State state,
                       std::string message = "", int exit_code = 0) {
  ObservedRestoreJob j;
  j.name = name;
  j.ns = ns;
  j.role = role;
  j.state = state;
  j.message = std::move(message);
  j.exit_code = exit_code;
  return j;
}

std::string restored(const std::string& id = "base_2", const std::string& sum = kSum) {
  return json{{"restored", id}, {"checksum", sum}}.dump();
}

TEST(PlanRestore, AddsTheFinalizerBeforeAnythingElse) {
  json rr = request();
  rr["metadata"].erase("finalizers");
  auto p = plan_restore(inputs(rr));
  EXPECT_TRUE(p.add_finalizer);
  EXPECT_TRUE(p.create.empty());
}

TEST(PlanRestore, BlocksEachForbiddenRequestWithAReasonAndTheBackupToUseInstead) {
  struct Case {
    json spec;
    const char* reason;
  } cases[] = {
      {{{"backupId", "base_9"}}, "UnknownBackup"},
      {{{"backupId", "base_3"}}, "UnverifiedBackup"},
      {{{"backupId", "base_2"}, {"checksum", "sha256:" + std::string(64, 'd')}}, "ChecksumMismatch"},
      {{{"purpose", "drill"}}, "InvalidTarget"},
  };
  for (const auto& c : cases) {
    auto in = inputs(request(c.spec));
    auto p = plan_restore(in);
    EXPECT_EQ(p.status["phase"], "Blocked") << c.reason;
    EXPECT_EQ((*cond(p, "Blocked"))["reason"], c.reason);
    EXPECT_EQ((*cond(p, "Ready"))["status"], "False");
    if (std::string(c.reason) != "InvalidTarget") {
      EXPECT_NE(p.status["message"].get<std::string>().find("base_2"), std::string::npos) << p.status["message"];
    }
    EXPECT_TRUE(p.create.empty());
    ASSERT_TRUE(p.outcome);
    EXPECT_EQ(p.outcome->result, "blocked");
  }
}

TEST(PlanRestore, OnlyVerificationMayRestoreAnUnverifiedBackupAndNeverIntoProduction) {
  auto in = inputs(request({{"backupId", "base_3"}, {"purpose", "verification"}, {"targetNamespace", "verify"}}));
  auto p = plan_restore(in);
  EXPECT_EQ(p.status["phase"], "Restoring");
  in.target_is_production = true;
  EXPECT_EQ(plan_restore(in).status["phase"], "Blocked");
}

TEST(PlanRestore, WithoutTheWebhooksIdentityNothingRuns) {
  auto p = plan_restore(inputs(request(json::object(), false)));
  EXPECT_EQ(p.status["phase"], "Blocked");
  EXPECT_EQ((*cond(p, "Blocked"))["reason"], "IdentityMissing");
}

TEST(PlanRestore, WaitsWhileAnotherRequestHoldsTheTarget) {
  auto in = inputs(request());
  in.waiting_for = "supabase/r0";
  auto p = plan_restore(in);
  EXPECT_EQ(p.status["phase"], "Pending");
  EXPECT_EQ((*cond(p, "Ready"))["reason"], "WaitingForTarget");
  EXPECT_TRUE(p.create.empty());
}

// Into another claim (a restore into the policy's own namespace without one is in place: in_place_plan_test.cpp).
const json kIntoClaim = {{"target", {{"dataVolume", {{"claimName", "restored"}}}}}};

json into_claim(json spec = json::object()) {
  spec.merge_patch(kIntoClaim);
  return spec;
}

TEST(PlanRestore, SuccessPathRecordsBackupIdentityJobsAndValidationOutputs) {
  auto in = inputs(request(into_claim({{"validation", {{{"name", "smoke"}, {"image", "busybox"}, {"command", {"true"}}}}}})));
  auto p = step(in);
  EXPECT_EQ(p.status["phase"], "Restoring");
  EXPECT_EQ(p.status["backup"]["id"], "base_2");  // latest = newest verified
  EXPECT_EQ(p.status["backup"]["checksum"], kSum);
  EXPECT_EQ(p.status["requestedBy"]["username"], "alice");
  ASSERT_EQ(p.create.size(), 1u);
  const json& rj = p.create[0];
  EXPECT_EQ(rj["metadata"]["name"], "r1-restore");
  EXPECT_EQ(rj["metadata"]["labels"]["backup.si.dev/service"], "supabase-walg-restore");
  EXPECT_EQ(rj["metadata"]["ownerReferences"][0]["uid"], "ru");
  const std::string dumped = rj.dump();
  EXPECT_EQ(dumped.find("CANARY"), std::string::npos);
  EXPECT_NE(dumped.find("secretKeyRef"), std::string::npos);
  // Not yet in the cache (or deleted by hand): asked for again under the same name, so never two.
  p = step(in);
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(p.create[0]["metadata"]["name"], "r1-restore");
  EXPECT_EQ(p.status["phase"], "Restoring");

  in.jobs = {job("r1-restore", "supabase", "restore", State::kSucceeded, restored())};
  p = step(in);
  EXPECT_EQ(p.status["phase"], "Validating");
  ASSERT_EQ(p.create.size(), 2u);  // the profile's check and the user's
  EXPECT_EQ(p.create[0]["metadata"]["namespace"], "supabase");
  EXPECT_EQ(p.create[0]["metadata"]["labels"][kLabelCheck], "database-answers");
  EXPECT_EQ(p.create[1]["spec"]["template"]["spec"]["containers"][0]["command"], json({"true"}));

  in.jobs.push_back(job("r1-v1-database-answers", "supabase", "validate", State::kSucceeded, "accepting connections"));
  in.jobs.push_back(job("r1-v1-smoke", "supabase", "validate", State::kActive));
  p = step(in);
  EXPECT_EQ(p.status["phase"], "Validating");
  in.jobs.back().state = State::kSucceeded;
  in.jobs.back().message = "ok; key was CANARY-77";
  p = step(in);
  EXPECT_EQ(p.status["phase"], "Succeeded");
  EXPECT_EQ((*cond(p, "Validated"))["status"], "True");
  EXPECT_EQ((*cond(p, "Ready"))["status"], "True");
  ASSERT_EQ(p.status["validation"].size(), 2u);
  EXPECT_EQ(p.status["validation"][0]["output"], "accepting connections");
  EXPECT_EQ(p.status["validation"][1]["output"], "ok; key was [redacted]");
  EXPECT_TRUE(p.status.contains("completionTime"));
  ASSERT_TRUE(p.outcome);
  EXPECT_EQ(p.outcome->result, "success");
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kNone);
}

TEST(PlanRestore, ARestoreReportingAnotherChecksumFails) {
  auto in = inputs(request(into_claim()));
  step(in);
  in.jobs = {job("r1-restore", "supabase", "restore", State::kSucceeded, restored("base_2", "sha256:" + std::string(64, 'e')))};
  auto p = step(in);
  EXPECT_EQ(p.status["phase"], "Failed");
  EXPECT_NE(p.status["message"].get<std::string>().find("ChecksumMismatch"), std::string::npos);
}

TEST(PlanRestore, AFailedValidationFreezesTheTargetUntilARerunPasses) {
  auto in = inputs(request({{"purpose", "restore"}, {"targetNamespace", "drill"}}));
  step(in);
  in.jobs = {job("r1-restore", "supabase", "restore", State::kSucceeded, restored())};
  step(in);
  in.jobs.push_back(job("r1-v1-database-answers", "drill", "validate", State::kFailed, "no response", 2));
  auto p = step(in);
  EXPECT_EQ(p.status["phase"], "Failed");
  EXPECT_EQ((*cond(p, "MutationsBlocked"))["status"], "True");
  EXPECT_EQ(p.status["validation"][0]["exitCode"], 2);
  ASSERT_EQ(p.freeze, RestorePlan::Freeze::kApply);
  EXPECT_EQ(p.freeze_binding["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "drill");
  EXPECT_EQ(p.freeze_policy["spec"]["validations"][0]["expression"],
            "request.userInfo.username == 'system:serviceaccount:backup-operator-system:backup-operator'");
  in.freeze_present = true;
  p = step(in);
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kNone) << "applied once";
  EXPECT_TRUE(p.create.empty());

  in.request["metadata"]["annotations"][kAnnotationRerun] = "1";
  p = step(in);
  EXPECT_EQ(p.status["phase"], "Validating");
  ASSERT_EQ(p.create.size(), 1u);
  EXPECT_EQ(p.create[0]["metadata"]["name"], "r1-v2-database-answers");
  ASSERT_EQ(p.remove.size(), 1u);
  EXPECT_EQ(p.remove[0].second, "r1-v1-database-answers");
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kNone) << "still frozen while the rerun runs";
  in.jobs = {job("r1-restore", "supabase", "restore", State::kSucceeded, restored()),
             job("r1-v2-database-answers", "drill", "validate", State::kSucceeded, "ok")};
  p = step(in);
  EXPECT_EQ(p.status["phase"], "Succeeded");
  EXPECT_EQ((*cond(p, "MutationsBlocked"))["status"], "False");
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kLift);
  in.freeze_present = false;
  EXPECT_EQ(step(in).freeze, RestorePlan::Freeze::kNone);
}

TEST(PlanRestore, DeletionRemovesJobsAndFreezeBeforeReleasingTheFinalizer) {
  auto in = inputs(request());
  in.request["metadata"]["deletionTimestamp"] = "2026-11-24T10:00:00Z";
  in.jobs = {job("r1-restore", "supabase", "restore", State::kActive),
             job("r1-v1-database-answers", "verify", "validate", State::kActive)};
  in.freeze_present = true;
  auto p = plan_restore(in);
  EXPECT_EQ(p.remove.size(), 2u);
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kLift);
  EXPECT_FALSE(p.remove_finalizer);
  in.jobs.clear();
  in.freeze_present = false;
  EXPECT_TRUE(plan_restore(in).remove_finalizer);
}

TEST(PlanRestore, APolicyThatAppearsLaterUnblocksTheRequest) {
  auto in = inputs(request(into_claim()));
  in.policy = json();
  auto p = step(in);
  EXPECT_EQ((*cond(p, "Blocked"))["reason"], "PolicyNotFound");
  in.policy = policy();
  EXPECT_EQ(step(in).status["phase"], "Restoring");
}

// --- the identity webhook ---

json review(const char* op, json object, json old = json()) {
  return {{"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request", {{"uid", "u-1"}, {"operation", op}, {"object", object}, {"oldObject", old},
                       {"userInfo", {{"username", "alice"}, {"uid", "a-1"}, {"groups", {"sre", "system:authenticated"}}}}}}};
}

TEST(IdentityWebhook, StampsTheCallerOnCreate) {
  json rr = request(json::object(), false);
  rr["metadata"].erase("annotations");
  const json out = bo::webhook::review_restore_request(review("CREATE", rr));
  EXPECT_EQ(out["response"]["uid"], "u-1");
  EXPECT_TRUE(out["response"]["allowed"]);
  const json patch = json::parse(*bo::base64_decode(out["response"]["patch"].get<std::string>()));
  EXPECT_EQ(patch[0]["path"], "/metadata/annotations");
  const json who = json::parse(patch[0]["value"][kRequestedByAnnotation].get<std::string>());
  EXPECT_EQ(who["username"], "alice");
  EXPECT_EQ(who["groups"], json({"sre", "system:authenticated"}));
  // With other annotations present, only the one key is added.
  rr["metadata"]["annotations"] = {{"note", "x"}};
  const json out2 = bo::webhook::review_restore_request(review("CREATE", rr));
  const json patch2 = json::parse(*bo::base64_decode(out2["response"]["patch"].get<std::string>()));
  EXPECT_EQ(patch2[0]["path"], "/metadata/annotations/backup.si.dev~1requested-by");
}

TEST(IdentityWebhook, RefusesAForgedOrChangedIdentityAndSpecChanges) {
  json forged = request();
  EXPECT_FALSE(bo::webhook::review_restore_request(review("CREATE", forged))["response"]["allowed"]);
  json changed = forged;
  changed["metadata"]["annotations"][kRequestedByAnnotation] = R"({"username":"mallory"})";
  EXPECT_FALSE(bo::webhook::review_restore_request(review("UPDATE", changed, forged))["response"]["allowed"]);
  json removed = forged;
  removed["metadata"].erase("annotations");
  EXPECT_FALSE(bo::webhook::review_restore_request(review("UPDATE", removed, forged))["response"]["allowed"]);
  json respec = forged;
  respec["spec"]["backupId"] = "base_3";
  const json out = bo::webhook::review_restore_request(review("UPDATE", respec, forged));
  EXPECT_FALSE(out["response"]["allowed"]);
  EXPECT_EQ(out["response"]["status"]["code"], 403);
  json finalizer_only = forged;
  finalizer_only["metadata"]["finalizers"] = json::array();
  EXPECT_TRUE(bo::webhook::review_restore_request(review("UPDATE", finalizer_only, forged))["response"]["allowed"]);
  EXPECT_FALSE(bo::webhook::review_restore_request(json("garbage"))["response"]["allowed"]);
}

}  // namespace

TEST(PlanRestore, ARestoreIntoAClaimRunsAsTheDatabaseUserAndFetchesThere) {
  auto in = inputs(request({{"target", {{"dataVolume", {{"claimName", "restored"}, {"subPath", "pg"}}}}}}));
  auto p = step(in);
  ASSERT_EQ(p.create.size(), 1u);
  const json& pod = p.create[0]["spec"]["template"]["spec"];
  EXPECT_EQ(pod["securityContext"]["runAsUser"], 101);
  EXPECT_EQ(pod["securityContext"]["runAsGroup"], 102);
  EXPECT_EQ(pod["securityContext"]["fsGroup"], 102);
  bool claim = false, mounted = false;
  for (const auto& v : pod["volumes"])
    if (v["name"] == "restore") claim = v["persistentVolumeClaim"]["claimName"] == "restored";
  for (const auto& m : pod["containers"][0]["volumeMounts"])
    if (m["name"] == "restore") mounted = m["mountPath"] == "/var/lib/postgresql/data" && m["subPath"] == "pg";
  EXPECT_TRUE(claim);
  EXPECT_TRUE(mounted);
  bool pgdata = false;
  for (const auto& e : pod["containers"][0]["env"])
    if (e["name"] == "PGDATA") pgdata = e["value"] == "/var/lib/postgresql/data";
  EXPECT_TRUE(pgdata);
}

// --- verifications and drills: the scratch instance ---

namespace {

json scratch_request(json extra = json::object()) {
  json spec = {{"backupId", "base_3"}, {"purpose", "verification"}, {"targetNamespace", "verify"}};
  spec.merge_patch(extra);
  return request(spec);
}

const json* created(const RestorePlan& p, const std::string& kind) {
  for (const auto& o : p.create)
    if (o.value("kind", "") == kind) return &o;
  return nullptr;
}

// The scratch Job's result as `run-job verify` writes it.
std::string scratch_result(bool user_passed, const std::string& user_output = "7") {
  return json{{"restored", "base_3"},
              {"checksum", kSum},
              {"recovered", true},
              {"recoverySeconds", 4.5},
              {"systemIdentifier", "7390000000000000001"},
              {"replayLsn", "0/5000100"},
              {"checks",
               {{{"name", "recovered"}, {"passed", true}, {"ms", 3}, {"output", "f"}},
                {{"name", "recovery-target"}, {"passed", true}, {"ms", 1}, {"output", "0/5000100 >= 0/5000000"}},
                {{"name", "system-identifier"}, {"passed", true}, {"ms", 1}, {"output", "7390000000000000001"}},
                {{"name", "supabase-schemas"}, {"passed", true}, {"ms", 9}, {"output", "auth.users 3"}},
                {{"name", "orders"}, {"passed", user_passed}, {"ms", 2}, {"output", user_output}}}}}
      .dump();
}

const json kOrdersCheck = {{"validation", {{{"name", "orders"}, {"sql", "SELECT count(*) FROM orders"}, {"expect", "7"}}}}};

}  // namespace

TEST(PlanRestore, AVerificationRestoresIntoAScratchInstanceInTheTargetWithNoProductionSecret) {
  auto in = inputs(scratch_request(kOrdersCheck));
  auto p = step(in);
  EXPECT_EQ(p.status["phase"], "Restoring");
  ASSERT_EQ(p.create.size(), 3u);
  const json* job = created(p, "Job");
  const json* claim = created(p, "PersistentVolumeClaim");
  const json* netpol = created(p, "NetworkPolicy");
  ASSERT_TRUE(job && claim && netpol);
  for (const json* o : {job, claim, netpol}) {
    EXPECT_EQ((*o)["metadata"]["namespace"], "verify");
    EXPECT_EQ((*o)["metadata"]["name"], "r1-scratch");
  }
  EXPECT_EQ(p.create[0]["kind"], "NetworkPolicy") << "no pod exists before the policy that shuts it off";
  // 3 GiB uncompressed: 1.5 × 3 + 1 = 5.5 → 6 GiB.
  EXPECT_EQ((*claim)["spec"]["resources"]["requests"]["storage"], "6Gi");
  EXPECT_EQ((*netpol)["spec"]["ingress"], json::array());
  EXPECT_EQ((*netpol)["spec"]["policyTypes"], json::array({"Ingress"}));
  EXPECT_EQ((*netpol)["spec"]["podSelector"]["matchLabels"], (*job)["spec"]["template"]["metadata"]["labels"]);

  const json pod = (*job)["spec"]["template"]["spec"];
  EXPECT_EQ(pod["securityContext"]["runAsUser"], 101);
  EXPECT_EQ(pod["securityContext"]["runAsGroup"], 102);
  EXPECT_EQ(pod["automountServiceAccountToken"], false);
  ASSERT_EQ(pod["initContainers"].size(), 1u);
  EXPECT_EQ(pod["initContainers"][0]["image"], kDefaultImage);
  EXPECT_EQ(pod["initContainers"][0]["args"], json::array({"run-job", "install-tools"}));
  const json c = pod["containers"][0];
  EXPECT_EQ(c["image"], "postgres:15") << "the database's own image";
  EXPECT_EQ(c["command"][0], "/tools/ld.so");
  EXPECT_EQ(c["securityContext"]["allowPrivilegeEscalation"], false);
  std::map<std::string, json> env;
  for (const auto& e : c["env"]) env[e["name"]] = e;
  EXPECT_EQ(env["BACKUP_ID"]["value"], "base_3");
  EXPECT_EQ(env["BACKUP_CHECKSUM"]["value"], kSum);
  EXPECT_EQ(env["PGDATA"]["value"], "/var/lib/postgresql/scratch/pgdata");
  EXPECT_EQ(json::parse(env["VERIFY_CHECKS"]["value"].get<std::string>())[0]["expect"], "7");
  // Storage and the key come from the target's own Secret, by reference only.
  for (const auto& [name, e] : env) {
    if (e.contains("valueFrom")) {
      EXPECT_EQ(e["valueFrom"]["secretKeyRef"]["name"], "walg-verify") << name;
    }
  }
  EXPECT_EQ(env["WALG_LIBSODIUM_KEY"]["valueFrom"]["secretKeyRef"]["key"], "WALG_LIBSODIUM_KEY");
  EXPECT_FALSE(env["WALG_S3_PREFIX"]["valueFrom"]["secretKeyRef"].contains("optional"));
  // The keys are the target Secret's: one only it has is passed, one only production's has is not.
  EXPECT_EQ(env.at("WALG_S3_CA_CERT_FILE")["valueFrom"]["secretKeyRef"]["name"], "walg-verify");
  EXPECT_EQ(env.count("WALG_S3_STORAGE_CLASS"), 0u);
  const std::string all = p.status.dump() + job->dump();
  EXPECT_EQ(all.find("walg-storage"), std::string::npos);
  EXPECT_EQ(all.find("CANARY-77"), std::string::npos);
  EXPECT_EQ(p.status["scratch"]["namespace"], "verify");
  EXPECT_EQ(p.status["scratch"]["size"], "6Gi");
  // Asked again while the Job is not in the cache: the same three objects, never a second Job name.
  p = step(in);
  ASSERT_EQ(p.create.size(), 3u);
  EXPECT_EQ(created(p, "Job")->at("metadata")["name"], "r1-scratch");
}

TEST(PlanRestore, AScratchInstanceThatRecoveredAndPassedEveryCheckVerifiesAndIsRemoved) {
  auto in = inputs(scratch_request(kOrdersCheck));
  step(in);
  in.jobs = {job("r1-scratch", "verify", "scratch", State::kActive)};
  EXPECT_TRUE(step(in).create.empty());
  in.jobs = {job("r1-scratch", "verify", "scratch", State::kSucceeded, scratch_result(true))};
  auto p = step(in);
  EXPECT_EQ(p.status["phase"], "Succeeded");
  EXPECT_EQ((*cond(p, "Validated"))["reason"], "ChecksPassed");
  EXPECT_EQ((*cond(p, "MutationsBlocked"))["status"], "False") << "a scratch instance freezes nothing";
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kNone);
  ASSERT_EQ(p.status["validation"].size(), 5u);
  EXPECT_EQ(p.status["validation"][4]["query"], "SELECT count(*) FROM orders");
  EXPECT_EQ(p.status["validation"][4]["expect"], "7");
  EXPECT_NE(p.status["validation"][2]["query"].get<std::string>().find("system_identifier"), std::string::npos);
  EXPECT_EQ(p.status["recovery"]["seconds"], 4.5);
  EXPECT_EQ(p.status["recovery"]["systemIdentifier"], "7390000000000000001");
  ASSERT_TRUE(p.outcome);
  EXPECT_EQ(p.outcome->result, "success");
  EXPECT_EQ(p.outcome->recovery_seconds, 4.5);
  EXPECT_TRUE(p.remove.empty()) << "the result is stored before anything is deleted";
  // Then everything goes.
  p = step(in);
  ASSERT_EQ(p.remove.size(), 1u);
  EXPECT_EQ(p.remove[0], std::make_pair(std::string("verify"), std::string("r1-scratch")));
  EXPECT_EQ(p.remove_other, (std::vector<RestorePlan::Removal>{{"PersistentVolumeClaim", "verify", "r1-scratch"},
                                                               {"NetworkPolicy", "verify", "r1-scratch"}}));
  EXPECT_EQ(p.status["scratch"]["removed"], true);
  EXPECT_FALSE(p.outcome);
  in.jobs.clear();
  p = step(in);
  EXPECT_TRUE(p.remove.empty());
  EXPECT_TRUE(p.remove_other.empty());
}

// status.validation stays within the CRD's maxItems and its names within 63
// characters, whatever a scratch Job reports.
TEST(PlanRestore, AScratchResultWithMoreChecksThanTheCrdAllowsIsBounded) {
  auto in = inputs(scratch_request(kOrdersCheck));
  step(in);
  json result = json::parse(scratch_result(true));
  for (int i = 0; i < 80; ++i)
    result["checks"].push_back({{"name", "extra-" + std::to_string(i) + std::string(70, 'x')}, {"passed", true}, {"ms", 1}, {"output", ""}});
  in.jobs = {job("r1-scratch", "verify", "scratch", State::kSucceeded, result.dump())};
  auto p = step(in);
  ASSERT_EQ(p.status["validation"].size(), kMaxValidationEntries);
  EXPECT_EQ(p.status["validation"][0]["name"], "recovered");
  for (const auto& v : p.status["validation"]) EXPECT_LE(v["name"].get<std::string>().size(), 63u) << v;
}

TEST(PlanRestore, AFailedCheckKeepsTheScratchInstanceForKeepFailedForAndFreezesNothing) {
  auto in = inputs(scratch_request(kOrdersCheck));
  step(in);
  in.jobs = {job("r1-scratch", "verify", "scratch", State::kFailed, scratch_result(false, "6 (password CANARY-77)"), 1)};
  auto p = step(in);
  EXPECT_EQ(p.status["phase"], "Failed");
  EXPECT_EQ((*cond(p, "Validated"))["reason"], "ChecksFailed");
  EXPECT_NE(p.status["message"].get<std::string>().find("orders"), std::string::npos) << p.status["message"];
  EXPECT_EQ(p.status["validation"][4]["output"], "6 (password [redacted])");
  EXPECT_EQ(p.status["scratch"]["keepUntil"], "2026-11-25T10:00:00Z");
  EXPECT_EQ(p.freeze, RestorePlan::Freeze::kNone);
  EXPECT_EQ((*cond(p, "MutationsBlocked"))["status"], "False");
  EXPECT_EQ(p.outcome->result, "failure");
  in.now = at("2026-11-25T09:59:00Z");
  p = step(in);
  EXPECT_TRUE(p.remove.empty());
  EXPECT_TRUE(p.remove_other.empty());
  ASSERT_TRUE(p.requeue_after);
  EXPECT_EQ(*p.requeue_after, std::chrono::seconds(61));
  in.now = at("2026-11-25T10:00:00Z");
  p = step(in);
  EXPECT_EQ(p.remove.size(), 1u);
  EXPECT_EQ(p.remove_other.size(), 2u);
}

TEST(PlanRestore, AScratchInstanceThatDidNotRecoverSaysWhatBroke) {
  struct Case {
    State state;
    std::string message, failure, reason, in_message;
  } cases[] = {
      {State::kFailed, json{{"restored", "base_3"}, {"recovered", false}, {"checks", json::array()},
                            {"error", "wal-g backup-fetch base_3: decrypt: authentication failed"}}.dump(),
       "", "RecoveryFailed", "authentication failed"},
      {State::kFailed, "", "DeadlineExceeded: Job was active longer than specified deadline", "RecoveryFailed",
       "DeadlineExceeded"},
      {State::kSucceeded, "not json", "", "RecoveryFailed", "InvalidResult"},
      // A result that leaves out a user check has not passed it.
      {State::kSucceeded,
       json{{"recovered", true},
            {"checks", {{{"name", "recovered"}, {"passed", true}}, {{"name", "recovery-target"}, {"passed", true}},
                        {{"name", "system-identifier"}, {"passed", true}}}}}.dump(),
       "", "ChecksFailed", "orders"},
  };
  for (const auto& c : cases) {
    auto in = inputs(scratch_request(kOrdersCheck));
    step(in);
    auto j = job("r1-scratch", "verify", "scratch", c.state, c.message);
    j.failure = c.failure;
    in.jobs = {j};
    auto p = step(in);
    EXPECT_EQ(p.status["phase"], "Failed") << c.reason;
    EXPECT_EQ((*cond(p, "Validated"))["reason"], c.reason) << c.message;
    EXPECT_NE(p.status["message"].get<std::string>().find(c.in_message), std::string::npos) << p.status["message"];
  }
}

TEST(PlanRestore, AScratchInstanceThatCannotRunIsBlockedNamingTheField) {
  struct Case {
    std::function<void(RestoreInputs&)> change;
    const char* reason;
    const char* field;
  } cases[] = {
      {[](RestoreInputs& in) {
         in.request["spec"]["validation"] = {{{"name", "smoke"}, {"image", "busybox"}, {"command", {"true"}}}};
       },
       "UnsupportedCheck", "spec.validation[0]"},
      {[](RestoreInputs& in) { in.policy["spec"]["verification"].erase("storageSecretRef"); }, "StorageSecretRequired",
       "spec.verification.storageSecretRef.name"},
      {[](RestoreInputs& in) { in.verification_keys.reset(); }, "StorageSecretNotFound",
       "spec.verification.storageSecretRef.name"},
      {[](RestoreInputs& in) { in.policy["spec"]["verification"].erase("image"); }, "VerificationImageRequired",
       "spec.verification.image"},
      {[](RestoreInputs& in) { in.policy["spec"]["database"].erase("runAsUser"); }, "RunAsUserRequired",
       "spec.database.runAsUser"},
  };
  for (const auto& c : cases) {
    auto in = inputs(scratch_request());
    c.change(in);
    auto p = step(in);
    EXPECT_EQ(p.status["phase"], "Blocked") << c.reason;
    EXPECT_EQ((*cond(p, "Blocked"))["reason"], c.reason);
    EXPECT_NE(p.status["message"].get<std::string>().find(c.field), std::string::npos) << p.status["message"];
    EXPECT_TRUE(p.create.empty());
  }
}

// --- no confused deputy ---

TEST(PlanRestore, NothingStartsUntilTheApiServerSaysTheRequesterMayCreateJobsThere) {
  auto in = inputs(request({{"purpose", "drill"}, {"targetNamespace", "drill"}}));
  in.access = {};
  auto p = step(in);
  EXPECT_EQ(p.status["phase"], "Pending");
  EXPECT_EQ((*cond(p, "Ready"))["reason"], "CheckingAccess");
  EXPECT_NE(p.status["message"].get<std::string>().find("alice may create jobs.batch in namespace drill"), std::string::npos)
      << p.status["message"];
  EXPECT_TRUE(p.create.empty());
  EXPECT_FALSE(p.outcome);
  ASSERT_TRUE(p.requeue_after);
  EXPECT_FALSE(p.status.contains("access"));

  // The answer is kept in status, where the controller finds it instead of asking again.
  in.access = {true, true, "alice", "drill", ""};
  p = step(in);
  EXPECT_EQ(p.status["phase"], "Restoring");
  EXPECT_EQ(p.status["access"], json({{"user", "alice"}, {"verb", "create"}, {"resource", "jobs.batch"},
                                      {"namespace", "drill"}, {"allowed", true}}));
  const auto kept = bo::api::access_from_json(p.status["access"]);
  EXPECT_TRUE(kept.checked && kept.allowed);
  EXPECT_EQ(kept.ns, "drill");
}

TEST(PlanRestore, ARequesterWithoutTheRightIsBlockedForbiddenNamingUserVerbResourceAndNamespace) {
  auto in = inputs(request({{"purpose", "drill"}, {"targetNamespace", "drill"},
                            {"validation", {{{"name", "smoke"}, {"image", "busybox"}}}}}));
  in.access = {true, false, "alice", "drill", "no RBAC policy matched"};
  auto p = step(in);
  EXPECT_EQ(p.status["phase"], "Blocked");
  EXPECT_EQ((*cond(p, "Blocked"))["reason"], "Forbidden");
  EXPECT_EQ((*cond(p, "Ready"))["reason"], "Forbidden");
  const std::string msg = p.status["message"];
  for (const char* part : {"\"alice\"", "create", "jobs.batch", "namespace drill", "no RBAC policy matched"})
    EXPECT_NE(msg.find(part), std::string::npos) << part << " in " << msg;
  EXPECT_EQ(p.status["access"]["allowed"], false);
  EXPECT_TRUE(p.create.empty());
  ASSERT_TRUE(p.outcome);
  EXPECT_EQ(p.outcome->result, "blocked");
  // Blocked stays blocked: nothing is created on the next reconcile either.
  EXPECT_TRUE(step(in).create.empty());
}

TEST(PlanRestore, RefusedTargetsAndUnlistedImagesCreateNothing) {
  struct Case {
    json spec;
    const char* reason;
    const char* field;
  } cases[] = {
      {{{"purpose", "drill"}, {"targetNamespace", "kube-system"}}, "TargetNotAllowed", "spec.targetNamespace"},
      {{{"purpose", "drill"}, {"targetNamespace", "backup-operator-system"}}, "TargetNotAllowed", "spec.targetNamespace"},
      {{{"purpose", "drill"}, {"targetNamespace", "elsewhere"}}, "TargetNotAllowed", "spec.verification.allowedTargetNamespaces"},
      {{{"validation", {{{"name", "smoke"}, {"image", "busybox"}}, {{"name", "x"}, {"image", "attacker/tool"}}}}},
       "ImageNotAllowed", "spec.validation[1].image"},
  };
  for (const auto& c : cases) {
    auto p = plan_restore(inputs(request(c.spec)));
    EXPECT_EQ(p.status["phase"], "Blocked") << c.spec;
    EXPECT_EQ((*cond(p, "Blocked"))["reason"], c.reason) << c.spec;
    EXPECT_NE(p.status["message"].get<std::string>().find(c.field), std::string::npos) << p.status["message"];
    EXPECT_TRUE(p.create.empty());
  }
}

TEST(PlanRestore, TheScratchImageAndUserDefaultToWhatTheWorkloadCheckRecorded) {
  auto in = inputs(scratch_request());
  in.policy["spec"]["verification"].erase("image");
  in.policy["spec"]["database"] = {{"workloadRef", {{"kind", "StatefulSet"}, {"name", "supabase-db"}}},
                                   {"host", "supabase-db.supabase.svc"}};
  auto spec = bo::api::parse_backup_policy_spec(in.policy["spec"]);
  ASSERT_TRUE(spec);
  ResolvedDataVolume v;
  v.claim_name = "data-supabase-db-0";
  v.mount_path = "/var/lib/postgresql/data";
  v.run_as_user = 999;
  v.run_as_group = 998;
  v.image = "supabase/postgres:15.8.1";
  in.policy["status"]["dataVolume"] = to_status(v, data_volume_source(*spec));
  auto p = step(in);
  ASSERT_EQ(p.status["phase"], "Restoring") << p.status.dump(2);
  const json pod = created(p, "Job")->at("spec")["template"]["spec"];
  EXPECT_EQ(pod["containers"][0]["image"], "supabase/postgres:15.8.1");
  EXPECT_EQ(pod["securityContext"]["runAsUser"], 999);
  EXPECT_EQ(pod["securityContext"]["fsGroup"], 998);
}

TEST(PlanRestore, DeletingAVerificationRemovesItsScratchInstanceEvenIfItsCreationWasNotRecorded) {
  auto in = inputs(scratch_request());
  in.request["metadata"]["deletionTimestamp"] = "2026-11-24T10:00:00Z";
  in.jobs = {job("r1-scratch", "verify", "scratch", State::kActive)};
  auto p = plan_restore(in);
  EXPECT_EQ(p.remove.size(), 1u);
  EXPECT_EQ(p.remove_other.size(), 2u);
  EXPECT_FALSE(p.remove_finalizer);
  in.jobs.clear();
  p = plan_restore(in);
  EXPECT_EQ(p.remove_other.size(), 2u) << "not found counts as done";
  EXPECT_TRUE(p.remove_finalizer);
}

TEST(IdentityWebhook, StampsExtraSoTheAccessReviewAsksAboutTheSameIdentity) {
  json rr = request(json::object(), false);
  rr["metadata"].erase("annotations");
  json r = review("CREATE", rr);
  r["request"]["userInfo"]["extra"] = {{"scopes.example/scope", {"jobs:drill"}}};
  const json out = bo::webhook::review_restore_request(r);
  const json patch = json::parse(*bo::base64_decode(out["response"]["patch"].get<std::string>()));
  const json who = json::parse(patch[0]["value"][kRequestedByAnnotation].get<std::string>());
  EXPECT_EQ(who["extra"], json({{"scopes.example/scope", {"jobs:drill"}}}));
  const json stored = {{"metadata", {{"annotations", {{kRequestedByAnnotation, who.dump()}}}}}};
  const auto requester = bo::api::requester_of(stored);
  ASSERT_TRUE(requester);
  EXPECT_EQ(bo::api::job_access_review(*requester, "drill")["spec"]["extra"], who["extra"]);
  // Without extra, none is recorded.
  const json plain = bo::webhook::review_restore_request(review("CREATE", rr));
  const json p2 = json::parse(*bo::base64_decode(plain["response"]["patch"].get<std::string>()));
  EXPECT_FALSE(json::parse(p2[0]["value"][kRequestedByAnnotation].get<std::string>()).contains("extra"));
}
