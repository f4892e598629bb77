// RestoreRequest (backup.si.dev/v1alpha1): the typed spec, and the pure
// decision whether a restore may go ahead (POLICY.md §7: a missing,
// unknown, unverified or mismatching backup blocks the restore and points to
// the last verified snapshot; issue 16 item 4: the operator never runs Jobs
// for a requester somewhere that requester could not run them).
#pragma once
#include <expected>
#include <map>
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
  // In place (purpose restore into the policy's own namespace): when the
  // database's claim has no room to keep its current data directory beside
  // the restored one, delete it instead of refusing.
  bool discard_current_data = false;
};

[[nodiscard]] std::expected<RestoreRequestSpec, Problem> parse_restore_request_spec(const json& spec);

// Who asked, as the identity webhook recorded the API server's userInfo
// (metadata.annotations[backup.si.dev/requested-by], copied to status.requestedBy).
struct Requester {
  std::string username, uid;
  std::vector<std::string> groups;
  std::map<std::string, std::vector<std::string>> extra;
};
// From status.requestedBy, else the annotation; none when neither names a user.
[[nodiscard]] std::optional<Requester> requester_of(const json& request);

// What a request makes the operator do in its target namespace on the
// requester's behalf: create Jobs (the restore's checks run there).
inline constexpr const char* kAccessVerb = "create";
inline constexpr const char* kAccessGroup = "batch";
inline constexpr const char* kAccessResource = "jobs";

// The API server's answer to whether `user` may create Jobs in `ns`.
struct AccessCheck {
  bool checked = false;  // false: not asked (yet); nothing starts
  bool allowed = false;
  std::string user, ns;
  std::string reason;  // the API server's reason or evaluation error, when it gives one
};
// The SubjectAccessReview (authorization.k8s.io/v1) asking it, with the
// requester's groups, uid and extra (a scoped identity stays scoped).
[[nodiscard]] json job_access_review(const Requester& who, const std::string& ns);
// Its answer (the created review); anything but status.allowed=true denies.
[[nodiscard]] AccessCheck read_access_review(const json& review, const Requester& who, const std::string& ns);
// As kept in status.access, and read back (so an allowed request is not asked about again).
[[nodiscard]] json access_to_json(const AccessCheck& a);
[[nodiscard]] AccessCheck access_from_json(const json& status_access);

// What the decision needs besides the spec and the policy (gathered by the controller).
struct RestoreContext {
  bool target_is_production = false;  // the chosen target is a production namespace
  std::string operator_namespace;     // never a target (nor is kube-system)
  AccessCheck access;                 // the requester's right to create Jobs in the target
};

struct RestoreDecision {
  bool blocked = false;
  // PolicyNotFound, InvalidPolicy, InvalidTarget, TargetNotAllowed, ImageNotAllowed, Forbidden,
  // UnknownBackup, UnverifiedBackup, ChecksumMismatch, NoVerifiedBackup, NotRestorable
  std::string reason;
  std::string message;  // names the field, or the last verified backup to use instead
  // Everything else allows it, but the requester's right has not been asked
  // yet (or was asked for another user or namespace): wait, never start.
  bool awaiting_access = false;
  std::string backup_id, checksum;
  std::string target_namespace;
};

// `policy` is the BackupPolicy object (null if absent). Checked in order: the
// policy, the target (production, always refused, not listed by the policy),
// the check images, the requester's right, then the backup.
[[nodiscard]] RestoreDecision decide_restore(const RestoreRequestSpec& spec, const std::string& request_namespace,
                                             const json& policy, const RestoreContext& context);

}  // namespace bo::api
