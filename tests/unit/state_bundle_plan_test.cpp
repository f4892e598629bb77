// spec.paasState: parsing and validation, the state-bundle Jobs (one per
// context and slot, Secrets by reference, the state claim read-only), and
// the bundles they report recorded in status.
#include <gtest/gtest.h>

#include "api/backup_policy.h"
#include "common/timefmt.h"
#include "reconcile/backup_policy_plan.h"
#include "reconcile/conditions.h"
#include "plan_fixtures.h"

using namespace bo::reconcile;
using nlohmann::json;
using State = ObservedJob::State;

namespace {

bo::SysTime at(const char* s) { return *bo::parse_rfc3339(s); }

json policy(json paas = {{"claimName", "paas-state"}, {"subPath", "state"}, {"contexts", {"shop", "blog"}}}) {
  json spec = {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "db"}}},
               {"storage", {{"secretRef", {{"name", "walg-storage"}}}, {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
               {"schedule", {{"backup", "0 */6 * * *"}, {"fullBackup", "0 2 * * *"}}},
               {"verification", {{"enabled", false}}},
               {"paasState", paas}};
  return plan_fixtures::policy_object(std::move(spec));
}

bo::api::SecretData secrets() {
  return {{"walg-storage", plan_fixtures::storage_secret()},
          {"walg-encryption", {{"WALG_LIBSODIUM_KEY", "CANARY"}, {"BUNDLE_KEY", "CANARY"}}}};
}

PlanInputs inputs(json p, const char* now, std::vector<ObservedJob> jobs = {}) {
  return plan_fixtures::plan_inputs(std::move(p), secrets(), now, std::move(jobs));
}

std::vector<json> state_jobs(const PolicyPlan& p) {
  std::vector<json> out;
  for (const auto& j : p.create)
    if (j["metadata"]["labels"]["backup.si.dev/action"] == "state-bundle") out.push_back(j);
  return out;
}

const json* cond(const PolicyPlan& p, const std::string& type) { return find_condition(p.status["conditions"], type); }

}  // namespace

TEST(PaasStateSpec, ParsesWithDefaultsAndValidatesEachField) {
  auto spec = bo::api::parse_backup_policy_spec(policy()["spec"]);
  ASSERT_TRUE(spec);
  EXPECT_TRUE(spec->paas_state.enabled);
  EXPECT_EQ(spec->paas_state.schedule, "15 * * * *");
  EXPECT_TRUE(spec->paas_state.include_releases);
  EXPECT_FALSE(spec->paas_state.forensic_cache);
  EXPECT_EQ(spec->paas_state.key_secret, "walg-encryption") << "defaults to the storage encryption Secret";
  EXPECT_EQ(spec->paas_state.key_key, "BUNDLE_KEY");
  EXPECT_TRUE(bo::api::validate(*spec, "supabase").empty());

  struct Case {
    json paas;
    std::string field;
  };
  const std::vector<Case> cases = {
      {{{"contexts", {"shop"}}}, "spec.paasState.claimName"},
      {{{"claimName", "c"}, {"contexts", json::array()}}, "spec.paasState.contexts"},
      {{{"claimName", "c"}, {"contexts", {"../x"}}}, "spec.paasState.contexts[0]"},
      {{{"claimName", "c"}, {"contexts", {"shop", "*"}}}, "spec.paasState.contexts[1]"},
      {{{"claimName", "c"}, {"contexts", {"shop"}}, {"schedule", "every hour"}}, "spec.paasState.schedule"},
      {{{"claimName", "c"}, {"contexts", {"shop"}}, {"subPath", "../etc"}}, "spec.paasState.subPath"},
      {{{"claimName", "c"}, {"contexts", {"shop"}}, {"destination", {{"claimName", "d"}, {"path", "/abs"}}}},
       "spec.paasState.destination.path"},
  };
  for (const auto& c : cases) {
    auto s = bo::api::parse_backup_policy_spec(policy(c.paas)["spec"]);
    ASSERT_TRUE(s) << c.field;
    const auto problems = bo::api::validate(*s, "supabase");
    ASSERT_FALSE(problems.empty()) << c.field;
    EXPECT_EQ(problems[0].field, c.field);
    EXPECT_EQ(problems[0].message.rfind(c.field, 0), 0u) << problems[0].message;
  }
  auto wrong_type = bo::api::parse_backup_policy_spec(policy({{"claimName", "c"}, {"contexts", "shop"}})["spec"]);
  ASSERT_FALSE(wrong_type);
  EXPECT_EQ(wrong_type.error().field, "spec.paasState.contexts");
}

TEST(PaasStateSpec, AMissingKeyIsReportedByName) {
  auto spec = *bo::api::parse_backup_policy_spec(
      policy({{"claimName", "c"}, {"contexts", {"shop"}}, {"keySecretRef", {{"name", "bundle-key"}, {"key", "K"}}}})["spec"]);
  auto problems = bo::api::check_secrets(spec, secrets());
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].reason, "SecretNotFound");
  EXPECT_EQ(problems[0].field, "spec.paasState.keySecretRef.name");
  EXPECT_EQ(bo::api::referenced_secrets(policy({{"keySecretRef", {{"name", "bundle-key"}}}})["spec"]).back(), "bundle-key");
}

TEST(PlanStateBundles, OneJobPerContextPerSlotWithSecretsByReference) {
  auto p = plan_backup_policy(inputs(policy(), "2026-11-24T10:15:05Z"));
  const auto jobs = state_jobs(p);
  ASSERT_EQ(jobs.size(), 2u);
  EXPECT_EQ(jobs[0]["metadata"]["name"], "db-state-shop-202611241015");
  EXPECT_EQ(jobs[1]["metadata"]["name"], "db-state-blog-202611241015");
  const json& job = jobs[0];
  EXPECT_EQ(job["metadata"]["labels"]["backup.si.dev/context"], "shop");
  EXPECT_EQ(job["metadata"]["labels"]["backup.si.dev/service"], "supabase-walg-backup");
  EXPECT_EQ(job["metadata"]["ownerReferences"][0]["uid"], "u1");
  const json& pod = job["spec"]["template"]["spec"];
  const json& c = pod["containers"][0];
  EXPECT_EQ(c["name"], "state-bundle");
  EXPECT_EQ(c["args"], json({"bundle", "create", "--state-root", "/state", "--context", "shop", "--include-releases", "true",
                             "--store", "s3", "--key-env", "BUNDLE_KEY", "--tag", "20261124T101500Z", "--work-dir", "/tmp",
                             "--termination-log"}));
  std::set<std::string> env_names;
  for (const auto& e : c["env"]) {
    env_names.insert(e["name"]);
    if (e["name"].get<std::string>().starts_with("WALG_") || e["name"] == "BUNDLE_KEY") {
      EXPECT_TRUE(e.contains("valueFrom") && !e.contains("value")) << e;
    }
  }
  EXPECT_TRUE(env_names.count("BUNDLE_KEY"));
  EXPECT_TRUE(env_names.count("WALG_AWS_SECRET_ACCESS_KEY"));
  EXPECT_FALSE(env_names.count("PGPASSWORD")) << "a state bundle never needs the database";
  EXPECT_EQ(job.dump().find("CANARY"), std::string::npos);
  // The state claim is mounted read-only at the sub-path.
  bool mounted = false;
  for (const auto& m : c["volumeMounts"])
    if (m["name"] == "state") {
      mounted = true;
      EXPECT_EQ(m["mountPath"], "/state");
      EXPECT_EQ(m["subPath"], "state");
      EXPECT_EQ(m["readOnly"], true);
    }
  EXPECT_TRUE(mounted);
  EXPECT_EQ(pod["volumes"][1]["persistentVolumeClaim"]["claimName"], "paas-state");
  EXPECT_EQ(c["securityContext"]["readOnlyRootFilesystem"], true);
  EXPECT_EQ(p.status["schedules"]["state-bundle"]["lastScheduleTime"], "2026-11-24T10:15:00Z");

  // Idempotent: observed Jobs (or a replay before the status write) make nothing new.
  std::vector<ObservedJob> seen;
  for (const auto& j : jobs) {
    ObservedJob o;
    o.name = j["metadata"]["name"];
    o.action = "state-bundle";
    o.context = j["metadata"]["labels"]["backup.si.dev/context"];
    o.slot = at("2026-11-24T10:15:00Z");
    seen.push_back(o);
  }
  EXPECT_TRUE(state_jobs(plan_backup_policy(inputs(policy(), "2026-11-24T10:15:30Z", seen))).empty());
  // The next slot while the previous Job of a context still runs: skipped for that context only.
  json stored = policy();
  stored["status"] = p.status;
  seen.pop_back();  // blog's finished
  auto next = plan_backup_policy(inputs(stored, "2026-11-24T11:15:02Z", seen));
  const auto next_jobs = state_jobs(next);
  ASSERT_EQ(next_jobs.size(), 1u);
  EXPECT_EQ(next_jobs[0]["metadata"]["name"], "db-state-blog-202611241115");
}

TEST(PlanStateBundles, AllContextsAndADestinationClaim) {
  auto p = plan_backup_policy(inputs(
      policy({{"claimName", "paas-state"}, {"contexts", {"*"}}, {"forensicCache", true}, {"includeReleases", false},
              {"destination", {{"claimName", "bundles"}, {"path", "prod/state"}}}}),
      "2026-11-24T10:15:05Z"));
  const auto jobs = state_jobs(p);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0]["metadata"]["name"], "db-state-202611241015");
  EXPECT_EQ(jobs[0]["metadata"]["labels"]["backup.si.dev/context"], "all");
  const json& c = jobs[0]["spec"]["template"]["spec"]["containers"][0];
  EXPECT_EQ(c["args"], json({"bundle", "create", "--state-root", "/state", "--all-contexts", "--include-releases", "false",
                             "--forensic-cache", "--store", "dir:/bundles/prod/state", "--key-env", "BUNDLE_KEY", "--tag",
                             "20261124T101500Z", "--work-dir", "/tmp", "--termination-log"}));
  for (const auto& e : c["env"]) EXPECT_FALSE(e["name"].get<std::string>().starts_with("WALG_")) << "no storage keys needed";
  EXPECT_EQ(jobs[0]["spec"]["template"]["spec"]["volumes"][2]["persistentVolumeClaim"]["claimName"], "bundles");
}

TEST(PlanStateBundles, ReportedBundlesAreRecordedOnceWithAnEventAndTheCondition) {
  ObservedJob done;
  done.name = "db-state-shop-202611241015";
  done.action = "state-bundle";
  done.context = "shop";
  done.slot = at("2026-11-24T10:15:00Z");
  done.state = State::kSucceeded;
  done.finished = at("2026-11-24T10:15:40Z");
  done.termination_message = R"({"bundles":[{"context":"shop","id":"shop-20261124T101500Z","sha256":")" +
                              std::string(64, 'c') + R"(","files":7,"size":2048}]})";
  auto p = plan_backup_policy(inputs(policy(), "2026-11-24T10:16:00Z", {done}));
  const json& bundles = p.status["paasState"]["bundles"];
  ASSERT_EQ(bundles.size(), 1u);
  EXPECT_EQ(bundles[0]["context"], "shop");
  EXPECT_EQ(bundles[0]["id"], "shop-20261124T101500Z");
  EXPECT_EQ(bundles[0]["files"], 7);
  EXPECT_EQ(bundles[0]["sizeBytes"], 2048);
  EXPECT_EQ(bundles[0]["completionTime"], "2026-11-24T10:15:40Z");
  EXPECT_EQ((*cond(p, "StateBundleHealthy"))["status"], "True");
  EXPECT_TRUE(std::any_of(p.events.begin(), p.events.end(), [](const EventSpec& e) { return e.reason == "StateBundled"; }));
  // Recorded once.
  json stored = policy();
  stored["status"] = p.status;
  auto again = plan_backup_policy(inputs(stored, "2026-11-24T10:17:00Z", {done}));
  EXPECT_EQ(again.status["paasState"]["bundles"].size(), 1u);
  EXPECT_FALSE(std::any_of(again.events.begin(), again.events.end(), [](const EventSpec& e) { return e.reason == "StateBundled"; }));

  // A refused bundle: the Job's error becomes the condition message.
  ObservedJob refused = done;
  refused.name = "db-state-shop-202611241115";
  refused.state = State::kFailed;
  refused.finished = at("2026-11-24T11:15:40Z");
  refused.termination_message =
      R"J({"error":"shop: refused (1 problem): releases/x.env: an environment file is a plaintext secret export (POLICY §2)"})J";
  auto failed = plan_backup_policy(inputs(stored, "2026-11-24T11:16:00Z", {done, refused}));
  const json* c = cond(failed, "StateBundleHealthy");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ((*c)["status"], "False");
  EXPECT_EQ((*c)["reason"], "BundleFailed");
  EXPECT_NE((*c)["message"].get<std::string>().find("releases/x.env"), std::string::npos);
}

TEST(PlanStateBundles, OnlyTheNewest24OfEachContextAreKept) {
  json stored = policy();
  json bundles = json::array();
  for (int i = 0; i < 30; ++i)
    bundles.push_back({{"context", "shop"}, {"id", "shop-" + std::to_string(100 + i)}, {"sha256", "x"},
                       {"completionTime", "2026-11-23T" + std::string(i < 10 ? "0" : "") + std::to_string(i % 24) + ":00:00Z"}});
  bundles.push_back({{"context", "blog"}, {"id", "blog-1"}, {"sha256", "y"}, {"completionTime", "2026-11-01T00:00:00Z"}});
  stored["status"]["paasState"]["bundles"] = bundles;
  ObservedJob done;
  done.name = "db-state-shop-202611241015";
  done.action = "state-bundle";
  done.state = State::kSucceeded;
  done.finished = at("2026-11-24T10:15:40Z");
  done.termination_message = R"({"bundles":[{"context":"shop","id":"shop-new","sha256":"z","files":1,"size":1}]})";
  auto p = plan_backup_policy(inputs(stored, "2026-11-24T10:16:00Z", {done}));
  const json& kept = p.status["paasState"]["bundles"];
  size_t shop = 0, blog = 0;
  for (const auto& b : kept) (b["context"] == "shop" ? shop : blog)++;
  EXPECT_EQ(shop, 24u);
  EXPECT_EQ(blog, 1u);
  EXPECT_EQ(kept[0]["id"], "shop-new");
}
