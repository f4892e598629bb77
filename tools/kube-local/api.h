// The API server proper: routing, authentication and authorization, and the
// object semantics a controller relies on (create/update/patch/delete,
// generation, finalizers, optimistic concurrency, list paging, watch).
// Transport-free: the HTTPS layer hands it a Request and writes the Response.
#pragma once
#include <atomic>
#include <chrono>
#include <filesystem>
#include <expected>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kube-local/list_options.h"
#include "kube-local/registry.h"
#include "kube-local/store.h"

namespace kl {

struct UserInfo {
  std::string username;
  std::string uid;
  std::vector<std::string> groups;
  [[nodiscard]] json to_json() const;
};

struct Request {
  std::string method;
  std::string path;
  std::map<std::string, std::string> query;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::optional<struct UserInfo> client_cert_user;  // from a verified TLS client certificate
  [[nodiscard]] std::string header(const std::string& name) const;
  [[nodiscard]] std::string param(const std::string& name) const;
};

// Returns false once the client is gone.
using ChunkWriter = std::function<bool(const std::string&)>;

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::function<void(const ChunkWriter&)> stream;  // set for watches
};

struct ApiError {
  int code = 500;
  std::string reason;
  std::string message;
  json details = json::object();
};

template <class T>
using ApiResult = std::expected<T, ApiError>;

// Fault injection for reliability tests (admin endpoint /kube-local/faults).
struct Faults {
  double error_rate = 0;         // share of resource requests answered with error_code
  int error_code = 503;
  int retry_after_seconds = 1;
  int latency_ms = 0;
  bool fail_watches = false;     // answer every watch request with 503
  std::atomic<uint64_t> drop_watches_generation{0};  // bumping it closes every open watch
};

struct ApiOptions {
  bool authorize = false;
  std::map<std::string, UserInfo> tokens;  // bearer token -> user
  std::string sa_signing_key;              // HMAC key for service-account tokens
  std::chrono::milliseconds bookmark_interval{5000};
  std::string server_address;              // host:port for discovery
  size_t max_body_bytes = 3 * 1024 * 1024;  // as kube-apiserver's 3 MiB limit
  std::string audit_log;                    // JSON lines: who did what, and whether RBAC allowed it
};

// What a create/update/delete call needs to know about its caller.
struct CallContext {
  UserInfo user;
  bool dry_run = false;
  std::string field_validation = "Warn";  // Ignore | Warn | Strict
  std::vector<std::string>* warnings = nullptr;
  std::string field_manager;  // who owns what this call changes (metadata.managedFields)
  bool applying = false;      // a server-side apply: managedFields already computed by fields::apply
};

class ApiServer {
 public:
  ApiServer(Store& store, Registry& registry, ApiOptions options);

  Response handle(const Request& req);

  // Internal entry points for kube-local's own controllers (no HTTP, no RBAC).
  ApiResult<json> create(const ResourceType& type, const std::string& ns, json obj, const CallContext& ctx);
  ApiResult<json> update(const ResourceType& type, const std::string& ns, const std::string& name, json obj,
                         const CallContext& ctx, const std::string& subresource = "");
  // A delete retries when another write lands between its read and its commit, as the API
  // server's does (store.go Delete: GuaranteedUpdate for deletionTimestamp and finalizers; etcd3
  // store.go conditionalDelete re-reads and retries a failed transaction). Only the caller's
  // preconditions make it a 409.
  ApiResult<json> remove(const ResourceType& type, const std::string& ns, const std::string& name,
                         const json& options, const CallContext& ctx);
  // Read-modify-write with retries on conflict, as the API server's GuaranteedUpdate.
  ApiResult<json> mutate(const ResourceType& type, const std::string& ns, const std::string& name,
                         const std::function<bool(json&)>& fn, const std::string& subresource = "");

  // Where a Pod's container's output is (the process kubelet's log file), for pods/log; set before serving.
  using LogSource = std::function<std::optional<std::filesystem::path>(const json& pod, const std::string& container)>;
  void set_log_source(LogSource source) {
    std::lock_guard lock(log_source_mu_);
    log_source_ = std::move(source);
  }

  // Whether a Pod's containers run as processes that must be stopped before the Pod goes (the
  // process kubelet's answer); a Pod it does not run is deleted at once (pod_deletion.h). Set before serving.
  using PodRuntime = std::function<bool(const json& pod)>;
  void set_pod_runtime(PodRuntime runtime) {
    std::lock_guard lock(pod_runtime_mu_);
    pod_runtime_ = std::move(runtime);
  }

  [[nodiscard]] Faults& faults() { return faults_; }
  void set_server_address(std::string address) { opts_.server_address = std::move(address); }
  [[nodiscard]] Store& store() { return store_; }
  [[nodiscard]] Registry& registry() { return registry_; }
  [[nodiscard]] std::string mint_service_account_token(const std::string& ns, const std::string& name,
                                                       const std::string& uid) const;
  [[nodiscard]] static UserInfo system_user();
  // kube-local's own controllers: the system user, acting as kube-controller-manager does.
  [[nodiscard]] static CallContext system_context() {
    return {system_user(), false, "Ignore", nullptr, "kube-controller-manager", false};
  }
  // Loads CRDs already in the store (after a restart from --data-dir).
  void restore_crds();

 private:
  // One attempt of remove(); `raced` says a concurrent write beat it to the store.
  ApiResult<json> remove_once(const ResourceType& type, const std::string& ns, const std::string& name,
                              const json& options, const CallContext& ctx, bool& raced);
  struct Target;
  Response serve_resource(const Request& req, const Target& t, const UserInfo& user);
  Response list_or_watch(const Request& req, const Target& t);
  Response pod_log(const Request& req, const Target& t);
  Response get_scale(const Request& req, const Target& t);
  std::unique_lock<std::mutex> allocate_cluster_ip(json& svc);
  static void keep_allocated_ips(const json& old, json& next);
  ApiResult<json> server_side_apply(const Target& t, const Request& req, CallContext ctx, bool force, bool* created);
  Response watch(const Request& req, const Target& t, const ListOptions& opts);
  Response discovery(const Request& req, bool* handled);
  Response review(const Target& t, const json& body, const UserInfo& user);
  Response create_token(const Target& t, const json& body);
  std::optional<UserInfo> authenticate(const Request& req) const;
  std::optional<UserInfo> authenticate_token(const std::string& token) const;
  bool authorized(const UserInfo& user, const std::string& verb, const std::string& group,
                  const std::string& resource, const std::string& subresource, const std::string& ns,
                  const std::string& name, const std::string& path) const;
  ApiResult<void> admit(const ResourceType& type, const std::string& op, json& obj, const json* old,
                        const CallContext& ctx);
  ApiResult<void> check_namespace(const ResourceType& type, const std::string& ns, bool creating) const;
  void on_committed(const ResourceType& type, const json& obj, bool deleted);
  std::string random_suffix();
  std::string new_uid();

  Store& store_;
  Registry& registry_;
  ApiOptions opts_;
  Faults faults_;
  std::mutex log_source_mu_;
  std::mutex pod_runtime_mu_;
  PodRuntime pod_runtime_;
  [[nodiscard]] bool pod_containers_running(const json& pod);
  std::mutex ip_mu_;  // Service cluster IP allocation
  LogSource log_source_;
  std::mutex rng_mu_;
  std::mutex audit_mu_;
  void audit(const UserInfo& user, const std::string& verb, const std::string& group, const std::string& resource,
             const std::string& subresource, const std::string& ns, const std::string& name, const std::string& path,
             bool allowed, const std::string& as = "");
  std::mt19937_64 rng_;
};

[[nodiscard]] Response status_response(const ApiError& e);
[[nodiscard]] ApiError not_found(const ResourceType& type, const std::string& name);

}  // namespace kl
