// kube-local's process kubelet with init containers, a command from a volume
// and an image's own PATH, through the real kubectl: the shape of the
// operator's scratch verification Pod (an init container copies programs into
// an emptyDir, the main container, of an image that has none of them, runs
// them from there), what the Pod's status says while and after its init
// containers run, and a failing init container failing the Pod and its Job.
// Then graceful deletion (SIGTERM, Terminating until the process is gone,
// SIGKILL at the grace period's end) and a StatefulSet of a real PostgreSQL 15
// scaled 1 -> 0 -> 1 through the scale subresource.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "harness.h"

using testing_support::eventually;
using testing_support::KubeLocal;
using testing_support::make_temp_dir;
using testing_support::write_file;
using json = nlohmann::json;

namespace {

class ProcessKubelet : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // The database image's own programs: a directory only its containers have first on PATH.
    image_dir_ = new std::filesystem::path(make_temp_dir("process-kubelet-image"));
    write_file(*image_dir_ / "dbtool", "#!/bin/sh\necho dbtool \"$@\"\n");
    ::chmod((*image_dir_ / "dbtool").c_str(), 0755);
    server_ = new KubeLocal({"--exec-image", "shell=/bin/sh", "--exec-image-path", "db:15=" + image_dir_->string()});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    std::error_code ec;
    std::filesystem::remove_all(*image_dir_, ec);
    delete image_dir_;
    image_dir_ = nullptr;
  }
  static void apply(const std::string& name, const std::string& pod_spec) {
    const auto f = write_file(server_->dir() / (name + ".yaml"),
                              "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: " + name +
                                  "\n  annotations:\n    kube-local.si.dev/pod-outcome: '{\"exec\": true}'\n"
                                  "spec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n" +
                                  pod_spec);
    auto r = server_->kubectl("apply -f " + f);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  // The Job's Pod as the API server has it (null until it exists).
  static json job_pod(const std::string& job) {
    const auto r = server_->kubectl("get pods -o json");
    const json list = json::parse(r.output, nullptr, false);
    if (!list.is_object()) return nullptr;
    for (const auto& p : list.value("items", json::array()))
      for (const auto& o : p["metadata"].value("ownerReferences", json::array()))
        if (o.value("name", "") == job) return p;
    return nullptr;
  }
  static json condition(const json& pod, const std::string& type) {
    for (const auto& c : pod["status"].value("conditions", json::array()))
      if (c.value("type", "") == type) return c;
    return nullptr;
  }
  static KubeLocal* server_;
  static std::filesystem::path* image_dir_;
};
KubeLocal* ProcessKubelet::server_ = nullptr;
std::filesystem::path* ProcessKubelet::image_dir_ = nullptr;

TEST_F(ProcessKubelet, InitContainersFillAVolumeTheMainContainerRunsFrom) {
  // "tools" copies a shell into the emptyDir, "check" (second) sees it there, and the main
  // container, of an image mapped only by its PATH, runs the copy from another mountPath.
  apply("scratch",
        "      volumes: [{name: tools, emptyDir: {}}]\n"
        "      initContainers:\n"
        "      - name: tools\n        image: shell\n        env: [{name: TOOLS, value: /tools}]\n"
        "        args: ['-c', 'mkdir -p \"$TOOLS/bin\" && cp /bin/sh \"$TOOLS/bin/sh\" && echo copied && "
        "printf \"copied sh\" > \"$TERMINATION_LOG\"']\n"
        "        volumeMounts: [{name: tools, mountPath: /tools}]\n"
        "      - name: check\n        image: shell\n        env: [{name: SH, value: /tools/bin/sh}]\n"
        "        args: ['-c', 'test -x \"$SH\"']\n"
        "        volumeMounts: [{name: tools, mountPath: /tools}]\n"
        "      containers:\n"
        "      - name: db\n        image: db:15\n"
        "        command: ['/opt/tools/bin/sh', '-c', 'printf \"%s %s\" \"$(command -v dbtool)\" "
        "\"$(readlink /proc/$$/exe)\" > \"$TERMINATION_LOG\"']\n"
        "        volumeMounts: [{name: tools, mountPath: /opt/tools}]\n");
  auto r = server_->kubectl("wait --for=condition=Complete job/scratch --timeout=60s", 70);
  ASSERT_EQ(r.exit_code, 0) << r.output << server_->kubectl("get pods -o yaml").output;
  const json pod = job_pod("scratch");
  ASSERT_TRUE(pod.is_object());
  EXPECT_EQ(pod["status"]["phase"], "Succeeded");
  EXPECT_EQ(condition(pod, "Initialized").value("status", ""), "True") << pod["status"].dump();
  const json init = pod["status"].value("initContainerStatuses", json::array());
  ASSERT_EQ(init.size(), 2u) << pod["status"].dump();
  EXPECT_EQ(init[0]["name"], "tools");
  EXPECT_EQ(init[1]["name"], "check");
  for (const auto& s : init) {
    const json t = s["state"].value("terminated", json::object());
    EXPECT_EQ(t.value("exitCode", -1), 0) << s.dump();
    EXPECT_EQ(t.value("reason", ""), "Completed") << s.dump();
    EXPECT_EQ(s.value("ready", false), true) << s.dump();
  }
  EXPECT_EQ(init[0]["state"]["terminated"].value("message", ""), "copied sh");
  // One after the other: "check" started once "tools" had finished.
  EXPECT_LE(init[0]["state"]["terminated"].value("finishedAt", "~"), init[1]["state"]["terminated"].value("startedAt", ""));
  // The main container ran the copy on the emptyDir, with the image's own directory first on PATH.
  const json main = pod["status"]["containerStatuses"][0]["state"].value("terminated", json::object());
  EXPECT_EQ(main.value("exitCode", -1), 0) << main.dump();
  const std::string message = main.value("message", "");
  EXPECT_TRUE(message.starts_with((*image_dir_ / "dbtool").string() + " ")) << message;
  EXPECT_TRUE(message.ends_with("/volumes/tools/bin/sh")) << message;
  // Each container's output is its own: `kubectl logs -c` an init container.
  const std::string name = pod["metadata"]["name"];
  r = server_->kubectl("logs " + name + " -c tools");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "copied\n");
  EXPECT_EQ(server_->kubectl("logs " + name + " -c db").output, "");
}

TEST_F(ProcessKubelet, WhileInitContainersRunThePodIsPendingAndNotInitialized) {
  const auto gate = server_->dir() / "init-gate";
  apply("gated",
        "      initContainers:\n"
        "      - name: wait\n        image: shell\n"
        "        args: ['-c', 'while [ ! -e " + gate.string() + " ]; do sleep 0.05; done']\n"
        "      containers:\n      - name: main\n        image: shell\n        args: ['-c', 'true']\n");
  json pod;
  // The init container waits on the gate file: the Pod must be seen Pending while it runs.
  ASSERT_TRUE(eventually(
      [&] {
        pod = job_pod("gated");
        return pod.is_object() && pod["status"].value("initContainerStatuses", json::array()).size() == 1 &&
               pod["status"]["initContainerStatuses"][0]["state"].contains("running");
      },
      std::chrono::seconds(30)))
      << pod.dump();
  EXPECT_EQ(pod["status"]["phase"], "Pending");
  const json initialized = condition(pod, "Initialized");
  EXPECT_EQ(initialized.value("status", ""), "False");
  EXPECT_EQ(initialized.value("reason", ""), "ContainersNotInitialized");
  EXPECT_EQ(initialized.value("message", ""), "containers with incomplete status: [wait]");
  EXPECT_EQ(pod["status"]["containerStatuses"][0]["state"]["waiting"].value("reason", ""), "PodInitializing");
  write_file(gate, "");
  auto r = server_->kubectl("wait --for=condition=Complete job/gated --timeout=60s", 70);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  pod = job_pod("gated");
  EXPECT_EQ(pod["status"]["phase"], "Succeeded");
  EXPECT_EQ(pod["status"]["initContainerStatuses"][0]["state"]["terminated"].value("reason", ""), "Completed");
}

TEST_F(ProcessKubelet, AFailedInitContainerFailsThePodAndNothingAfterItRuns) {
  const auto marks = server_->dir() / "marks";
  std::filesystem::create_directories(marks);
  apply("broken",
        "      initContainers:\n"
        "      - name: fail\n        image: shell\n"
        "        args: ['-c', 'printf \"no tools here\" > \"$TERMINATION_LOG\"; exit 3']\n"
        "      - name: never\n        image: shell\n        args: ['-c', 'touch " + (marks / "never").string() + "']\n"
        "      containers:\n      - name: main\n        image: shell\n"
        "        args: ['-c', 'touch " + (marks / "main").string() + "']\n");
  auto r = server_->kubectl("wait --for=condition=Failed job/broken --timeout=60s", 70);
  ASSERT_EQ(r.exit_code, 0) << r.output << server_->kubectl("get pods -o yaml").output;
  const json pod = job_pod("broken");
  ASSERT_TRUE(pod.is_object());
  EXPECT_EQ(pod["status"]["phase"], "Failed");
  const json init = pod["status"].value("initContainerStatuses", json::array());
  ASSERT_EQ(init.size(), 2u) << pod["status"].dump();
  const json failed = init[0]["state"].value("terminated", json::object());
  EXPECT_EQ(failed.value("exitCode", 0), 3) << init[0].dump();
  EXPECT_EQ(failed.value("reason", ""), "Error");
  EXPECT_EQ(failed.value("message", ""), "no tools here");
  EXPECT_EQ(init[1]["state"]["waiting"].value("reason", ""), "PodInitializing") << init[1].dump();
  EXPECT_EQ(pod["status"]["containerStatuses"][0]["state"]["waiting"].value("reason", ""), "PodInitializing");
  const json initialized = condition(pod, "Initialized");
  EXPECT_EQ(initialized.value("status", ""), "False");
  EXPECT_EQ(initialized.value("message", ""), "containers with incomplete status: [fail never]");
  EXPECT_FALSE(std::filesystem::exists(marks / "never"));
  EXPECT_FALSE(std::filesystem::exists(marks / "main"));
  // The Job controller counts it as any failed Pod.
  const json job = json::parse(server_->kubectl("get job broken -o json").output, nullptr, false);
  ASSERT_TRUE(job.is_object());
  EXPECT_EQ(job["status"].value("failed", 0), 1) << job["status"].dump();
}

TEST_F(ProcessKubelet, ACommandMissingFromItsVolumeIsAStartError) {
  apply("missing",
        "      volumes: [{name: tools, emptyDir: {}}]\n"
        "      containers:\n      - name: db\n        image: db:15\n        command: ['/tools/ld.so', 'x']\n"
        "        volumeMounts: [{name: tools, mountPath: /tools}]\n");
  auto r = server_->kubectl("wait --for=condition=Failed job/missing --timeout=60s", 70);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json pod = job_pod("missing");
  ASSERT_TRUE(pod.is_object());
  const json t = pod["status"]["containerStatuses"][0]["state"].value("terminated", json::object());
  EXPECT_EQ(t.value("reason", ""), "StartError") << t.dump();
  EXPECT_EQ(t.value("exitCode", 0), 128);
  EXPECT_NE(t.value("message", "").find("No such file or directory"), std::string::npos) << t.dump();
}

}  // namespace

namespace {

// Watches one Pod from `rv` on a thread of its own, keeping every event until it is DELETED.
class PodWatch {
 public:
  PodWatch(const KubeLocal& server, const std::string& ns, const std::string& name, const std::string& rv)
      : client_(server.client({1})) {
    thread_ = std::thread([this, ns, name, rv] {
      bo::kube::WatchOptions opts;
      opts.field_selector = "metadata.name=" + name;
      opts.resource_version = rv;
      opts.timeout_seconds = 120;
      (void)client_->watch(bo::kube::resources::kPods, ns, opts, [this](const bo::kube::WatchEvent& ev) {
        std::lock_guard lock(mu_);
        if (ev.type == bo::kube::WatchEvent::Type::kBookmark) return true;
        events_.push_back(ev);
        if (ev.type == bo::kube::WatchEvent::Type::kDeleted && on_deleted_) on_deleted_(ev.object);
        return ev.type != bo::kube::WatchEvent::Type::kDeleted;
      });
    });
  }
  ~PodWatch() { join(); }
  // Runs on the watch's thread the moment DELETED arrives (set before the deletion starts).
  void on_deleted(std::function<void(const json&)> fn) {
    std::lock_guard lock(mu_);
    on_deleted_ = std::move(fn);
  }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] std::vector<bo::kube::WatchEvent> events() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  std::unique_ptr<bo::kube::Client> client_;
  std::mutex mu_;
  std::vector<bo::kube::WatchEvent> events_;
  std::function<void(const json&)> on_deleted_;
  std::thread thread_;
};

// What a watcher saw of a graceful deletion: MODIFIED with deletionTimestamp first, DELETED last.
void expect_terminating_then_deleted(const std::vector<bo::kube::WatchEvent>& events) {
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type, bo::kube::WatchEvent::Type::kDeleted);
  size_t terminating = events.size();
  for (size_t i = 0; i < events.size(); ++i)
    if (events[i].type == bo::kube::WatchEvent::Type::kModified &&
        events[i].object["metadata"].contains("deletionTimestamp")) {
      terminating = i;
      break;
    }
  EXPECT_LT(terminating + 1, events.size()) << "no MODIFIED event with a deletionTimestamp before DELETED";
}

// The terminated state of a Pod's first container (an empty object when it has none).
json terminated_of(json pod) {
  return pod["status"]["containerStatuses"][0]["state"].value("terminated", json::object());
}

json get_json(const KubeLocal& server, const std::string& args) {
  return json::parse(server.kubectl("get " + args + " -o json").output, nullptr, false);
}

TEST_F(ProcessKubelet, ADeletedPodIsTerminatingUntilItsProcessHasStoppedAfterSigterm) {
  const auto mark = server_->dir() / "graceful-term";
  const auto gate = server_->dir() / "graceful-gate";
  // On SIGTERM the container notes it, then finishes only once the gate opens: the Pod must stay
  // (Terminating) while its process runs, and go as soon as it ends, long before its 60 s.
  const auto f = write_file(server_->dir() / "graceful.yaml",
                            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: graceful\n  annotations:\n"
                            "    kube-local.si.dev/pod-outcome: '{\"exec\": true}'\nspec:\n"
                            "  terminationGracePeriodSeconds: 60\n  containers:\n  - name: main\n    image: shell\n"
                            "    args: ['-c', 'trap \"echo TERM > " + mark.string() + "; while [ ! -e " + gate.string() +
                                " ]; do sleep 0.05; done; exit 0\" TERM; echo started; while :; do sleep 0.05; done']\n");
  auto r = server_->kubectl("apply -f " + f);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The trap is set once the shell says so.
  ASSERT_TRUE(eventually([&] { return server_->kubectl("logs graceful").output == "started\n"; }, std::chrono::seconds(30)));
  json pod = get_json(*server_, "pod graceful");
  ASSERT_TRUE(pod.is_object());
  EXPECT_EQ(pod["status"]["phase"], "Running");
  PodWatch watch(*server_, "default", "graceful", pod["metadata"]["resourceVersion"]);
  const auto started = std::chrono::steady_clock::now();
  r = server_->kubectl("delete pod graceful --wait=false");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  pod = get_json(*server_, "pod graceful");
  ASSERT_TRUE(pod.is_object()) << "the Pod went before its process stopped";
  EXPECT_TRUE(pod["metadata"].contains("deletionTimestamp")) << pod["metadata"].dump();
  EXPECT_EQ(pod["metadata"].value("deletionGracePeriodSeconds", -1), 60);
  EXPECT_NE(server_->kubectl("get pod graceful").output.find("Terminating"), std::string::npos);
  // SIGTERM came; the process, and so the Pod, is still there.
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(mark); }, std::chrono::seconds(20)));
  EXPECT_TRUE(get_json(*server_, "pod graceful").is_object());
  // A second delete changes nothing (the grace is pending).
  EXPECT_EQ(server_->kubectl("delete pod graceful --wait=false").exit_code, 0);
  EXPECT_EQ(get_json(*server_, "pod graceful")["metadata"].value("deletionGracePeriodSeconds", -1), 60);
  write_file(gate, "");
  r = server_->kubectl("wait --for=delete pod/graceful --timeout=30s", 40);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(40));
  watch.join();
  const auto events = watch.events();
  expect_terminating_then_deleted(events);
  if (!events.empty()) {
    EXPECT_EQ(terminated_of(events.back().object).value("exitCode", -1), 0) << events.back().object.dump();
  }
}

TEST_F(ProcessKubelet, AProcessIgnoringSigtermIsKilledAtTheGracePeriodsEnd) {
  const auto mark = server_->dir() / "stubborn-term";
  const auto f = write_file(server_->dir() / "stubborn.yaml",
                            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: stubborn\n  annotations:\n"
                            "    kube-local.si.dev/pod-outcome: '{\"exec\": true}'\nspec:\n"
                            "  terminationGracePeriodSeconds: 3\n  containers:\n  - name: main\n    image: shell\n"
                            "    args: ['-c', 'trap \"echo TERM >> " + mark.string() +
                                "\" TERM; echo started; while :; do sleep 0.05; done']\n");
  auto r = server_->kubectl("apply -f " + f);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(eventually([&] { return server_->kubectl("logs stubborn").output == "started\n"; }, std::chrono::seconds(30)));
  const json pod = get_json(*server_, "pod stubborn");
  ASSERT_TRUE(pod.is_object());
  PodWatch watch(*server_, "default", "stubborn", pod["metadata"]["resourceVersion"]);
  const auto started = std::chrono::steady_clock::now();
  r = server_->kubectl("delete pod stubborn --wait=false");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(mark); }, std::chrono::seconds(20)));
  r = server_->kubectl("wait --for=delete pod/stubborn --timeout=30s", 40);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto took = std::chrono::steady_clock::now() - started;
  // SIGKILL only once the 3 s are over (kube-local runs at --time-scale 1 here), and soon after.
  EXPECT_GE(took, std::chrono::seconds(3));
  EXPECT_LT(took, std::chrono::seconds(15));
  watch.join();
  const auto events = watch.events();
  expect_terminating_then_deleted(events);
  if (!events.empty()) {
    EXPECT_EQ(terminated_of(events.back().object).value("exitCode", -1), 137) << events.back().object.dump();
  }
}

TEST_F(ProcessKubelet, DeletingARunningJobPodStopsItAndTheJobMakesAnother) {
  const auto marks = server_->dir() / "job-attempts";
  std::filesystem::create_directories(marks);
  // The first Pod waits forever (its pid noted); the second finds the first one's mark and succeeds.
  apply("retried",
        "      containers:\n      - name: main\n        image: shell\n"
        "        args: ['-c', 'if [ -e " + (marks / "first").string() + " ]; then exit 0; fi; echo $$ > " +
            (marks / "first").string() + "; echo started; exec sleep 1000']\n");
  json first;
  ASSERT_TRUE(eventually([&] {
    first = job_pod("retried");
    return first.is_object() && server_->kubectl("logs " + first["metadata"].value("name", "")).output == "started\n";
  }, std::chrono::seconds(30)));
  // kubectl waits for the Pod to be gone: its process stops on SIGTERM, well within the grace period.
  auto r = server_->kubectl("delete pod " + first["metadata"].value("name", "") + " --timeout=30s", 40);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(::kill(std::stoi(testing_support::run("cat " + (marks / "first").string()).output), 0), 0)
      << "the deleted Pod's process still runs";
  r = server_->kubectl("wait --for=condition=Complete job/retried --timeout=60s", 70);
  ASSERT_EQ(r.exit_code, 0) << r.output << server_->kubectl("get pods -o yaml").output;
}

TEST_F(ProcessKubelet, ANamespaceGoesOnceItsRunningPodsHaveStopped) {
  ASSERT_EQ(server_->kubectl("create namespace leaving").exit_code, 0);
  const auto pid_file = server_->dir() / "sleeper.pid";
  const auto f = write_file(server_->dir() / "leaving.yaml",
                            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sleeper\n  namespace: leaving\n  annotations:\n"
                            "    kube-local.si.dev/pod-outcome: '{\"exec\": true}'\nspec:\n  containers:\n"
                            "  - name: main\n    image: shell\n    args: ['-c', 'echo $$ > " + pid_file.string() +
                                "; echo started; exec sleep 1000']\n");
  ASSERT_EQ(server_->kubectl("apply -f " + f).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return server_->kubectl("-n leaving logs sleeper").output == "started\n"; },
                         std::chrono::seconds(30)));
  const pid_t pid = std::stoi(testing_support::run("cat " + pid_file.string()).output);
  ASSERT_EQ(::kill(pid, 0), 0);
  auto r = server_->kubectl("delete namespace leaving --timeout=60s", 70);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(server_->kubectl("get namespace leaving").exit_code, 0);
  EXPECT_NE(::kill(pid, 0), 0) << "the namespace went, its Pod's process still runs";
}

// The database StatefulSet of an in-place restore, run for real: PostgreSQL 15 from Debian's
// binaries as the image supabase/postgres's programs, initdb'd into its claim by an init container,
// as nobody (PostgreSQL refuses root).
class ProcessKubeletPostgres : public ::testing::Test {
 protected:
  static constexpr const char* kBin = "/usr/lib/postgresql/15/bin";
  static void SetUpTestSuite() {
    if (geteuid() != 0) return;  // the Pod runs as nobody: only root can start it so
    volumes_ = new std::filesystem::path(make_temp_dir("pg-claims"));
    ::chmod(volumes_->c_str(), 0755);  // nobody reaches its claim below
    server_ = new KubeLocal({"--exec-image-path", std::string("supabase/postgres:15.8.1.060=") + kBin, "--volume-root",
                             volumes_->string()});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    if (volumes_) {
      std::error_code ec;
      std::filesystem::remove_all(*volumes_, ec);
      delete volumes_;
      volumes_ = nullptr;
    }
  }
  void SetUp() override {
    if (!server_) GTEST_SKIP() << "the database runs as nobody: only root can start it so";
  }
  static testing_support::CommandResult psql(int port, const std::string& sql) {
    return testing_support::run(std::string(kBin) + "/psql -h 127.0.0.1 -p " + std::to_string(port) +
                                    " -U postgres -d postgres -v ON_ERROR_STOP=1 -Atc \"" + sql + "\"",
                                20);
  }
  static KubeLocal* server_;
  static std::filesystem::path* volumes_;
};
KubeLocal* ProcessKubeletPostgres::server_ = nullptr;
std::filesystem::path* ProcessKubeletPostgres::volumes_ = nullptr;

TEST_F(ProcessKubeletPostgres, AStatefulSetScaledToZeroStopsPostgresCleanlyAndScaledBackKeepsItsData) {
  // The manifest names the port, and the Pod comes back on it after the scale to zero.
  const int port = testing_support::port_below_ephemeral_range();
  const auto f = write_file(server_->dir() / "db.yaml", R"(apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata:
      labels: {app: db}
      annotations: {kube-local.si.dev/pod-outcome: '{"exec": true}'}
    spec:
      securityContext: {runAsUser: 65534, runAsGroup: 65534, fsGroup: 65534}
      initContainers:
      - name: initdb
        image: supabase/postgres:15.8.1.060
        command: [sh, -c, 'test -s "$PGDATA/PG_VERSION" || initdb -D "$PGDATA" -U postgres -A trust']
        env: [{name: PGDATA, value: /var/lib/postgresql/data/pgdata}]
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
      containers:
      - name: postgres
        image: supabase/postgres:15.8.1.060
        command: [postgres, -D, /var/lib/postgresql/data/pgdata, -p, ')" + std::to_string(port) + R"(',
                  -c, listen_addresses=127.0.0.1, -c, unix_socket_directories=]
        readinessProbe: {tcpSocket: {port: )" + std::to_string(port) + R"(}, periodSeconds: 1}
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
)");
  auto r = server_->kubectl("apply -f " + f);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto diagnose = [&] {
    return server_->kubectl("get pods -o yaml").output + server_->kubectl("logs db-0 -c initdb").output +
           server_->kubectl("logs db-0 -c postgres").output;
  };
  // Ready means the readiness probe (tcpSocket) connected: PostgreSQL answers at once.
  auto ready_replicas = [&] { return get_json(*server_, "statefulset db")["status"].value("readyReplicas", 0); };
  ASSERT_TRUE(eventually([&] { return ready_replicas() == 1; }, std::chrono::seconds(90))) << diagnose();
  EXPECT_EQ(psql(port, "select 1").output, "1\n") << diagnose();
  // While its process runs the Pod is Running and Ready, its container running: what the
  // operator's workload check looks for.
  json pod = get_json(*server_, "pod db-0");
  ASSERT_TRUE(pod.is_object());
  EXPECT_EQ(pod["status"]["phase"], "Running");
  for (const char* type : {"Ready", "ContainersReady"}) {
    std::string status;
    for (const auto& c : pod["status"]["conditions"])
      if (c["type"] == type) status = c["status"];
    EXPECT_EQ(status, "True") << type;
  }
  EXPECT_TRUE(pod["status"]["containerStatuses"][0]["state"].contains("running")) << pod["status"].dump();
  EXPECT_EQ(pod["status"]["containerStatuses"][0].value("ready", false), true);
  ASSERT_EQ(psql(port, "create table t (x text); insert into t values ('before')").exit_code, 0);

  const auto pgdata = *volumes_ / "default" / "data-db-0" / "pgdata";
  std::string postmaster;
  {
    std::ifstream pid_file(pgdata / "postmaster.pid");
    std::getline(pid_file, postmaster);
  }
  ASSERT_FALSE(postmaster.empty());
  const pid_t pid = std::stoi(postmaster);
  ASSERT_EQ(::kill(pid, 0), 0);
  const std::string old_uid = pod["metadata"]["uid"];
  // The moment the Pod object disappears, the postmaster must already be gone, having removed
  // postmaster.pid in its clean (smart) shutdown.
  PodWatch watch(*server_, "default", "db-0", pod["metadata"]["resourceVersion"]);
  bool alive_at_deletion = true, pid_file_at_deletion = true;
  watch.on_deleted([&](const json&) {
    alive_at_deletion = ::kill(pid, 0) == 0;
    pid_file_at_deletion = std::filesystem::exists(pgdata / "postmaster.pid");
  });
  r = server_->kubectl("scale statefulset db --replicas=0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  watch.join();
  expect_terminating_then_deleted(watch.events());
  EXPECT_FALSE(alive_at_deletion) << "the Pod went while its postmaster still ran";
  EXPECT_FALSE(pid_file_at_deletion) << "postmaster.pid left behind: no clean shutdown";
  EXPECT_NE(psql(port, "select 1").exit_code, 0);
  EXPECT_TRUE(eventually([&] {
    const json scale = get_json(*server_, "--subresource=scale statefulset db");
    return scale.is_object() && scale["status"].value("replicas", -1) == 0;
  }));

  // Scaled back: a new Pod, a new process, the same claim and data.
  r = server_->kubectl("scale statefulset db --replicas=1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(eventually([&] { return ready_replicas() == 1; }, std::chrono::seconds(90))) << diagnose();
  EXPECT_EQ(psql(port, "select x from t").output, "before\n") << diagnose();
  pod = get_json(*server_, "pod db-0");
  ASSERT_TRUE(pod.is_object());
  EXPECT_NE(pod["metadata"]["uid"], old_uid);
  for (const auto& v : pod["spec"].value("volumes", json::array()))
    if (v.value("name", "") == "data") {
      EXPECT_EQ(v.value("persistentVolumeClaim", json::object()).value("claimName", ""), "data-db-0");
    }

  // Leave nothing running: scaled down, the server stops cleanly again.
  r = server_->kubectl("scale statefulset db --replicas=0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(server_->kubectl("wait --for=delete pod/db-0 --timeout=60s", 70).exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(pgdata / "postmaster.pid"));
}

}  // namespace
