// The data volume checks' pure half (reconcile/data_volume.h): which pod of a
// workload, which mount, claim, uid/gid and node; claims a Job cannot mount;
// and the background resolver's bookkeeping with a substituted check.
#include <gtest/gtest.h>

#include <map>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "reconcile/data_volume.h"
#include "reconcile/data_volume_resolver.h"

using namespace bo::reconcile;
using nlohmann::json;

namespace {

json owner(const std::string& kind, const std::string& name) {
  return json::array({{{"apiVersion", "apps/v1"}, {"kind", kind}, {"name", name}, {"uid", "u"}, {"controller", true}}});
}

// A Ready pod of StatefulSet supabase-db as the StatefulSet controller makes it.
json sts_pod(int ordinal, const std::string& node = "node-a") {
  const std::string name = "supabase-db-" + std::to_string(ordinal);
  return {{"metadata",
           {{"name", name},
            {"labels", {{"app", "supabase-db"}, {"apps.kubernetes.io/pod-index", std::to_string(ordinal)}}},
            {"ownerReferences", owner("StatefulSet", "supabase-db")},
            {"creationTimestamp", "2026-11-24T10:00:0" + std::to_string(9 - ordinal) + "Z"}}},
          {"spec",
           {{"nodeName", node},
            {"securityContext", {{"runAsUser", 105}, {"runAsGroup", 106}, {"fsGroup", 106}}},
            {"initContainers",
             {{{"name", "init-perms"}, {"volumeMounts", {{{"name", "scratch"}, {"mountPath", "/var/lib/postgresql/data"}}}}}}},
            {"containers",
             {{{"name", "exporter"}, {"volumeMounts", {{{"name", "run"}, {"mountPath", "/var/run/postgresql"}}}}},
              {{"name", "postgres"},
               {"volumeMounts",
                {{{"name", "run"}, {"mountPath", "/var/run/postgresql"}},
                 {{"name", "base"}, {"mountPath", "/var/lib/postgresql"}},
                 {{"name", "data"}, {"mountPath", "/var/lib/postgresql/data/"}, {"subPath", "pgdata"}}}}}}},
            {"volumes",
             {{{"name", "run"}, {"emptyDir", json::object()}},
              {{"name", "scratch"}, {"emptyDir", json::object()}},
              {{"name", "base"}, {"persistentVolumeClaim", {{"claimName", "base-supabase-db-" + std::to_string(ordinal)}}}},
              {{"name", "data"}, {"persistentVolumeClaim", {{"claimName", "data-supabase-db-" + std::to_string(ordinal)}}}}}}}},
          {"status", {{"phase", "Running"}, {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
}

// A Ready pod of Deployment supabase-db (ReplicaSet supabase-db-7d9f8c), as
// docker-compose-style manifests run supabase/postgres: no runAsUser (the
// image starts as root and steps down to postgres).
json deploy_pod(const std::string& suffix, const std::string& created) {
  return {{"metadata",
           {{"name", "supabase-db-7d9f8c-" + suffix},
            {"labels", {{"app", "supabase-db"}}},
            {"ownerReferences", owner("ReplicaSet", "supabase-db-7d9f8c")},
            {"creationTimestamp", created}}},
          {"spec",
           {{"nodeName", "node-" + suffix},
            {"containers",
             {{{"name", "db"}, {"volumeMounts", {{{"name", "db-data"}, {"mountPath", "/var/lib/postgresql/data"}}}}}}},
            {"volumes", {{{"name", "db-data"}, {"persistentVolumeClaim", {{"claimName", "supabase-db-data"}}}}}}}},
          {"status", {{"phase", "Running"}, {"conditions", {{{"type", "Ready"}, {"status", "True"}}}}}}};
}

struct ResolveCase {
  const char* name;
  std::function<json()> pod;
  std::string data_directory, container;
  int64_t fallback_uid, fallback_gid;
  // Expected: a claim (resolved) or a reason and field.
  std::string claim, mount, sub_path;
  int64_t uid, gid;
  std::string node, reason, field;
};

class ResolvePodVolume : public ::testing::TestWithParam<ResolveCase> {};

TEST_P(ResolvePodVolume, FindsTheDataDirectoryMount) {
  const auto& c = GetParam();
  const auto got = resolve_pod_volume(c.pod(), c.data_directory, c.container, c.fallback_uid, c.fallback_gid);
  if (!c.reason.empty()) {
    ASSERT_FALSE(got) << c.name << ": resolved to " << got->claim_name;
    EXPECT_EQ(got.error().reason, c.reason);
    EXPECT_EQ(got.error().field, c.field);
    EXPECT_EQ(got.error().message.rfind(c.field + ": ", 0), 0u) << got.error().message;
    return;
  }
  ASSERT_TRUE(got) << c.name << ": " << got.error().message;
  EXPECT_EQ(got->claim_name, c.claim);
  EXPECT_EQ(got->mount_path, c.mount);
  EXPECT_EQ(got->sub_path, c.sub_path);
  EXPECT_EQ(got->run_as_user, c.uid);
  EXPECT_EQ(got->run_as_group, c.gid);
  EXPECT_EQ(got->node_name, c.node);
}

INSTANTIATE_TEST_SUITE_P(
    Table, ResolvePodVolume,
    ::testing::Values(
        // The deepest mount holding the default data directory wins over its
        // parent's; the init container's mount at the same path never counts.
        ResolveCase{"StatefulSetDeepestMountWins", [] { return sts_pod(0); }, "", "", -1, -1, "data-supabase-db-0",
                    "/var/lib/postgresql/data", "pgdata", 105, 106, "node-a", "", ""},
        // A data_directory outside the data mount: the parent claim holds it.
        ResolveCase{"ServerDataDirectoryElsewhere", [] { return sts_pod(1, "node-b"); }, "/var/lib/postgresql/15/main", "",
                    -1, -1, "base-supabase-db-1", "/var/lib/postgresql", "", 105, 106, "node-b", "", ""},
        ResolveCase{"ServerDataDirectoryBelowTheMount", [] { return sts_pod(0); }, "/var/lib/postgresql/data/pgdata", "",
                    -1, -1, "data-supabase-db-0", "/var/lib/postgresql/data", "pgdata", 105, 106, "node-a", "", ""},
        ResolveCase{"ContainerSecurityContextOverThePods",
                    [] {
                      json p = sts_pod(0);
                      p["spec"]["containers"][1]["securityContext"] = {{"runAsUser", 999}, {"runAsGroup", 998}};
                      return p;
                    },
                    "", "", 101, 102, "data-supabase-db-0", "/var/lib/postgresql/data", "pgdata", 999, 998, "node-a", "", ""},
        ResolveCase{"NoSecurityContextUsesTheSpecsUser", [] { return deploy_pod("x1", "2026-11-24T10:00:00Z"); }, "", "",
                    101, 102, "supabase-db-data", "/var/lib/postgresql/data", "", 101, 102, "node-x1", "", ""},
        ResolveCase{"NoSecurityContextAndNoSpecUserIsUnknowable",
                    [] { return deploy_pod("x1", "2026-11-24T10:00:00Z"); }, "", "", -1, -1, "", "", "", 0, 0, "",
                    "RunAsUserRequired", "spec.database.runAsUser"},
        ResolveCase{"RootPodUserIsTheImagesChoice",
                    [] {
                      json p = deploy_pod("x1", "2026-11-24T10:00:00Z");
                      p["spec"]["securityContext"] = {{"runAsUser", 0}};
                      return p;
                    },
                    "", "", 101, 102, "supabase-db-data", "/var/lib/postgresql/data", "", 101, 102, "node-x1", "", ""},
        ResolveCase{"UserWithoutGroupNeedsTheSpecsGroup",
                    [] {
                      json p = deploy_pod("x1", "2026-11-24T10:00:00Z");
                      p["spec"]["securityContext"] = {{"runAsUser", 70}};
                      return p;
                    },
                    "", "", -1, -1, "", "", "", 0, 0, "", "RunAsUserRequired", "spec.database.runAsGroup"},
        ResolveCase{"NamedContainer", [] { return sts_pod(0); }, "/var/run/postgresql/x", "exporter", -1, -1, "", "", "",
                    0, 0, "", "DataVolumeNotFound", "spec.database.workloadRef"},
        ResolveCase{"NamedContainerMissing", [] { return sts_pod(0); }, "", "pg", -1, -1, "", "", "", 0, 0, "",
                    "DataVolumeNotFound", "spec.database.container"},
        ResolveCase{"NoMountAtTheDataDirectory", [] { return sts_pod(0); }, "/srv/pg", "", -1, -1, "", "", "", 0, 0, "",
                    "DataVolumeNotFound", "spec.database.workloadRef"},
        ResolveCase{"AnEmptyDirIsNoClaim",
                    [] {
                      json p = deploy_pod("x1", "2026-11-24T10:00:00Z");
                      p["spec"]["volumes"][0] = {{"name", "db-data"}, {"emptyDir", json::object()}};
                      return p;
                    },
                    "", "", 101, 102, "", "", "", 0, 0, "", "DataVolumeNotFound", "spec.database.workloadRef"},
        ResolveCase{"GarbageDoesNotCrash", [] { return json{{"spec", {{"containers", "x"}, {"volumes", 3}}}}; }, "", "",
                    101, 102, "", "", "", 0, 0, "", "DataVolumeNotFound", "spec.database.workloadRef"}),
    [](const auto& info) { return info.param.name; });

TEST(PickPod, LowestReadyOrdinalOfTheStatefulSet) {
  json unready = sts_pod(0);
  unready["status"]["conditions"][0]["status"] = "False";
  json stranger = sts_pod(1);
  stranger["metadata"]["ownerReferences"] = owner("StatefulSet", "other");
  const std::vector<json> pods = {sts_pod(10), unready, stranger, sts_pod(2)};
  const json* p = pick_pod("StatefulSet", "supabase-db", pods);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ((*p)["metadata"]["name"], "supabase-db-2");  // 2 < 10 as numbers, not as text
}

TEST(PickPod, OldestReadyPodOfTheDeployment) {
  json terminating = deploy_pod("a", "2026-11-24T09:00:00Z");
  terminating["metadata"]["deletionTimestamp"] = "2026-11-24T10:00:00Z";
  json pending = deploy_pod("b", "2026-11-24T09:10:00Z");
  pending["status"]["phase"] = "Pending";
  json other_deploy = deploy_pod("c", "2026-11-24T09:20:00Z");
  other_deploy["metadata"]["ownerReferences"] = owner("ReplicaSet", "supabase-db-extra-5c6d");
  const std::vector<json> pods = {deploy_pod("e", "2026-11-24T09:50:00Z"), terminating, pending, other_deploy,
                                  deploy_pod("d", "2026-11-24T09:40:00Z")};
  const json* p = pick_pod("Deployment", "supabase-db", pods);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ((*p)["metadata"]["name"], "supabase-db-7d9f8c-d");
}

TEST(PickPod, NoneRunning) {
  json unscheduled = sts_pod(0);
  unscheduled["spec"].erase("nodeName");
  EXPECT_EQ(pick_pod("StatefulSet", "supabase-db", {unscheduled, json("garbage")}), nullptr);
  EXPECT_EQ(pick_pod("StatefulSet", "supabase-db", {}), nullptr);
}

TEST(CheckClaim, ReadWriteOncePodCanNeverBeMountedBySecondPod) {
  const json rwop = {{"metadata", {{"name", "pgdata"}}}, {"spec", {{"accessModes", {"ReadWriteOncePod"}}}}};
  const auto p = check_claim(rwop, "spec.database.dataVolume.claimName");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->reason, "DataVolumeReadWriteOncePod");
  EXPECT_EQ(p->field, "spec.database.dataVolume.claimName");
  EXPECT_NE(p->message.find("read-only"), std::string::npos) << p->message;
  EXPECT_FALSE(check_claim({{"spec", {{"accessModes", {"ReadWriteOnce"}}}}}, "f"));
  EXPECT_FALSE(check_claim(json("garbage"), "f"));
}

TEST(DataVolumeRequest, DependsOnlyOnWhatTheCheckReads) {
  bo::api::BackupPolicySpec spec;
  spec.database.data_volume.claim_name = "pgdata";
  spec.database.has_data_volume = true;
  auto a = data_volume_request(spec, "shop", "/var/lib/postgresql/data");
  ASSERT_TRUE(a);
  EXPECT_FALSE(a->workload());
  // An explicit claim's check does not depend on the server's data directory.
  EXPECT_EQ(*a, *data_volume_request(spec, "shop", ""));
  spec.database.has_data_volume = false;
  spec.database.data_volume.claim_name.clear();
  spec.database.has_workload_ref = true;
  spec.database.workload_ref = {"StatefulSet", "supabase-db"};
  auto b = data_volume_request(spec, "shop", "/var/lib/postgresql/data");
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->workload());
  EXPECT_NE(*b, *data_volume_request(spec, "shop", ""));
  spec.database.workload_ref.kind = "DaemonSet";
  EXPECT_FALSE(data_volume_request(spec, "shop", ""));
}

// The resolver with a substituted check: a request is checked once, its
// outcome returned for it alone, re-checked on the interval, and the policy
// woken only when the outcome changes.
TEST(DataVolumeResolver, ChecksInTheBackgroundAndWakesOnChange) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> woken;
  std::atomic<bool> claim_exists{false};
  DataVolumeResolver resolver(
      [&](const DataVolumeRequest& req) {
        if (!claim_exists) return check_failed("DataVolumeNotFound", "spec.database.dataVolume.claimName", req.claim_name);
        DataVolumeCheck c;
        c.resolved = true;
        c.volume.claim_name = req.claim_name;
        return c;
      },
      [&](const std::string& key) {
        std::lock_guard lock(mu);
        woken.push_back(key);
        cv.notify_all();
      },
      std::chrono::milliseconds(20), 1000);
  auto wait_woken = [&](size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(10), [&] { return woken.size() >= n; });
  };
  DataVolumeRequest req;
  req.ns = "shop";
  req.claim_name = "pgdata";
  EXPECT_FALSE(resolver.observe("shop/db", req));  // pending
  ASSERT_TRUE(wait_woken(1));
  auto got = resolver.observe("shop/db", req);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->reason, "DataVolumeNotFound");
  claim_exists = true;  // the re-check finds it without anyone asking
  ASSERT_TRUE(wait_woken(2));
  got = resolver.observe("shop/db", req);
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->resolved);
  // Another request has no outcome until checked.
  DataVolumeRequest other = req;
  other.claim_name = "pgdata-2";
  EXPECT_FALSE(resolver.observe("shop/db", other));
  ASSERT_TRUE(wait_woken(3));
  EXPECT_EQ(resolver.observe("shop/db", other)->volume.claim_name, "pgdata-2");
  {
    std::lock_guard lock(mu);
    for (const auto& k : woken) EXPECT_EQ(k, "shop/db");
  }
  resolver.forget("shop/db");
  EXPECT_FALSE(resolver.observe("shop/db", other));  // forgotten: pending again
  resolver.stop();
}


// With several threads, checks of different policies run at once (one
// thread made every new policy's first check wait for all before it).
TEST(DataVolumeResolver, ChecksOfDifferentPoliciesRunAtOnce) {
  std::mutex mu;
  std::condition_variable cv;
  int running = 0, most = 0;
  DataVolumeResolver resolver(
      [&](const DataVolumeRequest& req) {
        std::unique_lock lock(mu);
        ++running;
        most = std::max(most, running);
        cv.notify_all();
        // Each check waits (bounded) for another to be running beside it.
        cv.wait_for(lock, std::chrono::seconds(1), [&] { return running >= 2; });
        --running;
        DataVolumeCheck c;
        c.resolved = true;
        c.volume.claim_name = req.claim_name;
        return c;
      },
      [](const std::string&) {}, std::chrono::hours(1), 0, 4);
  for (int i = 0; i < 16; ++i) {
    DataVolumeRequest req;
    req.ns = "shop";
    req.claim_name = "pgdata-" + std::to_string(i);
    EXPECT_FALSE(resolver.observe("shop/db-" + std::to_string(i), req));
  }
  {
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return most >= 2; })) << "checks ran one at a time";
  }
  resolver.stop();
}

}  // namespace
