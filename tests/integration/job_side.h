// What the Job-side tests of `run-job verify` and `run-job restore-in-place`
// share (scratch_verify_test.cpp, restore_in_place_test.cpp): a real backup
// taken by `run-job full-backup` through the wal-g stand-in into an encrypted
// file store, the tools `run-job install-tools` copies, and a command run from
// there as the database's image runs it: through the copied loader, as the
// server's user, with nothing but the contract's environment and the image's
// PostgreSQL on PATH (no wal-g: it must use the copied one).
#pragma once
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "api/job_result.h"
#include "harness.h"
#include "support/postgres.h"

namespace testing_support {

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::mt19937 seeded_rng() {
  const unsigned seed = std::random_device{}();
  std::cout << "random seed: " << seed << "\n";
  return std::mt19937(seed);
}

// The check called `name` in a result (null when it has none); points into `result`.
inline const nlohmann::json* check_in(const nlohmann::json& result, const std::string& name) {
  if (!result.is_object() || !result.contains("checks") || !result["checks"].is_array()) return nullptr;
  for (const auto& c : result["checks"])
    if (c.value("name", "") == name) return &c;
  return nullptr;
}

// The part of Supabase's schema the supabase-self-hosted checks read. As
// Supabase has it, storage.objects has row-level security on and no policy,
// so only a role that bypasses it sees rows.
inline constexpr const char* kSupabaseLikeSchema =
    "create schema auth; create schema storage;"
    "create table auth.users (id uuid primary key default gen_random_uuid(), email text not null);"
    "create table storage.buckets (id text primary key, name text not null);"
    "create table storage.objects (id uuid primary key default gen_random_uuid(),"
    "  bucket_id text references storage.buckets, name text);"
    "alter table storage.objects enable row level security;";

// A temporary directory for one test that the server's user can traverse.
inline fs::path make_shared_temp_dir(const std::string& prefix) {
  const fs::path dir = make_temp_dir(prefix);
  fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                           fs::perms::others_exec);
  return dir;
}

// An encrypted file store the wal-g stand-in writes.
struct StandInStore {
  fs::path dir;
  std::string key;  // WALG_LIBSODIUM_KEY (wal-g wants >= 25 bytes)
  std::string walg = WALG_STANDIN_BIN;

  // Creates the (empty) store, writable by the server's user: archive_command runs as it.
  void create() const {
    fs::create_directories(dir);
    Postgres::hand_to_server_user(dir);
  }

  // archive_command for a source server (run as the server's user).
  [[nodiscard]] std::string archive_command() const {
    return "WALG_FILE_PREFIX=" + dir.string() + " WALG_LIBSODIUM_KEY=" + key + " " + walg + " wal-push %p";
  }
};

// run-job full-backup as a backup Job runs it (as the test's user, reading the
// server's files); the store is then handed to the server's user, who restores from it.
inline bo::api::JobResult take_full_backup(const StandInStore& store, const Postgres& source, const fs::path& work_dir,
                                           std::vector<std::string>& seen) {
  const fs::path term = work_dir / "backup-termination";
  const auto r = run("env WALG_FILE_PREFIX=" + store.dir.string() + " WALG_LIBSODIUM_KEY=" + store.key +
                         " WALG_BINARY=" + store.walg + " TMPDIR=" + work_dir.string() + " TERMINATION_LOG=" +
                         term.string() + " PGDATA=" + source.data_dir().string() + " " + source.libpq_env_prefix() +
                         OPERATOR_BIN + " run-job full-backup",
                     120);
  seen.push_back(r.output);
  EXPECT_EQ(r.exit_code, 0) << r.output << read_file(term);
  const auto made = bo::api::parse_job_result(read_file(term));
  EXPECT_TRUE(made) << read_file(term);
  EXPECT_TRUE(made && made->wal_archived) << read_file(term);
  Postgres::hand_to_server_user(store.dir);
  return made.value_or(bo::api::JobResult{});
}

// run-job install-tools, as the init container runs it from the operator's image. Call through ASSERT_NO_FATAL_FAILURE.
inline void install_tools_into(const fs::path& tools, const StandInStore& store, const fs::path& work_dir,
                               std::vector<std::string>& seen) {
  const fs::path term = work_dir / "install-termination";
  const auto r = run("env TOOLS_DIR=" + tools.string() + " WALG_BINARY=" + store.walg + " TERMINATION_LOG=" +
                         term.string() + " " + OPERATOR_BIN + " run-job install-tools",
                     60);
  seen.push_back(r.output);
  ASSERT_EQ(r.exit_code, 0) << r.output << read_file(term);
}

struct ToolsRun {
  int exit_code = -1;
  std::string output;       // what run-job printed
  std::string termination;  // the termination message
  nlohmann::json result;    // the termination message parsed (discarded when not JSON)
};

// `run-job action` from `tools`, as the server's user, with `env` (plus PATH
// and TERMINATION_LOG) as its whole environment; its output and termination
// message land in `out` (created).
inline ToolsRun run_from_tools(const fs::path& tools, const std::string& action, const std::vector<std::string>& env,
                               const fs::path& out) {
  fs::create_directories(out);
  Postgres::hand_to_server_user(out);
  std::vector<std::string> argv = {"/usr/bin/timeout", "-k", "10", "240", "/usr/bin/env", "-i",
                                   "PATH=" + std::string(Postgres::kBinDir) + ":/usr/bin:/bin",
                                   "TERMINATION_LOG=" + (out / "termination").string()};
  argv.insert(argv.end(), env.begin(), env.end());
  argv.insert(argv.end(), {(tools / "ld.so").string(), "--library-path", (tools / "lib").string(),
                           (tools / "bin" / "backup-operator").string(), "run-job", action});
  ToolsRun r;
  r.exit_code = Postgres::run_as_server_user(argv, out / "output");
  r.output = read_file(out / "output");
  r.termination = read_file(out / "termination");
  r.result = nlohmann::json::parse(r.termination, nullptr, false);
  return r;
}

}  // namespace testing_support
