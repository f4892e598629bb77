// Sections of plan_restore before anything is planned: a request being
// deleted removes what it made and then lets go of its finalizer, and a new
// one first gets the finalizer that will. Both write the stored status back
// as it was.
#include <algorithm>

#include "reconcile/restore_plan_parts.h"

namespace bo::reconcile::restore_plan {
namespace {

using json = nlohmann::json;

bool has_finalizer(const json& obj) {
  const json f = obj.at("metadata").value("finalizers", json::array());
  return std::find(f.begin(), f.end(), kRestoreFinalizer) != f.end();
}

}  // namespace

// Every Job, the scratch instance and the freeze go, then the finalizer.
bool follow_deletion(RestorePlanning& p) {
  if (!p.meta.contains("deletionTimestamp")) return false;
  const auto& in = p.in;
  auto& plan = p.plan;
  // An in-place restore Job that is running is left to finish: killed
  // mid-fetch it would leave the database's claim half written. The
  // request (and the freeze) go when it has ended; the database is not
  // started again (whoever deleted the request decides).
  bool restore_running = false;
  for (const auto& j : in.jobs) {
    if (j.role == "in-place-restore" && j.state == ObservedJob::State::kActive) {
      restore_running = true;
      continue;
    }
    plan.remove.emplace_back(j.ns, j.name);
  }
  if (restore_running) {
    plan.status = in.request.value("status", json());
    plan.requeue_after = std::chrono::seconds(2);
    return true;
  }
  // By name, whether or not its creation was recorded (a create may have
  // happened just before a crash); "not found" is done.
  if (p.scratch && !p.target.empty() && !(p.status.scratch && p.status.scratch->removed.value_or(false)))
    p.remove_scratch();
  if (in.freeze_present) plan.freeze = RestorePlan::Freeze::kLift;
  plan.remove_finalizer = has_finalizer(in.request) && in.jobs.empty() && !in.freeze_present;
  plan.status = in.request.value("status", json());
  return true;
}

// Nothing is created before the finalizer that cleans it up is stored.
bool add_finalizer_first(RestorePlanning& p) {
  if (has_finalizer(p.in.request)) return false;
  p.plan.add_finalizer = true;
  p.plan.status = p.in.request.value("status", json());
  return true;
}

}  // namespace bo::reconcile::restore_plan
