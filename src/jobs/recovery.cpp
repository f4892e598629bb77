#include "jobs/recovery.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/encoding.h"
#include "common/process.h"
#include "jobs/install_tools.h"
#include "postgres/archiving.h"

namespace bo::jobs {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kPort = 5432;  // only names the socket file: nothing listens on TCP

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string process_error(const std::string& what, const ProcessResult& r) {
  if (!r.start_error.empty()) return what + ": cannot run (" + r.start_error + ")";
  return what + " failed (exit " + std::to_string(r.exit_code) + "): " + tail_text(trim(r.err.empty() ? r.out : r.err), 1200);
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-+=:,") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

ProcessResult run_walg(const std::vector<std::string>& walg, const std::vector<std::string>& args) {
  std::vector<std::string> argv = walg;
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv);
}

// A program on PATH ("" when not found).
std::string on_path(const std::string& name, const std::string& path_var) {
  std::istringstream dirs(path_var);
  for (std::string dir; std::getline(dirs, dir, ':');) {
    const fs::path p = fs::path(dir.empty() ? "." : dir) / name;
    std::error_code ec;
    if (::access(p.c_str(), X_OK) == 0 && fs::is_regular_file(p, ec)) return p.string();
  }
  return "";
}

// The image's postgres: on PATH, else Debian's /usr/lib/postgresql/<major>/bin
// (the data directory's major first, then the newest there is).
std::string find_postgres(const Env& env, const fs::path& pgdata) {
  if (auto p = on_path("postgres", env_value(env, "PATH")); !p.empty()) return p;
  const std::string major = trim(slurp_file(pgdata / "PG_VERSION"));
  const fs::path root = "/usr/lib/postgresql";
  std::error_code ec;
  if (!major.empty() && fs::exists(root / major / "bin" / "postgres", ec)) return (root / major / "bin" / "postgres").string();
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (fs::exists(e.path() / "bin" / "postgres", ec)) found.push_back((e.path() / "bin" / "postgres").string());
  std::sort(found.begin(), found.end(), [](const std::string& a, const std::string& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;  // 9.6 < 15 < 16
  });
  if (found.empty())
    throw JobError{"PostgresNotFound", "no postgres on PATH (" + env_value(env, "PATH") + ") nor in " + root.string() +
                                           "/*/bin: the Job's image must be the database's"};
  return found.back();
}

SqlOutcome outcome_of(PGconn* c, PGresult* r) {
  SqlOutcome o;
  const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    o.error = trim(r ? PQresultErrorMessage(r) : PQerrorMessage(c));
    if (o.error.empty()) o.error = trim(PQerrorMessage(c));
    // COPY FROM STDIN and the like end in no error message, but are no result either.
    if (o.error.empty()) o.error = std::string("the statement ended in ") + PQresStatus(status) + ", not in rows or a command";
    return o;
  }
  if (status == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0) {
    o.has_row = true;
    o.is_null = PQgetisnull(r, 0, 0);
    if (!o.is_null) o.value = PQgetvalue(r, 0, 0);
  }
  return o;
}

int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

std::optional<SysTime> from_epoch(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double s = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return std::nullopt;
  return SysTime(std::chrono::duration_cast<SysTime::duration>(std::chrono::duration<double>(s)));
}

// The roles a restored cluster's bootstrap superuser is usually called; the
// first that connects is asked for the real one (OID 10).
std::vector<std::string> candidate_users(const Env& env) {
  std::vector<std::string> users;
  if (!env_value(env, "PGUSER").empty()) users.push_back(env_value(env, "PGUSER"));
  for (const char* u : {"postgres", "supabase_admin"})
    if (std::find(users.begin(), users.end(), u) == users.end()) users.push_back(u);
  return users;
}

}  // namespace

std::string slurp_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string tail_text(const std::string& s, size_t n) { return s.size() <= n ? s : "…" + s.substr(s.size() - n); }

void write_file(const fs::path& p, const std::string& text, const std::string& reason, fs::perms perms) {
  {
    std::ofstream out(p, std::ios::trunc | std::ios::binary);
    out << text;
    if (!out.flush()) throw JobError{reason, "cannot write " + p.string()};
  }
  std::error_code ec;
  fs::permissions(p, perms, fs::perm_options::replace, ec);
}

std::expected<BackupRequest, JobError> parse_backup_request(const Env& env, const RequestWording& wording) {
  BackupRequest r;
  const auto profile = parse_verify_profile(env_value(env, "VERIFY_PROFILE"));
  if (!profile) return std::unexpected(JobError{"InvalidProfile", profile.error()});
  r.profile = *profile;
  r.backup_id = env_value(env, "BACKUP_ID");
  if (r.backup_id.empty())
    return std::unexpected(JobError{"InvalidRequest", "BACKUP_ID is not set: the operator names the backup to " + wording.verb});
  r.checksum = env_value(env, "BACKUP_CHECKSUM");
  if (r.checksum.empty()) return std::unexpected(JobError{"InvalidRequest", "BACKUP_CHECKSUM is not set: " + wording.checksum_why});
  if (const std::string t = env_value(env, "POINT_IN_TIME"); !t.empty()) {
    r.point_in_time = parse_rfc3339(t);
    if (!r.point_in_time)
      return std::unexpected(JobError{"InvalidPointInTime", "POINT_IN_TIME \"" + cap_text(t, 64) + "\" is not an RFC 3339 time"});
  }
  const auto deadline = positive_seconds(env, "RECOVERY_DEADLINE_SECONDS", 1800);
  if (!deadline) return std::unexpected(deadline.error());
  r.recovery_deadline_seconds = *deadline;
  return r;
}

std::expected<int, JobError> positive_seconds(const Env& env, const std::string& key, int def) {
  try {
    size_t used = 0;
    const std::string d = env_value(env, key, std::to_string(def));
    const int seconds = std::stoi(d, &used);
    if (used != d.size() || seconds < 1) throw std::invalid_argument(d);
    return seconds;
  } catch (const std::exception&) {
    return std::unexpected(JobError{"InvalidRequest", key + " must be a positive number of seconds"});
  }
}

std::vector<std::string> walg_command(const Env& env, const fs::path& tools) {
  std::error_code ec;
  return fs::exists(tools / "bin" / "wal-g", ec) ? tools_command(tools.string(), "wal-g")
                                                 : std::vector<std::string>{env_value(env, "WALG_BINARY", "wal-g")};
}

std::string restore_command_for(const std::vector<std::string>& walg) {
  std::string command;
  for (const auto& a : walg) command += shell_quote(a) + " ";
  return command + "wal-fetch %f %p";
}

StopSentinel check_stop_sentinel(const std::vector<std::string>& walg, const BackupRequest& request, VerifyResult& result,
                                 const std::string& refusal) {
  const std::string key = "basebackups_005/" + request.backup_id + "_backup_stop_sentinel.json";
  auto sentinel = run_walg(walg, {"st", "cat", key});
  if (sentinel.exit_code != 0 || sentinel.out.empty())
    throw JobError{"SentinelUnreadable", process_error("wal-g st cat " + key, sentinel)};
  result.checksum = "sha256:" + sha256_hex(sentinel.out);
  if (result.checksum != request.checksum)
    throw JobError{"ChecksumMismatch", "storage holds " + result.checksum + " for " + request.backup_id +
                                           " but the catalog recorded " + request.checksum + "; " + refusal};
  const auto stop = parse_stop_sentinel(sentinel.out);
  if (!stop) throw JobError{"SentinelUnreadable", request.backup_id + ": " + stop.error()};
  return *stop;
}

void fetch_backup(const std::vector<std::string>& walg, const fs::path& dir, const std::string& id) {
  auto fetched = run_walg(walg, {"backup-fetch", dir.string(), id});
  if (fetched.exit_code != 0) throw JobError{"FetchFailed", process_error("wal-g backup-fetch " + id, fetched)};
}

ReplacedSettings write_recovery_settings(const fs::path& pgdata, const std::vector<std::string>& walg,
                                         std::optional<SysTime> point_in_time) {
  ReplacedSettings replaced;
  std::error_code ec;
  const fs::path auto_conf = pgdata / "postgresql.auto.conf";
  if (fs::exists(auto_conf, ec)) replaced.auto_conf = slurp_file(auto_conf);
  write_file(auto_conf, recovery_auto_conf(replaced.auto_conf.value_or(""), restore_command_for(walg), point_in_time),
             "DataDirectoryUnwritable");
  replaced.had_standby_signal = fs::exists(pgdata / "standby.signal", ec);
  fs::remove(pgdata / "standby.signal", ec);  // it would keep the server a standby, never promoted
  write_file(pgdata / "recovery.signal", "", "DataDirectoryUnwritable");
  return replaced;
}

SqlOutcome run_sql(PGconn* c, const std::string& sql) {
  PgResult r(PQexec(c, sql.c_str()));
  return outcome_of(c, r.get());
}

SqlOutcome run_one_statement(PGconn* c, const std::string& sql) {
  PgResult r(PQexecParams(c, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0));
  return outcome_of(c, r.get());
}

CheckResult supabase_schemas_check(PGconn* c) {
  std::vector<std::string> present;
  for (const auto& s : supabase_schemas()) {
    const SqlOutcome o = run_sql(c, "select count(*) from pg_namespace where nspname = '" + s + "'");
    if (o.error.empty() && o.value == "1") present.push_back(s);
  }
  std::vector<TableCount> counts;
  for (const auto& t : supabase_tables()) {
    const SqlOutcome o = run_sql(c, "select count(*) from " + t);
    TableCount count{t, std::nullopt, o.error};
    if (o.error.empty() && o.has_row) count.count = std::stoll(o.value);
    counts.push_back(std::move(count));
  }
  return judge_supabase_schemas(present, counts);
}

void record_check(VerifyResult& result, const std::function<CheckResult()>& run, const Env& env, std::ostream& log,
                  const std::string& prefix) {
  const auto t = Clock::now();
  CheckResult r = run();
  r.ms = ms_since(t);
  log << prefix << "check " << r.name << ": " << (r.passed ? "passed" : "FAILED") << ": " << redact(r.output, env) << "\n";
  result.checks.push_back(std::move(r));
}

// --- PrivateServer ----------------------------------------------------------------------

PrivateServer::PrivateServer(const Env& env, PrivateServerConfig config)
    : env_(env), config_(std::move(config)), dbname_(env_value(env, "PGDATABASE", "postgres")) {}

PrivateServer::~PrivateServer() { stop(); }

void PrivateServer::start(std::ostream& log, const std::string& prefix, const std::string& target) {
  const fs::path hba = config_.run_dir / "pg_hba.conf", ident = config_.run_dir / "pg_ident.conf";
  write_file(hba, "# run-job " + config_.purpose + ": the private server's own Unix socket only\nlocal all all trust\n",
             "ScratchUnwritable");
  write_file(ident, "", "ScratchUnwritable");
  const std::string postgres = find_postgres(env_, config_.pgdata);
  std::vector<std::string> argv = {postgres, "-D", config_.pgdata.string(),
                                   "-c", "listen_addresses=",
                                   "-c", "unix_socket_directories=" + config_.run_dir.string(),
                                   "-c", "port=" + std::to_string(kPort),
                                   "-c", "archive_mode=off",
                                   "-c", "hba_file=" + hba.string(),
                                   "-c", "ident_file=" + ident.string(),
                                   "-c", "ssl=off",
                                   "-c", "shared_preload_libraries=",
                                   "-c", "logging_collector=off",
                                   "-c", "log_destination=stderr"};
  if (!config_.config_file.empty()) argv.insert(argv.end(), {"-c", "config_file=" + config_.config_file.string()});
  log << prefix << "starting " << postgres << " on " << config_.pgdata.string() << " (socket " << config_.run_dir.string()
      << ", no TCP); recovering to " << target << "\n";

  // Everything the child needs is made before fork (only async-signal-safe
  // calls between fork and exec).
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  const std::string log_file = config_.server_log.string();
  const pid_t parent = ::getpid();
  started_ = Clock::now();
  pid_ = ::fork();
  if (pid_ == 0) {
    // Its own group, so SIGKILL reaches its children too; and it dies with
    // this process: in a container the PID namespace ends with it, but on a
    // host (kube-local's process kubelet) an orphaned postmaster would keep
    // the data directory.
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    const int in = ::open("/dev/null", O_RDONLY);
    const int out = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(126);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  if (pid_ < 0) {
    const int err = errno;
    pid_ = -1;
    throw JobError{"PostgresNotStarted", "cannot start " + postgres + ": " + std::strerror(err)};
  }
}

std::optional<int> PrivateServer::exited() {
  if (pid_ <= 0) return exit_status_;
  int st = 0;
  if (::waitpid(pid_, &st, WNOHANG) != pid_) return std::nullopt;
  pid_ = -1;
  exit_status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  return exit_status_;
}

bool PrivateServer::stop(std::chrono::seconds deadline) {
  if (pid_ <= 0) return exit_status_ == 0;
  const pid_t group = pid_;
  ::kill(pid_, SIGINT);
  const auto end = Clock::now() + deadline;
  bool killed = false;
  while (!exited()) {
    if (Clock::now() > end) {
      ::kill(-group, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
      pid_ = -1;
      exit_status_ = 128 + SIGKILL;
      killed = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(-group, SIGKILL);  // nothing of it may outlive the Job (ESRCH when all is gone)
  return !killed && exit_status_ == 0;
}

double PrivateServer::seconds_since_start() const { return std::chrono::duration<double>(Clock::now() - started_).count(); }

bool PrivateServer::answers() const {
  const std::string port = std::to_string(kPort);
  const std::string socket_dir = config_.run_dir.string();
  // A user name, so libpq need not look the uid up (an image may have no passwd entry for it);
  // any name will do: a server that refuses the role still answers.
  const char* keys[] = {"host", "port", "dbname", "user", "connect_timeout", nullptr};
  const char* values[] = {socket_dir.c_str(), port.c_str(), dbname_.c_str(), "postgres", "5", nullptr};
  return PQpingParams(keys, values, 0) == PQPING_OK;
}

PgConn PrivateServer::connect(const std::string& user, int statement_timeout_s, std::string& error) const {
  const std::string port = std::to_string(kPort);
  const std::string socket_dir = config_.run_dir.string();
  const std::string options = "-c statement_timeout=" + std::to_string(statement_timeout_s * 1000);
  const std::string application = "backup-operator-" + config_.purpose;
  const char* keys[] = {"host", "port", "dbname", "user", "connect_timeout", "options", "application_name", nullptr};
  const char* values[] = {socket_dir.c_str(), port.c_str(), dbname_.c_str(), user.c_str(), "10", options.c_str(),
                          application.c_str(), nullptr};
  PgConn c(PQconnectdbParams(keys, values, 0));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    error = c ? trim(PQerrorMessage(c.get())) : "out of memory";
    return nullptr;
  }
  return c;
}

std::string PrivateServer::bootstrap_superuser(std::string& error) const {
  size_t missing = 0;
  const auto users = candidate_users(env_);
  for (const auto& user : users) {
    PgConn c = connect(user, 60, error);
    if (!c) {
      // The server read its roles already (it admits connections): a missing role will not appear.
      if (error.find("role \"" + user + "\" does not exist") != std::string::npos) ++missing;
      continue;
    }
    const SqlOutcome o = run_sql(c.get(), "select rolname from pg_roles where oid = 10");
    if (o.error.empty() && o.has_row && !o.is_null) return o.value;
    error = o.error;
  }
  if (missing == users.size()) {
    std::string names;
    for (const auto& u : users) names += (names.empty() ? "" : ", ") + u;
    throw JobError{"NoKnownRole", "none of the roles " + names +
                                      " exists in the restored cluster, so the checks cannot connect; set PGUSER "
                                      "to a role that does"};
  }
  return "";
}

std::string PrivateServer::wait_until_promoted(int deadline_seconds) {
  const auto deadline = started_ + std::chrono::seconds(deadline_seconds);
  std::string superuser, last_error;
  for (;;) {
    if (const auto status = exited())
      throw JobError{"RecoveryFailed", "PostgreSQL exited (status " + std::to_string(*status) +
                                           ") before recovery ended; its log ends:\n" +
                                           tail_text(slurp_file(config_.server_log), 1500)};
    if (answers()) {
      if (superuser.empty()) superuser = bootstrap_superuser(last_error);
      if (!superuser.empty()) {
        PgConn c = connect(superuser, 60, last_error);
        if (c) {
          const SqlOutcome rec = run_sql(c.get(), "select pg_is_in_recovery()");
          if (rec.error.empty() && rec.value == "f") {
            const SqlOutcome w = run_sql(c.get(), "create temp table backup_operator_ready(x int); "
                                                  "insert into backup_operator_ready values (1)");
            if (w.error.empty()) return superuser;
            last_error = w.error;
          } else {
            last_error = rec.error.empty() ? "still in recovery" : rec.error;
          }
        }
      }
    }
    if (Clock::now() > deadline)
      throw JobError{"RecoveryDeadline", "recovery did not end within RECOVERY_DEADLINE_SECONDS=" +
                                             std::to_string(deadline_seconds) + " (last: " + last_error +
                                             "); the server's log ends:\n" + tail_text(slurp_file(config_.server_log), 1500)};
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void run_builtin_checks(PGconn* su, const StopSentinel& stop, const BackupRequest& request, const fs::path& server_log,
                        VerifyResult& result, const Env& env, std::ostream& log, const std::string& prefix) {
  const auto timed = [&](const std::function<CheckResult()>& f) { record_check(result, f, env, log, prefix); };
  timed([&] {
    const SqlOutcome rec = run_sql(su, "select pg_is_in_recovery()");
    const SqlOutcome w = run_sql(su, "create temp table backup_operator_verify(x int); "
                                     "insert into backup_operator_verify values (1)");
    const bool in_recovery = !rec.error.empty() || rec.value != "f";
    CheckResult r = judge_recovered(in_recovery, w.error);
    if (!rec.error.empty()) r.output = rec.error;
    return r;
  });
  result.recovered = result.checks.back().passed;
  timed([&] {
    const SqlOutcome lsn = run_sql(su, "select pg_last_wal_replay_lsn()::text");
    const SqlOutcome commit = run_sql(su, "select extract(epoch from pg_last_xact_replay_timestamp())::text");
    ReplayState state;
    if (lsn.error.empty() && lsn.has_row && !lsn.is_null) state.replay_lsn = postgres::parse_lsn(lsn.value);
    if (state.replay_lsn) result.replay_lsn = postgres::format_lsn(*state.replay_lsn);
    if (commit.error.empty() && commit.has_row && !commit.is_null) state.last_commit = from_epoch(commit.value);
    state.server_log = slurp_file(server_log);
    CheckResult r = judge_recovery_target(RecoveryTarget{stop.finish_lsn, request.point_in_time}, state);
    if (!lsn.error.empty()) r.output = lsn.error;
    return r;
  });
  timed([&] {
    const SqlOutcome o = run_sql(su, "select system_identifier::text from pg_control_system()");
    if (o.error.empty() && o.has_row) result.system_identifier = o.value;
    CheckResult r = judge_system_identifier(stop.system_identifier, result.system_identifier);
    if (!o.error.empty()) r.output = o.error;
    return r;
  });
  if (request.profile == VerifyProfile::kSupabaseSelfHosted) timed([&] { return supabase_schemas_check(su); });
}

void run_steps(VerifyResult& result, const std::function<void()>& steps) {
  try {
    steps();
  } catch (const JobError& e) {
    result.error = e.reason + ": " + e.message;
  } catch (const std::exception& e) {
    result.error = std::string("InternalError: ") + e.what();
  }
}

int report_result(VerifyResult& result, bool passed, const Env& env, std::ostream& log, const std::string& prefix,
                  const std::string& passed_word, const std::string& failed_word) {
  write_termination(env, redacted_result_json(result, env));
  log << prefix << result.restored << ": " << (passed ? passed_word : failed_word)
      << (result.error.empty() ? "" : ": " + result.error) << "\n";
  return passed ? 0 : 1;
}

std::string redacted_result_json(VerifyResult& result, const Env& env) {
  // No secret value from the environment in anything written or printed.
  result.error = redact(result.error, env);
  for (auto& c : result.checks) {
    c.output = redact(c.output, env);
    c.name = redact(c.name, env);
  }
  return redact(result_json(result), env);
}

}  // namespace bo::jobs
