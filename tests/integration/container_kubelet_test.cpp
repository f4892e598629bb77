// kube-local's container kubelet (--exec-runtime podman) against the real
// rootful podman and the local debian:12-slim image (scripts/base-images.sh):
// each securityContext item a Kubernetes kubelet honours, seen from inside
// the container (id, /proc/self/status, writes that fail), env from a Secret
// kept off every argv, emptyDir shared by an init container and the main one,
// a claim directory, the termination message, logs, StartError, and a
// deleted Pod's container stopped (SIGTERM, SIGKILL at the grace period's end)
// and removed. Built as its own binary, ctest label `container`.
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <random>

#include "common/encoding.h"
#include "harness.h"

using testing_support::eventually;
using testing_support::KubeLocal;
using testing_support::make_temp_dir;
using testing_support::run;
using testing_support::write_file;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kImage = "debian:12-slim";

class ContainerKubelet : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // No silent skip: a machine without podman or the image fails, saying what to run.
    const auto podman = run("podman --version");
    const auto image = run("podman image exists docker.io/library/debian:12-slim");
    if (podman.exit_code != 0 || image.exit_code != 0) {
      missing_ = new std::string("podman or the image docker.io/library/debian:12-slim is missing (" + podman.output +
                                 "): run scripts/setup.sh, then scripts/base-images.sh");
      return;
    }
    volume_root_ = new fs::path(make_temp_dir("container-kubelet-volumes"));
    ::chmod(volume_root_->c_str(), 0755);
    server_ = new KubeLocal(runtime_args());
  }
  // kube-local as the tests start it: podman with what these machines need (runc, explicit ulimits).
  static std::vector<std::string> runtime_args() {
    return {"--exec-runtime", "podman", "--exec-runtime-option=--runtime=runc",
            "--exec-runtime-option=--ulimit=nofile=1024:4096", "--exec-runtime-option=--ulimit=nproc=4096:4096",
            "--volume-root", volume_root_->string()};
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    if (volume_root_) {
      std::error_code ec;
      fs::remove_all(*volume_root_, ec);
    }
    delete volume_root_;
    volume_root_ = nullptr;
    delete missing_;
    missing_ = nullptr;
  }
  void SetUp() override {
    if (missing_) FAIL() << *missing_;
  }

  // A Pod kube-local runs for real ({"exec": true}), restartPolicy Never.
  static void create_pod(const std::string& name, json spec, KubeLocal* on = server_) {
    spec["restartPolicy"] = spec.value("restartPolicy", "Never");
    const json pod = {{"apiVersion", "v1"}, {"kind", "Pod"},
                      {"metadata", {{"name", name}, {"annotations", {{"kube-local.si.dev/pod-outcome", "{\"exec\": true}"}}}}},
                      {"spec", spec}};
    const auto f = write_file(on->dir() / (name + ".json"), pod.dump());
    const auto r = on->kubectl("apply -f " + f);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static json get_pod(const std::string& name, KubeLocal* on = server_) {
    return json::parse(on->kubectl("get pod " + name + " -o json").output, nullptr, false);
  }
  // The Pod once it has ended (Succeeded or Failed); null if it did not within the deadline.
  static json ended_pod(const std::string& name, KubeLocal* on = server_) {
    json pod;
    const bool ended = eventually(
        [&] {
          pod = get_pod(name, on);
          // No status yet right after the Pod is made.
          const std::string phase = pod.is_object() ? pod.value("status", json::object()).value("phase", "") : "";
          return phase == "Succeeded" || phase == "Failed";
        },
        std::chrono::seconds(90), std::chrono::milliseconds(100));
    return ended ? pod : json();
  }
  static json terminated(const json& pod, const char* list = "containerStatuses", size_t i = 0) {
    return pod["status"].value(list, json::array()).at(i)["state"].value("terminated", json::object());
  }
  // The runtime's containers of a Pod, by the name prefix kube-local gives them.
  static std::string runtime_containers(const std::string& uid) {
    return run("podman ps -a --filter name=^kube-local-" + uid + "- --format '{{.Names}}'").output;
  }
  static json container(const std::string& name, const std::string& script) {
    return {{"name", name}, {"image", kImage}, {"command", {"/bin/sh", "-c"}}, {"args", {script}}};
  }
  static std::string* missing_;
  static KubeLocal* server_;
  static fs::path* volume_root_;
};
std::string* ContainerKubelet::missing_ = nullptr;
KubeLocal* ContainerKubelet::server_ = nullptr;
fs::path* ContainerKubelet::volume_root_ = nullptr;

TEST_F(ContainerKubelet, UserGroupsAndVolumeOwnershipAreTheSecurityContexts) {
  // The claim exists already, with a file of root's in it, as a provisioned volume with data would.
  const fs::path claim = *volume_root_ / "default" / "ids-data";
  fs::create_directories(claim);
  write_file(claim / "old", "x");
  json c = container("main",
                     "printf '%s|%s|%s|%s|%s|' \"$(id -u)\" \"$(id -g)\" \"$(id -G)\" \"$(stat -c %g /scratch)\" "
                     "\"$(stat -c %g /data/old)\" > /dev/termination-log && touch /scratch/new /data/new && "
                     "printf %s \"$(stat -c %g /scratch/new)\" >> /dev/termination-log");
  c["volumeMounts"] = {{{"name", "scratch"}, {"mountPath", "/scratch"}}, {{"name", "data"}, {"mountPath", "/data"}}};
  create_pod("ids", {{"securityContext", {{"runAsUser", 1234}, {"runAsGroup", 2345}, {"fsGroup", 3456}, {"supplementalGroups", {4567}}}},
                     {"volumes", {{{"name", "scratch"}, {"emptyDir", json::object()}},
                                  {{"name", "data"}, {"persistentVolumeClaim", {{"claimName", "ids-data"}}}}}},
                     {"containers", {c}}});
  const json pod = ended_pod("ids");
  ASSERT_TRUE(pod.is_object()) << server_->kubectl("get pod ids -o yaml").output;
  const json t = terminated(pod);
  ASSERT_EQ(pod["status"]["phase"], "Succeeded") << t.dump();
  // uid, gid, groups (the primary, fsGroup, supplementalGroups), the emptyDir's and the claim's file's
  // group (fsGroup), and a new file's (setgid directory).
  EXPECT_EQ(t.value("message", ""), "1234|2345|2345 3456 4567|3456|3456|3456") << t.dump();
  struct stat st {};
  ASSERT_EQ(::stat((claim / "new").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 3456u);
}

TEST_F(ContainerKubelet, RunAsNonRootWithAnImageRunningAsRootIsRefusedAndNoContainerIsMade) {
  create_pod("nonroot", {{"securityContext", {{"runAsNonRoot", true}}}, {"containers", {container("main", "true")}}});
  const json pod = ended_pod("nonroot");
  ASSERT_TRUE(pod.is_object()) << server_->kubectl("get pod nonroot -o yaml").output;
  EXPECT_EQ(pod["status"]["phase"], "Failed");
  const json t = terminated(pod);
  EXPECT_EQ(t.value("reason", ""), "CreateContainerConfigError") << t.dump();
  const std::string uid = pod["metadata"]["uid"];
  EXPECT_EQ(t.value("message", ""), "container has runAsNonRoot and image will run as root (pod: \"nonroot_default(" + uid +
                                        ")\", container: main)");
  EXPECT_EQ(runtime_containers(uid), "");
}

TEST_F(ContainerKubelet, ReadOnlyRootDroppedCapabilitiesNoNewPrivilegesAndASharedEmptyDir) {
  // The init container runs with Kubernetes' defaults and leaves its view in the emptyDir; the
  // main one, restricted, reads it from there and adds its own.
  json init = container("defaults",
                        "printf '%s %s %s' \"$(grep CapEff /proc/self/status | tr -d '\\t')\" "
                        "\"$(grep NoNewPrivs /proc/self/status | tr -d '\\t')\" "
                        "\"$(touch /rootfs-probe 2>/dev/null && echo root-writable || echo root-read-only)\" > /shared/init; "
                        "echo init done");
  init["volumeMounts"] = {{{"name", "shared"}, {"mountPath", "/shared"}}};
  json main = container("restricted",
                        "r=\"$(cat /shared/init)|\"; "
                        "touch /rootfs-probe 2>/dev/null && r=\"$r root-writable\" || r=\"$r root-read-only\"; "
                        "touch /tmp/probe 2>/dev/null && r=\"$r tmp-writable\" || r=\"$r tmp-read-only\"; "
                        "touch /shared/probe && r=\"$r emptydir-writable\"; "
                        "r=\"$r $(grep CapEff /proc/self/status | tr -d '\\t') $(grep NoNewPrivs /proc/self/status | tr -d '\\t')\"; "
                        "printf '%s' \"$r\" > /dev/termination-log");
  main["volumeMounts"] = {{{"name", "shared"}, {"mountPath", "/shared"}}};
  main["securityContext"] = {{"readOnlyRootFilesystem", true},
                             {"allowPrivilegeEscalation", false},
                             {"capabilities", {{"drop", {"ALL"}}}}};
  create_pod("restricted", {{"volumes", {{{"name", "shared"}, {"emptyDir", json::object()}}}},
                            {"initContainers", {init}},
                            {"containers", {main}}});
  const json pod = ended_pod("restricted");
  ASSERT_TRUE(pod.is_object()) << server_->kubectl("get pod restricted -o yaml").output;
  const json t = terminated(pod);
  ASSERT_EQ(pod["status"]["phase"], "Succeeded") << pod["status"].dump();
  EXPECT_EQ(terminated(pod, "initContainerStatuses").value("reason", ""), "Completed");
  EXPECT_EQ(server_->kubectl("logs restricted -c defaults").output, "init done\n");
  // containerd's 14 default capabilities (podman's own 11 would be 800405fb), then the restricted container's.
  EXPECT_EQ(t.value("message", ""),
            "CapEff:00000000a80425fb NoNewPrivs:0 root-writable| root-read-only tmp-read-only emptydir-writable "
            "CapEff:0000000000000000 NoNewPrivs:1")
      << t.dump();
}

TEST_F(ContainerKubelet, ASecretValueIsInTheContainersEnvironmentButOnNoCommandLine) {
  // A fresh value each run (printed, as a seed would be), so nothing else on the machine has it.
  std::random_device rd;
  const std::string value = "pw-" + std::to_string(rd()) + "-" + std::to_string(rd());
  std::cout << "secret value for this run: " << value << std::endl;
  const json secret = {{"apiVersion", "v1"}, {"kind", "Secret"}, {"metadata", {{"name", "db-password"}}},
                       {"data", {{"password", bo::base64_encode(value)}}}};
  const auto f = write_file(server_->dir() / "secret.json", secret.dump());
  ASSERT_EQ(server_->kubectl("apply -f " + f).exit_code, 0);
  const fs::path claim = *volume_root_ / "default" / "secret-out";
  json c = container("main", "printf %s \"$PASSWORD\" > /out/seen; while [ ! -e /out/gate ]; do sleep 0.05; done");
  c["env"] = {{{"name", "PASSWORD"}, {"valueFrom", {{"secretKeyRef", {{"name", "db-password"}, {"key", "password"}}}}}}};
  c["volumeMounts"] = {{{"name", "out"}, {"mountPath", "/out"}}};
  create_pod("secret-env", {{"volumes", {{{"name", "out"}, {"persistentVolumeClaim", {{"claimName", "secret-out"}}}}}},
                            {"containers", {c}}});
  std::string seen;
  ASSERT_TRUE(eventually(
      [&] {
        std::ifstream in(claim / "seen");
        seen.assign(std::istreambuf_iterator<char>(in), {});
        return seen == value;
      },
      std::chrono::seconds(60)))
      << "the container saw: " << seen << "\n" << server_->kubectl("get pod secret-env -o yaml").output;
  // While the container runs: no process's command line has the value (podman create had it
  // only in its environment), nor the create command podman recorded.
  std::vector<std::string> with_value;
  if (DIR* proc = ::opendir("/proc")) {
    while (const dirent* e = ::readdir(proc)) {
      std::ifstream in(fs::path("/proc") / e->d_name / "cmdline", std::ios::binary);
      const std::string cmdline(std::istreambuf_iterator<char>(in), {});
      if (cmdline.find(value) != std::string::npos) with_value.push_back(e->d_name);
    }
    ::closedir(proc);
  }
  EXPECT_TRUE(with_value.empty()) << "processes with the secret on their command line: " << with_value.size();
  const json pod = get_pod("secret-env");
  const std::string uid = pod["metadata"]["uid"];
  const auto created = run("podman container inspect --format '{{json .Config.CreateCommand}}' kube-local-" + uid + "-main");
  EXPECT_EQ(created.exit_code, 0) << created.output;
  EXPECT_NE(created.output.find("--env=PASSWORD\""), std::string::npos) << created.output;
  EXPECT_EQ(created.output.find(value), std::string::npos);
  write_file(claim / "gate", "");
  const json ended = ended_pod("secret-env");
  ASSERT_TRUE(ended.is_object());
  EXPECT_EQ(ended["status"]["phase"], "Succeeded");
  EXPECT_EQ(ended.dump().find(value), std::string::npos) << "the Secret's value is in the Pod's status";
}

TEST_F(ContainerKubelet, AClaimIsTheHostDirectoryReadOnlyWhereMountedSoAndWritesPersist) {
  const fs::path claim = *volume_root_ / "default" / "files";
  fs::create_directories(claim / "in");
  write_file(claim / "in" / "input.txt", "from the host");
  json c = container("main",
                     "cat /data/in/input.txt > /dev/termination-log; echo written > /data/out.txt; "
                     "if touch /ro/probe 2>/dev/null; then exit 9; fi; "
                     "echo on stdout; echo on stderr >&2; exit 3");
  c["volumeMounts"] = {{{"name", "files"}, {"mountPath", "/data"}},
                       {{"name", "files"}, {"mountPath", "/ro"}, {"subPath", "in"}, {"readOnly", true}}};
  create_pod("claim", {{"volumes", {{{"name", "files"}, {"persistentVolumeClaim", {{"claimName", "files"}}}}}},
                       {"containers", {c}}});
  const json pod = ended_pod("claim");
  ASSERT_TRUE(pod.is_object()) << server_->kubectl("get pod claim -o yaml").output;
  EXPECT_EQ(pod["status"]["phase"], "Failed");
  const json t = terminated(pod);
  EXPECT_EQ(t.value("exitCode", -1), 3) << t.dump();
  EXPECT_EQ(t.value("reason", ""), "Error");
  EXPECT_EQ(t.value("message", ""), "from the host");
  std::ifstream out(claim / "out.txt");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(out), {}), "written\n");
  EXPECT_FALSE(fs::exists(claim / "in" / "probe"));
  // The container's output is the Pod's log; the container is gone once it ended.
  EXPECT_EQ(server_->kubectl("logs claim").output, "on stdout\non stderr\n");
  EXPECT_EQ(runtime_containers(pod["metadata"]["uid"]), "");
}

TEST_F(ContainerKubelet, ACommandTheImageDoesNotHaveIsAStartError) {
  json c = {{"name", "main"}, {"image", kImage}, {"command", {"/no/such/program"}}};
  create_pod("start-error", {{"containers", {c}}});
  const json pod = ended_pod("start-error");
  ASSERT_TRUE(pod.is_object()) << server_->kubectl("get pod start-error -o yaml").output;
  EXPECT_EQ(pod["status"]["phase"], "Failed");
  const json t = terminated(pod);
  EXPECT_EQ(t.value("exitCode", -1), 128) << t.dump();
  EXPECT_EQ(t.value("reason", ""), "StartError");
  EXPECT_NE(t.value("message", "").find("/no/such/program"), std::string::npos) << t.dump();
  EXPECT_EQ(server_->kubectl("logs start-error").output, "");
  EXPECT_EQ(runtime_containers(pod["metadata"]["uid"]), "");
}

TEST_F(ContainerKubelet, AContainerTheRuntimeRefusesIsACreateContainerErrorWithItsMessage) {
  json c = container("main", "true");
  c["securityContext"] = {{"capabilities", {{"add", {"NOT_A_CAP"}}}}};
  create_pod("bad-cap", {{"containers", {c}}});
  const json pod = ended_pod("bad-cap");
  ASSERT_TRUE(pod.is_object()) << server_->kubectl("get pod bad-cap -o yaml").output;
  EXPECT_EQ(pod["status"]["phase"], "Failed");
  const json t = terminated(pod);
  EXPECT_EQ(t.value("reason", ""), "CreateContainerError") << t.dump();
  EXPECT_EQ(t.value("message", ""), "\"CAP_NOT_A_CAP\": unknown capability");
  EXPECT_EQ(runtime_containers(pod["metadata"]["uid"]), "");
}

TEST_F(ContainerKubelet, FallbackToLogsOnErrorReportsTheEndOfAFailedContainersLog) {
  json c = container("main", "echo first; echo last words >&2; exit 2");
  c["terminationMessagePolicy"] = "FallbackToLogsOnError";
  create_pod("fallback", {{"containers", {c}}});
  const json pod = ended_pod("fallback");
  ASSERT_TRUE(pod.is_object()) << server_->kubectl("get pod fallback -o yaml").output;
  const json t = terminated(pod);
  EXPECT_EQ(t.value("exitCode", -1), 2) << t.dump();
  EXPECT_EQ(t.value("message", ""), "first\nlast words\n");
}

TEST_F(ContainerKubelet, ADeletedPodWhoseContainerEndsOnSigtermGoesLongBeforeItsGracePeriod) {
  create_pod("graceful", {{"terminationGracePeriodSeconds", 60},
                          {"containers", {container("main", "trap 'exit 0' TERM; echo started; while :; do sleep 0.05; done")}}});
  ASSERT_TRUE(eventually([&] { return server_->kubectl("logs graceful").output == "started\n"; }, std::chrono::seconds(60)))
      << server_->kubectl("get pod graceful -o yaml").output;
  const std::string uid = get_pod("graceful")["metadata"]["uid"];
  const auto started = std::chrono::steady_clock::now();
  const auto r = server_->kubectl("delete pod graceful --timeout=40s", 50);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(20));
  EXPECT_EQ(runtime_containers(uid), "");
}

TEST_F(ContainerKubelet, ADeletedPodsContainerGetsSigtermThenSigkillAtTheGracePeriodsEndAndIsRemoved) {
  const fs::path claim = *volume_root_ / "default" / "stubborn";
  // PID 1 notes SIGTERM and goes on: only SIGKILL, at the end of the 3 s grace period, ends it.
  json c = container("main", "trap 'echo TERM >> /out/signals' TERM; echo started; while :; do sleep 0.05; done");
  c["volumeMounts"] = {{{"name", "out"}, {"mountPath", "/out"}}};
  create_pod("stubborn", {{"terminationGracePeriodSeconds", 3},
                          {"volumes", {{{"name", "out"}, {"persistentVolumeClaim", {{"claimName", "stubborn"}}}}}},
                          {"containers", {c}}});
  ASSERT_TRUE(eventually([&] { return server_->kubectl("logs stubborn").output == "started\n"; }, std::chrono::seconds(60)))
      << server_->kubectl("get pod stubborn -o yaml").output;
  const std::string uid = get_pod("stubborn")["metadata"]["uid"];
  EXPECT_EQ(runtime_containers(uid), "kube-local-" + uid + "-main\n");
  const auto started = std::chrono::steady_clock::now();
  auto r = server_->kubectl("delete pod stubborn --wait=false");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_TRUE(eventually([&] { return fs::exists(claim / "signals"); }, std::chrono::seconds(20)));
  r = server_->kubectl("wait --for=delete pod/stubborn --timeout=60s", 70);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, std::chrono::seconds(3));
  EXPECT_LT(took, std::chrono::seconds(20));
  std::ifstream signals(claim / "signals");
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(signals), {}), "TERM\n");
  EXPECT_EQ(runtime_containers(uid), "");
}

TEST_F(ContainerKubelet, KubeLocalsStopRemovesItsContainersAndARestartRemovesWhatAKillLeft) {
  const fs::path data = make_temp_dir("container-kubelet-data");
  auto local = std::make_unique<KubeLocal>(runtime_args(), data);
  // A running container, until kube-local stops: then it goes with kube-local.
  auto run_sleeper = [&](const std::string& name) {
    create_pod(name, {{"containers", {container("main", "echo started; exec sleep 1000")}}}, local.get());
    EXPECT_TRUE(eventually([&] { return local->kubectl("logs " + name).output == "started\n"; }, std::chrono::seconds(60)))
        << local->kubectl("get pod " + name + " -o yaml").output;
    const std::string uid = get_pod(name, local.get())["metadata"]["uid"];
    EXPECT_EQ(runtime_containers(uid), "kube-local-" + uid + "-main\n");
    return uid;
  };
  const std::string stopped = run_sleeper("sleeper");
  local->stop(SIGTERM);
  EXPECT_EQ(runtime_containers(stopped), "");
  // Killed, kube-local cannot remove anything: the container outlives it, and kube-local started
  // again (same store) removes it as it marks the Pod failed.
  local->start();
  const std::string killed = run_sleeper("sleeper-killed");
  local->stop(SIGKILL);
  EXPECT_EQ(runtime_containers(killed), "kube-local-" + killed + "-main\n");
  local->start();
  EXPECT_TRUE(eventually([&] { return runtime_containers(killed).empty(); }, std::chrono::seconds(60)));
  const json pod = ended_pod("sleeper-killed", local.get());
  ASSERT_TRUE(pod.is_object());
  EXPECT_EQ(pod["status"]["phase"], "Failed");
  EXPECT_EQ(terminated(pod).value("message", ""), "kube-local restarted while the container ran");
  local.reset();
  std::error_code ec;
  fs::remove_all(data, ec);
}

TEST_F(ContainerKubelet, APodWhoseImageIsNotLocalIsNotRunAsAContainer) {
  // Neither in podman's storage nor mapped to a program: the simulated outcome, as without --exec-runtime.
  create_pod("elsewhere", {{"containers", {{{"name", "main"}, {"image", "registry.invalid/nothing:1"}}}}});
  const json pod = ended_pod("elsewhere");
  ASSERT_TRUE(pod.is_object()) << server_->kubectl("get pod elsewhere -o yaml").output;
  EXPECT_EQ(pod["status"]["phase"], "Succeeded");
  EXPECT_EQ(run("podman ps -a --filter label=io.kubernetes.pod.uid=" + pod["metadata"].value("uid", "") +
                " --format '{{.Names}}'").output,
            "");
}

}  // namespace
