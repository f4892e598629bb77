#include "kube-local/pod_security.h"

#include <algorithm>
#include <functional>
#include <set>

namespace kl {
namespace {

struct CheckResult {
  bool allowed = true;
  std::string reason;
  std::string detail;
};

CheckResult forbid(std::string reason, std::string detail) { return {false, std::move(reason), std::move(detail)}; }

// policy/helpers.go
std::string pluralize(const std::string& singular, const std::string& plural, size_t n) {
  return n == 1 ? singular : plural;
}

std::string join_quote(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + json(items[i]).dump();
  return out;
}

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

const json& member(const json& o, const char* k) {
  static const json null;
  if (!o.is_object()) return null;
  auto it = o.find(k);
  return it == o.end() ? null : *it;
}

const json& sc(const json& container) { return member(container, "securityContext"); }

// visitContainers: init containers, containers, ephemeral containers.
void visit_containers(const json& spec, const std::function<void(const json&)>& fn) {
  for (const char* list : {"initContainers", "containers", "ephemeralContainers"})
    if (member(spec, list).is_array())
      for (const auto& c : member(spec, list)) fn(c);
}

// helpers.go relaxPolicyForUserNamespacePod (KEP-127): a pod in a user namespace.
bool user_namespace_pod(const json& spec) { return member(spec, "hostUsers") == false; }

std::string name_of(const json& c) { return member(c, "name").is_string() ? member(c, "name").get<std::string>() : ""; }

// --- baseline -------------------------------------------------------------------

CheckResult app_armor_profile(const json& meta, const json& spec) {  // check_appArmorProfile.go
  auto allowed = [](const json& t) { return t == "RuntimeDefault" || t == "Localhost"; };
  std::vector<std::string> setters;
  std::set<std::string> values;
  const json& pod_type = member(member(member(spec, "securityContext"), "appArmorProfile"), "type");
  if (!member(member(spec, "securityContext"), "appArmorProfile").is_null() && !allowed(pod_type)) {
    setters.push_back("pod");
    values.insert(pod_type.is_string() ? pod_type.get<std::string>() : "");
  }
  std::vector<std::string> bad;
  visit_containers(spec, [&](const json& c) {
    const json& profile = member(sc(c), "appArmorProfile");
    if (!profile.is_null() && !allowed(member(profile, "type"))) {
      bad.push_back(name_of(c));
      values.insert(member(profile, "type").is_string() ? member(profile, "type").get<std::string>() : "");
    }
  });
  if (!bad.empty()) setters.push_back(pluralize("container", "containers", bad.size()) + " " + join_quote(bad));
  std::vector<std::string> list(values.begin(), values.end());
  std::vector<std::string> annotations;  // the deprecated container.apparmor.security.beta.kubernetes.io/<c>
  if (member(meta, "annotations").is_object())
    for (const auto& [k, v] : member(meta, "annotations").items()) {
      const std::string value = v.is_string() ? v.get<std::string>() : "";
      if (k.starts_with("container.apparmor.security.beta.kubernetes.io/") && !value.empty() &&
          value != "runtime/default" && !value.starts_with("localhost/"))
        annotations.push_back(k + "=" + json(value).dump());
    }
  if (!annotations.empty()) {
    std::sort(annotations.begin(), annotations.end());
    list.insert(list.end(), annotations.begin(), annotations.end());
    setters.push_back(pluralize("annotation", "annotations", annotations.size()));
  }
  if (setters.empty()) return {};
  return forbid(pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", list.size()),
                join(setters, " and ") + " must not set AppArmor profile type to " + join_quote(list));
}

CheckResult host_namespaces(const json& spec) {  // check_hostNamespaces.go
  std::vector<std::string> ns;
  if (member(spec, "hostNetwork") == true) ns.push_back("hostNetwork=true");
  if (member(spec, "hostPID") == true) ns.push_back("hostPID=true");
  if (member(spec, "hostIPC") == true) ns.push_back("hostIPC=true");
  if (ns.empty()) return {};
  return forbid("host namespaces", join(ns, ", "));
}

CheckResult host_path_volumes(const json& spec) {  // check_hostPathVolumes.go
  std::vector<std::string> bad;
  if (member(spec, "volumes").is_array())
    for (const auto& v : member(spec, "volumes"))
      if (!member(v, "hostPath").is_null()) bad.push_back(name_of(v));
  if (bad.empty()) return {};
  return forbid("hostPath volumes", pluralize("volume", "volumes", bad.size()) + " " + join_quote(bad));
}

CheckResult host_ports(const json& spec) {  // check_hostPorts.go
  std::vector<std::string> bad;
  std::set<std::string> ports;  // sets.String: sorted as strings
  visit_containers(spec, [&](const json& c) {
    bool valid = true;
    if (member(c, "ports").is_array())
      for (const auto& p : member(c, "ports"))
        if (member(p, "hostPort").is_number_integer() && member(p, "hostPort").get<long>() != 0) {
          valid = false;
          ports.insert(std::to_string(member(p, "hostPort").get<long>()));
        }
    if (!valid) bad.push_back(name_of(c));
  });
  if (bad.empty()) return {};
  return forbid("hostPort", pluralize("container", "containers", bad.size()) + " " + join_quote(bad) + " " +
                                pluralize("uses", "use", bad.size()) + " " +
                                pluralize("hostPort", "hostPorts", ports.size()) + " " +
                                join({ports.begin(), ports.end()}, ", "));
}

CheckResult host_probes_and_lifecycle(const json& spec) {  // check_hostProbesAndhostLifecycle.go (1.34+)
  std::set<std::string> bad, hosts;
  auto check = [&](const json& handler, const std::string& container) {
    for (const char* kind : {"httpGet", "tcpSocket"}) {
      const json& host = member(member(handler, kind), "host");
      if (host.is_string() && !host.get<std::string>().empty()) {
        bad.insert(container);
        hosts.insert(host.get<std::string>());
      }
    }
  };
  visit_containers(spec, [&](const json& c) {
    for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe"}) check(member(c, probe), name_of(c));
    for (const char* hook : {"postStart", "preStop"}) check(member(member(c, "lifecycle"), hook), name_of(c));
  });
  if (bad.empty()) return {};
  return forbid("probe or lifecycle host",
                pluralize("container", "containers", bad.size()) + " " + join_quote({bad.begin(), bad.end()}) + " " +
                    pluralize("uses", "use", bad.size()) + " " +
                    pluralize("probe or lifecycle host", "probe or lifecycle hosts", hosts.size()) + " " +
                    join_quote({hosts.begin(), hosts.end()}));
}

CheckResult privileged(const json& spec) {  // check_privileged.go
  std::vector<std::string> bad;
  visit_containers(spec, [&](const json& c) {
    if (member(sc(c), "privileged") == true) bad.push_back(name_of(c));
  });
  if (bad.empty()) return {};
  return forbid("privileged", pluralize("container", "containers", bad.size()) + " " + join_quote(bad) +
                                  " must not set securityContext.privileged=true");
}

CheckResult proc_mount(const json& spec) {  // check_procMount.go (1.34: user-namespace pods may)
  if (user_namespace_pod(spec)) return {};
  std::vector<std::string> bad;
  std::set<std::string> types;
  visit_containers(spec, [&](const json& c) {
    const json& pm = member(sc(c), "procMount");
    if (!pm.is_null() && pm != "Default") {
      bad.push_back(name_of(c));
      types.insert(pm.is_string() ? pm.get<std::string>() : pm.dump());
    }
  });
  if (bad.empty()) return {};
  return forbid("procMount", pluralize("container", "containers", bad.size()) + " " + join_quote(bad) +
                                 " must not set securityContext.procMount to " + join_quote({types.begin(), types.end()}));
}

CheckResult se_linux_options(const json& spec) {  // check_seLinuxOptions.go
  static const std::set<std::string> kTypes = {"", "container_t", "container_init_t", "container_kvm_t",
                                               "container_engine_t"};
  std::vector<std::string> setters;
  std::set<std::string> bad_types;
  bool set_user = false, set_role = false;
  auto valid = [&](const json& opts) {
    bool ok = true;
    const std::string type = member(opts, "type").is_string() ? member(opts, "type").get<std::string>() : "";
    if (!kTypes.count(type)) {
      ok = false;
      bad_types.insert(type);
    }
    if (member(opts, "user").is_string() && !member(opts, "user").get<std::string>().empty()) ok = false, set_user = true;
    if (member(opts, "role").is_string() && !member(opts, "role").get<std::string>().empty()) ok = false, set_role = true;
    return ok;
  };
  const json& pod_opts = member(member(spec, "securityContext"), "seLinuxOptions");
  if (!pod_opts.is_null() && !valid(pod_opts)) setters.push_back("pod");
  std::vector<std::string> bad;
  visit_containers(spec, [&](const json& c) {
    const json& opts = member(sc(c), "seLinuxOptions");
    if (!opts.is_null() && !valid(opts)) bad.push_back(name_of(c));
  });
  if (!bad.empty()) setters.push_back(pluralize("container", "containers", bad.size()) + " " + join_quote(bad));
  if (setters.empty()) return {};
  std::vector<std::string> data;
  if (!bad_types.empty()) {
    data.push_back(pluralize("type", "types", bad_types.size()) + " " + join_quote({bad_types.begin(), bad_types.end()}));
    // As the source has it: user and role are named only alongside a bad type.
    if (set_user) data.push_back("user may not be set");
    if (set_role) data.push_back("role may not be set");
  }
  return forbid("seLinuxOptions", join(setters, " and ") + " set forbidden securityContext.seLinuxOptions: " + join(data, "; "));
}

CheckResult sysctls(const json& spec) {  // check_sysctls.go, the 1.32 allowed set
  static const std::set<std::string> kAllowed = {
      "kernel.shm_rmid_forced",     "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
      "net.ipv4.ping_group_range",  "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports",
      "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",   "net.ipv4.tcp_keepalive_intvl",
      "net.ipv4.tcp_keepalive_probes", "net.ipv4.tcp_rmem",        "net.ipv4.tcp_wmem"};
  std::vector<std::string> bad;
  if (member(member(spec, "securityContext"), "sysctls").is_array())
    for (const auto& s : member(member(spec, "securityContext"), "sysctls")) {
      const std::string name = member(s, "name").is_string() ? member(s, "name").get<std::string>() : "";
      if (!kAllowed.count(name)) bad.push_back(name);
    }
  if (bad.empty()) return {};
  return forbid("forbidden sysctls", join(bad, ", "));
}

CheckResult capabilities_baseline(const json& spec) {  // check_capabilities_baseline.go
  static const std::set<std::string> kAllowed = {"AUDIT_WRITE", "CHOWN",  "DAC_OVERRIDE", "FOWNER", "FSETID",
                                                 "KILL",        "MKNOD",  "NET_BIND_SERVICE", "SETFCAP", "SETGID",
                                                 "SETPCAP",     "SETUID", "SYS_CHROOT"};
  std::vector<std::string> bad;
  std::set<std::string> caps;
  visit_containers(spec, [&](const json& c) {
    const json& add = member(member(sc(c), "capabilities"), "add");
    bool valid = true;
    if (add.is_array())
      for (const auto& cap : add)
        if (cap.is_string() && !kAllowed.count(cap.get<std::string>())) {
          valid = false;
          caps.insert(cap.get<std::string>());
        }
    if (!valid) bad.push_back(name_of(c));
  });
  if (bad.empty()) return {};
  return forbid("non-default capabilities", pluralize("container", "containers", bad.size()) + " " + join_quote(bad) +
                                                " must not include " + join_quote({caps.begin(), caps.end()}) +
                                                " in securityContext.capabilities.add");
}

CheckResult seccomp_baseline(const json& spec) {  // check_seccompProfile_baseline.go
  std::vector<std::string> setters;
  std::set<std::string> values;
  const json& pod_type = member(member(member(spec, "securityContext"), "seccompProfile"), "type");
  if (pod_type == "Unconfined") {
    setters.push_back("pod");
    values.insert("Unconfined");
  }
  std::vector<std::string> bad;
  visit_containers(spec, [&](const json& c) {
    if (member(member(sc(c), "seccompProfile"), "type") == "Unconfined") {
      bad.push_back(name_of(c));
      values.insert("Unconfined");
    }
  });
  if (!bad.empty()) setters.push_back(pluralize("container", "containers", bad.size()) + " " + join_quote(bad));
  if (setters.empty()) return {};
  return forbid("seccompProfile", join(setters, " and ") + " must not set securityContext.seccompProfile.type to " +
                                      join_quote({values.begin(), values.end()}));
}

// --- restricted -------------------------------------------------------------------

CheckResult allow_privilege_escalation(const json& spec) {  // check_allowPrivilegeEscalation.go
  std::vector<std::string> bad;
  visit_containers(spec, [&](const json& c) {
    if (member(sc(c), "allowPrivilegeEscalation") != false) bad.push_back(name_of(c));
  });
  if (bad.empty()) return {};
  return forbid("allowPrivilegeEscalation != false", pluralize("container", "containers", bad.size()) + " " +
                                                         join_quote(bad) +
                                                         " must set securityContext.allowPrivilegeEscalation=false");
}

CheckResult capabilities_restricted(const json& spec) {  // check_capabilities_restricted.go
  std::vector<std::string> missing_drop, adding;
  std::set<std::string> forbidden_caps;
  visit_containers(spec, [&](const json& c) {
    const json& caps = member(sc(c), "capabilities");
    if (caps.is_null()) {
      missing_drop.push_back(name_of(c));
      return;
    }
    const json& drop = member(caps, "drop");
    if (!drop.is_array() || std::find(drop.begin(), drop.end(), json("ALL")) == drop.end()) missing_drop.push_back(name_of(c));
    bool added = false;
    if (member(caps, "add").is_array())
      for (const auto& cap : member(caps, "add"))
        if (cap != "NET_BIND_SERVICE") {
          added = true;
          forbidden_caps.insert(cap.is_string() ? cap.get<std::string>() : cap.dump());
        }
    if (added) adding.push_back(name_of(c));
  });
  std::vector<std::string> details;
  if (!missing_drop.empty())
    details.push_back(pluralize("container", "containers", missing_drop.size()) + " " + join_quote(missing_drop) +
                      " must set securityContext.capabilities.drop=[\"ALL\"]");
  if (!adding.empty())
    details.push_back(pluralize("container", "containers", adding.size()) + " " + join_quote(adding) +
                      " must not include " + join_quote({forbidden_caps.begin(), forbidden_caps.end()}) +
                      " in securityContext.capabilities.add");
  if (details.empty()) return {};
  return forbid("unrestricted capabilities", join(details, "; "));
}

CheckResult restricted_volumes(const json& spec) {  // check_restrictedVolumes.go
  static const std::set<std::string> kAllowed = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                                                 "image", "persistentVolumeClaim", "projected", "secret"};
  std::vector<std::string> bad;
  std::set<std::string> types;
  if (member(spec, "volumes").is_array())
    for (const auto& v : member(spec, "volumes")) {
      if (!v.is_object()) continue;
      std::string source;
      for (const auto& [k, val] : v.items())
        if (k != "name" && !val.is_null()) source = k;
      if (kAllowed.count(source)) continue;
      bad.push_back(name_of(v));
      types.insert(source.empty() ? "unknown" : source);
    }
  if (bad.empty()) return {};
  return forbid("restricted volume types", pluralize("volume", "volumes", bad.size()) + " " + join_quote(bad) + " " +
                                               pluralize("uses", "use", bad.size()) + " " +
                                               pluralize("restricted volume type", "restricted volume types", types.size()) +
                                               " " + join_quote({types.begin(), types.end()}));
}

CheckResult run_as_non_root(const json& spec) {  // check_runAsNonRoot.go
  if (user_namespace_pod(spec)) return {};
  std::vector<std::string> setters;
  bool pod_non_root = false;
  const json& pod_value = member(member(spec, "securityContext"), "runAsNonRoot");
  if (pod_value.is_boolean()) {
    if (!pod_value.get<bool>()) setters.push_back("pod");
    else pod_non_root = true;
  }
  std::vector<std::string> explicit_bad, implicit_bad;
  visit_containers(spec, [&](const json& c) {
    const json& v = member(sc(c), "runAsNonRoot");
    if (v.is_boolean()) {
      if (!v.get<bool>()) explicit_bad.push_back(name_of(c));
    } else if (!pod_non_root) {
      implicit_bad.push_back(name_of(c));
    }
  });
  if (!explicit_bad.empty())
    setters.push_back(pluralize("container", "containers", explicit_bad.size()) + " " + join_quote(explicit_bad));
  if (!setters.empty())
    return forbid("runAsNonRoot != true", join(setters, " and ") + " must not set securityContext.runAsNonRoot=false");
  if (!implicit_bad.empty())
    return forbid("runAsNonRoot != true", "pod or " + pluralize("container", "containers", implicit_bad.size()) + " " +
                                              join_quote(implicit_bad) + " must set securityContext.runAsNonRoot=true");
  return {};
}

CheckResult run_as_user(const json& spec) {  // check_runAsUser.go
  if (user_namespace_pod(spec)) return {};
  std::vector<std::string> setters;
  if (member(member(spec, "securityContext"), "runAsUser") == 0) setters.push_back("pod");
  std::vector<std::string> bad;
  visit_containers(spec, [&](const json& c) {
    if (member(sc(c), "runAsUser") == 0) bad.push_back(name_of(c));
  });
  if (!bad.empty()) setters.push_back(pluralize("container", "containers", bad.size()) + " " + join_quote(bad));
  if (setters.empty()) return {};
  return forbid("runAsUser=0", join(setters, " and ") + " must not set runAsUser=0");
}

CheckResult seccomp_restricted(const json& spec) {  // check_seccompProfile_restricted.go
  auto valid = [](const json& t) { return t == "RuntimeDefault" || t == "Localhost"; };
  std::vector<std::string> setters;
  std::set<std::string> values;
  bool pod_set = false;
  const json& pod_profile = member(member(spec, "securityContext"), "seccompProfile");
  if (!pod_profile.is_null()) {
    const json& t = member(pod_profile, "type");
    if (!valid(t)) {
      setters.push_back("pod");
      values.insert(t.is_string() ? t.get<std::string>() : "");
    } else {
      pod_set = true;
    }
  }
  std::vector<std::string> explicit_bad, implicit_bad;
  visit_containers(spec, [&](const json& c) {
    const json& profile = member(sc(c), "seccompProfile");
    if (!profile.is_null()) {
      const json& t = member(profile, "type");
      if (!valid(t)) {
        explicit_bad.push_back(name_of(c));
        values.insert(t.is_string() ? t.get<std::string>() : "");
      }
    } else if (!pod_set) {
      implicit_bad.push_back(name_of(c));
    }
  });
  if (!explicit_bad.empty())
    setters.push_back(pluralize("container", "containers", explicit_bad.size()) + " " + join_quote(explicit_bad));
  if (!setters.empty())
    return forbid("seccompProfile", join(setters, " and ") + " must not set securityContext.seccompProfile.type to " +
                                        join_quote({values.begin(), values.end()}));
  if (!implicit_bad.empty())
    return forbid("seccompProfile", "pod or " + pluralize("container", "containers", implicit_bad.size()) + " " +
                                        join_quote(implicit_bad) +
                                        " must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"");
  return {};
}

}  // namespace

std::optional<PodSecurityLevel> pod_security_level(const json& labels, const std::string& mode) {
  const std::string key = "pod-security.kubernetes.io/" + mode;
  if (!labels.is_object() || !labels.contains(key) || !labels[key].is_string()) return std::nullopt;
  PodSecurityLevel l{labels[key].get<std::string>(), "latest"};
  // An unparseable level is evaluated as restricted (admission.go: policy errors default to the strictest).
  if (l.level != "privileged" && l.level != "baseline" && l.level != "restricted") l.level = "restricted";
  if (labels.contains(key + "-version") && labels[key + "-version"].is_string()) l.version = labels[key + "-version"];
  return l;
}

std::string pod_security_violations(const std::string& level, const json& meta, const json& spec) {
  if (level != "baseline" && level != "restricted") return "";
  // registry.go EvaluatePod: the baseline checks that do not overlap, then for
  // baseline the overlapping ones, for restricted the restricted ones instead.
  using Check = CheckResult (*)(const json&);
  std::vector<Check> checks = {host_namespaces, host_path_volumes, host_ports, host_probes_and_lifecycle,
                              privileged,      proc_mount,        se_linux_options};
  checks.push_back(sysctls);
  if (level == "baseline") {
    checks.push_back(capabilities_baseline);
    checks.push_back(seccomp_baseline);
  } else {
    for (Check c : {allow_privilege_escalation, capabilities_restricted, restricted_volumes, run_as_non_root, run_as_user,
                    seccomp_restricted})
      checks.push_back(c);
  }
  std::vector<std::string> parts;
  std::vector<CheckResult> results = {app_armor_profile(meta, spec)};  // check files in name order
  for (Check c : checks) results.push_back(c(spec));
  for (const CheckResult& r : results) {
    if (r.allowed) continue;
    parts.push_back(r.detail.empty() ? r.reason : r.reason + " (" + r.detail + ")");
  }
  return join(parts, ", ");
}

}  // namespace kl
