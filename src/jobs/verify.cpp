#include "jobs/verify.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <thread>

#include "common/encoding.h"
#include "common/process.h"
#include "common/timefmt.h"
#include "jobs/install_tools.h"
#include "jobs/verify_checks.h"
#include "postgres/archiving.h"

extern char** environ;

namespace bo::jobs {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kPort = 5432;  // only names the socket file: nothing listens on TCP

std::string get(const Env& env, const std::string& k, const std::string& def = "") {
  auto it = env.find(k);
  return it == env.end() || it->second.empty() ? def : it->second;
}

// A failure before or outside the checks: a CamelCase reason and a message.
struct VerifyError {
  std::string reason;
  std::string message;
};

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

std::string tail(const std::string& s, size_t n) { return s.size() <= n ? s : "…" + s.substr(s.size() - n); }

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string process_error(const std::string& what, const ProcessResult& r) {
  if (!r.start_error.empty()) return what + ": cannot run (" + r.start_error + ")";
  return what + " failed (exit " + std::to_string(r.exit_code) + "): " + tail(trim(r.err.empty() ? r.out : r.err), 1200);
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._-+=:,") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
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
  if (auto p = on_path("postgres", get(env, "PATH")); !p.empty()) return p;
  const std::string major = trim(slurp(pgdata / "PG_VERSION"));
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
    throw VerifyError{"PostgresNotFound", "no postgres on PATH (" + get(env, "PATH") + ") nor in " + root.string() +
                                              "/*/bin: the verification image must be the database's"};
  return found.back();
}

// --- libpq over the scratch server's socket -------------------------------
struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using Conn = std::unique_ptr<PGconn, ConnDeleter>;
struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

class Server {
 public:
  Server(std::string socket_dir, std::string dbname) : socket_dir_(std::move(socket_dir)), dbname_(std::move(dbname)) {}
  ~Server() { stop(); }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  void start(const std::vector<std::string>& argv, const fs::path& log_file) {
    // Everything the child needs is made before fork (only async-signal-safe
    // calls between fork and exec).
    std::vector<std::string> copy = argv;
    std::vector<char*> args;
    for (auto& a : copy) args.push_back(a.data());
    args.push_back(nullptr);
    const std::string log = log_file.string();
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      // Its own group, so SIGKILL reaches its children too; and it dies with
      // this process: in a container the PID namespace ends with it, but on a
      // host (kube-local's process kubelet) an orphaned postmaster would keep
      // the scratch data directory.
      ::setpgid(0, 0);
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(126);
      const int in = ::open("/dev/null", O_RDONLY);
      const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (in < 0 || out < 0 || ::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(out, 2) < 0) ::_exit(126);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    if (pid_ < 0) {
      const int err = errno;
      pid_ = -1;
      throw VerifyError{"PostgresNotStarted", "cannot start " + argv[0] + ": " + std::strerror(err)};
    }
  }

  // The exit status when the server has exited (it is then reaped), else nullopt.
  std::optional<int> exited() {
    if (pid_ <= 0) return exit_status_;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) != pid_) return std::nullopt;
    pid_ = -1;
    exit_status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return exit_status_;
  }

  // Fast shutdown (SIGINT), then SIGKILL to the server's process group after `deadline`.
  void stop(std::chrono::seconds deadline = std::chrono::seconds(30)) {
    if (pid_ <= 0) return;
    const pid_t group = pid_;
    ::kill(pid_, SIGINT);
    const auto end = Clock::now() + deadline;
    while (!exited()) {
      if (Clock::now() > end) {
        ::kill(-group, SIGKILL);
        int st = 0;
        ::waitpid(pid_, &st, 0);
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ::kill(-group, SIGKILL);  // nothing of it may outlive the Job (ESRCH when all is gone)
  }

  [[nodiscard]] bool answers() const {
    const std::string port = std::to_string(kPort);
    // A user name, so libpq need not look the uid up (an image may have no passwd entry for it);
    // any name will do: a server that refuses the role still answers.
    const char* keys[] = {"host", "port", "dbname", "user", "connect_timeout", nullptr};
    const char* values[] = {socket_dir_.c_str(), port.c_str(), dbname_.c_str(), "postgres", "5", nullptr};
    return PQpingParams(keys, values, 0) == PQPING_OK;
  }

  // A session as `user`; on failure nullptr with libpq's message in `error`.
  Conn connect(const std::string& user, int statement_timeout_s, std::string& error) const {
    const std::string port = std::to_string(kPort);
    const std::string options = "-c statement_timeout=" + std::to_string(statement_timeout_s * 1000);
    const char* keys[] = {"host", "port", "dbname", "user", "connect_timeout", "options", "application_name", nullptr};
    const char* values[] = {socket_dir_.c_str(), port.c_str(), dbname_.c_str(), user.c_str(), "10", options.c_str(),
                            "backup-operator-verify", nullptr};
    Conn c(PQconnectdbParams(keys, values, 0));
    if (!c || PQstatus(c.get()) != CONNECTION_OK) {
      error = c ? trim(PQerrorMessage(c.get())) : "out of memory";
      return nullptr;
    }
    return c;
  }

 private:
  std::string socket_dir_, dbname_;
  pid_t pid_ = -1;
  std::optional<int> exit_status_;
};

// Runs `sql` (one or more statements); the outcome of the last one.
SqlOutcome run_sql(PGconn* c, const std::string& sql) {
  SqlOutcome o;
  Result r(PQexec(c, sql.c_str()));
  const auto status = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    o.error = trim(r ? PQresultErrorMessage(r.get()) : PQerrorMessage(c));
    if (o.error.empty()) o.error = trim(PQerrorMessage(c));
    // COPY FROM STDIN and the like end in no error message, but are no result either.
    if (o.error.empty()) o.error = std::string("the statement ended in ") + PQresStatus(status) + ", not in rows or a command";
    return o;
  }
  if (status == PGRES_TUPLES_OK && PQntuples(r.get()) > 0 && PQnfields(r.get()) > 0) {
    o.has_row = true;
    o.is_null = PQgetisnull(r.get(), 0, 0);
    if (!o.is_null) o.value = PQgetvalue(r.get(), 0, 0);
  }
  return o;
}

int64_t ms_since(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// The roles a restored cluster's bootstrap superuser is usually called; the
// first that connects is asked for the real one (OID 10).
std::vector<std::string> candidate_users(const Env& env) {
  std::vector<std::string> users;
  if (!get(env, "PGUSER").empty()) users.push_back(get(env, "PGUSER"));
  for (const char* u : {"postgres", "supabase_admin"})
    if (std::find(users.begin(), users.end(), u) == users.end()) users.push_back(u);
  return users;
}

std::string bootstrap_superuser(const Server& server, const Env& env, std::string& error) {
  size_t missing = 0;
  const auto users = candidate_users(env);
  for (const auto& user : users) {
    Conn c = server.connect(user, 60, error);
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
    throw VerifyError{"NoKnownRole", "none of the roles " + names +
                                         " exists in the restored cluster, so the checks cannot connect; set PGUSER "
                                         "to a role that does"};
  }
  return "";
}

// Replaces PGDATA by an empty directory, which must be missing, empty, or
// made by an earlier run of this command (the marker beside it says so).
void prepare_pgdata(const fs::path& pgdata) {
  const fs::path marker = pgdata.parent_path() / kScratchMarker;
  std::error_code ec;
  if (fs::exists(pgdata, ec) && !fs::is_empty(pgdata, ec)) {
    if (!fs::exists(marker, ec))
      throw VerifyError{"ScratchNotEmpty", "PGDATA " + pgdata.string() +
                                               " is not empty and was not made by run-job verify; refusing to touch it"};
    fs::remove_all(pgdata, ec);
    if (ec) throw VerifyError{"ScratchNotEmpty", "cannot clear " + pgdata.string() + " left by an earlier attempt: " + ec.message()};
  }
  std::ofstream(marker, std::ios::trunc) << "made by backup-operator run-job verify: a scratch copy, deleted with it\n";
  fs::create_directories(pgdata, ec);
  if (ec) throw VerifyError{"ScratchUnwritable", "cannot create " + pgdata.string() + ": " + ec.message()};
  fs::permissions(pgdata, fs::perms::owner_all, fs::perm_options::replace, ec);
}

void write_file(const fs::path& p, const std::string& text, fs::perms perms = fs::perms::owner_read | fs::perms::owner_write) {
  {
    std::ofstream out(p, std::ios::trunc | std::ios::binary);
    out << text;
    if (!out.flush()) throw VerifyError{"ScratchUnwritable", "cannot write " + p.string()};
  }
  std::error_code ec;
  fs::permissions(p, perms, fs::perm_options::replace, ec);
}

std::optional<std::chrono::system_clock::time_point> from_epoch(const std::string& text) {
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  const double s = std::strtod(text.c_str(), &end);
  if (end == text.c_str()) return std::nullopt;
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(s)));
}

class Verification {
 public:
  Verification(const Env& env, std::ostream& log) : env_(env), log_(log) {}

  VerifyResult run() {
    result_.restored = get(env_, "BACKUP_ID");
    try {
      steps();
    } catch (const VerifyError& e) {
      result_.error = e.reason + ": " + e.message;
    } catch (const std::exception& e) {
      result_.error = std::string("InternalError: ") + e.what();
    }
    if (server_) {
      server_->stop();
      log_ << "run-job: verify: the scratch server has stopped\n";
    }
    return result_;
  }

 private:
  void steps() {
    // Everything the request says is checked before anything is fetched.
    const auto profile = parse_verify_profile(get(env_, "VERIFY_PROFILE"));
    if (!profile) throw VerifyError{"InvalidProfile", profile.error()};
    const auto checks = parse_sql_checks(get(env_, "VERIFY_CHECKS"));
    if (!checks) throw VerifyError{"InvalidChecks", checks.error()};
    const std::string id = get(env_, "BACKUP_ID");
    if (id.empty()) throw VerifyError{"InvalidRequest", "BACKUP_ID is not set: the operator names the backup to verify"};
    const std::string expected = get(env_, "BACKUP_CHECKSUM");
    if (expected.empty())
      throw VerifyError{"InvalidRequest", "BACKUP_CHECKSUM is not set: a verification proves the backup the catalog "
                                          "recorded, so it needs the recorded checksum"};
    std::optional<std::chrono::system_clock::time_point> pit;
    if (const std::string t = get(env_, "POINT_IN_TIME"); !t.empty()) {
      pit = parse_rfc3339(t);
      if (!pit) throw VerifyError{"InvalidPointInTime", "POINT_IN_TIME \"" + cap_text(t, 64) + "\" is not an RFC 3339 time"};
    }
    int deadline_s = 1800;
    try {
      size_t used = 0;
      const std::string d = get(env_, "RECOVERY_DEADLINE_SECONDS", "1800");
      deadline_s = std::stoi(d, &used);
      if (used != d.size() || deadline_s < 1) throw std::invalid_argument(d);
    } catch (const std::exception&) {
      throw VerifyError{"InvalidRequest", "RECOVERY_DEADLINE_SECONDS must be a positive number of seconds"};
    }
    const fs::path pgdata = get(env_, "PGDATA");
    if (pgdata.empty() || !pgdata.is_absolute() || !pgdata.has_parent_path() || pgdata.parent_path() == pgdata.root_path())
      throw VerifyError{"InvalidRequest", "PGDATA must be an absolute path below the scratch volume (got \"" +
                                              pgdata.string() + "\")"};
    const fs::path run_dir = get(env_, "SCRATCH_SOCKET_DIR", "/run/scratch");
    const fs::path tools = get(env_, "TOOLS_DIR", "/tools");

    // TMPDIR for wal-g and the server, in the run volume.
    const fs::path tmp = run_dir / "tmp";
    std::error_code ec;
    fs::create_directories(tmp, ec);
    if (ec) throw VerifyError{"ScratchUnwritable", "cannot create " + tmp.string() + ": " + ec.message()};
    ::setenv("TMPDIR", tmp.c_str(), 1);

    // wal-g as the init container installed it (through the copied loader), else the image's.
    std::vector<std::string> walg = fs::exists(tools / "bin" / "wal-g", ec)
                                        ? tools_command(tools.string(), "wal-g")
                                        : std::vector<std::string>{get(env_, "WALG_BINARY", "wal-g")};
    const auto walg_with = [&](std::vector<std::string> args) {
      std::vector<std::string> argv = walg;
      argv.insert(argv.end(), args.begin(), args.end());
      return run_process(argv);
    };

    // 1. The stop sentinel, as stored, is the one the catalog recorded.
    const std::string sentinel_key = "basebackups_005/" + id + "_backup_stop_sentinel.json";
    auto sentinel = walg_with({"st", "cat", sentinel_key});
    if (sentinel.exit_code != 0 || sentinel.out.empty())
      throw VerifyError{"SentinelUnreadable", process_error("wal-g st cat " + sentinel_key, sentinel)};
    result_.checksum = "sha256:" + sha256_hex(sentinel.out);
    if (result_.checksum != expected)
      throw VerifyError{"ChecksumMismatch", "storage holds " + result_.checksum + " for " + id +
                                                " but the catalog recorded " + expected +
                                                "; refusing to verify a backup that changed after it was taken"};
    const auto stop = parse_stop_sentinel(sentinel.out);
    if (!stop) throw VerifyError{"SentinelUnreadable", id + ": " + stop.error()};
    log_ << "run-job: verify: " << id << " " << result_.checksum << " ends at " << postgres::format_lsn(stop->finish_lsn)
         << "\n";

    // 2. The backup's files.
    prepare_pgdata(pgdata);
    log_ << "run-job: verify: wal-g backup-fetch " << pgdata.string() << " " << id << "\n";
    auto fetched = walg_with({"backup-fetch", pgdata.string(), id});
    if (fetched.exit_code != 0) throw VerifyError{"FetchFailed", process_error("wal-g backup-fetch " + id, fetched)};

    // 3. Recovery settings, and a server nothing but this Pod can reach.
    std::string restore_command;
    for (const auto& a : walg) restore_command += shell_quote(a) + " ";
    restore_command += "wal-fetch %f %p";
    write_file(pgdata / "postgresql.auto.conf",
               recovery_auto_conf(slurp(pgdata / "postgresql.auto.conf"), restore_command, pit));
    fs::remove(pgdata / "standby.signal", ec);  // it would keep the server a standby, never promoted
    write_file(pgdata / "recovery.signal", "");
    if (!fs::exists(pgdata / "postgresql.conf", ec)) write_file(pgdata / "postgresql.conf", "");  // Debian keeps it in /etc
    const fs::path hba = run_dir / "pg_hba.conf", ident = run_dir / "pg_ident.conf";
    write_file(hba, "# run-job verify: the scratch server's own Unix socket only\nlocal all all trust\n");
    write_file(ident, "");
    const fs::path server_log = pgdata.parent_path() / kServerLog;
    write_file(server_log, "");

    const std::string postgres = find_postgres(env_, pgdata);
    const std::vector<std::string> argv = {postgres, "-D", pgdata.string(),
                                           "-c", "listen_addresses=",
                                           "-c", "unix_socket_directories=" + run_dir.string(),
                                           "-c", "port=" + std::to_string(kPort),
                                           "-c", "archive_mode=off",
                                           "-c", "hba_file=" + hba.string(),
                                           "-c", "ident_file=" + ident.string(),
                                           "-c", "ssl=off",
                                           "-c", "shared_preload_libraries=",
                                           "-c", "logging_collector=off",
                                           "-c", "log_destination=stderr"};
    server_ = std::make_unique<Server>(run_dir.string(), get(env_, "PGDATABASE", "postgres"));
    log_ << "run-job: verify: starting " << postgres << " on " << pgdata.string() << " (socket " << run_dir.string()
         << ", no TCP); recovering to " << (pit ? format_rfc3339_micro(*pit) : "the end of the backup") << "\n";
    const auto started = Clock::now();
    server_->start(argv, server_log);

    // 4. Until recovery has ended and a write succeeds (or the deadline).
    const auto deadline = started + std::chrono::seconds(deadline_s);
    std::string superuser, last_error;
    for (;;) {
      if (const auto status = server_->exited())
        throw VerifyError{"RecoveryFailed", "PostgreSQL exited (status " + std::to_string(*status) +
                                                ") before recovery ended; its log ends:\n" + tail(slurp(server_log), 1500)};
      if (server_->answers()) {
        if (superuser.empty()) superuser = bootstrap_superuser(*server_, env_, last_error);
        if (!superuser.empty()) {
          Conn c = server_->connect(superuser, 60, last_error);
          if (c) {
            const SqlOutcome rec = run_sql(c.get(), "select pg_is_in_recovery()");
            if (rec.error.empty() && rec.value == "f") {
              const SqlOutcome w = run_sql(c.get(), "create temp table backup_operator_ready(x int); "
                                                    "insert into backup_operator_ready values (1)");
              if (w.error.empty()) break;
              last_error = w.error;
            } else {
              last_error = rec.error.empty() ? "still in recovery" : rec.error;
            }
          }
        }
      }
      if (Clock::now() > deadline)
        throw VerifyError{"RecoveryDeadline", "recovery did not end within RECOVERY_DEADLINE_SECONDS=" +
                                                  std::to_string(deadline_s) + " (last: " + last_error +
                                                  "); the server's log ends:\n" + tail(slurp(server_log), 1500)};
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    result_.recovery_seconds = std::chrono::duration<double>(Clock::now() - started).count();
    log_ << "run-job: verify: recovered in " << *result_.recovery_seconds << " s; connected as " << superuser << "\n";

    // 5. The built-in checks, as the bootstrap superuser.
    std::string error;
    Conn su = server_->connect(superuser, 60, error);
    if (!su) throw VerifyError{"ConnectFailed", "cannot connect as " + superuser + ": " + error};
    const auto timed = [&](const std::function<CheckResult()>& f) {
      const auto t = Clock::now();
      CheckResult r = f();
      r.ms = ms_since(t);
      log_ << "run-job: verify: check " << r.name << ": " << (r.passed ? "passed" : "FAILED") << ": "
           << redact(r.output, env_) << "\n";
      result_.checks.push_back(std::move(r));
    };
    timed([&] {
      const SqlOutcome rec = run_sql(su.get(), "select pg_is_in_recovery()");
      const SqlOutcome w = run_sql(su.get(), "create temp table backup_operator_verify(x int); "
                                             "insert into backup_operator_verify values (1)");
      const bool in_recovery = !rec.error.empty() || rec.value != "f";
      CheckResult r = judge_recovered(in_recovery, w.error);
      if (!rec.error.empty()) r.output = rec.error;
      return r;
    });
    result_.recovered = result_.checks.back().passed;
    timed([&] {
      const SqlOutcome lsn = run_sql(su.get(), "select pg_last_wal_replay_lsn()::text");
      const SqlOutcome commit = run_sql(su.get(), "select extract(epoch from pg_last_xact_replay_timestamp())::text");
      ReplayState state;
      if (lsn.error.empty() && lsn.has_row && !lsn.is_null) state.replay_lsn = postgres::parse_lsn(lsn.value);
      if (state.replay_lsn) result_.replay_lsn = postgres::format_lsn(*state.replay_lsn);
      if (commit.error.empty() && commit.has_row && !commit.is_null) state.last_commit = from_epoch(commit.value);
      state.server_log = slurp(server_log);
      CheckResult r = judge_recovery_target(RecoveryTarget{stop->finish_lsn, pit}, state);
      if (!lsn.error.empty()) r.output = lsn.error;
      return r;
    });
    timed([&] {
      const SqlOutcome o = run_sql(su.get(), "select system_identifier::text from pg_control_system()");
      if (o.error.empty() && o.has_row) result_.system_identifier = o.value;
      CheckResult r = judge_system_identifier(stop->system_identifier, result_.system_identifier);
      if (!o.error.empty()) r.output = o.error;
      return r;
    });
    if (*profile == VerifyProfile::kSupabaseSelfHosted)
      timed([&] {
        std::vector<std::string> present;
        for (const auto& s : supabase_schemas()) {
          const SqlOutcome o = run_sql(su.get(), "select count(*) from pg_namespace where nspname = '" + s + "'");
          if (o.error.empty() && o.value == "1") present.push_back(s);
        }
        std::vector<TableCount> counts;
        for (const auto& t : supabase_tables()) {
          const SqlOutcome o = run_sql(su.get(), "select count(*) from " + t);
          TableCount c{t, std::nullopt, o.error};
          if (o.error.empty() && o.has_row) c.count = std::stoll(o.value);
          counts.push_back(std::move(c));
        }
        return judge_supabase_schemas(present, counts);
      });

    // 6. The user's checks, as a role that reads and writes data but is no superuser.
    if (!checks->empty()) {
      const SqlOutcome role = run_sql(
          su.get(), std::string("do $$ begin if not exists (select from pg_roles where rolname = '") + kCheckRole +
                        "') then create role " + kCheckRole + "; end if; end $$; alter role " + kCheckRole +
                        " with login nosuperuser nocreatedb nocreaterole noreplication bypassrls; "
                        "grant pg_read_all_data, pg_write_all_data to " + kCheckRole);
      for (const auto& check : *checks)
        timed([&] {
          if (!role.error.empty()) return judge_sql_check(check, SqlOutcome{"cannot prepare the role " + std::string(kCheckRole) + ": " + role.error, false, false, ""});
          std::string connect_error;
          Conn c = server_->connect(kCheckRole, check.timeout_seconds, connect_error);
          if (!c) return judge_sql_check(check, SqlOutcome{connect_error, false, false, ""});
          return judge_sql_check(check, run_sql(c.get(), check.sql));
        });
    }
  }

  const Env& env_;
  std::ostream& log_;
  VerifyResult result_;
  std::unique_ptr<Server> server_;
};

}  // namespace

int verify(const Env& env, std::ostream& log) {
  VerifyResult result = Verification(env, log).run();
  // No secret value from the environment in anything written or printed.
  result.error = redact(result.error, env);
  for (auto& c : result.checks) {
    c.output = redact(c.output, env);
    c.name = redact(c.name, env);
  }
  const bool passed = all_passed(result);
  const std::string text = redact(result_json(result), env);
  write_termination(env, text);
  log << "run-job: verify: " << result.restored << ": " << (passed ? "verified" : "NOT verified")
      << (result.error.empty() ? "" : ": " + result.error) << "\n";
  return passed ? 0 : 1;
}

}  // namespace bo::jobs
