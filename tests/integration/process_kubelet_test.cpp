// kube-local's process kubelet with init containers, a command from a volume
// and an image's own PATH, through the real kubectl: the shape of the
// operator's scratch verification Pod (an init container copies programs into
// an emptyDir, the main container, of an image that has none of them, runs
// them from there), what the Pod's status says while and after its init
// containers run, and a failing init container failing the Pod and its Job.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

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
