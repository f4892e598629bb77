// `backup-operator run-job` against the wal-g stand-in: the Job side of the
// result contract, end to end through the real binary.
#include <gtest/gtest.h>

#include <cpprest/http_listener.h>

#include <fstream>
#include <mutex>
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
  EXPECT_NE(text.str().find("recovery_target_time = '2026-11-24 10:30:00.000000+00'"), std::string::npos) << text.str();
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

// A stand-in for Databasus' REST API (as its 3.x releases answer): sign-in,
// workspaces and databases, recording what the sidecar sent.
class FakeDatabasus {
 public:
  FakeDatabasus() : port_(testing_support::free_port()), listener_("http://127.0.0.1:" + std::to_string(port_) + "/api/v1") {
    listener_.support([this](web::http::http_request req) { handle(req); });
    listener_.open().wait();
  }
  ~FakeDatabasus() { listener_.close().wait(); }
  [[nodiscard]] std::string api() const { return "http://127.0.0.1:" + std::to_string(port_) + "/api/v1"; }
  std::vector<std::pair<std::string, json>> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  void forget_database() {
    std::lock_guard lock(mu_);
    databases_.clear();
  }

 private:
  void handle(web::http::http_request req) {
    const std::string path = req.relative_uri().path();
    const std::string method = req.method();
    const json body = json::parse(req.extract_utf8string(true).get(), nullptr, false);
    std::lock_guard lock(mu_);
    calls_.emplace_back(method + " " + path, body);
    auto reply = [&](int code, const json& j) { req.reply(code, j.dump(), "application/json").wait(); };
    if (method == "POST" && path == "/users/signin") {
      if (body.value("email", "") == "admin@example.org" && body.value("password", "") == "CANARY-admin-pw-5")
        return reply(200, {{"token", "tok-1"}, {"userId", "u1"}});
      return reply(401, {{"error", "invalid credentials"}});
    }
    if (req.headers().find("Authorization") == req.headers().end() || req.headers()["Authorization"] != "Bearer tok-1")
      return reply(401, {{"error", "unauthorized"}});
    if (method == "GET" && path == "/workspaces") return reply(200, {{"workspaces", workspaces_}});
    if (method == "POST" && path == "/workspaces") {
      json w = {{"id", "ws-" + std::to_string(workspaces_.size() + 1)}, {"name", body.value("name", "")}};
      workspaces_.push_back(w);
      return reply(200, w);
    }
    if (method == "POST" && path == "/databases/create") {
      json d = body;
      d["id"] = "db-" + std::to_string(++made_);
      databases_[d["id"]] = d;
      return reply(200, d);
    }
    if (method == "POST" && path == "/databases/update") {
      if (!databases_.count(body.value("id", ""))) return reply(404, {{"error", "record not found"}});
      databases_[body["id"]] = body;
      return reply(200, body);
    }
    if (method == "GET" && path.starts_with("/databases/")) {
      const std::string id = path.substr(11);
      if (!databases_.count(id)) return reply(404, {{"error", "record not found"}});
      return reply(200, databases_[id]);
    }
    reply(404, {{"error", "no route"}});
  }

  int port_;
  web::http::experimental::listener::http_listener listener_;
  std::mutex mu_;
  std::vector<std::pair<std::string, json>> calls_;
  json workspaces_ = json::array();
  std::map<std::string, json> databases_;
  int made_ = 0;
};

TEST_F(RunJob, DatabasusRegistrationCreatesOnceThenUpdatesAndNeverLeaksAPassword) {
  FakeDatabasus databasus;
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
  EXPECT_NE(wrong.output.find("registration failed, retrying next round: sign in as admin@example.org: Databasus answered HTTP 401 (invalid credentials)"),
            std::string::npos) << wrong.output;
  EXPECT_EQ(wrong.output.find("CANARY"), std::string::npos) << wrong.output;
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
