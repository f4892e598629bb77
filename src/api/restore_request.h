// RestoreRequest (backup.si.dev/v1alpha1): the typed spec, and the pure
// decision whether a restore may go ahead (POLICY.md §7: a missing,
// unknown, unverified or mismatching backup blocks the restore and points to
// the last verified snapshot).
#pragma once
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/backup_policy.h"

namespace bo::api {

// One check after a restore: SQL run by the operator's check runner (sql,
// and optionally the result it must give), or an image run as a Job.
struct ValidationCheck {
  std::string name, image;
  std::vector<std::string> command;
  std::string sql;
  std::optional<std::string> expect;
  long timeout_seconds = 600;
  [[nodiscard]] bool is_sql() const { return !sql.empty(); }
};

struct RestoreRequestSpec {
  std::string policy;
  std::string backup_id = "latest";
  std::string checksum;
  std::string purpose = "restore";  // restore | drill | verification
  std::string target_namespace;
  std::string point_in_time;
  std::vector<ValidationCheck> validation;
  // spec.target.dataVolume: the (empty) claim wal-g backup-fetch restores
  // into, and where it is mounted (PGDATA of the server that will run on it).
  // Empty: a scratch emptyDir that ends with the Job.
  struct DataVolume {
    std::string claim_name;
    std::string mount_path = "/var/lib/postgresql/data";
    std::string sub_path;
  } target_volume;
};

[[nodiscard]] std::expected<RestoreRequestSpec, Problem> parse_restore_request_spec(const json& spec);

struct RestoreDecision {
  bool blocked = false;
  std::string reason;   // PolicyNotFound, UnknownBackup, UnverifiedBackup, ChecksumMismatch, NoVerifiedBackup, InvalidTarget
  std::string message;  // names the last verified backup to use instead
  std::string backup_id, checksum;
  std::string target_namespace;
};

// `policy` is the BackupPolicy object (null if absent); `target_is_production`
// says whether the chosen target namespace is a production one.
[[nodiscard]] RestoreDecision decide_restore(const RestoreRequestSpec& spec, const std::string& request_namespace,
                                             const json& policy, bool target_is_production);

}  // namespace bo::api
