// backup-push of the wal-g stand-in over a real PostgreSQL 15: the checks
// wal-g makes before a backup, when it makes deltas, what a delta holds and
// the sentinel it writes.
#include "walg_fixture.h"

namespace walg_test {
namespace {

TEST_F(WalgTest, WrongDataDirectoryIsRefused) {
  start_server();
  const fs::path other = dir_ / "not-the-data-dir";
  fs::create_directories(other);
  Postgres::hand_to_server_user(other);
  const auto r = walg({"backup-push", other.string()});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Data directory from command line '" + other.string() + "' is not the same as Postgres' one '" +
                       fs::canonical(pg_->data_dir()).string() + "'"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(list_json().empty());
}

TEST_F(WalgTest, MissingPgControlIsRefused) {
  // As a backup Job that mounts some other volume at the server's data_directory path: the
  // path matches, but what it holds is not the server's data.
  if (!Postgres::drops_root()) GTEST_SKIP() << "needs root to mount another volume over the data directory";
  start_server();
  const fs::path other_volume = dir_ / "other-volume";
  fs::create_directories(other_volume / "global");
  std::ofstream(other_volume / "PG_VERSION") << "15\n";
  Postgres::hand_to_server_user(other_volume);
  const fs::path out = scratch_ / "pgc-out", err = scratch_ / "pgc-err";
  const auto r = wait_walg(start_walg({"backup-push", pg_->data_dir().string()}, file_env(store_), out, err,
                                      "mount --bind '" + other_volume.string() + "' '" + pg_->data_dir().string() + "'"),
                           out, err);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("It looks like you are trying to backup not pg_data. PgControl file not found"), std::string::npos) << r.err;
  EXPECT_TRUE(list_json().empty());
}

TEST_F(WalgTest, DeltasOnlyWithMaxStepsAndFullAfterTheLastStep) {
  start_server();
  const Env steps = {{"WALG_DELTA_MAX_STEPS", "2"}};
  const std::string full = push(steps);
  ASSERT_FALSE(full.empty());
  EXPECT_EQ(full.find("_D_"), std::string::npos);
  insert_rows(1, 10);
  const std::string d1 = push(steps);
  EXPECT_EQ(d1.substr(d1.find("_D_") + 3), full.substr(5)) << d1;
  insert_rows(11, 20);
  const std::string d2 = push(steps);
  EXPECT_EQ(d2.substr(d2.find("_D_") + 3), d1.substr(5, 24)) << d2;
  const auto s2 = sentinel(d2);
  EXPECT_EQ(s2["DeltaFrom"], d1);
  EXPECT_EQ(s2["DeltaFullName"], full);
  EXPECT_EQ(s2["DeltaCount"], 2);
  insert_rows(21, 30);
  const std::string next = push(steps);  // DeltaCount would be 3 > 2
  EXPECT_EQ(next.find("_D_"), std::string::npos) << next;
  EXPECT_FALSE(sentinel(next).contains("DeltaFrom"));
}

TEST_F(WalgTest, WithoutMaxStepsOrWithFullEveryPushIsFull) {
  start_server();
  const std::string first = push();
  insert_rows(1, 10);
  const std::string second = push();  // WALG_DELTA_MAX_STEPS unset: 0
  EXPECT_EQ(second.find("_D_"), std::string::npos) << second;
  EXPECT_FALSE(sentinel(second).contains("DeltaFrom"));
  insert_rows(11, 20);
  const std::string forced = push({{"WALG_DELTA_MAX_STEPS", "5"}}, /*full=*/true);
  EXPECT_EQ(forced.find("_D_"), std::string::npos) << forced;
  EXPECT_EQ(list_json().size(), 3u);
}

TEST_F(WalgTest, LatestFullOriginBasesTheDeltaOnTheFullBackup) {
  start_server();
  const Env env = {{"WALG_DELTA_MAX_STEPS", "3"}, {"WALG_DELTA_ORIGIN", "LATEST_FULL"}};
  const std::string full = push(env);
  insert_rows(1, 10);
  const std::string d1 = push(env);
  insert_rows(11, 20);
  const std::string d2 = push(env);
  EXPECT_EQ(sentinel(d2)["DeltaFrom"], full);
  EXPECT_EQ(d2.substr(d2.find("_D_") + 3), full.substr(5));
  EXPECT_EQ(sentinel(d1)["DeltaFrom"], full);
}

TEST_F(WalgTest, DeltaCopiesOnlyFilesChangedSinceItsBase) {
  start_server();
  insert_rows(1, 1000);
  pg_->query("create table untouched(x int)");
  pg_->query("insert into untouched select generate_series(1, 1000)");
  pg_->query("checkpoint");
  const Env steps = {{"WALG_DELTA_MAX_STEPS", "1"}};
  const std::string full = push(steps);
  insert_rows(1001, 2000);
  pg_->query("checkpoint");  // the changed pages reach the table's file
  const std::string delta = push(steps);
  ASSERT_NE(delta.find("_D_"), std::string::npos);
  const auto r = walg({"st", "cat", "basebackups_005/" + delta + "/files_metadata.json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto files = nlohmann::json::parse(r.out);
  const std::string changed = pg_->value("select pg_relation_filepath('t')");
  const std::string unchanged = pg_->value("select pg_relation_filepath('untouched')");
  ASSERT_TRUE(files["Files"].contains(changed)) << files.dump();
  EXPECT_FALSE(files["Files"][changed]["IsSkipped"].get<bool>());
  EXPECT_TRUE(files["Files"][unchanged]["IsSkipped"].get<bool>());
  EXPECT_TRUE(files["Files"]["PG_VERSION"]["IsSkipped"].get<bool>());
  const auto& part = files["TarFileSets"]["part_1.tar.lz4"];
  EXPECT_NE(std::find(part.begin(), part.end(), changed), part.end());
  EXPECT_EQ(std::find(part.begin(), part.end(), unchanged), part.end());
  EXPECT_LT(sentinel(delta)["UncompressedSize"].get<uint64_t>(), sentinel(full)["UncompressedSize"].get<uint64_t>());
}

TEST_F(WalgTest, SentinelCarriesWalgFields) {
  start_server();
  const std::string full = push({{"WALG_DELTA_MAX_STEPS", "1"}});
  insert_rows(1, 10);
  const std::string delta = push({{"WALG_DELTA_MAX_STEPS", "1"}});
  const auto s = sentinel(full);
  for (const char* k : {"LSN", "FinishLSN", "PgVersion", "SystemIdentifier", "UncompressedSize", "CompressedSize",
                        "StartTime", "FinishTime", "Hostname", "DataDir", "IsPermanent", "Version", "Timeline"})
    EXPECT_TRUE(s.contains(k)) << k << " missing in " << s.dump();
  EXPECT_EQ(s["Version"], 2);
  EXPECT_EQ(s["IsPermanent"], false);
  EXPECT_EQ(s["DataDir"], fs::canonical(pg_->data_dir()).string());
  EXPECT_EQ(std::to_string(s["SystemIdentifier"].get<uint64_t>()), pg_->value("select system_identifier from pg_control_system()"));
  EXPECT_EQ(std::to_string(s["PgVersion"].get<int>()), pg_->value("show server_version_num"));
  const uint64_t lsn = s["LSN"].get<uint64_t>();
  char text[40];
  std::snprintf(text, sizeof text, "%X/%X", static_cast<unsigned>(lsn >> 32), static_cast<unsigned>(lsn & 0xffffffff));
  EXPECT_EQ(full, "base_" + pg_->value(std::string("select pg_walfile_name('") + text + "')"));
  EXPECT_GE(s["FinishLSN"].get<uint64_t>(), lsn);
  EXPECT_FALSE(s.contains("DeltaFrom"));
  const auto d = sentinel(delta);
  EXPECT_EQ(d["DeltaFrom"], full);
  EXPECT_EQ(d["DeltaFullName"], full);
  EXPECT_EQ(d["DeltaCount"], 1);
  EXPECT_EQ(d["DeltaLSN"], s["LSN"]);
  std::cout << "sentinel example: " << d.dump() << "\n";
}

TEST_F(WalgTest, PushKilledMidwayLeavesNoListedBackup) {
  start_server();
  pg_->query("create table big as select g, md5(g::text) || md5((g * 7)::text) as v from generate_series(1, 400000) g");
  pg_->query("checkpoint");
  const fs::path tmp = dir_ / "push-tmp";
  fs::create_directories(tmp);
  Postgres::hand_to_server_user(tmp);
  Env env = file_env(store_);
  env["TMPDIR"] = tmp.string();
  const fs::path out = scratch_ / "killed-out", err = scratch_ / "killed-err";
  const pid_t pid = start_walg({"backup-push", pg_->data_dir().string()}, env, out, err);
  // Kill while the first tar partition is being written: the walk is under way, no sentinel yet.
  const bool writing = eventually([&] {
    for (const auto& e : fs::recursive_directory_iterator(tmp))
      if (e.path().filename() == "part_1.tar.lz4" && e.is_regular_file() && fs::file_size(e.path()) > 512 * 1024) return true;
    return false;
  });
  ::kill(pid, SIGKILL);
  const auto r = wait_walg(pid, out, err);
  ASSERT_TRUE(writing) << r.err;
  EXPECT_EQ(r.exit_code, -1) << "the push finished before it could be killed: " << r.err;
  EXPECT_TRUE(list_json().empty());
  EXPECT_NE(walg({"backup-fetch", (dir_ / "never").string(), "LATEST"}).exit_code, 0);
  // The killed session's backup was aborted by the server: the next push works.
  EXPECT_FALSE(push().empty());
  EXPECT_EQ(list_json().size(), 1u);
}

}  // namespace
}  // namespace walg_test
