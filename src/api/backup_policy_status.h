// BackupPolicy status (backup.si.dev/v1alpha1), typed: read once from the
// stored object, planned over, written once. It mirrors the CRD's status
// schema field for field (crds/backup.si.dev_backuppolicies.yaml); every
// leaf is optional because the schema requires none, so what was stored
// comes back out unchanged (the controller writes only when the status
// changed). Reading never throws: a field of the wrong type reads as absent,
// a list entry that is not an object is dropped (the API server refuses both,
// so only a status written around it, or by an older operator, has them).
// Fields the schema does not name are pruned by the API server and dropped
// here too.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bo::api {

// status.backups[]: one backup in the catalog.
struct BackupRecord {
  std::optional<std::string> id, checksum, type, base, full;
  std::optional<int64_t> delta_count;
  std::optional<std::string> start_lsn, finish_lsn;
  std::optional<bool> restorable;
  std::optional<std::string> not_restorable_reason, start_time, completion_time;
  std::optional<int64_t> size_bytes, uncompressed_bytes;
  std::optional<bool> verified;
  std::optional<std::string> verified_by;
  std::optional<bool> verified_marker;
  std::optional<std::vector<std::string>> kept_for;
  std::optional<std::string> job;
};

// status.recentRuns[]: a finished Job.
struct RunRecord {
  std::optional<std::string> job, action, result, completion_time, message;
};

// status.paasState.bundles[]
struct StateBundleRecord {
  std::optional<std::string> context, id, sha256;
  std::optional<int64_t> files, size_bytes;
  std::optional<std::string> completion_time, job;
};

// status.lastSuccessfulBackup
struct BackupRef {
  std::optional<std::string> id, checksum, type, completion_time;
};

// status.lastVerifiedBackup
struct VerifiedBackupRef {
  std::optional<std::string> id, checksum, type, completion_time, verified_at, request;
};

// status.lastVerification
struct VerificationOutcome {
  std::optional<std::string> request, result, backup_id, completion_time, message;
};

// status.lastDrill
struct DrillOutcome {
  std::optional<std::string> request, backup_id, completion_time;
};

// status.lastOffsiteCopy
struct OffsiteCopyRecord {
  std::optional<std::string> id, completion_time, checksum, immutable_until, retention_mode;
  struct Immutability {
    std::optional<std::string> reason, message;
  };
  std::optional<Immutability> immutability;
  std::optional<std::string> job;
};

// status.schedules.<action>
struct ScheduleMark {
  std::optional<std::string> last_schedule_time;
};

struct PaasStateStatus {
  std::optional<std::vector<StateBundleRecord>> bundles;
};

struct BackupPolicyStatus {
  std::optional<int64_t> observed_generation;
  // metav1.Conditions, kept as JSON for the condition helpers both kinds
  // share; read as an array of objects whose known fields have their types.
  std::optional<nlohmann::json> conditions;
  std::optional<std::string> last_schedule_time, next_schedule_time;
  std::optional<std::map<std::string, ScheduleMark>> schedules;
  std::optional<BackupRef> last_successful_backup;
  std::optional<VerifiedBackupRef> last_verified_backup;
  std::optional<VerificationOutcome> last_verification;
  std::optional<DrillOutcome> last_drill;
  // Owned and typed by reconcile/data_volume.h and reconcile/continuous_archiving.h
  // (to_status/from_status and apply_continuous_archiving): kept as the objects they write.
  std::optional<nlohmann::json> data_volume, continuous_archiving;
  std::optional<OffsiteCopyRecord> last_offsite_copy;
  std::optional<PaasStateStatus> paas_state;
  std::optional<std::vector<BackupRecord>> backups;
  std::optional<std::vector<std::string>> active_jobs;
  std::optional<int64_t> missed_schedules;
  std::optional<std::vector<RunRecord>> recent_runs;
};

// Never throws; anything but an object reads as an empty status.
[[nodiscard]] BackupPolicyStatus backup_policy_status_from_json(const nlohmann::json& status);
[[nodiscard]] nlohmann::json to_json(const BackupPolicyStatus& status);

[[nodiscard]] BackupRecord backup_record_from_json(const nlohmann::json& entry);
[[nodiscard]] nlohmann::json to_json(const BackupRecord& entry);

}  // namespace bo::api
