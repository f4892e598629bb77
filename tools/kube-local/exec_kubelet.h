// kube-local's process kubelet: Pods whose outcome is {"exec": true} and
// whose containers it can run (below) really run, as local processes,
// instead of having a simulated outcome. What a kubelet would do with
// namespaces and mounts is approximated so the same Job spec works unchanged:
//   - init containers (https://kubernetes.io/docs/concepts/workloads/pods/init-containers/):
//     they run to completion one after the other, in the order of
//     spec.initContainers, each only after the previous one succeeded, and
//     the first app container starts only after all of them succeeded. While
//     they run the Pod is Pending with condition Initialized False; each one's
//     state (waiting PodInitializing, running, terminated with exitCode,
//     reason and termination message) is in status.initContainerStatuses,
//     as https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/
//     ("Container states", "Pod conditions") describes. A failed init
//     container fails the Pod: what the docs say for restartPolicy Never;
//     kube-local never restarts a container, so it does the same for
//     OnFailure (the Job controller then starts a new Pod, as it does for a
//     failed app container here);
//   - the program: a container's `command` overrides the image's entrypoint
//     (https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/),
//     resolved in the container's filesystem. When command[0] is an absolute
//     path lying under one of the container's volumeMounts (an emptyDir an
//     init container filled, say), that file runs: the mount's directory plus
//     the rest of the path. Otherwise the program mapped to the image with
//     --exec-image stands for the image's entrypoint and command[0];
//   - which images: every init container's and the first container's image
//     must be mapped (--exec-image IMAGE=PROGRAM, or --exec-image-path
//     IMAGE=DIRS), or the container's command must come from a volume. For
//     an image mapped by its directories alone, command[0] is looked up on
//     the container's PATH as a runtime does (`postgres` in
//     /usr/lib/postgresql/15/bin), or is an absolute path inside one of the
//     image's own directories; a command that is neither ends in StartError;
//   - PATH: the image's own directories (--exec-image-path), then
//     --exec-path, then /usr/local/bin:/usr/bin:/bin;
//   - env: value, secretKeyRef (read from the stored Secret, only into the
//     child's environment), fieldRef metadata.name/namespace;
//   - volumes: a PersistentVolumeClaim is the directory
//     <--volume-root>/<namespace>/<claim> (subPath honoured), an emptyDir a
//     fresh directory per Pod, the same one for every container of the Pod
//     (https://kubernetes.io/docs/concepts/storage/volumes/#emptydir); each
//     mountPath appearing in an argument or env value (at its start or after
//     ':' or '=') is rewritten to that directory. readOnly is not enforced
//     (no mount namespace here);
//   - the termination message: TERMINATION_LOG points at a file of the
//     container's own that its status then reports (capped at 4096 bytes, as
//     a kubelet does); a command that cannot be executed ends the container
//     with reason StartError and exit code 128, as containerd reports it;
//   - identity: when kube-local runs as root, each process runs as the
//     securityContext's runAsUser/runAsGroup (the container's over the
//     Pod's) with fsGroup as a supplementary group, and a claim directory
//     kube-local creates for such a Pod belongs to that user (mode 0700), as
//     a provisioner's fresh volume made writable by fsGroup would be; an
//     emptyDir is world-writable, as a kubelet makes it.
//   - stopping (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination):
//     each container is a process group of its own, started with the default
//     signal mask and dispositions, as a runtime starts a container's init
//     process. stop() sends SIGTERM to the running container's process (the
//     runtime's stop signal goes to PID 1 only) and starts no further
//     container; kill() sends SIGKILL to the whole group. When a container's
//     process ends, what is left of its group is killed, as the end of a
//     container's PID namespace ends every process in it. The grace period
//     between the two is the caller's (controllers.cpp, the Pod's deletion).
// With --exec-runtime podman, a Pod whose images are all in podman's local
// storage runs as real containers instead, on the same flow (the same
// callbacks, status, logs, stop and kill): container_kubelet.h.
// Processes are known by their Pod's uid: a Pod deleted and made again under
// the same name (a StatefulSet's) is another Pod with another process.
// Everything still running is killed when kube-local stops.
#pragma once
#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <atomic>
#include <expected>
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
  std::map<std::string, std::string> images;                    // --exec-image: image -> local program
  std::map<std::string, std::vector<std::string>> image_paths;  // --exec-image-path: image -> its own PATH directories
  std::filesystem::path volume_root;  // claims live under <volume_root>/<namespace>/<claim>
  std::vector<std::string> path;      // --exec-path: directories on every container's PATH, after the image's own
  // --exec-runtime: the container runtime's program (podman); empty: Pods run as processes only.
  std::string runtime;
  // --exec-runtime-option: inserted into every `podman create` (e.g. --runtime=runc).
  std::vector<std::string> runtime_options;
};

using SecretReader =
    std::function<std::optional<std::map<std::string, std::string>>(const std::string& ns, const std::string& name)>;

// What a kubelet reads from an image's config: its user ("" when it has none).
struct ImageInfo {
  std::string user;
};

// A container's environment variable as a kubelet resolves it; where it came
// from decides where it may appear (a Secret's value never on an argv).
enum class EnvSource { kValue, kSecret, kField };
struct EnvVar {
  std::string name;
  std::string value;
  EnvSource source = EnvSource::kValue;
};
// env: value, secretKeyRef (a missing optional one is left out), fieldRef
// metadata.name/namespace; in the spec's order, a repeated name's last value.
[[nodiscard]] std::expected<std::vector<EnvVar>, std::string> resolve_env(const json& pod, const json& container,
                                                                          const SecretReader& secrets);

// A Pod volume's host directory: a claim's <volume_root>/<namespace>/<claim>,
// an emptyDir's <pod_dir>/volumes/<name>. Other volume types are absent.
struct HostVolume {
  std::filesystem::path path;
  bool claim = false;
};
[[nodiscard]] std::expected<std::map<std::string, HostVolume>, std::string> host_volumes(
    const json& pod, const std::filesystem::path& volume_root, const std::filesystem::path& pod_dir);
// The host directory a volumeMount shows (its volume's, below subPath).
[[nodiscard]] std::expected<std::filesystem::path, std::string> mount_host_dir(const std::map<std::string, HostVolume>& volumes,
                                                                              const json& mount);

struct Prepared {
  std::string name;  // the container's
  std::string program;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  std::filesystem::path dir;  // the container's own directory: its termination message and output
  std::string error;          // why the container cannot start (CreateContainerConfigError)
  // -1: unchanged (kube-local's own identity).
  long long uid = -1, gid = -1, fs_group = -1;
};

// command[0] as a file on one of the container's volumes: the index of the
// volumeMount it lies under (the deepest) and the path below that mountPath.
struct VolumeCommand {
  size_t mount = 0;
  std::string rest;
};
[[nodiscard]] std::optional<VolumeCommand> volume_command(const json& container);

// The process a container becomes: `list` is "initContainers" or
// "containers", `index` the container's place in it, `pod_dir` the Pod's
// directory (creating the directories its mounts map to; no other effect).
[[nodiscard]] Prepared prepare_container(const json& pod, const std::string& list, size_t index,
                                         const ExecOptions& opts, const std::filesystem::path& pod_dir,
                                         const SecretReader& secrets);
// The Pod's first container.
[[nodiscard]] Prepared prepare_process(const json& pod, const ExecOptions& opts, const std::filesystem::path& pod_dir,
                                       const SecretReader& secrets);
// The Pod's init containers, in the order they run.
[[nodiscard]] std::vector<Prepared> prepare_init_containers(const json& pod, const ExecOptions& opts,
                                                            const std::filesystem::path& pod_dir,
                                                            const SecretReader& secrets);

struct ExecResult {
  int exit_code = 0;
  std::string reason;   // Completed | Error | CreateContainerConfigError | StartError | Killed
  std::string message;  // the termination message
};

// What the process kubelet reports while a Pod runs, each from the Pod's own
// thread, in this order: for each init container init_started then
// init_ended (after a failed one, nothing more); then, if the Pod has init
// containers, started; then done when the first container ended.
struct ExecCallbacks {
  std::function<void(size_t index)> init_started;
  std::function<void(size_t index, const ExecResult&)> init_ended;
  std::function<void()> started;
  std::function<void(const ExecResult&)> done;
};

struct ContainerRun;  // container_kubelet.h

class ExecKubelet {
 public:
  explicit ExecKubelet(ExecOptions opts);
  ~ExecKubelet();
  ExecKubelet(const ExecKubelet&) = delete;
  ExecKubelet& operator=(const ExecKubelet&) = delete;

  [[nodiscard]] bool handles(const json& pod) const;
  // Whether the Pod runs as containers of --exec-runtime (container_kubelet.h): decided
  // when first asked, from the runtime's local images, and the same for the Pod's whole life.
  [[nodiscard]] bool runs_as_containers(const json& pod) const;
  // Removes the runtime containers a Pod may have left behind (a kube-local killed while
  // they ran): they are named after the Pod's uid and containers.
  void remove_leftovers(const json& pod);
  // Whether the Pod with this uid has a container process (or is between two).
  [[nodiscard]] bool running(const std::string& uid) const;
  // Whether this process kubelet started the Pod (by uid): a Running exec
  // Pod it never started lost its process when kube-local restarted.
  [[nodiscard]] bool started(const std::string& uid) const;
  // Starts the Pod's containers, one after the other, on a thread of the Pod's own.
  void start(const json& pod, const SecretReader& secrets, ExecCallbacks callbacks);
  // SIGTERM to the running container's process; no further container starts.
  void stop(const std::string& uid);
  // SIGKILL to the running container's process group; no further container starts.
  void kill(const std::string& uid);
  // The output file (stdout and stderr) of a container of a Pod this kubelet started, for pods/log.
  [[nodiscard]] std::optional<std::filesystem::path> log_path(const json& pod, const std::string& container) const;

 private:
  ExecOptions opts_;
  std::filesystem::path pods_dir_;
  mutable std::mutex mu_;
  // Pod uid -> the running container's pid (its process group), 0 between two containers;
  // present while the Pod runs.
  std::map<std::string, pid_t> pids_;
  std::set<std::string> killed_;  // Pod uids: start no further container
  void signal(const std::string& uid, int sig, bool group);
  // Runs one prepared container to its end; nullopt when the Pod was killed before it started.
  std::optional<ExecResult> run_container(const std::string& key, const std::filesystem::path& pod_dir, const Prepared& p);
  // The same for a container of the runtime; `owned`: the volumes whose fsGroup ownership is done.
  std::optional<ExecResult> run_runtime_container(const std::string& key, const ContainerRun& run,
                                                  std::set<std::filesystem::path>& owned);
  // Sends the signal to the Pod's running runtime container, from a thread of its own, retried while
  // the container is still being started (podman refuses to signal one that is not running yet).
  void signal_runtime(const std::string& uid, const std::string& runtime_name, int sig);  // with mu_ held
  // Pod uid -> the images' config when the Pod runs as containers, nullopt when it does not.
  mutable std::map<std::string, std::optional<std::map<std::string, ImageInfo>>> runtime_pods_;
  std::map<std::string, std::string> runtime_names_;  // Pod uid -> its current runtime container
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
