#include "jobs/verify.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>

#include "common/process.h"
#include "common/timefmt.h"
#include "jobs/recovery.h"
#include "jobs/verify_checks.h"
#include "postgres/archiving.h"

namespace bo::jobs {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPrefix = "run-job: verify: ";

// Replaces PGDATA by an empty directory, which must be missing, empty, or
// made by an earlier run of this command (the marker beside it says so).
void prepare_pgdata(const fs::path& pgdata) {
  const fs::path marker = pgdata.parent_path() / kScratchMarker;
  std::error_code ec;
  if (fs::exists(pgdata, ec) && !fs::is_empty(pgdata, ec)) {
    if (!fs::exists(marker, ec))
      throw JobError{"ScratchNotEmpty", "PGDATA " + pgdata.string() +
                                            " is not empty and was not made by run-job verify; refusing to touch it"};
    fs::remove_all(pgdata, ec);
    if (ec) throw JobError{"ScratchNotEmpty", "cannot clear " + pgdata.string() + " left by an earlier attempt: " + ec.message()};
  }
  std::ofstream(marker, std::ios::trunc) << "made by backup-operator run-job verify: a scratch copy, deleted with it\n";
  fs::create_directories(pgdata, ec);
  if (ec) throw JobError{"ScratchUnwritable", "cannot create " + pgdata.string() + ": " + ec.message()};
  fs::permissions(pgdata, fs::perms::owner_all, fs::perm_options::replace, ec);
}

class Verification {
 public:
  Verification(const Env& env, std::ostream& log) : env_(env), log_(log) {}

  VerifyResult run() {
    result_.restored = env_value(env_, "BACKUP_ID");
    run_steps(result_, [this] { steps(); });
    if (server_ && server_->started()) {
      server_->stop();
      log_ << kPrefix << "the scratch server has stopped\n";
    }
    return result_;
  }

 private:
  void steps() {
    // Everything the request says is checked before anything is fetched.
    const auto request = parse_backup_request(
        env_, {"verify", "a verification proves the backup the catalog recorded, so it needs the recorded checksum"});
    if (!request) throw request.error();
    const auto checks = parse_sql_checks(env_value(env_, "VERIFY_CHECKS"));
    if (!checks) throw JobError{"InvalidChecks", checks.error()};
    const std::string& id = request->backup_id;
    const fs::path pgdata = env_value(env_, "PGDATA");
    if (pgdata.empty() || !pgdata.is_absolute() || !pgdata.has_parent_path() || pgdata.parent_path() == pgdata.root_path())
      throw JobError{"InvalidRequest", "PGDATA must be an absolute path below the scratch volume (got \"" +
                                           pgdata.string() + "\")"};
    const fs::path run_dir = env_value(env_, "SCRATCH_SOCKET_DIR", "/run/scratch");
    const fs::path tools = env_value(env_, "TOOLS_DIR", "/tools");

    // TMPDIR for wal-g and the server, in the run volume.
    const fs::path tmp = run_dir / "tmp";
    std::error_code ec;
    fs::create_directories(tmp, ec);
    if (ec) throw JobError{"ScratchUnwritable", "cannot create " + tmp.string() + ": " + ec.message()};
    ::setenv("TMPDIR", tmp.c_str(), 1);
    const auto walg = walg_command(env_, tools);

    // 1. The stop sentinel, as stored, is the one the catalog recorded.
    const StopSentinel stop =
        check_stop_sentinel(walg, *request, result_, "refusing to verify a backup that changed after it was taken");
    log_ << kPrefix << id << " " << result_.checksum << " ends at " << postgres::format_lsn(stop.finish_lsn) << "\n";

    // 2. The backup's files.
    prepare_pgdata(pgdata);
    log_ << kPrefix << "wal-g backup-fetch " << pgdata.string() << " " << id << "\n";
    fetch_backup(walg, pgdata, id);

    // 3. Recovery settings, and a server nothing but this Pod can reach.
    (void)write_recovery_settings(pgdata, walg, request->point_in_time);
    if (!fs::exists(pgdata / "postgresql.conf", ec))
      write_file(pgdata / "postgresql.conf", "", "ScratchUnwritable");  // Debian keeps it in /etc
    const fs::path server_log = pgdata.parent_path() / kServerLog;
    write_file(server_log, "", "ScratchUnwritable");
    server_ = std::make_unique<PrivateServer>(env_, PrivateServerConfig{pgdata, run_dir, server_log, "verify", {}});
    server_->start(log_, kPrefix,
                   request->point_in_time ? format_rfc3339_micro(*request->point_in_time) : "the end of the backup");

    // 4. Until recovery has ended and a write succeeds (or the deadline).
    const std::string superuser = server_->wait_until_promoted(request->recovery_deadline_seconds);
    result_.recovery_seconds = server_->seconds_since_start();
    log_ << kPrefix << "recovered in " << *result_.recovery_seconds << " s; connected as " << superuser << "\n";

    // 5. The built-in checks, as the bootstrap superuser.
    std::string error;
    PgConn su = server_->connect(superuser, 60, error);
    if (!su) throw JobError{"ConnectFailed", "cannot connect as " + superuser + ": " + error};
    run_builtin_checks(su.get(), stop, *request, server_log, result_, env_, log_, kPrefix);

    // 6. The user's checks, as a role that reads and writes data but is no superuser.
    if (!checks->empty()) {
      const SqlOutcome role = run_sql(
          su.get(), std::string("do $$ begin if not exists (select from pg_roles where rolname = '") + kCheckRole +
                        "') then create role " + kCheckRole + "; end if; end $$; alter role " + kCheckRole +
                        " with login nosuperuser nocreatedb nocreaterole noreplication bypassrls; "
                        "grant pg_read_all_data, pg_write_all_data to " + kCheckRole);
      for (const auto& check : *checks)
        record_check(result_, [&] {
          if (!role.error.empty()) return judge_sql_check(check, SqlOutcome{"cannot prepare the role " + std::string(kCheckRole) + ": " + role.error, false, false, ""});
          std::string connect_error;
          PgConn c = server_->connect(kCheckRole, check.timeout_seconds, connect_error);
          if (!c) return judge_sql_check(check, SqlOutcome{connect_error, false, false, ""});
          return judge_sql_check(check, run_sql(c.get(), check.sql));
        }, env_, log_, kPrefix);
    }
  }

  const Env& env_;
  std::ostream& log_;
  VerifyResult result_;
  std::unique_ptr<PrivateServer> server_;
};

// The marker of a passed verification, beside the backup in storage
// (verified_marker_name): a catalog rebuilt from storage keeps the backup
// verified. WAL-G has `st put` for this (docs/StorageTools.md; uncompressed
// and unencrypted, so `st cat` reads it back as written: it holds no secret).
// A marker that cannot be written does not undo the verification: logged.
void leave_verified_marker(const Env& env, const VerifyResult& result, std::ostream& log) {
  const std::string error = put_verified_marker(walg_command(env, env_value(env, "TOOLS_DIR", "/tools")),
                                                (fs::path(env_value(env, "SCRATCH_SOCKET_DIR", "/run/scratch")) / "tmp").string(),
                                                result.restored, result.checksum, env_value(env, "RESTORE_REQUEST"));
  if (error.empty())
    log << kPrefix << "left " << verified_marker_name(result.restored) << " in storage\n";
  else  // a read-only Secret cannot write it: the policy's next backup Job does
    log << kPrefix << redact(error, env) << "; the next backup Job writes it\n";
}

}  // namespace

int verify(const Env& env, std::ostream& log) {
  VerifyResult result = Verification(env, log).run();
  const bool passed = all_passed(result);
  if (passed) leave_verified_marker(env, result, log);
  return report_result(result, passed, env, log, kPrefix, "verified", "NOT verified");
}

}  // namespace bo::jobs
