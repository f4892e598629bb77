// An in-place restore (issue 16 item 3; POLICY.md §7): a RestoreRequest with
// purpose restore into its policy's own namespace restores the production
// database itself. Pure: where the data is, the two Jobs, and their results
// read back. The steps (restore_in_place_plan.cpp) are recorded in
// status.inPlace.step so an operator killed at any point carries on where it
// was:
//
//   Stopping   the freeze is in place (only the operator may change
//              Deployments, StatefulSets, their scale, Secrets and
//              ConfigMaps); the workload is scaled to 0 through its scale
//              subresource, and nothing goes on until its last pod is gone;
//   Restoring  one Job, `<request>-restore`, mounts the database's claim at
//              its root and runs `run-job restore-in-place` in the database's
//              own image (the scratch instance's pod shape, scratch.h): it
//              moves the current data directory aside on the same claim (or,
//              with spec.discardCurrentData and no room, deletes it), fetches
//              the backup, recovers and promotes it with a server only that
//              pod can reach, stops it cleanly and leaves a promoted data
//              directory (src/jobs/restore_in_place.h);
//   Checking   the workload is scaled back to the replicas recorded at the
//              start, and `<request>-check[-N]` runs `run-job check-database`
//              against the production server with the policy's credentials:
//              out of recovery, the same system identifier as the backup, the
//              profile's schemas, and the user's SQL checks in read-only
//              transactions;
//   Done       every check passed: the freeze is lifted.
// Any failure keeps the freeze and the moved-aside data, and the request's
// message says how to roll back. Deleting the request lifts the freeze but
// never starts the database again: whoever deletes it decides.
#pragma once
#include <cstdint>
#include <expected>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/backup_policy.h"
#include "api/restore_request.h"
#include "api/restore_request_status.h"

namespace bo::reconcile {

inline constexpr const char* kLabelInPlaceRestore = "restore-in-place";  // action label of the restore Job
inline constexpr const char* kLabelCheckDatabase = "check-database";     // action label of the check Job
inline constexpr const char* kInPlaceContainer = "restore";
inline constexpr const char* kCheckContainer = "check";
// Where the restore Job mounts the database's claim (its root: the data
// directory and its aside copy are both on it).
inline constexpr const char* kInPlaceVolumeMount = "/var/lib/postgresql/volume";

// The steps, as status.inPlace.step holds them.
inline constexpr const char* kStepStopping = "Stopping";
inline constexpr const char* kStepRestoring = "Restoring";
inline constexpr const char* kStepChecking = "Checking";
inline constexpr const char* kStepDone = "Done";

// Whether a request restores its policy's database in place: purpose
// restore, into the request's own namespace, and no spec.target.dataVolume.
[[nodiscard]] bool in_place_request(const api::RestoreRequestSpec& spec, const std::string& request_namespace);

// What the restore acts on, fixed when it starts (status.inPlace).
struct InPlaceTarget {
  std::string kind, name;   // the workload (StatefulSet | Deployment)
  std::string claim;        // the database's claim
  std::string data_path;    // the data directory, relative to the claim's root ("" = the root)
  std::string aside_path;   // where the current data directory goes, relative to the root
  int64_t run_as_user = -1, run_as_group = -1;
  std::string database_image;
  std::string node_name;    // the database pod's node when the workload check saw it (the claim is there)
  // status.inPlace as far as the target goes (the plan adds the step and what it found).
  [[nodiscard]] api::InPlaceRecord to_status() const;
  // None when status.inPlace lacks the workload's kind or name, or the claim.
  static std::optional<InPlaceTarget> from_status(const api::InPlaceRecord& in_place);
};

// From the policy (its workloadRef) and the data volume its workload check
// recorded (status.dataVolume); a reason and a message naming the field when
// there is none: WorkloadRefRequired, DataVolumeUnknown, RunAsUserRequired,
// VerificationImageRequired.
[[nodiscard]] std::expected<InPlaceTarget, api::Problem> in_place_target(const api::BackupPolicySpec& policy,
                                                                         const nlohmann::json& policy_status,
                                                                         const std::string& policy_name,
                                                                         const std::string& request);

struct InPlaceJobInputs {
  std::string request, request_ns, request_uid, policy;
  std::string backup_id, checksum, point_in_time;
  int64_t uncompressed_bytes = 0;
  bool discard_current_data = false;
  InPlaceTarget target;
  const api::BackupPolicySpec* spec = nullptr;
  std::vector<std::string> storage_keys;  // names of the storage Secret's keys
  std::string operator_image;
  std::vector<api::ValidationCheck> checks;  // the user's SQL checks (the check Job runs them)
};

[[nodiscard]] std::string in_place_restore_job_name(const std::string& request);
[[nodiscard]] std::string in_place_check_job_name(const std::string& request, int attempt);

// `<request>-restore`: the database's own image, the claim at its root, the
// production storage Secret by reference (this is the policy's namespace).
[[nodiscard]] nlohmann::json build_in_place_restore_job(const InPlaceJobInputs& in);
// `<request>-check[-N]`: the operator's image, the policy's database
// credentials by reference, nothing of storage.
[[nodiscard]] nlohmann::json build_in_place_check_job(const InPlaceJobInputs& in, int attempt,
                                                      const std::string& system_identifier);

// The rollback the message gives when a step failed.
[[nodiscard]] std::string in_place_rollback(const InPlaceTarget& t, int64_t replicas, const std::string& aside_state);

}  // namespace bo::reconcile
