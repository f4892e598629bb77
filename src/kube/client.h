// The Kubernetes REST client: typed errors from the API's Status, retries
// with backoff for 429/5xx (honouring Retry-After, with jitter), a client-side
// QPS/burst limiter, list paging and streaming watches.
#pragma once
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "kube/error.h"
#include "kube/transport.h"

namespace bo::kube {

using json = nlohmann::json;

// A resource as the URL names it (group, version, plural).
struct Resource {
  std::string group;
  std::string version;
  std::string plural;
  std::string kind;
  bool namespaced = true;
  [[nodiscard]] std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  [[nodiscard]] std::string path(const std::string& ns, const std::string& name = "",
                                 const std::string& subresource = "") const;
};

namespace resources {
extern const Resource kNamespaces, kSecrets, kConfigMaps, kPods, kServices, kPersistentVolumeClaims, kEvents, kServiceAccounts, kJobs,
    kDeployments, kNetworkPolicies, kIngresses, kLeases, kValidatingAdmissionPolicies,
    kValidatingAdmissionPolicyBindings, kValidatingWebhookConfigurations, kMutatingWebhookConfigurations, kSelfSubjectReviews, kCustomResourceDefinitions, kTokenReviews,
    kSubjectAccessReviews;
}

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  long limit = 0;
  std::string continue_token;
  std::string resource_version;
  // Metadata only: the server answers a PartialObjectMetadataList (no spec,
  // no data), as client-go's metadata client asks.
  bool metadata_only = false;
};

// The Accept headers of client-go's metadata client (k8s.io/client-go/metadata), JSON only.
inline constexpr const char* kAcceptPartialObjectMetadata = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";
inline constexpr const char* kAcceptPartialObjectMetadataList =
    "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";

struct WatchOptions {
  std::string label_selector;
  std::string field_selector;
  std::string resource_version;
  long timeout_seconds = 300;
  bool allow_bookmarks = true;
  bool metadata_only = false;  // events carry PartialObjectMetadata
};

struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark, kError };
  Type type = Type::kAdded;
  json object;
};

enum class PatchType { kMerge, kJson, kStrategic };

struct DeleteOptions {
  std::string propagation_policy;  // Background | Foreground | Orphan; empty: the server's default
  std::string precondition_uid;
  std::string precondition_resource_version;
};

// A token bucket: `qps` tokens a second, at most `burst` saved up.
class RateLimiter {
 public:
  RateLimiter(double qps, int burst);
  void acquire();  // blocks until a token is available
  [[nodiscard]] bool try_acquire();

 private:
  std::mutex mu_;
  double qps_;
  double burst_;
  double tokens_;
  std::chrono::steady_clock::time_point last_;
};

struct RetryPolicy {
  int max_attempts = 5;
  std::chrono::milliseconds base{100};
  std::chrono::milliseconds cap{10000};
};

class Client {
 public:
  // Called once per HTTP answer (or failure, code 0): verb and status, for metrics.
  using RequestObserver = std::function<void(const std::string& verb, int code)>;

  Client(std::unique_ptr<Transport> transport, double qps, int burst, RetryPolicy retry = {});

  Result<json> get(const Resource& r, const std::string& ns, const std::string& name);
  Result<json> list(const Resource& r, const std::string& ns, const ListOptions& opts = {});
  // Follows continue tokens; restarts once from the beginning if a token expires (410).
  Result<json> list_all(const Resource& r, const std::string& ns, ListOptions opts = {});
  // Pages through a list handing each item to `on_item` as it arrives, so a
  // large list never sits in memory whole; `on_restart` runs when an expired
  // continue token forces a fresh start. Returns the list's resourceVersion.
  Result<std::string> list_each(const Resource& r, const std::string& ns, ListOptions opts,
                                const std::function<void(json& item)>& on_item, const std::function<void()>& on_restart);
  Result<json> create(const Resource& r, const std::string& ns, const json& obj);
  Result<json> update(const Resource& r, const std::string& ns, const json& obj);
  Result<json> update_status(const Resource& r, const std::string& ns, const json& obj);
  Result<json> patch(const Resource& r, const std::string& ns, const std::string& name, PatchType type,
                     const json& patch, const std::string& subresource = "");
  Result<json> remove(const Resource& r, const std::string& ns, const std::string& name,
                      const DeleteOptions& opts = {});
  // One watch request; events go to `on_event` until it returns false, the
  // server ends the stream, or `cancel` fires. A 410 arrives as an Error.
  Result<void> watch(const Resource& r, const std::string& ns, const WatchOptions& opts,
                     const std::function<bool(const WatchEvent&)>& on_event, Canceller* cancel = nullptr);
  // Raw request through the same limiter, retries and error mapping.
  Result<json> request(const std::string& method, const std::string& path, const json* body = nullptr,
                       const std::string& content_type = "application/json", const std::string& accept = "");

  void set_observer(RequestObserver obs) { observer_ = std::move(obs); }

  // Asked immediately before every write (any method but GET) is sent, on
  // every attempt; a write it refuses fails with reason NotLeader and never
  // leaves the process. Leader election fences the controllers' client with
  // it. Set before the client is shared between threads.
  using WriteGate = std::function<bool()>;
  void set_write_gate(WriteGate gate) { write_gate_ = std::move(gate); }

 private:
  // Sends through the limiter, the write gate and retries; a 2xx answer as it came.
  Result<HttpResponse> exchange(const HttpRequest& req);
  std::chrono::milliseconds backoff(int attempt, std::chrono::milliseconds retry_after);
  void observe(const std::string& verb, int code) const;

  std::unique_ptr<Transport> transport_;
  RateLimiter limiter_;
  RetryPolicy retry_;
  RequestObserver observer_;
  WriteGate write_gate_;
  std::mutex rng_mu_;
  std::mt19937 rng_{std::random_device{}()};
};

// Maps an HTTP answer to an Error using the API's Status body when present.
Error error_from_response(const HttpResponse& resp, const std::string& what);
// Query-string encoding of one component.
std::string url_encode(const std::string& s);

}  // namespace bo::kube
