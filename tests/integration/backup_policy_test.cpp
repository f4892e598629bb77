// The BackupPolicy controller in-process against kube-local, with a fake
// clock so schedule slots arrive on demand.
#include <gtest/gtest.h>

#include <date/tz.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <sstream>

#include "common/clock.h"
#include "common/encoding.h"
#include "common/timefmt.h"
#include "kube/names.h"
#include "chart_operator.h"
#include "harness.h"
#include "in_process_operator.h"
#include "support/pod_rules.h"
#include "reconcile/backup_policy_controller.h"
#include "reconcile/conditions.h"
#include "reconcile/restore_controller.h"
#include "reconcile/retention.h"
#include "webhook/server.h"

#include <prometheus/text_serializer.h>

using namespace bo::kube;
using bo::reconcile::kBackupPolicies;
using nlohmann::json;
using testing_support::eventually;

namespace {

std::string rules_file() {
  const auto dir = testing_support::make_temp_dir("rules");
  const json rules = testing_support::healthy_pod_rules(
      testing_support::backup_result("2026-11-24T02:00:01Z", "2026-11-24T02:04:00Z"));
  return testing_support::write_file(dir / "rules.json", rules.dump());
}

class BackupPolicyIT : public testing_support::InProcessOperatorIT<BackupPolicyIT> {
 protected:
  // The controllers run with the chart's service account under its RBAC
  // (chart_operator.h); the test itself acts as an administrator.
  static void SetUpTestSuite() { start_server({"--authorize", "--pod-rules", rules_file()}); }
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(set_up_namespace("bp"));
    // The policies' data volume: checked before any backup Job.
    ASSERT_TRUE(client_->create(resources::kPersistentVolumeClaims, ns_, {{"metadata", {{"name", "supabase-db-data"}}}, {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
  }
  void TearDown() override {
    if (restores_) restores_->stop();
    InProcessOperatorIT::TearDown();
  }

  void create_secrets(bool with_encryption = true) {
    ASSERT_NO_FATAL_FAILURE(create_storage_secret("CANARY-9d1e"));
    ASSERT_TRUE(client_->create(resources::kSecrets, ns_,
                                {{"metadata", {{"name", "supabase-db"}}},
                                 {"stringData", {{"username", "postgres"}, {"password", "CANARY-9d1e"}}}}));
    if (with_encryption) create_encryption_secret();
  }
  void create_encryption_secret() {
    ASSERT_TRUE(client_->create(resources::kSecrets, ns_,
                                {{"metadata", {{"name", "walg-encryption"}}},
                                 {"stringData", {{"WALG_LIBSODIUM_KEY", "CANARY-9d1e"}}}}));
  }
  json policy(json patch = json::object()) {
    json spec = {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "db"}, {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
                 {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                              {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                 {"verification", {{"targetNamespace", ns_ + "-verify"}, {"image", "postgres:15"},
                                   {"storageSecretRef", {{"name", "walg-read-only"}}}}}};
    spec.merge_patch(patch);
    return {{"apiVersion", "backup.si.dev/v1alpha1"}, {"kind", "BackupPolicy"},
            {"metadata", {{"name", "db"}}}, {"spec", spec}};
  }
  void start_controller(bool with_restores = false, int workers = 2) {
    caches_ = std::make_unique<bo::reconcile::Caches>(*op_client_, "");
    controller_ = std::make_unique<bo::reconcile::BackupPolicyController>(
        *op_client_, *caches_, *clock_, *recorder_, metrics_, [&] {
          bo::reconcile::BackupPolicyControllerOptions o{ns_, workers, ""};
          o.operator_namespace = "backup-operator-system";
          o.addon_retry = std::chrono::milliseconds(500);
          return o;
        }());
    if (with_restores) {
      bo::reconcile::RestoreControllerOptions o;
      o.operator_namespace = "backup-operator-system";
      restores_ = std::make_unique<bo::reconcile::RestoreController>(*op_client_, *caches_, *clock_, *recorder_, metrics_, o);
    }
    caches_->start();
    controller_->start();
    if (restores_) restores_->start();
    ASSERT_TRUE(eventually([&] { return controller_->synced(); }));
  }
  size_t job_count() {
    auto l = client_->list(resources::kJobs, ns_, {"backup.si.dev/policy=db", "", 0, "", ""});
    return l ? (*l)["items"].size() : 0;
  }

  std::unique_ptr<bo::reconcile::RestoreController> restores_;
};

TEST_F(BackupPolicyIT, CrdAppliesTheDocumentedDefaults) {
  auto created = client_->create(kBackupPolicies, ns_, policy());
  ASSERT_TRUE(created) << created.error().str();
  const json& spec = (*created)["spec"];
  EXPECT_EQ(spec["schedule"]["backup"], "0 * * * *");
  EXPECT_EQ(spec["schedule"]["fullBackup"], "0 2 * * *");
  EXPECT_EQ(spec["retention"], json({{"daily", 7}, {"weekly", 4}, {"monthly", 3}}));
  EXPECT_EQ(spec["environment"], "production");
  EXPECT_EQ(spec["jobTemplate"]["backoffLimit"], 2);
  auto bad = client_->create(kBackupPolicies, ns_, policy({{"environment", "prod"}}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 422);
  EXPECT_NE(bad.error().message.find("spec.environment"), std::string::npos);
}

TEST_F(BackupPolicyIT, DueSlotRunsOneJobWhoseResultFillsTheCatalog) {
  create_secrets();
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy()));
  start_controller();
  ASSERT_TRUE(eventually([&] { return condition("Ready").value("status", "") == "True"; })) << condition("Ready");
  ASSERT_TRUE(eventually([&] { return job_count() == 1; }));
  auto job = client_->list(resources::kJobs, ns_, {"backup.si.dev/policy=db", "", 0, "", ""});
  const json& j = (*job)["items"][0];
  EXPECT_EQ(j["metadata"]["labels"]["backup.si.dev/service"], "supabase-walg-backup");
  EXPECT_EQ(j.dump().find("CANARY"), std::string::npos);
  ASSERT_TRUE(eventually([&] { return condition("BackupHealthy").value("status", "") == "True"; }))
      << condition("BackupHealthy");
  auto p = client_->get(kBackupPolicies, ns_, "db");
  ASSERT_TRUE(p);
  const json& st = (*p)["status"];
  ASSERT_EQ(st["backups"].size(), 1u);
  EXPECT_EQ(st["backups"][0]["id"], "base_000000010000000000000009");
  EXPECT_EQ(st["lastSuccessfulBackup"]["checksum"], "sha256:" + std::string(64, 'b'));
  EXPECT_EQ(st.dump().find("CANARY"), std::string::npos);
  // Quiet when nothing changes: once everything has settled (Databasus
  // becoming ready is the last change), another reconcile writes nothing.
  ASSERT_TRUE(eventually([&] { return condition("DatabasusReady").value("status", "") == "True"; }));
  // DatabasusPrivate can still flip from a transient Exposed ("NetworkPolicy ... was missing"): a
  // reconcile right after creating the NetworkPolicy may not see it in its cache yet.
  ASSERT_TRUE(eventually([&] { return condition("DatabasusPrivate").value("status", "") == "True"; }));
  const json settled = *client_->get(kBackupPolicies, ns_, "db");
  const std::string rv = settled["metadata"]["resourceVersion"];
  controller_->reconcile(ns_ + "/db");
  const json after = *client_->get(kBackupPolicies, ns_, "db");
  EXPECT_EQ(after["metadata"]["resourceVersion"], rv) << "before: " << settled.dump() << "\nafter: " << after.dump();
  // Events say what happened.
  recorder_->flush();
  auto evs = client_->list(resources::kEvents, ns_, {"", "involvedObject.name=db", 0, "", ""});
  ASSERT_TRUE(evs);
  std::set<std::string> reasons;
  for (const auto& e : (*evs)["items"]) reasons.insert(e.value("reason", ""));
  EXPECT_TRUE(reasons.count("JobCreated"));
  EXPECT_TRUE(reasons.count("BackupSucceeded"));
  EXPECT_EQ((*evs).dump().find("CANARY"), std::string::npos);
}

// Status first, then Events and metrics (issue 18 item 2): a status write that
// loses to another writer (409) announces nothing; the recomputed write that
// lands announces the finished run once.
TEST_F(BackupPolicyIT, AConflictOnTheStatusWriteNeverCountsOrAnnouncesARunTwice) {
  create_secrets();
  std::atomic<int> refused{0};
  const std::string conflict =
      json{{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"}, {"reason", "Conflict"}, {"code", 409},
           {"message", "Operation cannot be fulfilled on backuppolicies.backup.si.dev \"db\": the object has been "
                       "modified; please apply your changes to the latest version and try again"}}
          .dump();
  op_transport_->set_hook([&](const HttpRequest& r) -> std::optional<HttpResponse> {
    // The writes that record the finished backup, twice: each recomputes and retries.
    if (r.method == "PUT" && r.path.ends_with("/backuppolicies/db/status") &&
        r.body.find("base_000000010000000000000009") != std::string::npos && refused.fetch_add(1) < 2)
      return HttpResponse{409, {{"content-type", "application/json"}}, conflict};
    return std::nullopt;
  });
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy()));
  start_controller();
  ASSERT_TRUE(eventually([&] { return condition("BackupHealthy").value("status", "") == "True"; }))
      << condition("BackupHealthy");
  EXPECT_GE(refused.load(), 3) << "two refused writes, then the one that landed";
  // Every succeeded run of this policy, whatever its action.
  auto succeeded_runs = [&] {
    prometheus::TextSerializer ser;
    const std::string text = ser.Serialize(metrics_.registry()->Collect());
    double runs = 0;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with("backup_operator_backup_runs_total{") &&
          line.find("namespace=\"" + ns_ + "\"") != std::string::npos && line.find("result=\"success\"") != std::string::npos)
        runs += std::stod(line.substr(line.rfind(' ') + 1));
    return runs;
  };
  // The counter moves after the status write that landed (status first), so
  // wait for it, then stop the workers (a running reconcile finishes) and
  // count: one in all.
  ASSERT_TRUE(eventually([&] { return succeeded_runs() >= 1; }));
  controller_->stop();
  EXPECT_EQ(succeeded_runs(), 1);
  recorder_->flush();
  auto evs = client_->list(resources::kEvents, ns_, {"", "involvedObject.name=db,reason=BackupSucceeded", 0, "", ""});
  ASSERT_TRUE(evs);
  ASSERT_EQ((*evs)["items"].size(), 1u) << evs->dump();
  EXPECT_EQ((*evs)["items"][0].value("count", 0), 1) << "one Event, recorded once";
}

// backup_operator_schedule_skew_seconds (issue 19 item 4): observed once per
// Job the controller created, with the operator's clock (the fake clock stands
// 5 s past the hourly slot, so exactly 5), never for a create answered 409,
// and not again when the policy is reconciled again.
TEST_F(BackupPolicyIT, ScheduleSkewIsObservedOncePerCreatedJobOnTheOperatorsClock) {
  create_secrets();
  std::atomic<int> refused{0};
  const std::string exists =
      json{{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"}, {"reason", "AlreadyExists"}, {"code", 409},
           {"message", "jobs.batch already exists"}}
          .dump();
  op_transport_->set_hook([&](const HttpRequest& r) -> std::optional<HttpResponse> {
    // The first Job create is answered 409 and creates nothing: the controller
    // must not count it, and creates the Job again on a later reconcile.
    if (r.method == "POST" && r.path.substr(0, r.path.find('?')).ends_with("/namespaces/" + ns_ + "/jobs") &&
        refused.fetch_add(1) == 0)
      return HttpResponse{409, {{"content-type", "application/json"}}, exists};
    return std::nullopt;
  });
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy()));
  start_controller();
  ASSERT_TRUE(eventually([&] { return job_count() == 1; })) << condition("Ready");
  EXPECT_GE(refused.load(), 2) << "one refused create, then the one that landed";
  auto sum_of = [&](const std::string& series) {
    prometheus::TextSerializer ser;
    const std::string text = ser.Serialize(metrics_.registry()->Collect());
    double total = 0;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with(series + "{")) total += std::stod(line.substr(line.rfind(' ') + 1));
    return total;
  };
  ASSERT_TRUE(eventually([&] { return sum_of("backup_operator_schedule_skew_seconds_count") >= 1; }));
  // Everything the created Job leads to (its success, the status it writes) has happened.
  ASSERT_TRUE(eventually([&] { return condition("BackupHealthy").value("status", "") == "True"; }));
  controller_->reconcile(ns_ + "/db");
  EXPECT_EQ(job_count(), 1u);
  EXPECT_EQ(sum_of("backup_operator_schedule_skew_seconds_count"), 1);
  EXPECT_EQ(sum_of("backup_operator_schedule_skew_seconds_sum"), 5);
  prometheus::TextSerializer ser;
  const std::string text = ser.Serialize(metrics_.registry()->Collect());
  EXPECT_NE(text.find("le=\"5\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("le=\"2.5\"} 0"), std::string::npos) << text;
  EXPECT_EQ(text.find("backup_operator_schedule_skew_seconds_count{action=\"catalog"), std::string::npos) << text;
}

// backup_operator_policy_condition has a series per condition type, except
// Reconciling and Stalled: they restate Ready for kstatus and are False when
// all is well, so a "not True" panel or alert would list every healthy policy.
TEST_F(BackupPolicyIT, ReconcilingAndStalledHaveNoConditionSeries) {
  create_secrets();
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy()));
  start_controller();
  ASSERT_TRUE(eventually([&] { return condition("Stalled").value("status", "") == "False"; })) << condition("Stalled");
  auto series = [&](const std::string& type) {
    prometheus::TextSerializer ser;
    const std::string text = ser.Serialize(metrics_.registry()->Collect());
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with("backup_operator_policy_condition{") && line.find("type=\"" + type + "\"") != std::string::npos &&
          line.find("namespace=\"" + ns_ + "\"") != std::string::npos)
        return true;
    return false;
  };
  ASSERT_TRUE(eventually([&] { return series("Ready"); }));
  EXPECT_FALSE(series("Reconciling"));
  EXPECT_FALSE(series("Stalled"));
}

// A policy name may be 253 characters, a label value only 63 (issue 18 item 5):
// the backup.si.dev/policy label (and Databasus' instance label) holds the
// name's bounded form (kube::label_value), the Job's name stays within 63
// characters, and the controller finds its Job again by that label, so the
// backup runs and fills the catalog. Unbounded, the API server refuses the Job.
TEST_F(BackupPolicyIT, APolicyNameTooLongForALabelStillRunsItsBackups) {
  const std::string name = "a-policy-named-at-length-" + std::string(220, 'p') + ".example";
  ASSERT_EQ(name.size(), 253u);
  const std::string label = bo::kube::label_value(name);
  ASSERT_EQ(label.size(), 63u);
  create_secrets();
  json p = policy();
  p["metadata"]["name"] = name;
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, p));
  start_controller();
  auto jobs = [&] {
    auto l = client_->list(resources::kJobs, ns_, {"backup.si.dev/policy=" + label, "", 0, "", ""});
    return l ? (*l)["items"] : json::array();
  };
  ASSERT_TRUE(eventually([&] { return jobs().size() == 1; })) << jobs().dump();
  const json job = jobs()[0];
  EXPECT_LE(job["metadata"]["name"].get<std::string>().size(), 63u);
  EXPECT_EQ(job["spec"]["template"]["metadata"]["labels"]["backup.si.dev/policy"], label);
  auto healthy = [&] {
    auto got = client_->get(kBackupPolicies, ns_, name);
    if (!got) return false;
    const json conds = (*got).value("status", json::object()).value("conditions", json::array());
    auto c = bo::reconcile::find_condition(conds, "BackupHealthy");
    return c && c->value("status", "") == "True";
  };
  ASSERT_TRUE(eventually(healthy)) << client_->get(kBackupPolicies, ns_, name)->dump(2);
  const json st = (*client_->get(kBackupPolicies, ns_, name))["status"];
  ASSERT_EQ(st["backups"].size(), 1u);
  EXPECT_EQ(st["backups"][0]["id"], "base_000000010000000000000009");
  EXPECT_EQ(st["backups"][0]["job"], job["metadata"]["name"]);
  // Databasus' objects are labelled the same way, and its Deployment's selector matches its pods.
  ASSERT_TRUE(eventually([&] {
    auto l = client_->list(resources::kDeployments, ns_, {"backup.si.dev/policy=" + label, "", 0, "", ""});
    return l && (*l)["items"].size() == 1;
  }));
  // Another reconcile finds the Job by its label and creates no second one.
  controller_->reconcile(ns_ + "/" + name);
  EXPECT_EQ(jobs().size(), 1u);
}

// The CRDs as shipped pass a server-side dry run, and their name patterns and
// bounds refuse what the API server refuses, naming the field (issue 18 item 5).
TEST_F(BackupPolicyIT, TheCrdsApplyAndRefuseBadNamesAndOversizedListsNamingTheField) {
  auto r = server_->kubectl("apply --dry-run=server -f " + std::string(SOURCE_DIR) + "/crds/");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto dir = testing_support::make_temp_dir("crd-dry-run");
  auto dry_run = [&](const json& obj) {
    return server_->kubectl("apply --dry-run=server -f " + testing_support::write_file(dir / "obj.json", obj.dump()));
  };
  auto request = [&](const json& spec) {
    return json{{"apiVersion", "backup.si.dev/v1alpha1"}, {"kind", "RestoreRequest"},
                {"metadata", {{"name", "r"}, {"namespace", ns_}}}, {"spec", spec}};
  };
  json p = policy();
  p["metadata"]["namespace"] = ns_;
  r = dry_run(p);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = dry_run(request({{"policyRef", {{"name", "db"}}}, {"targetNamespace", "shop-drill"}}));
  EXPECT_EQ(r.exit_code, 0) << r.output;

  json words = json::array();
  for (int i = 0; i < 33; ++i) words.push_back("w");
  json bad_secret = p, bad_labels = p;
  bad_secret["spec"]["storage"]["secretRef"]["name"] = "WalG_Storage";
  json many = json::object();
  for (int i = 0; i < 65; ++i) many["k" + std::to_string(i)] = "v";
  bad_labels["spec"]["database"]["podLabels"] = many;
  struct Case {
    const char* what;
    json obj;
    std::string expect;
  } cases[] = {
      {"targetNamespace", request({{"policyRef", {{"name", "db"}}}, {"targetNamespace", "Shop_Drill"}}),
       "spec.targetNamespace: Invalid value: \"Shop_Drill\": spec.targetNamespace in body should match"},
      {"policyRef", request({{"policyRef", {{"name", "db/other"}}}}),
       "spec.policyRef.name: Invalid value: \"db/other\": spec.policyRef.name in body should match"},
      {"validation name", request({{"policyRef", {{"name", "db"}}}, {"validation", {{{"name", "smoke.test"}, {"sql", "select 1"}}}}}),
       "spec.validation[0].name: Invalid value: \"smoke.test\""},
      {"command words", request({{"policyRef", {{"name", "db"}}}, {"validation", {{{"name", "s"}, {"image", "busybox"}, {"command", words}}}}}),
       "spec.validation[0].command: Too many: 33: must have at most 32 items"},
      {"targetNamespace length", request({{"policyRef", {{"name", "db"}}}, {"targetNamespace", std::string(64, 'n')}}),
       "spec.targetNamespace: Too long: may not be more than 63"},
      {"Secret name", bad_secret, "spec.storage.secretRef.name: Invalid value: \"WalG_Storage\""},
      {"podLabels", bad_labels, "spec.database.podLabels: Too many: 65: must have at most 64 items"},
  };
  for (const auto& c : cases) {
    r = dry_run(c.obj);
    EXPECT_NE(r.exit_code, 0) << c.what;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << c.what << ": " << r.output;
  }
  // Dry runs store nothing.
  EXPECT_FALSE(client_->get(kBackupPolicies, ns_, "db"));
}

TEST_F(BackupPolicyIT, ARestartedOperatorNeverDuplicatesTheSlotsJob) {
  create_secrets();
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy()));
  start_controller();
  ASSERT_TRUE(eventually([&] { return job_count() == 1; }));
  controller_->stop();
  // A second operator (or the same after kill -9) with the status possibly stale.
  start_controller();
  for (int i = 0; i < 3; ++i) controller_->reconcile(ns_ + "/db");
  EXPECT_EQ(job_count(), 1u);
}

// Act first, record after (issue 19): with several policies due at once,
// a status write waits behind the keys still queued, so every due Job is
// created before any of those slots is recorded (one worker makes the order
// exact). Each slot still runs exactly one Job and is recorded.
TEST_F(BackupPolicyIT, DuePoliciesJobsAreAllCreatedBeforeAnyOfTheirSlotsIsRecorded) {
  create_secrets();
  constexpr int kPolicies = 6;
  auto name_of = [](int i) { return "db-" + std::to_string(i); };
  for (int i = 0; i < kPolicies; ++i) {
    json p = policy();
    p["metadata"]["name"] = name_of(i);
    ASSERT_TRUE(client_->create(kBackupPolicies, ns_, p));
  }
  auto status_of = [&](int i) {
    auto p = client_->get(kBackupPolicies, ns_, name_of(i));
    return p ? p->value("status", json::object()) : json::object();
  };
  auto settled = [&](const std::string& slot) {
    for (int i = 0; i < kPolicies; ++i) {
      const json st = status_of(i);
      if (st.value("lastScheduleTime", "") != slot || !st.value("activeJobs", json::array()).empty()) return false;
      const json conditions = st.value("conditions", json::array());
      const json* c = bo::reconcile::find_condition(conditions, "BackupHealthy");
      if (!c || c->value("status", "") != "True") return false;
    }
    return true;
  };
  const std::string first_slot = bo::format_rfc3339(std::chrono::floor<std::chrono::hours>(clock_->now()));
  start_controller();
  ASSERT_TRUE(eventually([&] { return settled(first_slot); }, std::chrono::seconds(60))) << status_of(0).dump();
  controller_->stop();

  // The next hour's slot, all six due when the operator starts again.
  clock_->advance(std::chrono::hours(1));
  const std::string slot = bo::format_rfc3339(std::chrono::floor<std::chrono::hours>(clock_->now()));
  std::mutex mu;
  std::vector<std::string> order;  // "create" (a Job) or "status" (a BackupPolicy's), as sent
  op_transport_->set_hook([&](const HttpRequest& r) -> std::optional<HttpResponse> {
    const std::string path = r.path.substr(0, r.path.find('?'));
    std::lock_guard lock(mu);
    if (r.method == "POST" && path.ends_with("/namespaces/" + ns_ + "/jobs"))
      order.push_back("create " + json::parse(r.body, nullptr, false).value("/metadata/name"_json_pointer, std::string()));
    if (r.method == "PUT" && path.find("/backuppolicies/") != std::string::npos && path.ends_with("/status"))
      order.push_back("status");
    return std::nullopt;
  });
  start_controller(false, /*workers=*/1);
  ASSERT_TRUE(eventually([&] { return settled(slot); }, std::chrono::seconds(60))) << status_of(0).dump();
  {
    std::lock_guard lock(mu);
    // (A Job may be sent twice: just after a start, its create can outrun the
    // Job watch, so the next pass is answered 409 and waits for the cache.)
    const auto first_status = std::find(order.begin(), order.end(), "status");
    EXPECT_EQ(std::set<std::string>(order.begin(), first_status).size(), static_cast<size_t>(kPolicies))
        << "Jobs created before the first status write: " << json(order).dump();
  }
  // One Job per policy for the slot, however many passes it took.
  auto jobs = client_->list(resources::kJobs, ns_, {"", "", 0, "", ""});
  ASSERT_TRUE(jobs);
  std::map<std::string, int> per_policy;
  for (const auto& j : (*jobs)["items"])
    if (j["metadata"].value("annotations", json::object()).value("backup.si.dev/scheduled-at", "") == slot)
      ++per_policy[j["metadata"]["labels"].value("backup.si.dev/policy", "")];
  ASSERT_EQ(per_policy.size(), static_cast<size_t>(kPolicies)) << json(per_policy).dump();
  for (const auto& [policy, n] : per_policy) EXPECT_EQ(n, 1) << policy;
}

TEST_F(BackupPolicyIT, MissingSecretBlocksUntilItIsCreated) {
  create_secrets(/*with_encryption=*/false);
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy()));
  start_controller();
  ASSERT_TRUE(eventually([&] { return condition("Ready").value("reason", "") == "SecretNotFound"; }))
      << condition("Ready");
  EXPECT_NE(condition("Ready").value("message", "").find("walg-encryption"), std::string::npos);
  EXPECT_EQ(job_count(), 0u);
  create_encryption_secret();  // the Secret watch wakes the policy
  ASSERT_TRUE(eventually([&] { return condition("Ready").value("status", "") == "True"; })) << condition("Ready");
  EXPECT_TRUE(eventually([&] { return job_count() == 1; }));
}

TEST_F(BackupPolicyIT, InvalidSpecGetsAReasonAndNoJob) {
  create_secrets();
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy({{"schedule", {{"backup", "every hour"}}}})));
  start_controller();
  ASSERT_TRUE(eventually([&] { return condition("Ready").value("reason", "") == "InvalidSchedule"; }))
      << condition("Ready");
  EXPECT_NE(condition("Ready").value("message", "").find("spec.schedule.backup"), std::string::npos);
  EXPECT_EQ(job_count(), 0u);
  // Fixing the spec re-arms it.
  ASSERT_TRUE(client_->patch(kBackupPolicies, ns_, "db", PatchType::kMerge,
                             {{"spec", {{"schedule", {{"backup", "0 * * * *"}}}}}}));
  EXPECT_TRUE(eventually([&] { return condition("Ready").value("status", "") == "True"; })) << condition("Ready");
}

}  // namespace

namespace {

TEST_F(BackupPolicyIT, EveryInvalidReasonNamesItsField) {
  create_secrets();
  ASSERT_TRUE(client_->create(resources::kSecrets, ns_, {{"metadata", {{"name", "plain-http"}}},
                                                         {"stringData", {{"WALG_S3_PREFIX", "s3://b"}, {"WALG_AWS_ACCESS_KEY_ID", "i"},
                                                                         {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY-9d1e"},
                                                                         {"WALG_AWS_ENDPOINT", "http://s3.local"}}}}));
  ASSERT_TRUE(client_->create(resources::kSecrets, ns_, {{"metadata", {{"name", "partial"}}},
                                                         {"stringData", {{"WALG_S3_PREFIX", "s3://b"}}}}));
  struct Case {
    std::string name;
    json patch;
    std::string reason, field;
  };
  const std::vector<Case> cases = {
      {"bad-cron", {{"schedule", {{"fullBackup", "0 25 * * *"}}}}, "InvalidSchedule", "spec.schedule.fullBackup"},
      {"bad-zone", {{"schedule", {{"timeZone", "Europe/Atlantis"}}}}, "InvalidTimeZone", "spec.schedule.timeZone"},
      {"in-place", {{"verification", {{"targetNamespace", ns_}}}}, "InvalidTarget", "spec.verification.targetNamespace"},
      {"kube-system", {{"verification", {{"targetNamespace", "kube-system"}}}}, "TargetNotAllowed",
       "spec.verification.targetNamespace"},
      {"operator-ns", {{"verification", {{"allowedTargetNamespaces", {"backup-operator-system"}}}}}, "TargetNotAllowed",
       "spec.verification.allowedTargetNamespaces[0]"},
      {"no-secret", {{"storage", {{"secretRef", {{"name", "absent"}}}}}}, "SecretNotFound", "spec.storage.secretRef.name"},
      {"missing-key", {{"storage", {{"secretRef", {{"name", "partial"}}}}}}, "MissingSecretKey", "spec.storage.secretRef.name"},
      {"http", {{"storage", {{"secretRef", {{"name", "plain-http"}}}}}}, "InsecureEndpoint", "spec.storage.secretRef.name"},
  };
  for (const auto& c : cases) {
    json p = policy(c.patch);
    p["metadata"]["name"] = c.name;
    ASSERT_TRUE(client_->create(kBackupPolicies, ns_, p)) << c.name;
  }
  start_controller();
  for (const auto& c : cases) {
    json ready;
    ASSERT_TRUE(eventually([&] {
      auto p = client_->get(kBackupPolicies, ns_, c.name);
      const json conds = p ? (*p).value("status", json::object()).value("conditions", json::array()) : json::array();
      auto r = bo::reconcile::find_condition(conds, "Ready");
      ready = r ? *r : json::object();
      return ready.value("reason", "") == c.reason;
    })) << c.name << ": " << ready;
    EXPECT_EQ(ready["status"], "False");
    EXPECT_NE(ready.value("message", "").find(c.field), std::string::npos) << ready;
    EXPECT_EQ(ready.dump().find("CANARY"), std::string::npos);
    EXPECT_EQ(ready.dump().find("http://s3.local"), std::string::npos);
  }
  EXPECT_EQ(job_count(), 0u);
  // What the schema can enforce, the API server refuses outright.
  auto zero = client_->create(kBackupPolicies, ns_, [&] { json p = policy({{"retention", {{"daily", 0}}}}); p["metadata"]["name"] = "zero"; return p; }());
  ASSERT_FALSE(zero);
  EXPECT_NE(zero.error().message.find("spec.retention.daily"), std::string::npos);
  auto unencrypted = client_->create(kBackupPolicies, ns_, [&] { json p = policy(); p["spec"]["storage"].erase("encryption"); p["metadata"]["name"] = "plain"; return p; }());
  ASSERT_FALSE(unencrypted);
  EXPECT_NE(unencrypted.error().message.find("spec.storage.encryption"), std::string::npos);
}

TEST_F(BackupPolicyIT, RotatedSecretIsFollowed) {
  create_secrets();
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy()));
  start_controller();
  ASSERT_TRUE(eventually([&] { return condition("Ready").value("status", "") == "True"; }));
  // Rotate the endpoint to plain http: the policy stops; rotate back: it re-arms.
  ASSERT_TRUE(client_->patch(resources::kSecrets, ns_, "walg-storage", PatchType::kMerge,
                             {{"stringData", {{"WALG_AWS_ENDPOINT", "http://s3.local"}}}}));
  ASSERT_TRUE(eventually([&] { return condition("Ready").value("reason", "") == "InsecureEndpoint"; })) << condition("Ready");
  ASSERT_TRUE(client_->patch(resources::kSecrets, ns_, "walg-storage", PatchType::kMerge,
                             {{"stringData", {{"WALG_AWS_ENDPOINT", "https://s3-new.local"}}}}));
  EXPECT_TRUE(eventually([&] { return condition("Ready").value("status", "") == "True"; })) << condition("Ready");
}

TEST_F(BackupPolicyIT, SpringForwardGapRunsTheFixedHourJobAsTheGapEnds) {
  create_secrets();
  // After a long outage, at the end of Berlin's 2027 spring-forward gap:
  // 02:30 local never exists that night, so the 02:30 run starts at 03:00 CEST (01:00Z).
  clock_->set(*bo::parse_rfc3339("2027-03-28T01:00:05Z"));
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_,
                              policy({{"schedule", {{"backup", "30 2 * * *"}, {"fullBackup", "30 2 * * *"},
                                                    {"timeZone", "Europe/Berlin"}}}})));
  start_controller();
  ASSERT_TRUE(eventually([&] {
    return client_->get(resources::kJobs, ns_, "db-full-202703280100").has_value();
  })) << condition("Ready");
  EXPECT_EQ(job_count(), 1u);
  // Every daily slot between creation and the gap counts as missed (for each of
  // the two schedules). The status is written after the Job: wait for it.
  int missed = 0;
  EXPECT_TRUE(eventually([&] {
    auto p = client_->get(kBackupPolicies, ns_, "db");
    missed = p ? (*p).value("status", json::object()).value("missedSchedules", 0) : 0;
    return missed >= 120;
  })) << missed;
}

}  // namespace

namespace {

TEST_F(BackupPolicyIT, RestoreRequestCrdDefaultsAndKeepsItsSpecImmutable) {
  const Resource rr{"backup.si.dev", "v1alpha1", "restorerequests", "RestoreRequest", true};
  auto created = client_->create(rr, ns_, {{"metadata", {{"name", "r1"}}}, {"spec", {{"policyRef", {{"name", "db"}}}}}});
  ASSERT_TRUE(created) << created.error().str();
  EXPECT_EQ((*created)["spec"]["backupId"], "latest");
  EXPECT_EQ((*created)["spec"]["purpose"], "restore");
  auto changed = client_->patch(rr, ns_, "r1", PatchType::kMerge, {{"spec", {{"backupId", "base_1"}}}});
  ASSERT_FALSE(changed);
  EXPECT_EQ(changed.error().status, 422);
  EXPECT_NE(changed.error().message.find("spec is immutable after creation"), std::string::npos) << changed.error().message;
  auto bad_sum = client_->create(rr, ns_, {{"metadata", {{"name", "r2"}}},
                                           {"spec", {{"policyRef", {{"name", "db"}}}, {"checksum", "md5:abc"}}}});
  ASSERT_FALSE(bad_sum);
  EXPECT_NE(bad_sum.error().message.find("spec.checksum"), std::string::npos);
  auto r = server_->kubectl("get rr -n " + ns_);
  EXPECT_NE(r.output.find("PHASE"), std::string::npos) << r.output;
}

TEST_F(BackupPolicyIT, VerificationRestoresMarkBackupsVerifiedAndDrillsKeepDrillCurrent) {
  // The identity webhook, in-process, for this test's namespace only.
  const auto tls = bo::generate_tls("bp-it-webhook");
  bo::webhook::Server webhook;
  ASSERT_TRUE(webhook.start("127.0.0.1:0", tls.server));
  const std::string port = std::to_string(webhook.port());
  const std::string wh_name = "bp-it-" + ns_;
  ASSERT_TRUE(client_->create(
      resources::kMutatingWebhookConfigurations, "",
      {{"metadata", {{"name", wh_name}}},
       {"webhooks", {{{"name", "requested-by.backup.si.dev"},
                      {"clientConfig", {{"url", "https://127.0.0.1:" + port + "/mutate-restorerequests"},
                                        {"caBundle", bo::base64_encode(tls.ca.cert)}}},
                      {"rules", {{{"operations", {"CREATE", "UPDATE"}}, {"apiGroups", {"backup.si.dev"}},
                                  {"apiVersions", {"v1alpha1"}}, {"resources", {"restorerequests"}}}}},
                      {"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", ns_}}}}},
                      {"failurePolicy", "Fail"}, {"sideEffects", "None"}, {"admissionReviewVersions", {"v1"}}}}}}));
  create_secrets();
  // Hourly verification, so the fake clock reaches a slot after the first backup.
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy({{"verification", {{"schedule", "0 * * * *"}}}})));
  start_controller(true);
  // The first slot has no full backup to verify yet: it says so (a Warning
  // Event; within the slot's starting deadline the slot may still verify the
  // backup once it lands, so the condition is not a stable witness).
  ASSERT_TRUE(eventually([&] { return condition("BackupHealthy").value("status", "") == "True"; }));
  ASSERT_TRUE(eventually([&] {
    auto evs = client_->list(resources::kEvents, ns_, {"", "involvedObject.name=db,reason=NoBackupToVerify", 0, "", ""});
    return evs && !(*evs)["items"].empty();
  }));
  // The next hour: a verification RestoreRequest restores the newest full backup...
  clock_->advance(std::chrono::hours(1));
  controller_->reconcile(ns_ + "/db");
  std::string rr_name;
  ASSERT_TRUE(eventually([&] {
    auto l = client_->list(bo::reconcile::kRestoreRequests, ns_, {"backup.si.dev/action=verify", "", 0, "", ""});
    if (!l || (*l)["items"].empty()) return false;
    rr_name = (*l)["items"][0]["metadata"]["name"];
    return true;
  })) << condition("Ready");
  // ...and when it succeeds, the policy's catalog says so.
  ASSERT_TRUE(eventually([&] { return condition("Verified").value("status", "") == "True"; }, std::chrono::seconds(20)))
      << condition("Verified") << (*client_->get(bo::reconcile::kRestoreRequests, ns_, rr_name)).dump(2);
  auto p = client_->get(kBackupPolicies, ns_, "db");
  ASSERT_TRUE(p);
  const json st = (*p)["status"];
  EXPECT_EQ(st["lastVerifiedBackup"]["id"], "base_000000010000000000000009");
  EXPECT_EQ(st["lastVerifiedBackup"]["request"], rr_name);
  EXPECT_TRUE(st["backups"][0]["verified"]);
  auto rr = client_->get(bo::reconcile::kRestoreRequests, ns_, rr_name);
  EXPECT_EQ((*rr)["status"]["targetNamespace"], ns_ + "-verify");
  EXPECT_EQ((*rr)["metadata"]["ownerReferences"][0]["name"], "db");

  // A drill (by a person, through kubectl) keeps DrillCurrent.
  EXPECT_EQ(condition("DrillCurrent").value("reason", ""), "NoDrillYet");
  const std::string drill = testing_support::write_file(
      server_->dir() / "drill.yaml", "apiVersion: backup.si.dev/v1alpha1\nkind: RestoreRequest\nmetadata: {name: drill, namespace: " +
                                         ns_ + "}\nspec: {policyRef: {name: db}, purpose: drill, targetNamespace: " + ns_ + "-verify}\n");
  auto r = server_->kubectl("apply -f " + drill);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(eventually([&] { return condition("DrillCurrent").value("status", "") == "True"; }, std::chrono::seconds(20)))
      << condition("DrillCurrent") << (*client_->get(bo::reconcile::kRestoreRequests, ns_, "drill")).dump(2);
  EXPECT_EQ((*client_->get(kBackupPolicies, ns_, "db"))["status"]["lastDrill"]["request"], "drill");
  ASSERT_TRUE(client_->remove(resources::kMutatingWebhookConfigurations, "", wh_name));
}

TEST_F(BackupPolicyIT, DatabasusRunsPrivatelyAndExposureIsCaughtAndUndone) {
  create_secrets();
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy()));  // the default addons include databasus
  start_controller();
  auto exists = [&](const Resource& r, const std::string& name) { return client_->get(r, ns_, name).has_value(); };
  ASSERT_TRUE(eventually([&] {
    return exists(resources::kDeployments, "db-databasus") && exists(resources::kNetworkPolicies, "db-databasus") &&
           exists(resources::kPersistentVolumeClaims, "db-databasus-data");
  }));
  ASSERT_TRUE(eventually([&] { return condition("DatabasusReady").value("status", "") == "True"; })) << condition("DatabasusReady");
  ASSERT_TRUE(eventually([&] { return condition("DatabasusPrivate").value("status", "") == "True"; }));
  auto np = client_->get(resources::kNetworkPolicies, ns_, "db-databasus");
  EXPECT_EQ((*np)["spec"].value("ingress", json::array()), json::array());
  auto scrape = [&] {
    prometheus::TextSerializer ser;
    return ser.Serialize(metrics_.registry()->Collect());
  };
  const std::string series = "backup_operator_databasus_exposed{namespace=\"" + ns_ + "\",policy=\"db\"}";

  // A Service that selects the Databasus pods: caught, reported, and left for its owner to remove.
  ASSERT_TRUE(client_->create(resources::kServices, ns_,
                              {{"metadata", {{"name", "peek"}}},
                               {"spec", {{"selector", {{"backup.si.dev/component", "databasus"}}},
                                         {"ports", {{{"port", 80}, {"targetPort", 4005}}}}}}}));
  ASSERT_TRUE(eventually([&] { return condition("DatabasusPrivate").value("reason", "") == "Exposed"; }))
      << condition("DatabasusPrivate");
  EXPECT_NE(condition("DatabasusPrivate")["message"].get<std::string>().find("Service peek"), std::string::npos);
  EXPECT_TRUE(eventually([&] { return scrape().find(series + " 1") != std::string::npos; })) << scrape();
  recorder_->flush();
  auto evs = client_->list(resources::kEvents, ns_, {"", "involvedObject.name=db,reason=DatabasusExposed", 0, "", ""});
  ASSERT_TRUE(evs);
  EXPECT_FALSE((*evs)["items"].empty());
  ASSERT_TRUE(client_->remove(resources::kServices, ns_, "peek"));
  ASSERT_TRUE(eventually([&] { return condition("DatabasusPrivate").value("status", "") == "True"; }));
  EXPECT_TRUE(eventually([&] { return scrape().find(series + " 0") != std::string::npos; }));

  // A deleted NetworkPolicy comes back.
  const std::string old_uid = (*np)["metadata"]["uid"];
  ASSERT_TRUE(client_->remove(resources::kNetworkPolicies, ns_, "db-databasus"));
  ASSERT_TRUE(eventually([&] {
    auto again = client_->get(resources::kNetworkPolicies, ns_, "db-databasus");
    return again && (*again)["metadata"]["uid"] != old_uid;
  }));
  // A host port patched in is taken out again.
  ASSERT_TRUE(client_->patch(resources::kDeployments, ns_, "db-databasus", PatchType::kJson,
                             json::array({{{"op", "add"}, {"path", "/spec/template/spec/containers/0/ports/0/hostPort"}, {"value", 4005}}})));
  ASSERT_TRUE(eventually([&] {
    auto d = client_->get(resources::kDeployments, ns_, "db-databasus");
    return d && !(*d)["spec"]["template"]["spec"]["containers"][0]["ports"][0].contains("hostPort");
  }));
  // The Events come after the status write that records the repair: wait for them.
  std::string trail;
  EXPECT_TRUE(eventually([&] {
    recorder_->flush();
    evs = client_->list(resources::kEvents, ns_, {"", "involvedObject.name=db,reason=DatabasusExposed", 0, "", ""});
    trail = evs ? evs->dump() : "";
    return trail.find("NetworkPolicy db-databasus was missing") != std::string::npos &&
           trail.find("hostPort 4005") != std::string::npos;
  })) << trail;

  // Removing the addon removes it all; the operator never made a Service.
  ASSERT_TRUE(client_->patch(kBackupPolicies, ns_, "db", PatchType::kMerge, {{"spec", {{"addons", {"supabase-walg"}}}}}));
  ASSERT_TRUE(eventually([&] {
    return !exists(resources::kDeployments, "db-databasus") && !exists(resources::kNetworkPolicies, "db-databasus") &&
           !exists(resources::kPersistentVolumeClaims, "db-databasus-data");
  }));
  ASSERT_TRUE(eventually([&] { return condition("DatabasusPrivate").empty(); }));
  EXPECT_TRUE(eventually([&] { return scrape().find(series) == std::string::npos; }));
  auto services = client_->list(resources::kServices, ns_);
  ASSERT_TRUE(services);
  EXPECT_TRUE((*services)["items"].empty()) << services->dump();
}

// Databasus is an add-on: when its objects are refused (here its claim, by
// an admission policy standing for a storage quota) the backups go on, and
// DatabasusReady says why; once the refusal goes, Databasus comes up.
TEST_F(BackupPolicyIT, ARefusedDatabasusNeverStopsBackups) {
  const std::string vap = "refuse-claims-" + ns_;
  ASSERT_TRUE(client_->create(resources::kValidatingAdmissionPolicies, "",
                              {{"metadata", {{"name", vap}}},
                               {"spec", {{"failurePolicy", "Fail"},
                                         {"matchConstraints", {{"resourceRules", {{{"operations", {"CREATE"}},
                                                                                   {"apiGroups", {""}},
                                                                                   {"apiVersions", {"*"}},
                                                                                   {"resources", {"persistentvolumeclaims"}}}}}}},
                                         {"validations", {{{"expression", "false"},
                                                           {"message", "exceeded quota: storage, requested 1Gi"},
                                                           {"reason", "Forbidden"}}}}}}}));
  ASSERT_TRUE(client_->create(resources::kValidatingAdmissionPolicyBindings, "",
                              {{"metadata", {{"name", vap}}},
                               {"spec", {{"policyName", vap}, {"validationActions", {"Deny"}},
                                         {"matchResources", {{"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", ns_}}}}}}}}}}));
  create_secrets();
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy()));  // the default addons include databasus
  start_controller();
  ASSERT_TRUE(eventually([&] { return condition("BackupHealthy").value("status", "") == "True"; }))
      << condition("BackupHealthy") << condition("DatabasusReady");
  const json ready = condition("DatabasusReady");
  EXPECT_EQ(ready.value("status", ""), "False") << ready;
  EXPECT_EQ(ready.value("reason", ""), "ApplyFailed") << ready;
  EXPECT_NE(ready.value("message", "").find("exceeded quota: storage"), std::string::npos) << ready;
  EXPECT_EQ(condition("Ready").value("status", ""), "True") << condition("Ready");
  recorder_->flush();
  auto evs = client_->list(resources::kEvents, ns_, {"", "involvedObject.name=db", 0, "", ""});
  ASSERT_TRUE(evs);
  EXPECT_NE((*evs).dump().find("DatabasusApplyFailed"), std::string::npos);
  // The refusal goes: Databasus is made on the next steady retry (30 s by default, 0.5 s here),
  // without any change to the policy.
  ASSERT_TRUE(client_->remove(resources::kValidatingAdmissionPolicyBindings, "", vap));
  ASSERT_TRUE(client_->remove(resources::kValidatingAdmissionPolicies, "", vap));
  EXPECT_TRUE(eventually([&] { return condition("DatabasusReady").value("status", "") == "True"; }, std::chrono::seconds(60)))
      << condition("DatabasusReady");
}

TEST_F(BackupPolicyIT, RetentionOverASimulatedYearKeepsSevenFourThreeThroughOneRetainJob) {
  // A year of daily full backups in the catalog (as a year of runs leaves it), the newest now.
  create_secrets();
  ASSERT_TRUE(client_->create(kBackupPolicies, ns_, policy({{"schedule", {{"backup", "0 0 1 1 *"}, {"fullBackup", "0 0 1 1 *"}}}})));
  json catalog = json::array();
  std::vector<bo::reconcile::RetainedBackup> model;
  const auto newest = std::chrono::floor<std::chrono::hours>(clock_->now()) - std::chrono::hours(1);
  for (int day = 0; day < 365; ++day) {
    const auto at = newest - std::chrono::hours(24 * day);
    const std::string id = "base_" + std::to_string(1000 + day);
    catalog.push_back({{"id", id}, {"checksum", "sha256:" + std::string(64, 'e')}, {"type", "full"},
                       {"startTime", bo::format_rfc3339(at - std::chrono::minutes(5))},
                       {"completionTime", bo::format_rfc3339(at)}, {"verified", day == 200}, {"keptFor", json::array()}});
    model.push_back({id, "full", "", at, day == 200, "", true});
  }
  auto p = client_->get(kBackupPolicies, ns_, "db");
  (*p)["status"] = {{"backups", catalog}};
  ASSERT_TRUE(client_->update_status(kBackupPolicies, ns_, *p));
  const auto expected = bo::reconcile::apply_retention(model, {7, 4, 3}, *bo::schedule::find_zone("UTC"));
  ASSERT_GT(expected.expire.size(), 300u);

  start_controller();
  // One retain Job deletes what retention expires; the catalog then holds exactly what is kept.
  ASSERT_TRUE(eventually([&] {
    auto now = client_->get(kBackupPolicies, ns_, "db");
    return now && (*now)["status"]["backups"].size() == 365 - expected.expire.size();
  }, std::chrono::seconds(20)));
  auto jobs = client_->list(resources::kJobs, ns_, {"backup.si.dev/action=retain", "", 0, "", ""});
  ASSERT_EQ((*jobs)["items"].size(), 1u);
  const auto& annotations = (*jobs)["items"][0]["metadata"]["annotations"];
  EXPECT_EQ(bo::reconcile::split_ids(annotations["backup.si.dev/expire"]).size(), expected.expire.size());
  std::set<std::string> kept;
  const json after = *client_->get(kBackupPolicies, ns_, "db");
  for (const auto& e : after["status"]["backups"]) {
    kept.insert(e["id"].get<std::string>());
    EXPECT_FALSE(e["keptFor"].empty() && !e["verified"].get<bool>()) << e.dump();
  }
  for (const auto& [id, why] : expected.kept_for) EXPECT_TRUE(kept.count(id)) << id << " " << json(why).dump();
  EXPECT_TRUE(kept.count("base_1200")) << "the newest verified backup stays";
  EXPECT_LE(kept.size(), 7u + 4u + 3u + 1u);
}

}  // namespace
