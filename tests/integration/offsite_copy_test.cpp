// The offsite copy end to end through the real `run-job offsite-copy`: a
// real PostgreSQL 15 archives its WAL with the wal-g stand-in into one
// s3rver (over TLS, its own CA), run-job takes a full backup, then copies it
// to a second s3rver (another CA, bucket and credentials). run-job proves
// the copy restorable from the offsite store alone and asks that store for
// the copy's Object Lock retention; s3rver cannot report one (it answers
// GetObjectRetention with 501 NotImplemented), so the result carries a
// reason and no date. Then the source s3rver is stopped and the backup is
// restored from the offsite copy alone, and PostgreSQL recovers every row.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "api/job_result.h"
#include "common/timefmt.h"
#include "harness.h"
#include "reconcile/backup_policy_plan.h"
#include "reconcile/conditions.h"
#include "restored_postgres.h"
#include "support/postgres.h"

using nlohmann::json;
using testing_support::Postgres;
using testing_support::PostgresOptions;
namespace fs = std::filesystem;

namespace {

const std::string kWalg = WALG_STANDIN_BIN;
// Secret values the Jobs hold; none may reach output or the termination message.
const std::string kSourceSecret = "canary-offsite-source-3c1e";
const std::string kOffsiteSecret = "canary-offsite-target-9a7b";
const std::string kSodiumKey = "canary-offsite-sodium-key-0123456789";  // wal-g wants >= 25 bytes

class OffsiteCopy : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing_support::make_temp_dir("offsite-copy");
    // The server runs as nobody: archive_command reads the source CA from here.
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                              fs::perms::others_exec);
    fs::create_directories(dir_ / "source");
    fs::create_directories(dir_ / "offsite");
    source_ = std::make_unique<testing_support::S3rverTls>(testing_support::start_s3rver_tls(dir_ / "source", "backups"));
    offsite_ = std::make_unique<testing_support::S3rverTls>(testing_support::start_s3rver_tls(dir_ / "offsite", "vault"));
    source_endpoint_ = source_->endpoint();
    source_ca_ = source_->ca.string();
  }
  void TearDown() override {
    restored_.reset();
    pg_.reset();
    for (const auto& [k, v] : offsite_walg_env()) ::unsetenv(k.c_str());
    offsite_.reset();
    source_.reset();
    for (const auto& text : seen_)
      for (const auto& secret : {kSourceSecret, kOffsiteSecret, kSodiumKey})
        EXPECT_EQ(text.find(secret), std::string::npos) << "a secret leaked:\n" << text;
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
    else std::cerr << "kept " << dir_ << " for inspection\n";
  }

  // The source storage as wal-g reads it (the database's archive_command).
  [[nodiscard]] std::string source_walg_env() const {
    return "WALG_S3_PREFIX=s3://backups/shop AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=" + kSourceSecret +
           " AWS_ENDPOINT=" + source_endpoint_ + " WALG_S3_CA_CERT_FILE=" + source_ca_ +
           " AWS_S3_FORCE_PATH_STYLE=true WALG_LIBSODIUM_KEY=" + kSodiumKey;
  }
  // The offsite storage as wal-g reads it (a restore from the offsite copy).
  [[nodiscard]] std::map<std::string, std::string> offsite_walg_env() const {
    if (!offsite_) return {};
    return {{"WALG_S3_PREFIX", "s3://vault/shop-offsite"}, {"AWS_ACCESS_KEY_ID", "S3RVER"},
            {"AWS_SECRET_ACCESS_KEY", kOffsiteSecret}, {"AWS_ENDPOINT", offsite_->endpoint()},
            {"WALG_S3_CA_CERT_FILE", offsite_->ca.string()}, {"AWS_S3_FORCE_PATH_STYLE", "true"},
            {"WALG_LIBSODIUM_KEY", kSodiumKey}};
  }

  // run-job as a backup Job runs it: the storage Secret's WALG_* keys, the
  // offsite Secret's as OFFSITE_*; `extra_env` comes last and overrides.
  testing_support::CommandResult job(const std::string& action, const std::string& extra_env = "") {
    std::string env = "env WALG_S3_PREFIX=s3://backups/shop WALG_AWS_ACCESS_KEY_ID=S3RVER WALG_AWS_SECRET_ACCESS_KEY=" +
                      kSourceSecret + " WALG_AWS_ENDPOINT=" + source_endpoint_ +
                      " WALG_S3_CA_CERT_FILE=" + source_ca_ + " AWS_S3_FORCE_PATH_STYLE=true" +
                      " WALG_LIBSODIUM_KEY=" + kSodiumKey + " WALG_BINARY=" + kWalg +
                      " TERMINATION_LOG=" + (dir_ / "termination").string() + " TMPDIR=" + dir_.string() +
                      " BACKUP_WAL_WAIT_SECONDS=60 ";
    if (pg_) env += "PGDATA=" + pg_->data_dir().string() + " " + pg_->libpq_env_prefix();
    fs::remove(dir_ / "termination");
    auto r = testing_support::run(env + extra_env + " " + OPERATOR_BIN + " run-job " + action, 180);
    seen_.push_back(r.output);
    seen_.push_back(termination());
    return r;
  }
  [[nodiscard]] std::string offsite_job_env(const std::string& id) const {
    return "OFFSITE_BACKUP_ID=" + id + " OFFSITE_WALG_S3_PREFIX=s3://vault/shop-offsite" +
           " OFFSITE_WALG_AWS_ACCESS_KEY_ID=S3RVER OFFSITE_WALG_AWS_SECRET_ACCESS_KEY=" + kOffsiteSecret +
           " OFFSITE_WALG_AWS_ENDPOINT=" + offsite_->endpoint() + " OFFSITE_WALG_S3_CA_CERT_FILE=" +
           offsite_->ca.string() + " OFFSITE_AWS_S3_FORCE_PATH_STYLE=true OFFSITE_IMMUTABLE_DAYS=30";
  }
  std::string termination() {
    std::ifstream in(dir_ / "termination");
    return std::string((std::istreambuf_iterator<char>(in)), {});
  }
  // Forces a WAL switch and waits (with a deadline) until the switched-out segment is archived.
  void archive_current_wal() {
    const std::string seg = pg_->value("select pg_walfile_name(pg_current_wal_lsn())");
    pg_->query("select pg_switch_wal()");
    ASSERT_TRUE(testing_support::eventually(
        [&] { return pg_->value("select coalesce(last_archived_wal, '') from pg_stat_archiver") >= seg; },
        std::chrono::seconds(60)))
        << pg_->log();
  }

  fs::path dir_;
  std::unique_ptr<testing_support::S3rverTls> source_, offsite_;
  std::string source_endpoint_, source_ca_;  // still named after the source server is gone
  std::unique_ptr<Postgres> pg_, restored_;
  std::vector<std::string> seen_;
};

TEST_F(OffsiteCopy, CopyRestoresFromTheOffsiteStoreAloneAndS3rverReportsNoRetention) {
  const unsigned seed = std::random_device{}();
  std::cout << "random seed: " << seed << "\n";
  std::mt19937 rng(seed);
  const int before = 20 + static_cast<int>(rng() % 80), after = 5 + static_cast<int>(rng() % 20);

  PostgresOptions o;
  o.archive_command = source_walg_env() + " " + kWalg + " wal-push %p";
  pg_ = std::make_unique<Postgres>(Postgres::init(dir_ / "data", o));
  pg_->query("create table t(id int primary key, note text)");
  pg_->query("insert into t select g, md5(g::text) from generate_series(1," + std::to_string(before) + ") g");
  auto r = job("full-backup");
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  const auto made = bo::api::parse_job_result(termination());
  ASSERT_TRUE(made) << made.error() << ": " << termination();
  ASSERT_TRUE(made->wal_archived) << made->wal_message;
  // Rows after the backup, archived before the copy: the copy carries the WAL from the backup on.
  pg_->query("insert into t select g, md5(g::text) from generate_series(" + std::to_string(before + 1) + "," +
             std::to_string(before + after) + ") g");
  archive_current_wal();

  r = job("offsite-copy", offsite_job_env(made->backup_id));
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  const json t = json::parse(termination());
  EXPECT_EQ(t["copied"], made->backup_id);
  EXPECT_EQ(t["checksum"], made->checksum);
  EXPECT_EQ(t["restorable"], true);
  EXPECT_GE(t.value("walSegments", 0), 1) << t;
  EXPECT_NE(r.output.find("restore from the offsite storage alone"), std::string::npos) << r.output;
  // s3rver 3.7 answers GetObjectRetention with 501 NotImplemented: no date, the reason and the answer instead.
  EXPECT_FALSE(t.contains("immutableUntil")) << t;
  EXPECT_EQ(t["immutability"]["reason"], "RetentionNotReported") << t;
  const std::string message = t["immutability"]["message"];
  EXPECT_NE(message.find("GetObjectRetention on s3://vault/shop-offsite/basebackups_005/" + made->backup_id +
                         "_backup_stop_sentinel.json: HTTP 501 NotImplemented"),
            std::string::npos)
      << message;
  const auto parsed = bo::api::parse_offsite_copy_result(termination());
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_FALSE(parsed->immutable_until);
  EXPECT_EQ(parsed->immutability_reason, "RetentionNotReported");

  // What the operator makes of this Job's result: the copy is recorded, OffsiteCopyCurrent is
  // False with the reason s3rver's answer gave, and no date appears anywhere in status.
  {
    bo::reconcile::PlanInputs in;
    in.policy = {{"apiVersion", "backup.si.dev/v1alpha1"}, {"kind", "BackupPolicy"},
                 {"metadata", {{"name", "db"}, {"namespace", "shop"}, {"uid", "u1"}, {"generation", 1},
                               {"creationTimestamp", bo::format_rfc3339(std::chrono::system_clock::now())}}},
                 {"spec", {{"database", {{"dataVolume", {{"claimName", "pgdata"}}}, {"runAsUser", 65534}, {"runAsGroup", 65534},
                                         {"host", "db"}, {"credentialsSecretRef", {{"name", "db"}}}}},
                           {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                        {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                           {"verification", {{"targetNamespace", "verify"}}},
                           {"offsite", {{"secretRef", {{"name", "walg-offsite"}}}}}}}};
    const std::map<std::string, bo::api::SecretValue> storage = {{"WALG_S3_PREFIX", "s3://b"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                                                        {"WALG_AWS_SECRET_ACCESS_KEY", "x"}, {"WALG_AWS_ENDPOINT", "https://s3"}};
    in.secrets = {{"walg-storage", storage}, {"walg-offsite", storage},
                  {"walg-encryption", {{"WALG_LIBSODIUM_KEY", "x"}}}, {"db", {{"username", "u"}, {"password", "x"}}}};
    in.now = std::chrono::system_clock::now();
    bo::reconcile::ObservedJob done;
    done.name = "db-offsite-1";
    done.action = "offsite-copy";
    done.slot = in.now - std::chrono::minutes(1);
    done.state = bo::reconcile::ObservedJob::State::kSucceeded;
    done.finished = in.now;
    done.termination_message = termination();
    in.jobs = {done};
    const auto plan = bo::reconcile::plan_backup_policy(in);
    const json* current = bo::reconcile::find_condition(plan.status["conditions"], "OffsiteCopyCurrent");
    ASSERT_NE(current, nullptr) << plan.status.dump(2);
    EXPECT_EQ((*current)["status"], "False") << *current;
    EXPECT_EQ((*current)["reason"], "RetentionNotReported") << *current;
    EXPECT_NE((*current)["message"].get<std::string>().find("HTTP 501 NotImplemented"), std::string::npos) << *current;
    EXPECT_EQ(plan.status["lastOffsiteCopy"]["id"], made->backup_id);
    EXPECT_EQ(plan.status.dump().find("immutableUntil"), std::string::npos) << plan.status.dump(2);
  }

  // The source store goes away: the offsite copy alone restores the backup and its WAL.
  pg_.reset();
  source_.reset();
  const fs::path pgdata = dir_ / "restore";
  fs::create_directories(pgdata);
  std::string restore_env;
  for (const auto& [k, v] : offsite_walg_env()) restore_env += k + "=" + v + " ";
  // A restore Job whose storage Secret is the offsite one (its WALG_* keys override the source's).
  r = job("restore", restore_env + "WALG_S3_PREFIX=s3://vault/shop-offsite WALG_AWS_SECRET_ACCESS_KEY=" + kOffsiteSecret +
                         " WALG_AWS_ENDPOINT=" + offsite_->endpoint() + " WALG_S3_CA_CERT_FILE=" +
                         offsite_->ca.string() + " BACKUP_ID=" + made->backup_id + " BACKUP_CHECKSUM=" +
                         made->checksum + " PGDATA=" + pgdata.string());
  ASSERT_EQ(r.exit_code, 0) << r.output << termination();
  // PostgreSQL's restore_command (wal-g wal-fetch) reads the offsite store through the server's environment.
  for (const auto& [k, v] : offsite_walg_env()) ::setenv(k.c_str(), v.c_str(), 1);
  ASSERT_NO_FATAL_FAILURE(testing_support::start_restored(pgdata, restored_));
  EXPECT_EQ(restored_->value("select count(*) from t"), std::to_string(before + after)) << restored_->log();
  EXPECT_EQ(restored_->value("select max(id) from t"), std::to_string(before + after));
}

}  // namespace
