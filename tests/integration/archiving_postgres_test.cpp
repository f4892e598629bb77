// The libpq archiving probe against a real PostgreSQL 15 (Debian's
// postgresql-15): each test starts its own server on a free port in a
// temporary directory (as nobody:nogroup when the tests run as root, which
// PostgreSQL refuses), changes its archiving settings, and checks what the
// probe reads and how the evaluator judges it.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <unistd.h>

#include <prometheus/text_serializer.h>

#include "harness.h"
#include "support/postgres.h"
#include "kube/events.h"
#include "postgres/archiving.h"
#include "reconcile/backup_policy_controller.h"
#include "reconcile/conditions.h"

namespace {

namespace fs = std::filesystem;
using bo::postgres::evaluate_archiving;
using bo::postgres::probe_archiving;
using testing_support::eventually;

const std::string kPassword = "CANARY-pg-4c1f";

// One PostgreSQL server (the shared harness, with a superuser password so the
// probe authenticates as it would against a real one), in a directory that
// also holds the test's stand-in archive commands; stopped with the test.
class LocalPostgres {
 public:
  explicit LocalPostgres(const std::vector<std::string>& settings)
      : dir_(make_dir()), pg_(testing_support::Postgres::init(dir_ / "data", options(settings))) {}
  ~LocalPostgres() {
    pg_.stop();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  [[nodiscard]] bo::postgres::ConnectionParams params(const std::string& user = "postgres",
                                                      const std::string& password = kPassword) const {
    bo::postgres::ConnectionParams p;
    p.host = "127.0.0.1";
    p.port = pg_.port();
    p.user = user;
    p.password = password;
    return p;
  }
  // Runs SQL as the superuser; returns the first value ("" without rows), or throws.
  std::string sql(const std::string& statement) const {
    const auto rows = pg_.query(statement);
    return rows.empty() || rows[0].empty() ? "" : rows[0][0].value_or("");
  }
  [[nodiscard]] int port() const { return pg_.port(); }
  [[nodiscard]] const fs::path& dir() const { return dir_; }
  [[nodiscard]] const fs::path& data() const { return pg_.data_dir(); }
  [[nodiscard]] std::string log() const { return pg_.log(); }

 private:
  static fs::path make_dir() {
    fs::path d = testing_support::make_temp_dir("pg-archiving");
    fs::permissions(d, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                           fs::perms::others_exec);
    return d;
  }
  static testing_support::PostgresOptions options(const std::vector<std::string>& settings) {
    testing_support::PostgresOptions o;
    o.password = kPassword;
    for (const auto& kv : settings) {
      const auto eq = kv.find('=');
      o.settings[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    return o;
  }
  fs::path dir_;
  testing_support::Postgres pg_;
};

TEST(ArchivingPostgres, ArchiveModeOffIsReportedWithTheDataDirectory) {
  LocalPostgres pg({"archive_mode=off"});
  const auto obs = probe_archiving(pg.params());
  ASSERT_EQ(obs.error, "") << pg.log();
  EXPECT_EQ(obs.archive_mode, "off");
  EXPECT_EQ(fs::canonical(obs.data_directory), fs::canonical(pg.data()));
  EXPECT_FALSE(obs.in_recovery);
  EXPECT_EQ(obs.wal_segment_size, bo::postgres::kDefaultWalSegmentSize);
  EXPECT_TRUE(obs.current_lsn);
  EXPECT_EQ(obs.current_timeline, 1u);
  EXPECT_LT(std::chrono::abs(obs.server_now - std::chrono::system_clock::now()), std::chrono::minutes(1));
  EXPECT_EQ(evaluate_archiving(obs).reason, "ArchiveModeOff");
}

TEST(ArchivingPostgres, AFailingArchiveCommandIsArchivingFailing) {
  // A stand-in named wal-g, so the command passes the wal-g rule and only its failure counts.
  LocalPostgres pg({"archive_mode=on", "archive_timeout=0"});
  const std::string walg = testing_support::write_file(pg.dir() / "wal-g", "#!/bin/sh\nexit 1\n");
  ::chmod(walg.c_str(), 0755);
  pg.sql("ALTER SYSTEM SET archive_command = '" + walg + " wal-push %p'");
  pg.sql("SELECT pg_reload_conf()");
  ASSERT_TRUE(eventually([&] { return pg.sql("SHOW archive_command").find("wal-push") != std::string::npos; }));
  pg.sql("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000)");
  const std::string switched = pg.sql("SELECT pg_walfile_name(pg_switch_wal())");
  bo::postgres::ArchiveObservation obs;
  ASSERT_TRUE(eventually([&] {
    obs = probe_archiving(pg.params());
    return obs.error.empty() && obs.failed_count > 0;
  }, std::chrono::seconds(60)))
      << obs.error << "\n" << pg.log();
  EXPECT_EQ(obs.last_failed_wal, switched);
  EXPECT_TRUE(obs.last_failed_time);
  EXPECT_EQ(obs.archived_count, 0);
  const auto c = evaluate_archiving(obs);
  EXPECT_EQ(c.reason, "ArchivingFailing") << c.message;
  EXPECT_NE(c.message.find(switched), std::string::npos) << c.message;
  EXPECT_EQ(c.message.find(kPassword), std::string::npos);
}

TEST(ArchivingPostgres, ASucceedingWalGIsHealthyAndTheSegmentIsArchivedThroughItsLsn) {
  LocalPostgres pg({"archive_mode=on", "archive_timeout=60"});
  fs::create_directories(pg.dir() / "archive");
  if (geteuid() == 0) (void)testing_support::run("chown nobody:nogroup " + (pg.dir() / "archive").string());
  const std::string walg = testing_support::write_file(
      pg.dir() / "wal-g", "#!/bin/sh\n[ \"$1\" = wal-push ] && cp \"$2\" " + (pg.dir() / "archive").string() + "/\n");
  ::chmod(walg.c_str(), 0755);
  pg.sql("ALTER SYSTEM SET archive_command = '" + walg + " wal-push %p'");
  pg.sql("SELECT pg_reload_conf()");
  ASSERT_TRUE(eventually([&] { return pg.sql("SHOW archive_command").find("wal-push") != std::string::npos; }));
  pg.sql("CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000)");
  const std::string lsn = pg.sql("SELECT pg_current_wal_lsn()");
  pg.sql("SELECT pg_switch_wal()");
  bo::postgres::ArchiveObservation obs;
  ASSERT_TRUE(eventually([&] {
    obs = probe_archiving(pg.params());
    return obs.error.empty() && obs.archived_count > 0;
  }, std::chrono::seconds(60)))
      << obs.error << "\n" << pg.log();
  EXPECT_EQ(obs.failed_count, 0);
  EXPECT_EQ(obs.archive_timeout_seconds, 60);
  const auto c = evaluate_archiving(obs);
  EXPECT_EQ(c.status, "True") << c.message;
  EXPECT_EQ(c.reason, "ArchivingHealthy");
  EXPECT_TRUE(bo::postgres::wal_archived_through(obs.last_archived_wal, 1, *bo::postgres::parse_lsn(lsn)))
      << obs.last_archived_wal << " vs " << lsn;
  EXPECT_TRUE(fs::exists(pg.dir() / "archive" / obs.last_archived_wal));
}

TEST(ArchivingPostgres, ARoleWithoutPgReadAllSettingsIsToldWhichGrantItNeeds) {
  LocalPostgres pg({"archive_mode=on"});
  pg.sql("CREATE ROLE prober LOGIN PASSWORD 'prober-pw'");
  auto obs = probe_archiving(pg.params("prober", "prober-pw"));
  EXPECT_NE(obs.error.find("GRANT pg_read_all_settings TO the role"), std::string::npos) << obs.error;
  EXPECT_EQ(obs.error.find("prober"), std::string::npos) << "the user name comes from the Secret: " << obs.error;
  EXPECT_EQ(evaluate_archiving(obs).reason, "DatabaseUnreachable");
  pg.sql("GRANT pg_read_all_settings TO prober");
  obs = probe_archiving(pg.params("prober", "prober-pw"));
  EXPECT_EQ(obs.error, "");
  EXPECT_EQ(obs.archive_mode, "on");
  EXPECT_FALSE(obs.data_directory.empty());
}

TEST(ArchivingPostgres, AWrongPasswordOrAClosedPortIsDatabaseUnreachableWithoutThePassword) {
  LocalPostgres pg({"archive_mode=on"});
  auto obs = probe_archiving(pg.params("postgres", "wrong-" + kPassword));
  EXPECT_NE(obs.error.find("password authentication failed"), std::string::npos) << obs.error;
  EXPECT_EQ(obs.error.find(kPassword), std::string::npos) << obs.error;
  EXPECT_EQ(obs.error.find("postgres\""), std::string::npos) << "the user name comes from the Secret: " << obs.error;
  EXPECT_EQ(evaluate_archiving(obs).reason, "DatabaseUnreachable");

  // A closed port that stays closed: bound here (so no other process gets it) and never listened on.
  const int held = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(held, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::getsockname(held, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  struct Close {
    int fd;
    ~Close() { ::close(fd); }
  } close_held{held};
  bo::postgres::ConnectionParams closed = pg.params();
  closed.port = ntohs(addr.sin_port);
  const auto start = std::chrono::steady_clock::now();
  obs = probe_archiving(closed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
  EXPECT_NE(obs.error.find("127.0.0.1:" + std::to_string(closed.port)), std::string::npos) << obs.error;
  EXPECT_EQ(obs.error.find(kPassword), std::string::npos) << obs.error;
  const auto c = evaluate_archiving(obs);
  EXPECT_EQ(c.status, "False");
  EXPECT_EQ(c.reason, "DatabaseUnreachable");
}

// The whole path in-process: the BackupPolicy controller against kube-local
// probes the real server with the policy's Secret and reports what it found,
// while Ready and the schedule go on regardless.
TEST(ArchivingPostgres, TheControllerReportsARealDatabasesArchivingWithoutGatingReady) {
  using nlohmann::json;
  namespace kr = bo::kube::resources;
  LocalPostgres pg({"archive_mode=off"});
  testing_support::KubeLocal server;
  auto r = server.kubectl("apply -f " + std::string(SOURCE_DIR) + "/crds/");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto client = server.client();
  const std::string ns = "archiving";
  for (const std::string& n : {ns, ns + "-verify"})
    ASSERT_TRUE(client->create(kr::kNamespaces, "", {{"metadata", {{"name", n}}}}));
  ASSERT_TRUE(client->create(kr::kPersistentVolumeClaims, ns, {{"metadata", {{"name", "supabase-db-data"}}}, {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
  ASSERT_TRUE(client->create(kr::kSecrets, ns,
                             {{"metadata", {{"name", "walg-storage"}}},
                              {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                                              {"WALG_AWS_SECRET_ACCESS_KEY", "x"}, {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
  ASSERT_TRUE(client->create(kr::kSecrets, ns,
                             {{"metadata", {{"name", "walg-encryption"}}}, {"stringData", {{"WALG_LIBSODIUM_KEY", "x"}}}}));
  ASSERT_TRUE(client->create(kr::kSecrets, ns,
                             {{"metadata", {{"name", "supabase-db"}}},
                              {"stringData", {{"username", "postgres"}, {"password", kPassword}}}}));
  ASSERT_TRUE(client->create(
      bo::reconcile::kBackupPolicies, ns,
      {{"apiVersion", "backup.si.dev/v1alpha1"},
       {"kind", "BackupPolicy"},
       {"metadata", {{"name", "db"}}},
       {"spec", {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "127.0.0.1"}, {"port", pg.port()}, {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
                 {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                              {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                 {"verification", {{"targetNamespace", ns + "-verify"}}}}}}));
  bo::FakeClock clock(std::chrono::system_clock::now());
  bo::kube::EventRecorder recorder(*client, clock);
  bo::metrics::Metrics metrics;
  bo::reconcile::Caches caches(*client, ns);
  bo::reconcile::BackupPolicyControllerOptions opts{ns, 1, "", std::chrono::milliseconds(200), {}};
  bo::reconcile::BackupPolicyController controller(*client, caches, clock, recorder, metrics, opts);
  caches.start();
  controller.start();
  auto policy = [&] {
    auto p = client->get(bo::reconcile::kBackupPolicies, ns, "db");
    return p ? *p : json::object();
  };
  auto condition = [&](const char* type) {
    const json conditions = policy().value("status", json::object()).value("conditions", json::array());
    const json* c = bo::reconcile::find_condition(conditions, type);
    return c ? *c : json::object();
  };
  ASSERT_TRUE(eventually([&] { return condition("ContinuousArchiving").value("reason", "") == "ArchiveModeOff"; }))
      << policy().dump(2);
  EXPECT_EQ(condition("ContinuousArchiving").value("status", ""), "False");
  EXPECT_EQ(condition("Ready").value("status", ""), "True") << "archiving never gates Ready";
  const json stored = policy();
  const json st = stored.value("status", json::object()).value("continuousArchiving", json::object());
  ASSERT_FALSE(st.empty()) << stored.dump(2);
  EXPECT_EQ(fs::canonical(st.value("dataDirectory", "")), fs::canonical(pg.data())) << st.dump();
  EXPECT_EQ(st.value("archiveMode", ""), "off");
  EXPECT_TRUE(st.contains("observedAt"));
  EXPECT_EQ(policy().dump().find(kPassword), std::string::npos);
  prometheus::TextSerializer ser;
  const std::string scrape = ser.Serialize(metrics.registry()->Collect());
  EXPECT_NE(scrape.find("backup_operator_continuous_archiving{namespace=\"" + ns + "\",policy=\"db\"} 0"), std::string::npos)
      << scrape;
  EXPECT_NE(scrape.find("backup_operator_wal_archive_failures{namespace=\"" + ns + "\",policy=\"db\"} 0"), std::string::npos);
  EXPECT_EQ(scrape.find(kPassword), std::string::npos);
  // Deleting the policy removes its series.
  ASSERT_TRUE(client->remove(bo::reconcile::kBackupPolicies, ns, "db", {"Background", "", ""}));
  ASSERT_TRUE(eventually([&] {
    return ser.Serialize(metrics.registry()->Collect()).find("backup_operator_continuous_archiving{namespace=\"" + ns) ==
           std::string::npos;
  }));
  controller.stop();
  caches.stop();
  recorder.flush();
}

}  // namespace
