#include "postgres.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace testing_support {
namespace fs = std::filesystem;

namespace {

// A loopback port free at the time of asking. Kept for PostgreSQL alone, which
// cannot be given port 0 (`port` is 1..65535): whoever starts a server on it
// must retry when another process took it first (Postgres::start does).
int pick_free_port() {
  const int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(s);
    throw std::runtime_error("pick_free_port: bind failed");
  }
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(s);
  return ntohs(a.sin_port);
}

std::vector<std::string> as_server_user(std::vector<std::string> argv) {
  if (!Postgres::drops_root()) return argv;
  std::vector<std::string> out = {"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

pid_t spawn(const std::vector<std::string>& argv, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

fs::path log_path(const fs::path& data_dir) { return data_dir.string() + ".log"; }

}  // namespace

bool Postgres::drops_root() { return ::geteuid() == 0; }

void Postgres::hand_to_server_user(const fs::path& path) {
  if (!drops_root()) return;
  // nobody must reach the path: make root-owned parents (mkdtemp makes them 0700) traversable.
  for (fs::path p = fs::absolute(path).parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path()) {
    std::error_code ec;
    const auto perms = fs::status(p, ec).permissions();
    if (!ec && (perms & fs::perms::others_exec) == fs::perms::none)
      fs::permissions(p, fs::perms::others_exec | fs::perms::group_exec, fs::perm_options::add, ec);
  }
  const auto chown_one = [](const fs::path& p) {
    if (::lchown(p.c_str(), 65534, 65534) != 0) throw std::runtime_error("chown " + p.string() + " failed");
  };
  chown_one(path);
  if (fs::is_directory(path))
    for (const auto& e : fs::recursive_directory_iterator(path)) chown_one(e.path());
}

int Postgres::run_as_server_user(const std::vector<std::string>& argv, const fs::path& log) {
  const pid_t pid = spawn(as_server_user(argv), log);
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Postgres Postgres::init(const fs::path& data_dir, const PostgresOptions& options) {
  fs::create_directories(data_dir);
  fs::permissions(data_dir, fs::perms::owner_all, fs::perm_options::replace);
  hand_to_server_user(data_dir);
  std::vector<std::string> initdb = {std::string(kBinDir) + "/initdb", "-D", data_dir.string(), "-U", "postgres",
                                     "-E", "UTF8", "--locale=C", "--no-sync"};
  const fs::path pwfile = data_dir.string() + ".pw";
  if (options.password.empty()) {
    initdb.push_back("--auth=trust");
  } else {
    std::ofstream(pwfile, std::ios::trunc) << options.password << "\n";
    hand_to_server_user(pwfile);
    initdb.insert(initdb.end(), {"--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=" + pwfile.string()});
  }
  const int rc = run_as_server_user(initdb, log_path(data_dir));
  std::error_code ec;
  fs::remove(pwfile, ec);
  if (rc != 0) {
    std::ifstream in(log_path(data_dir));
    std::stringstream ss;
    ss << in.rdbuf();
    throw std::runtime_error("initdb failed (" + std::to_string(rc) + "):\n" + ss.str());
  }
  Postgres pg(data_dir, 0, options.password);
  pg.start(options);
  return pg;
}

Postgres Postgres::start_existing(const fs::path& data_dir, const PostgresOptions& options,
                                  std::chrono::seconds recovery_deadline) {
  fs::permissions(data_dir, fs::perms::owner_all, fs::perm_options::replace);
  hand_to_server_user(data_dir);
  Postgres pg(data_dir, 0, options.password);
  pg.start(options);
  const auto end = std::chrono::steady_clock::now() + recovery_deadline;
  for (;;) {
    try {
      if (pg.value("select pg_is_in_recovery()") == "f") break;
    } catch (const std::runtime_error&) {
      // still starting (e.g. "the database system is not yet accepting connections")
    }
    if (std::chrono::steady_clock::now() > end) throw std::runtime_error("recovery did not finish in time:\n" + pg.log());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pg;
}

Postgres::Postgres(Postgres&& o) noexcept
    : data_dir_(std::move(o.data_dir_)), port_(o.port_), password_(std::move(o.password_)), pid_(o.pid_) {
  o.pid_ = -1;
}

Postgres::~Postgres() { stop(); }

// A port is named before the server starts, so another process may bind it
// first: the postmaster then logs "could not bind ...: Address already in use"
// and "could not create any TCP/IP sockets" and exits. It is started again on
// another port, a bounded number of times, each retry said on stderr. Readiness
// is read from the server's own postmaster.pid, never from whoever answers on
// the port (which, after a lost race, is someone else).
void Postgres::start(const PostgresOptions& options) {
  for (int attempt = 1;; ++attempt) {
    port_ = attempt == 1 && options.first_port > 0 ? options.first_port : pick_free_port();
    std::error_code ec;
    const auto offset = fs::file_size(log_path(data_dir_), ec);
    launch(options);
    if (wait_ready(options.start_deadline, ec ? 0 : offset)) return;
    if (attempt >= kStartAttempts)
      throw std::runtime_error("postgres found its port taken " + std::to_string(attempt) + " times:\n" + log());
    std::fprintf(stderr, "postgres: port %d was taken before the server bound it (attempt %d of %d); starting on another\n",
                 port_, attempt, kStartAttempts);
  }
}

void Postgres::launch(const PostgresOptions& options) {
  std::map<std::string, std::string> s = {
      {"port", std::to_string(port_)}, {"listen_addresses", "127.0.0.1"}, {"unix_socket_directories", ""},
      {"fsync", "off"}, {"logging_collector", "off"}};
  if (!options.archive_command.empty()) {
    s["archive_mode"] = "on";
    s["archive_command"] = options.archive_command;
  }
  if (options.archive_timeout_s > 0) s["archive_timeout"] = std::to_string(options.archive_timeout_s);
  for (const auto& [k, v] : options.settings) s[k] = v;
  std::vector<std::string> argv = {std::string(kBinDir) + "/postgres", "-D", data_dir_.string()};
  for (const auto& [k, v] : s) {
    argv.push_back("-c");
    argv.push_back(k + "=" + v);
  }
  pid_ = spawn(as_server_user(argv), log_path(data_dir_));
}

bool Postgres::wait_ready(std::chrono::seconds deadline, std::uintmax_t log_offset) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=postgres connect_timeout=2";
  // postmaster.pid: line 1 the postmaster's pid, line 8 its state, "ready" (or "standby" in a
  // hot standby) once it accepts connections (PostgreSQL's miscadmin.h, LOCK_FILE_LINE_PM_STATUS).
  const auto own_server_ready = [&] {
    std::ifstream in(data_dir_ / "postmaster.pid");
    std::vector<std::string> lines;
    for (std::string line; lines.size() < 8 && std::getline(in, line);) lines.push_back(line);
    if (lines.size() < 8 || lines[0] != std::to_string(pid_)) return false;
    const std::string state = lines[7].substr(0, lines[7].find_last_not_of(' ') + 1);
    return state == "ready" || state == "standby";
  };
  for (;;) {
    if (own_server_ready() && PQping(conninfo.c_str()) == PQPING_OK) return true;
    int st = 0;
    if (::waitpid(pid_, &st, WNOHANG) == pid_) {
      pid_ = -1;
      std::ifstream in(log_path(data_dir_));
      in.seekg(static_cast<std::streamoff>(log_offset));
      std::stringstream ss;
      ss << in.rdbuf();
      if (ss.str().find("could not create any TCP/IP sockets") != std::string::npos &&
          ss.str().find("Address already in use") != std::string::npos)
        return false;
      throw std::runtime_error("postgres exited while starting:\n" + log());
    }
    if (std::chrono::steady_clock::now() > end) throw std::runtime_error("postgres did not start in time:\n" + log());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void Postgres::stop(std::chrono::seconds deadline) {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGINT);  // fast shutdown
  const auto end = std::chrono::steady_clock::now() + deadline;
  int st = 0;
  while (::waitpid(pid_, &st, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > end) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &st, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
}

std::vector<PgRow> Postgres::query(const std::string& sql) const {
  std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=postgres connect_timeout=10";
  if (!password_.empty()) conninfo += " password=" + password_;
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    const std::string msg = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("connect: " + msg);
  }
  PGresult* r = PQexec(c, sql.c_str());
  const auto status = PQresultStatus(r);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    const std::string msg = PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    throw std::runtime_error(sql + ": " + msg);
  }
  std::vector<PgRow> rows;
  for (int i = 0; i < PQntuples(r); ++i) {
    PgRow row;
    for (int j = 0; j < PQnfields(r); ++j)
      row.push_back(PQgetisnull(r, i, j) ? std::nullopt : std::optional<std::string>(PQgetvalue(r, i, j)));
    rows.push_back(std::move(row));
  }
  PQclear(r);
  PQfinish(c);
  return rows;
}

std::string Postgres::value(const std::string& sql) const {
  const auto rows = query(sql);
  if (rows.size() != 1 || rows[0].size() != 1) throw std::runtime_error(sql + ": expected one value");
  return rows[0][0].value_or("");
}

std::map<std::string, std::string> Postgres::libpq_env() const {
  std::map<std::string, std::string> env = {
      {"PGHOST", "127.0.0.1"}, {"PGPORT", std::to_string(port_)}, {"PGUSER", "postgres"}, {"PGDATABASE", "postgres"}};
  if (!password_.empty()) env["PGPASSWORD"] = password_;
  return env;
}

std::string Postgres::libpq_env_prefix() const {
  std::string out;
  for (const auto& [k, v] : libpq_env()) out += k + "=" + v + " ";
  return out;
}

std::string Postgres::log() const {
  std::ifstream in(log_path(data_dir_));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace testing_support
