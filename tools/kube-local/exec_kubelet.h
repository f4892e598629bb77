// kube-local's process kubelet: Pods whose outcome is {"exec": true} and
// whose first container's image is mapped with --exec-image really run, as a
// local process, instead of having a simulated outcome. What a kubelet
// would do with namespaces and mounts is approximated so the same Job spec
// works unchanged:
//   - env: value, secretKeyRef (read from the stored Secret, only into the
//     child's environment), fieldRef metadata.name/namespace;
//   - volumes: a PersistentVolumeClaim is the directory
//     <--volume-root>/<namespace>/<claim> (subPath honoured), an emptyDir a
//     fresh directory per Pod; each mountPath appearing in an argument or env
//     value (at its start or after ':' or '=') is rewritten to that
//     directory. readOnly is not enforced (no mount namespace here);
//   - the termination message: TERMINATION_LOG points at a file the Pod's
//     status then reports (capped at 4096 bytes, as a kubelet does);
//   - identity: when kube-local runs as root, the process runs as the
//     securityContext's runAsUser/runAsGroup (the container's over the
//     Pod's) with fsGroup as a supplementary group, and a claim directory
//     kube-local creates for such a Pod belongs to that user (mode 0700), as
//     a provisioner's fresh volume made writable by fsGroup would be; an
//     emptyDir is world-writable, as a kubelet makes it.
// The process is killed when its Pod is deleted (activeDeadlineSeconds,
// Job deletion) and when kube-local stops.
#pragma once
#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

namespace kl {

using json = nlohmann::json;

struct ExecOptions {
  std::map<std::string, std::string> images;  // image -> local program
  std::filesystem::path volume_root;          // claims live under <volume_root>/<namespace>/<claim>
  std::vector<std::string> path;              // directories first on the PATH (the image's own programs)
};

using SecretReader =
    std::function<std::optional<std::map<std::string, std::string>>(const std::string& ns, const std::string& name)>;

struct Prepared {
  std::string program;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::string error;  // why the container cannot start (CreateContainerConfigError)
  // -1: unchanged (kube-local's own identity).
  long long uid = -1, gid = -1, fs_group = -1;
};

// The process a Pod's first container becomes, given its Pod directory
// (creating the directories its mounts map to; no other effect).
[[nodiscard]] Prepared prepare_process(const json& pod, const ExecOptions& opts, const std::filesystem::path& pod_dir,
                                       const SecretReader& secrets);

struct ExecResult {
  int exit_code = 0;
  std::string reason;   // Completed | Error | CreateContainerConfigError | Killed
  std::string message;  // the termination message
};

class ExecKubelet {
 public:
  explicit ExecKubelet(ExecOptions opts);
  ~ExecKubelet();
  ExecKubelet(const ExecKubelet&) = delete;
  ExecKubelet& operator=(const ExecKubelet&) = delete;

  [[nodiscard]] bool handles(const json& pod) const;
  [[nodiscard]] bool running(const std::string& ns, const std::string& name) const;
  // Whether this process kubelet started the Pod (by uid): a Running exec
  // Pod it never started lost its process when kube-local restarted.
  [[nodiscard]] bool started(const std::string& uid) const;
  // Starts the Pod's process; `done` runs on another thread when it ends.
  void start(const json& pod, const SecretReader& secrets, std::function<void(const ExecResult&)> done);
  void kill(const std::string& ns, const std::string& name);
  // The output file of a Pod this kubelet started (stdout and stderr), for pods/log.
  [[nodiscard]] std::optional<std::filesystem::path> log_path(const json& pod) const;

 private:
  ExecOptions opts_;
  std::filesystem::path pods_dir_;
  mutable std::mutex mu_;
  std::map<std::string, pid_t> pids_;  // ns/name -> pid
  std::set<std::string> started_;       // Pod uids
  struct Waiter {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  void add_waiter(std::function<void()> body);  // with mu_ held
  std::vector<Waiter> waiters_;
  bool stopping_ = false;
};

}  // namespace kl
