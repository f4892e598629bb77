#include "kube/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/encoding.h"

namespace bo::kube {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unexpected<Error> config_error(const std::string& file, const std::string& msg) {
  return fail(0, "ConfigError", file + ": " + msg);
}

// Finds the entry named `name` in a kubeconfig list (clusters, users, contexts).
Result<std::pair<YAML::Node, size_t>> named_entry(const YAML::Node& root, const std::string& list,
                                                  const std::string& name, const std::string& file) {
  const YAML::Node items = root[list];
  if (items && !items.IsSequence()) return config_error(file, list + ": must be a list");
  if (items)
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].IsMap()) return config_error(file, list + "[" + std::to_string(i) + "]: must be a mapping");
      if (items[i]["name"] && items[i]["name"].IsScalar() && items[i]["name"].as<std::string>() == name)
        return std::make_pair(items[i], i);
    }
  return config_error(file, list + ": no entry named \"" + name + "\"");
}

Result<std::string> scalar(const YAML::Node& n, const std::string& field, const std::string& file) {
  if (!n[field.substr(field.rfind('.') + 1)]) return std::string();
  const YAML::Node v = n[field.substr(field.rfind('.') + 1)];
  if (!v.IsScalar()) return config_error(file, field + ": must be a string");
  return v.as<std::string>();
}

// Reads `<key>-data` (base64) or `<key>` (a path relative to the kubeconfig).
Result<std::string> data_or_file(const YAML::Node& n, const std::string& key, const std::string& prefix,
                                 const std::string& file) {
  auto data = scalar(n, prefix + "." + key + "-data", file);
  if (!data) return std::unexpected(data.error());
  if (!data->empty()) {
    auto decoded = base64_decode(*data);
    if (!decoded) return config_error(file, prefix + "." + key + "-data: not valid base64");
    return *decoded;
  }
  auto path = scalar(n, prefix + "." + key, file);
  if (!path) return std::unexpected(path.error());
  if (path->empty()) return std::string();
  fs::path p(*path);
  if (p.is_relative()) p = fs::path(file).parent_path() / p;
  auto text = read_text(p);
  if (!text) return config_error(file, prefix + "." + key + ": cannot read " + p.string());
  return *text;
}

}  // namespace

Result<RestConfig> load_kubeconfig(const std::string& path, const std::string& context) {
  auto text = read_text(path);
  if (!text) return config_error(path, "cannot read file");
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return config_error(path, "not valid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  }
  if (!root.IsMap()) return config_error(path, "must be a YAML mapping (apiVersion: v1, kind: Config)");
  try {
    std::string ctx_name = context;
    if (ctx_name.empty()) {
      auto cur = scalar(root, "current-context", path);
      if (!cur) return std::unexpected(cur.error());
      ctx_name = *cur;
      if (ctx_name.empty()) return config_error(path, "current-context: not set and no context given");
    }
    auto ctx = named_entry(root, "contexts", ctx_name, path);
    if (!ctx) return std::unexpected(ctx.error());
    const std::string cprefix = "contexts[" + std::to_string(ctx->second) + "].context";
    const YAML::Node c = ctx->first["context"];
    if (!c || !c.IsMap()) return config_error(path, cprefix + ": missing");
    auto cluster_name = scalar(c, cprefix + ".cluster", path);
    if (!cluster_name) return std::unexpected(cluster_name.error());
    if (cluster_name->empty()) return config_error(path, cprefix + ".cluster: required");
    auto user_name = scalar(c, cprefix + ".user", path);
    if (!user_name) return std::unexpected(user_name.error());
    auto ns = scalar(c, cprefix + ".namespace", path);
    if (!ns) return std::unexpected(ns.error());

    RestConfig cfg;
    cfg.source = path + " (context " + ctx_name + ")";
    if (!ns->empty()) cfg.default_namespace = *ns;

    auto cl = named_entry(root, "clusters", *cluster_name, path);
    if (!cl) return std::unexpected(cl.error());
    const std::string clprefix = "clusters[" + std::to_string(cl->second) + "].cluster";
    const YAML::Node cluster = cl->first["cluster"];
    if (!cluster || !cluster.IsMap()) return config_error(path, clprefix + ": missing");
    auto server = scalar(cluster, clprefix + ".server", path);
    if (!server) return std::unexpected(server.error());
    if (server->empty()) return config_error(path, clprefix + ".server: required");
    if (!server->starts_with("https://") && !server->starts_with("http://"))
      return config_error(path, clprefix + ".server: must be an http(s) URL, got \"" + *server + "\"");
    cfg.server = *server;
    while (!cfg.server.empty() && cfg.server.back() == '/') cfg.server.pop_back();
    auto ca = data_or_file(cluster, "certificate-authority", clprefix, path);
    if (!ca) return std::unexpected(ca.error());
    cfg.ca_pem = *ca;
    if (cluster["insecure-skip-tls-verify"]) {
      try {
        cfg.insecure_skip_tls_verify = cluster["insecure-skip-tls-verify"].as<bool>();
      } catch (const YAML::Exception&) {
        return config_error(path, clprefix + ".insecure-skip-tls-verify: must be true or false");
      }
    }

    if (!user_name->empty()) {
      auto us = named_entry(root, "users", *user_name, path);
      if (!us) return std::unexpected(us.error());
      const std::string uprefix = "users[" + std::to_string(us->second) + "].user";
      const YAML::Node user = us->first["user"];
      if (user && !user.IsMap()) return config_error(path, uprefix + ": must be a mapping");
      if (user) {
        auto cert = data_or_file(user, "client-certificate", uprefix, path);
        if (!cert) return std::unexpected(cert.error());
        auto key = data_or_file(user, "client-key", uprefix, path);
        if (!key) return std::unexpected(key.error());
        if (cert->empty() != key->empty())
          return config_error(path, uprefix + ": client-certificate and client-key must be given together");
        cfg.client_cert_pem = *cert;
        cfg.client_key_pem = *key;
        auto token = scalar(user, uprefix + ".token", path);
        if (!token) return std::unexpected(token.error());
        cfg.token = *token;
        auto token_file = scalar(user, uprefix + ".tokenFile", path);
        if (!token_file) return std::unexpected(token_file.error());
        if (!token_file->empty()) {
          fs::path p(*token_file);
          if (p.is_relative()) p = fs::path(path).parent_path() / p;
          cfg.token_file = p.string();
          if (!read_text(p)) return config_error(path, uprefix + ".tokenFile: cannot read " + p.string());
        }
        if (user["exec"] || user["auth-provider"])
          return config_error(path, uprefix + ": exec and auth-provider plugins are not supported; use a token");
      }
    }
    return cfg;
  } catch (const YAML::Exception& e) {
    return config_error(path, std::string("malformed: ") + e.what());
  }
}

Result<RestConfig> in_cluster_config(const std::string& sa_dir, const std::map<std::string, std::string>* env) {
  auto getenv_s = [&](const char* name) -> std::string {
    if (env) {
      auto it = env->find(name);
      return it == env->end() ? "" : it->second;
    }
    const char* v = std::getenv(name);
    return v ? v : "";
  };
  const std::string host = getenv_s("KUBERNETES_SERVICE_HOST");
  const std::string port = getenv_s("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty())
    return fail(0, "ConfigError", "in-cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  RestConfig cfg;
  cfg.source = "in-cluster";
  const bool ipv6 = host.find(':') != std::string::npos;
  cfg.server = "https://" + (ipv6 ? "[" + host + "]" : host) + ":" + port;
  cfg.token_file = sa_dir + "/token";
  if (!read_text(cfg.token_file)) return fail(0, "ConfigError", "in-cluster: cannot read " + cfg.token_file);
  auto ca = read_text(sa_dir + "/ca.crt");
  if (!ca) return fail(0, "ConfigError", "in-cluster: cannot read " + sa_dir + "/ca.crt");
  cfg.ca_pem = *ca;
  if (auto ns = read_text(sa_dir + "/namespace")) {
    std::string n = *ns;
    while (!n.empty() && (n.back() == '\n' || n.back() == ' ')) n.pop_back();
    if (!n.empty()) cfg.default_namespace = n;
  }
  return cfg;
}

Result<RestConfig> load_default_config(const std::string& kubeconfig_flag, const std::string& context) {
  if (!kubeconfig_flag.empty()) return load_kubeconfig(kubeconfig_flag, context);
  if (const char* env = std::getenv("KUBECONFIG"); env && *env) {
    std::string first(env);
    first = first.substr(0, first.find(':'));
    return load_kubeconfig(first, context);
  }
  if (std::getenv("KUBERNETES_SERVICE_HOST")) return in_cluster_config();
  if (const char* home = std::getenv("HOME"); home && fs::exists(fs::path(home) / ".kube" / "config"))
    return load_kubeconfig((fs::path(home) / ".kube" / "config").string(), context);
  return fail(0, "ConfigError",
              "no Kubernetes configuration: pass --kubeconfig, set KUBECONFIG, or run in a cluster");
}

}  // namespace bo::kube
