// `backup-operator run-job` against the wal-g stand-in: the Job side of the
// result contract, end to end through the real binary.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "api/job_result.h"
#include "common/encoding.h"
#include "harness.h"

using nlohmann::json;
using testing_support::run;

namespace {

class RunJob : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing_support::make_temp_dir("runjob"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  testing_support::CommandResult job(const std::string& action, const std::string& extra_env = "") {
    const std::string env = "env FAKE_WALG_STORE=" + (dir_ / "store").string() + " WALG_BINARY=" + SOURCE_DIR +
                            "/tests/fixtures/wal-g TERMINATION_LOG=" + (dir_ / "termination").string() +
                            " WALG_AWS_SECRET_ACCESS_KEY=CANARY-run-job-77 PGDATA=/data " + extra_env + " ";
    return run(env + OPERATOR_BIN + " run-job " + action);
  }
  std::string termination() {
    std::ifstream in(dir_ / "termination");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::filesystem::path dir_;
};

TEST_F(RunJob, FullThenDeltaWriteTheResultContract) {
  auto r = job("full-backup");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto full = bo::api::parse_job_result(termination());
  ASSERT_TRUE(full) << full.error() << ": " << termination();
  EXPECT_EQ(full->type, "full");
  EXPECT_EQ(full->backup_id, "base_000000010000000000000001");
  // The checksum is sha256 over the stop sentinel exactly as stored.
  std::ifstream s(dir_ / "store/basebackups_005/base_000000010000000000000001_backup_stop_sentinel.json");
  std::stringstream sentinel;
  sentinel << s.rdbuf();
  EXPECT_EQ(full->checksum, "sha256:" + bo::sha256_hex(sentinel.str()));

  r = job("backup");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto delta = bo::api::parse_job_result(termination());
  ASSERT_TRUE(delta) << delta.error();
  EXPECT_EQ(delta->type, "delta");
  EXPECT_EQ(delta->base, "base_000000010000000000000001");
}

TEST_F(RunJob, RestoreChecksTheChecksumFetchesAndWritesRecoverySettings) {
  ASSERT_EQ(job("full-backup").exit_code, 0);
  const auto made = bo::api::parse_job_result(termination());
  ASSERT_TRUE(made);
  const auto pgdata = dir_ / "restore";
  const std::string env = "BACKUP_ID=" + made->backup_id + " PGDATA=" + pgdata.string() +
                          " POINT_IN_TIME=2026-11-24T10:30:00Z BACKUP_CHECKSUM=";
  auto r = job("restore", env + made->checksum);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json result = json::parse(termination());
  EXPECT_EQ(result["restored"], made->backup_id);
  EXPECT_EQ(result["checksum"], made->checksum);
  EXPECT_TRUE(std::filesystem::exists(pgdata / "PG_VERSION"));
  EXPECT_TRUE(std::filesystem::exists(pgdata / "recovery.signal"));
  std::ifstream conf(pgdata / "postgresql.auto.conf");
  std::stringstream text;
  text << conf.rdbuf();
  EXPECT_NE(text.str().find("recovery_target_time = '2026-11-24T10:30:00Z'"), std::string::npos) << text.str();
  EXPECT_NE(text.str().find("wal-fetch %f %p"), std::string::npos);

  // A backup whose sentinel changed after the catalog recorded it is refused.
  r = job("restore", env + "sha256:" + std::string(64, '0'));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(termination().find("ChecksumMismatch"), std::string::npos) << termination();
  r = job("restore", "BACKUP_ID=base_missing PGDATA=" + pgdata.string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(termination().find("base_missing"), std::string::npos);
  EXPECT_EQ(termination().find("CANARY"), std::string::npos);
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

TEST_F(RunJob, RetainDeletesTheExpiredBackups) {
  ASSERT_EQ(job("full-backup").exit_code, 0);
  ASSERT_EQ(job("full-backup").exit_code, 0);
  auto r = job("retain", "RETAIN_EXPIRE=base_000000010000000000000001");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(json::parse(termination())["deleted"], json({"base_000000010000000000000001"}));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "store/basebackups_005/base_000000010000000000000001_backup_stop_sentinel.json"));
  r = job("retain", "RETAIN_EXPIRE=base_nope");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(json::parse(termination())["error"].get<std::string>().find("wal-g delete target base_nope failed"),
            std::string::npos);
}

TEST_F(RunJob, FailuresSayWhatToDoAndNeverLeakSecrets) {
  auto r = job("backup", "FAKE_WALG_FAIL=1 FAKE_WALG_ECHO_ENV=WALG_AWS_SECRET_ACCESS_KEY");
  EXPECT_EQ(r.exit_code, 1);
  const json t = json::parse(termination());
  EXPECT_NE(t["error"].get<std::string>().find("wal-g backup-push failed (exit 1): ERROR: failed to upload: AccessDenied"),
            std::string::npos) << t;
  EXPECT_EQ(termination().find("CANARY-run-job-77"), std::string::npos);
  EXPECT_EQ(r.output.find("CANARY-run-job-77"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("[redacted]"), std::string::npos) << r.output;
  r = job("backup", "WALG_BINARY=/nonexistent/wal-g");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(termination().find("cannot run wal-g"), std::string::npos) << termination();
  r = job("defrag");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(termination().find("unknown action"), std::string::npos);
}

}  // namespace

namespace {

TEST_F(RunJob, OffsiteCopyCopiesTheNamedBackupAndReportsItsLock) {
  ASSERT_EQ(job("full-backup").exit_code, 0);
  const std::string offsite = (dir_ / "offsite").string();
  auto r = job("offsite-copy", "OFFSITE_BACKUP_ID=base_000000010000000000000001 OFFSITE_WALG_S3_PREFIX=file://" + offsite +
                                   " OFFSITE_WALG_AWS_SECRET_ACCESS_KEY=CANARY-run-job-77 OFFSITE_IMMUTABLE_DAYS=30"
                                   " TMPDIR=" + dir_.string());
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  const json t = json::parse(termination());
  EXPECT_EQ(t["copied"], "base_000000010000000000000001");
  EXPECT_TRUE(std::filesystem::exists(offsite + "/basebackups_005/base_000000010000000000000001_backup_stop_sentinel.json"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "walg-copy-to.json"));  // credentials do not linger on disk
  r = job("offsite-copy", "OFFSITE_WALG_S3_PREFIX=file://" + offsite);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(termination().find("OFFSITE_BACKUP_ID is not set"), std::string::npos);
}

}  // namespace
