#include "kube-local/exec_kubelet.h"

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
#include <fstream>
#include <sstream>

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

std::string read_capped(const fs::path& p, size_t cap) {
  std::ifstream in(p, std::ios::binary);
  std::string out(cap, '\0');
  in.read(out.data(), static_cast<std::streamsize>(cap));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

}  // namespace

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
  std::map<std::string, fs::path> volumes;
  std::set<std::string> claims;  // volume names that are claims
  for (const auto& v : spec.value("volumes", json::array())) {
    const std::string name = v.value("name", "");
    if (v.contains("persistentVolumeClaim")) {
      claims.insert(name);
      const std::string claim = v["persistentVolumeClaim"].value("claimName", "");
      if (opts.volume_root.empty() || claim.empty() || claim.find('/') != std::string::npos) {
        out.error = "volume " + name + ": claim " + claim + " has no directory (start kube-local with --volume-root)";
        return out;
      }
      volumes[name] = opts.volume_root / ns / claim;
    } else if (v.contains("emptyDir")) {
      volumes[name] = pod_dir / "volumes" / name;
    }
  }
  std::vector<std::pair<std::string, std::string>> mounts;  // mountPath -> host dir, in the spec's order
  for (const auto& m : c.value("volumeMounts", json::array())) {
    const auto it = volumes.find(m.value("name", ""));
    if (it == volumes.end()) {
      out.error = "volumeMount " + m.value("name", "") + ": no such volume (or an unsupported volume type)";
      return out;
    }
    fs::path host = it->second;
    const std::string sub = m.value("subPath", "");
    if (!sub.empty()) {
      if (sub.starts_with("/") || sub.find("..") != std::string::npos) {
        out.error = "volumeMount " + m.value("name", "") + ": subPath " + sub + " must be relative";
        return out;
      }
      host /= sub;
    }
    std::error_code ec;
    const bool fresh = !fs::exists(host, ec);
    fs::create_directories(host, ec);
    if (fresh && !claims.count(m.value("name", ""))) {
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
  for (const auto& e : c.value("env", json::array())) {
    const std::string name = e.value("name", "");
    if (e.contains("value")) {
      out.env[name] = map_paths(e["value"].is_string() ? e["value"].get<std::string>() : e["value"].dump());
      continue;
    }
    const json from = e.value("valueFrom", json::object());
    if (from.contains("secretKeyRef")) {
      const json ref = from["secretKeyRef"];
      const bool optional = ref.value("optional", false);
      const auto data = secrets(ns, ref.value("name", ""));
      if (!data || !data->count(ref.value("key", ""))) {
        if (optional) continue;
        out.error = "env " + name + ": " + (data ? "key " + ref.value("key", "") + " not found in Secret " : "Secret ") +
                    ref.value("name", "") + (data ? "" : " not found");
        return out;
      }
      out.env[name] = data->at(ref.value("key", ""));
    } else if (from.contains("fieldRef")) {
      const std::string fpath = from["fieldRef"].value("fieldPath", "");
      if (fpath == "metadata.name") out.env[name] = meta.value("name", "");
      else if (fpath == "metadata.namespace") out.env[name] = ns;
      else {
        out.error = "env " + name + ": fieldRef " + fpath + " is not supported by kube-local";
        return out;
      }
    } else {
      out.error = "env " + name + ": only value, secretKeyRef and fieldRef are supported by kube-local";
      return out;
    }
  }
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
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    for (const auto& [uid, pid] : pids_)
      if (pid > 0) {
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
      }
    waiters.swap(waiters_);
  }
  for (auto& w : waiters)
    if (w.thread.joinable()) w.thread.join();
  std::error_code ec;
  if (!pods_dir_.empty()) fs::remove_all(pods_dir_, ec);
}

bool ExecKubelet::handles(const json& pod) const {
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
      // first process starts with nothing blocked or ignored: kube-local blocks SIGTERM and SIGINT
      // (it waits for them with sigwait) and ignores SIGPIPE, which a child would otherwise inherit.
      ::setpgid(0, 0);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      sigemptyset(&dfl.sa_mask);
      for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD}) ::sigaction(sig, &dfl, nullptr);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
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
  add_waiter([this, pod, secrets, callbacks = std::move(callbacks), key, dir] {
    std::error_code ec;
    fs::create_directories(dir / "home", ec);
    auto finish = [&] {
      std::lock_guard l(mu_);
      pids_.erase(key);
    };
    // Each container is prepared just before it runs, as a kubelet generates its config then:
    // a Secret may appear while the init containers run.
    const json init = pod.value("spec", json::object()).value("initContainers", json::array());
    const size_t n_init = init.is_array() ? init.size() : 0;
    for (size_t i = 0; i < n_init; ++i) {
      const Prepared p = prepare_container(pod, "initContainers", i, opts_, dir, secrets);
      {
        std::lock_guard l(mu_);
        if (stopping_ || killed_.count(key)) break;
      }
      if (callbacks.init_started) callbacks.init_started(i);
      const auto r = run_container(key, dir, p);
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
    const Prepared p = prepare_container(pod, "containers", 0, opts_, dir, secrets);
    const auto r = run_container(key, dir, p);
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
    if (it->second > 0) {
      if (group) ::kill(-it->second, sig);
      ::kill(it->second, sig);
    }
  }
}

void ExecKubelet::stop(const std::string& uid) { signal(uid, SIGTERM, false); }

void ExecKubelet::kill(const std::string& uid) { signal(uid, SIGKILL, true); }

}  // namespace kl
