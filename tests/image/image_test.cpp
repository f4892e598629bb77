// The image the shipped Dockerfile builds (scripts/image.sh: podman, with the
// wal-g stand-in in wal-g's place), run as a cluster would run it:
//   - it starts (--version, --help) and no shared object is missing (ldd of
//     the operator and of wal-g inside the image);
//   - it is non-root and numeric (65532:65532) and nothing outside /tmp is
//     writable;
//   - the operator, as uid 65532 with a read-only root filesystem, an
//     emptyDir-like tmpfs at /tmp, every capability dropped and no privilege
//     escalation (what the chart's Deployment sets), runs against kube-local
//     under the chart's RBAC and reconciles a policy to Ready;
//   - `run-job full-backup` and `run-job restore`, inside the image with the
//     same restrictions, as the database's uid, back up a real PostgreSQL 15
//     and restore it into a fresh directory on which PostgreSQL recovers
//     every row.
// Podman runs with runc and explicit ulimits (these machines refuse crun and
// the default ulimits) and the host's network (kube-local, PostgreSQL and
// the webhook listen on loopback). A missing image fails every test with the
// command that builds it.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <sstream>

#include "api/job_result.h"
#include "chart_operator.h"
#include "common/encoding.h"
#include "harness.h"
#include "podman.h"
#include "restored_postgres.h"
#include "support/postgres.h"

using nlohmann::json;
using testing_support::Child;
using testing_support::CommandResult;
using testing_support::eventually;
using testing_support::KubeLocal;
using testing_support::Postgres;
using testing_support::PostgresOptions;
using testing_support::run;
namespace fs = std::filesystem;

namespace {

const std::string kImage = BO_TEST_IMAGE;
using testing_support::kPodman;
using testing_support::kPodmanBuild;
const std::string kRun = testing_support::kPodmanRun;
// What the chart's Deployment and the operator's Jobs set, as podman options.
const std::string kRestricted =
    " --read-only --read-only-tmpfs=false --tmpfs /tmp:rw,mode=1777 --cap-drop ALL --security-opt no-new-privileges";
const std::string kCanary = "CANARY-image-4e1b-never-printed";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Image : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const auto r = run(kPodman + " image exists " + kImage);
    image_present_ = r.exit_code == 0;
  }
  void SetUp() override {
    ASSERT_TRUE(image_present_) << kImage << " is not in podman's storage: build it with scripts/image.sh "
                                << "(scripts/test.sh does, after scripts/setup.sh installs podman)";
  }
  // `podman run` of the image with `options` before it and `args` after it.
  static CommandResult in_image(const std::string& options, const std::string& args, int timeout_s = 120) {
    return run(kRun + " " + options + " " + kImage + " " + args, timeout_s);
  }
  static inline bool image_present_ = false;
};

TEST_F(Image, StartsAndSaysWhatItIs) {
  auto r = in_image("", "--version");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("backup-operator 0."), std::string::npos) << r.output;
  r = in_image("", "--help");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* word : {"run-job", "bundle", "--kubeconfig", "--leader-elect"})
    EXPECT_NE(r.output.find(word), std::string::npos) << word << " in\n" << r.output;
  // A bad flag is a one-line error and a non-zero exit inside the image too.
  r = in_image("", "--no-such-flag");
  EXPECT_NE(r.exit_code, 0) << r.output;

  // The label says which wal-g the image carries: here the stand-in, never passed off as wal-g.
  r = run(kPodman + " image inspect " + kImage + " --format '{{index .Labels \"backup.si.dev/wal-g\"}}'");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("stand-in"), std::string::npos) << r.output;
  r = run(kPodman + " image inspect " + kImage + " --format '{{.Config.User}} {{json .Config.Entrypoint}}'");
  EXPECT_EQ(r.output, "65532:65532 [\"/usr/local/bin/backup-operator\"]\n");
}

TEST_F(Image, EveryProgramFindsEverySharedObject) {
  for (const char* program : {"/usr/local/bin/backup-operator", "/usr/local/bin/wal-g", "/usr/local/bin/pg_isready"}) {
    const auto r = in_image("--entrypoint ldd", program);
    ASSERT_EQ(r.exit_code, 0) << program << ": " << r.output;
    EXPECT_EQ(r.output.find("not found"), std::string::npos) << program << ":\n" << r.output;
    EXPECT_NE(r.output.find("libc.so.6"), std::string::npos) << program << ":\n" << r.output;
  }
  // run-job's programs are on the image's PATH, as its Jobs call them.
  const auto r = in_image("--entrypoint sh", "-c 'for p in wal-g pg_isready backup-operator; do command -v $p; done'");
  EXPECT_EQ(r.output, "/usr/local/bin/wal-g\n/usr/local/bin/pg_isready\n/usr/local/bin/backup-operator\n") << r.output;
}

TEST_F(Image, RunsAsNonRootAndCanWriteOnlyTmp) {
  // With a writable root, as the image's own user: every directory it could
  // write, outside the kernel's file systems.
  auto r = in_image("--entrypoint sh",
                    "-c 'id -u; id -g; find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o -writable -print 2>/dev/null; true'");
  EXPECT_EQ(r.output, "65532\n65532\n/tmp\n") << r.output;
  // Read-only root: nothing written but /tmp.
  r = in_image(kRestricted + " --entrypoint sh", "-c 'touch /tmp/ok && ! touch /usr/local/bin/x 2>/dev/null && echo ro'");
  EXPECT_EQ(r.output, "ro\n") << r.output;
}

// The Dockerfile's wal-g: a download is installed only when its sha256 is
// WALG_SHA256 (served here from loopback through WALG_URL, as a mirror
// would); a local file only with a label saying which wal-g it is.
TEST_F(Image, WalgIsInstalledOnlyWhenItsChecksumMatchesOrItIsNamed) {
  const fs::path dir = testing_support::make_temp_dir("image-walg");
  const fs::path served = dir / "served";
  fs::create_directories(served);
  testing_support::write_file(dir / "wal-g-pg-20.04-amd64", "#!/bin/sh\necho 'a wal-g from the mirror'\n");
  fs::permissions(dir / "wal-g-pg-20.04-amd64", fs::perms::owner_all | fs::perms::others_exec | fs::perms::others_read);
  auto r = run("tar -czf " + (served / "wal-g-pg-20.04-amd64.tar.gz").string() + " -C " + dir.string() + " wal-g-pg-20.04-amd64");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string sha = bo::sha256_hex(slurp(served / "wal-g-pg-20.04-amd64.tar.gz"));
  // Port 0, unbuffered (-u): http.server prints the port it got.
  Child http({"/usr/bin/python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", served.string()},
             dir / "http.log");
  const int port = testing_support::port_after(http, "Serving HTTP on 127.0.0.1 port ");
  ASSERT_GT(port, 0) << http.log();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/wal-g-pg-20.04-amd64.tar.gz";
  ASSERT_TRUE(eventually([&] { return run("curl -sfo /dev/null " + url).exit_code == 0; })) << http.log();

  const std::string tag = "localhost/backup-operator-walg-stage:test";
  const std::string build = kPodmanBuild + " --target walg -t " + tag + " -f " + SOURCE_DIR + "/Dockerfile --build-arg WALG_URL=" + url;
  // The shipped pin does not match this file: refused, saying why.
  r = run(build + " " + SOURCE_DIR, 600);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("does not match WALG_SHA256="), std::string::npos) << r.output;
  // Pinned to this file's sha256: installed as wal-g.
  r = run(build + " --build-arg WALG_SHA256=" + sha + " " + SOURCE_DIR, 600);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run(kRun + " --entrypoint /usr/local/bin/wal-g " + tag);
  EXPECT_EQ(r.output, "a wal-g from the mirror\n") << r.output;
  // A local file with no label saying what it is: refused.
  r = run(build + " --build-arg WALG_FILE=Dockerfile " + SOURCE_DIR, 600);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("needs WALG_LABEL"), std::string::npos) << r.output;
  run(kPodman + " rmi -f " + tag);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// kube-local with the CRDs and the chart's RBAC; the operator in the image
// with the chart's command line and the Deployment's restrictions.
TEST_F(Image, OperatorReconcilesAPolicyAsNonRootOnAReadOnlyRoot) {
  KubeLocal server({"--authorize"});
  auto r = server.kubectl("apply -f " + std::string(SOURCE_DIR) + "/crds/");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto manifests = server.dir() / "policy.yaml";
  testing_support::write_file(manifests, R"(apiVersion: v1
kind: Namespace
metadata: {name: app}
---
apiVersion: v1
kind: Namespace
metadata: {name: app-verify}
---
apiVersion: v1
kind: Secret
metadata: {name: walg-storage, namespace: app}
stringData: {WALG_S3_PREFIX: s3://bucket/app, WALG_AWS_ACCESS_KEY_ID: id, WALG_AWS_ENDPOINT: "https://s3.example",
             WALG_AWS_SECRET_ACCESS_KEY: )" + kCanary + R"(}
---
apiVersion: v1
kind: Secret
metadata: {name: walg-encryption, namespace: app}
stringData: {WALG_LIBSODIUM_KEY: )" + kCanary + R"(}
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: app}
stringData: {username: postgres, password: )" + kCanary + R"(}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: db-data, namespace: app}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: backup.si.dev/v1alpha1
kind: BackupPolicy
metadata: {name: db, namespace: app}
spec:
  database: {host: db, credentialsSecretRef: {name: db}, dataVolume: {claimName: db-data}, runAsUser: 101, runAsGroup: 102}
  storage: {secretRef: {name: walg-storage}, encryption: {secretRef: {name: walg-encryption}}}
  schedule: {backup: "0 * * * *"}
  verification: {targetNamespace: app-verify}
)");
  r = server.kubectl("apply -f " + manifests.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto chart = testing_support::install_chart(server, server.dir());
  // The operator reads its kubeconfig and webhook certificate as uid 65532, as from a mounted Secret.
  fs::permissions(chart.kubeconfig, fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  for (const auto& e : fs::directory_iterator(chart.cert_dir))
    fs::permissions(e.path(), fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  fs::permissions(chart.cert_dir, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);

  auto args = chart.args({"--metrics-bind-address", "127.0.0.1:0"});
  const std::string name = "bo-image-operator-" + std::to_string(getpid());
  std::vector<std::string> argv = {"/usr/bin/podman", "--runtime", "runc", "run", "--rm", "--pull=never", "--name", name,
                                   "--network", "host", "--ulimit", "nofile=1024:4096", "--ulimit", "nproc=4096:4096",
                                   "--user", "65532:65532", "--read-only", "--read-only-tmpfs=false",
                                   "--tmpfs", "/tmp:rw,mode=1777", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                                   "-v", chart.kubeconfig + ":" + chart.kubeconfig + ":ro",
                                   "-v", chart.cert_dir.string() + ":" + chart.cert_dir.string() + ":ro", kImage};
  argv.insert(argv.end(), args.begin() + 1, args.end());  // the chart's flags, without the host's binary
  struct Cleanup {
    std::string name;
    ~Cleanup() { run(kPodman + " rm -f --time 0 " + name); }
  } cleanup{name};
  Child op(argv, server.dir() / "operator.log");
  const int metrics = testing_support::listening_port(op, "metrics", std::chrono::seconds(60));
  ASSERT_GT(metrics, 0) << op.log();

  r = server.kubectl("wait --for=condition=Ready backuppolicy/db -n app --timeout=60s");
  ASSERT_EQ(r.exit_code, 0) << r.output << server.kubectl("get backuppolicy/db -n app -o yaml").output
                            << "\noperator:\n" << op.log();
  r = server.kubectl("get backuppolicy/db -n app -o jsonpath={.status.observedGeneration}");
  EXPECT_EQ(r.output, "1") << r.output;
  // Its metrics are served from inside the container.
  r = run("curl -s http://127.0.0.1:" + std::to_string(metrics) + "/metrics");
  EXPECT_NE(r.output.find("backup_operator_"), std::string::npos) << r.output;
  // Inside: the operator's process is uid 65532, and has no capability at all.
  r = run(kPodman + " exec " + name + " sh -c 'id -u; grep CapEff /proc/1/status; grep NoNewPrivs /proc/1/status'");
  EXPECT_EQ(r.output, "65532\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\n") << r.output;

  // SIGTERM (what a kubelet sends) ends it cleanly: podman forwards it to the operator.
  op.stop(SIGTERM);
  EXPECT_NE(op.log().find("signal received, shutting down"), std::string::npos) << op.log();
  EXPECT_EQ(op.log().find(kCanary), std::string::npos) << "a secret reached the log";
}

// The Databasus sidecar (run-job databasus-metadata) as the operator runs
// it: the image's own user, restricted, the password in its environment
// only; it writes the database's description, without the password.
TEST_F(Image, DatabasusSidecarRunsAsNonRootOnAReadOnlyRoot) {
  const fs::path dir = testing_support::make_temp_dir("image-databasus");
  const fs::path meta = dir / "meta";
  fs::create_directories(meta);
  // An emptyDir the pod's fsGroup (65532) may write.
  ASSERT_EQ(::chown(meta.c_str(), 65532, 65532), 0);
  const auto r = run("env PGPASSWORD=" + kCanary + " " + kRun + kRestricted + " -v " + meta.string() + ":/metadata" +
                     " -e PGPASSWORD -e DATABASUS_METADATA_ONCE=1 -e METADATA_DIR=/metadata -e PGHOST=db.supabase.svc" +
                     " -e PGUSER=postgres -e BACKUP_POLICY=supabase/db " + kImage + " run-job databasus-metadata");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string text = slurp(meta / "database.json");
  const json described = json::parse(text, nullptr, false);
  ASSERT_TRUE(described.is_object()) << text;
  EXPECT_EQ(described.value("host", ""), "db.supabase.svc") << text;
  EXPECT_EQ(text.find(kCanary), std::string::npos) << "the password reached the metadata";
  EXPECT_EQ(r.output.find(kCanary), std::string::npos) << "the password reached the sidecar's output";
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// run-job inside the image against a real PostgreSQL 15 on the host: the
// server's data directory and the file store are mounted at the paths they
// have on the host, as the Jobs mount the database's claim.
class ImageJobs : public Image {
 protected:
  void SetUp() override {
    Image::SetUp();
    dir_ = testing_support::make_temp_dir("image-jobs");
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    store_ = dir_ / "store";
    fs::create_directories(store_);
    Postgres::hand_to_server_user(store_);
  }
  void TearDown() override {
    restored_.reset();
    pg_.reset();
    ::unsetenv("WALG_FILE_PREFIX");
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
    else std::cerr << "kept " << dir_ << " for inspection\n";
  }
  // The uid:gid the server runs as (nobody under root), which the Jobs run as.
  static std::string server_user() {
    return Postgres::drops_root() ? "65534:65534" : std::to_string(getuid()) + ":" + std::to_string(getgid());
  }
  // run-job ACTION in the image, restricted, as the server's user, with `env` and the mounts.
  CommandResult job(const std::string& action, const std::map<std::string, std::string>& env,
                    const std::vector<fs::path>& mounts) {
    const fs::path termination = dir_ / ("termination-" + action);
    testing_support::write_file(termination, "");
    Postgres::hand_to_server_user(termination);
    std::string options = kRestricted + " --user " + server_user() + " -v " + termination.string() +
                          ":/dev/termination-log -v " + store_.string() + ":" + store_.string();
    for (const auto& m : mounts) options += " -v " + m.string() + ":" + m.string();
    // Values through podman's own environment (-e NAME), as a kubelet passes a Secret's: never on a command line.
    std::string exports;
    for (const auto& [k, v] : env) {
      options += " -e " + k;
      exports += k + "='" + v + "' ";
    }
    auto r = run("env " + exports + kRun + " " + options + " " + kImage + " run-job " + action, 240);
    last_termination_ = slurp(termination);
    EXPECT_EQ(r.output.find(kCanary), std::string::npos) << "a secret reached run-job's output";
    EXPECT_EQ(last_termination_.find(kCanary), std::string::npos) << "a secret reached the termination message";
    return r;
  }

  fs::path dir_, store_;
  std::unique_ptr<Postgres> pg_, restored_;
  std::string last_termination_;
};

TEST_F(ImageJobs, BackupAndRestoreRunInsideTheImageAgainstARealPostgres) {
  const unsigned seed = std::random_device{}();
  std::cout << "random seed: " << seed << "\n";
  std::mt19937 rng(seed);
  PostgresOptions o;
  o.archive_command = "WALG_FILE_PREFIX=" + store_.string() + " " + WALG_STANDIN_BIN + " wal-push %p";
  pg_ = std::make_unique<Postgres>(Postgres::init(dir_ / "data", o));
  const int rows = 1 + static_cast<int>(rng() % 2000);
  pg_->query("create table t(id int primary key, note text)");
  pg_->query("insert into t select g, md5(g::text) from generate_series(1," + std::to_string(rows) + ") g");

  std::map<std::string, std::string> env = {{"WALG_FILE_PREFIX", store_.string()},
                                            {"PGDATA", pg_->data_dir().string()},
                                            {"WALG_AWS_SECRET_ACCESS_KEY", kCanary}};
  for (const auto& [k, v] : pg_->libpq_env()) env[k] = v;
  // The image's pg_isready reaches the server (the profile's first validation).
  auto r = job("validate-database-answers", env, {});
  EXPECT_EQ(r.exit_code, 0) << r.output << last_termination_;
  r = job("full-backup", env, {pg_->data_dir()});
  ASSERT_EQ(r.exit_code, 0) << r.output << last_termination_;
  const auto made = bo::api::parse_job_result(last_termination_);
  ASSERT_TRUE(made) << made.error() << ": " << last_termination_;
  EXPECT_EQ(made->type, "full");
  EXPECT_TRUE(made->wal_archived) << last_termination_;
  EXPECT_TRUE(fs::exists(store_ / "basebackups_005" / (made->backup_id + "_backup_stop_sentinel.json")));
  // Rows after the backup reach the store through archiving; the restore recovers them too.
  pg_->query("insert into t values (" + std::to_string(rows + 1) + ", 'after')");
  const std::string seg = pg_->value("select pg_walfile_name(pg_current_wal_lsn())");
  pg_->query("select pg_switch_wal()");
  ASSERT_TRUE(eventually([&] { return pg_->value("select coalesce(last_archived_wal, '') from pg_stat_archiver") >= seg; },
                         std::chrono::seconds(60)))
      << pg_->log();

  const fs::path target = dir_ / "restored";
  fs::create_directories(target);
  Postgres::hand_to_server_user(target);
  env.erase("PGDATA");
  env["PGDATA"] = target.string();
  env["BACKUP_ID"] = made->backup_id;
  r = job("restore", env, {target});
  ASSERT_EQ(r.exit_code, 0) << r.output << last_termination_;
  // The restored server fetches WAL with `wal-g wal-fetch` as the image wrote it: the stand-in on the host's PATH.
  ::setenv("WALG_FILE_PREFIX", store_.c_str(), 1);
  const std::string path = fs::path(WALG_STANDIN_BIN).parent_path().string() + ":" + getenv("PATH");
  ::setenv("PATH", path.c_str(), 1);
  ASSERT_NO_FATAL_FAILURE(testing_support::start_restored(target, restored_));
  EXPECT_EQ(restored_->value("select count(*) from t"), std::to_string(rows + 1));
  EXPECT_EQ(restored_->value("select note from t where id = " + std::to_string(rows + 1)), "after");
}

}  // namespace
