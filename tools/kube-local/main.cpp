// kube-local: a local Kubernetes API server over HTTPS for the demo and tests.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "common/encoding.h"
#include "common/process.h"
#include "kube-local/controllers.h"
#include "kube-local/server.h"
#include "kube/selector.h"

namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file_atomic(const fs::path& p, const std::string& data, fs::perms perms = fs::perms::owner_read | fs::perms::owner_write) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << data;
    if (!out.flush()) throw std::runtime_error("cannot write " + tmp.string());
  }
  fs::permissions(tmp, perms);
  fs::rename(tmp, p);
}

// CSV as kube-apiserver's --token-auth-file: token,user,uid,"group1,group2"
std::map<std::string, kl::UserInfo> read_tokens(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read tokens file " + path);
  std::map<std::string, kl::UserInfo> out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields;
    std::string cur;
    bool quoted = false;
    for (char c : line) {
      if (c == '"') quoted = !quoted;
      else if (c == ',' && !quoted) {
        fields.push_back(cur);
        cur.clear();
      } else cur += c;
    }
    fields.push_back(cur);
    if (fields.size() < 3 || fields[0].empty() || fields[1].empty())
      throw std::runtime_error(path + ":" + std::to_string(n) + ": expected token,user,uid[,\"groups\"]");
    kl::UserInfo u{fields[1], fields[2], {}};
    if (fields.size() > 3) {
      std::stringstream gs(fields[3]);
      std::string g;
      while (std::getline(gs, g, ','))
        if (!g.empty()) u.groups.push_back(g);
    }
    u.groups.push_back("system:authenticated");
    out[fields[0]] = u;
  }
  return out;
}

// --exec-runtime: an executable (looked up on PATH when it has no '/') that answers `--version`,
// as an absolute path (the container kubelet execs it from a forked child, without a PATH search).
std::string runtime_program(const std::string& name) {
  std::string found;
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0 && fs::is_regular_file(name)) found = fs::absolute(name).string();
  } else if (const char* path = std::getenv("PATH")) {
    std::stringstream dirs(path);
    for (std::string d; found.empty() && std::getline(dirs, d, ':');) {
      const fs::path candidate = fs::path(d.empty() ? "." : d) / name;
      std::error_code ec;
      if (fs::is_regular_file(candidate, ec) && ::access(candidate.c_str(), X_OK) == 0) found = fs::absolute(candidate).string();
    }
  }
  if (found.empty()) throw std::runtime_error("--exec-runtime " + name + ": not an executable file (nor one on PATH)");
  const auto r = bo::run_process({found, "--version"});
  if (r.exit_code != 0)
    throw std::runtime_error("--exec-runtime " + name + ": `" + found + " --version` failed (exit code " +
                             std::to_string(r.exit_code) + ")");
  return found;
}

void bootstrap(kl::ApiServer& api) {
  kl::CallContext ctx = kl::ApiServer::system_context();
  auto ns = api.registry().find("", "v1", "namespaces");
  for (const char* name : {"default", "kube-system", "kube-public", "kube-node-lease"})
    if (!api.store().get("/namespaces", "", name)) (void)api.create(*ns, "", {{"metadata", {{"name", name}}}}, ctx);
  auto cr = api.registry().find("rbac.authorization.k8s.io", "v1", "clusterroles");
  auto crb = api.registry().find("rbac.authorization.k8s.io", "v1", "clusterrolebindings");
  if (!api.store().get(cr->gr(), "", "cluster-admin"))
    (void)api.create(*cr, "", {{"metadata", {{"name", "cluster-admin"}}},
                               {"rules", {{{"apiGroups", {"*"}}, {"resources", {"*"}}, {"verbs", {"*"}}},
                                          {{"nonResourceURLs", {"*"}}, {"verbs", {"*"}}}}}}, ctx);
  if (!api.store().get(crb->gr(), "", "cluster-admin"))
    (void)api.create(*crb, "", {{"metadata", {{"name", "cluster-admin"}}},
                                {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "ClusterRole"}, {"name", "cluster-admin"}}},
                                {"subjects", {{{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Group"}, {"name", "system:masters"}}}}}, ctx);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kube-local: a local Kubernetes API server over HTTPS"};
  int port = 0;
  std::string kubeconfig, data_dir, tokens_file;
  bool authorize = false;
  double time_scale = 1.0;
  int bookmark_ms = 5000;
  size_t history = 200000;
  std::string pod_rules_file;
  app.add_option("--port", port, "port on 127.0.0.1 (0 picks a free one)")->check(CLI::Range(0, 65535));
  app.add_option("--write-kubeconfig", kubeconfig, "write a kubeconfig for the admin user here")->required();
  app.add_option("--data-dir", data_dir, "keep state here across restarts (in memory without it)");
  app.add_flag("--authorize", authorize, "enforce RBAC from the stored Roles and bindings");
  std::string audit_log;
  app.add_option("--audit-log", audit_log, "append one JSON line per request: user, verb, resource, allowed");
  app.add_option("--tokens", tokens_file, "static tokens CSV: token,user,uid,\"group1,group2\"");
  app.add_option("--time-scale", time_scale, "speed-up factor for simulated delays (pods, Job backoff, TTL)")
      ->check(CLI::PositiveNumber);
  app.add_option("--bookmark-interval-ms", bookmark_ms, "watch bookmark interval")->check(CLI::Range(50, 600000));
  app.add_option("--pod-rules", pod_rules_file, "JSON list of {selector, outcome} for simulated pods")
      ->check(CLI::ExistingFile);
  std::vector<std::string> exec_images;
  std::string volume_root;
  app.add_option("--exec-image", exec_images,
                 "IMAGE=PROGRAM: Pods of this image whose outcome is {\"exec\": true} really run PROGRAM (repeatable)");
  app.add_option("--volume-root", volume_root, "directory of PersistentVolumeClaims for exec Pods: <dir>/<namespace>/<claim>");
  std::vector<std::string> exec_image_paths;
  app.add_option("--exec-image-path", exec_image_paths,
                 "IMAGE=DIR[:DIR...]: directories put first on the PATH of this image's containers, as the image's own "
                 "PATH would (e.g. postgres:15=/usr/lib/postgresql/15/bin); alone, it maps an image whose containers run "
                 "a command from a volume (repeatable)");
  std::vector<std::string> exec_path;
  app.add_option("--exec-path", exec_path,
                 "directory put first on exec Pods' PATH, as the image's own PATH would (e.g. where its wal-g is)")
      ->check(CLI::ExistingDirectory);
  std::string exec_runtime;
  app.add_option("--exec-runtime", exec_runtime,
                 "container runtime (podman): exec Pods whose images are all in its local storage run as its "
                 "containers, with their securityContext, instead of as processes");
  std::vector<std::string> exec_runtime_options;
  app.add_option("--exec-runtime-option", exec_runtime_options,
                 "an option inserted into every `podman create` of --exec-runtime, given as "
                 "--exec-runtime-option=--runtime=runc (repeatable)");
  app.add_option("--history", history, "watch events kept before 410 Gone")->check(CLI::Range(1, 100000000));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    kl::TlsMaterial tls;
    std::string admin_token, sa_key;
    if (!data_dir.empty()) {
      fs::create_directories(data_dir);
      const fs::path d(data_dir);
      if (fs::exists(d / "ca.crt") && fs::exists(d / "ca.key") && fs::exists(d / "admin.token")) {
        tls.ca = {read_file(d / "ca.crt"), read_file(d / "ca.key")};
        tls.server = kl::issue_certificate(tls.ca, "kube-local", "127.0.0.1,localhost,::1");
        admin_token = read_file(d / "admin.token");
        sa_key = read_file(d / "sa.key");
      } else {
        tls = kl::generate_tls();
        admin_token = bo::hex_encode(bo::random_bytes(24));
        sa_key = bo::hex_encode(bo::random_bytes(32));
        write_file_atomic(d / "ca.key", tls.ca.key);
        write_file_atomic(d / "ca.crt", tls.ca.cert);
        write_file_atomic(d / "admin.token", admin_token);
        write_file_atomic(d / "sa.key", sa_key);
      }
    } else {
      tls = kl::generate_tls();
      admin_token = bo::hex_encode(bo::random_bytes(24));
      sa_key = bo::hex_encode(bo::random_bytes(32));
    }
    kl::ApiOptions opts;
    opts.authorize = authorize;
    opts.audit_log = audit_log;
    if (!tokens_file.empty()) opts.tokens = read_tokens(tokens_file);
    opts.tokens[admin_token] = {"kube-local-admin", "kube-local-admin", {"system:masters", "system:authenticated"}};
    opts.sa_signing_key = sa_key;
    opts.bookmark_interval = std::chrono::milliseconds(bookmark_ms);

    kl::Store store(data_dir.empty() ? "" : data_dir + "/store", history);
    kl::Registry registry;
    kl::ApiServer api(store, registry, opts);
    api.restore_crds();
    bootstrap(api);
    kl::HttpsServer server(api, tls.server, static_cast<uint16_t>(port), tls.ca.cert);
    const std::string address = "127.0.0.1:" + std::to_string(server.port());
    api.set_server_address(address);  // discovery advertises the real address
    kl::ControllerOptions copts{time_scale, {}, {}};
    if (!pod_rules_file.empty()) {
      const kl::json rules = kl::json::parse(read_file(pod_rules_file), nullptr, false);
      if (!rules.is_array()) throw std::runtime_error(pod_rules_file + ": expected a JSON list of {selector, outcome}");
      for (const auto& r : rules) {
        std::string err;
        if (!r.is_object() || !bo::kube::LabelSelector::parse(r.value("selector", ""), &err) ||
            !r.value("outcome", kl::json()).is_object())
          throw std::runtime_error(pod_rules_file + ": each rule needs a valid selector and an outcome object " + err);
        copts.pod_rules.push_back({r.value("selector", ""), r["outcome"]});
      }
    }
    for (const auto& m : exec_images) {
      const auto eq = m.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == m.size())
        throw std::runtime_error("--exec-image " + m + ": expected IMAGE=PROGRAM");
      if (access(m.substr(eq + 1).c_str(), X_OK) != 0)
        throw std::runtime_error("--exec-image " + m + ": " + m.substr(eq + 1) + " is not an executable file");
      copts.exec.images[m.substr(0, eq)] = m.substr(eq + 1);
    }
    for (const auto& m : exec_image_paths) {
      const auto eq = m.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == m.size())
        throw std::runtime_error("--exec-image-path " + m + ": expected IMAGE=DIR[:DIR...]");
      auto& dirs = copts.exec.image_paths[m.substr(0, eq)];
      std::stringstream list(m.substr(eq + 1));
      for (std::string d; std::getline(list, d, ':');) {
        if (d.empty()) continue;
        if (!fs::is_directory(d)) throw std::runtime_error("--exec-image-path " + m + ": " + d + " is not a directory");
        dirs.push_back(fs::absolute(d).string());
      }
      if (dirs.empty()) throw std::runtime_error("--exec-image-path " + m + ": expected IMAGE=DIR[:DIR...]");
    }
    if (!exec_runtime.empty()) copts.exec.runtime = runtime_program(exec_runtime);
    for (const auto& o : exec_runtime_options) {
      if (exec_runtime.empty()) throw std::runtime_error("--exec-runtime-option " + o + ": needs --exec-runtime");
      if (o.size() < 2 || o[0] != '-' || o.find_first_of("\n\r") != std::string::npos)
        throw std::runtime_error("--exec-runtime-option " + o + ": expected an option of `podman create`, e.g. "
                                 "--exec-runtime-option=--runtime=runc");
      copts.exec.runtime_options.push_back(o);
    }
    if (!volume_root.empty()) copts.exec.volume_root = fs::absolute(volume_root);
    for (const auto& d : exec_path) copts.exec.path.push_back(fs::absolute(d).string());
    kl::Controllers controllers(api, copts);

    const std::string kc =
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-local\n  cluster:\n    server: https://" + address +
        "\n    certificate-authority-data: " + bo::base64_encode(tls.ca.cert) +
        "\nusers:\n- name: kube-local-admin\n  user:\n    token: " + admin_token +
        "\ncontexts:\n- name: kube-local\n  context:\n    cluster: kube-local\n    user: kube-local-admin\n"
        "    namespace: default\ncurrent-context: kube-local\n";
    write_file_atomic(kubeconfig, kc);
    server.start();
    controllers.start();
    std::cout << "kube-local: serving on https://" << address << " (kubeconfig " << kubeconfig << ")" << std::endl;

    int sig = 0;
    sigwait(&sigs, &sig);
    store.close();
    controllers.stop();
    if (!server.stop()) {
      // A connection's thread still runs (under a sanitizer and a loaded
      // machine, a request can outlast the 5 s): tearing down the API and
      // the store beneath it would free what it uses. Every write is in
      // the journal already (flushed per mutation), so end here.
      std::cout << "kube-local: stopped with connections still open" << std::endl;
      std::_Exit(0);
    }
    std::cout << "kube-local: stopped" << std::endl;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "kube-local: " << e.what() << std::endl;
    return 1;
  }
}
