// Shared set-up for the wal-g stand-in's table tests: a scratch directory, a
// file store the PostgreSQL server can write (archive_command runs as the
// server's user), a real PostgreSQL 15 archiving into it, and a runner for the
// stand-in (as the server's user, with an explicit environment).
#pragma once
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../support/postgres.h"

namespace walg_test {

namespace fs = std::filesystem;
using testing_support::Postgres;
using testing_support::PostgresOptions;
using Env = std::map<std::string, std::string>;

inline const std::string kWalg = WALG_STANDIN_BIN;

struct Result {
  int exit_code = -1;  // -1: killed by a signal
  std::string out, err;
};

inline std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Starts the stand-in as the server's user with exactly `env` (plus PATH); the caller waits.
// `in_mount_namespace`: shell commands run first (as root) in a private mount namespace.
inline pid_t start_walg(const std::vector<std::string>& args, const Env& env, const fs::path& out, const fs::path& err,
                        const std::string& in_mount_namespace = "") {
  std::vector<std::string> argv;
  if (Postgres::drops_root()) argv = {"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"};
  argv.push_back(kWalg);
  argv.insert(argv.end(), args.begin(), args.end());
  if (!in_mount_namespace.empty()) {
    std::string cmd = in_mount_namespace + " && exec";
    for (const auto& a : argv) cmd += " '" + a + "'";
    argv = {"/usr/bin/unshare", "-m", "/bin/sh", "-c", cmd};
  }
  std::vector<std::string> envs = {"PATH=/usr/bin:/bin"};
  for (const auto& [k, v] : env) envs.push_back(k + "=" + v);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0666);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> a, v;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    for (auto& s : envs) v.push_back(s.data());
    v.push_back(nullptr);
    ::execve(a[0], a.data(), v.data());
    ::_exit(127);
  }
  return pid;
}

inline Result wait_walg(pid_t pid, const fs::path& out, const fs::path& err) {
  int st = 0;
  while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(out), slurp(err)};
}

// Polls `cond` until it holds or `deadline` passes.
inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds deadline = std::chrono::seconds(60)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cond();
}

class WalgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "walg-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    store_ = dir_ / "store";
    fs::create_directories(store_);
    Postgres::hand_to_server_user(store_);
    scratch_ = dir_ / "scratch";
    fs::create_directories(scratch_);
    Postgres::hand_to_server_user(scratch_);
  }
  void TearDown() override {
    pg_.reset();
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
    else std::cerr << "kept " << dir_ << " for inspection\n";
  }

  // A server archiving into `store_` (WALG_FILE_PREFIX), with `archive_env` (e.g. a
  // WALG_LIBSODIUM_KEY) added to archive_command's environment.
  Postgres& start_server(const Env& archive_env = {}) {
    PostgresOptions o;
    o.archive_command = "WALG_FILE_PREFIX=" + store_.string() + " " + env_prefix(archive_env) + kWalg + " wal-push %p";
    pg_ = std::make_unique<Postgres>(Postgres::init(dir_ / "data", o));
    return *pg_;
  }

  // "K='V' ..." for a shell command line (values without single quotes).
  static std::string env_prefix(const Env& env) {
    std::string p;
    for (const auto& [k, v] : env) p += k + "='" + v + "' ";
    return p;
  }

  Env file_env(const fs::path& store) const {
    Env e = {{"WALG_FILE_PREFIX", store.string()}};
    if (pg_) e.merge(pg_->libpq_env());
    return e;
  }

  Result walg(const std::vector<std::string>& args, Env env = {}) {
    if (env.empty()) env = file_env(store_);
    const fs::path out = scratch_ / ("out-" + std::to_string(++runs_)), err = scratch_ / ("err-" + std::to_string(runs_));
    auto r = wait_walg(start_walg(args, env, out, err), out, err);
    return r;
  }

  // backup-push that must succeed; returns the new backup's name.
  std::string push(const Env& extra = {}, bool full = false) {
    Env env = file_env(store_);
    for (const auto& [k, v] : extra) env[k] = v;
    std::vector<std::string> args = {"backup-push", pg_->data_dir().string()};
    if (full) args.push_back("--full");
    const auto r = walg(args, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const auto at = r.err.find("Wrote backup with name ");
    if (at == std::string::npos) return "";
    const auto start = at + std::string("Wrote backup with name ").size();
    return r.err.substr(start, r.err.find(' ', start) - start);
  }

  nlohmann::json sentinel(const std::string& name) {
    const auto r = walg({"st", "cat", "basebackups_005/" + name + "_backup_stop_sentinel.json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  }

  nlohmann::json list_json(const Env& env = {}) {
    const auto r = walg({"backup-list", "--json", "--detail"}, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    if (r.out.empty()) return nlohmann::json::array();
    return nlohmann::json::parse(r.out);
  }

  // Forces a WAL switch and waits until the switched-out segment is archived.
  void archive_current_wal() {
    const std::string seg = pg_->value("select pg_walfile_name(pg_current_wal_lsn())");
    pg_->query("select pg_switch_wal()");
    ASSERT_TRUE(eventually([&] { return pg_->value("select coalesce(last_archived_wal, '') from pg_stat_archiver") >= seg; }))
        << pg_->log();
  }

  void insert_rows(int from, int to) {
    pg_->query("create table if not exists t(id int primary key, note text)");
    pg_->query("insert into t select g, md5(g::text) from generate_series(" + std::to_string(from) + "," + std::to_string(to) + ") g");
  }

  // Fetches `name` from the store `env` names into a fresh directory, adds recovery settings that
  // fetch WAL from the same store, and starts PostgreSQL on it (waiting for recovery to end).
  Postgres restore(const std::string& name, const Env& env, const std::string& restore_env_prefix) {
    const fs::path target = dir_ / ("restored-" + std::to_string(++runs_));
    fs::create_directories(target);
    Postgres::hand_to_server_user(target);
    const auto r = walg({"backup-fetch", target.string(), name}, env);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::ofstream(target / "recovery.signal").close();
    std::ofstream(target / "postgresql.auto.conf", std::ios::app)
        << "restore_command = '" << restore_env_prefix << kWalg << " wal-fetch %f %p'\n";
    PostgresOptions o;
    o.settings["archive_mode"] = "off";
    return Postgres::start_existing(target, o);
  }

  fs::path dir_, store_, scratch_;
  std::unique_ptr<Postgres> pg_;
  int runs_ = 0;
};

}  // namespace walg_test
