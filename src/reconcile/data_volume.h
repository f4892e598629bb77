// Where a policy's database keeps its data, and whether a backup Job can
// reach it: the pure half of the checks that run before any backup Job.
// spec.database names either the claim (dataVolume) or the workload running
// PostgreSQL (workloadRef); from a workload's running pod these functions
// read the claim and mount of the data directory, the uid/gid and the node.
// The I/O (GET the claim, the workload, list its pods) is in
// data_volume_resolver.{h,cpp}; the planner reads the outcome.
#pragma once
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/backup_policy.h"

namespace bo::reconcile {

// Where PostgreSQL images (postgres, supabase/postgres) keep their data
// unless PGDATA says otherwise: the data directory looked for when the
// server's own data_directory is not known yet.
inline constexpr const char* kDefaultDataDirectory = "/var/lib/postgresql/data";

// What backup Jobs mount and run as.
struct ResolvedDataVolume {
  std::string claim_name;
  std::string mount_path;  // where the claim is mounted (the database's own path)
  std::string sub_path;
  int64_t run_as_user = -1, run_as_group = -1;
  std::string node_name;  // workloadRef: the database pod's node (Jobs are pinned to it)
  std::string pod;        // workloadRef: the pod it was read from
  std::string data_directory;  // workloadRef: PGDATA for wal-g (the server's, or the default)
  std::string image;           // workloadRef: the database container's image (scratch verifications run it)
  bool operator==(const ResolvedDataVolume&) const = default;
};

// The outcome of one check: resolved, or a reason (DataVolumeNotFound,
// DataVolumeReadWriteOncePod, WorkloadNotFound, WorkloadNotRunning,
// RunAsUserRequired, DataVolumeCheckFailed) with a message naming the field.
struct DataVolumeCheck {
  bool resolved = false;
  std::string reason;
  std::string field;
  std::string message;
  ResolvedDataVolume volume;  // when resolved
  bool operator==(const DataVolumeCheck&) const = default;
};

// Everything a check depends on; a different request is a different check.
struct DataVolumeRequest {
  std::string ns;
  std::string claim_name, mount_path, sub_path;  // dataVolume
  std::string kind, name, container;             // workloadRef
  std::string data_directory;                    // workloadRef: the server's, when the archiving probe knows it
  int64_t run_as_user = -1, run_as_group = -1;
  [[nodiscard]] bool workload() const { return !kind.empty(); }
  bool operator==(const DataVolumeRequest&) const = default;
};

// The request for a valid spec (none when it names neither a claim nor a workload).
[[nodiscard]] std::optional<DataVolumeRequest> data_volume_request(const api::BackupPolicySpec& spec,
                                                                   const std::string& ns,
                                                                   const std::string& data_directory);

[[nodiscard]] DataVolumeCheck check_failed(const std::string& reason, const std::string& field,
                                           const std::string& message);

// The workload's pod to read: Running, Ready, not terminating, owned by the
// workload (a StatefulSet directly; a Deployment through a ReplicaSet named
// <deployment>-<hash>); for StatefulSets the lowest ordinal, else the oldest.
// `pods` are the items of a list by the workload's selector. Null: none.
[[nodiscard]] const nlohmann::json* pick_pod(const std::string& kind, const std::string& name,
                                             const std::vector<nlohmann::json>& pods);

// The claim, mount, uid/gid and node of the data directory in `pod`: the
// mount that is the deepest prefix of `data_directory` (or of
// kDefaultDataDirectory when empty) among the containers (only `container`
// when named; init containers have ended and never count). uid/gid: the
// container's securityContext over the pod's; when neither sets a non-root
// runAsUser (images that start as root and step down, like postgres and
// supabase/postgres), `fallback_uid`/`fallback_gid` (spec.database.runAsUser
// and runAsGroup), else RunAsUserRequired.
[[nodiscard]] std::expected<ResolvedDataVolume, api::Problem> resolve_pod_volume(const nlohmann::json& pod,
                                                                                 const std::string& data_directory,
                                                                                 const std::string& container,
                                                                                 int64_t fallback_uid,
                                                                                 int64_t fallback_gid);

// A claim a backup Job cannot mount: ReadWriteOncePod (one pod ever, so a
// second pod cannot mount it even read-only). `field` names where it came from.
[[nodiscard]] std::optional<api::Problem> check_claim(const nlohmann::json& pvc, const std::string& field);

}  // namespace bo::reconcile

namespace bo::reconcile {

// The last resolved volume, kept in status.dataVolume so an operator restart
// (whose first check is still pending) neither blocks due backups nor
// forgets where the data is. `source` names what it was resolved from (the
// spec's dataVolume or workloadRef, and the uid/gid asked for): a changed
// spec never reuses it.
[[nodiscard]] std::string data_volume_source(const api::BackupPolicySpec& spec);
[[nodiscard]] nlohmann::json to_status(const ResolvedDataVolume& v, const std::string& source);
// The volume recorded in `status` for `source`; none when absent, for
// another source, or malformed.
[[nodiscard]] std::optional<ResolvedDataVolume> from_status(const nlohmann::json& status, const std::string& source);

}  // namespace bo::reconcile
