#include <gtest/gtest.h>

#include <date/tz.h>

#include "api/backup_policy.h"
#include "common/timefmt.h"
#include "kube-local/pod_security.h"
#include "reconcile/backup_jobs.h"

using namespace bo::api;
using namespace bo::reconcile;
using nlohmann::json;

namespace {

json minimal_spec() {
  return {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "db.supabase.svc"}, {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
          {"storage", {{"secretRef", {{"name", "walg-storage"}}}, {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
          {"verification", {{"targetNamespace", "supabase-verify"}}}};
}

BackupPolicySpec parsed(const json& j = minimal_spec()) {
  auto s = parse_backup_policy_spec(j);
  EXPECT_TRUE(s) << s.error().message;
  return *s;
}

bo::SysTime at(const char* s) { return *bo::parse_rfc3339(s); }

TEST(BackupPolicySpec, DefaultsMatchThePolicy) {
  const auto s = parsed();
  EXPECT_EQ(s.schedule.backup, "0 * * * *");
  EXPECT_EQ(s.schedule.full_backup, "0 2 * * *");
  EXPECT_EQ(s.retention.daily, 7);
  EXPECT_EQ(s.retention.weekly, 4);
  EXPECT_EQ(s.retention.monthly, 3);
  EXPECT_EQ(s.environment, "production");
  EXPECT_TRUE(s.verification.enabled);
  EXPECT_EQ(s.storage.encryption_key, "WALG_LIBSODIUM_KEY");
  EXPECT_EQ(s.job_template.backoff_limit, 2);
  EXPECT_TRUE(s.has_addon("databasus"));
  EXPECT_TRUE(validate(s, "supabase").empty());
}

TEST(BackupPolicySpec, WrongShapeNamesTheField) {
  json j = minimal_spec();
  j["schedule"] = {{"startingDeadlineSeconds", "soon"}};
  auto s = parse_backup_policy_spec(j);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().reason, "InvalidSpec");
  EXPECT_EQ(s.error().field, "spec.schedule.startingDeadlineSeconds");
  j = minimal_spec();
  j["retention"] = 7;
  EXPECT_EQ(parse_backup_policy_spec(j).error().field, "spec.retention");
  j = minimal_spec();
  j["database"]["workloadRef"] = "supabase-db";
  EXPECT_EQ(parse_backup_policy_spec(j).error().field, "spec.database.workloadRef");
  j = minimal_spec();
  j["database"]["container"] = 5;
  EXPECT_EQ(parse_backup_policy_spec(j).error().field, "spec.database.container");
  j = minimal_spec();
  j["verification"]["checkImages"] = "busybox";
  EXPECT_EQ(parse_backup_policy_spec(j).error().field, "spec.verification.checkImages");
  j = minimal_spec();
  j["verification"]["allowedTargetNamespaces"] = {"drills", 7};
  EXPECT_EQ(parse_backup_policy_spec(j).error().field, "spec.verification.allowedTargetNamespaces");
}

struct InvalidCase {
  const char* name;
  std::function<void(json&)> mutate;
  const char* reason;
  const char* field;
};

class BackupPolicyValidation : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(BackupPolicyValidation, GivesReasonAndField) {
  json j = minimal_spec();
  GetParam().mutate(j);
  const auto problems = validate(parsed(j), "supabase", "backup-operator-system");
  ASSERT_FALSE(problems.empty()) << GetParam().name;
  EXPECT_EQ(problems[0].reason, GetParam().reason);
  EXPECT_EQ(problems[0].field, GetParam().field);
  EXPECT_EQ(problems[0].message.rfind(GetParam().field, 0), 0u) << problems[0].message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, BackupPolicyValidation,
    ::testing::Values(
        InvalidCase{"BadCron", [](json& j) { j["schedule"]["backup"] = "every hour"; }, "InvalidSchedule",
                    "spec.schedule.backup"},
        InvalidCase{"NeverFires", [](json& j) { j["schedule"]["fullBackup"] = "0 0 30 2 *"; }, "InvalidSchedule",
                    "spec.schedule.fullBackup"},
        InvalidCase{"BadZone", [](json& j) { j["schedule"]["timeZone"] = "Moon/Base"; }, "InvalidTimeZone",
                    "spec.schedule.timeZone"},
        InvalidCase{"NoTarget", [](json& j) { j["verification"].erase("targetNamespace"); }, "InvalidTarget",
                    "spec.verification.targetNamespace"},
        InvalidCase{"ProductionVerifiesInPlace", [](json& j) { j["verification"]["targetNamespace"] = "supabase"; },
                    "InvalidTarget", "spec.verification.targetNamespace"},
        InvalidCase{"VerifiesInKubeSystem", [](json& j) { j["verification"]["targetNamespace"] = "kube-system"; },
                    "TargetNotAllowed", "spec.verification.targetNamespace"},
        InvalidCase{"VerifiesInTheOperatorsNamespace",
                    [](json& j) { j["verification"]["targetNamespace"] = "backup-operator-system"; }, "TargetNotAllowed",
                    "spec.verification.targetNamespace"},
        InvalidCase{"ListsKubeSystemForDrills",
                    [](json& j) { j["verification"]["allowedTargetNamespaces"] = {"drills", "kube-system"}; },
                    "TargetNotAllowed", "spec.verification.allowedTargetNamespaces[1]"},
        InvalidCase{"ListsTheOperatorsNamespaceEvenWithVerificationOff",
                    [](json& j) {
                      j["verification"] = {{"enabled", false}, {"allowedTargetNamespaces", {"backup-operator-system"}}};
                    },
                    "TargetNotAllowed", "spec.verification.allowedTargetNamespaces[0]"},
        InvalidCase{"EmptyCheckImage", [](json& j) { j["verification"]["checkImages"] = {"busybox", ""}; },
                    "InvalidSpec", "spec.verification.checkImages[1]"},
        InvalidCase{"ZeroRetention", [](json& j) { j["retention"] = {{"weekly", 0}}; }, "InvalidRetention",
                    "spec.retention.weekly"},
        InvalidCase{"NoEncryption", [](json& j) { j["storage"].erase("encryption"); }, "EncryptionRequired",
                    "spec.storage.encryption.secretRef.name"},
        InvalidCase{"BadDrillInterval", [](json& j) { j["drills"] = {{"interval", "quarterly"}}; }, "InvalidSpec",
                    "spec.drills.interval"},
        InvalidCase{"NoDataVolume", [](json& j) { j["database"].erase("dataVolume"); }, "DataVolumeRequired",
                    "spec.database.dataVolume.claimName"},
        InvalidCase{"RelativeMountPath", [](json& j) { j["database"]["dataVolume"]["mountPath"] = "data"; },
                    "InvalidSpec", "spec.database.dataVolume.mountPath"},
        InvalidCase{"EscapingSubPath", [](json& j) { j["database"]["dataVolume"]["subPath"] = "../other"; },
                    "InvalidSpec", "spec.database.dataVolume.subPath"},
        InvalidCase{"NoRunAsUser", [](json& j) { j["database"].erase("runAsUser"); }, "InvalidSpec",
                    "spec.database.runAsUser"},
        InvalidCase{"RootRunAsUser", [](json& j) { j["database"]["runAsUser"] = 0; }, "InvalidSpec",
                    "spec.database.runAsUser"},
        InvalidCase{"NoRunAsGroup", [](json& j) { j["database"].erase("runAsGroup"); }, "InvalidSpec",
                    "spec.database.runAsGroup"},
        InvalidCase{"BothDataVolumeAndWorkloadRef",
                    [](json& j) { j["database"]["workloadRef"] = {{"kind", "StatefulSet"}, {"name", "db"}}; },
                    "InvalidSpec", "spec.database.workloadRef"},
        InvalidCase{"WorkloadRefOfAnotherKind",
                    [](json& j) {
                      j["database"].erase("dataVolume");
                      j["database"]["workloadRef"] = {{"kind", "DaemonSet"}, {"name", "db"}};
                    },
                    "InvalidSpec", "spec.database.workloadRef.kind"},
        InvalidCase{"WorkloadRefWithoutName",
                    [](json& j) {
                      j["database"].erase("dataVolume");
                      j["database"]["workloadRef"] = {{"kind", "Deployment"}};
                    },
                    "InvalidSpec", "spec.database.workloadRef.name"},
        InvalidCase{"WorkloadRefWithUserButNoGroup",
                    [](json& j) {
                      j["database"].erase("dataVolume");
                      j["database"].erase("runAsGroup");
                      j["database"]["workloadRef"] = {{"kind", "StatefulSet"}, {"name", "db"}};
                    },
                    "InvalidSpec", "spec.database.runAsGroup"},
        InvalidCase{"ContainerWithoutWorkloadRef", [](json& j) { j["database"]["container"] = "postgres"; },
                    "InvalidSpec", "spec.database.container"},
        InvalidCase{"NegativeWalWait", [](json& j) { j["database"]["walWaitSeconds"] = -1; }, "InvalidSpec",
                    "spec.database.walWaitSeconds"},
        InvalidCase{"UnknownDeltaOrigin", [](json& j) { j["schedule"] = {{"deltaOrigin", "EARLIEST"}}; }, "InvalidSpec",
                    "spec.schedule.deltaOrigin"}),
    [](const auto& info) { return info.param.name; });

TEST(BackupPolicyValidation, AWorkloadRefAloneIsValidAndNeedsNoRunAsUser) {
  json j = minimal_spec();
  j["database"].erase("dataVolume");
  j["database"].erase("runAsUser");
  j["database"].erase("runAsGroup");
  j["database"]["workloadRef"] = {{"kind", "StatefulSet"}, {"name", "supabase-db"}};
  j["database"]["container"] = "postgres";
  const auto spec = parsed(j);
  EXPECT_TRUE(spec.database.has_workload_ref);
  EXPECT_FALSE(spec.database.has_data_volume);
  EXPECT_EQ(spec.database.workload_ref.kind, "StatefulSet");
  EXPECT_EQ(spec.database.workload_ref.name, "supabase-db");
  EXPECT_EQ(spec.database.container, "postgres");
  const auto problems = validate(spec, "supabase");
  EXPECT_TRUE(problems.empty()) << problems[0].message;
}

TEST(BackupPolicyValidation, ReadsWhereVerificationsMayGoAndWhichCheckImagesMayRun) {
  json j = minimal_spec();
  j["verification"]["allowedTargetNamespaces"] = {"drills", "scratch"};
  j["verification"]["checkImages"] = {"images.example/checks:1.2"};
  const auto s = parsed(j);
  EXPECT_EQ(s.verification.allowed_target_namespaces, (std::vector<std::string>{"drills", "scratch"}));
  EXPECT_EQ(s.verification.check_images, std::vector<std::string>{"images.example/checks:1.2"});
  EXPECT_TRUE(validate(s, "supabase", "backup-operator-system").empty());
  // Unset, neither allows anything beyond the policy's own target.
  EXPECT_TRUE(parsed().verification.allowed_target_namespaces.empty());
  EXPECT_TRUE(parsed().verification.check_images.empty());
}

TEST(BackupPolicyValidation, StagingMayVerifyInItsOwnNamespace) {
  json j = minimal_spec();
  j["environment"] = "staging";
  j["verification"]["targetNamespace"] = "supabase";
  EXPECT_TRUE(validate(parsed(j), "supabase").empty());
}

SecretData good_secrets() {
  return {{"walg-storage",
           {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "id"}, {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY-SECRET"},
            {"WALG_AWS_ENDPOINT", "https://s3.local"}, {"WALG_COMPRESSION_METHOD", "brotli"}}},
          {"walg-encryption", {{"WALG_LIBSODIUM_KEY", "CANARY-KEY"}}},
          {"supabase-db", {{"username", "postgres"}, {"password", "CANARY-PW"}}}};
}

TEST(CheckSecrets, AllPresentResolves) { EXPECT_TRUE(check_secrets(parsed(), good_secrets()).empty()); }

TEST(CheckSecrets, ReportsEachProblemWithoutValues) {
  auto secrets = good_secrets();
  secrets["walg-storage"].erase("WALG_S3_PREFIX");
  secrets["walg-storage"]["WALG_AWS_ENDPOINT"] = "http://s3.local";
  secrets.erase("supabase-db");
  const auto problems = check_secrets(parsed(), secrets);
  std::set<std::string> reasons;
  for (const auto& p : problems) {
    reasons.insert(p.reason);
    EXPECT_EQ(p.message.find("CANARY"), std::string::npos) << p.message;
    EXPECT_EQ(p.message.find("http://s3.local"), std::string::npos) << p.message;
  }
  EXPECT_EQ(reasons, (std::set<std::string>{"MissingSecretKey", "InsecureEndpoint", "SecretNotFound"}));
}

TEST(JobName, IsDeterministicShortAndUnique) {
  const auto slot = at("2026-11-24T10:00:00Z");
  EXPECT_EQ(job_name("db", Action::kBackup, slot), "db-delta-202611241000");
  EXPECT_EQ(job_name("db", Action::kFullBackup, slot), "db-full-202611241000");
  EXPECT_EQ(job_name("db", Action::kBackup, slot), job_name("db", Action::kBackup, slot));
  const std::string long_a(60, 'a');
  const std::string long_b = std::string(59, 'a') + "b";
  const auto a = job_name(long_a, Action::kOffsiteCopy, slot), b = job_name(long_b, Action::kOffsiteCopy, slot);
  EXPECT_LE(a.size(), 63u);
  EXPECT_NE(a, b);
}

struct SlotCase {
  const char* name;
  const char* expr;
  const char* since;
  const char* now;
  long deadline_s;
  const char* run;  // "" = none
  int missed;
  const char* next;
};

class PlanSlots : public ::testing::TestWithParam<SlotCase> {};

TEST_P(PlanSlots, RunsOnlyTheLatestSlotInsideTheDeadline) {
  const auto& c = GetParam();
  auto cron = bo::schedule::Cron::parse(c.expr);
  ASSERT_TRUE(cron);
  const auto plan = plan_slots(*cron, date::locate_zone("UTC"), at(c.since), at(c.now), std::chrono::seconds(c.deadline_s));
  EXPECT_EQ(plan.run ? bo::format_rfc3339(*plan.run) : "", c.run);
  EXPECT_EQ(plan.missed, c.missed);
  EXPECT_EQ(plan.next ? bo::format_rfc3339(*plan.next) : "", c.next);
}

INSTANTIATE_TEST_SUITE_P(
    Table, PlanSlots,
    ::testing::Values(
        SlotCase{"NothingDue", "0 * * * *", "2026-01-01T10:00:00Z", "2026-01-01T10:30:00Z", 900, "", 0,
                 "2026-01-01T11:00:00Z"},
        SlotCase{"DueNow", "0 * * * *", "2026-01-01T10:00:00Z", "2026-01-01T11:00:05Z", 900, "2026-01-01T11:00:00Z", 0,
                 "2026-01-01T12:00:00Z"},
        SlotCase{"DowntimeRunsOnlyTheLatest", "0 * * * *", "2026-01-01T05:00:00Z", "2026-01-01T10:10:00Z", 900,
                 "2026-01-01T10:00:00Z", 4, "2026-01-01T11:00:00Z"},
        SlotCase{"LatestOutsideDeadline", "0 * * * *", "2026-01-01T05:00:00Z", "2026-01-01T10:20:00Z", 900, "", 5,
                 "2026-01-01T11:00:00Z"},
        SlotCase{"YearOfDowntimeIsBounded", "* * * * *", "2025-01-01T00:00:00Z", "2026-01-01T00:00:30Z", 60,
                 "2026-01-01T00:00:00Z", 1000, "2026-01-01T00:01:00Z"}),
    [](const auto& info) { return info.param.name; });

TEST(BuildJob, SecretsOnlyByReferenceAndRestrictedPod) {
  JobInputs in;
  in.policy = {{"apiVersion", kApiVersion}, {"kind", "BackupPolicy"},
               {"metadata", {{"name", "db"}, {"namespace", "supabase"}, {"uid", "uid-1"}}}};
  in.spec = parsed();
  in.action = Action::kBackup;
  in.slot = at("2026-11-24T10:00:00Z");
  const auto secrets = good_secrets();
  for (const auto& [k, v] : secrets.at("walg-storage")) in.storage_keys.push_back(k);
  const json job = build_job(in);
  const std::string text = job.dump();
  EXPECT_EQ(text.find("CANARY"), std::string::npos);
  EXPECT_EQ(job["metadata"]["name"], "db-delta-202611241000");
  EXPECT_EQ(job["metadata"]["labels"][kLabelService], "supabase-walg-backup");
  EXPECT_EQ(job["metadata"]["labels"][kLabelAction], "backup");
  EXPECT_EQ(job["metadata"]["labels"]["app.kubernetes.io/managed-by"], "backup-operator");
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["uid"], "uid-1");
  EXPECT_TRUE(job["metadata"]["ownerReferences"][0]["controller"]);
  const auto& pod = job["spec"]["template"]["spec"];
  const auto& c = pod["containers"][0];
  std::set<std::string> walg;
  for (const auto& e : c["env"]) {
    const std::string n = e["name"];
    if (n == "WALG_DELTA_MAX_STEPS" || n == "WALG_DELTA_ORIGIN") {
      // Settings the operator derives from the schedules, not secrets.
      EXPECT_TRUE(e.contains("value")) << n;
      continue;
    }
    if (n.starts_with("WALG_")) {
      walg.insert(n);
      EXPECT_TRUE(e.contains("valueFrom")) << n << " must come from a Secret";
      EXPECT_FALSE(e.contains("value")) << n;
    }
    if (n == "PGPASSWORD") {
      EXPECT_EQ(e["valueFrom"]["secretKeyRef"]["name"], "supabase-db");
    }
  }
  EXPECT_EQ(walg, (std::set<std::string>{"WALG_AWS_ACCESS_KEY_ID", "WALG_AWS_ENDPOINT", "WALG_AWS_SECRET_ACCESS_KEY",
                                         "WALG_COMPRESSION_METHOD", "WALG_LIBSODIUM_KEY", "WALG_S3_PREFIX"}));
  EXPECT_EQ(pod["restartPolicy"], "Never");
  EXPECT_TRUE(pod["securityContext"]["runAsNonRoot"]);
  EXPECT_EQ(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
  EXPECT_FALSE(c["securityContext"]["allowPrivilegeEscalation"]);
  EXPECT_EQ(c["securityContext"]["capabilities"]["drop"], json({"ALL"}));
  EXPECT_TRUE(c["securityContext"]["readOnlyRootFilesystem"]);
  // Admitted in a namespace enforcing the restricted Pod Security profile, as
  // pod-security-admission's checks judge it (kube-local runs the same checks).
  EXPECT_EQ(kl::pod_security_violations("restricted", job["spec"]["template"].value("metadata", json::object()), pod), "");
  EXPECT_EQ(job["spec"]["backoffLimit"], 2);
  EXPECT_EQ(build_job(in), job);  // pure: same inputs, same manifest
}

}  // namespace
