// What `kubectl backup` (tools/kubectl-backup, installed as kubectl-backup)
// shows and creates, as pure functions of the objects it read and the clock:
// the tables of `status` and `list`, the RestoreRequests of `verify` and
// `restore`, and how a followed request reads while it runs. The binary only
// reads, writes and prints, so all of this is table-tested without a server.
#pragma once
#include <nlohmann/json.hpp>

#include <expected>
#include <optional>
#include <string>

#include "common/timefmt.h"

namespace bo::cli {

using json = nlohmann::json;

// "42s", "5m", "3h", "2d": the age of `then` at `now`, as kubectl prints ages;
// "-" when `then` is empty or unreadable.
[[nodiscard]] std::string age(const std::string& then, SysTime now);

// One row per policy of `list` (a BackupPolicyList): NAMESPACE (when
// `all_namespaces`), NAME, LAST BACKUP (id), AGE, ARCHIVING (the
// ContinuousArchiving condition's status), LAST VERIFIED (age), NEXT (the next
// slot), and every condition that is not True as Type=Status(Reason) (Reconciling
// and Stalled, abnormal-true, when they are True).
[[nodiscard]] std::string status_table(const json& list, SysTime now, bool all_namespaces);

// The catalog of `policy` (status.backups, newest first): ID, TYPE, COMPLETED
// (age), SIZE, RESTORABLE, VERIFIED, KEPT FOR.
[[nodiscard]] std::string catalog_table(const json& policy, SysTime now);

// A verification of the newest restorable full backup of `policy` into its
// verification target, named <policy>-verify-now-<yyyymmddhhmmss>; an error
// when the catalog has no such backup or verification is off.
[[nodiscard]] std::expected<json, std::string> verification_request(const json& policy, SysTime now);

struct RestoreOptions {
  std::string backup_id = "latest";  // --id, or latest (the newest verified backup)
  std::string to;                    // --to: the target namespace
  std::string point_in_time;         // --point-in-time (RFC 3339), optional
  std::string purpose = "restore";   // restore | drill
  std::string name;                  // empty: <policy>-restore-<yyyymmddhhmmss>
};

// The RestoreRequest of `restore`; with an id, the catalog's checksum goes
// with it (the operator refuses a mismatch). Errors name the flag.
[[nodiscard]] std::expected<json, std::string> restore_request(const json& policy, const RestoreOptions& opts,
                                                               SysTime now);

// How a followed RestoreRequest reads now: "Phase: message" plus any condition
// that changed, one line each, and whether it has ended (Succeeded, Failed or
// Blocked) and succeeded.
struct Progress {
  std::string line;  // empty when nothing is new since `last_line`
  bool ended = false;
  bool succeeded = false;
};
[[nodiscard]] Progress progress(const json& request, const std::string& last_line);

}  // namespace bo::cli
