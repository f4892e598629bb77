// `backup-operator run-job` end to end through the real binary, against the
// wal-g stand-in (tools/walg-standin) over a real PostgreSQL 15 that archives
// its WAL with the stand-in's `wal-push %p` into a file store
// (WALG_FILE_PREFIX). run-job runs as the test's user (root in CI, reading the
// server's files as wal-g in a backup Job would); PostgreSQL and its
// archive_command run as nobody:nogroup under root (tests/support/postgres.h).
#include <gtest/gtest.h>

#include <cpprest/http_listener.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "api/job_result.h"
#include "common/encoding.h"
#include "common/listener_port.h"
#include "common/timefmt.h"
#include "databasus_standin.h"
#include "harness.h"
#include "postgres/archiving.h"
#include "restored_postgres.h"
#include "support/postgres.h"

using nlohmann::json;
using testing_support::run;

namespace {

namespace fs = std::filesystem;
using testing_support::Postgres;
using testing_support::PostgresOptions;

const std::string kWalg = WALG_STANDIN_BIN;
// A secret every run-job run has in its environment (as the policy's Secret
// names it); it must never reach the output or the termination message.
const std::string kCanary = "CANARY-run-job-77";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Polls `cond` until it holds or `deadline` passes.
bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds deadline = std::chrono::seconds(60)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return cond();
}

std::mt19937 seeded_rng() {
  const unsigned seed = std::random_device{}();
  std::cout << "random seed: " << seed << "\n";
  return std::mt19937(seed);
}

class RunJob : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("runjob");
    store_ = dir_ / "store";
    fs::create_directories(store_);
    Postgres::hand_to_server_user(store_);  // archive_command (as the server's user) writes here
  }
  void TearDown() override {
    restored_.reset();
    pg_.reset();
    ::unsetenv("WALG_FILE_PREFIX");
    for (const auto& text : seen_) EXPECT_EQ(text.find(kCanary), std::string::npos) << "a secret leaked:\n" << text;
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
    else std::cerr << "kept " << dir_ << " for inspection\n";
  }

  // A PostgreSQL 15 at `data` (default dir_/data); with `archiving`, archive_command pushes
  // every WAL segment into store_ through the stand-in; without, archive_mode is off.
  Postgres& start_server(bool archiving = true, const fs::path& data = {}) {
    PostgresOptions o;
    if (archiving) o.archive_command = "WALG_FILE_PREFIX=" + store_.string() + " " + kWalg + " wal-push %p";
    pg_ = std::make_unique<Postgres>(Postgres::init(data.empty() ? dir_ / "data" : data, o));
    return *pg_;
  }

  // run-job with the store, the stand-in, the server's PGDATA and libpq settings; `extra_env`
  // assignments come last and override.
  testing_support::CommandResult job(const std::string& action, const std::string& extra_env = "") {
    std::string env = "env WALG_FILE_PREFIX=" + store_.string() + " WALG_BINARY=" + kWalg +
                      " TERMINATION_LOG=" + (dir_ / "termination").string() + " WALG_AWS_SECRET_ACCESS_KEY=" + kCanary +
                      " TMPDIR=" + dir_.string() + " ";
    if (pg_) env += "PGDATA=" + pg_->data_dir().string() + " " + pg_->libpq_env_prefix();
    fs::remove(dir_ / "termination");
    auto r = run(env + extra_env + " " + OPERATOR_BIN + " run-job " + action, 120);
    seen_.push_back(r.output);
    seen_.push_back(termination());
    return r;
  }
  std::string termination() { return slurp(dir_ / "termination"); }
  std::string sentinel_file(const std::string& name) {
    return slurp(store_ / "basebackups_005" / (name + "_backup_stop_sentinel.json"));
  }

  void insert_rows(int from, int to) {
    pg_->query("create table if not exists t(id int primary key, note text)");
    pg_->query("insert into t select g, md5(g::text) from generate_series(" + std::to_string(from) + "," +
               std::to_string(to) + ") g");
  }
  // Forces a WAL switch and waits until the switched-out segment is archived.
  void archive_current_wal() {
    const std::string seg = pg_->value("select pg_walfile_name(pg_current_wal_lsn())");
    pg_->query("select pg_switch_wal()");
    ASSERT_TRUE(eventually([&] { return pg_->value("select coalesce(last_archived_wal, '') from pg_stat_archiver") >= seg; }))
        << pg_->log();
  }
  // The server's clock, to the second, as RFC 3339 UTC.
  std::string server_second() {
    return pg_->value("select to_char(clock_timestamp() at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
  }
  // Waits (with a deadline) until the server's clock is past `second`; returns the new second.
  std::string next_server_second(const std::string& second) {
    std::string now;
    EXPECT_TRUE(eventually([&] { return (now = server_second()) > second; }, std::chrono::seconds(5))) << second;
    return now;
  }

  fs::path dir_, store_;
  std::unique_ptr<Postgres> pg_, restored_;
  std::vector<std::string> seen_;
};

TEST_F(RunJob, FullThenDeltaWriteTheResultContract) {
  auto rng = seeded_rng();
  start_server();
  int rows = 0;
  const auto more_rows = [&] {
    const int n = 1 + static_cast<int>(rng() % 500);
    insert_rows(rows + 1, rows + n);
    rows += n;
  };
  more_rows();
  auto r = job("full-backup", "WALG_DELTA_MAX_STEPS=5");
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  auto full = bo::api::parse_job_result(termination());
  ASSERT_TRUE(full) << full.error() << ": " << termination();
  EXPECT_EQ(full->type, "full");
  EXPECT_TRUE(full->backup_id.starts_with("base_")) << full->backup_id;
  EXPECT_EQ(full->backup_id.find("_D_"), std::string::npos) << full->backup_id;
  EXPECT_EQ(full->base, "");
  EXPECT_EQ(full->full, "");
  EXPECT_EQ(full->delta_count, 0);
  EXPECT_TRUE(full->wal_archived) << termination();
  EXPECT_FALSE(json::parse(termination()).contains("walMessage")) << termination();
  // The checksum is sha256 over the stop sentinel exactly as stored; the LSNs are the sentinel's.
  const std::string stored = sentinel_file(full->backup_id);
  ASSERT_FALSE(stored.empty());
  EXPECT_EQ(full->checksum, "sha256:" + bo::sha256_hex(stored));
  const json stop = json::parse(stored);
  const auto lsn = [](uint64_t v) {
    std::ostringstream o;
    o << std::uppercase << std::hex << (v >> 32) << "/" << (v & 0xFFFFFFFFull);
    return o.str();
  };
  EXPECT_EQ(full->start_lsn, lsn(stop["LSN"].get<uint64_t>()));
  EXPECT_EQ(full->finish_lsn, lsn(stop["FinishLSN"].get<uint64_t>()));
  // run-job fetched the backup's WAL back through wal-g before calling it restorable.
  EXPECT_NE(r.output.find("run-job: WAL segment " + full->backup_id.substr(5) + " is archived"), std::string::npos)
      << r.output;

  more_rows();
  r = job("backup", "WALG_DELTA_MAX_STEPS=5");
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  auto delta = bo::api::parse_job_result(termination());
  ASSERT_TRUE(delta) << delta.error() << ": " << termination();
  EXPECT_EQ(delta->type, "delta");
  EXPECT_NE(delta->backup_id.find("_D_"), std::string::npos) << delta->backup_id;
  EXPECT_EQ(delta->base, full->backup_id);
  EXPECT_EQ(delta->full, full->backup_id);
  EXPECT_EQ(delta->delta_count, 1);
  EXPECT_TRUE(delta->wal_archived) << termination();
  EXPECT_EQ(delta->checksum, "sha256:" + bo::sha256_hex(sentinel_file(delta->backup_id)));

  more_rows();
  r = job("backup", "WALG_DELTA_MAX_STEPS=5");
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  auto second = bo::api::parse_job_result(termination());
  ASSERT_TRUE(second) << second.error() << ": " << termination();
  EXPECT_EQ(second->type, "delta");
  EXPECT_EQ(second->base, delta->backup_id);
  EXPECT_EQ(second->full, full->backup_id);
  EXPECT_EQ(second->delta_count, 2);
  EXPECT_TRUE(second->wal_archived) << termination();

  // Without WALG_DELTA_MAX_STEPS wal-g makes no deltas, whatever the action.
  more_rows();
  r = job("backup");
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  auto plain = bo::api::parse_job_result(termination());
  ASSERT_TRUE(plain) << plain.error() << ": " << termination();
  EXPECT_EQ(plain->type, "full") << termination();
  EXPECT_EQ(plain->base, "");
  EXPECT_TRUE(plain->wal_archived) << termination();
}

TEST_F(RunJob, BackupWhoseWalIsNotArchivedIsReportedNotRestorable) {
  start_server(/*archiving=*/false);
  insert_rows(1, 10);
  const auto began = std::chrono::steady_clock::now();
  auto r = job("backup", "BACKUP_WAL_WAIT_SECONDS=2");
  const auto took = std::chrono::steady_clock::now() - began;
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();  // the backup itself exists; the catalog decides
  auto made = bo::api::parse_job_result(termination());
  ASSERT_TRUE(made) << made.error() << ": " << termination();
  EXPECT_FALSE(made->wal_archived) << termination();
  EXPECT_NE(made->wal_message.find("WAL segment " + made->backup_id.substr(5) + " (needed up to finish LSN " +
                                   made->finish_lsn + ") is not in storage after 2s"),
            std::string::npos)
      << made->wal_message;
  EXPECT_NE(made->wal_message.find("wal-g wal-fetch exit 74"), std::string::npos) << made->wal_message;
  EXPECT_NE(made->wal_message.find("archive_command"), std::string::npos) << made->wal_message;
  EXPECT_GE(took, std::chrono::seconds(2)) << "run-job must retry until BACKUP_WAL_WAIT_SECONDS";
  EXPECT_NE(r.output.find("NOT RESTORABLE"), std::string::npos) << r.output;
  EXPECT_FALSE(sentinel_file(made->backup_id).empty());
}

TEST_F(RunJob, RestoreChecksTheChecksumFetchesAndWritesRecoverySettings) {
  auto rng = seeded_rng();
  start_server();
  const int before = 1 + static_cast<int>(rng() % 300), until = before + 1 + static_cast<int>(rng() % 300);
  insert_rows(1, before);
  ASSERT_EQ(job("full-backup").exit_code, 0) << termination();
  const auto made = bo::api::parse_job_result(termination());
  ASSERT_TRUE(made) << made.error() << ": " << termination();
  ASSERT_TRUE(made->wal_archived) << termination();
  // Rows committed before the point in time are replayed from archived WAL; rows after it are not.
  insert_rows(before + 1, until);
  const std::string point_in_time = next_server_second(server_second());
  next_server_second(point_in_time);
  insert_rows(until + 1, until + 100);
  archive_current_wal();

  // A backup whose sentinel changed after the catalog recorded it is refused before anything is fetched.
  const fs::path refused = dir_ / "refused";
  auto r = job("restore", "BACKUP_ID=" + made->backup_id + " PGDATA=" + refused.string() +
                              " BACKUP_CHECKSUM=sha256:" + std::string(64, '0'));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(termination().find("ChecksumMismatch"), std::string::npos) << termination();
  EXPECT_FALSE(fs::exists(refused / "PG_VERSION"));
  r = job("restore", "BACKUP_ID=base_missing PGDATA=" + refused.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(termination().find("base_missing"), std::string::npos) << termination();

  const fs::path pgdata = dir_ / "restore";
  fs::create_directories(pgdata);  // empty, as wal-g backup-fetch requires
  r = job("restore", "BACKUP_ID=" + made->backup_id + " PGDATA=" + pgdata.string() + " POINT_IN_TIME=" +
                         point_in_time + " BACKUP_CHECKSUM=" + made->checksum);
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  const json result = json::parse(termination());
  EXPECT_EQ(result["restored"], made->backup_id);
  EXPECT_EQ(result["checksum"], made->checksum);
  EXPECT_EQ(result["pointInTime"], point_in_time);
  EXPECT_TRUE(fs::exists(pgdata / "PG_VERSION"));
  EXPECT_TRUE(fs::exists(pgdata / "recovery.signal"));
  const std::string conf = slurp(pgdata / "postgresql.auto.conf");
  EXPECT_NE(conf.find("restore_command = '" + kWalg + " wal-fetch %f %p'"), std::string::npos) << conf;
  // PostgreSQL refuses RFC 3339's "T…Z" in recovery_target_time: run-job writes its own spelling.
  auto pg_time = point_in_time;
  pg_time[10] = ' ';
  pg_time.pop_back();  // the Z
  EXPECT_NE(conf.find("recovery_target_time = '" + pg_time), std::string::npos) << conf;
  EXPECT_EQ(conf.find("recovery_target_time = '" + point_in_time + "'"), std::string::npos) << conf;

  // PostgreSQL recovers on what run-job left: restore_command's wal-fetch finds the store through
  // the server's environment (a restore Job's container has the same WALG_* variables).
  ::setenv("WALG_FILE_PREFIX", store_.string().c_str(), 1);
  ASSERT_NO_FATAL_FAILURE(testing_support::start_restored(pgdata, restored_));
  EXPECT_EQ(restored_->value("select count(*) from t"), std::to_string(until)) << restored_->log();
  EXPECT_EQ(restored_->value("select max(id) from t"), std::to_string(until));
  restored_->query("insert into t values (1000000, 'writable after recovery')");
}

TEST_F(RunJob, DatabasusMetadataDescribesTheDatabaseWithoutItsPassword) {
  const auto dir = dir_ / "meta";
  auto r = job("databasus-metadata", "DATABASUS_METADATA_ONCE=1 METADATA_DIR=" + dir.string() +
                                         " PGHOST=db.supabase.svc PGUSER=postgres PGPASSWORD=CANARY-pw-31 BACKUP_POLICY=supabase/db");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(dir / "database.json");
  std::stringstream text;
  text << in.rdbuf();
  const json meta = json::parse(text.str());
  EXPECT_EQ(meta["host"], "db.supabase.svc");
  EXPECT_EQ(meta["policy"], "supabase/db");
  EXPECT_EQ(text.str().find("CANARY"), std::string::npos);
  EXPECT_EQ((std::filesystem::status(dir / "database.json").permissions() & std::filesystem::perms::others_read),
            std::filesystem::perms::none);
}

TEST_F(RunJob, DatabasusRegistrationCreatesOnceThenUpdatesAndNeverLeaksAPassword) {
  testing_support::DatabasusStandin databasus;
  const auto dir = dir_ / "meta";
  const std::string env = "DATABASUS_METADATA_ONCE=1 METADATA_DIR=" + dir.string() + " DATABASUS_API=" + databasus.api() +
                          " PGHOST=db.supabase.svc PGPORT=6543 PGDATABASE=app PGUSER=postgres PGPASSWORD=CANARY-pw-31"
                          " BACKUP_POLICY=supabase/db DATABASUS_ADMIN_EMAIL=admin@example.org"
                          " DATABASUS_ADMIN_PASSWORD=CANARY-admin-pw-5";
  auto first = job("databasus-metadata", env);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_NE(first.output.find("registered database supabase/db in Databasus (workspace ws-1, database db-1)"),
            std::string::npos) << first.output;
  auto second = job("databasus-metadata", env);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("updated database supabase/db"), std::string::npos) << second.output;

  std::vector<std::string> order;
  json created;
  for (const auto& [call, body] : databasus.calls()) {
    order.push_back(call);
    if (call == "POST /databases/create") created = body;
  }
  EXPECT_EQ(order, (std::vector<std::string>{"POST /users/signin", "GET /workspaces", "POST /workspaces",
                                             "POST /databases/create", "POST /users/signin", "GET /workspaces",
                                             "GET /databases/db-1", "POST /databases/update"}));
  EXPECT_EQ(created["name"], "supabase/db");
  EXPECT_EQ(created["type"], "POSTGRES");
  EXPECT_EQ(created["workspaceId"], "ws-1");
  EXPECT_EQ(created["postgresql"]["host"], "db.supabase.svc");
  EXPECT_EQ(created["postgresql"]["port"], 6543);
  EXPECT_EQ(created["postgresql"]["database"], "app");
  EXPECT_EQ(created["postgresql"]["username"], "postgres");
  EXPECT_EQ(created["postgresql"]["password"], "CANARY-pw-31") << "Databasus needs it to connect; it stores it encrypted";

  // Databasus lost the database (reset state): the next round creates it again.
  databasus.forget_database();
  auto third = job("databasus-metadata", env);
  ASSERT_EQ(third.exit_code, 0) << third.output;
  EXPECT_NE(third.output.find("database db-2"), std::string::npos) << third.output;

  // Neither password is ever written down or printed.
  for (const char* f : {"database.json", "registration.json"}) {
    std::ifstream in(dir / f);
    std::stringstream text;
    text << in.rdbuf();
    EXPECT_FALSE(text.str().empty()) << f;
    EXPECT_EQ(text.str().find("CANARY"), std::string::npos) << f;
  }
  for (const auto& r : {first, second, third}) EXPECT_EQ(r.output.find("CANARY"), std::string::npos) << r.output;

  // A wrong administrator password: one line naming the step and Databasus' answer, exit 1 in once mode.
  auto wrong = job("databasus-metadata", env + " DATABASUS_ADMIN_PASSWORD=CANARY-wrong-pw-9");
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.output.find("registration failed, retrying next round: sign in as admin@example.org: Databasus answered "
                              "HTTP 400 (user with this email and password not found)"),
            std::string::npos) << wrong.output;
  EXPECT_EQ(wrong.output.find("CANARY"), std::string::npos) << wrong.output;

  // An instance that asks for an emailed code cannot be signed in to by a sidecar: it says so.
  databasus.require_second_factor(true);
  auto pending = job("databasus-metadata", env);
  EXPECT_EQ(pending.exit_code, 1);
  EXPECT_NE(pending.output.find("sign in as admin@example.org: Databasus asks for an emailed sign-in code"),
            std::string::npos) << pending.output;
}

// Backups in storage by name, as wal-g lists them.
std::set<std::string> listed(const fs::path& store) {
  const fs::path out = store.parent_path() / "backup-list.json";
  const auto r = run("env WALG_FILE_PREFIX=" + store.string() + " " + kWalg + " backup-list --json --detail >" + out.string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::set<std::string> names;
  const json list = json::parse(slurp(out), nullptr, false);
  if (list.is_array())
    for (const auto& b : list) names.insert(b.value("backup_name", ""));
  return names;
}

TEST_F(RunJob, RetainDeletesTheExpiredBackups) {
  start_server();
  insert_rows(1, 10);
  ASSERT_EQ(job("full-backup", "WALG_DELTA_MAX_STEPS=5").exit_code, 0) << termination();
  const std::string full = bo::api::parse_job_result(termination()).value_or(bo::api::JobResult{}).backup_id;
  insert_rows(11, 20);
  ASSERT_EQ(job("backup", "WALG_DELTA_MAX_STEPS=5").exit_code, 0) << termination();
  const auto delta = bo::api::parse_job_result(termination());
  ASSERT_TRUE(delta && delta->type == "delta" && delta->base == full) << termination();
  insert_rows(21, 30);
  ASSERT_EQ(job("full-backup", "WALG_DELTA_MAX_STEPS=5").exit_code, 0) << termination();
  const std::string kept = bo::api::parse_job_result(termination()).value_or(bo::api::JobResult{}).backup_id;
  ASSERT_EQ(listed(store_), (std::set<std::string>{full, delta->backup_id, kept}));

  // Deleting the full takes the delta built on it (wal-g's delete target cascades): both are reported.
  auto r = job("retain", "RETAIN_EXPIRE=" + full);
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  EXPECT_EQ(json::parse(termination())["deleted"], json({full, delta->backup_id})) << termination();
  EXPECT_EQ(listed(store_), std::set<std::string>{kept});
  EXPECT_TRUE(sentinel_file(full).empty());
  EXPECT_TRUE(sentinel_file(delta->backup_id).empty());
  EXPECT_FALSE(sentinel_file(kept).empty());

  // Expiring what is already gone (the catalog had not caught up yet) is not an error.
  r = job("retain", "RETAIN_EXPIRE=" + full + "," + delta->backup_id);
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  EXPECT_EQ(json::parse(termination())["deleted"], json({full, delta->backup_id})) << termination();
  EXPECT_NE(r.output.find(full + " is not in storage (already deleted)"), std::string::npos) << r.output;
  EXPECT_EQ(listed(store_), std::set<std::string>{kept});
}

// The catalog read back from storage (issue 18 item 4): what `run-job
// catalog` reports is what each backup's own result said, fulls first, and
// a verification's marker (left as run-job verify leaves it, with wal-g st
// put) comes back as verified only for the checksum it names.
TEST_F(RunJob, CatalogReadsTheBackupsBackFromStorageWithTheirVerifiedMarkers) {
  // Empty storage: wal-g prints nothing; an empty, valid catalog.
  auto r = job("catalog");
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  auto empty = bo::api::parse_catalog_result(termination());
  ASSERT_TRUE(empty) << empty.error() << ": " << termination();
  EXPECT_EQ(empty->listed, 0);
  EXPECT_TRUE(empty->entries.empty());

  start_server();
  insert_rows(1, 10);
  ASSERT_EQ(job("full-backup", "WALG_DELTA_MAX_STEPS=5").exit_code, 0) << termination();
  const auto full = bo::api::parse_job_result(termination());
  ASSERT_TRUE(full) << termination();
  insert_rows(11, 20);
  // The full was verified (by a verification whose Secret may not write): the
  // next backup Job leaves its marker with the storage Secret's credentials.
  const auto b = job("backup", "WALG_DELTA_MAX_STEPS=5 VERIFIED_MARKERS=" + full->backup_id + "@" + full->checksum +
                                   "@db-verify-1,malformed");
  ASSERT_EQ(b.exit_code, 0) << b.output << termination();
  const auto delta = bo::api::parse_job_result(termination());
  ASSERT_TRUE(delta && delta->type == "delta") << termination();
  EXPECT_EQ(delta->markers, std::vector<std::string>{full->backup_id}) << termination();
  EXPECT_NE(b.output.find("left backup-operator/verified/" + full->backup_id + ".json in storage"), std::string::npos)
      << b.output;
  // The delta's marker names another checksum (a backup re-pushed under its name).
  auto put_marker = [&](const std::string& id, const std::string& checksum) {
    const fs::path file = dir_ / ("marker-" + id + ".json");
    std::ofstream(file) << json{{"backupId", id}, {"checksum", checksum}}.dump();
    const auto put = run("env WALG_FILE_PREFIX=" + store_.string() + " " + kWalg +
                             " st put --no-compress --no-encrypt -f " + file.string() + " backup-operator/verified/" +
                             id + ".json",
                         60);
    ASSERT_EQ(put.exit_code, 0) << put.output;
  };
  put_marker(delta->backup_id, "sha256:" + std::string(64, '0'));

  r = job("catalog");
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  EXPECT_LE(termination().size(), 4096u);
  const auto cat = bo::api::parse_catalog_result(termination());
  ASSERT_TRUE(cat) << cat.error() << ": " << termination();
  EXPECT_EQ(cat->listed, 2);
  ASSERT_EQ(cat->entries.size(), 2u) << termination();
  const auto& f = cat->entries[0];
  const auto& d = cat->entries[1];
  EXPECT_EQ(f.backup_id, full->backup_id);
  EXPECT_EQ(f.type, "full");
  EXPECT_EQ(f.checksum, full->checksum);
  EXPECT_EQ(f.finish, std::chrono::floor<std::chrono::seconds>(full->finish));
  EXPECT_EQ(f.size_bytes, full->size_bytes);
  EXPECT_TRUE(f.restorable) << r.output;
  EXPECT_TRUE(f.verified) << r.output;
  EXPECT_EQ(d.backup_id, delta->backup_id);
  EXPECT_EQ(d.type, "delta");
  EXPECT_EQ(d.base, full->backup_id);
  EXPECT_EQ(d.full, full->backup_id);
  EXPECT_EQ(d.checksum, delta->checksum);
  EXPECT_TRUE(d.restorable) << r.output;
  EXPECT_FALSE(d.verified) << "a marker for another checksum does not count";
  // The delta names its base by index (the full is row 0).
  EXPECT_EQ(json::parse(termination())["backups"][1][2], 0) << termination();

  // The WAL a backup needs, gone from storage: the catalog says it is not restorable.
  for (const auto& e : fs::directory_iterator(store_ / "wal_005"))
    if (e.path().filename().string().starts_with(full->backup_id.substr(5, 24))) fs::remove(e.path());
  r = job("catalog");
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  const auto lost = bo::api::parse_catalog_result(termination());
  ASSERT_TRUE(lost && lost->entries.size() == 2u) << termination();
  EXPECT_FALSE(lost->entries[0].restorable) << r.output;
  EXPECT_NE(r.output.find(full->backup_id + " full sha256:"), std::string::npos) << r.output;
}

TEST_F(RunJob, FailuresSayWhatToDoAndNeverLeakSecrets) {
  // The server's data directory carries the secret's value in its path, so wal-g's refusal of a
  // wrong PGDATA (which names the server's data_directory) carries it too: run-job must redact it.
  start_server(/*archiving=*/false, dir_ / ("pg-" + kCanary));
  const fs::path elsewhere = dir_ / "elsewhere";
  fs::create_directories(elsewhere);
  auto r = job("backup", "PGDATA=" + elsewhere.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const json t = json::parse(termination(), nullptr, false);
  ASSERT_TRUE(t.is_object()) << termination();
  const std::string error = t.value("error", "");
  EXPECT_NE(error.find("wal-g backup-push failed (exit 1): "), std::string::npos) << error;
  EXPECT_NE(error.find("Data directory from command line '" + elsewhere.string() + "' is not the same as Postgres' one"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("[redacted]"), std::string::npos) << error;
  EXPECT_NE(r.output.find("[redacted]"), std::string::npos) << r.output;
  EXPECT_TRUE(listed(store_).empty());

  r = job("backup", "PGDATA=" + elsewhere.string() + " WALG_BINARY=/nonexistent/wal-g");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(termination().find("cannot run wal-g"), std::string::npos) << termination();
  r = job("defrag", "PGDATA=" + elsewhere.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(termination().find("unknown action"), std::string::npos) << termination();
}

TEST_F(RunJob, OffsiteCopyProvesTheCopyRestorableAndReportsNoDateForADirectory) {
  auto r = job("offsite-copy", "OFFSITE_WALG_S3_PREFIX=s3://offsite/shop");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(termination().find("OFFSITE_BACKUP_ID is not set"), std::string::npos) << termination();

  start_server();
  insert_rows(1, 50);
  ASSERT_EQ(job("full-backup").exit_code, 0) << termination();
  const auto made = bo::api::parse_job_result(termination());
  ASSERT_TRUE(made) << made.error() << ": " << termination();
  const fs::path offsite = dir_ / "offsite";
  fs::create_directories(offsite);
  r = job("offsite-copy", "OFFSITE_BACKUP_ID=" + made->backup_id + " OFFSITE_WALG_FILE_PREFIX=" + offsite.string() +
                              " OFFSITE_WALG_AWS_SECRET_ACCESS_KEY=" + kCanary + " OFFSITE_IMMUTABLE_DAYS=30");
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  const json t = json::parse(termination());
  EXPECT_EQ(t["copied"], made->backup_id);
  EXPECT_EQ(t["checksum"], made->checksum);
  EXPECT_EQ(t["restorable"], true);
  EXPECT_GE(t.value("walSegments", 0), 1) << t;
  // A directory has no Object Lock: no date, a reason instead (never one computed from the clock).
  EXPECT_FALSE(t.contains("immutableUntil")) << t;
  EXPECT_EQ(t["immutability"]["reason"], "NotObjectStorage") << t;
  EXPECT_NE(t["immutability"]["message"].get<std::string>().find(offsite.string()), std::string::npos) << t;
  const auto parsed = bo::api::parse_offsite_copy_result(termination());
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_FALSE(parsed->immutable_until);
  // The proof ran against the offsite store: wal-g listed and fetched there.
  EXPECT_NE(r.output.find("restore from the offsite storage alone"), std::string::npos) << r.output;
  // The copy is the same backup (same sentinel), listed by wal-g from the offsite store alone, with its WAL.
  EXPECT_EQ("sha256:" + bo::sha256_hex(slurp(offsite / "basebackups_005" / (made->backup_id + "_backup_stop_sentinel.json"))),
            made->checksum);
  EXPECT_EQ(listed(offsite), std::set<std::string>{made->backup_id});
  EXPECT_TRUE(fs::exists(offsite / "wal_005"));
  // Credentials do not linger on disk.
  EXPECT_FALSE(fs::exists(dir_ / "walg-copy-to.json"));
  EXPECT_FALSE(fs::exists(dir_ / "walg-copy-from.json"));
}

TEST_F(RunJob, OffsiteCopyFailsNamingTheWalSegmentTheCopyLacks) {
  start_server();
  insert_rows(1, 20);
  ASSERT_EQ(job("full-backup").exit_code, 0) << termination();
  const auto made = bo::api::parse_job_result(termination());
  ASSERT_TRUE(made) << made.error() << ": " << termination();
  // The segment holding the backup's start LSN goes missing from the source after the backup:
  // the copy then cannot carry it, and the offsite storage alone cannot restore the backup.
  const auto start = bo::postgres::parse_lsn(made->start_lsn);
  ASSERT_TRUE(start) << made->start_lsn;
  const std::string segment = bo::postgres::wal_name(bo::postgres::segment_of(1, *start));
  int removed = 0;
  for (const auto& e : fs::directory_iterator(store_ / "wal_005")) {
    const std::string file = e.path().filename().string();  // <segment>.lz4, not <segment>.<offset>.backup.lz4
    if (file.starts_with(segment) && file.find(".backup") == std::string::npos) removed += fs::remove(e.path()) ? 1 : 0;
  }
  ASSERT_EQ(removed, 1) << segment;
  const fs::path offsite = dir_ / "offsite";
  fs::create_directories(offsite);
  auto r = job("offsite-copy", "OFFSITE_BACKUP_ID=" + made->backup_id + " OFFSITE_WALG_FILE_PREFIX=" + offsite.string());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const json t = json::parse(termination());
  const std::string error = t.value("error", "");
  EXPECT_NE(error.find("the offsite copy of " + made->backup_id + " is not restorable on its own"), std::string::npos)
      << error;
  EXPECT_NE(error.find("WAL segment " + segment), std::string::npos) << error;
  EXPECT_NE(error.find("is not in the offsite storage"), std::string::npos) << error;
  EXPECT_FALSE(t.contains("copied")) << t;
}

}  // namespace
