// The operator's own backup and restore Jobs as real containers: kube-local
// in container mode (--exec-runtime podman) runs every Pod whose images
// podman has as a container, with the security context the operator wrote
// enforced by the runtime (uid/gid, read-only root filesystem, no
// capabilities, no privilege escalation, the storage Secret's values in the
// environment only). The image is the one the shipped Dockerfile builds
// (scripts/image.sh), with the test's S3 CA added to its trust store as a
// cluster with a private CA would do; PostgreSQL 15 runs on the host on the
// claim's directory and archives into s3rver over TLS.
//   1. the hourly backup Job (a container) backs up the real database;
//   2. its verification (a scratch instance in the database's image, which
//      podman does not have: kube-local's process kubelet, as elsewhere)
//      marks it verified;
//   3. a RestoreRequest's restore Job (a container) fetches it into a fresh
//      claim, and PostgreSQL started there has every row.
#include <gtest/gtest.h>

#include <unistd.h>

#include <ctime>
#include <iostream>
#include <sstream>
#include <memory>

#include "chart_operator.h"
#include "harness.h"
#include "podman.h"
#include "reconcile/caches.h"
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
using testing_support::run;
namespace fs = std::filesystem;

namespace {

const std::string kCanary = "canary-container-jobs-8c2e-41aa";  // also the libsodium key (wal-g wants >= 25 bytes)
const std::string kNs = "shop";
using testing_support::kPodman;
constexpr const char* kDatabaseImage = "postgres:15";

class ContainerJobs : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(run(kPodman + " image exists " + std::string(BO_TEST_IMAGE)).exit_code, 0)
        << BO_TEST_IMAGE << " is not in podman's storage: build it with scripts/image.sh";
    dir_ = testing_support::make_temp_dir("container-jobs");
    fs::permissions(dir_, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
    s3_ = std::make_unique<testing_support::S3rverTls>(testing_support::start_s3rver_tls(dir_, "backups"));
    // The image with the S3 CA in its trust store (built from the test image, nothing else changed).
    image_ = "localhost/backup-operator:test-ca-" + std::to_string(getpid());
    testing_support::write_file(dir_ / "Containerfile", "FROM " + std::string(BO_TEST_IMAGE) +
                                                            "\nUSER 0\nCOPY ca.crt /usr/local/share/ca-certificates/test-s3.crt\n"
                                                            "RUN update-ca-certificates >/dev/null\nUSER 65532:65532\n");
    auto r = run(testing_support::kPodmanBuild + " -t " + image_ + " -f " + (dir_ / "Containerfile").string() + " " + dir_.string(),
                 300);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  void TearDown() override {
    operator_.reset();
    server_.reset();
    db_.reset();
    s3_.reset();
    if (!image_.empty()) run(kPodman + " rmi -f " + image_);
    std::error_code ec;
    if (!HasFailure()) fs::remove_all(dir_, ec);
    else std::cerr << "kept " << dir_ << " for inspection\n";
  }

  std::map<std::string, std::string> storage(bool with_ca_file) const {
    std::map<std::string, std::string> s = {{"WALG_S3_PREFIX", "s3://backups/" + kNs},
                                            {"WALG_AWS_ACCESS_KEY_ID", "S3RVER"},
                                            {"WALG_AWS_SECRET_ACCESS_KEY", kCanary},
                                            {"WALG_AWS_ENDPOINT", s3_->endpoint()},
                                            {"AWS_S3_FORCE_PATH_STYLE", "true"}};
    // The host's processes (the archiver, the scratch instance) are given the CA as a file; the
    // containers trust it through their image's trust store (which the stand-in, like wal-g, also
    // reads by default), named here too, as a key the verification Secret shares.
    s["WALG_S3_CA_CERT_FILE"] = with_ca_file ? s3_->ca.string() : "/etc/ssl/certs/ca-certificates.crt";
    return s;
  }
  // wal-g's own names, for the archiver and the restored servers on the host.
  std::string walg_env_prefix() const {
    std::string out;
    for (const auto& [k, v] : storage(true)) {
      std::string key = k;
      if (key.starts_with("WALG_AWS_")) key = key.substr(5);
      out += key + "=" + v + " ";
    }
    return out + "WALG_LIBSODIUM_KEY=" + kCanary + " ";
  }

  void start_cluster() {
    const std::string walg_dir = fs::path(WALG_STANDIN_BIN).parent_path().string();
    std::vector<std::string> args = {
        "--authorize", "--exec-runtime", "podman", "--exec-runtime-option=--runtime=runc",
        "--exec-runtime-option=--ulimit=nofile=1024:4096", "--exec-runtime-option=--ulimit=nproc=4096:4096",
        // A scratch Pod mixes the operator's image (its init container) with the database's,
        // which podman does not have: such a Pod runs as processes, these programs standing for the images.
        "--exec-image", image_ + "=" + OPERATOR_BIN, "--exec-image-path", std::string(kDatabaseImage) + "=" + Postgres::kBinDir,
        "--volume-root", (dir_ / "volumes").string(), "--exec-path", walg_dir};
    json rules = json::array();
    for (const char* a : {"backup", "full-backup", "retain", "restore", "verify", "scratch"})
      rules.push_back({{"selector", std::string("backup.si.dev/action=") + a}, {"outcome", {{"exec", true}}}});
    args.insert(args.end(), {"--pod-rules", testing_support::write_file(dir_ / "rules.json", rules.dump())});
    server_ = std::make_unique<KubeLocal>(args);
    const auto chart = testing_support::install_crds_and_chart(*server_, dir_);
    // No metrics listener: its default (:8080) is a fixed port, which tests running in parallel would share.
    operator_ = std::make_unique<Child>(chart.args({"--time-scale", "600", "--job-image", image_, "--metrics-bind-address", "0"}),
                                        dir_ / "operator.log");
    ASSERT_TRUE(testing_support::controller_started(*operator_, "backuppolicy")) << operator_->log();
    ASSERT_TRUE(chart.serve_webhook(*server_, *operator_)) << operator_->log();
  }

  // What podman started for this test's namespace: one line per container,
  // the Pod's name and the labels of its Job.
  std::string ran_in_containers() const {
    std::string out;
    const auto pods = json::parse(server_->kubectl("get pods -n " + kNs + " -o json").output, nullptr, false);
    const auto events = run(kPodman + " events --stream=false --since " + std::to_string(started_) +
                            " --filter event=start --filter label=io.kubernetes.pod.namespace=" + kNs +
                            " --format '{{index .Attributes \"io.kubernetes.pod.name\"}}'");
    std::istringstream lines(events.output);
    for (std::string pod; std::getline(lines, pod);) {
      out += pod;
      if (pods.is_object())
        for (const auto& p : pods["items"])
          if (p["metadata"].value("name", "") == pod) {
            const json labels = p["metadata"].value("labels", json::object());
            for (const auto& [k, v] : labels.items()) out += " " + k + "=" + v.get<std::string>();
          }
      out += "\n";
    }
    return out;
  }

  std::string state() const {
    const std::string log = operator_ ? operator_->log() : "";
    return server_->kubectl("get jobs,pods -n " + kNs + " -o yaml").output +
           server_->kubectl("get backuppolicy db -n " + kNs + " -o yaml").output + "\noperator log tail:\n" +
           (log.size() > 4000 ? log.substr(log.size() - 4000) : log);
  }

  fs::path dir_;
  std::string image_;
  const long long started_ = static_cast<long long>(::time(nullptr));
  std::unique_ptr<testing_support::S3rverTls> s3_;
  std::unique_ptr<Postgres> db_;
  std::unique_ptr<KubeLocal> server_;
  std::unique_ptr<Child> operator_;
};

TEST_F(ContainerJobs, BackupAndRestoreJobsRunAsRestrictedContainersAndTheRestoreHasEveryRow) {
  ASSERT_NO_FATAL_FAILURE(start_cluster());
  auto admin = server_->client();
  const fs::path data = dir_ / "volumes" / kNs / "pgdata";
  PostgresOptions o;
  o.archive_command = walg_env_prefix() + WALG_STANDIN_BIN + " wal-push %p";
  db_ = std::make_unique<Postgres>(Postgres::init(data, o));
  db_->query("CREATE SCHEMA auth; CREATE TABLE auth.users (id uuid PRIMARY KEY, email text);"
             "CREATE SCHEMA storage; CREATE TABLE storage.buckets (id text PRIMARY KEY, name text);"
             "CREATE TABLE storage.objects (id uuid PRIMARY KEY, bucket_id text REFERENCES storage.buckets (id), name text);"
             "INSERT INTO storage.buckets VALUES ('avatars', 'avatars');"
             "CREATE TABLE orders (id serial PRIMARY KEY, note text);"
             "INSERT INTO orders (note) SELECT md5(g::text) FROM generate_series(1, 321) g");
  const auto env = db_->libpq_env();
  const uid_t uid = Postgres::drops_root() ? 65534 : getuid();
  const gid_t gid = Postgres::drops_root() ? 65534 : getgid();

  for (const std::string& ns : {kNs, kNs + "-verify"})
    ASSERT_TRUE(admin->create(resources::kNamespaces, "", {{"metadata", {{"name", ns}}}}));
  ASSERT_TRUE(admin->create(resources::kPersistentVolumeClaims, kNs,
                            {{"metadata", {{"name", "pgdata"}}},
                             {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
  json in_containers = storage(false);
  ASSERT_TRUE(admin->create(resources::kSecrets, kNs, {{"metadata", {{"name", "walg-storage"}}}, {"stringData", in_containers}}));
  json on_host = storage(true);
  on_host["WALG_LIBSODIUM_KEY"] = kCanary;
  ASSERT_TRUE(admin->create(resources::kSecrets, kNs + "-verify", {{"metadata", {{"name", "walg-read-only"}}}, {"stringData", on_host}}));
  ASSERT_TRUE(admin->create(resources::kSecrets, kNs,
                            {{"metadata", {{"name", "walg-encryption"}}}, {"stringData", {{"WALG_LIBSODIUM_KEY", kCanary}}}}));
  ASSERT_TRUE(admin->create(resources::kSecrets, kNs,
                            {{"metadata", {{"name", "supabase-db"}}}, {"stringData", {{"username", env.at("PGUSER")}, {"password", kCanary}}}}));
  const json policy = {
      {"metadata", {{"name", "db"}, {"namespace", kNs}}},
      {"spec",
       {{"database",
         {{"host", env.at("PGHOST")},
          {"port", std::stoi(env.at("PGPORT"))},
          {"credentialsSecretRef", {{"name", "supabase-db"}}},
          {"dataVolume", {{"claimName", "pgdata"}, {"mountPath", data.string()}}},
          {"runAsUser", uid},
          {"runAsGroup", gid},
          {"walWaitSeconds", 30}}},
        {"addons", {"supabase-walg"}},
        {"schedule", {{"backup", "0 * * * *"}, {"fullBackup", "0 0 1 1 *"}}},
        {"verification", {{"enabled", false}, {"targetNamespace", kNs + "-verify"}, {"image", kDatabaseImage},
                          {"storageSecretRef", {{"name", "walg-read-only"}}}}},
        {"storage", {{"secretRef", {{"name", "walg-storage"}}}, {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}}}}};
  ASSERT_TRUE(admin->create(kBackupPolicies, kNs, policy));

  // 1. A scheduled backup, made by a Job that ran as a container.
  json backups;
  ASSERT_TRUE(eventually([&] {
    auto p = admin->get(kBackupPolicies, kNs, "db");
    backups = p ? (*p).value("status", json::object()).value("backups", json::array()) : json::array();
    return !backups.empty();
  }, std::chrono::seconds(180)))
      << state();
  const json backup = backups.back();
  EXPECT_EQ(backup.value("restorable", false), true) << backups.dump(2);
  ASSERT_TRUE(admin->patch(kBackupPolicies, kNs, "db", PatchType::kMerge, {{"spec", {{"suspend", true}}}}));
  // The backup Pods ran as podman containers (kube-local labels them as a kubelet does).
  const std::string containers = ran_in_containers();
  EXPECT_NE(containers.find("backup.si.dev/action=backup"), std::string::npos) << containers;
  const std::string backup_job = [&] {
    const auto at = containers.find("job-name=");
    return at == std::string::npos ? std::string() : containers.substr(at + 9, containers.find_first_of(" \n", at) - at - 9);
  }();

  // 2. Verified (the scratch instance runs as processes: podman has no postgres:15).
  const json pol = *admin->get(kBackupPolicies, kNs, "db");
  json meta = {{"name", "verify-1"},
               {"ownerReferences", {{{"apiVersion", "backup.si.dev/v1alpha1"}, {"kind", "BackupPolicy"}, {"name", "db"},
                                     {"uid", pol["metadata"]["uid"]}, {"controller", true}}}}};
  ASSERT_TRUE(admin->create(kRestoreRequests, kNs,
                            {{"metadata", meta},
                             {"spec", {{"policyRef", {{"name", "db"}}}, {"backupId", backup["id"]}, {"purpose", "verification"},
                                       {"targetNamespace", kNs + "-verify"},
                                       {"validation", {{{"name", "orders"}, {"sql", "SELECT count(*) FROM orders"}, {"expect", "321"}}}}}}}));
  json rr;
  ASSERT_TRUE(eventually([&] {
    auto got = admin->get(kRestoreRequests, kNs, "verify-1");
    if (got) rr = *got;
    const std::string phase = rr.value("status", json::object()).value("phase", "");
    return phase == "Succeeded" || phase == "Failed" || phase == "Blocked";
  }, std::chrono::seconds(180)))
      << rr.dump(2);
  ASSERT_EQ(rr["status"]["phase"], "Succeeded")
      << rr.dump(2) << server_->kubectl("logs -n " + kNs + "-verify -l backup.si.dev/restore-request=verify-1 --all-containers --prefix").output;

  // 3. The restore Job, as a container, into a fresh claim.
  ASSERT_TRUE(eventually([&] {
    auto p = admin->get(kBackupPolicies, kNs, "db");
    for (const auto& e : (*p)["status"].value("backups", json::array()))
      if (e.value("id", "") == backup["id"] && e.value("verified", false)) return true;
    return false;
  })) << state();
  ASSERT_TRUE(admin->create(kRestoreRequests, kNs,
                            {{"metadata", {{"name", "restore-1"}}},
                             {"spec", {{"policyRef", {{"name", "db"}}}, {"backupId", backup["id"]},
                                       {"target", {{"dataVolume", {{"claimName", "restored"}, {"mountPath", "/var/lib/postgresql/data"}}}}}}}}));
  json job;
  ASSERT_TRUE(eventually([&] {
    auto got = admin->get(resources::kJobs, kNs, "restore-1-restore");
    if (!got) return false;
    job = *got;
    for (const auto& c : job.value("status", json::object()).value("conditions", json::array()))
      if ((c.value("type", "") == "Complete" || c.value("type", "") == "Failed") && c.value("status", "") == "True") return true;
    return false;
  }, std::chrono::seconds(180)))
      << server_->kubectl("get restorerequests,jobs,pods -n " + kNs + " -o yaml").output;
  ASSERT_EQ(job["status"].value("succeeded", 0), 1) << job.dump(2)
                                                    << server_->kubectl("logs job/restore-1-restore -n " + kNs).output;
  EXPECT_NE(ran_in_containers().find("job-name=restore-1-restore"), std::string::npos) << ran_in_containers();
  // What the runtime enforced on both: the restricted context the operator wrote into their Jobs.
  for (const std::string& job_name : {std::string("restore-1-restore"), backup_job}) {
    const auto got = admin->get(resources::kJobs, kNs, job_name);
    ASSERT_TRUE(got) << job_name;
    const json pod = (*got)["spec"]["template"]["spec"];
    const json sc = pod["containers"][0].value("securityContext", json::object());
    EXPECT_EQ(sc.value("readOnlyRootFilesystem", false), true) << job_name << ": " << pod.dump(2);
    EXPECT_EQ(sc.value("allowPrivilegeEscalation", true), false) << job_name << ": " << pod.dump(2);
    EXPECT_EQ(sc.value("capabilities", json::object()).value("drop", json::array()), json::array({"ALL"})) << job_name;
    EXPECT_EQ(pod.value("securityContext", json::object()).value("runAsNonRoot", false), true) << job_name << ": " << pod.dump(2);
  }
  ASSERT_TRUE(admin->remove(kRestoreRequests, kNs, "restore-1"));
  ASSERT_TRUE(eventually([&] { return !admin->get(kRestoreRequests, kNs, "restore-1"); }, std::chrono::seconds(30)));

  // PostgreSQL on the restored claim: recovery through `wal-g wal-fetch` (the stand-in, on the host).
  const fs::path target = dir_ / "volumes" / kNs / "restored";
  ASSERT_TRUE(fs::exists(target / "recovery.signal"));
  for (const auto& [k, v] : storage(true)) {
    const std::string key = k.starts_with("WALG_AWS_") ? k.substr(5) : k;
    ::setenv(key.c_str(), v.c_str(), 1);
  }
  ::setenv("WALG_LIBSODIUM_KEY", kCanary.c_str(), 1);
  const std::string path = fs::path(WALG_STANDIN_BIN).parent_path().string() + ":" + getenv("PATH");
  ::setenv("PATH", path.c_str(), 1);
  PostgresOptions restored_options;
  restored_options.settings["archive_mode"] = "off";
  Postgres::hand_to_server_user(target);
  auto restored = Postgres::start_existing(target, restored_options);
  EXPECT_EQ(restored.value("SELECT count(*) FROM orders"), "321");

  for (const char* what : {"jobs", "pods", "backuppolicies", "restorerequests", "events"})
    EXPECT_EQ(server_->kubectl(std::string("get ") + what + " -n " + kNs + " -o json").output.find(kCanary), std::string::npos)
        << what;
  EXPECT_EQ(operator_->log().find(kCanary), std::string::npos);
}

}  // namespace
