// WAL, fetch, delete, list and copy of the wal-g stand-in over a real
// PostgreSQL 15 (and s3rver for S3 storage).
#include <random>

#include "walg_fixture.h"

namespace walg_test {
namespace {

TEST_F(WalgTest, WalPushAndFetchRoundTripAndMissingSegmentExits74) {
  const unsigned seed = std::random_device{}();
  std::cout << "random seed: " << seed << "\n";
  std::mt19937 rng(seed);
  std::string bytes(16 * 1024 * 1024, '\0');
  for (auto& c : bytes) c = static_cast<char>(rng() % 7);  // compressible, like WAL
  const fs::path seg = scratch_ / "000000010000000000000042";
  std::ofstream(seg, std::ios::binary) << bytes;
  Postgres::hand_to_server_user(seg);
  auto r = walg({"wal-push", seg.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(store_ / "wal_005/000000010000000000000042.lz4"));
  const fs::path back = scratch_ / "fetched";
  r = walg({"wal-fetch", "000000010000000000000042", back.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(slurp(back) == bytes);
  r = walg({"wal-fetch", "0000000100000000000000FF", (scratch_ / "missing").string()});
  EXPECT_EQ(r.exit_code, 74) << r.err;
  EXPECT_NE(r.err.find("Archive '0000000100000000000000FF' does not exist."), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(scratch_ / "missing"));
}

TEST_F(WalgTest, BackupFetchRefusesANonEmptyDirectory) {
  start_server();
  const std::string name = push();
  const fs::path target = dir_ / "busy";
  fs::create_directories(target);
  std::ofstream(target / "something").close();
  Postgres::hand_to_server_user(target);
  const auto r = walg({"backup-fetch", target.string(), name});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Directory " + target.string() + " for delta base must be empty"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(target / "something"), "");
  EXPECT_FALSE(fs::exists(target / "PG_VERSION"));
}

TEST_F(WalgTest, FetchedDeltaChainRecoversEveryArchivedRow) {
  start_server();
  const Env steps = {{"WALG_DELTA_MAX_STEPS", "3"}};
  insert_rows(1, 100);
  const std::string full = push(steps);
  insert_rows(101, 200);
  const std::string d1 = push(steps);
  insert_rows(201, 300);
  const std::string d2 = push(steps);
  ASSERT_EQ(sentinel(d2)["DeltaFrom"], d1);
  ASSERT_EQ(sentinel(d1)["DeltaFrom"], full);
  insert_rows(301, 400);
  archive_current_wal();
  insert_rows(401, 450);  // never archived: not recoverable
  auto restored = restore("LATEST", file_env(store_), "WALG_FILE_PREFIX=" + store_.string() + " ");
  EXPECT_EQ(restored.value("select count(*) from t"), "400");
  EXPECT_EQ(restored.value("select max(id) from t"), "400");
  restored.query("insert into t values (100000, 'writable')");
}

TEST_F(WalgTest, DeleteTargetCascadesToDependentDeltasAndDryRunDeletesNothing) {
  start_server();
  const Env steps = {{"WALG_DELTA_MAX_STEPS", "5"}};
  const std::string a = push(steps);
  insert_rows(1, 10);
  const std::string b = push(steps);
  insert_rows(11, 20);
  const std::string c = push(steps);
  insert_rows(21, 30);
  const std::string d = push(steps, /*full=*/true);
  ASSERT_EQ(sentinel(c)["DeltaFrom"], b);
  auto r = walg({"delete", "target", a});  // no --confirm: dry run
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(list_json().size(), 4u);
  r = walg({"delete", "target", a, "--confirm"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto left = list_json();
  ASSERT_EQ(left.size(), 1u) << left.dump();
  EXPECT_EQ(left[0]["backup_name"], d);
  const auto files_under = [](const fs::path& p) {
    size_t n = 0;
    if (fs::exists(p))
      for (const auto& e : fs::recursive_directory_iterator(p)) n += e.is_regular_file();
    return n;
  };
  EXPECT_GT(files_under(store_ / "basebackups_005" / d), 0u);
  for (const auto& gone : {a, b, c}) {
    EXPECT_EQ(files_under(store_ / "basebackups_005" / gone), 0u) << gone;
    EXPECT_FALSE(fs::exists(store_ / "basebackups_005" / (gone + "_backup_stop_sentinel.json"))) << gone;
  }
  EXPECT_FALSE(fs::is_empty(store_ / "wal_005"));  // delete target keeps WAL
}

TEST_F(WalgTest, DeleteTargetFindFullDeletesTheWholeChain) {
  start_server();
  const Env steps = {{"WALG_DELTA_MAX_STEPS", "5"}};
  push(steps);
  insert_rows(1, 10);
  const std::string b = push(steps);
  insert_rows(11, 20);
  push(steps);
  const auto r = walg({"delete", "target", "FIND_FULL", b, "--confirm"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(list_json().empty());
}

TEST_F(WalgTest, BackupListJsonHasWalgFieldNames) {
  start_server();
  const std::string name = push();
  const auto detail = list_json();
  ASSERT_EQ(detail.size(), 1u);
  const auto& row = detail[0];
  for (const char* k : {"backup_name", "time", "wal_file_name", "storage_name", "start_time", "finish_time", "date_fmt",
                        "hostname", "data_dir", "pg_version", "start_lsn", "finish_lsn", "is_permanent",
                        "system_identifier", "uncompressed_size", "compressed_size"})
    EXPECT_TRUE(row.contains(k)) << k << " missing in " << row.dump();
  EXPECT_EQ(row["backup_name"], name);
  EXPECT_EQ(row["wal_file_name"], name.substr(5));
  const auto s = sentinel(name);
  EXPECT_EQ(row["start_lsn"], s["LSN"]);
  EXPECT_EQ(row["finish_lsn"], s["FinishLSN"]);
  EXPECT_EQ(row["system_identifier"], s["SystemIdentifier"]);
  const auto r = walg({"backup-list", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto plain = nlohmann::json::parse(r.out);
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_FALSE(plain[0].contains("start_lsn"));
  EXPECT_TRUE(plain[0].contains("time"));
}

TEST_F(WalgTest, UnknownCommandsAndStoragesAreRefusedNotFaked) {
  auto r = walg({"wal-verify"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("wal-g stand-in: wal-verify is not implemented"), std::string::npos) << r.err;
  r = walg({"backup-list"}, {{"WALG_GS_PREFIX", "gs://bucket/x"}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("is not implemented"), std::string::npos) << r.err;
  r = walg({"backup-list"}, {{"WALG_AWS_ACCESS_KEY_ID", "x"}});  // no storage configured
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("WALG_S3_PREFIX"), std::string::npos) << r.err;
}

// s3rver, an S3-compatible server (npm package; scripts/setup.sh installs it).
class S3rver {
 public:
  explicit S3rver(const fs::path& dir) {
    port_ = pick_port();
    fs::create_directories(dir / "s3");
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open((dir / "s3rver.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      const std::string port = std::to_string(port_), data = (dir / "s3").string();
      ::execl(S3RVER_BIN, S3RVER_BIN, "-d", data.c_str(), "-a", "127.0.0.1", "-p", port.c_str(), "--configure-bucket",
              "backups", static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~S3rver() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  [[nodiscard]] bool ready() const {
    const std::string cmd = "curl -s -o /dev/null http://127.0.0.1:" + std::to_string(port_) + "/backups";
    return eventually([&] { return std::system(cmd.c_str()) == 0; }, std::chrono::seconds(30));
  }
  [[nodiscard]] Env env(const std::string& prefix) const {
    return {{"WALG_S3_PREFIX", "s3://backups/" + prefix},
            {"AWS_ACCESS_KEY_ID", "S3RVER"},
            {"AWS_SECRET_ACCESS_KEY", "S3RVER"},
            {"AWS_ENDPOINT", "http://127.0.0.1:" + std::to_string(port_)},
            {"AWS_S3_FORCE_PATH_STYLE", "true"}};
  }

 private:
  static int pick_port() {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);
    return ntohs(a.sin_port);
  }
  int port_ = 0;
  pid_t pid_ = -1;
};

TEST_F(WalgTest, CopyToASecondStoreMakesTheChainRestorableFromThatStoreAlone) {
  ASSERT_TRUE(fs::exists(S3RVER_BIN)) << "s3rver is not installed; scripts/setup.sh installs it";
  S3rver s3(dir_);
  ASSERT_TRUE(s3.ready());
  start_server();
  const Env steps = {{"WALG_DELTA_MAX_STEPS", "2"}};
  insert_rows(1, 100);
  const std::string full = push(steps);
  insert_rows(101, 200);
  const std::string delta = push(steps);
  insert_rows(201, 300);
  archive_current_wal();
  // Config files as wal-g reads them: JSON for the source, YAML for the target.
  const fs::path from = scratch_ / "from.json", to = scratch_ / "to.yaml";
  std::ofstream(from) << nlohmann::json{{"WALG_FILE_PREFIX", store_.string()}}.dump();
  {
    std::ofstream out(to);
    for (const auto& [k, v] : s3.env("offsite/shop")) out << k << ": \"" << v << "\"\n";
  }
  Postgres::hand_to_server_user(from);
  Postgres::hand_to_server_user(to);
  for (const auto& name : {full, delta}) {
    const auto r = walg({"copy", "--from=" + from.string(), "--to=" + to.string(), "--backup-name=" + name});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  Env s3env = s3.env("offsite/shop");
  s3env.merge(pg_->libpq_env());
  const auto listed = list_json(s3env);
  ASSERT_EQ(listed.size(), 2u) << listed.dump();
  pg_->stop();  // the source is gone; only the copy remains
  fs::remove_all(store_);
  std::string prefix;
  for (const auto& [k, v] : s3.env("offsite/shop")) prefix += k + "=" + v + " ";
  auto restored = restore(delta, s3env, prefix);
  EXPECT_EQ(restored.value("select count(*) from t"), "300");
}

TEST_F(WalgTest, CopyWithoutHistoryCopiesNoWal) {
  start_server();
  const std::string name = push();
  archive_current_wal();
  const fs::path second = dir_ / "second";
  fs::create_directories(second);
  Postgres::hand_to_server_user(second);
  const fs::path from = scratch_ / "from.json", to = scratch_ / "to.json";
  std::ofstream(from) << nlohmann::json{{"WALG_FILE_PREFIX", store_.string()}}.dump();
  std::ofstream(to) << nlohmann::json{{"WALG_FILE_PREFIX", second.string()}}.dump();
  Postgres::hand_to_server_user(from);
  Postgres::hand_to_server_user(to);
  const auto r = walg({"copy", "--from=" + from.string(), "--to=" + to.string(), "--backup-name=" + name, "--without-history"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(second / "basebackups_005" / (name + "_backup_stop_sentinel.json")));
  EXPECT_FALSE(fs::exists(second / "wal_005"));
}

}  // namespace
}  // namespace walg_test
