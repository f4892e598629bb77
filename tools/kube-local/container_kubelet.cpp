#include "kube-local/container_kubelet.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "common/process.h"

namespace kl {
namespace fs = std::filesystem;

namespace {

// containerd pkg/oci/spec.go defaultUnixCaps: what a container gets unless its securityContext says otherwise.
const std::vector<std::string> kDefaultCapabilities = {
    "CAP_CHOWN",  "CAP_DAC_OVERRIDE", "CAP_FSETID",  "CAP_FOWNER", "CAP_MKNOD",            "CAP_NET_RAW",    "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP",      "CAP_SETPCAP", "CAP_KILL",   "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_AUDIT_WRITE"};

// Every Linux capability (capability.h, 0 to 40): what "add: [ALL]" grants.
const std::vector<std::string> kAllCapabilities = {
    "CAP_CHOWN",          "CAP_DAC_OVERRIDE",    "CAP_DAC_READ_SEARCH", "CAP_FOWNER",       "CAP_FSETID",
    "CAP_KILL",           "CAP_SETGID",          "CAP_SETUID",          "CAP_SETPCAP",      "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN",       "CAP_NET_RAW",      "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",      "CAP_SYS_MODULE",      "CAP_SYS_RAWIO",       "CAP_SYS_CHROOT",   "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",      "CAP_SYS_ADMIN",       "CAP_SYS_BOOT",        "CAP_SYS_NICE",     "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",       "CAP_SYS_TTY_CONFIG",  "CAP_MKNOD",           "CAP_LEASE",        "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",  "CAP_SETFCAP",         "CAP_MAC_OVERRIDE",    "CAP_MAC_ADMIN",    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",     "CAP_BLOCK_SUSPEND",   "CAP_AUDIT_READ",      "CAP_PERFMON",      "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE"};

std::string upper(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return s;
}

std::vector<std::string> strings_of(const json& list) {
  std::vector<std::string> out;
  if (!list.is_array()) return out;
  for (const auto& v : list)
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

// A securityContext field, the container's over the Pod's (DetermineEffectiveSecurityContext).
const json* effective(const json& pod_sc, const json& c_sc, const char* key) {
  if (c_sc.is_object() && c_sc.contains(key) && !c_sc[key].is_null()) return &c_sc[key];
  if (pod_sc.is_object() && pod_sc.contains(key) && !pod_sc[key].is_null()) return &pod_sc[key];
  return nullptr;
}

std::optional<long long> effective_id(const json& pod_sc, const json& c_sc, const char* key) {
  const json* v = effective(pod_sc, c_sc, key);
  if (v && v->is_number_integer()) return v->get<long long>();
  return std::nullopt;
}

// The user part of an image's USER ("1000:1000" -> "1000"), as containerd's getUserFromImage reads it.
std::string image_user_part(const std::string& user) { return user.substr(0, user.find(':')); }

std::optional<long long> numeric(const std::string& s) {
  if (s.empty() || s.size() > 18 || !std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); }))
    return std::nullopt;
  return std::stoll(s);
}

// The kubelet's format.Pod: name_namespace(uid).
std::string pod_ref(const json& pod) {
  const json meta = pod.value("metadata", json::object());
  return "\"" + meta.value("name", "") + "_" + meta.value("namespace", "") + "(" + meta.value("uid", "") + ")\"";
}

// The Pod's hostname: its name, at most 63 characters, as the kubelet truncates it
// (GeneratePodHostNameAndDomain), without a trailing '-' or '.'.
std::string hostname_of(const std::string& name) {
  std::string h = name.substr(0, 63);
  while (!h.empty() && (h.back() == '-' || h.back() == '.')) h.pop_back();
  return h;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

// pkg/volume/volume_linux.go SetVolumeOwnership: every file and directory of
// the volume gets group fsGroup and g+rw (ro: g+r); directories also g+x and
// setgid, so what is made inside keeps the group. Symlinks are not followed.
std::string set_volume_ownership(const fs::path& root, long long fs_group, bool read_only) {
  const mode_t mask = read_only ? 0440 : 0660;
  auto change = [&](const fs::path& p) -> std::string {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return "";  // gone meanwhile
    if (::lchown(p.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(fs_group)) != 0)
      return "cannot give " + p.string() + " to group " + std::to_string(fs_group);
    if (S_ISLNK(st.st_mode)) return "";
    const mode_t mode = (st.st_mode & 07777) | mask | (S_ISDIR(st.st_mode) ? (S_ISGID | 0110) : 0);
    if (::chmod(p.c_str(), mode) != 0) return "cannot change the mode of " + p.string();
    return "";
  };
  if (auto err = change(root); !err.empty()) return err;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (auto err = change(it->path()); !err.empty()) return err;
  return ec ? "cannot walk " + root.string() + ": " + ec.message() : "";
}

// requiresPermissionChange: nothing to do when the root already has the group, the permissions and setgid.
bool ownership_matches(const fs::path& root, long long fs_group, bool read_only) {
  struct stat st {};
  if (::stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return false;
  const mode_t want = (read_only ? 0440 : 0660) | 0110;
  return static_cast<long long>(st.st_gid) == fs_group && (st.st_mode & want) == want && (st.st_mode & S_ISGID);
}

}  // namespace

std::string normalize_image(const std::string& image) {
  // distribution/reference: a first component with '.' or ':' (or localhost) is a registry.
  std::string out = image;
  const size_t slash = out.find('/');
  const std::string first = slash == std::string::npos ? "" : out.substr(0, slash);
  if (slash == std::string::npos) out = "docker.io/library/" + out;
  else if (first.find('.') == std::string::npos && first.find(':') == std::string::npos && first != "localhost")
    out = "docker.io/" + out;
  const size_t last_slash = out.rfind('/');
  if (out.find('@') == std::string::npos && out.find(':', last_slash) == std::string::npos) out += ":latest";
  return out;
}

std::optional<std::string> verify_run_as_non_root(const json& pod, const json& container, const std::string& image_user) {
  const json pod_sc = pod.value("spec", json::object()).value("securityContext", json::object());
  const json c_sc = container.value("securityContext", json::object());
  const json* non_root = effective(pod_sc, c_sc, "runAsNonRoot");
  if (!non_root || !non_root->is_boolean() || !non_root->get<bool>()) return std::nullopt;
  const std::string where = "(pod: " + pod_ref(pod) + ", container: " + container.value("name", "") + ")";
  if (const auto uid = effective_id(pod_sc, c_sc, "runAsUser")) {
    if (*uid == 0) return "container's runAsUser breaks non-root policy " + where;
    return std::nullopt;
  }
  // getImageUser: an image without a user runs as root (uid 0).
  const std::string user = image_user_part(image_user);
  const auto uid = user.empty() ? std::optional<long long>(0) : numeric(user);
  if (!uid) return "container has runAsNonRoot and image has non-numeric user (" + user + "), cannot verify user is non-root " + where;
  if (*uid == 0) return "container has runAsNonRoot and image will run as root " + where;
  return std::nullopt;
}

std::vector<std::string> effective_capabilities(const json& capabilities) {
  std::set<std::string> caps(kDefaultCapabilities.begin(), kDefaultCapabilities.end());
  const json c = capabilities.is_object() ? capabilities : json::object();
  const auto add = strings_of(c.value("add", json::array()));
  const auto drop = strings_of(c.value("drop", json::array()));
  auto is_all = [](const std::string& s) { return upper(s) == "ALL"; };
  // containerd WithCapabilities: ALL first (add, then drop), so single adds and drops still apply after it.
  if (std::any_of(add.begin(), add.end(), is_all)) caps.insert(kAllCapabilities.begin(), kAllCapabilities.end());
  if (std::any_of(drop.begin(), drop.end(), is_all)) caps.clear();
  for (const auto& a : add)
    if (!is_all(a)) caps.insert("CAP_" + upper(a));
  for (const auto& d : drop)
    if (!is_all(d)) caps.erase("CAP_" + upper(d));
  return {caps.begin(), caps.end()};
}

std::string termination_message_from_log(const std::string& log) {
  constexpr size_t kLines = 80, kBytes = 2048;
  // The start of the last 80 lines: after the 81st newline from the end (a final newline ends a line).
  size_t start = 0, lines = 0;
  for (size_t i = log.size(); i > 0; --i) {
    if (log[i - 1] == '\n' && i != log.size() && ++lines == kLines) {
      start = i;
      break;
    }
  }
  const std::string tail = log.substr(start);
  return tail.size() > kBytes ? tail.substr(tail.size() - kBytes) : tail;
}

std::string runtime_container_name(const std::string& pod_uid, const std::string& container) {
  return "kube-local-" + pod_uid + "-" + container;
}

ContainerRun container_run(const json& pod, const std::string& list, size_t index, const ImageInfo& image,
                           const ExecOptions& opts, const fs::path& pod_dir, const SecretReader& secrets) {
  ContainerRun out;
  const json meta = pod.value("metadata", json::object());
  const json spec = pod.value("spec", json::object());
  const json containers = spec.value(list, json::array());
  if (!containers.is_array() || index >= containers.size() || !containers[index].is_object()) {
    out.error = "the pod has no " + list + "[" + std::to_string(index) + "]";
    return out;
  }
  const bool init = list == "initContainers";
  const json& c = containers[index];
  out.name = c.value("name", "");
  out.runtime_name = runtime_container_name(meta.value("uid", ""), out.name);
  out.dir = init ? pod_dir / ("init-" + std::to_string(index)) : pod_dir;
  const json pod_sc = spec.value("securityContext", json::object());
  const json c_sc = c.value("securityContext", json::object());

  // Refusals first, as the kubelet's generateContainerConfig checks before it asks the runtime.
  if (auto refused = verify_run_as_non_root(pod, c, image.user)) {
    out.error = *refused;
    return out;
  }
  const json* seccomp = effective(pod_sc, c_sc, "seccompProfile");
  const std::string seccomp_type = seccomp && seccomp->is_object() ? seccomp->value("type", "") : "";
  if (seccomp_type == "Localhost") {
    out.error = "seccompProfile Localhost is not supported by kube-local (RuntimeDefault and Unconfined are)";
    return out;
  }
  const auto volumes = host_volumes(pod, opts.volume_root, pod_dir);
  if (!volumes) {
    out.error = volumes.error();
    return out;
  }
  const auto env = resolve_env(pod, c, secrets);
  if (!env) {
    out.error = env.error();
    return out;
  }

  auto& a = out.argv;
  a = {opts.runtime, "create", "--replace", "--name=" + out.runtime_name, "--pull=never"};
  a.insert(a.end(), opts.runtime_options.begin(), opts.runtime_options.end());
  a.push_back("--network=host");
  a.push_back("--hostname=" + hostname_of(meta.value("name", "")));
  a.push_back("--label=io.kubernetes.pod.name=" + meta.value("name", ""));
  a.push_back("--label=io.kubernetes.pod.namespace=" + meta.value("namespace", ""));
  a.push_back("--label=io.kubernetes.pod.uid=" + meta.value("uid", ""));
  a.push_back("--label=io.kubernetes.container.name=" + out.name);

  const auto uid = effective_id(pod_sc, c_sc, "runAsUser");
  const auto gid = effective_id(pod_sc, c_sc, "runAsGroup");
  if (uid) {
    a.push_back("--user=" + std::to_string(*uid) + (gid ? ":" + std::to_string(*gid) : ""));
  } else if (gid) {
    const std::string user = image_user_part(image.user);
    a.push_back("--user=" + (user.empty() ? std::string("0") : user) + ":" + std::to_string(*gid));
  }
  out.uid = uid.value_or(-1);
  out.gid = gid ? *gid : out.uid;
  if (pod_sc.contains("fsGroup") && pod_sc["fsGroup"].is_number_integer()) {
    out.fs_group = pod_sc["fsGroup"].get<long long>();
    out.fs_group_on_root_mismatch = pod_sc.value("fsGroupChangePolicy", "") == "OnRootMismatch";
    a.push_back("--group-add=" + std::to_string(out.fs_group));
  }
  for (const auto& g : pod_sc.value("supplementalGroups", json::array()))
    if (g.is_number_integer()) a.push_back("--group-add=" + std::to_string(g.get<long long>()));

  if (c_sc.value("readOnlyRootFilesystem", false) == true) {
    a.push_back("--read-only");
    a.push_back("--read-only-tmpfs=false");
  }
  if (c_sc.value("privileged", false) == true) {
    a.push_back("--privileged");
  } else {
    a.push_back("--cap-drop=all");
    for (const auto& cap : effective_capabilities(c_sc.value("capabilities", json::object()))) a.push_back("--cap-add=" + cap);
  }
  if (c_sc.contains("allowPrivilegeEscalation") && c_sc["allowPrivilegeEscalation"] == false)
    a.push_back("--security-opt=no-new-privileges");
  if (seccomp_type != "RuntimeDefault") a.push_back("--security-opt=seccomp=unconfined");
  if (const std::string wd = c.value("workingDir", ""); !wd.empty()) a.push_back("--workdir=" + wd);

  for (const auto& e : *env) {
    if (e.source == EnvSource::kSecret) {
      a.push_back("--env=" + e.name);  // the value comes from podman's environment
      out.secret_env[e.name] = e.value;
    } else {
      a.push_back("--env=" + e.name + "=" + e.value);
    }
  }

  // -v splits on ':': a path with one cannot be said there.
  auto mountable = [&](const std::string& p, const std::string& what) {
    if (p.find(':') == std::string::npos && p.find(',') == std::string::npos) return true;
    out.error = what + " " + p + ": kube-local cannot mount a path with ':' or ','";
    return false;
  };
  for (const auto& m : c.value("volumeMounts", json::array())) {
    const auto host = mount_host_dir(*volumes, m);
    if (!host) {
      out.error = host.error();
      return out;
    }
    const HostVolume& v = volumes->at(m.value("name", ""));
    const std::string target = m.value("mountPath", "");
    if (!target.starts_with("/")) {
      out.error = "volumeMount " + m.value("name", "") + ": mountPath " + target + " must be absolute";
      return out;
    }
    if (!mountable(host->string(), "volume") || !mountable(target, "mountPath")) return out;
    const bool ro = m.value("readOnly", false) == true;
    out.volumes.push_back({v.path, *host, v.claim, ro});
    a.push_back("--volume=" + host->string() + ":" + target + (ro ? ":ro" : ""));
  }
  std::string message_path = c.value("terminationMessagePath", "");
  if (message_path.empty()) message_path = "/dev/termination-log";
  if (!mountable(message_path, "terminationMessagePath")) return out;
  a.push_back("--volume=" + (out.dir / "termination-log").string() + ":" + message_path);
  out.message_from_log = c.value("terminationMessagePolicy", "") == "FallbackToLogsOnError";

  const json command = c.value("command", json::array());
  if (command.is_array() && !command.empty()) {
    json entrypoint = json::array();
    for (const auto& s : command) entrypoint.push_back(s.is_string() ? s.get<std::string>() : s.dump());
    a.push_back("--entrypoint=" + entrypoint.dump());
  }
  a.push_back(normalize_image(c.value("image", "")));
  for (const auto& s : c.value("args", json::array())) a.push_back(s.is_string() ? s.get<std::string>() : s.dump());
  return out;
}

std::optional<ImageInfo> inspect_local_image(const ExecOptions& opts, const std::string& image) {
  const auto r = bo::run_process({opts.runtime, "image", "inspect", "--format", "{{.Config.User}}", normalize_image(image)});
  if (r.exit_code != 0) return std::nullopt;
  return ImageInfo{trim(r.out)};
}

std::string prepare_container_dirs(const ContainerRun& run, std::set<fs::path>& owned) {
  std::error_code ec;
  fs::create_directories(run.dir, ec);
  if (ec) return "cannot make " + run.dir.string() + ": " + ec.message();
  // kuberuntime makeMounts: a fresh file, mode 0666 whatever the umask, so any user may write it.
  const fs::path message = run.dir / "termination-log";
  const int fd = ::open(message.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0 || ::fchmod(fd, 0666) != 0) {
    if (fd >= 0) ::close(fd);
    return "cannot make " + message.string();
  }
  ::close(fd);
  for (const auto& v : run.volumes) {
    // As the process path makes them: an emptyDir world-writable, a fresh claim its user's.
    for (const fs::path& d : {v.root, v.host}) {
      const bool fresh = !fs::exists(d, ec);
      fs::create_directories(d, ec);
      if (ec) return "cannot make " + d.string() + ": " + ec.message();
      if (fresh && !v.claim) {
        fs::permissions(d, fs::perms::all, ec);
      } else if (fresh && run.uid >= 0) {
        if (::chown(d.c_str(), static_cast<uid_t>(run.uid), static_cast<gid_t>(run.fs_group >= 0 ? run.fs_group : run.gid)) != 0 ||
            ::chmod(d.c_str(), 0700) != 0)
          return "cannot give " + d.string() + " to uid " + std::to_string(run.uid);
      }
    }
    if (run.fs_group < 0 || owned.count(v.root)) continue;
    if (!(run.fs_group_on_root_mismatch && ownership_matches(v.root, run.fs_group, v.read_only)))
      if (auto err = set_volume_ownership(v.root, run.fs_group, v.read_only); !err.empty()) return err;
    owned.insert(v.root);
  }
  return "";
}

void remove_runtime_containers(const ExecOptions& opts, const std::vector<std::string>& names) {
  if (opts.runtime.empty() || names.empty()) return;
  std::vector<std::string> argv = {opts.runtime, "rm", "--force", "--ignore", "--time=0"};
  argv.insert(argv.end(), names.begin(), names.end());
  (void)bo::run_process(argv);
}

}  // namespace kl
