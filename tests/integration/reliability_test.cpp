// The operator killed with SIGKILL at random moments while schedules fire,
// restarted each time: never two Jobs for one slot, no finished run missing
// from the status, nothing left without an owner.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <random>
#include <set>

#include "chart_operator.h"
#include "common/timefmt.h"
#include "harness.h"
#include "reconcile/caches.h"

using namespace bo::kube;
using nlohmann::json;
using testing_support::Child;
using testing_support::eventually;
using testing_support::KubeLocal;

namespace {

std::string rules_file(const std::filesystem::path& dir) {
  const json rules = json::array(
      {{{"selector", "backup.si.dev/action in (backup,full-backup)"},
        {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 300},
                     {"message", R"({"backupId":"base_{{pod}}","checksum":"sha256:)" + std::string(64, 'a') +
                                     R"(","type":"delta","base":"base_outside_the_catalog","startTime":"{{env:BACKUP_SLOT}}","finishTime":"{{env:BACKUP_SLOT}}","sizeBytes":1})"}}}}});
  return testing_support::write_file(dir / "rules.json", rules.dump());
}

TEST(Reliability, KillDashNineAtRandomMomentsNeitherDuplicatesNorLosesNorLeaks) {
  const auto dir = testing_support::make_temp_dir("kill9");
  KubeLocal server({"--authorize", "--time-scale", "1800", "--pod-rules", rules_file(dir)});
  ASSERT_EQ(server.kubectl("apply -f " + std::string(SOURCE_DIR) + "/crds/").exit_code, 0);
  const auto chart = testing_support::install_chart(server, dir);
  auto admin = server.client();
  ASSERT_TRUE(admin->create(resources::kNamespaces, "", {{"metadata", {{"name", "rel"}}}}));
  ASSERT_TRUE(admin->create(resources::kSecrets, "rel",
                            {{"metadata", {{"name", "walg-storage"}}},
                             {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                                             {"WALG_AWS_SECRET_ACCESS_KEY", "s"}, {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
  ASSERT_TRUE(admin->create(resources::kSecrets, "rel", {{"metadata", {{"name", "walg-encryption"}}},
                                                         {"stringData", {{"WALG_LIBSODIUM_KEY", "k"}}}}));
  // A backup every ten minutes of schedule: one every third of a second here.
  // (Deltas of a base the catalog does not know are never expired, so every
  // backup stays in the catalog for the check below.)
  ASSERT_TRUE(admin->create(bo::reconcile::kBackupPolicies, "rel",
                            {{"metadata", {{"name", "db"}}},
                             {"spec", {{"addons", {"supabase-walg"}},
                                       {"database", {{"host", "db"}}},
                                       {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                                    {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                                       {"schedule", {{"backup", "*/10 * * * *"}, {"fullBackup", "0 0 1 1 *"}}},
                                       {"retention", {{"daily", 400}, {"weekly", 1}, {"monthly", 1}}},
                                       {"verification", {{"enabled", false}}},
                                       {"historyLimits", {{"successful", 1000}, {"failed", 1000}}}}}}));

  // Every Job ever created, by name, with each uid it had: two uids for one name is a duplicate run.
  std::mutex mu;
  std::map<std::string, std::set<std::string>> uids_by_name;
  Informer jobs(*admin, resources::kJobs, "rel");
  auto seen = [&](const ObjPtr& j) {
    std::lock_guard lock(mu);
    uids_by_name[(*j)["metadata"].value("name", "")].insert((*j)["metadata"].value("uid", ""));
  };
  jobs.add_handlers({seen, [&](const ObjPtr&, const ObjPtr& n) { seen(n); }, seen});
  std::jthread watcher([&](std::stop_token st) { jobs.run(st); });
  ASSERT_TRUE(jobs.wait_synced(std::chrono::seconds(10)));

  const std::string anchor = bo::format_rfc3339(std::chrono::system_clock::now());
  // Short leases, so each new process takes over soon after the last one died holding it.
  auto args = chart.args({"--time-scale", "1800", "--time-scale-anchor", anchor, "--metrics-bind-address", "0",
                          "--leader-elect-lease-duration", "1s", "--leader-elect-renew-deadline", "800ms"});
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int> run_ms(200, 1500);
  for (int round = 0; round < 8; ++round) {
    Child op(args, dir / ("operator-" + std::to_string(round) + ".log"));
    // Let it run a random while (a chaos interval, not a wait for anything), then SIGKILL it.
    std::this_thread::sleep_for(std::chrono::milliseconds(run_ms(rng)));
    op.stop(SIGKILL);
  }
  // The last operator runs until every finished Job is in the status.
  Child last(args, dir / "operator-last.log");
  auto recorded_everything = [&] {
    auto p = admin->get(bo::reconcile::kBackupPolicies, "rel", "db");
    auto l = admin->list(resources::kJobs, "rel");
    if (!p || !l) return false;
    const json st = (*p).value("status", json::object());
    std::set<std::string> ids;
    for (const auto& b : st.value("backups", json::array())) ids.insert(b.value("id", ""));
    size_t finished = 0;
    for (const auto& j : (*l)["items"]) {
      bool complete = false;
      for (const auto& c : j.value("status", json::object()).value("conditions", json::array()))
        complete = complete || (c.value("type", "") == "Complete" && c.value("status", "") == "True");
      if (!complete) continue;
      ++finished;
      // Its backup is in the catalog: the pod's id is base_<pod name>.
      auto pods = admin->list(resources::kPods, "rel", {"batch.kubernetes.io/job-name=" + j["metadata"]["name"].get<std::string>(), "", 0, "", ""});
      if (!pods) return false;
      for (const auto& pod : (*pods)["items"])
        if (pod.value("status", json::object()).value("phase", "") == "Succeeded" && !ids.count("base_" + pod["metadata"]["name"].get<std::string>()))
          return false;
    }
    return finished >= 5;
  };
  ASSERT_TRUE(eventually(recorded_everything, std::chrono::seconds(60))) << last.log();
  last.stop(SIGTERM);

  std::lock_guard lock(mu);
  EXPECT_GE(uids_by_name.size(), 5u);
  for (const auto& [name, uids] : uids_by_name) EXPECT_EQ(uids.size(), 1u) << "Job " << name << " was created twice";
  // Nothing without an owner: every Job belongs to the policy.
  auto p = admin->get(bo::reconcile::kBackupPolicies, "rel", "db");
  auto l = admin->list(resources::kJobs, "rel");
  ASSERT_TRUE(p && l);
  for (const auto& j : (*l)["items"]) {
    const json owners = j["metadata"].value("ownerReferences", json::array());
    ASSERT_EQ(owners.size(), 1u);
    EXPECT_EQ(owners[0]["uid"], (*p)["metadata"]["uid"]);
  }
  // Each catalog entry is one backup, once.
  std::set<std::string> ids;
  const json catalog = (*p).value("status", json::object()).value("backups", json::array());
  for (const auto& b : catalog) EXPECT_TRUE(ids.insert(b.value("id", "")).second) << b.dump();
  std::filesystem::remove_all(dir);
}

}  // namespace
