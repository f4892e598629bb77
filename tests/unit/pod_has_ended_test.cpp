// Which pod and Job events wake a BackupPolicy: only those that show what
// view_job and the plan read (for a pod: a final phase, a terminated
// container, a failed init container; for a Job: anything it caches but its
// resourceVersion).
#include <gtest/gtest.h>

#include "reconcile/backup_jobs.h"
#include "kube/selector.h"
#include "reconcile/caches.h"

using nlohmann::json;

namespace {

struct PodCase {
  const char* what;
  json pod;
  bool ended;
};

TEST(PodHasEnded, OnlyWhatViewJobReadsCounts) {
  const json running = {{"running", {{"startedAt", "2026-12-03T10:00:00Z"}}}};
  const json done = {{"terminated", {{"exitCode", 0}, {"message", "{}"}}}};
  const json failed = {{"terminated", {{"exitCode", 2}}}};
  const std::vector<PodCase> cases = {
      {"no status yet", {{"metadata", {{"name", "p"}}}}, false},
      {"pending", {{"status", {{"phase", "Pending"}}}}, false},
      {"running", {{"status", {{"phase", "Running"}, {"containerStatuses", {{{"name", "walg"}, {"state", running}}}}}}}, false},
      {"an init container done, the main one starting",
       {{"status", {{"phase", "Pending"}, {"initContainerStatuses", {{{"name", "tools"}, {"state", done}}}}}}}, false},
      {"succeeded", {{"status", {{"phase", "Succeeded"}}}}, true},
      {"failed", {{"status", {{"phase", "Failed"}}}}, true},
      {"its container terminated, phase not yet final",
       {{"status", {{"phase", "Running"}, {"containerStatuses", {{{"name", "walg"}, {"state", done}}}}}}}, true},
      {"an init container failed",
       {{"status", {{"phase", "Pending"}, {"initContainerStatuses", {{{"name", "tools"}, {"state", failed}}}}}}}, true},
      // Wrong types read as absent, never throw.
      {"status not an object", {{"status", "Running"}}, false},
      {"statuses not a list", {{"status", {{"containerStatuses", "x"}}}}, false},
      {"state not an object", {{"status", {{"containerStatuses", {{{"state", 3}}}}}}}, false},
      {"terminated null", {{"status", {{"initContainerStatuses", {{{"state", {{"terminated", nullptr}}}}}}}}}, false},
  };
  for (const auto& c : cases) EXPECT_EQ(bo::reconcile::pod_has_ended(c.pod), c.ended) << c.what;
}

// The pods informer asks the API server for ended pods only: the selector
// parses as the API server would and lets through Succeeded and Failed, not
// a pod being scheduled, started or lost with its node.
TEST(EndedPodSelector, SelectsOnlyFinalPhases) {
  const auto sel = bo::kube::FieldSelector::parse(bo::reconcile::kEndedPodSelector);
  ASSERT_TRUE(sel);
  for (const auto& t : sel->terms()) EXPECT_EQ(t.field, "status.phase");
  const std::vector<std::pair<std::string, bool>> cases = {
      {"Succeeded", true}, {"Failed", true}, {"Pending", false}, {"Running", false}, {"Unknown", false}};
  for (const auto& [phase, selected] : cases)
    EXPECT_EQ(sel->matches([&](const std::string&) -> std::optional<std::string> { return phase; }), selected) << phase;
}

// The Job as created, then as the Job controller's first status write leaves
// it (active, ready, startTime, a new resourceVersion): slimmed as the cache
// keeps them, the two are the same Job to a reconcile.
TEST(JobChanged, OnlyWhatTheCacheKeepsButTheVersionCounts) {
  const json created = {
      {"apiVersion", "batch/v1"},
      {"kind", "Job"},
      {"metadata",
       {{"name", "p-full-1"},
        {"namespace", "db"},
        {"uid", "u1"},
        {"resourceVersion", "10"},
        {"labels", {{"backup.si.dev/policy", "p"}, {"backup.si.dev/action", "full"}}},
        {"annotations", {{"backup.si.dev/scheduled-at", "2026-12-04T00:00:00Z"}}},
        {"managedFields", json::array({{{"manager", "backup-operator"}}})}}},
      {"spec", {{"suspend", false}}},
      {"status", json::object()}};
  auto slim = [](json j) {
    bo::reconcile::slim_job(j);
    return j;
  };
  auto with = [&](const std::function<void(json&)>& f) {
    json j = created;
    j["metadata"]["resourceVersion"] = "11";
    f(j);
    return slim(j);
  };
  struct Case {
    const char* what;
    json next;
    bool changed;
  };
  const json complete = json::array({{{"type", "Complete"}, {"status", "True"}, {"lastTransitionTime", "2026-12-04T00:01:00Z"}}});
  const std::vector<Case> cases = {
      {"only the resourceVersion", with([](json&) {}), false},
      {"the Job controller's counts and start",
       with([](json& j) { j["status"] = {{"active", 1}, {"ready", 0}, {"startTime", "2026-12-04T00:00:01Z"}, {"terminating", 0}}; }),
       false},
      {"managedFields", with([](json& j) { j["metadata"]["managedFields"].push_back({{"manager", "kube-controller-manager"}}); }),
       false},
      {"a Complete condition", with([&](json& j) { j["status"]["conditions"] = complete; }), true},
      {"a completionTime", with([](json& j) { j["status"]["completionTime"] = "2026-12-04T00:01:00Z"; }), true},
      {"being deleted", with([](json& j) { j["metadata"]["deletionTimestamp"] = "2026-12-04T00:02:00Z"; }), true},
      {"a label", with([](json& j) { j["metadata"]["labels"]["backup.si.dev/action"] = "delta"; }), true},
      {"the expire annotation", with([](json& j) { j["metadata"]["annotations"]["backup.si.dev/expire"] = "a,b"; }), true},
  };
  for (const auto& c : cases) EXPECT_EQ(bo::reconcile::job_changed(slim(created), c.next), c.changed) << c.what;
}

}  // namespace
