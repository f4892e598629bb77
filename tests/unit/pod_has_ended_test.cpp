// Which pod events wake a BackupPolicy: only those that show what view_job
// reads (a final phase, a terminated container, a failed init container).
#include <gtest/gtest.h>

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

}  // namespace
