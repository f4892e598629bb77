#include "kube-local/exec_kubelet.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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

std::string read_capped(const fs::path& p, size_t cap) {
  std::ifstream in(p, std::ios::binary);
  std::string out(cap, '\0');
  in.read(out.data(), static_cast<std::streamsize>(cap));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

}  // namespace

Prepared prepare_process(const json& pod, const ExecOptions& opts, const fs::path& pod_dir, const SecretReader& secrets) {
  Prepared out;
  const json& meta = pod.at("metadata");
  const std::string ns = meta.value("namespace", "");
  const json spec = pod.value("spec", json::object());
  const json containers = spec.value("containers", json::array());
  if (containers.empty()) {
    out.error = "the pod has no containers";
    return out;
  }
  const json& c = containers[0];
  const auto image = opts.images.find(c.value("image", ""));
  if (image == opts.images.end()) {
    out.error = "image " + c.value("image", "") + " is not mapped with --exec-image";
    return out;
  }
  out.program = image->second;
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

  // Volumes to host directories.
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
  std::vector<std::pair<std::string, std::string>> mounts;  // mountPath -> host dir
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
  std::sort(mounts.begin(), mounts.end(), [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  auto map_paths = [&](const std::string& s) { return rewrite(s, mounts); };

  for (const auto& a : c.value("command", json::array())) out.args.push_back(map_paths(a.get<std::string>()));
  if (!out.args.empty()) {  // command overrides the image's entrypoint: its first word must be the mapped program
    out.args.erase(out.args.begin());
  }
  for (const auto& a : c.value("args", json::array())) out.args.push_back(map_paths(a.is_string() ? a.get<std::string>() : a.dump()));

  out.env["PATH"] = "/usr/local/bin:/usr/bin:/bin";
  for (auto it = opts.path.rbegin(); it != opts.path.rend(); ++it) out.env["PATH"] = *it + ":" + out.env["PATH"];
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
      const std::string path = from["fieldRef"].value("fieldPath", "");
      if (path == "metadata.name") out.env[name] = meta.value("name", "");
      else if (path == "metadata.namespace") out.env[name] = ns;
      else {
        out.error = "env " + name + ": fieldRef " + path + " is not supported by kube-local";
        return out;
      }
    } else {
      out.error = "env " + name + ": only value, secretKeyRef and fieldRef are supported by kube-local";
      return out;
    }
  }
  out.env["TERMINATION_LOG"] = (pod_dir / "termination-log").string();
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
    for (const auto& [key, pid] : pids_) ::kill(pid, SIGKILL);
    waiters.swap(waiters_);
  }
  for (auto& w : waiters)
    if (w.thread.joinable()) w.thread.join();
  std::error_code ec;
  if (!pods_dir_.empty()) fs::remove_all(pods_dir_, ec);
}

bool ExecKubelet::handles(const json& pod) const {
  const json containers = pod.value("spec", json::object()).value("containers", json::array());
  return !containers.empty() && opts_.images.count(containers[0].value("image", ""));
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

bool ExecKubelet::running(const std::string& ns, const std::string& name) const {
  std::lock_guard lock(mu_);
  return pids_.count(ns + "/" + name) > 0;
}

void ExecKubelet::start(const json& pod, const SecretReader& secrets, std::function<void(const ExecResult&)> done) {
  const std::string ns = pod["metadata"].value("namespace", "");
  const std::string name = pod["metadata"].value("name", "");
  const std::string key = ns + "/" + name;
  const fs::path dir = pods_dir_ / (ns + "_" + name + "_" + pod["metadata"].value("uid", ""));
  std::error_code ec;
  fs::create_directories(dir / "home", ec);
  Prepared p = prepare_process(pod, opts_, dir, secrets);
  if (p.error.empty() && p.uid >= 0) {
    // The Pod's user writes its termination message and works in its home.
    for (const auto& d : {dir, dir / "home"})
      if (::chown(d.c_str(), static_cast<uid_t>(p.uid), static_cast<gid_t>(p.gid)) != 0)
        p.error = "cannot give " + d.string() + " to uid " + std::to_string(p.uid);
  }
  std::lock_guard lock(mu_);
  const std::string uid = pod["metadata"].value("uid", "");
  if (stopping_ || pids_.count(key) || started_.count(uid)) return;
  started_.insert(uid);
  if (!p.error.empty()) {
    add_waiter([done, p] { done({1, "CreateContainerConfigError", p.error}); });
    return;
  }
  std::vector<std::string> argv_s = {p.program};
  argv_s.insert(argv_s.end(), p.args.begin(), p.args.end());
  std::vector<std::string> env_s;
  for (const auto& [k, v] : p.env) env_s.push_back(k + "=" + v);
  const std::string log = (dir / "container.log").string();
  const std::string home = (dir / "home").string();
  // Everything the child needs is built before fork: between fork and exec a
  // multithreaded parent's child may only make async-signal-safe calls.
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
    }
    if (p.uid >= 0) {
      const gid_t groups[1] = {static_cast<gid_t>(p.fs_group)};
      if (setgroups(p.fs_group >= 0 ? 1 : 0, groups) != 0 || setgid(static_cast<gid_t>(p.gid)) != 0 ||
          setuid(static_cast<uid_t>(p.uid)) != 0)
        _exit(126);
    }
    if (chdir(home.c_str()) != 0) _exit(126);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  if (pid < 0) {
    add_waiter([done] { done({1, "Error", "kube-local could not fork"}); });
    return;
  }
  pids_[key] = pid;
  const fs::path term = dir / "termination-log";
  add_waiter([this, pid, key, term, done] {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    {
      std::lock_guard l(mu_);
      pids_.erase(key);
    }
    ExecResult r;
    if (WIFEXITED(st)) {
      r.exit_code = WEXITSTATUS(st);
      r.reason = r.exit_code == 0 ? "Completed" : "Error";
    } else {
      r.exit_code = 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
      r.reason = "Killed";
    }
    r.message = read_capped(term, 4096);
    done(r);
  });
}

std::optional<std::filesystem::path> ExecKubelet::log_path(const json& pod) const {
  const std::string uid = pod["metadata"].value("uid", "");
  {
    std::lock_guard lock(mu_);
    if (!started_.count(uid)) return std::nullopt;
  }
  return pods_dir_ / (pod["metadata"].value("namespace", "") + "_" + pod["metadata"].value("name", "") + "_" + uid) /
         "container.log";
}

void ExecKubelet::kill(const std::string& ns, const std::string& name) {
  std::lock_guard lock(mu_);
  if (auto it = pids_.find(ns + "/" + name); it != pids_.end()) ::kill(it->second, SIGKILL);
}

}  // namespace kl
