// kube-local's container kubelet: with --exec-runtime podman, an exec Pod
// (outcome {"exec": true}) whose init containers' and first container's
// images are all in podman's local storage runs as real containers, one
// after the other, on the process kubelet's flow (exec_kubelet.h: the same
// callbacks, status, logs, stop and kill). Which Pods:
//   - --exec-runtime given and every image present locally (`podman image
//     inspect`, asked once per image when the Pod is first seen): containers,
//     even when --exec-image also maps an image (the real image wins, but
//     only when a runtime is asked for, so nothing changes without it);
//   - otherwise the process path when it can run the Pod, else the simulated
//     outcome, as without --exec-runtime. Nothing is ever pulled (--pull=never).
// What a kubelet would do, from the Pod spec (the container's securityContext
// over the Pod's, pkg/securitycontext DetermineEffectiveSecurityContext):
//   - one `podman create` per container, named kube-local-<pod uid>-<container>
//     (a leftover of a killed kube-local can be found and removed; --replace
//     removes one of the same name) and labelled io.kubernetes.pod.{name,
//     namespace,uid} and io.kubernetes.container.name as the kubelet labels
//     its containers; then `podman start --attach` with its stdout and stderr
//     in the container's log file (pods/log reads it); removed once it ended;
//   - image: normalised as a Docker reference, as containerd does
//     (distribution/reference ParseNormalizedNamed: debian:12-slim is
//     docker.io/library/debian:12-slim);
//   - command replaces the image's entrypoint (--entrypoint as a JSON array,
//     which also drops the image's CMD, as Kubernetes does), args its CMD
//     (https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/);
//     workingDir -> --workdir;
//   - user (kuberuntime_container_linux.go, containerd generateUserString):
//     runAsUser[:runAsGroup]; runAsGroup alone goes with the image's user (0
//     when it has none); neither: the image's USER. fsGroup and
//     supplementalGroups -> --group-add;
//   - runAsNonRoot (pkg/kubelet/kuberuntime/security_context_others.go
//     verifyRunAsNonRoot, the image's user from its config as containerd's
//     getUserFromImage reads it, "" being root): refused with
//     CreateContainerConfigError and the kubelet's message, before any
//     container is made;
//   - readOnlyRootFilesystem -> --read-only --read-only-tmpfs=false (podman
//     would otherwise mount tmpfs on /tmp, /run and /var/tmp, which a
//     Kubernetes container does not have);
//   - capabilities: --cap-drop=all, then --cap-add for containerd's default
//     set (pkg/oci/spec.go defaultUnixCaps: the 14 of Docker, with MKNOD,
//     NET_RAW and AUDIT_WRITE that podman's own 11 lack), changed as
//     containerd's WithCapabilities does: add ALL, then drop ALL, then each
//     add, then each drop (so a drop wins over an add of the same one);
//   - privileged: passed as --privileged, as Kubernetes passes it to the
//     runtime (every capability and device); kube-local's Pod Security
//     admission is what refuses it in a baseline or restricted namespace;
//   - allowPrivilegeEscalation false -> --security-opt=no-new-privileges;
//   - seccompProfile (container over Pod): RuntimeDefault is podman's default
//     profile; unset or Unconfined -> seccomp=unconfined, as Kubernetes
//     defaults to; Localhost is refused (CreateContainerConfigError);
//   - env: value and fieldRef metadata.name/namespace as -e NAME=VALUE;
//     secretKeyRef as -e NAME only, its value in podman's own environment,
//     never on an argv (/proc/<pid>/cmdline is world-readable); HOSTNAME is
//     the Pod's name (--hostname);
//   - volumes: emptyDir (a fresh directory per Pod, shared by its containers,
//     mode 0777 as a kubelet makes it) and persistentVolumeClaim
//     (<--volume-root>/<namespace>/<claim>, made as the process path makes it)
//     as bind mounts, subPath below them, readOnly -> :ro. With fsGroup, both
//     get volume ownership management as pkg/volume/volume_linux.go
//     SetVolumeOwnership does: group fsGroup, g+rw (g+rwx and setgid on
//     directories; g+r only for a volume first mounted readOnly), once per
//     Pod and volume; skipped when the root already is so
//     (fsGroupChangePolicy OnRootMismatch);
//   - terminationMessagePath (default /dev/termination-log): a host file of
//     the container's own, mode 0666 (kuberuntime_container.go makeMounts),
//     bind-mounted there; reported capped at 4096 bytes. With
//     terminationMessagePolicy FallbackToLogsOnError, a failed container that
//     wrote none reports the end of its log instead (the process path does not);
//   - network: --network=host (kube-local has no Pod network);
//   - the end: exit code from `podman inspect`: 0 Completed, else Error
//     (OOMKilled when the runtime says so); a container whose process never
//     started: StartError, exit code 128, with podman's message; a failed
//     `podman create`: CreateContainerError with podman's message;
//   - stop(): `podman kill --signal TERM` (to PID 1, retried while the
//     container is still being started); kill(): --signal KILL; the grace
//     period between them is the caller's. kube-local's stop removes every
//     container it still runs (`podman rm -f`).
// NOT enforced or not provided: network isolation (host network whatever
// hostNetwork says, no NetworkPolicy, Pod IPs are made up, /etc/hosts and
// resolv.conf are podman's); resources (requests/limits: no cgroup limits are
// set); AppArmor and SELinux options (podman's defaults apply), sysctls,
// procMount; hostPID/hostIPC and the Pod's shared IPC/UTS namespaces (each
// container has its own); the service account token mount
// (/var/run/secrets/kubernetes.io/serviceaccount) and the KUBERNETES_SERVICE_*
// variables, so in-cluster clients do not find kube-local; stdin/tty; $(VAR)
// expansion in command, args and env; envFrom and Secret, ConfigMap,
// projected or hostPath volumes (refused, as in the process path); probes
// other than the process path's TCP readiness probe; image pulls; restarts; a CreateContainerConfigError ends the Pod
// (Failed, as in the process path) where a kubelet would keep it Pending and
// retry. The options of --exec-runtime-option go to `podman create` only (a
// global podman option such as --root would also be needed by the other
// podman commands). A Secret variable whose name podman itself reads
// (CONTAINERS_*, TMPDIR, ...) also changes podman's own behaviour while it
// creates the container.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "kube-local/exec_kubelet.h"

namespace kl {

// The Docker reference form of an image name: debian:12-slim is docker.io/library/debian:12-slim.
[[nodiscard]] std::string normalize_image(const std::string& image);

// The kubelet's refusal of a container with runAsNonRoot that would run as
// root or as a user it cannot check (verifyRunAsNonRoot); nullopt: allowed.
[[nodiscard]] std::optional<std::string> verify_run_as_non_root(const json& pod, const json& container,
                                                                const std::string& image_user);

// The capabilities a container gets (CAP_ names, sorted), from containerd's defaults and its securityContext.
[[nodiscard]] std::vector<std::string> effective_capabilities(const json& capabilities);

// A directory a container's volume needs on the host before it starts.
struct VolumeSetup {
  std::filesystem::path root;  // the volume's own directory
  std::filesystem::path host;  // what is mounted: root, or below it with subPath
  bool claim = false;          // a claim: made as the process path makes it; an emptyDir: 0777
  bool read_only = false;
};

// One container as the runtime runs it: everything `podman create` is given.
struct ContainerRun {
  std::string name;                            // the container's, in the Pod spec
  std::string runtime_name;                    // podman's: kube-local-<pod uid>-<name>
  std::vector<std::string> argv;               // the whole `podman create ...` command
  std::map<std::string, std::string> secret_env;  // NAME -> value, only in podman's environment
  std::vector<VolumeSetup> volumes;
  std::filesystem::path dir;                   // the container's own: termination-log and container.log
  long long uid = -1;                          // runAsUser (-1: the image's): owner of a fresh claim
  long long gid = -1;
  long long fs_group = -1;
  bool fs_group_on_root_mismatch = false;  // fsGroupChangePolicy OnRootMismatch
  bool message_from_log = false;           // terminationMessagePolicy FallbackToLogsOnError
  std::string error;  // why it cannot be made: CreateContainerConfigError
};

// The pure part of running a container: `list` is "initContainers" or
// "containers", `pod_dir` the Pod's host directory (emptyDirs, each
// container's own directory), `image` what the runtime knows of its image.
[[nodiscard]] ContainerRun container_run(const json& pod, const std::string& list, size_t index, const ImageInfo& image,
                                         const ExecOptions& opts, const std::filesystem::path& pod_dir,
                                         const SecretReader& secrets);

// terminationMessagePolicy FallbackToLogsOnError: what a failed container with an empty
// termination message reports instead, the end of its log (kuberuntime_container.go
// readLastStringFromContainerLogs: the last 80 lines, at most their last 2048 bytes).
[[nodiscard]] std::string termination_message_from_log(const std::string& log);

// The runtime's name of a Pod's container.
[[nodiscard]] std::string runtime_container_name(const std::string& pod_uid, const std::string& container);

// I/O against the runtime (each runs one podman command).
// What the runtime's local storage has of an image; nullopt when it has no such image.
[[nodiscard]] std::optional<ImageInfo> inspect_local_image(const ExecOptions& opts, const std::string& image);
// Makes the container's volume directories and termination-log file; an error says why not.
// `owned`: the volume roots whose ownership this Pod already manages (once per Pod, as a kubelet at mount time).
[[nodiscard]] std::string prepare_container_dirs(const ContainerRun& run, std::set<std::filesystem::path>& owned);
// Removes the named containers, running or not (`podman rm -f`); missing ones are no error.
void remove_runtime_containers(const ExecOptions& opts, const std::vector<std::string>& names);

}  // namespace kl
