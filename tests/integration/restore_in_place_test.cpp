// The in-place restore's Job side, end to end without Kubernetes: a real
// PostgreSQL 15 (the "production" database) whose data directory lives on a
// "volume" directory archives through the wal-g stand-in into an encrypted
// file store; `run-job full-backup` takes a backup; rows are then dropped and
// others written, and the server is stopped (the operator scaled it to 0).
// `run-job restore-in-place` then runs as the init container installed it:
// through the copied loader, as the server's user, with the contract's
// environment only. Afterwards PostgreSQL is started normally on the data
// directory, as the production Pod would, and `run-job check-database`
// checks it. Cases: the restore with the old data moved aside and the new
// timeline's history archived by production's own archiver; a data directory
// at the volume root (refused, then discarded with lost+found kept); refusals
// that touch nothing (checksum, paths, an existing aside copy); crashes after
// the move, the fetch and the stop, each carried on by a re-run that never
// overwrites the aside copy, and a re-run after success that reports it again;
// check-database passing, failing a check, refusing writes, and a wrong or
// missing system identifier. NoRoom needs a volume that is full at the right
// moment: it is decided in the unit tests (in_place_plan_test.cpp).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <random>

#include "api/job_result.h"
#include "common/encoding.h"
#include "harness.h"
#include "job_side.h"
#include "support/postgres.h"

using nlohmann::json;
using testing_support::Postgres;
using testing_support::PostgresOptions;
using testing_support::read_file;
using testing_support::ToolsRun;

namespace {

namespace fs = std::filesystem;

const std::string kWalg = WALG_STANDIN_BIN;
// Secrets in the Jobs' environment: none may appear in anything they write.
const std::string kKey = "canary-inplace-key-51d0-2be7-c4";
const std::string kS3Secret = "canary-inplace-s3-7a2e";
const std::string kDbPassword = "canary-inplace-db-3f9c";
const std::string kRequest = "supabase/restore-1";
const std::string kAside = "pgdata.before-restore-1";

// Every file below `dir` with its size and content hash, and every directory: equal manifests, equal trees.
std::map<std::string, std::string> manifest(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = fs::relative(e.path(), dir).string();
    if (e.is_regular_file()) out[rel] = std::to_string(e.file_size()) + " " + bo::sha256_hex(read_file(e.path()));
    else out[rel] = e.is_directory() ? "dir" : "other";
  }
  return out;
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// The check called `name` (a copy: an object with no fields when there is none).
json check_named(const json& result, const std::string& name) {
  const json* c = testing_support::check_in(result, name);
  return c ? *c : json::object();
}

std::vector<std::string> check_names(const json& result) {
  std::vector<std::string> names;
  if (result.is_object() && result.contains("checks"))
    for (const auto& c : result["checks"]) names.push_back(c.value("name", ""));
  return names;
}

class RestoreInPlace : public ::testing::Test {
 protected:
  void SetUp() override {
    rng_ = testing_support::seeded_rng();
    dir_ = testing_support::make_shared_temp_dir("restore-in-place");
    store_ = dir_ / "store";
    testing_support::StandInStore{store_, kKey}.create();
    volume_ = dir_ / "volume";
    tools_ = dir_ / "tools";
    archiving_.archive_command = testing_support::StandInStore{store_, kKey}.archive_command();
    archiving_.password = kDbPassword;
  }

  void TearDown() override {
    source_.reset();
    for (const auto& text : seen_) {
      for (const auto& secret : {kKey, kS3Secret, kDbPassword})
        EXPECT_EQ(text.find(secret), std::string::npos) << "a secret leaked:\n" << text;
    }
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
    else std::cerr << "kept " << dir_ << " for inspection\n";
  }

  // The production database at `data_dir` on the volume, with a Supabase-like schema and table t of `rows` rows.
  void start_source(const fs::path& data_dir, int rows) {
    fs::create_directories(volume_);
    Postgres::hand_to_server_user(volume_);  // the Job (as the server's user) renames and writes on the volume
    source_ = std::make_unique<Postgres>(Postgres::init(data_dir, archiving_));
    source_->query(std::string(testing_support::kSupabaseLikeSchema) +
        "insert into auth.users (email) values ('a@example.org'), ('b@example.org');"
        "insert into storage.buckets values ('avatars', 'avatars');"
        "create table t (id int primary key, note text);"
        "insert into t select g, md5(g::text) from generate_series(1, " + std::to_string(rows) + ") g");
    // Something in postgresql.auto.conf, to see it come back exactly as fetched.
    source_->query("alter system set work_mem = '7MB'");
    system_identifier_ = source_->value("select system_identifier::text from pg_control_system()");
  }

  bo::api::JobResult full_backup() {
    return testing_support::take_full_backup(testing_support::StandInStore{store_, kKey}, *source_, dir_, seen_);
  }

  // After the backup: t dropped, other writes (what the restore must undo); then the server stops (scaled to 0).
  void diverge_and_stop() {
    source_->query("drop table t; create table u (id int); insert into u select generate_series(1, 50)");
    source_->stop();
  }

  void install_tools() { testing_support::install_tools_into(tools_, testing_support::StandInStore{store_, kKey}, dir_, seen_); }

  // The environment the operator gives the restore Job; `changes` override it ("" values are left out).
  std::map<std::string, std::string> restore_env(const bo::api::JobResult& made) const {
    return {{"RESTORE_VOLUME", volume_.string()},
            {"DATA_PATH", "pgdata"},
            {"ASIDE_PATH", kAside},
            {"RESTORE_REQUEST", kRequest},
            {"BACKUP_ID", made.backup_id},
            {"BACKUP_CHECKSUM", made.checksum},
            {"UNCOMPRESSED_BYTES", std::to_string(made.uncompressed_bytes)},
            {"VERIFY_PROFILE", "supabase-self-hosted"},
            {"RECOVERY_DEADLINE_SECONDS", "120"},
            {"WALG_FILE_PREFIX", store_.string()},
            {"WALG_LIBSODIUM_KEY", kKey},
            {"AWS_SECRET_ACCESS_KEY", kS3Secret}};
  }

  // run-job restore-in-place through the copied loader, as the server's user, with `env` only ("" values left out).
  ToolsRun restore(const std::map<std::string, std::string>& env) {
    const std::string n = std::to_string(++runs_);
    const fs::path run = dir_ / ("run-" + n);  // the Pod's run emptyDir: new each time
    fs::create_directories(run);
    Postgres::hand_to_server_user(run);
    std::vector<std::string> vars = {"TOOLS_DIR=" + tools_.string(), "SCRATCH_SOCKET_DIR=" + run.string()};
    for (const auto& [k, v] : env)
      if (!v.empty()) vars.push_back(k + "=" + v);
    return seen(testing_support::run_from_tools(tools_, "restore-in-place", vars, dir_ / ("out-" + n)));
  }

  // run-job check-database in the operator's image, with libpq's environment for `server` (`env` overrides it).
  ToolsRun check_database(const Postgres& server, const std::map<std::string, std::string>& env) {
    const fs::path out = dir_ / ("out-" + std::to_string(++runs_));
    fs::create_directories(out);
    Postgres::hand_to_server_user(out);
    std::map<std::string, std::string> vars = server.libpq_env();
    for (const auto& [k, v] : env) vars[k] = v;
    std::vector<std::string> argv = {"/usr/bin/timeout", "-k", "10", "240", "/usr/bin/env", "-i", "PATH=/usr/bin:/bin",
                                     "TERMINATION_LOG=" + (out / "termination").string()};
    for (const auto& [k, v] : vars) argv.push_back(k + "=" + v);
    argv.insert(argv.end(), {OPERATOR_BIN, "run-job", "check-database"});
    ToolsRun r;
    r.exit_code = Postgres::run_as_server_user(argv, out / "output");
    r.output = read_file(out / "output");
    r.termination = read_file(out / "termination");
    r.result = json::parse(r.termination, nullptr, false);
    return seen(std::move(r));
  }

  ToolsRun seen(ToolsRun r) {
    seen_.push_back(r.output);
    seen_.push_back(r.termination);
    return r;
  }

  json marker() const { return json::parse(read_file(volume_ / ".backup-operator-restore.json"), nullptr, false); }

  // Whether storage holds WAL file `name` (the stand-in's wal-fetch, as a restore_command would ask).
  bool stored(const std::string& name) {
    const auto r = testing_support::run("env WALG_FILE_PREFIX=" + store_.string() + " WALG_LIBSODIUM_KEY=" + kKey +
                                        " " + kWalg + " wal-fetch " + name + " " + (dir_ / "fetched-wal").string());
    return r.exit_code == 0;
  }

  // PostgreSQL started normally on a data directory, as the production Pod would (archiving as given).
  std::unique_ptr<Postgres> start_normally(const fs::path& data_dir, bool archiving) {
    PostgresOptions o = archiving_;
    if (!archiving) {
      o.archive_command.clear();
      o.settings["archive_mode"] = "off";
    }
    try {
      return std::make_unique<Postgres>(Postgres::start_existing(data_dir, o, std::chrono::seconds(60)));
    } catch (const std::exception& e) {
      ADD_FAILURE() << "PostgreSQL did not start on " << data_dir << ": " << e.what();
      return nullptr;
    }
  }

  int rows() { return 1 + static_cast<int>(rng_() % 3000); }

  std::mt19937 rng_;
  fs::path dir_, store_, volume_, tools_;
  PostgresOptions archiving_;
  std::unique_ptr<Postgres> source_;
  std::string system_identifier_;
  std::vector<std::string> seen_;
  int runs_ = 0;
};

TEST_F(RestoreInPlace, RestoresIntoTheDataDirectoryKeepsTheOldAsideAndProductionArchivesTheNewTimeline) {
  const int n = rows();
  start_source(volume_ / "pgdata", n);
  const auto made = full_backup();
  ASSERT_FALSE(made.backup_id.empty());
  diverge_and_stop();
  const auto before = manifest(volume_ / "pgdata");
  const std::string fetched_auto_conf = read_file(volume_ / "pgdata" / "postgresql.auto.conf");
  ASSERT_NE(fetched_auto_conf.find("work_mem = '7MB'"), std::string::npos) << fetched_auto_conf;
  ASSERT_NO_FATAL_FAILURE(install_tools());

  const auto r = restore(restore_env(made));
  ASSERT_EQ(r.exit_code, 0) << r.output << r.termination;
  ASSERT_TRUE(r.result.is_object()) << r.termination;
  EXPECT_LE(r.termination.size(), 4096u);
  EXPECT_EQ(r.result["restored"], made.backup_id);
  EXPECT_EQ(r.result["checksum"], made.checksum);
  EXPECT_EQ(r.result["recovered"], true);
  EXPECT_EQ(r.result["aside"], kAside);
  EXPECT_EQ(r.result["discarded"], false);
  EXPECT_EQ(r.result["systemIdentifier"], system_identifier_);
  EXPECT_GT(r.result.value("recoverySeconds", 0.0), 0.0);
  EXPECT_FALSE(r.result.contains("error")) << r.termination;
  EXPECT_EQ(check_names(r.result),
            (std::vector<std::string>{"recovered", "recovery-target", "system-identifier", "supabase-schemas"}))
      << "built-in checks only";
  for (const auto& c : r.result["checks"]) EXPECT_EQ(c["passed"], true) << c;

  // The aside copy is the data from before, untouched; the data directory is what production starts on.
  EXPECT_EQ(manifest(volume_ / kAside), before) << "the aside copy changed";
  const fs::path d = volume_ / "pgdata";
  for (const char* gone : {"recovery.signal", "standby.signal", "postmaster.pid"})
    EXPECT_FALSE(fs::exists(d / gone)) << gone;
  EXPECT_EQ(read_file(d / "postgresql.auto.conf"), fetched_auto_conf) << "postgresql.auto.conf as fetched";
  EXPECT_TRUE(fs::exists(d / "pg_wal" / "00000002.history"));
  EXPECT_TRUE(fs::exists(d / "pg_wal" / "archive_status" / "00000002.history.ready"));
  EXPECT_FALSE(stored("00000002.history")) << "the Job's server archived nothing (archive_mode=off)";
  const json m = marker();
  EXPECT_EQ(m.value("state", ""), "done") << m;
  EXPECT_EQ(m.value("request", ""), kRequest);
  EXPECT_EQ(m.value("backupId", ""), made.backup_id);
  EXPECT_EQ(m.value("result", ""), r.termination) << "the marker keeps what was reported";
  const std::string server_log = read_file(volume_ / "pgdata.restore.log");
  EXPECT_NE(server_log.find("selected new timeline ID: 2"), std::string::npos) << server_log;
  EXPECT_NE(server_log.find("database system is shut down"), std::string::npos) << "a clean stop: " << server_log;
  EXPECT_EQ(server_log.find("listening on IPv"), std::string::npos) << "never on TCP: " << server_log;
  seen_.push_back(server_log);
  EXPECT_NE(r.output.find("moved " + d.string() + " aside to " + (volume_ / kAside).string()), std::string::npos)
      << r.output;

  // Production starts on it as on any cluster: no recovery, t is back, u is gone, and its own archiver
  // uploads the new timeline's history file.
  auto production = start_normally(d, true);
  ASSERT_TRUE(production);
  EXPECT_EQ(production->value("select count(*) from t"), std::to_string(n));
  EXPECT_EQ(production->value("select coalesce(to_regclass('u')::text, 'absent')"), "absent");
  EXPECT_EQ(production->value("select substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"), "00000002");
  EXPECT_EQ(production->log().find("starting archive recovery"), std::string::npos) << production->log();
  EXPECT_TRUE(testing_support::eventually([&] { return stored("00000002.history"); }, std::chrono::seconds(60),
                                          std::chrono::milliseconds(200)))
      << production->log();
  production.reset();

  // The aside copy is a whole cluster: the data from just before the restore.
  auto aside = start_normally(volume_ / kAside, false);
  ASSERT_TRUE(aside);
  EXPECT_EQ(aside->value("select coalesce(to_regclass('t')::text, 'absent')"), "absent");
  EXPECT_EQ(aside->value("select count(*) from u"), "50");
}

TEST_F(RestoreInPlace, ADataDirectoryAtTheVolumeRootIsRefusedUntouchedOrDiscardedKeepingLostAndFound) {
  const int n = rows();
  start_source(volume_, n);
  // As on a real filesystem's root: lost+found, root's, unreadable to the database's user (and in the backup).
  fs::create_directory(volume_ / "lost+found");
  std::ofstream(volume_ / "lost+found" / "#1234") << "an orphaned inode's bytes";
  fs::permissions(volume_ / "lost+found", fs::perms::owner_all, fs::perm_options::replace);
  const auto made = full_backup();
  ASSERT_FALSE(made.backup_id.empty());
  diverge_and_stop();
  const auto before = manifest(volume_);
  ASSERT_NO_FATAL_FAILURE(install_tools());

  auto env = restore_env(made);
  env["DATA_PATH"] = "";
  auto r = restore(env);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(r.result.value("error", "").starts_with("DataDirectoryIsVolumeRoot: the data directory is the volume root " +
                                                      volume_.string()))
      << r.termination;
  EXPECT_NE(r.result.value("error", "").find("spec.discardCurrentData: true"), std::string::npos) << r.termination;
  EXPECT_EQ(manifest(volume_), before) << "nothing touched";
  EXPECT_FALSE(fs::exists(volume_ / ".backup-operator-restore.json"));
  EXPECT_EQ(r.output.find("backup-fetch"), std::string::npos) << r.output;

  env["DISCARD_CURRENT_DATA"] = "true";
  r = restore(env);
  ASSERT_EQ(r.exit_code, 0) << r.output << r.termination;
  EXPECT_EQ(r.result["discarded"], true);
  EXPECT_EQ(r.result["aside"], "");
  EXPECT_NE(r.output.find("deleted the current data (spec.discardCurrentData) from " + volume_.string() + ": PG_VERSION, base,"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("(lost+found kept)"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(volume_ / "lost+found" / "#1234"), "an orphaned inode's bytes") << "lost+found kept as it was";
  EXPECT_NE(r.output.find("the backup carried lost+found; the volume's own is kept"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(volume_ / ".backup-operator-fetch"));
  EXPECT_TRUE(fs::exists(volume_ / ".backup-operator-restore.log"));
  EXPECT_EQ(marker().value("state", ""), "done");

  auto production = start_normally(volume_, false);
  ASSERT_TRUE(production);
  EXPECT_EQ(production->value("select count(*) from t"), std::to_string(n));
  EXPECT_EQ(production->value("select coalesce(to_regclass('u')::text, 'absent')"), "absent");
}

TEST_F(RestoreInPlace, RefusalsBeforeTheMoveTouchNothing) {
  start_source(volume_ / "pgdata", rows());
  const auto made = full_backup();
  diverge_and_stop();
  ASSERT_NO_FATAL_FAILURE(install_tools());
  const auto before = manifest(volume_);
  const auto untouched = [&](const ToolsRun& r, const std::string& error_start) {
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_TRUE(r.result.value("error", "").starts_with(error_start)) << r.termination;
    EXPECT_EQ(manifest(volume_), before) << "touched: " << error_start;
    EXPECT_EQ(r.output.find("backup-fetch"), std::string::npos) << r.output;
  };

  auto env = restore_env(made);
  env["BACKUP_CHECKSUM"] = "sha256:" + std::string(64, '0');
  auto r = restore(env);
  untouched(r, "ChecksumMismatch: storage holds " + made.checksum + " for " + made.backup_id);
  EXPECT_NE(r.result.value("error", "").find("nothing was moved"), std::string::npos) << r.termination;
  EXPECT_EQ(r.result.value("aside", "?"), "");

  struct Bad {
    const char* var;
    const char* value;
    const char* error;
  };
  for (const Bad& bad : {Bad{"DATA_PATH", "../pgdata", "InvalidRequest: DATA_PATH: must not contain \"..\""},
                         Bad{"ASIDE_PATH", "pgdata/old", "InvalidRequest: ASIDE_PATH: must not be inside DATA_PATH"},
                         Bad{"DISCARD_CURRENT_DATA", "yes", "InvalidRequest: DISCARD_CURRENT_DATA: must be \"true\" or \"false\""},
                         Bad{"RESTORE_REQUEST", "", "InvalidRequest: RESTORE_REQUEST: is required"},
                         Bad{"RECOVERY_DEADLINE_SECONDS", "soon", "InvalidRequest: RECOVERY_DEADLINE_SECONDS must be a positive number"}}) {
    env = restore_env(made);
    env[bad.var] = bad.value;
    untouched(restore(env), bad.error);
  }

  // An aside copy from before is never overwritten, not even an empty one.
  fs::create_directory(volume_ / kAside);
  Postgres::hand_to_server_user(volume_ / kAside);
  const auto with_aside = manifest(volume_);
  r = restore(restore_env(made));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(r.result.value("error", "").starts_with("AsideExists: " + (volume_ / kAside).string() + " already exists"))
      << r.termination;
  EXPECT_EQ(manifest(volume_), with_aside);
}

TEST_F(RestoreInPlace, AJobKilledAfterTheMoveTheFetchOrTheStopIsCarriedOnByARerunAndASuccessIsReportedAgain) {
  const int n = rows();
  start_source(volume_ / "pgdata", n);
  const auto made = full_backup();
  diverge_and_stop();
  ASSERT_NO_FATAL_FAILURE(install_tools());
  const auto before = manifest(volume_ / "pgdata");
  auto env = restore_env(made);

  env["BO_TEST_KILL_AFTER"] = "move";
  auto r = restore(env);
  ASSERT_EQ(r.exit_code, 137) << r.output;
  EXPECT_FALSE(fs::exists(volume_ / "pgdata"));
  EXPECT_EQ(manifest(volume_ / kAside), before);
  EXPECT_EQ(marker().value("state", ""), "moving") << "killed before the marker said more";

  env["BO_TEST_KILL_AFTER"] = "fetch";
  r = restore(env);
  ASSERT_EQ(r.exit_code, 137) << r.output;
  EXPECT_NE(r.output.find("left a partial restore"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(volume_ / "pgdata" / "PG_VERSION")) << "fetched";
  EXPECT_EQ(manifest(volume_ / kAside), before) << "the partial restore was not moved onto the aside copy";
  EXPECT_EQ(marker().value("state", ""), "restoring");

  env["BO_TEST_KILL_AFTER"] = "stop";
  r = restore(env);
  ASSERT_EQ(r.exit_code, 137) << r.output;
  EXPECT_NE(r.output.find("cleared the partial restore from " + (volume_ / "pgdata").string()), std::string::npos)
      << r.output;
  EXPECT_EQ(manifest(volume_ / kAside), before);
  EXPECT_EQ(marker().value("state", ""), "restoring") << "a recovered but unfinished directory is still partial";

  env.erase("BO_TEST_KILL_AFTER");
  r = restore(env);
  ASSERT_EQ(r.exit_code, 0) << r.output << r.termination;
  EXPECT_EQ(r.result["aside"], kAside) << "the aside copy the first attempt made";
  EXPECT_EQ(manifest(volume_ / kAside), before) << "intact, not overwritten";
  EXPECT_EQ(names_in(volume_), (std::vector<std::string>{".backup-operator-restore.json", "pgdata", "pgdata.before-restore-1",
                                                         "pgdata.log", "pgdata.restore.log"}))
      << "one aside copy, nothing else";

  // Once more after success (the operator lost the Job): the same result, nothing moved or fetched.
  const auto restored = manifest(volume_ / "pgdata");
  const std::string reported = r.termination;
  r = restore(env);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.termination, reported);
  EXPECT_NE(r.output.find("already restored"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("backup-fetch"), std::string::npos) << r.output;
  EXPECT_EQ(manifest(volume_ / "pgdata"), restored);
  EXPECT_EQ(manifest(volume_ / kAside), before);

  auto production = start_normally(volume_ / "pgdata", false);
  ASSERT_TRUE(production);
  EXPECT_EQ(production->value("select count(*) from t"), std::to_string(n));
}

TEST_F(RestoreInPlace, CheckDatabaseProvesTheRestoredProductionServerReadingOnly) {
  const int n = rows();
  start_source(volume_ / "pgdata", n);
  const auto made = full_backup();
  diverge_and_stop();
  ASSERT_NO_FATAL_FAILURE(install_tools());
  const auto restored = restore(restore_env(made));
  ASSERT_EQ(restored.exit_code, 0) << restored.output << restored.termination;
  const std::string id = restored.result.value("systemIdentifier", "");
  ASSERT_EQ(id, system_identifier_);
  auto production = start_normally(volume_ / "pgdata", true);
  ASSERT_TRUE(production);

  const auto env_with = [&](const std::string& expect_id, const json& checks) {
    return std::map<std::string, std::string>{{"BACKUP_ID", made.backup_id},
                                              {"BACKUP_CHECKSUM", made.checksum},
                                              {"EXPECT_SYSTEM_IDENTIFIER", expect_id},
                                              {"VERIFY_PROFILE", "supabase-self-hosted"},
                                              {"VERIFY_CHECKS", checks.dump()},
                                              {"READY_DEADLINE_SECONDS", "60"}};
  };
  const json rows_check = {{"name", "t-rows"}, {"sql", "select count(*) from t"}, {"expect", std::to_string(n)}};

  auto r = check_database(*production, env_with(id, json::array({rows_check})));
  ASSERT_EQ(r.exit_code, 0) << r.output << r.termination;
  EXPECT_EQ(r.result["restored"], made.backup_id);
  EXPECT_EQ(r.result["checksum"], made.checksum);
  EXPECT_EQ(r.result["recovered"], true);
  EXPECT_EQ(check_names(r.result), (std::vector<std::string>{"recovered", "system-identifier", "supabase-schemas", "t-rows"}));
  for (const auto& c : r.result["checks"]) EXPECT_EQ(c["passed"], true) << c;
  EXPECT_EQ((check_named(r.result, "supabase-schemas"))["output"], "auth.users=2, storage.buckets=1, storage.objects=0");

  // A differing value, a write, a way out of the read-only transaction, a secret echoed.
  const json failing = json::array(
      {{{"name", "t-rows"}, {"sql", "select count(*) from t"}, {"expect", std::to_string(n + 1)}},
       {{"name", "writes"}, {"sql", "insert into t values (-1, 'check')"}},
       {{"name", "escapes"}, {"sql", "commit; insert into t values (-2, 'check')"}},
       {{"name", "read-write"}, {"sql", "set transaction read write"}},
       {{"name", "echo"}, {"sql", "select '" + kDbPassword + "'"}, {"expect", kDbPassword}},
       {{"name", "slow"}, {"sql", "select pg_sleep(30)"}, {"timeoutSeconds", 1}}});
  r = check_database(*production, env_with(id, failing));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  ASSERT_TRUE(r.result.is_object()) << r.termination;
  EXPECT_FALSE(r.result.contains("error")) << "a check's failure, not the command's: " << r.termination;
  EXPECT_EQ((check_named(r.result, "t-rows"))["output"], std::to_string(n) + " (expected " + std::to_string(n + 1) + ")");
  EXPECT_NE((check_named(r.result, "writes"))["output"].get<std::string>().find("cannot execute INSERT in a read-only transaction"),
            std::string::npos)
      << r.termination;
  EXPECT_NE((check_named(r.result, "escapes"))["output"].get<std::string>().find("cannot insert multiple commands into a prepared statement"),
            std::string::npos)
      << r.termination;
  EXPECT_NE((check_named(r.result, "read-write"))["output"].get<std::string>().find("transaction read-write mode must be set before any query"),
            std::string::npos)
      << r.termination;
  EXPECT_EQ((check_named(r.result, "echo"))["output"], "[redacted]");
  EXPECT_NE((check_named(r.result, "slow"))["output"].get<std::string>().find("canceling statement due to statement timeout"),
            std::string::npos)
      << r.termination;
  for (const char* name : {"t-rows", "writes", "escapes", "read-write", "slow"})
    EXPECT_EQ((check_named(r.result, name))["passed"], false) << name;
  EXPECT_EQ(production->value("select count(*) from t"), std::to_string(n)) << "nothing was written";

  // The system identifier: another one, or none to compare with, fails.
  r = check_database(*production, env_with("123", json::array()));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ((check_named(r.result, "system-identifier"))["output"],
            "the server's system_identifier " + id + " differs from the restored cluster's 123: it is not the restored database");
  r = check_database(*production, env_with("", json::array()));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ((check_named(r.result, "system-identifier"))["passed"], false);
  EXPECT_NE((check_named(r.result, "system-identifier"))["output"].get<std::string>().find("could not be compared"),
            std::string::npos);

  // A server that never answers: NotReady after the deadline, polled, not slept through.
  const int port = production->port();
  production.reset();
  auto gone = env_with(id, json::array());
  gone["READY_DEADLINE_SECONDS"] = "2";
  gone["PGPORT"] = std::to_string(port);
  const auto started = std::chrono::steady_clock::now();
  r = check_database(*source_, gone);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(r.result.value("error", "").starts_with("NotReady: the server did not accept a connection out of recovery "
                                                      "within READY_DEADLINE_SECONDS=2"))
      << r.termination;
  EXPECT_EQ(r.result["recovered"], false);
}

}  // namespace

// HOLD_WRITES (the operator always sets it): production starts on the
// restored directory refusing writes; check-database with RELEASE_WRITES
// releases them only after every check passed, and proves it with a new
// session.
TEST_F(RestoreInPlace, HeldWritesAreRefusedUntilEveryCheckPassedAndCheckDatabaseReleasedThem) {
  const int n = rows();
  start_source(volume_ / "pgdata", n);
  const auto made = full_backup();
  ASSERT_FALSE(made.backup_id.empty());
  diverge_and_stop();
  ASSERT_NO_FATAL_FAILURE(install_tools());
  auto env = restore_env(made);
  env["HOLD_WRITES"] = "true";
  const auto restored = restore(env);
  ASSERT_EQ(restored.exit_code, 0) << restored.output << restored.termination;
  auto production = start_normally(volume_ / "pgdata", false);
  ASSERT_TRUE(production);
  EXPECT_EQ(production->value("select count(*) from t"), std::to_string(n));
  auto write = [&] {
    try {
      production->query("insert into t values (-7, 'after the restore')");
      return std::string();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
  };
  EXPECT_NE(write().find("read-only transaction"), std::string::npos) << "writes are held";

  const auto env_with = [&](const json& checks) {
    return std::map<std::string, std::string>{{"BACKUP_ID", made.backup_id},
                                              {"BACKUP_CHECKSUM", made.checksum},
                                              {"EXPECT_SYSTEM_IDENTIFIER", system_identifier_},
                                              {"VERIFY_CHECKS", checks.dump()},
                                              {"READY_DEADLINE_SECONDS", "60"},
                                              {"RELEASE_WRITES", "true"}};
  };
  // A failing check releases nothing.
  auto r = check_database(*production, env_with(json::array({{{"name", "t-rows"}, {"sql", "select count(*) from t"},
                                                               {"expect", std::to_string(n + 1)}}})));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_EQ(check_named(r.result, "writes-released")["passed"], false) << r.termination;
  EXPECT_NE(write().find("read-only transaction"), std::string::npos) << "still held after a failed check";
  // Every check passes: released, and a new session writes.
  r = check_database(*production, env_with(json::array({{{"name", "t-rows"}, {"sql", "select count(*) from t"},
                                                          {"expect", std::to_string(n)}}})));
  ASSERT_EQ(r.exit_code, 0) << r.output << r.termination;
  EXPECT_EQ(check_names(r.result), (std::vector<std::string>{"recovered", "system-identifier", "t-rows", "writes-released"}));
  EXPECT_EQ(write(), "");
  EXPECT_EQ(production->value("select count(*) from t"), std::to_string(n + 1));
  // The setting is gone from the file, so a restart keeps accepting writes.
  EXPECT_EQ(read_file(volume_ / "pgdata" / "postgresql.auto.conf").find("default_transaction_read_only"), std::string::npos);
}
