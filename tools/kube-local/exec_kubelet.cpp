#include "kube-local/exec_kubelet.h"

#include "common/process.h"
#include "kube-local/container_kubelet.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <fstream>
#include <sstream>

extern char** environ;

namespace kl {
namespace fs = std::filesystem;

namespace {

// Rewrites each mount path (longest first) where it starts a path: at the
// beginning of `s` or after ':' or '=', followed by the end or '/'. One pass,
// so a replacement is never rewritten again.
std::string rewrite(const std::string& s, const std::vector<std::pair<std::string, std::string>>& mounts) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    bool replaced = false;
    if (i == 0 || s[i - 1] == ':' || s[i - 1] == '=') {
      for (const auto& [from, to] : mounts) {
        const size_t end = i + from.size();
        if (!from.empty() && s.compare(i, from.size(), from) == 0 && (end == s.size() || s[end] == '/')) {
          out += to;
          i = end;
          replaced = true;
          break;
        }
      }
    }
    if (!replaced) out.push_back(s[i++]);
  }
  return out;
}

// command[0] of a container whose image is mapped by its directories: a bare
// name is looked up on the container's PATH as runc's exec.LookPath does; an
// absolute path is the image's own file only inside one of its directories.
// What is found nowhere stays as it is, so exec fails and the container ends
// in StartError, as with a runtime.
std::string image_program(const std::string& cmd, const std::string& path, const std::vector<std::string>& own_dirs) {
  if (cmd.find('/') != std::string::npos) {
    const std::string norm = fs::path(cmd).lexically_normal().string();
    for (const auto& d : own_dirs)
      if (norm.starts_with(fs::path(d).lexically_normal().string() + "/")) return norm;
    return cmd;
  }
  std::string dir;
  std::stringstream dirs(path);
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const fs::path candidate = fs::path(dir) / cmd;
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return cmd;
}

// In a forked child, before exec (async-signal-safe calls only): nothing blocked or ignored, as a
// runtime starts a container's first process. kube-local blocks SIGTERM and SIGINT (it waits for
// them with sigwait) and ignores SIGPIPE, which a child would otherwise inherit.
void default_signals() {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD}) ::sigaction(sig, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

std::string read_capped(const fs::path& p, size_t cap) {
  std::ifstream in(p, std::ios::binary);
  std::string out(cap, '\0');
  in.read(out.data(), static_cast<std::streamsize>(cap));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

std::string read_tail(const fs::path& p, size_t n) {
  std::ifstream in(p, std::ios::binary | std::ios::ate);
  const std::streamoff size = in.tellg();
  if (size <= 0) return "";
  const std::streamoff from = size > static_cast<std::streamoff>(n) ? size - static_cast<std::streamoff>(n) : 0;
  in.seekg(from);
  std::string out(static_cast<size_t>(size - from), '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

}  // namespace

std::expected<std::vector<EnvVar>, std::string> resolve_env(const json& pod, const json& c, const SecretReader& secrets) {
  const json meta = pod.value("metadata", json::object());
  const std::string ns = meta.value("namespace", "");
  std::vector<EnvVar> out;
  auto set = [&out](EnvVar v) {
    // A name given twice: the last one wins, as in the container's environment.
    std::erase_if(out, [&](const EnvVar& e) { return e.name == v.name; });
    out.push_back(std::move(v));
  };
  for (const auto& e : c.value("env", json::array())) {
    const std::string name = e.value("name", "");
    if (e.contains("value")) {
      set({name, e["value"].is_string() ? e["value"].get<std::string>() : e["value"].dump(), EnvSource::kValue});
      continue;
    }
    const json from = e.value("valueFrom", json::object());
    if (from.contains("secretKeyRef")) {
      const json ref = from["secretKeyRef"];
      const bool optional = ref.value("optional", false);
      const auto data = secrets(ns, ref.value("name", ""));
      if (!data || !data->count(ref.value("key", ""))) {
        if (optional) continue;
        return std::unexpected("env " + name + ": " +
                               (data ? "key " + ref.value("key", "") + " not found in Secret " : "Secret ") +
                               ref.value("name", "") + (data ? "" : " not found"));
      }
      set({name, data->at(ref.value("key", "")), EnvSource::kSecret});
    } else if (from.contains("fieldRef")) {
      const std::string fpath = from["fieldRef"].value("fieldPath", "");
      if (fpath == "metadata.name") set({name, meta.value("name", ""), EnvSource::kField});
      else if (fpath == "metadata.namespace") set({name, ns, EnvSource::kField});
      else return std::unexpected("env " + name + ": fieldRef " + fpath + " is not supported by kube-local");
    } else {
      return std::unexpected("env " + name + ": only value, secretKeyRef and fieldRef are supported by kube-local");
    }
  }
  return out;
}

std::expected<std::map<std::string, HostVolume>, std::string> host_volumes(const json& pod, const fs::path& volume_root,
                                                                           const fs::path& pod_dir) {
  const std::string ns = pod.value("metadata", json::object()).value("namespace", "");
  std::map<std::string, HostVolume> out;
  for (const auto& v : pod.value("spec", json::object()).value("volumes", json::array())) {
    const std::string name = v.value("name", "");
    if (v.contains("persistentVolumeClaim")) {
      const std::string claim = v["persistentVolumeClaim"].value("claimName", "");
      if (volume_root.empty() || claim.empty() || claim.find('/') != std::string::npos)
        return std::unexpected("volume " + name + ": claim " + claim + " has no directory (start kube-local with --volume-root)");
      out[name] = {volume_root / ns / claim, true};
    } else if (v.contains("emptyDir")) {
      out[name] = {pod_dir / "volumes" / name, false};
    }
  }
  return out;
}

std::expected<fs::path, std::string> mount_host_dir(const std::map<std::string, HostVolume>& volumes, const json& mount) {
  const std::string name = mount.value("name", "");
  const auto it = volumes.find(name);
  if (it == volumes.end()) return std::unexpected("volumeMount " + name + ": no such volume (or an unsupported volume type)");
  const std::string sub = mount.value("subPath", "");
  if (sub.empty()) return it->second.path;
  if (sub.starts_with("/") || sub.find("..") != std::string::npos)
    return std::unexpected("volumeMount " + name + ": subPath " + sub + " must be relative");
  return it->second.path / sub;
}

std::optional<VolumeCommand> volume_command(const json& c) {
  const json command = c.value("command", json::array());
  if (!command.is_array() || command.empty() || !command[0].is_string()) return std::nullopt;
  const std::string cmd = command[0].get<std::string>();
  if (!cmd.starts_with("/")) return std::nullopt;
  // As the runtime resolves it in the container's filesystem: /tools/../etc/x is /etc/x, on no volume.
  const std::string norm = fs::path(cmd).lexically_normal().string();
  std::optional<VolumeCommand> best;
  size_t best_len = 0;
  const json mounts = c.value("volumeMounts", json::array());
  if (!mounts.is_array()) return std::nullopt;
  for (size_t i = 0; i < mounts.size(); ++i) {
    if (!mounts[i].is_object() || !mounts[i].contains("mountPath") || !mounts[i]["mountPath"].is_string()) continue;
    std::string mp = fs::path(mounts[i]["mountPath"].get<std::string>()).lexically_normal().string();
    while (mp.size() > 1 && mp.back() == '/') mp.pop_back();
    if (!mp.starts_with("/")) continue;
    const size_t len = mp == "/" ? 0 : mp.size();
    if (norm.size() <= len + 1 || norm.compare(0, len, mp, 0, len) != 0 || norm[len] != '/') continue;
    if (!best || len > best_len) {
      best = VolumeCommand{i, norm.substr(len + 1)};
      best_len = len;
    }
  }
  return best;
}

Prepared prepare_container(const json& pod, const std::string& list, size_t index, const ExecOptions& opts,
                           const fs::path& pod_dir, const SecretReader& secrets) {
  Prepared out;
  const json& meta = pod.at("metadata");
  const std::string ns = meta.value("namespace", "");
  const json spec = pod.value("spec", json::object());
  const json containers = spec.value(list, json::array());
  if (!containers.is_array() || index >= containers.size() || !containers[index].is_object()) {
    out.error = list == "containers" ? "the pod has no containers" : "the pod has no " + list + "[" + std::to_string(index) + "]";
    return out;
  }
  const bool init = list == "initContainers";
  const json& c = containers[index];
  out.name = c.value("name", "");
  // Each container's termination message and output are its own; the first app container keeps the Pod directory's.
  out.dir = init ? pod_dir / ("init-" + std::to_string(index)) : pod_dir;
  const std::string image = c.value("image", "");
  const json pod_sc = spec.value("securityContext", json::object());
  const json c_sc = c.value("securityContext", json::object());
  auto id = [&](const char* key) -> long long {
    if (c_sc.contains(key) && c_sc[key].is_number_integer()) return c_sc[key].get<long long>();
    if (pod_sc.contains(key) && pod_sc[key].is_number_integer()) return pod_sc[key].get<long long>();
    return -1;
  };
  if (geteuid() == 0) {
    out.uid = id("runAsUser");
    out.gid = id("runAsGroup");
    if (pod_sc.contains("fsGroup") && pod_sc["fsGroup"].is_number_integer()) out.fs_group = pod_sc["fsGroup"].get<long long>();
    if (out.uid >= 0 && out.gid < 0) out.gid = out.uid;
  }
  const auto program = opts.images.find(image);
  const auto command_file = volume_command(c);
  const auto own_dirs = opts.image_paths.find(image);
  const json command = c.value("command", json::array());
  const bool image_command = program == opts.images.end() && !command_file && own_dirs != opts.image_paths.end() &&
                             command.is_array() && !command.empty() && command[0].is_string();
  if (program == opts.images.end() && !command_file && !image_command) {
    out.error = "image " + image + " is not mapped with --exec-image" +
                (opts.image_paths.count(image) ? " (only with --exec-image-path) and command[0] is not a file on one of the "
                                                 "container's volumes"
                                               : "");
    return out;
  }

  // Volumes to host directories: the same ones for every container of the Pod.
  std::map<std::string, HostVolume> volumes;
  if (const auto v = host_volumes(pod, opts.volume_root, pod_dir); v) {
    volumes = *v;
  } else {
    out.error = v.error();
    return out;
  }
  std::vector<std::pair<std::string, std::string>> mounts;  // mountPath -> host dir, in the spec's order
  for (const auto& m : c.value("volumeMounts", json::array())) {
    const auto host_dir = mount_host_dir(volumes, m);
    if (!host_dir) {
      out.error = host_dir.error();
      return out;
    }
    const fs::path host = *host_dir;
    std::error_code ec;
    const bool fresh = !fs::exists(host, ec);
    fs::create_directories(host, ec);
    if (fresh && !volumes.at(m.value("name", "")).claim) {
      fs::permissions(host, fs::perms::all, ec);  // an emptyDir is world-writable
    } else if (fresh && out.uid >= 0) {
      // A fresh claim is the Pod user's (its fsGroup's, when set), like a provisioned volume.
      if (::chown(host.c_str(), static_cast<uid_t>(out.uid),
                  static_cast<gid_t>(out.fs_group >= 0 ? out.fs_group : out.gid)) != 0 ||
          ::chmod(host.c_str(), 0700) != 0) {
        out.error = "volumeMount " + m.value("name", "") + ": cannot give " + host.string() + " to uid " +
                    std::to_string(out.uid);
        return out;
      }
    }
    mounts.emplace_back(m.value("mountPath", ""), host.string());
  }
  auto by_length = mounts;
  std::sort(by_length.begin(), by_length.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  auto map_paths = [&](const std::string& s) { return rewrite(s, by_length); };

  for (const auto& a : c.value("command", json::array()))
    out.args.push_back(map_paths(a.is_string() ? a.get<std::string>() : a.dump()));
  if (command_file) {
    // The file on the volume is the program: command[0] as the runtime resolves it, where the mount is.
    out.program = (fs::path(mounts.at(command_file->mount).second) / command_file->rest).string();
  } else if (image_command) {
    out.program = command[0].get<std::string>();  // resolved on PATH below, once the env is known
  } else {
    out.program = program->second;
  }
  if (!out.args.empty()) out.args.erase(out.args.begin());  // command[0] is the program
  for (const auto& a : c.value("args", json::array())) out.args.push_back(map_paths(a.is_string() ? a.get<std::string>() : a.dump()));

  std::string path;
  if (const auto own = opts.image_paths.find(image); own != opts.image_paths.end())
    for (const auto& d : own->second) path += d + ":";
  for (const auto& d : opts.path) path += d + ":";
  out.env["PATH"] = path + "/usr/local/bin:/usr/bin:/bin";
  out.env["HOME"] = (pod_dir / "home").string();
  out.env["HOSTNAME"] = meta.value("name", "");
  const auto env = resolve_env(pod, c, secrets);
  if (!env) {
    out.error = env.error();
    return out;
  }
  // A literal value may name a mount path; what comes from a Secret or the Pod's fields is data.
  for (const auto& e : *env) out.env[e.name] = e.source == EnvSource::kValue ? map_paths(e.value) : e.value;
  out.env["TERMINATION_LOG"] = (out.dir / "termination-log").string();
  if (image_command) out.program = image_program(out.program, out.env.at("PATH"), own_dirs->second);
  return out;
}

Prepared prepare_process(const json& pod, const ExecOptions& opts, const fs::path& pod_dir, const SecretReader& secrets) {
  return prepare_container(pod, "containers", 0, opts, pod_dir, secrets);
}

std::vector<Prepared> prepare_init_containers(const json& pod, const ExecOptions& opts, const fs::path& pod_dir,
                                              const SecretReader& secrets) {
  std::vector<Prepared> out;
  const json init = pod.value("spec", json::object()).value("initContainers", json::array());
  if (!init.is_array()) return out;
  for (size_t i = 0; i < init.size(); ++i) out.push_back(prepare_container(pod, "initContainers", i, opts, pod_dir, secrets));
  return out;
}

ExecKubelet::ExecKubelet(ExecOptions opts) : opts_(std::move(opts)) {
  std::string t = (fs::temp_directory_path() / "kube-local-pods-XXXXXX").string();
  if (mkdtemp(t.data())) pods_dir_ = t;
  // Pods that run as another user reach their own directory inside.
  if (!pods_dir_.empty()) ::chmod(pods_dir_.c_str(), 0711);
}

ExecKubelet::~ExecKubelet() {
  std::vector<Waiter> waiters;
  std::vector<std::string> containers;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (const auto& [uid, pid] : pids_) {
      if (const auto it = runtime_names_.find(uid); it != runtime_names_.end()) {
        containers.push_back(it->second);  // its `podman start --attach` ends with it
      } else if (pid > 0) {
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
      }
    }
    waiters.swap(waiters_);
  }
  // Everything kube-local started goes with it: a container outlives its attached podman.
  remove_runtime_containers(opts_, containers);
  for (auto& w : waiters)
    if (w.thread.joinable()) w.thread.join();
  std::error_code ec;
  if (!pods_dir_.empty()) fs::remove_all(pods_dir_, ec);
}

bool ExecKubelet::runs_as_containers(const json& pod) const {
  if (opts_.runtime.empty()) return false;
  const std::string uid = pod.value("metadata", json::object()).value("uid", "");
  {
    std::lock_guard lock(mu_);
    if (const auto it = runtime_pods_.find(uid); it != runtime_pods_.end()) return it->second.has_value();
  }
  const json spec = pod.value("spec", json::object());
  const json containers = spec.value("containers", json::array());
  const json init = spec.value("initContainers", json::array());
  if (uid.empty() || !containers.is_array() || containers.empty() || !init.is_array()) return false;
  std::vector<json> run(init.begin(), init.end());
  run.push_back(containers[0]);
  // Each image asked once (podman is not called under the lock: it takes a while).
  std::optional<std::map<std::string, ImageInfo>> images;
  images.emplace();
  for (const auto& c : run) {
    const std::string image = c.is_object() ? c.value("image", "") : "";
    if (images->count(image)) continue;
    const auto info = image.empty() ? std::nullopt : inspect_local_image(opts_, image);
    if (!info) {
      images.reset();
      break;
    }
    (*images)[image] = *info;
  }
  std::lock_guard lock(mu_);
  return runtime_pods_.emplace(uid, std::move(images)).first->second.has_value();
}

void ExecKubelet::remove_leftovers(const json& pod) {
  if (opts_.runtime.empty()) return;
  const std::string uid = pod.value("metadata", json::object()).value("uid", "");
  const json spec = pod.value("spec", json::object());
  std::vector<std::string> names;
  for (const char* list : {"initContainers", "containers"}) {
    const json cs = spec.value(list, json::array());
    if (!cs.is_array()) continue;
    for (const auto& c : cs)
      if (c.is_object()) names.push_back(runtime_container_name(uid, c.value("name", "")));
  }
  if (!uid.empty()) remove_runtime_containers(opts_, names);
}

bool ExecKubelet::handles(const json& pod) const {
  if (runs_as_containers(pod)) return true;
  const json spec = pod.value("spec", json::object());
  const json containers = spec.value("containers", json::array());
  const json init = spec.value("initContainers", json::array());
  if (!containers.is_array() || containers.empty() || !init.is_array()) return false;
  auto runnable = [&](const json& c) {
    if (!c.is_object()) return false;
    const std::string image = c.value("image", "");
    return opts_.images.count(image) > 0 || opts_.image_paths.count(image) > 0 || volume_command(c).has_value();
  };
  return std::all_of(init.begin(), init.end(), runnable) && runnable(containers[0]);
}

void ExecKubelet::add_waiter(std::function<void()> body) {
  // Join the waiters that are done, so a long run keeps no dead threads.
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->finished->load()) {
      it->thread.join();
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  auto finished = std::make_shared<std::atomic<bool>>(false);
  waiters_.push_back({std::thread([body = std::move(body), finished] {
                        body();
                        finished->store(true);
                      }),
                      finished});
}

bool ExecKubelet::started(const std::string& uid) const {
  std::lock_guard lock(mu_);
  return started_.count(uid) > 0;
}

bool ExecKubelet::running(const std::string& uid) const {
  std::lock_guard lock(mu_);
  return pids_.count(uid) > 0;
}

std::optional<ExecResult> ExecKubelet::run_container(const std::string& key, const fs::path& pod_dir,
                                                     const Prepared& prepared) {
  Prepared p = prepared;
  std::error_code ec;
  fs::create_directories(p.dir, ec);
  const fs::path home = pod_dir / "home";
  if (p.error.empty() && p.uid >= 0) {
    // The container's user writes its termination message and works in the Pod's home.
    for (const auto& d : {p.dir, home})
      if (::chown(d.c_str(), static_cast<uid_t>(p.uid), static_cast<gid_t>(p.gid)) != 0)
        p.error = "cannot give " + d.string() + " to uid " + std::to_string(p.uid);
  }
  if (!p.error.empty()) return ExecResult{1, "CreateContainerConfigError", p.error};
  std::vector<std::string> argv_s = {p.program};
  argv_s.insert(argv_s.end(), p.args.begin(), p.args.end());
  std::vector<std::string> env_s;
  for (const auto& [k, v] : p.env) env_s.push_back(k + "=" + v);
  const std::string log = (p.dir / "container.log").string();
  const std::string home_s = home.string();
  // Everything the child needs is built before fork: between fork and exec a
  // multithreaded parent's child may only make async-signal-safe calls.
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  // The child reports why it could not exec through a close-on-exec pipe: EOF means the program runs.
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return ExecResult{128, "StartError", "kube-local could not create a pipe"};
  pid_t pid = -1;
  {
    std::lock_guard lock(mu_);
    if (stopping_ || killed_.count(key)) {
      ::close(report[0]);
      ::close(report[1]);
      return std::nullopt;
    }
    pid = fork();
    if (pid == 0) {
      ::close(report[0]);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      // A container's processes are a group of their own (so SIGKILL reaches all of them), and its
      // first process starts with nothing blocked or ignored.
      ::setpgid(0, 0);
      default_signals();
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      int stage = 0;  // 0: identity, 1: working directory, 2: exec
      if (p.uid >= 0) {
        const gid_t groups[1] = {static_cast<gid_t>(p.fs_group)};
        if (setgroups(p.fs_group >= 0 ? 1 : 0, groups) != 0 || setgid(static_cast<gid_t>(p.gid)) != 0 ||
            setuid(static_cast<uid_t>(p.uid)) != 0) {
          const int why[2] = {stage, errno};
          (void)!::write(report[1], why, sizeof why);
          _exit(126);
        }
      }
      stage = 1;
      if (chdir(home_s.c_str()) == 0) {
        stage = 2;
        execve(argv[0], argv.data(), envp.data());
      }
      const int why[2] = {stage, errno};
      (void)!::write(report[1], why, sizeof why);
      _exit(127);
    }
    if (pid > 0) {
      ::setpgid(pid, pid);  // also from the parent: a signal sent before the child ran setpgid reaches the group
      pids_[key] = pid;
    }
  }
  ::close(report[1]);
  if (pid < 0) {
    ::close(report[0]);
    return ExecResult{128, "StartError", "kube-local could not fork"};
  }
  int why[2] = {0, 0};
  ssize_t got;
  while ((got = ::read(report[0], why, sizeof why)) < 0 && errno == EINTR) {
  }
  ::close(report[0]);
  // Waited for without reaping first: until the zombie is reaped its pid (and process group id)
  // cannot be reused, so no signal meant for this container can reach another process.
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  {
    std::lock_guard lock(mu_);
    pids_[key] = 0;
    // The container is over: nothing it started outlives it (ESRCH when nothing is left).
    ::kill(-pid, SIGKILL);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  if (got == static_cast<ssize_t>(sizeof why)) {
    // As containerd reports a container whose process never started (exit code 128).
    const std::string what = why[0] == 0 ? "cannot run as uid " + std::to_string(p.uid)
                             : why[0] == 1 ? "chdir to " + home_s
                                           : "exec: \"" + p.program + "\"";
    return ExecResult{128, "StartError", what + ": " + std::strerror(why[1])};
  }
  ExecResult r;
  if (WIFEXITED(st)) {
    r.exit_code = WEXITSTATUS(st);
    r.reason = r.exit_code == 0 ? "Completed" : "Error";
  } else {
    r.exit_code = 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    r.reason = "Killed";
  }
  r.message = read_capped(p.dir / "termination-log", 4096);
  return r;
}

void ExecKubelet::start(const json& pod, const SecretReader& secrets, ExecCallbacks callbacks) {
  const std::string uid = pod["metadata"].value("uid", "");
  const std::string key = uid;
  // By uid alone, as a kubelet's /var/lib/kubelet/pods/<uid>: a Unix socket
  // in an emptyDir (a PostgreSQL's, say) must fit in 107 bytes.
  const fs::path dir = pods_dir_ / uid;
  std::lock_guard lock(mu_);
  if (stopping_ || pids_.count(key) || started_.count(uid)) return;
  started_.insert(uid);
  pids_[key] = 0;
  killed_.erase(key);
  std::optional<std::map<std::string, ImageInfo>> images;
  if (const auto it = runtime_pods_.find(uid); it != runtime_pods_.end()) images = it->second;
  add_waiter([this, pod, secrets, callbacks = std::move(callbacks), key, dir, images] {
    std::error_code ec;
    fs::create_directories(dir / "home", ec);
    auto finish = [&] {
      std::lock_guard l(mu_);
      pids_.erase(key);
    };
    std::set<fs::path> owned;  // volumes whose fsGroup ownership is done, once per Pod
    // One container, as a process or (the Pod's images all local to --exec-runtime) a runtime container.
    auto run_one = [&](const std::string& list, size_t i) -> std::optional<ExecResult> {
      if (images) {
        const json c = pod["spec"][list][i];
        const auto image = images->find(c.value("image", ""));
        const ContainerRun run = container_run(pod, list, i, image == images->end() ? ImageInfo{} : image->second,
                                               opts_, dir, secrets);
        return run_runtime_container(key, run, owned);
      }
      return run_container(key, dir, prepare_container(pod, list, i, opts_, dir, secrets));
    };
    // Each container is prepared just before it runs, as a kubelet generates its config then:
    // a Secret may appear while the init containers run.
    const json init = pod.value("spec", json::object()).value("initContainers", json::array());
    const size_t n_init = init.is_array() ? init.size() : 0;
    for (size_t i = 0; i < n_init; ++i) {
      {
        std::lock_guard l(mu_);
        if (stopping_ || killed_.count(key)) break;
      }
      if (callbacks.init_started) callbacks.init_started(i);
      const auto r = run_one("initContainers", i);
      const ExecResult result = r ? *r : ExecResult{137, "Killed", ""};
      if (callbacks.init_ended) callbacks.init_ended(i, result);
      if (!r || result.exit_code != 0) {
        finish();
        return;
      }
    }
    {
      std::lock_guard l(mu_);
      if (stopping_ || killed_.count(key)) {
        pids_.erase(key);
        return;
      }
    }
    if (n_init > 0 && callbacks.started) callbacks.started();
    const auto r = run_one("containers", 0);
    // Reported before the Pod stops counting as running: a Pod being deleted goes only once its
    // status shows how its container ended (the kubelet's status manager deletes it after that).
    if (callbacks.done) callbacks.done(r ? *r : ExecResult{137, "Killed", ""});
    finish();
  });
}

std::optional<std::filesystem::path> ExecKubelet::log_path(const json& pod, const std::string& container) const {
  const std::string uid = pod["metadata"].value("uid", "");
  {
    std::lock_guard lock(mu_);
    if (!started_.count(uid)) return std::nullopt;
  }
  const fs::path dir = pods_dir_ / uid;
  const json init = pod.value("spec", json::object()).value("initContainers", json::array());
  if (init.is_array())
    for (size_t i = 0; i < init.size(); ++i)
      if (init[i].is_object() && init[i].value("name", "") == container)
        return dir / ("init-" + std::to_string(i)) / "container.log";
  return dir / "container.log";
}

void ExecKubelet::signal(const std::string& uid, int sig, bool group) {
  std::lock_guard lock(mu_);
  if (auto it = pids_.find(uid); it != pids_.end()) {
    killed_.insert(uid);
    if (const auto rn = runtime_names_.find(uid); rn != runtime_names_.end()) {
      signal_runtime(uid, rn->second, sig);
    } else if (it->second > 0) {
      if (group) ::kill(-it->second, sig);
      ::kill(it->second, sig);
    }
  }
}

namespace {

// podman's own environment for `podman create`: kube-local's, plus the values of the
// container's Secret variables, which its argv names only (-e NAME).
std::map<std::string, std::string> runtime_environment(const std::map<std::string, std::string>& secrets) {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    const std::string entry = *e;
    const size_t eq = entry.find('=');
    if (eq != std::string::npos) env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [k, v] : secrets) env[k] = v;
  return env;
}

// podman's last "Error: ..." line, without the prefix: what a runtime failure is reported as.
std::string podman_error(const std::string& output) {
  std::string last, line;
  std::stringstream lines(output);
  while (std::getline(lines, line))
    if (line.starts_with("Error: ")) last = line.substr(7);
  if (!last.empty()) return last;
  std::string all = output;
  while (!all.empty() && (all.back() == '\n' || all.back() == ' ')) all.pop_back();
  return all.empty() ? "the container runtime failed without saying why" : all;
}

}  // namespace

std::optional<ExecResult> ExecKubelet::run_runtime_container(const std::string& key, const ContainerRun& run,
                                                             std::set<fs::path>& owned) {
  std::error_code ec;
  fs::create_directories(run.dir, ec);
  if (!run.error.empty()) return ExecResult{1, "CreateContainerConfigError", run.error};
  if (const auto err = prepare_container_dirs(run, owned); !err.empty())
    return ExecResult{1, "CreateContainerConfigError", err};
  {
    std::lock_guard lock(mu_);
    if (stopping_ || killed_.count(key)) return std::nullopt;
    runtime_names_[key] = run.runtime_name;  // from here on, kube-local's stop removes it
  }
  auto forget = [&] {
    {
      std::lock_guard lock(mu_);
      runtime_names_.erase(key);
      pids_[key] = 0;
    }
    remove_runtime_containers(opts_, {run.runtime_name});
  };
  const auto created = bo::run_process(run.argv, runtime_environment(run.secret_env));
  if (created.exit_code != 0) {
    forget();
    // The kubelet's ErrCreateContainer: the runtime refused the container's config.
    return ExecResult{128, "CreateContainerError",
                      podman_error(created.start_error.empty() ? created.err : created.start_error)};
  }
  // `podman start --attach`: the container's stdout and stderr go to its log file, as the
  // process path's output does; it ends when the container does. Built before fork: the child of
  // a multithreaded parent may only make async-signal-safe calls.
  const std::string log = (run.dir / "container.log").string();
  std::vector<std::string> argv_s = {opts_.runtime, "start", "--attach", run.runtime_name};
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  bool skipped = false;  // stopped before it could start
  {
    std::lock_guard lock(mu_);
    skipped = stopping_ || killed_.count(key) > 0;
    if (!skipped) {
      pid = fork();
      if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        default_signals();  // nor podman (nor conmon, nor the container it starts) inherits kube-local's
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || null < 0) _exit(127);
        dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execve(argv[0], argv.data(), environ);
        _exit(127);
      }
      if (pid > 0) pids_[key] = pid;
    }
  }
  if (skipped || pid < 0) {
    forget();
    if (skipped) return std::nullopt;
    return ExecResult{128, "StartError", "kube-local could not fork"};
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  {
    std::lock_guard lock(mu_);
    pids_[key] = 0;
  }
  // How it ended, as the runtime recorded it (podman start's own exit code may be its own failure).
  const auto inspected = bo::run_process({opts_.runtime, "container", "inspect", "--format", "json", run.runtime_name});
  const json state = [&] {
    const json all = json::parse(inspected.out, nullptr, false);
    return all.is_array() && !all.empty() && all[0].is_object() ? all[0].value("State", json::object()) : json::object();
  }();
  forget();
  if (inspected.exit_code != 0 || !state.contains("Status")) {
    // Removed behind kube-local's back: what a kubelet reports of a container it cannot find.
    return ExecResult{137, "ContainerStatusUnknown", "The container could not be located when the pod was terminated"};
  }
  const std::string status = state.value("Status", "");
  if (status == "created" || status == "configured" || status == "initialized") {
    // Its process never ran: what podman said is in the log (nothing of the container's is),
    // reported as containerd reports a task that could not start (exit code 128).
    const std::string said = read_capped(log, 64 * 1024);
    std::ofstream(log, std::ios::trunc).flush();
    return ExecResult{128, "StartError", podman_error(said)};
  }
  ExecResult r;
  r.exit_code = state.value("ExitCode", WIFEXITED(st) ? WEXITSTATUS(st) : 128);
  r.reason = r.exit_code == 0 ? "Completed" : state.value("OOMKilled", false) ? "OOMKilled" : "Error";
  r.message = read_capped(run.dir / "termination-log", 4096);
  if (r.message.empty() && r.exit_code != 0 && run.message_from_log)
    r.message = termination_message_from_log(read_tail(log, 4096));  // the message is within its last 2048 bytes
  return r;
}

void ExecKubelet::signal_runtime(const std::string& uid, const std::string& runtime_name, int sig) {
  const std::string signal = sig == SIGKILL ? "KILL" : "TERM";
  add_waiter([this, uid, runtime_name, signal] {
    // podman refuses to signal a container that is not running yet (still being started):
    // retried until it runs, it is over, or kube-local stops.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(mu_);
        const auto it = runtime_names_.find(uid);
        if (stopping_ || it == runtime_names_.end() || it->second != runtime_name) return;
      }
      if (bo::run_process({opts_.runtime, "kill", "--signal", signal, runtime_name}).exit_code == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
}

void ExecKubelet::stop(const std::string& uid) { signal(uid, SIGTERM, false); }

void ExecKubelet::kill(const std::string& uid) { signal(uid, SIGKILL, true); }

}  // namespace kl
