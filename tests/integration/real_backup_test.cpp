// Real backups end to end: a real PostgreSQL 15 archives its WAL with the
// wal-g stand-in into s3rver (over TLS); its data directory is the policy's
// claim in kube-local's process kubelet; the operator's own scheduled Jobs
// (the real `run-job`, as the database's uid) take a full backup and deltas
// while rows go in between; a RestoreRequest's restore Job fetches one into
// a fresh claim; PostgreSQL started on it with the recovery settings the
// operator wrote has every row committed before the last archived WAL, and
// with pointInTime exactly the earlier ones. Only wal-g itself is a stand-in.
// And what goes wrong: a database that does not archive (every backup
// recorded not restorable, none successful), a data volume that mounts the
// wrong directory (wal-g's own refusal in BackupHealthy), and a backup Job
// killed while wal-g uploads (no half backup anywhere; the next one is whole).
#include <gtest/gtest.h>

#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <set>
#include <sstream>

#include "chart_operator.h"
#include "harness.h"
#include "reconcile/caches.h"
#include "reconcile/conditions.h"
#include "reconcile/restore_plan.h"
#include "support/postgres.h"

using namespace bo::kube;
using bo::reconcile::kBackupPolicies;
using bo::reconcile::kRestoreRequests;
using nlohmann::json;
using testing_support::Child;
using testing_support::eventually;
using testing_support::KubeLocal;
using testing_support::Postgres;
using testing_support::PostgresOptions;
namespace fs = std::filesystem;

namespace {

const std::string kCanary = "canary-real-backup-5d1c-0f9e";  // also the libsodium key: wal-g wants >= 25 bytes
const std::string kNs = "shop";
constexpr const char* kDatabaseImage = "postgres:15";
const Resource kStatefulSets{"apps", "v1", "statefulsets", "StatefulSet", true};

// A restored server must not push its own WAL into the store it came from.
PostgresOptions not_archiving() {
  PostgresOptions o;
  o.settings["archive_mode"] = "off";
  return o;
}

const json* by_id(const json& list, const std::string& id) {
  for (const auto& e : list)
    if (e.value("id", "") == id) return &e;
  return nullptr;
}

// A copy of the policy's condition of `type` (null when it has none).
json condition(const json& policy, const std::string& type) {
  const json status = policy.value("status", json::object());
  for (const auto& c : status.value("conditions", json::array()))
    if (c.value("type", "") == type) return c;
  return nullptr;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// argv of a process ("" entries for an unreadable or vanished one).
std::vector<std::string> cmdline(pid_t pid) {
  const std::string raw = slurp("/proc/" + std::to_string(pid) + "/cmdline");
  std::vector<std::string> out;
  for (size_t a = 0; a < raw.size();) {
    const size_t z = raw.find('\0', a);
    out.push_back(raw.substr(a, z == std::string::npos ? std::string::npos : z - a));
    if (z == std::string::npos) break;
    a = z + 1;
  }
  return out;
}

pid_t parent_of(pid_t pid) {
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');  // comm may hold spaces and parentheses
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  pid_t ppid = -1;
  rest >> state >> ppid;
  return ppid;
}

// The local ports of a process's TCP connections to `remote_port` (its
// sockets' inodes, looked up in its network namespace's tcp tables).
std::vector<int> client_ports(pid_t pid, int remote_port) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::set<std::string> inodes;
  std::error_code ec;
  for (const auto& fd : fs::directory_iterator(proc + "/fd", ec)) {
    const std::string target = fs::read_symlink(fd.path(), ec).string();
    if (!ec && target.starts_with("socket:[")) inodes.insert(target.substr(8, target.size() - 9));
  }
  std::vector<int> out;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::istringstream lines(slurp(proc + table));
    std::string line;
    std::getline(lines, line);  // header
    while (std::getline(lines, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, st, queues, timer, retr, uid, timeout, inode;
      f >> sl >> local >> remote >> st >> queues >> timer >> retr >> uid >> timeout >> inode;
      const auto port = [](const std::string& addr) { return std::stoi(addr.substr(addr.rfind(':') + 1), nullptr, 16); };
      if (inodes.count(inode) && local.find(':') != std::string::npos && remote.find(':') != std::string::npos &&
          port(remote) == remote_port)
        out.push_back(port(local));
    }
  }
  return out;
}

// Whether a process exists and is not a zombie.
bool running(pid_t pid) {
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

// The running `wal-g backup-push <pgdata>` processes.
std::vector<pid_t> backup_pushes(const fs::path& pgdata) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto argv = cmdline(std::stoi(name));
    if (argv.size() >= 3 && argv[1] == "backup-push" && argv.back() == pgdata.string()) out.push_back(std::stoi(name));
  }
  return out;
}

// The Suite shares the expensive parts (s3rver over TLS, kube-local with its
// process kubelet, the operator installed from the chart); each case has its
// own namespace with its own PostgreSQL (data directory = the namespace's
// claim "pgdata"), storage prefix s3://backups/<namespace>, Secrets and
// policy "db", so cases are independent and run in any order.
class RealBackups : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(testing_support::make_temp_dir("real-backups"));
    // The Jobs and the server run as nobody: they read the CA and the claims from here.
    fs::permissions(*dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                               fs::perms::others_read | fs::perms::others_exec);
    s3_ = new testing_support::S3rverTls(testing_support::start_s3rver_tls(*dir_, "backups"));
    s3_port_ = s3_->port;

    // The image's wal-g is the stand-in: first on the Jobs' PATH (and on the
    // restored servers', whose restore_command runs `wal-g wal-fetch`).
    const std::string walg_dir = fs::path(WALG_STANDIN_BIN).parent_path().string();
    setenv("PATH", (walg_dir + ":" + getenv("PATH")).c_str(), 1);
    // The database's image is Debian's PostgreSQL 15: a scratch instance's
    // container runs the operator's copied tools from its volume, and they
    // start the image's own `postgres` from its PATH.
    std::vector<std::string> args = {"--authorize", "--exec-image", std::string("si-dev/backup-operator:0.1.0=") + OPERATOR_BIN,
                                     "--exec-image-path", std::string(kDatabaseImage) + "=" + Postgres::kBinDir,
                                     "--volume-root", (*dir_ / "volumes").string(), "--exec-path", walg_dir};
    json exec_rules = json::array();
    for (const char* a : {"backup", "full-backup", "retain", "restore", "verify", "scratch", "restore-in-place", "check-database"})
      exec_rules.push_back({{"selector", std::string("backup.si.dev/action=") + a}, {"outcome", {{"exec", true}}}});
    // A database workload's pod: the image's `postgres` (for the in-place restore's StatefulSet).
    exec_rules.push_back({{"selector", "backup.si.dev/test-database=true"}, {"outcome", {{"exec", true}}}});
    args.insert(args.end(), {"--exec-image", std::string(kDatabaseImage) + "=" + Postgres::kBinDir + "/postgres"});
    args.insert(args.end(), {"--pod-rules", testing_support::write_file(*dir_ / "rules.json", exec_rules.dump())});
    server_ = new KubeLocal(args);
    const auto chart = testing_support::install_crds_and_chart(*server_, *dir_);
    // One scaled hour every 6 s: the hourly backup falls due every 6 s.
    operator_args_ = new std::vector<std::string>(chart.args({"--time-scale", "600", "--metrics-bind-address", "127.0.0.1:0"}));
    operator_ = new Child(*operator_args_, *dir_ / "operator.log");
    ASSERT_TRUE(testing_support::controller_started(*operator_, "backuppolicy")) << operator_->log();
    metrics_port_ = testing_support::listening_port(*operator_, "metrics");
    ASSERT_GT(metrics_port_, 0) << operator_->log();
    chart_ = new testing_support::ChartOperator(chart);
    ASSERT_TRUE(chart_->serve_webhook(*server_, *operator_)) << operator_->log();
  }
  static void TearDownTestSuite() {
    delete operator_;
    delete operator_args_;
    delete chart_;
    delete server_;
    delete s3_;
    fs::remove_all(*dir_);
    delete dir_;
  }
  void TearDown() override {
    // Other suites in this process choose their own storage.
    for (const auto& [k, v] : storage_env(kNs)) unsetenv(k.c_str());
  }

  static fs::path data_dir(const std::string& ns) { return *dir_ / "volumes" / ns / "pgdata"; }
  // Where s3rver keeps the objects under a namespace's prefix.
  static fs::path stored(const std::string& ns) { return *dir_ / "s3" / "backups" / ns; }

  // What the database's pod and the Jobs get from the storage Secret, as wal-g reads it.
  static std::map<std::string, std::string> storage_env(const std::string& ns) {
    return {{"WALG_S3_PREFIX", "s3://backups/" + ns}, {"AWS_ACCESS_KEY_ID", "S3RVER"}, {"AWS_SECRET_ACCESS_KEY", kCanary},
            {"AWS_ENDPOINT", "https://127.0.0.1:" + std::to_string(s3_port_)},
            {"WALG_S3_CA_CERT_FILE", (*dir_ / "ca.crt").string()}, {"AWS_S3_FORCE_PATH_STYLE", "true"},
            {"WALG_LIBSODIUM_KEY", kCanary}};  // the same encryption Secret as the Jobs'
  }
  static std::string env_prefix(const std::string& ns) {
    std::string out;
    for (const auto& [k, v] : storage_env(ns)) out += k + "=" + v + " ";
    return out;
  }

  // Archiving into the namespace's prefix with the stand-in's wal-push.
  static PostgresOptions archiving(const std::string& ns) {
    PostgresOptions o;
    o.archive_command = env_prefix(ns) + WALG_STANDIN_BIN + " wal-push %p";
    return o;
  }

  // A namespace with its database (initdb'd into its claim "pgdata") and the
  // Secrets a policy names: storage, encryption, database credentials.
  static std::unique_ptr<Postgres> open_site(const std::string& ns, const PostgresOptions& options) {
    auto db = std::make_unique<Postgres>(Postgres::init(data_dir(ns), options));
    auto admin = server_->client();
    EXPECT_TRUE(admin->create(resources::kNamespaces, "", {{"metadata", {{"name", ns}}}}));
    // The claim the policy names must exist before any backup Job runs (kube-local binds it to
    // <volume-root>/<ns>/pgdata, the database's data directory).
    EXPECT_TRUE(admin->create(resources::kPersistentVolumeClaims, ns,
                              {{"metadata", {{"name", "pgdata"}}},
                               {"spec", {{"accessModes", {"ReadWriteOnce"}},
                                         {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
    json storage = {{"WALG_S3_PREFIX", "s3://backups/" + ns}, {"WALG_AWS_ACCESS_KEY_ID", "S3RVER"},
                    {"WALG_AWS_SECRET_ACCESS_KEY", kCanary},
                    {"WALG_AWS_ENDPOINT", "https://127.0.0.1:" + std::to_string(s3_port_)},
                    {"WALG_S3_CA_CERT_FILE", (*dir_ / "ca.crt").string()}, {"AWS_S3_FORCE_PATH_STYLE", "true"}};
    EXPECT_TRUE(admin->create(resources::kSecrets, ns, {{"metadata", {{"name", "walg-storage"}}}, {"stringData", storage}}));
    EXPECT_TRUE(admin->create(resources::kSecrets, ns,
                              {{"metadata", {{"name", "walg-encryption"}}}, {"stringData", {{"WALG_LIBSODIUM_KEY", kCanary}}}}));
    const auto env = db->libpq_env();
    EXPECT_TRUE(admin->create(resources::kSecrets, ns,
                              {{"metadata", {{"name", "supabase-db"}}},
                               {"stringData", {{"username", env.at("PGUSER")}, {"password", kCanary}}}}));
    return db;
  }

  static json policy(const Postgres& db, const std::string& ns) {
    const auto env = db.libpq_env();
    uid_t uid = Postgres::drops_root() ? 65534 : getuid();
    gid_t gid = Postgres::drops_root() ? 65534 : getgid();
    return {{"metadata", {{"name", "db"}, {"namespace", ns}}},
            {"spec",
             {{"database",
               {{"host", env.at("PGHOST")},
                {"port", std::stoi(env.at("PGPORT"))},
                {"credentialsSecretRef", {{"name", "supabase-db"}}},
                // Mounted where the server has it (here: the claim's own directory).
                {"dataVolume", {{"claimName", "pgdata"}, {"mountPath", data_dir(ns).string()}}},
                {"runAsUser", uid},
                {"runAsGroup", gid},
                {"walWaitSeconds", 30}}},
              {"addons", {"supabase-walg"}},
              {"schedule", {{"backup", "0 * * * *"}, {"fullBackup", "0 0 1 1 *"}}},
              // Not scheduled: the tests verify on demand, into <ns>-verify.
              {"verification", {{"enabled", false}, {"targetNamespace", ns + "-verify"}, {"image", kDatabaseImage},
                                {"storageSecretRef", {{"name", "walg-read-only"}}}, {"keepFailedFor", "1h"}}},
              {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                           {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}}}}};
  }

  static json get_policy(Client& c, const std::string& ns) {
    auto p = c.get(kBackupPolicies, ns, "db");
    return p ? *p : json::object();
  }

  static json catalog(Client& c, const std::string& ns) {
    return get_policy(c, ns).value("status", json::object()).value("backups", json::array());
  }

  // What the cluster shows, for a failure message.
  static std::string cluster_state(const std::string& ns) {
    const std::string log = operator_->log();
    return server_->kubectl("get jobs,pods -n " + ns + " -o wide").output + "\n" +
           server_->kubectl("get backuppolicy db -n " + ns + " -o yaml").output + "\noperator log tail:\n" +
           (log.size() > 4000 ? log.substr(log.size() - 4000) : log);
  }

  // Waits until the catalog holds `n` backups (failing with what the cluster shows).
  static json wait_for_backups(Client& c, const std::string& ns, size_t n) {
    json list;
    EXPECT_TRUE(eventually([&] {
      list = catalog(c, ns);
      return list.size() >= n;
    }, std::chrono::seconds(120)))
        << cluster_state(ns);
    return list;
  }

  // `wal-g backup-list --json --detail` on a namespace's storage: the backup names.
  static std::set<std::string> listed_backups(const std::string& ns) {
    const auto r = testing_support::run("env " + env_prefix(ns) + WALG_STANDIN_BIN + " backup-list --json --detail");
    std::set<std::string> names;
    // Log lines (stderr) and the JSON line; with no backups wal-g logs "No backups found" and prints nothing.
    std::string json_line = "[]";
    std::istringstream lines(r.output);
    for (std::string line; std::getline(lines, line);)
      if (line.starts_with("[")) json_line = line;
    const json list = json::parse(json_line, nullptr, false);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_TRUE(list.is_array()) << r.output;
    if (list.is_array())
      for (const auto& b : list) names.insert(b.value("backup_name", ""));
    return names;
  }

  // The target namespace of a site's verifications: its own Secret with the
  // storage settings and the key (what a read-only Secret would hold).
  static void open_verify_target(const std::string& ns, const std::string& target) {
    auto admin = server_->client();
    EXPECT_TRUE(admin->create(resources::kNamespaces, "", {{"metadata", {{"name", target}}}}));
    json data = {{"WALG_S3_PREFIX", "s3://backups/" + ns}, {"WALG_AWS_ACCESS_KEY_ID", "S3RVER"},
                 {"WALG_AWS_SECRET_ACCESS_KEY", kCanary},
                 {"WALG_AWS_ENDPOINT", "https://127.0.0.1:" + std::to_string(s3_port_)},
                 {"WALG_S3_CA_CERT_FILE", (*dir_ / "ca.crt").string()}, {"AWS_S3_FORCE_PATH_STYLE", "true"},
                 {"WALG_LIBSODIUM_KEY", kCanary}};
    EXPECT_TRUE(admin->create(resources::kSecrets, target, {{"metadata", {{"name", "walg-read-only"}}}, {"stringData", data}}));
  }
  // Supabase's own schemas, as the supabase-self-hosted profile's built-in check reads them.
  static void supabase_schemas(const Postgres& db) {
    db.query("CREATE SCHEMA auth; CREATE TABLE auth.users (id uuid PRIMARY KEY, email text);"
             "CREATE SCHEMA storage; CREATE TABLE storage.buckets (id text PRIMARY KEY, name text);"
             "CREATE TABLE storage.objects (id uuid PRIMARY KEY, bucket_id text REFERENCES storage.buckets (id), name text);"
             "INSERT INTO auth.users SELECT gen_random_uuid(), 'u' || g || '@example.org' FROM generate_series(1, 3) g;"
             "INSERT INTO storage.buckets VALUES ('avatars', 'avatars')");
  }
  // A verification (as the policy creates it: owned by the policy) of one
  // backup into a scratch instance in `target`; returns the final request.
  static json verify(const std::string& ns, const std::string& target, const std::string& name, const std::string& id,
                     const std::string& checksum, const std::string& pit, const json& checks,
                     const std::string& purpose = "verification") {
    auto admin = server_->client();
    const json pol = get_policy(*admin, ns);
    json spec = {{"policyRef", {{"name", "db"}}}, {"backupId", id}, {"purpose", purpose}, {"targetNamespace", target},
                 {"validation", checks}};
    if (!checksum.empty()) spec["checksum"] = checksum;
    if (!pit.empty()) spec["pointInTime"] = pit;
    json meta = {{"name", name}};
    if (purpose == "verification")
      meta["ownerReferences"] = {{{"apiVersion", "backup.si.dev/v1alpha1"}, {"kind", "BackupPolicy"}, {"name", "db"},
                                  {"uid", pol["metadata"]["uid"]}, {"controller", true}}};
    EXPECT_TRUE(admin->create(kRestoreRequests, ns, {{"metadata", meta}, {"spec", spec}}));
    json rr;
    EXPECT_TRUE(eventually([&] {
      auto got = admin->get(kRestoreRequests, ns, name);
      if (got) rr = *got;
      const std::string phase = rr.value("status", json::object()).value("phase", "");
      return phase == "Succeeded" || phase == "Failed" || phase == "Blocked";
    }, std::chrono::seconds(180)))
        << rr.dump(2) << "\n" << server_->kubectl("get jobs,pods,pvc -n " + target + " -o yaml").output;
    return rr;
  }
  static std::string scrape() {
    return testing_support::run("curl -sf http://127.0.0.1:" + std::to_string(metrics_port_) + "/metrics").output;
  }

  static fs::path* dir_;
  static int metrics_port_;
  static int s3_port_;
  static testing_support::S3rverTls* s3_;
  static KubeLocal* server_;
  static Child* operator_;
  static std::vector<std::string>* operator_args_;
  static testing_support::ChartOperator* chart_;
};

fs::path* RealBackups::dir_ = nullptr;
int RealBackups::metrics_port_ = 0;
int RealBackups::s3_port_ = 0;
testing_support::S3rverTls* RealBackups::s3_ = nullptr;
KubeLocal* RealBackups::server_ = nullptr;
Child* RealBackups::operator_ = nullptr;
std::vector<std::string>* RealBackups::operator_args_ = nullptr;
testing_support::ChartOperator* RealBackups::chart_ = nullptr;

}  // namespace

TEST_F(RealBackups, ScheduledFullAndDeltasRestoreEveryArchivedRowAndPointInTimeStopsBetweenBatches) {
  auto admin = server_->client();
  auto db = open_site(kNs, archiving(kNs));
  // For restore_command (`wal-g wal-fetch`) in the restored servers, which inherit this environment.
  for (const auto& [k, v] : storage_env(kNs)) setenv(k.c_str(), v.c_str(), 1);
  supabase_schemas(*db);
  db->query("CREATE TABLE orders (id serial PRIMARY KEY, batch int NOT NULL, at timestamptz DEFAULT now())");
  auto insert_batch = [&](int batch, int rows) {
    db->query("INSERT INTO orders (batch) SELECT " + std::to_string(batch) + " FROM generate_series(1, " +
               std::to_string(rows) + ")");
  };
  insert_batch(1, 100);
  ASSERT_TRUE(admin->create(kBackupPolicies, kNs, policy(*db, kNs)));
  json list = wait_for_backups(*admin, kNs, 1);
  ASSERT_GE(list.size(), 1u);
  const std::string full = list.back()["id"];  // oldest entry (the catalog is newest first)
  EXPECT_EQ(list.back()["type"], "full") << list.dump(2);
  EXPECT_EQ(list.back()["restorable"], true) << list.dump(2);

  insert_batch(2, 50);
  const std::string between = db->value("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
  // recovery_target_time stops before the first commit after it: keep batch 3 clearly later.
  ASSERT_TRUE(eventually([&] { return db->value("SELECT now() > '" + between + "'::timestamptz + interval '1 second'") == "t"; },
                         std::chrono::seconds(5)));
  list = wait_for_backups(*admin, kNs, list.size() + 1);
  insert_batch(3, 25);
  // Every row committed so far reaches storage: switch segments and wait for the archiver.
  const std::string last_wal = db->value("SELECT pg_walfile_name(pg_switch_wal())");
  ASSERT_TRUE(eventually([&] { return db->value("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= last_wal; },
                         std::chrono::seconds(30)))
      << db->log();
  list = wait_for_backups(*admin, kNs, list.size() + 1);

  // The newest backup is a delta chained on what came before, as wal-g's sentinel says.
  const json newest = list.front();
  EXPECT_EQ(newest["type"], "delta") << list.dump(2);
  EXPECT_EQ(newest["full"], full) << list.dump(2);
  ASSERT_TRUE(newest.contains("base"));
  EXPECT_TRUE(by_id(list, newest["base"].get<std::string>())) << "a delta's base is in the catalog: " << list.dump(2);
  EXPECT_GE(newest.value("deltaCount", 0), 1);
  EXPECT_EQ(newest["restorable"], true);
  auto p = admin->get(kBackupPolicies, kNs, "db");
  ASSERT_TRUE(p);
  EXPECT_FALSE((*p)["status"]["lastSuccessfulBackup"].is_null());
  // Stop the schedule: the restores below compare against a fixed history.
  ASSERT_TRUE(admin->patch(kBackupPolicies, kNs, "db", PatchType::kMerge, {{"spec", {{"suspend", true}}}}));

  // 1. The verification of the newest delta: a scratch PostgreSQL (Debian's
  // binaries as the database image, run by kube-local's process kubelet from
  // the tools the operator's init container copied) in shop-verify recovers
  // it, and the built-in and SQL checks pass over its Unix socket.
  open_verify_target(kNs, "shop-verify");
  const json all = verify(kNs, "shop-verify", "verify-all", newest["id"], newest["checksum"], "",
                          {{{"name", "orders"}, {"sql", "SELECT count(*) FROM orders"}, {"expect", "175"}},
                           {{"name", "batch-3"}, {"sql", "SELECT count(*) FROM orders WHERE batch = 3"}, {"expect", "25"}}});
  ASSERT_EQ(all["status"]["phase"], "Succeeded") << all.dump(2);
  std::map<std::string, json> checks;
  for (const auto& c : all["status"]["validation"]) checks[c["name"]] = c;
  for (const char* name : {"recovered", "recovery-target", "system-identifier", "supabase-schemas", "orders", "batch-3"}) {
    EXPECT_EQ(checks[name].value("passed", false), true) << name << ": " << all.dump(2);
  }
  EXPECT_EQ(checks["orders"]["output"], "175");
  EXPECT_EQ(checks["orders"]["query"], "SELECT count(*) FROM orders");
  EXPECT_NE(checks["system-identifier"]["output"].get<std::string>().find(db->value("SELECT system_identifier FROM pg_control_system()")),
            std::string::npos)
      << checks["system-identifier"];
  EXPECT_GT(all["status"]["recovery"]["seconds"].get<double>(), 0.0);
  // Nothing of it is left, and the catalog says the backup is verified.
  EXPECT_TRUE(eventually([&] {
    return !admin->get(resources::kPersistentVolumeClaims, "shop-verify", "verify-all-scratch") &&
           !admin->get(resources::kNetworkPolicies, "shop-verify", "verify-all-scratch") &&
           !admin->get(resources::kJobs, "shop-verify", "verify-all-scratch");
  }, std::chrono::seconds(30)));
  EXPECT_TRUE(eventually([&] {
    const json now = catalog(*admin, kNs);
    const json* e = by_id(now, newest["id"]);
    return e && e->value("verified", false);
  })) << catalog(*admin, kNs).dump(2);
  EXPECT_TRUE(eventually([&] {
    return scrape().find("backup_operator_restore_recovery_seconds{namespace=\"shop\",policy=\"db\",purpose=\"verification\"}") !=
           std::string::npos;
  }));

  // 2. Point in time, in the scratch instance: batches 1 and 2, not 3.
  const json pit = verify(kNs, "shop-verify", "verify-pit", full, "", between,
                          {{{"name", "orders"}, {"sql", "SELECT count(*) FROM orders"}, {"expect", "150"}}});
  EXPECT_EQ(pit["status"]["phase"], "Succeeded") << pit.dump(2);

  // 3. A drill of "latest" (now the verified delta) with a SQL check, by hand.
  const json drill = verify(kNs, "shop-verify", "drill", "latest", "", "",
                            {{{"name", "buckets"}, {"sql", "SELECT count(*) FROM storage.buckets"}, {"expect", "1"}}},
                            "drill");
  EXPECT_EQ(drill["status"]["phase"], "Succeeded") << drill.dump(2);
  EXPECT_EQ(drill["status"]["backup"]["id"], newest["id"]);

  // 4. A restore of the verified delta into a fresh claim, then PostgreSQL on it.
  {
    const std::string name = "restore-all";
    json spec = {{"policyRef", {{"name", "db"}}}, {"backupId", newest["id"]},
                 {"target", {{"dataVolume", {{"claimName", name}, {"mountPath", "/var/lib/postgresql/data"}}}}}};
    ASSERT_TRUE(admin->create(kRestoreRequests, kNs, {{"metadata", {{"name", name}}}, {"spec", spec}}));
    const fs::path target = *dir_ / "volumes" / kNs / name;
    EXPECT_TRUE(eventually([&] {
      auto job = admin->get(resources::kJobs, kNs, name + "-restore");
      if (!job) return false;
      for (const auto& c : (*job).value("status", json::object()).value("conditions", json::array()))
        if (c.value("type", "") == "Complete" && c.value("status", "") == "True") return true;
      return false;
    }, std::chrono::seconds(120)))
        << server_->kubectl("get restorerequests,jobs,pods -n shop -o yaml").output;
    // Its checks against a running target are not what this part is about: the request goes.
    {
      const auto removed = admin->remove(kRestoreRequests, kNs, name);
      EXPECT_TRUE(removed) << (removed ? std::string() : removed.error().str()) << "\n"
                           << server_->kubectl("get restorerequest " + name + " -n shop -o yaml").output;
    }
    EXPECT_TRUE(eventually([&] { return !admin->get(kRestoreRequests, kNs, name); }, std::chrono::seconds(30)));
    ASSERT_TRUE(fs::exists(target / "recovery.signal"));
    auto restored = Postgres::start_existing(target, not_archiving());
    EXPECT_EQ(restored.value("SELECT count(*) FROM orders"), "175");
    EXPECT_EQ(restored.value("SELECT count(*) FROM orders WHERE batch = 3"), "25");
  }

  // The storage key and the database password never show.
  for (const char* what : {"jobs", "pods", "backuppolicies", "restorerequests", "events"}) {
    auto out = server_->kubectl(std::string("get ") + what + " -n shop -o json");
    EXPECT_EQ(out.output.find(kCanary), std::string::npos) << what;
  }
  EXPECT_EQ(operator_->log().find(kCanary), std::string::npos);
}

// archive_mode = off: the probe says so (ContinuousArchiving), and since
// archiving is reported, never gating the Jobs, backups still run; but their
// WAL never reaches storage, so each is recorded restorable: false, fails its
// run (BackupNotRestorable) and never becomes lastSuccessfulBackup.
TEST_F(RealBackups, ArchivingOffRecordsEveryBackupNotRestorableAndNoneSuccessful) {
  const std::string ns = "archive-off";
  auto admin = server_->client();
  auto db = open_site(ns, PostgresOptions{});  // no archive_command: archive_mode stays off
  ASSERT_EQ(db->value("SHOW archive_mode"), "off");
  db->query("CREATE TABLE orders (id serial PRIMARY KEY)");
  db->query("INSERT INTO orders SELECT FROM generate_series(1, 100)");
  json p = policy(*db, ns);
  p["spec"]["database"]["walWaitSeconds"] = 1;  // the WAL never comes: do not wait long for it
  p["spec"]["jobTemplate"] = {{"backoffLimit", 0}};  // one attempt per run: a retry would fail the same way
  ASSERT_TRUE(admin->create(kBackupPolicies, ns, p));

  // Two backup runs recorded; at no point is any backup successful or restorable.
  json seen_successful, list;
  EXPECT_TRUE(eventually([&] {
    const json pol = get_policy(*admin, ns);
    const json st = pol.value("status", json::object());
    if (st.contains("lastSuccessfulBackup")) seen_successful = st["lastSuccessfulBackup"];
    list = st.value("backups", json::array());
    for (const auto& e : list)
      if (e.value("restorable", true)) seen_successful = e;
    const json ca = condition(pol, "ContinuousArchiving");
    return list.size() >= 2 && ca.is_object() && ca["reason"] != "ProbePending";
  }, std::chrono::seconds(180)))  // generous for sanitizer builds
      << cluster_state(ns);
  EXPECT_TRUE(seen_successful.is_null()) << seen_successful.dump(2) << "\n" << cluster_state(ns);
  const json pol = get_policy(*admin, ns);
  for (const auto& e : list) {
    EXPECT_EQ(e["restorable"], false) << list.dump(2);
    // Why: the Job fetched back the WAL the backup needs and found none.
    EXPECT_NE(e.value("notRestorableReason", "").find("is not in storage after 1s"), std::string::npos) << list.dump(2);
  }
  EXPECT_FALSE(pol["status"].contains("lastSuccessfulBackup")) << pol.dump(2);

  const json ca = condition(pol, "ContinuousArchiving");
  ASSERT_TRUE(ca.is_object()) << pol.dump(2);
  EXPECT_EQ(ca["status"], "False") << pol.dump(2);
  EXPECT_EQ(ca["reason"], "ArchiveModeOff") << pol.dump(2);
  EXPECT_NE(ca["message"].get<std::string>().find("archive_mode is 'off'"), std::string::npos) << pol.dump(2);

  const json health = condition(pol, "BackupHealthy");
  ASSERT_TRUE(health.is_object()) << pol.dump(2);
  EXPECT_EQ(health["status"], "False") << pol.dump(2);
  EXPECT_EQ(health["reason"], "BackupFailed") << pol.dump(2);
  EXPECT_NE(health["message"].get<std::string>().find("BackupNotRestorable: backup "), std::string::npos) << pol.dump(2);
  int failed_runs = 0;
  for (const auto& r : pol["status"].value("recentRuns", json::array()))
    if (r.value("action", "") == "backup") {
      EXPECT_EQ(r["result"], "Failed") << pol.dump(2);
      ++failed_runs;
    }
  EXPECT_GE(failed_runs, 2) << pol.dump(2);
  // Nothing was archived into this namespace's prefix.
  EXPECT_FALSE(fs::exists(stored(ns) / "wal_005")) << "archive_mode off archives nothing";
}

// A data volume that mounts the wrong directory (subPath: the data
// directory's base/, which holds the relations but no PG_VERSION and no
// global/pg_control): wal-g refuses it, the Job fails, BackupHealthy carries
// wal-g's own words, and nothing enters the catalog.
TEST_F(RealBackups, WrongDataPathFailsTheBackupWithWalgsOwnMessage) {
  const std::string ns = "wrong-path";
  auto admin = server_->client();
  auto db = open_site(ns, archiving(ns));
  json p = policy(*db, ns);
  p["spec"]["database"]["dataVolume"]["subPath"] = "base";
  p["spec"]["jobTemplate"] = {{"backoffLimit", 0}};  // one attempt: the failure is the answer
  ASSERT_TRUE(admin->create(kBackupPolicies, ns, p));

  json pol;
  ASSERT_TRUE(eventually([&] {
    pol = get_policy(*admin, ns);
    const json c = condition(pol, "BackupHealthy");
    return c.is_object() && c["status"] == "False";
  }, std::chrono::seconds(60)))
      << cluster_state(ns);
  const json health = condition(pol, "BackupHealthy");
  const std::string message = health["message"];
  EXPECT_EQ(health["reason"], "BackupFailed") << pol.dump(2);
  // Not the planner's own DataDirectoryMismatch (mountPath is the server's
  // data_directory): wal-g looked at what is mounted there and refused it.
  // kube-local's process kubelet has no mount namespace, so the stand-in sees
  // the claim's base/ under its own path and answers with wal-g's first check
  // (backup_push_handler.go, handleBackupPushLocal); in a container it is the
  // second ("PgControl file not found"). Either is wal-g's refusal of the path.
  EXPECT_NE(message.find("wal-g backup-push failed (exit 1): "), std::string::npos) << pol.dump(2);
  EXPECT_NE(message.find("ERROR: Data directory from command line '" + (data_dir(ns) / "base").string() +
                         "' is not the same as Postgres' one '" + fs::weakly_canonical(data_dir(ns)).string() + "'"),
            std::string::npos)
      << pol.dump(2);
  EXPECT_TRUE(pol["status"].value("backups", json::array()).empty()) << pol.dump(2);
  EXPECT_FALSE(pol["status"].contains("lastSuccessfulBackup")) << pol.dump(2);
  EXPECT_TRUE(listed_backups(ns).empty());
  EXPECT_FALSE(fs::exists(stored(ns) / "basebackups_005")) << "nothing was uploaded";
  auto events = server_->kubectl("get events -n " + ns + " -o json");
  EXPECT_NE(events.output.find("BackupFailed"), std::string::npos) << events.output;
}

// A backup Job killed (SIGKILL, its run-job and wal-g, as a container dies)
// while wal-g uploads a big delta: the objects it had uploaded stay in
// storage, but without a stop sentinel they are no backup: not in
// `wal-g backup-list`, not in the catalog; PostgreSQL ended the backup with
// the session; the next scheduled backup succeeds and chains on the last
// whole backup, never on the half one.
TEST_F(RealBackups, KilledMidUploadLeavesNoHalfBackupAndTheNextBackupIsWhole) {
  const std::string ns = "killed";
  auto admin = server_->client();
  auto db = open_site(ns, archiving(ns));
  db->query("CREATE TABLE ballast (id int PRIMARY KEY, payload bytea)");
  db->query("ALTER TABLE ballast ALTER COLUMN payload SET STORAGE EXTERNAL");  // stored as is, never pglz'd
  json p = policy(*db, ns);
  p["spec"]["jobTemplate"] = {{"backoffLimit", 0}};  // the killed Job fails; no retry stands in for the next slot
  ASSERT_TRUE(admin->create(kBackupPolicies, ns, p));

  // 1. A whole (small) full backup, then no more runs while the ballast goes in.
  json list = wait_for_backups(*admin, ns, 1);
  ASSERT_FALSE(list.empty());
  ASSERT_TRUE(admin->patch(kBackupPolicies, ns, "db", PatchType::kMerge, {{"spec", {{"suspend", true}}}}));
  ASSERT_TRUE(eventually([&] {
    auto jobs = admin->list(resources::kJobs, ns);
    if (!jobs) return false;
    for (const auto& j : (*jobs)["items"])
      if (!j.value("status", json::object()).contains("completionTime") &&
          j.value("status", json::object()).value("failed", 0) == 0)
        return false;
    return true;
  }, std::chrono::seconds(60)))
      << cluster_state(ns);
  list = catalog(*admin, ns);
  std::set<std::string> whole;
  for (const auto& e : list) {
    ASSERT_EQ(e["restorable"], true) << list.dump(2);
    whole.insert(e["id"].get<std::string>());
  }

  // 2. Incompressible ballast, so the next delta uploads for a while: one
  // random MiB per row, in rows far apart for lz4's 64 KiB window.
  const auto seed = std::random_device{}();
  RecordProperty("ballast_seed", std::to_string(seed));
  std::cout << "ballast seed " << seed << std::endl;
  std::mt19937_64 rng(seed);
  std::string hex;
  hex.reserve(2u << 20);
  for (size_t i = 0; i < (1u << 20) / 8; ++i) {
    const uint64_t v = rng();
    for (int b = 0; b < 8; ++b) {
      const unsigned c = (v >> (8 * b)) & 0xff;
      hex += "0123456789abcdef"[c >> 4];
      hex += "0123456789abcdef"[c & 15];
    }
  }
  db->query("INSERT INTO ballast SELECT g, decode('" + hex + "', 'hex') FROM generate_series(1, 256) g");
  ASSERT_TRUE(admin->patch(kBackupPolicies, ns, "db", PatchType::kMerge, {{"spec", {{"suspend", false}}}}));

  // 3. Mid-upload: a tar partition of a new backup is arriving in s3rver
  // (its object file grows; s3rver writes the metadata once the body is in)
  // and the backup has no stop sentinel.
  std::string half;
  const fs::path bb = stored(ns) / "basebackups_005";
  auto uploading = [&]() -> std::string {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(bb, ec)) {
      const std::string name = e.path().filename().string();
      if (!e.is_directory(ec) || whole.count(name)) continue;
      const fs::path part = e.path() / "tar_partitions" / "part_1.tar.lz4._S3rver_object";
      if (fs::exists(part, ec) && !fs::exists(e.path() / "tar_partitions" / "part_1.tar.lz4._S3rver_metadata.json", ec) &&
          !fs::exists(bb / (name + "_backup_stop_sentinel.json._S3rver_object"), ec))
        return name;
    }
    return "";
  };
  ASSERT_TRUE(eventually([&] { return !(half = uploading()).empty(); }, std::chrono::seconds(60),
                         std::chrono::milliseconds(2)))
      << cluster_state(ns);
  const auto pushes = backup_pushes(data_dir(ns));
  ASSERT_EQ(pushes.size(), 1u) << "one wal-g backup-push of " << data_dir(ns);
  const pid_t walg = pushes[0];
  const pid_t job = parent_of(walg);
  const auto job_argv = cmdline(job);
  ASSERT_TRUE(std::find(job_argv.begin(), job_argv.end(), "run-job") != job_argv.end())
      << "wal-g's parent is the Job's run-job: " << testing::PrintToString(job_argv);
  // The Pod (its name is the process's HOSTNAME) and the server session in backup mode.
  std::string pod;
  {
    const std::string env = std::string(1, '\0') + slurp("/proc/" + std::to_string(job) + "/environ");
    const auto at = env.find(std::string("\0HOSTNAME=", 10));
    if (at != std::string::npos) pod = env.substr(at + 10, env.find('\0', at + 10) - at - 10);
  }
  // wal-g's session (it runs pg_backup_start, then the copy, then pg_backup_stop on one connection).
  const auto ports = client_ports(walg, db->port());
  ASSERT_EQ(ports.size(), 1u) << "wal-g has one connection to the server";
  const std::string backend =
      db->value("SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_stat_activity WHERE client_port = " +
                std::to_string(ports[0]));
  // The stand-in's work directory (its tar partition is open for the upload):
  // a killed process leaves it behind, so the test removes it.
  fs::path work;
  {
    std::error_code ec;
    for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(walg) + "/fd", ec)) {
      const fs::path target = fs::read_symlink(fd.path(), ec);
      if (!ec && target.parent_path().filename().string().starts_with("walg-standin-")) work = target.parent_path();
    }
  }
  ASSERT_EQ(::kill(job, SIGKILL), 0);
  ASSERT_EQ(::kill(walg, SIGKILL), 0);
  if (!work.empty()) {
    // Gone once the process is (it may still be closing its files).
    EXPECT_TRUE(eventually([&] { return !running(walg); }));
    std::error_code ec;
    fs::remove_all(work, ec);
  }
  ASSERT_FALSE(backend.empty()) << "wal-g's session is in pg_stat_activity";
  ASSERT_EQ(backend.find(','), std::string::npos) << backend;
  ASSERT_FALSE(pod.empty());
  auto pod_obj = admin->get(resources::kPods, ns, pod);
  ASSERT_TRUE(pod_obj) << pod;
  const std::string killed_job = (*pod_obj)["metadata"]["ownerReferences"][0]["name"];
  std::cout << "killed Job " << killed_job << " while it uploaded " << half << std::endl;

  // 4. The run fails; PostgreSQL is out of backup mode.
  json pol;
  EXPECT_TRUE(eventually([&] {
    pol = get_policy(*admin, ns);
    for (const auto& r : pol.value("status", json::object()).value("recentRuns", json::array()))
      if (r.value("job", "") == killed_job) return r.value("result", "") == "Failed";
    return false;
  }, std::chrono::seconds(60)))
      << cluster_state(ns);
  EXPECT_TRUE(eventually([&] {
    return db->value("SELECT count(*) FROM pg_stat_activity WHERE pid = " + backend) == "0";
  }, std::chrono::seconds(30)))
      << "the killed wal-g's session (pid " << backend << ") is gone, and with it its backup";
  // A backup starts and stops again (PostgreSQL 15 has no pg_is_in_backup(); a
  // session that died in backup mode had its backup aborted on exit).
  EXPECT_NO_THROW(db->query("SELECT pg_backup_start('after-kill', true); SELECT lsn FROM pg_backup_stop(false)"));

  // 5. Whatever the half backup left in storage (s3rver keeps the part of
  // an aborted PUT that it wrote; S3 would keep nothing), it is no backup.
  EXPECT_FALSE(fs::exists(bb / (half + "_backup_stop_sentinel.json._S3rver_object")));
  auto listed = listed_backups(ns);
  EXPECT_FALSE(listed.count(half)) << half;
  for (const auto& id : whole) EXPECT_TRUE(listed.count(id)) << id;
  EXPECT_FALSE(by_id(catalog(*admin, ns), half)) << catalog(*admin, ns).dump(2);

  // 6. The next scheduled backup is whole, restorable, and chains on a whole backup.
  json next;
  ASSERT_TRUE(eventually([&] {
    for (const auto& e : catalog(*admin, ns))
      if (!whole.count(e.value("id", ""))) {
        next = e;
        return true;
      }
    return false;
  }, std::chrono::seconds(120)))
      << cluster_state(ns);
  list = catalog(*admin, ns);
  EXPECT_NE(next["id"], half) << list.dump(2);
  EXPECT_FALSE(by_id(list, half)) << list.dump(2);
  EXPECT_EQ(next["restorable"], true) << list.dump(2);
  EXPECT_EQ(next["type"], "delta") << list.dump(2);
  ASSERT_TRUE(next.contains("base")) << list.dump(2);
  EXPECT_TRUE(whole.count(next["base"].get<std::string>())) << "based on a whole backup, not " << half << ": "
                                                           << list.dump(2);
  EXPECT_FALSE(next["id"].get<std::string>().ends_with("_D_" + half.substr(5, 24))) << list.dump(2);
  pol = get_policy(*admin, ns);
  EXPECT_EQ(pol["status"]["lastSuccessfulBackup"]["id"], next["id"]) << pol.dump(2);
  listed = listed_backups(ns);
  EXPECT_TRUE(listed.count(next["id"].get<std::string>()));
  EXPECT_FALSE(listed.count(half));
}

// One stored file of a real backup corrupted (bytes flipped in the middle of
// its encrypted tar partition): the verification's fetch fails naming it,
// the request is Failed with RecoveryFailed and keeps its scratch instance,
// the policy's Verified turns False, and the series the VerificationFailed
// alert selects (no `for`: it fires on the next evaluation) is on /metrics.
TEST_F(RealBackups, ACorruptedBackupFailsVerificationSaysWhereAndTurnsVerifiedFalse) {
  const std::string ns = "corrupt";
  auto admin = server_->client();
  auto db = open_site(ns, archiving(ns));
  supabase_schemas(*db);
  db->query("CREATE TABLE orders (id serial PRIMARY KEY)");
  db->query("INSERT INTO orders SELECT FROM generate_series(1, 100)");
  json p = policy(*db, ns);
  // Verification on, so Verified judges it; its yearly slot never comes in this test (this one is by hand).
  p["spec"]["verification"]["enabled"] = true;
  p["spec"]["verification"]["schedule"] = "0 0 1 1 *";
  ASSERT_TRUE(admin->create(kBackupPolicies, ns, p));
  const json list = wait_for_backups(*admin, ns, 1);
  ASSERT_FALSE(list.empty());
  ASSERT_TRUE(admin->patch(kBackupPolicies, ns, "db", PatchType::kMerge, {{"spec", {{"suspend", true}}}}));
  const json backup = list.back();
  const std::string id = backup["id"];
  ASSERT_EQ(backup["restorable"], true) << list.dump(2);

  const fs::path part = stored(ns) / "basebackups_005" / id / "tar_partitions" / "part_1.tar.lz4._S3rver_object";
  ASSERT_TRUE(fs::exists(part)) << part;
  {
    std::fstream f(part, std::ios::in | std::ios::out | std::ios::binary);
    const auto size = static_cast<std::streamoff>(fs::file_size(part));
    ASSERT_GT(size, 64);
    f.seekg(size / 2);
    char bytes[16];
    f.read(bytes, sizeof bytes);
    for (char& b : bytes) b = static_cast<char>(~b);
    f.seekp(size / 2);
    f.write(bytes, sizeof bytes);
    ASSERT_TRUE(f.good());
  }

  open_verify_target(ns, ns + "-verify");
  const json rr = verify(ns, ns + "-verify", "verify-corrupt", id, backup["checksum"], "",
                         {{{"name", "orders"}, {"sql", "SELECT count(*) FROM orders"}, {"expect", "100"}}});
  ASSERT_EQ(rr["status"]["phase"], "Failed") << rr.dump(2);
  json validated;
  for (const auto& c : rr["status"]["conditions"])
    if (c["type"] == "Validated") validated = c;
  EXPECT_EQ(validated["reason"], "RecoveryFailed") << rr.dump(2);
  const std::string message = rr["status"]["message"];
  EXPECT_NE(message.find("FetchFailed"), std::string::npos) << message;
  EXPECT_NE(message.find("part_1.tar.lz4"), std::string::npos) << message;
  // Kept for keepFailedFor, so someone can look.
  EXPECT_TRUE(admin->get(resources::kPersistentVolumeClaims, ns + "-verify", "verify-corrupt-scratch"));

  json verified;
  EXPECT_TRUE(eventually([&] {
    verified = condition(get_policy(*admin, ns), "Verified");
    return verified.is_object() && verified["status"] == "False" && verified["reason"] == "VerificationFailed";
  })) << verified;
  EXPECT_NE(verified["message"].get<std::string>().find("verify-corrupt"), std::string::npos) << verified;
  std::string metrics;
  EXPECT_TRUE(eventually([&] {
    metrics = scrape();
    return metrics.find("backup_operator_policy_condition{namespace=\"corrupt\",policy=\"db\",status=\"False\",type=\"Verified\"} 1") !=
           std::string::npos;
  })) << metrics.substr(0, 2000);
  const json catalog_now = catalog(*admin, ns);
  const json* entry = by_id(catalog_now, id);
  ASSERT_TRUE(entry);
  EXPECT_FALSE(entry->value("verified", false)) << catalog_now.dump(2);
}

// The in-place restore, end to end: the database is a StatefulSet whose pod
// runs PostgreSQL 15 (kube-local's process kubelet, the image's `postgres`)
// on claim "pgdata" (data directory pgdata/ inside it). After a verified
// backup, a DROP TABLE; a RestoreRequest into the policy's own namespace
// freezes the namespace, scales the StatefulSet to 0 and waits for its pod to
// stop, restores into the claim (the current data moved aside beside it),
// starts it again and checks the running server; the freeze is there until
// the checks passed, and gone after; the table is back.
TEST_F(RealBackups, InPlaceRestoreAfterDropTableBringsTheTableBackAndTheWorkloadUpFrozenUntilTheChecksPass) {
  const std::string ns = "inplace";
  auto admin = server_->client();
  // The claim's directory holds the data directory one level down, so the
  // current one can be moved aside on the same volume.
  const fs::path claim_dir = data_dir(ns), pgdata = claim_dir / "pgdata";
  auto db = open_site(ns, archiving(ns));  // initdb'd at the claim's root: moved below, then run by kube-local
  supabase_schemas(*db);
  db->query("CREATE TABLE orders (id serial PRIMARY KEY, item text)");
  db->query("INSERT INTO orders (item) SELECT 'item-' || g FROM generate_series(1, 120) g");
  db->stop();
  {
    const fs::path staging = *dir_ / "volumes" / (ns + "-staging");
    fs::rename(claim_dir, staging);
    fs::create_directories(claim_dir);
    fs::rename(staging, pgdata);
    Postgres::hand_to_server_user(claim_dir);
  }
  const uid_t uid = Postgres::drops_root() ? 65534 : getuid();
  const gid_t gid = Postgres::drops_root() ? 65534 : getgid();
  const int port = db->port();
  std::vector<std::string> command = {"postgres", "-D", pgdata.string(), "-c", "port=" + std::to_string(port),
                                      "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                                      "-c", "fsync=off", "-c", "archive_mode=on",
                                      "-c", std::string("archive_command=") + WALG_STANDIN_BIN + " wal-push %p"};
  // wal-push's settings reach the server's environment from a Secret, as in a real database pod.
  json archive_env = json::array();
  for (const auto& [k, v] : storage_env(ns))
    archive_env.push_back({{"name", k}, {"valueFrom", {{"secretKeyRef", {{"name", "db-archiving"}, {"key", k}}}}}});
  {
    json data = json::object();
    for (const auto& [k, v] : storage_env(ns)) data[k] = v;
    ASSERT_TRUE(admin->create(resources::kSecrets, ns, {{"metadata", {{"name", "db-archiving"}}}, {"stringData", data}}));
  }
  const json labels = {{"app", "db"}, {"backup.si.dev/test-database", "true"}};
  json container = {{"name", "postgres"},
                    {"image", kDatabaseImage},
                    {"command", command},
                    {"env", archive_env},
                    // Mounted where the server has it (kube-local's volumes are host directories).
                    {"volumeMounts", json::array({{{"name", "data"}, {"mountPath", claim_dir.string()}}})}};
  json pod_spec = {{"securityContext", {{"runAsUser", uid}, {"runAsGroup", gid}}},
                   {"terminationGracePeriodSeconds", 30},
                   {"containers", json::array({container})},
                   {"volumes", json::array({{{"name", "data"}, {"persistentVolumeClaim", {{"claimName", "pgdata"}}}}})}};
  json set_spec = {{"replicas", 1},
                   {"serviceName", "db"},
                   {"selector", {{"matchLabels", labels}}},
                   {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod_spec}}}};
  ASSERT_TRUE(admin->create(kStatefulSets, ns, {{"metadata", {{"name", "db"}}}, {"spec", set_spec}}));
  ASSERT_TRUE(eventually([&] {
    try {
      return db->value("SELECT count(*) FROM orders") == "120";
    } catch (const std::exception&) {
      return false;
    }
  }, std::chrono::seconds(60)))
      << server_->kubectl("get pods -n " + ns + " -o yaml").output;

  json p = policy(*db, ns);
  p["spec"]["database"].erase("dataVolume");
  p["spec"]["database"]["workloadRef"] = {{"kind", "StatefulSet"}, {"name", "db"}};
  ASSERT_TRUE(admin->create(kBackupPolicies, ns, p));
  json list = wait_for_backups(*admin, ns, 1);
  ASSERT_FALSE(list.empty());
  const json backup = list.front();
  ASSERT_EQ(backup["restorable"], true) << list.dump(2);
  ASSERT_TRUE(admin->patch(kBackupPolicies, ns, "db", PatchType::kMerge, {{"spec", {{"suspend", true}}}}));
  open_verify_target(ns, ns + "-verify");
  const json verified = verify(ns, ns + "-verify", "verify-before", backup["id"], backup["checksum"], "",
                               {{{"name", "orders"}, {"sql", "SELECT count(*) FROM orders"}, {"expect", "120"}}});
  ASSERT_EQ(verified["status"]["phase"], "Succeeded") << verified.dump(2);
  ASSERT_TRUE(eventually([&] {
    const json now = catalog(*admin, ns);
    const json* e = by_id(now, backup["id"]);
    return e && e->value("verified", false);
  }));
  const std::string system_id = db->value("SELECT system_identifier FROM pg_control_system()");

  // The accident.
  db->query("DROP TABLE orders");
  db->query("CREATE TABLE after_the_backup (x int)");

  // examples/restore/in-place.yaml as written, in this namespace and for this policy, with one more check.
  const std::string rr = "undo-bad-migration";
  {
    std::string text = slurp(fs::path(SOURCE_DIR) / "examples/restore/in-place.yaml");
    for (const auto& [from, to] : {std::pair<std::string, std::string>{"namespace: supabase", "namespace: " + ns},
                                   {"    name: supabase", "    name: db"}}) {
      const auto at = text.find(from);
      ASSERT_NE(at, std::string::npos) << from;
      text.replace(at, from.size(), to);
    }
    text += "  - name: orders-back\n    sql: \"SELECT count(*) FROM orders\"\n    expect: \"120\"\n";
    const auto applied = server_->kubectl("apply -f " + testing_support::write_file(*dir_ / "in-place.yaml", text));
    ASSERT_EQ(applied.exit_code, 0) << applied.output << "\n" << text;
  }
  const std::string freeze = bo::reconcile::freeze_name(ns, rr);
  bool frozen_while_restoring = false, refused_while_frozen = false, stopped_seen = false, killed = false;
  std::string restore_job_uid;
  std::set<std::string> phases;
  json req;
  ASSERT_TRUE(eventually([&] {
    auto got = admin->get(kRestoreRequests, ns, rr);
    if (got) req = *got;
    const json st = req.value("status", json::object());
    const std::string phase = st.value("phase", "");
    phases.insert(phase + "/" + st.value("inPlace", json::object()).value("step", ""));
    const bool present = admin->get(resources::kValidatingAdmissionPolicies, "", freeze).has_value();
    if ((phase == "Restoring" || phase == "Validating") && st.value("inPlace", json::object()).value("step", "") != "Stopping") {
      frozen_while_restoring = frozen_while_restoring || present;
      if (present && !refused_while_frozen) {
        // Anyone but the operator is refused a change to the workload meanwhile.
        const auto r = server_->kubectl("annotate statefulset db -n " + ns + " touched=yes --overwrite");
        refused_while_frozen = r.exit_code != 0 && r.output.find("frozen") != std::string::npos;
      }
      if (st.value("inPlace", json::object()).value("step", "") == "Restoring") {
        auto pods = admin->list(resources::kPods, ns, {"app=db", "", 0, "", ""});
        stopped_seen = stopped_seen || (pods && pods->value("items", json::array()).empty());
        // The operator is killed (-9) while its restore Job runs, and a new one carries on. (Once
        // DatabaseStopped is recorded: Events follow the status write they announce, so one whose
        // status was written just before a kill is lost, never repeated.)
        const bool announced =
            server_->kubectl("get events -n " + ns + " --field-selector involvedObject.name=" + rr +
                             ",reason=DatabaseStopped -o name").output.find("event") != std::string::npos;
        if (!killed && announced) {
          if (auto job = admin->get(resources::kJobs, ns, rr + "-restore")) {
            restore_job_uid = (*job)["metadata"].value("uid", "");
            operator_->stop(SIGKILL);
            delete operator_;
            operator_ = new Child(*operator_args_, *dir_ / "operator-after-kill.log");
            metrics_port_ = testing_support::listening_port(*operator_, "metrics");
            EXPECT_TRUE(chart_->serve_webhook(*server_, *operator_)) << operator_->log();
            killed = true;
          }
        }
      }
    }
    return phase == "Succeeded" || phase == "Failed" || phase == "Blocked";
  }, std::chrono::seconds(240)))
      << req.dump(2) << "\n" << server_->kubectl("get statefulsets,pods,jobs -n " + ns + " -o yaml").output
      << "\noperator log tail:\n" << operator_->log().substr(operator_->log().size() > 6000 ? operator_->log().size() - 6000 : 0);
  const json st = req["status"];
  ASSERT_EQ(st["phase"], "Succeeded") << req.dump(2) << "\n" << server_->kubectl("get events -n " + ns).output;
  EXPECT_TRUE(frozen_while_restoring) << json(phases).dump();
  EXPECT_TRUE(refused_while_frozen);
  EXPECT_TRUE(stopped_seen) << "the restore ran with the database's pod gone";
  // After the kill -9, one restore Job (the same one) and one fetch.
  ASSERT_TRUE(killed);
  auto job = admin->get(resources::kJobs, ns, rr + "-restore");
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["metadata"]["uid"], restore_job_uid) << "the restore Job was made again";
  auto job_pods = admin->list(resources::kPods, ns, {"job-name=" + rr + "-restore", "", 0, "", ""});
  ASSERT_TRUE(job_pods);
  EXPECT_EQ(job_pods->value("items", json::array()).size(), 1u);
  // The freeze is gone, the workload is up with its replicas, the table is back.
  EXPECT_TRUE(eventually([&] { return !admin->get(resources::kValidatingAdmissionPolicies, "", freeze); },
                         std::chrono::seconds(30)));
  auto sts = admin->get(kStatefulSets, ns, "db");
  ASSERT_TRUE(sts);
  EXPECT_EQ((*sts)["spec"]["replicas"], 1);
  EXPECT_EQ(db->value("SELECT count(*) FROM orders"), "120");
  EXPECT_EQ(db->value("SELECT count(*) FROM auth.users"), "3");
  EXPECT_EQ(db->value("SELECT count(*) FROM pg_tables WHERE tablename = 'after_the_backup'"), "0");
  EXPECT_EQ(db->value("SELECT pg_is_in_recovery()"), "f");
  EXPECT_EQ(db->value("SELECT system_identifier FROM pg_control_system()"), system_id);
  // Writes were held until the checks passed, and released then.
  EXPECT_EQ(db->value("SHOW default_transaction_read_only"), "off");
  EXPECT_NO_THROW(db->query("INSERT INTO orders (item) VALUES ('after the restore')"));
  // What was there before is kept beside it, whole.
  EXPECT_EQ(st["inPlace"]["aside"], "pgdata.before-" + rr) << st.dump(2);
  EXPECT_TRUE(fs::exists(claim_dir / ("pgdata.before-" + rr) / "PG_VERSION"));
  std::map<std::string, json> checks;
  for (const auto& c : st["validation"]) checks[c["stage"].get<std::string>() + "/" + c["name"].get<std::string>()] = c;
  EXPECT_EQ(checks["production/orders-back"].value("output", ""), "120") << st.dump(2);
  EXPECT_EQ(checks["production/has-users"].value("passed", false), true) << st.dump(2);
  EXPECT_EQ(checks["production/writes-released"].value("passed", false), true) << st.dump(2);
  EXPECT_EQ(st["backup"]["id"], backup["id"]) << "latest: the newest verified backup";
  EXPECT_EQ(checks["recovery/system-identifier"].value("passed", false), true) << st.dump(2);
  EXPECT_EQ(checks["production/system-identifier"].value("passed", false), true) << st.dump(2);
  // Every step was an Event (recorded after the status write, asynchronously: wait for them).
  const std::vector<std::string> reasons = {"RestoreStarted",  "MutationsBlocked", "StoppingDatabase", "DatabaseStopped",
                                            "DatabaseRestored", "RestoreSucceeded", "MutationsUnblocked"};
  std::string events;
  EXPECT_TRUE(eventually([&] {
    events = server_->kubectl("get events -n " + ns + " --field-selector involvedObject.name=" + rr +
                              " -o custom-columns=R:.reason --no-headers").output;
    for (const auto& reason : reasons)
      if (events.find(reason) == std::string::npos) return false;
    return true;
  }, std::chrono::seconds(30)))
      << events;
  // The restored server archives again, on its new timeline.
  const std::string wal = db->value("SELECT pg_walfile_name(pg_switch_wal())");
  EXPECT_TRUE(eventually([&] { return db->value("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= wal; },
                         std::chrono::seconds(30)));
  for (const char* what : {"jobs", "pods", "restorerequests", "events", "statefulsets"})
    EXPECT_EQ(server_->kubectl(std::string("get ") + what + " -n " + ns + " -o json").output.find(kCanary), std::string::npos)
        << what;
  // Leave no server behind for the next case.
  ASSERT_TRUE(admin->patch(kStatefulSets, ns, "db", PatchType::kMerge, {{"spec", {{"replicas", 0}}}}));
  EXPECT_TRUE(eventually([&] {
    auto pods = admin->list(resources::kPods, ns, {"app=db", "", 0, "", ""});
    return pods && pods->value("items", json::array()).empty();
  }, std::chrono::seconds(60)));
}
