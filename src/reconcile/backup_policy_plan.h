// The BackupPolicy reconciler's decisions as one pure function: from the
// policy, the Jobs it owns (with their results), its Secrets and the time,
// compute the status to write, the Jobs to create and delete, and the Events
// to record. The controller does the I/O around it.
#pragma once
#include <chrono>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/backup_policy.h"
#include "postgres/archiving.h"
#include "reconcile/backup_jobs.h"
#include "reconcile/data_volume.h"

namespace bo::reconcile {

struct ObservedJob {
  std::string name;
  std::string action;  // backup.si.dev/action label
  SysTime slot;        // backup.si.dev/scheduled-at
  enum class State { kActive, kSucceeded, kFailed } state = State::kActive;
  std::string termination_message;  // of the job's pod, when finished
  std::string failure;              // Job condition reason/message when failed
  std::optional<SysTime> finished;
  std::vector<std::string> expire;  // retain Jobs: the ids they were asked to delete
  std::string context;              // state-bundle Jobs: backup.si.dev/context
};

// A RestoreRequest naming this policy: verifications (created by the policy)
// mark backups verified; drills keep DrillCurrent.
struct ObservedRestore {
  std::string name;
  std::string purpose;  // verification | drill | restore
  std::string phase;    // "", Pending, Blocked, Restoring, Validating, Succeeded, Failed
  std::string backup_id, checksum;
  std::string message;
  std::optional<SysTime> completion;
  bool owned = false;  // created by this policy (its verifications)
};

struct EventSpec {
  std::string type;  // Normal | Warning
  std::string reason;
  std::string message;
};

struct PolicyPlan {
  nlohmann::json status;
  std::vector<nlohmann::json> create;
  // One per entry of `create`: the Event its creation announces. Recorded
  // when that create succeeds, whatever becomes of the status write (the
  // next plan sees the Job and plans neither again).
  std::vector<EventSpec> create_events;
  std::vector<std::string> remove;  // Job names
  std::vector<nlohmann::json> create_restores;  // verification RestoreRequests
  std::vector<std::string> remove_restores;     // finished verifications beyond the history limits
  std::vector<EventSpec> events;
  std::optional<std::chrono::milliseconds> requeue_after;
  int new_missed = 0;
  // Runs newly recorded this time (for metrics): action, result, seconds.
  struct Run {
    std::string action, result;
    double seconds = 0;
  };
  std::vector<Run> finished_runs;
};

// The bounds of status lists, equal to the CRD's maxItems (a status write that
// exceeds one is refused, so the plan never writes more):
inline constexpr size_t kMaxCatalog = 400;       // status.backups, newest kept (see the plan)
inline constexpr size_t kMaxStateBundles = 512;  // status.paasState.bundles, newest kept
inline constexpr size_t kMaxActiveJobs = 256;    // status.activeJobs

struct PlanInputs {
  nlohmann::json policy;  // the stored object (metadata, spec, status)
  // policy.spec parsed, once per reconcile, by the controller (which needs it
  // too); unset, the plan parses policy.spec itself (policy_spec below).
  std::optional<std::expected<api::BackupPolicySpec, api::Problem>> spec;
  std::vector<ObservedJob> jobs;
  api::SecretData secrets;  // only the Secrets the policy names that exist
  SysTime now;
  std::string default_image = kDefaultImage;
  std::vector<ObservedRestore> restores;
  // The newest WAL archiving probe of spec.database (none yet: the probe runs
  // in the background). Its data_directory is the server's SHOW data_directory:
  // backup Jobs pass it to wal-g when it lies under the data volume's mount.
  std::optional<postgres::ArchiveObservation> archiving;
  // The newest check of the data volume (the claim, or what spec.database.
  // workloadRef resolves to), made in the background; none while pending.
  // No backup Job is created unless it resolved.
  std::optional<DataVolumeCheck> data_volume;
  std::string operator_namespace;  // never a verification target (nor is kube-system)
  // Whether a catalog Job reads status.backups back from storage while
  // status.schedules.catalog is missing (and retention waits for it).
  bool sync_catalog = true;
};

[[nodiscard]] PolicyPlan plan_backup_policy(const PlanInputs& in);
// in.spec, or policy.spec parsed when the caller left it unset.
[[nodiscard]] std::expected<api::BackupPolicySpec, api::Problem> policy_spec(const PlanInputs& in);

}  // namespace bo::reconcile
