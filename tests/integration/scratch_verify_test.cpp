// The scratch verification's Job side, end to end without Kubernetes: a real
// PostgreSQL 15 with a small Supabase-like schema (auth.users,
// storage.buckets, storage.objects under row-level security) archives its WAL
// through the wal-g stand-in into an encrypted file store; `run-job
// full-backup` takes a backup; `run-job install-tools` copies the operator,
// its libraries, the loader and wal-g into a tools directory; then `run-job
// verify` runs from there, as the Pod's container would in the database's
// image: through the copied loader, as the server's user (nobody under root),
// with nothing but the contract's environment (no wal-g on its PATH: it must
// use the copied one). Cases: a backup that verifies; a check whose value
// differs; a stored tar part corrupted; a point in time; a wrong checksum and
// bad checks refused before any fetch; no secret in anything written; the
// server gone afterwards, and never on TCP.
#include <gtest/gtest.h>

#include <signal.h>

#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "api/job_result.h"
#include "common/timefmt.h"
#include "harness.h"
#include "job_side.h"
#include "postgres/archiving.h"
#include "support/postgres.h"

using nlohmann::json;
using testing_support::Postgres;
using testing_support::PostgresOptions;

namespace {

namespace fs = std::filesystem;

// The encryption key (wal-g wants >= 25 bytes) and an unused S3 secret: both
// are in verify's environment, as the verification storage Secret puts them.
const std::string kKey = "canary-scratch-key-4c1e-77d0-a9";
const std::string kS3Secret = "canary-scratch-s3-93b1";

using testing_support::read_file;
using testing_support::seeded_rng;
const json* check(const json& result, const std::string& name) { return testing_support::check_in(result, name); }

// Processes whose command line names `needle` (e.g. a data directory).
std::vector<std::string> processes_naming(const std::string& needle) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd = read_file(e.path() / "cmdline");
    std::replace(cmd.begin(), cmd.end(), '\0', ' ');
    const std::string stat = read_file(e.path() / "stat");
    const auto close = stat.rfind(')');
    const bool zombie = close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
    if (!zombie && cmd.find(needle) != std::string::npos) found.push_back(pid + ": " + cmd);
  }
  return found;
}

// One entry of VERIFY_CHECKS.
json sql_check(const std::string& name, const std::string& sql, std::optional<std::string> expect = std::nullopt,
               std::optional<int> timeout_seconds = std::nullopt) {
  json c = json::object();
  c["name"] = name;
  c["sql"] = sql;
  if (expect) c["expect"] = *expect;
  if (timeout_seconds) c["timeoutSeconds"] = *timeout_seconds;
  return c;
}

using Verified = testing_support::ToolsRun;

class ScratchVerify : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_shared_temp_dir("scratch-verify");
    store_ = dir_ / "store";
    testing_support::StandInStore{store_, kKey}.create();
    // The source: archiving through the stand-in, encrypted with the key.
    PostgresOptions o;
    o.archive_command = testing_support::StandInStore{store_, kKey}.archive_command();
    source_ = std::make_unique<Postgres>(Postgres::init(dir_ / "source", o));
    source_->query(std::string(testing_support::kSupabaseLikeSchema) +
        "create table public.orders (id int primary key, note text);"
        "insert into auth.users (email) values ('a@example.org'), ('b@example.org'), ('c@example.org');"
        "insert into storage.buckets values ('avatars', 'avatars');"
        "insert into storage.objects (bucket_id, name) values ('avatars', 'a.png'), ('avatars', 'b.png');");
    tools_ = dir_ / "tools";
  }

  void TearDown() override {
    source_.reset();
    for (const auto& text : seen_) {
      EXPECT_EQ(text.find(kKey), std::string::npos) << "the encryption key leaked:\n" << text;
      EXPECT_EQ(text.find(kS3Secret), std::string::npos) << "the S3 secret leaked:\n" << text;
    }
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
    else std::cerr << "kept " << dir_ << " for inspection\n";
  }

  void insert_orders(int from, int to) {
    source_->query("insert into orders select g, md5(g::text) from generate_series(" + std::to_string(from) + "," +
                   std::to_string(to) + ") g");
  }

  // run-job full-backup as a backup Job runs it; verify then reads the store as the server's user.
  bo::api::JobResult full_backup() {
    return testing_support::take_full_backup(testing_support::StandInStore{store_, kKey}, *source_, dir_, seen_);
  }

  // run-job install-tools, as the init container runs it from the operator's image.
  void install_tools() { testing_support::install_tools_into(tools_, testing_support::StandInStore{store_, kKey}, dir_, seen_); }

  // run-job verify through the copied loader, as the server's user, with the contract's environment only.
  Verified verify(const std::string& id, const std::string& checksum, const std::vector<std::string>& extra_env = {},
                  const std::string& name = "scratch") {
    scratch_ = dir_ / name;
    run_ = dir_ / (name + "-run");
    const fs::path out = dir_ / (name + "-out");
    for (const auto& d : {scratch_, run_, out}) {
      fs::create_directories(d);
      Postgres::hand_to_server_user(d);
    }
    std::vector<std::string> env = {"TOOLS_DIR=" + tools_.string(),
                                    "PGDATA=" + (scratch_ / "pgdata").string(),
                                    "SCRATCH_SOCKET_DIR=" + run_.string(),
                                    "BACKUP_ID=" + id,
                                    "BACKUP_CHECKSUM=" + checksum,
                                    "RECOVERY_DEADLINE_SECONDS=120",
                                    "WALG_FILE_PREFIX=" + store_.string(),
                                    "WALG_LIBSODIUM_KEY=" + kKey,
                                    "AWS_SECRET_ACCESS_KEY=" + kS3Secret};
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    Verified v = testing_support::run_from_tools(tools_, "verify", env, out);
    seen_.push_back(v.output);
    seen_.push_back(v.termination);
    seen_.push_back(read_file(scratch_ / "postgres.log"));
    return v;
  }

  // Forces a WAL switch and waits (with a deadline) until the switched-out segment is archived.
  void archive_current_wal() {
    const std::string seg = source_->value("select pg_walfile_name(pg_current_wal_lsn())");
    source_->query("select pg_switch_wal()");
    ASSERT_TRUE(testing_support::eventually(
        [&] { return source_->value("select coalesce(last_archived_wal, '') from pg_stat_archiver") >= seg; },
        std::chrono::seconds(60), std::chrono::milliseconds(50)))
        << source_->log();
  }
  std::string server_second() {
    return source_->value("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
  }
  // Waits (with a deadline) until the server's clock is past `second`; returns the new second.
  std::string next_server_second(const std::string& second) {
    std::string now;
    EXPECT_TRUE(testing_support::eventually([&] { return (now = server_second()) > second; }, std::chrono::seconds(5),
                                            std::chrono::milliseconds(20)))
        << second;
    return now;
  }

  fs::path dir_, store_, tools_, scratch_, run_;
  std::unique_ptr<Postgres> source_;
  std::vector<std::string> seen_;
};

TEST_F(ScratchVerify, ARealBackupRestoresRecoversAndPassesEveryCheckOverTheSocketOnly) {
  auto rng = seeded_rng();
  const int orders = 1 + static_cast<int>(rng() % 2000);
  insert_orders(1, orders);
  const auto made = full_backup();
  ASSERT_FALSE(made.backup_id.empty());
  install_tools();
  const json checks = json::array(
      {sql_check("orders", "select count(*) from orders", std::to_string(orders)),
       sql_check("objects-behind-rls", "select count(*) from storage.objects", "2"),
       sql_check("newest-user", "select email from auth.users order by email desc limit 1", "c@example.org", 10),
       sql_check("writes", "insert into orders values (-1, 'scratch'); select count(*) from orders where id = -1", "1")});
  const auto v = verify(made.backup_id, made.checksum,
                        {"VERIFY_PROFILE=supabase-self-hosted", "VERIFY_CHECKS=" + checks.dump()});
  ASSERT_EQ(v.exit_code, 0) << v.output << v.termination;
  ASSERT_TRUE(v.result.is_object()) << v.termination;
  EXPECT_LE(v.termination.size(), 4096u);
  EXPECT_EQ(v.result["restored"], made.backup_id);
  EXPECT_EQ(v.result["checksum"], made.checksum);
  EXPECT_EQ(v.result["recovered"], true);
  EXPECT_GT(v.result.value("recoverySeconds", 0.0), 0.0) << v.termination;
  EXPECT_FALSE(v.result.contains("error")) << v.termination;
  // The restored cluster is the source: same system identifier, replayed to the backup's end.
  EXPECT_EQ(v.result["systemIdentifier"], source_->value("select system_identifier::text from pg_control_system()"));
  const auto replayed = bo::postgres::parse_lsn(v.result.value("replayLsn", ""));
  const auto finish = bo::postgres::parse_lsn(made.finish_lsn);
  ASSERT_TRUE(replayed && finish) << v.termination;
  EXPECT_GE(*replayed, *finish);
  std::vector<std::string> names;
  for (const auto& c : v.result["checks"]) {
    names.push_back(c["name"]);
    EXPECT_EQ(c["passed"], true) << c;
    EXPECT_GE(c.value("ms", -1), 0) << c;
  }
  EXPECT_EQ(names, (std::vector<std::string>{"recovered", "recovery-target", "system-identifier", "supabase-schemas",
                                             "orders", "objects-behind-rls", "newest-user", "writes"}));
  EXPECT_EQ((*check(v.result, "supabase-schemas"))["output"], "auth.users=3, storage.buckets=1, storage.objects=2");
  EXPECT_EQ((*check(v.result, "orders"))["output"], std::to_string(orders));

  // Afterwards no server runs on the scratch data, and it never listened on TCP: its log has the
  // Unix socket and no IP address, and it never archived (archive_mode=off) into the store.
  EXPECT_TRUE(processes_naming((scratch_ / "pgdata").string()).empty());
  EXPECT_FALSE(fs::exists(scratch_ / "pgdata" / "postmaster.pid"));
  const std::string log = read_file(scratch_ / "postgres.log");
  EXPECT_NE(log.find("listening on Unix socket \"" + run_.string() + "/.s.PGSQL.5432\""), std::string::npos) << log;
  EXPECT_EQ(log.find("listening on IPv"), std::string::npos) << log;
  EXPECT_NE(log.find("database system is ready to accept connections"), std::string::npos) << log;
  const std::string hba = read_file(run_ / "pg_hba.conf");
  EXPECT_NE(hba.find("local all all trust"), std::string::npos);
  EXPECT_EQ(hba.find("host"), std::string::npos) << hba;
  // restore_command ran the copied wal-g through the copied loader (the PATH had none).
  const std::string conf = read_file(scratch_ / "pgdata" / "postgresql.auto.conf");
  EXPECT_NE(conf.find("restore_command = '" + (tools_ / "ld.so").string() + " --library-path " +
                      (tools_ / "lib").string() + " " + (tools_ / "bin" / "wal-g").string() + " wal-fetch %f %p'"),
            std::string::npos)
      << conf;
  EXPECT_NE(conf.find("recovery_target = 'immediate'"), std::string::npos) << conf;
  EXPECT_NE(v.output.find("the scratch server has stopped"), std::string::npos) << v.output;
  // A passed verification leaves its marker beside the backup in storage (run-job catalog reads it back).
  const fs::path marker = store_ / "backup-operator" / "verified" / (made.backup_id + ".json");
  ASSERT_TRUE(fs::exists(marker)) << v.output;
  const json m = json::parse(read_file(marker), nullptr, false);
  EXPECT_EQ(m.value("backupId", ""), made.backup_id) << read_file(marker);
  EXPECT_EQ(m.value("checksum", ""), made.checksum) << read_file(marker);
  EXPECT_TRUE(bo::parse_rfc3339(m.value("verifiedAt", ""))) << read_file(marker);
}

TEST_F(ScratchVerify, ACheckWhoseValueDiffersFailsWithItsOutputAndChecksAreNoSuperuser) {
  insert_orders(1, 3);
  const auto made = full_backup();
  install_tools();
  const json checks = json::array({sql_check("orders", "select count(*) from orders", "4"),
                                   sql_check("read-server-file", "select pg_read_file('postgresql.auto.conf')"),
                                   sql_check("run-a-program", "copy (select 1) to program 'env'"),
                                   sql_check("echoes-a-secret", "select '" + kKey + "'"),
                                   sql_check("slow", "select pg_sleep(30)", std::nullopt, 1)});
  const auto v = verify(made.backup_id, made.checksum, {"VERIFY_CHECKS=" + checks.dump()});
  EXPECT_EQ(v.exit_code, 1) << v.output << v.termination;
  ASSERT_TRUE(v.result.is_object()) << v.termination;
  EXPECT_FALSE(v.result.contains("error")) << "the failure is a check's, not the verification's: " << v.termination;
  EXPECT_EQ(v.result["recovered"], true);
  for (const char* builtin : {"recovered", "recovery-target", "system-identifier"})
    EXPECT_EQ((*check(v.result, builtin))["passed"], true) << builtin;
  EXPECT_EQ(check(v.result, "supabase-schemas"), nullptr) << "no profile, no Supabase check";
  const json& orders = *check(v.result, "orders");
  EXPECT_EQ(orders["passed"], false);
  EXPECT_EQ(orders["output"], "3 (expected 4)");
  // User checks run as a role that is no superuser: no server files, no programs (the Secret is in the environment).
  const json& file = *check(v.result, "read-server-file");
  EXPECT_EQ(file["passed"], false);
  EXPECT_NE(file["output"].get<std::string>().find("permission denied for function pg_read_file"), std::string::npos) << file;
  const json& program = *check(v.result, "run-a-program");
  EXPECT_EQ(program["passed"], false);
  EXPECT_NE(program["output"].get<std::string>().find(
                "must be superuser or have privileges of the pg_execute_server_program role"),
            std::string::npos)
      << program;
  // A value equal to a secret is redacted from the output.
  const json& echo = *check(v.result, "echoes-a-secret");
  EXPECT_EQ(echo["passed"], true);
  EXPECT_EQ(echo["output"], "[redacted]");
  // timeoutSeconds is the statement's timeout.
  const json& slow = *check(v.result, "slow");
  EXPECT_EQ(slow["passed"], false);
  EXPECT_NE(slow["output"].get<std::string>().find("canceling statement due to statement timeout"), std::string::npos)
      << slow;
  EXPECT_LT(slow.value("ms", 99999), 20000) << slow;
  EXPECT_TRUE(processes_naming((scratch_ / "pgdata").string()).empty());
}

TEST_F(ScratchVerify, ACorruptedTarPartInStorageFailsTheVerificationNamingIt) {
  auto rng = seeded_rng();
  insert_orders(1, 500);
  const auto made = full_backup();
  install_tools();
  // The largest tar part of the backup (the data files), a few bytes flipped in its middle.
  fs::path part;
  for (const auto& e : fs::directory_iterator(store_ / "basebackups_005" / made.backup_id / "tar_partitions"))
    if (part.empty() || fs::file_size(e.path()) > fs::file_size(part)) part = e.path();
  ASSERT_FALSE(part.empty());
  {
    std::fstream f(part, std::ios::in | std::ios::out | std::ios::binary);
    const auto size = fs::file_size(part);
    ASSERT_GT(size, 256u);
    const auto at = 64 + rng() % (size - 128);
    f.seekg(static_cast<std::streamoff>(at));
    char bytes[8];
    f.read(bytes, sizeof bytes);
    for (char& b : bytes) b = static_cast<char>(~b);
    f.seekp(static_cast<std::streamoff>(at));
    f.write(bytes, sizeof bytes);
    std::cout << "flipped 8 bytes at " << at << " of " << part << "\n";
  }
  const auto v = verify(made.backup_id, made.checksum, {"VERIFY_PROFILE=supabase-self-hosted"});
  EXPECT_EQ(v.exit_code, 1) << v.output << v.termination;
  ASSERT_TRUE(v.result.is_object()) << v.termination;
  const std::string error = v.result.value("error", "");
  EXPECT_TRUE(error.starts_with("FetchFailed: wal-g backup-fetch " + made.backup_id + " failed")) << error;
  EXPECT_NE(error.find(part.filename().string()), std::string::npos) << "names the part that broke: " << error;
  EXPECT_EQ(v.result["recovered"], false);
  EXPECT_EQ(v.result["checksum"], made.checksum) << "the sentinel itself was intact";
  EXPECT_TRUE(processes_naming((scratch_ / "pgdata").string()).empty());
  EXPECT_FALSE(fs::exists(store_ / "backup-operator" / "verified" / (made.backup_id + ".json")))
      << "a failed verification leaves no marker";
}

TEST_F(ScratchVerify, APointInTimeBetweenTwoBatchesRecoversOnlyTheFirst) {
  auto rng = seeded_rng();
  const int before = 1 + static_cast<int>(rng() % 200);
  insert_orders(1, before);
  const auto made = full_backup();
  const int first = before + 1 + static_cast<int>(rng() % 200);
  insert_orders(before + 1, first);
  const std::string point_in_time = next_server_second(server_second());
  next_server_second(point_in_time);
  insert_orders(first + 1, first + 100);
  archive_current_wal();
  install_tools();
  const json checks = json::array({sql_check("orders", "select count(*) from orders", std::to_string(first)),
                                   sql_check("newest", "select max(id) from orders", std::to_string(first))});
  const auto v = verify(made.backup_id, made.checksum,
                        {"POINT_IN_TIME=" + point_in_time, "VERIFY_CHECKS=" + checks.dump()});
  ASSERT_EQ(v.exit_code, 0) << v.output << v.termination;
  for (const auto& c : v.result["checks"]) EXPECT_EQ(c["passed"], true) << c;
  const std::string target = (*check(v.result, "recovery-target"))["output"];
  EXPECT_NE(target.find("recovery stopping before commit of transaction"), std::string::npos) << target;
  const std::string conf = read_file(scratch_ / "pgdata" / "postgresql.auto.conf");
  auto pg_time = point_in_time;
  pg_time[10] = ' ';
  pg_time.pop_back();
  EXPECT_NE(conf.find("recovery_target_time = '" + pg_time), std::string::npos) << conf;
}

TEST_F(ScratchVerify, AWrongChecksumOrBadChecksAreRefusedBeforeAnyFetch) {
  insert_orders(1, 10);
  const auto made = full_backup();
  install_tools();
  auto v = verify(made.backup_id, "sha256:" + std::string(64, '0'), {}, "wrong-sum");
  EXPECT_EQ(v.exit_code, 1) << v.output;
  const std::string error = v.result.value("error", "");
  EXPECT_TRUE(error.starts_with("ChecksumMismatch: storage holds " + made.checksum + " for " + made.backup_id)) << error;
  EXPECT_FALSE(fs::exists(scratch_ / "pgdata")) << "nothing fetched";
  EXPECT_EQ(v.output.find("backup-fetch"), std::string::npos) << v.output;

  v = verify(made.backup_id, made.checksum, {R"(VERIFY_CHECKS=[{"name":"a","sql":""}])"}, "bad-checks");
  EXPECT_EQ(v.exit_code, 1) << v.output;
  EXPECT_EQ(v.result.value("error", ""), "InvalidChecks: VERIFY_CHECKS[0].sql: a non-empty string is required")
      << v.termination;
  EXPECT_FALSE(fs::exists(scratch_ / "pgdata"));

  v = verify(made.backup_id, made.checksum, {"VERIFY_PROFILE=firebase"}, "bad-profile");
  EXPECT_EQ(v.exit_code, 1) << v.output;
  EXPECT_TRUE(v.result.value("error", "").starts_with("InvalidProfile: VERIFY_PROFILE: unknown profile \"firebase\""))
      << v.termination;
}

TEST_F(ScratchVerify, InstallToolsPutsEverySharedObjectBesideTheCopiedLoader) {
  install_tools();
  for (const char* f : {"ld.so", "bin/backup-operator", "bin/wal-g"}) EXPECT_TRUE(fs::exists(tools_ / f)) << f;
  // Through the copied loader, with the system's cache ignored, both programs resolve every
  // library inside tools/lib: nothing of the operator's image is needed.
  for (const char* program : {"backup-operator", "wal-g"}) {
    const auto r = testing_support::run((tools_ / "ld.so").string() + " --inhibit-cache --library-path " +
                                        (tools_ / "lib").string() + " --list " + (tools_ / "bin" / program).string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::istringstream lines(r.output);
    for (std::string line; std::getline(lines, line);) {
      const auto arrow = line.find(" => ");
      if (arrow == std::string::npos) continue;
      if (line.find_first_not_of(" \t") == line.find('/')) {  // the loader itself: the copied one
        EXPECT_NE(line.find(" => " + (tools_ / "ld.so").string() + " "), std::string::npos) << program << ": " << line;
        continue;
      }
      EXPECT_NE(line.find(" => " + (tools_ / "lib").string() + "/"), std::string::npos) << program << ": " << line;
    }
  }
  const auto version = testing_support::run((tools_ / "ld.so").string() + " --library-path " + (tools_ / "lib").string() +
                                            " " + (tools_ / "bin" / "backup-operator").string() + " --version");
  EXPECT_EQ(version.exit_code, 0) << version.output;
  EXPECT_NE(version.output.find("backup-operator "), std::string::npos) << version.output;
  // A wal-g that cannot be found is an error naming what was looked for.
  const auto missing = testing_support::run("env TOOLS_DIR=" + (dir_ / "tools2").string() +
                                            " WALG_BINARY=/nonexistent/wal-g TERMINATION_LOG=" +
                                            (dir_ / "t2").string() + " " + OPERATOR_BIN + " run-job install-tools");
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_NE(read_file(dir_ / "t2").find("InstallToolsFailed: wal-g not found (WALG_BINARY=/nonexistent/wal-g"),
            std::string::npos)
      << read_file(dir_ / "t2");
}

}  // namespace
