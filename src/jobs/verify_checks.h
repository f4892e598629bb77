// The pure part of `run-job verify` (docs/verification.md): which checks a
// profile has, the user's SQL checks as VERIFY_CHECKS carries them, how each
// check's observations are judged, the recovery settings written into the
// scratch instance's data directory, and the result JSON capped to the
// termination message's 4096 bytes. No I/O, no clock: verify.cpp observes,
// these functions decide.
#pragma once
#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

namespace bo::jobs {

inline constexpr size_t kTerminationLimit = 4096;  // the kubelet keeps at most 4 KiB
inline constexpr int kDefaultCheckTimeoutSeconds = 60;
inline constexpr int kMaxCheckTimeoutSeconds = 3600;
inline constexpr size_t kMaxUserChecks = 20;     // keeps every check's name and verdict within 4096 bytes
inline constexpr size_t kMaxCheckNameLength = 63;

// Names of the built-in checks, in the order they run and are reported.
inline constexpr const char* kCheckRecovered = "recovered";
inline constexpr const char* kCheckRecoveryTarget = "recovery-target";
inline constexpr const char* kCheckSystemIdentifier = "system-identifier";
inline constexpr const char* kCheckSupabaseSchemas = "supabase-schemas";
// check-database after an in-place restore: the writes the restore held are released.
inline constexpr const char* kCheckWritesReleased = "writes-released";

enum class VerifyProfile { kNone, kSupabaseSelfHosted };

// VERIFY_PROFILE: "" (no profile: the three built-in checks every
// verification has) or "supabase-self-hosted"; anything else is an error
// naming the variable.
[[nodiscard]] std::expected<VerifyProfile, std::string> parse_verify_profile(const std::string& text);
[[nodiscard]] std::vector<std::string> builtin_check_names(VerifyProfile profile);
// What supabase-schemas requires: these schemas, and these tables readable.
[[nodiscard]] const std::vector<std::string>& supabase_schemas();
[[nodiscard]] const std::vector<std::string>& supabase_tables();

struct SqlCheck {
  std::string name;
  std::string sql;
  std::optional<std::string> expect;  // the first column of the first row, as text
  int timeout_seconds = kDefaultCheckTimeoutSeconds;
};

// VERIFY_CHECKS: a JSON array of {"name", "sql", "expect"?, "timeoutSeconds"?}
// (empty text: no checks). An error names the offending element and field,
// e.g. "VERIFY_CHECKS[1].timeoutSeconds: must be an integer from 1 to 3600".
[[nodiscard]] std::expected<std::vector<SqlCheck>, std::string> parse_sql_checks(const std::string& text);

struct CheckResult {
  std::string name;
  bool passed = false;
  int64_t ms = 0;
  std::string output;
};

// What running one check's statement gave: an error, or its first row's first column.
struct SqlOutcome {
  std::string error;     // the server's (or libpq's) message; non-empty means it failed
  bool has_row = false;  // false: the statement returned no rows (or was not a query)
  bool is_null = false;
  std::string value;     // the first column of the first row, as text
};

// A user check passes when its statement ran (within its timeout) and, with
// `expect`, the first column of the first row equals it as text (NULL and
// no rows never equal anything). Output: the value, or the error.
[[nodiscard]] CheckResult judge_sql_check(const SqlCheck& check, const SqlOutcome& outcome);

// --- the stop sentinel: what the checks compare against -------------------
struct StopSentinel {
  uint64_t start_lsn = 0, finish_lsn = 0;
  uint32_t timeline = 0;
  std::string system_identifier;  // decimal, as pg_control_system() prints it; empty when not recorded
};
[[nodiscard]] std::expected<StopSentinel, std::string> parse_stop_sentinel(const std::string& text);

// --- built-in checks --------------------------------------------------------
// `recovered`: out of recovery, and a write into a temporary table succeeded.
[[nodiscard]] CheckResult judge_recovered(bool in_recovery, const std::string& write_error);

struct RecoveryTarget {
  uint64_t finish_lsn = 0;                // the backup's end (the sentinel's FinishLSN)
  std::optional<std::chrono::system_clock::time_point> point_in_time;  // none: to the backup's end
};
struct ReplayState {
  std::optional<uint64_t> replay_lsn;  // pg_last_wal_replay_lsn()
  std::optional<std::chrono::system_clock::time_point> last_commit;  // pg_last_xact_replay_timestamp()
  std::string server_log;              // what the server wrote while recovering
};
// `recovery-target`: recovery replayed at least to the backup's end
// (replay LSN >= FinishLSN: otherwise the copy is not consistent); to a
// point in time, also no replayed commit is after it (the log's "recovery
// stopping before …" line is quoted when there is one).
[[nodiscard]] CheckResult judge_recovery_target(const RecoveryTarget& target, const ReplayState& state);

// `system-identifier`: the restored cluster is the one the backup was taken of.
[[nodiscard]] CheckResult judge_system_identifier(const std::string& sentinel_id, const std::string& restored_id);

struct TableCount {
  std::string table;     // schema.table
  std::optional<int64_t> count;
  std::string error;     // why it could not be counted
};
// `supabase-schemas`: every schema of supabase_schemas() is present and
// every table of supabase_tables() was counted; output names the counts.
[[nodiscard]] CheckResult judge_supabase_schemas(const std::vector<std::string>& present_schemas,
                                                 const std::vector<TableCount>& counts);

// --- recovery settings ------------------------------------------------------
// A value single-quoted for postgresql.conf (quotes doubled).
[[nodiscard]] std::string conf_quote(const std::string& value);
// The new postgresql.auto.conf of the scratch instance: the restored one
// without any recovery or replication setting it carried (a restore_command,
// a recovery target or primary_conninfo left from production would conflict
// with ours or reach out), then restore_command and the target: the end of
// the backup (recovery_target = 'immediate') or the point in time, with
// recovery_target_action = 'promote'.
[[nodiscard]] std::string recovery_auto_conf(const std::string& restored_auto_conf, const std::string& restore_command,
                                             std::optional<std::chrono::system_clock::time_point> point_in_time);

// --- the result -------------------------------------------------------------
struct VerifyResult {
  std::string restored;  // BACKUP_ID
  std::string checksum;  // sha256:… of the stop sentinel as stored (empty before it was read)
  bool recovered = false;
  std::optional<double> recovery_seconds;
  std::string system_identifier;
  std::string replay_lsn;
  std::vector<CheckResult> checks;
  std::string error;  // "Reason: message" when it failed before or outside the checks
  // restore-in-place only (absent from verify's result): where the data
  // from before the restore is, relative to the volume ("" when none was
  // moved), and whether it was deleted instead.
  std::optional<std::string> aside;
  std::optional<bool> discarded;
};

[[nodiscard]] bool all_passed(const VerifyResult& result);

// The result as one JSON object of at most `limit` bytes: outputs are cut
// (each to the same length, "…" marking the cut) until it fits; a long
// error keeps its head and the tail of the log. If even empty outputs do not
// fit, passed checks are left out first ("checksOmitted" counts them).
[[nodiscard]] std::string result_json(const VerifyResult& result, size_t limit = kTerminationLimit);

// At most `max_bytes` of `text` (whole UTF-8 characters), "…" appended when cut.
[[nodiscard]] std::string cap_text(const std::string& text, size_t max_bytes);

}  // namespace bo::jobs
