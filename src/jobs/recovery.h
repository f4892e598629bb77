// What `run-job verify` and `run-job restore-in-place` share, and the
// libpq pieces `run-job check-database` uses too (docs/verification.md): the
// backup part of the request, wal-g through the tools the init container
// copied, the stop sentinel's checksum, backup-fetch, the recovery settings,
// the image's postgres started where nothing but this Pod reaches it, the wait
// until it has promoted, and the built-in checks over its socket. A failure
// outside the checks is a JobError: a CamelCase reason and a message.
#pragma once
#include <libpq-fe.h>

#include <chrono>
#include <expected>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "common/timefmt.h"
#include "jobs/run_job.h"
#include "jobs/verify_checks.h"

namespace bo::jobs {

struct JobError {
  std::string reason;
  std::string message;
};

[[nodiscard]] std::string slurp_file(const std::filesystem::path& p);
// The last `n` bytes of `s`, "…" in front when cut.
[[nodiscard]] std::string tail_text(const std::string& s, size_t n);
// Writes `text` to `p` with `perms`; throws JobError{reason} when it cannot.
void write_file(const std::filesystem::path& p, const std::string& text, const std::string& reason,
                std::filesystem::perms perms = std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);

// --- the request --------------------------------------------------------------------
struct BackupRequest {
  std::string backup_id;
  std::string checksum;  // as the catalog recorded it: sha256:…
  std::optional<SysTime> point_in_time;
  int recovery_deadline_seconds = 1800;
  VerifyProfile profile = VerifyProfile::kNone;
};
// How the messages of a missing BACKUP_ID or BACKUP_CHECKSUM explain themselves.
struct RequestWording {
  std::string verb;          // "the operator names the backup to <verb>"
  std::string checksum_why;  // why the recorded checksum is needed
};
// A positive number of seconds from `key` (default `def`); InvalidRequest naming it otherwise.
[[nodiscard]] std::expected<int, JobError> positive_seconds(const Env& env, const std::string& key, int def);
// VERIFY_PROFILE, BACKUP_ID, BACKUP_CHECKSUM, POINT_IN_TIME and
// RECOVERY_DEADLINE_SECONDS, checked; an error names the variable.
[[nodiscard]] std::expected<BackupRequest, JobError> parse_backup_request(const Env& env, const RequestWording& wording);

// --- wal-g ----------------------------------------------------------------------------
// wal-g as the init container installed it (TOOLS_DIR/bin/wal-g through the
// copied loader), else the image's (WALG_BINARY, default wal-g on PATH).
[[nodiscard]] std::vector<std::string> walg_command(const Env& env, const std::filesystem::path& tools);
// The restore_command that fetches WAL with that wal-g.
[[nodiscard]] std::string restore_command_for(const std::vector<std::string>& walg);
// Reads the backup's stop sentinel with `wal-g st cat`; its sha256 (put into
// result.checksum) must be the request's checksum, else ChecksumMismatch
// ("…; <refusal>"). Nothing is fetched before this.
[[nodiscard]] StopSentinel check_stop_sentinel(const std::vector<std::string>& walg, const BackupRequest& request,
                                               VerifyResult& result, const std::string& refusal);
// `wal-g backup-fetch dir id`; FetchFailed naming what broke.
void fetch_backup(const std::vector<std::string>& walg, const std::filesystem::path& dir, const std::string& id);

// The recovery settings (verify_checks.h recovery_auto_conf) and
// recovery.signal; standby.signal, which would keep the server a standby, is
// removed. Returns what it replaced, so that it can be put back.
struct ReplacedSettings {
  std::optional<std::string> auto_conf;  // postgresql.auto.conf as fetched (nullopt: there was none)
  bool had_standby_signal = false;
};
ReplacedSettings write_recovery_settings(const std::filesystem::path& pgdata, const std::vector<std::string>& walg,
                                         std::optional<SysTime> point_in_time);

// --- libpq ----------------------------------------------------------------------------
struct PgConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;

// Runs `sql` (one or more statements, simple protocol); the outcome of the last one.
[[nodiscard]] SqlOutcome run_sql(PGconn* c, const std::string& sql);
// Runs exactly one statement (extended protocol: the server refuses a
// second one, so `commit; insert …` cannot leave the transaction it runs in).
[[nodiscard]] SqlOutcome run_one_statement(PGconn* c, const std::string& sql);
// `supabase-schemas` over `c`: reads only.
[[nodiscard]] CheckResult supabase_schemas_check(PGconn* c);

// Appends one check's result to result.checks, with its time, and logs its verdict (redacted).
void record_check(VerifyResult& result, const std::function<CheckResult()>& run, const Env& env, std::ostream& log,
                  const std::string& prefix);

// --- the image's postgres, private to this Pod ------------------------------------------------
struct PrivateServerConfig {
  std::filesystem::path pgdata;
  std::filesystem::path run_dir;     // SCRATCH_SOCKET_DIR: the socket, the hba and ident files
  std::filesystem::path server_log;  // appended to
  std::string purpose;               // "verify", "restore-in-place": in the hba file and application_name
  // A config_file to pass (an empty one in run_dir, when the data directory
  // has none and must not get one); empty: the data directory's own.
  std::filesystem::path config_file;
};

class PrivateServer {
 public:
  PrivateServer(const Env& env, PrivateServerConfig config);
  ~PrivateServer();
  PrivateServer(const PrivateServer&) = delete;
  PrivateServer& operator=(const PrivateServer&) = delete;

  // Starts the image's postgres: no TCP listener (listen_addresses=''), its
  // socket in run_dir, archive_mode=off, an hba file trusting only the local
  // socket, ssl off, no preloaded libraries. It dies with this process.
  void start(std::ostream& log, const std::string& prefix, const std::string& target);
  // Waits until recovery has ended and a write into a temporary table
  // succeeds; returns the bootstrap superuser. RecoveryFailed when the server
  // exits, RecoveryDeadline after `deadline_seconds`, NoKnownRole.
  std::string wait_until_promoted(int deadline_seconds);
  [[nodiscard]] double seconds_since_start() const;
  [[nodiscard]] PgConn connect(const std::string& user, int statement_timeout_s, std::string& error) const;
  // Fast shutdown (SIGINT); SIGKILL to its process group after `deadline`.
  // True when it exited by itself with status 0: a clean shutdown, its
  // shutdown checkpoint written.
  bool stop(std::chrono::seconds deadline = std::chrono::seconds(30));
  [[nodiscard]] bool started() const { return pid_ > 0 || exit_status_.has_value(); }

 private:
  std::optional<int> exited();
  [[nodiscard]] bool answers() const;
  std::string bootstrap_superuser(std::string& error) const;

  const Env& env_;
  PrivateServerConfig config_;
  std::string dbname_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
  std::chrono::steady_clock::time_point started_;
};

// recovered, recovery-target, system-identifier and, with the profile,
// supabase-schemas, as the bootstrap superuser `su`; sets result.recovered,
// replay_lsn and system_identifier.
void run_builtin_checks(PGconn* su, const StopSentinel& stop, const BackupRequest& request,
                        const std::filesystem::path& server_log, VerifyResult& result, const Env& env, std::ostream& log,
                        const std::string& prefix);

// Runs `steps`: a JobError becomes result.error ("Reason: message"), any other exception InternalError.
void run_steps(VerifyResult& result, const std::function<void()>& steps);

// Writes the result (redacted_result_json) to the termination message and
// its verdict ("<prefix><restored>: <passed|failed>[: error]") to the log;
// returns the exit code: 0 when `passed`.
int report_result(VerifyResult& result, bool passed, const Env& env, std::ostream& log, const std::string& prefix,
                  const std::string& passed_word, const std::string& failed_word);

// The result as written: secret values redacted from every output, name and
// the error, capped to the termination message (verify_checks.h result_json).
[[nodiscard]] std::string redacted_result_json(VerifyResult& result, const Env& env);

}  // namespace bo::jobs
