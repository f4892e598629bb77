#include "kube/client.h"

#include <thread>

namespace bo::kube {

namespace resources {
const Resource kNamespaces{"", "v1", "namespaces", "Namespace", false};
const Resource kSecrets{"", "v1", "secrets", "Secret", true};
const Resource kConfigMaps{"", "v1", "configmaps", "ConfigMap", true};
const Resource kPods{"", "v1", "pods", "Pod", true};
const Resource kServices{"", "v1", "services", "Service", true};
const Resource kPersistentVolumeClaims{"", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", true};
const Resource kEvents{"", "v1", "events", "Event", true};
const Resource kServiceAccounts{"", "v1", "serviceaccounts", "ServiceAccount", true};
const Resource kJobs{"batch", "v1", "jobs", "Job", true};
const Resource kDeployments{"apps", "v1", "deployments", "Deployment", true};
const Resource kNetworkPolicies{"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true};
const Resource kIngresses{"networking.k8s.io", "v1", "ingresses", "Ingress", true};
const Resource kLeases{"coordination.k8s.io", "v1", "leases", "Lease", true};
const Resource kValidatingAdmissionPolicies{"admissionregistration.k8s.io", "v1", "validatingadmissionpolicies",
                                            "ValidatingAdmissionPolicy", false};
const Resource kValidatingAdmissionPolicyBindings{"admissionregistration.k8s.io", "v1",
                                                  "validatingadmissionpolicybindings",
                                                  "ValidatingAdmissionPolicyBinding", false};
const Resource kValidatingWebhookConfigurations{"admissionregistration.k8s.io", "v1",
                                                "validatingwebhookconfigurations", "ValidatingWebhookConfiguration",
                                                false};
const Resource kMutatingWebhookConfigurations{"admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
                                              "MutatingWebhookConfiguration", false};
const Resource kSelfSubjectReviews{"authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", false};
const Resource kCustomResourceDefinitions{"apiextensions.k8s.io", "v1", "customresourcedefinitions",
                                          "CustomResourceDefinition", false};
const Resource kTokenReviews{"authentication.k8s.io", "v1", "tokenreviews", "TokenReview", false};
const Resource kSubjectAccessReviews{"authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview",
                                     false};
}  // namespace resources

std::string url_encode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string Resource::path(const std::string& ns, const std::string& name, const std::string& subresource) const {
  std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (namespaced && !ns.empty()) p += "/namespaces/" + ns;
  p += "/" + plural;
  if (!name.empty()) p += "/" + name;
  if (!subresource.empty()) p += "/" + subresource;
  return p;
}

RateLimiter::RateLimiter(double qps, int burst)
    : qps_(qps), burst_(std::max(1, burst)), tokens_(std::max(1, burst)), last_(std::chrono::steady_clock::now()) {}

bool RateLimiter::try_acquire() {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * qps_);
  last_ = now;
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return true;
  }
  return false;
}

void RateLimiter::acquire() {
  if (qps_ <= 0) return;  // unlimited
  while (true) {
    std::chrono::duration<double> wait;
    {
      std::lock_guard lock(mu_);
      const auto now = std::chrono::steady_clock::now();
      tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * qps_);
      last_ = now;
      if (tokens_ >= 1) {
        tokens_ -= 1;
        return;
      }
      wait = std::chrono::duration<double>((1 - tokens_) / qps_);
    }
    std::this_thread::sleep_for(wait);
  }
}

Error error_from_response(const HttpResponse& resp, const std::string& what) {
  Error e;
  e.status = resp.status;
  const json body = json::parse(resp.body, nullptr, false);
  if (body.is_object() && body.value("kind", "") == "Status") {
    e.reason = body.value("reason", "");
    e.message = body.value("message", "");
  }
  if (e.reason.empty()) {
    switch (resp.status) {
      case 400: e.reason = "BadRequest"; break;
      case 401: e.reason = "Unauthorized"; break;
      case 403: e.reason = "Forbidden"; break;
      case 404: e.reason = "NotFound"; break;
      case 405: e.reason = "MethodNotAllowed"; break;
      case 409: e.reason = "Conflict"; break;
      case 410: e.reason = "Expired"; break;
      case 415: e.reason = "UnsupportedMediaType"; break;
      case 422: e.reason = "Invalid"; break;
      case 429: e.reason = "TooManyRequests"; break;
      case 503: e.reason = "ServiceUnavailable"; break;
      default: e.reason = resp.status >= 500 ? "InternalError" : "Unknown";
    }
  }
  if (e.message.empty()) e.message = what + ": HTTP " + std::to_string(resp.status);
  if (auto it = resp.headers.find("retry-after"); it != resp.headers.end()) {
    try {
      e.retry_after = std::chrono::seconds(std::stol(it->second));
    } catch (...) {
    }
  }
  return e;
}

Client::Client(std::unique_ptr<Transport> transport, double qps, int burst, RetryPolicy retry)
    : transport_(std::move(transport)), limiter_(qps, burst), retry_(retry) {}

void Client::observe(const std::string& verb, int code) const {
  if (observer_) observer_(verb, code);
}

std::chrono::milliseconds Client::backoff(int attempt, std::chrono::milliseconds retry_after) {
  const auto exp = std::min<long long>(retry_.cap.count(), retry_.base.count() * (1LL << std::min(attempt, 20)));
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  double j;
  {
    std::lock_guard lock(rng_mu_);
    j = jitter(rng_);
  }
  const auto d = std::chrono::milliseconds(static_cast<long long>(exp * j));
  return std::max(d, retry_after);
}

Result<HttpResponse> Client::exchange(const HttpRequest& req) {
  Error last;
  for (int attempt = 0; attempt < retry_.max_attempts; ++attempt) {
    limiter_.acquire();
    // After the limiter, which may have waited: the gate's answer is as fresh as it can be when the write goes out.
    if (write_gate_ && req.method != "GET" && !write_gate_())
      return fail(0, "NotLeader", req.method + " " + req.path.substr(0, req.path.find('?')) +
                                      ": refused before sending: this replica does not hold the leader lease");
    auto resp = transport_->send(req);
    if (!resp) {
      observe(req.method, 0);
      last = resp.error();
      if (!last.retryable()) return std::unexpected(last);
    } else {
      observe(req.method, resp->status);
      if (resp->status >= 200 && resp->status < 300) return std::move(*resp);
      last = error_from_response(*resp, req.method + " " + req.path.substr(0, req.path.find('?')));
      if (!last.retryable()) return std::unexpected(last);
    }
    if (attempt + 1 < retry_.max_attempts) std::this_thread::sleep_for(backoff(attempt, last.retry_after));
  }
  return std::unexpected(last);
}

Result<json> Client::request(const std::string& method, const std::string& path, const json* body,
                             const std::string& content_type, const std::string& accept) {
  auto resp = exchange({method, path, content_type, body ? body->dump() : "", {}, accept});
  if (!resp) return std::unexpected(resp.error());
  if (resp->body.empty()) return json::object();
  json out = json::parse(resp->body, nullptr, false);
  if (out.is_discarded())
    return fail(resp->status, "InvalidResponse", method + " " + path + ": the server's answer is not JSON");
  return out;
}

Result<json> Client::get(const Resource& r, const std::string& ns, const std::string& name) {
  return request("GET", r.path(ns, name));
}

namespace {

HttpRequest list_request(const Resource& r, const std::string& ns, const ListOptions& o) {
  std::string q;
  auto add = [&](const char* k, const std::string& v) {
    if (!v.empty()) q += (q.empty() ? "?" : "&") + std::string(k) + "=" + url_encode(v);
  };
  add("labelSelector", o.label_selector);
  add("fieldSelector", o.field_selector);
  if (o.limit > 0) add("limit", std::to_string(o.limit));
  add("continue", o.continue_token);
  add("resourceVersion", o.resource_version);
  return {"GET", r.path(ns) + q, "application/json", "", {}, o.metadata_only ? kAcceptPartialObjectMetadataList : ""};
}

// Decodes one list page, handing each element of `items` to `on_item` the
// moment its closing brace is read and then dropping it, so at most one item
// is ever decoded at a time. Returns the page without its items (metadata:
// continue, resourceVersion), or a discarded value when the body is not JSON.
json decode_page(const std::string& body, const std::function<void(json&)>& on_item) {
  bool in_items = false;  // the top-level key being read is "items"
  json page = json::parse(
      body,
      [&](int depth, json::parse_event_t event, json& parsed) {
        if (depth == 1 && event == json::parse_event_t::key) in_items = parsed == "items";
        if (depth == 2 && in_items &&
            (event == json::parse_event_t::object_end || event == json::parse_event_t::array_end ||
             event == json::parse_event_t::value)) {
          on_item(parsed);
          return false;
        }
        return true;
      },
      false);
  return page;
}

}  // namespace

Result<json> Client::list(const Resource& r, const std::string& ns, const ListOptions& o) {
  const auto req = list_request(r, ns, o);
  return request(req.method, req.path, nullptr, req.content_type, req.accept);
}

Result<json> Client::list_all(const Resource& r, const std::string& ns, ListOptions opts) {
  json items = json::array();
  auto rv = list_each(r, ns, std::move(opts), [&](json& it) { items.push_back(std::move(it)); },
                      [&] { items = json::array(); });
  if (!rv) return std::unexpected(rv.error());
  return json{{"kind", r.kind + "List"}, {"apiVersion", r.api_version()},
              {"metadata", {{"resourceVersion", *rv}}}, {"items", std::move(items)}};
}

Result<std::string> Client::list_each(const Resource& r, const std::string& ns, ListOptions opts,
                                      const std::function<void(json&)>& on_item, const std::function<void()>& on_restart) {
  if (opts.limit <= 0) opts.limit = 500;
  for (int restart = 0; restart < 2; ++restart) {
    if (restart > 0 && on_restart) on_restart();
    opts.continue_token.clear();
    bool expired = false;
    while (true) {
      const auto req = list_request(r, ns, opts);
      auto resp = exchange(req);
      if (!resp) {
        if (resp.error().gone() && !opts.continue_token.empty()) {
          expired = true;  // the snapshot was compacted away: start over
          break;
        }
        return std::unexpected(resp.error());
      }
      const json page = decode_page(resp->body, on_item);
      if (!page.is_object())
        return fail(resp->status, "InvalidResponse", "GET " + req.path + ": the server's answer is not a list");
      const json& meta = page.contains("metadata") && page["metadata"].is_object() ? page["metadata"] : json::object();
      const std::string cont = meta.value("continue", "");
      if (cont.empty()) return meta.value("resourceVersion", "");
      opts.continue_token = cont;
    }
    if (!expired) break;
  }
  return fail(410, "Expired", "list of " + r.plural + ": continue token expired twice");
}

Result<json> Client::create(const Resource& r, const std::string& ns, const json& obj) {
  return request("POST", r.path(ns), &obj);
}

Result<json> Client::update(const Resource& r, const std::string& ns, const json& obj) {
  return request("PUT", r.path(ns, obj["metadata"].value("name", "")), &obj);
}

Result<json> Client::update_status(const Resource& r, const std::string& ns, const json& obj) {
  return request("PUT", r.path(ns, obj["metadata"].value("name", ""), "status"), &obj);
}

Result<json> Client::patch(const Resource& r, const std::string& ns, const std::string& name, PatchType type,
                           const json& patch, const std::string& subresource) {
  const char* ct = type == PatchType::kMerge  ? "application/merge-patch+json"
                   : type == PatchType::kJson ? "application/json-patch+json"
                                              : "application/strategic-merge-patch+json";
  return request("PATCH", r.path(ns, name, subresource), &patch, ct);
}

Result<json> Client::remove(const Resource& r, const std::string& ns, const std::string& name,
                            const DeleteOptions& o) {
  json body{{"kind", "DeleteOptions"}, {"apiVersion", "v1"}};
  if (!o.propagation_policy.empty()) body["propagationPolicy"] = o.propagation_policy;
  if (!o.precondition_uid.empty()) body["preconditions"]["uid"] = o.precondition_uid;
  if (!o.precondition_resource_version.empty())
    body["preconditions"]["resourceVersion"] = o.precondition_resource_version;
  return request("DELETE", r.path(ns, name), &body);
}

Result<void> Client::watch(const Resource& r, const std::string& ns, const WatchOptions& o,
                           const std::function<bool(const WatchEvent&)>& on_event, Canceller* cancel) {
  std::string q = "?watch=true";
  auto add = [&](const char* k, const std::string& v) {
    if (!v.empty()) q += "&" + std::string(k) + "=" + url_encode(v);
  };
  add("labelSelector", o.label_selector);
  add("fieldSelector", o.field_selector);
  add("resourceVersion", o.resource_version);
  add("timeoutSeconds", std::to_string(o.timeout_seconds));
  if (o.allow_bookmarks) add("allowWatchBookmarks", "true");
  HttpRequest req{"GET", r.path(ns) + q, "", "", std::chrono::seconds(o.timeout_seconds + 30),
                  o.metadata_only ? kAcceptPartialObjectMetadata : ""};
  limiter_.acquire();
  std::optional<Error> stream_error;
  auto resp = transport_->stream(
      req,
      [&](std::string_view line) {
        const json ev = json::parse(line, nullptr, false);
        if (!ev.is_object() || !ev.contains("type") || !ev.contains("object")) {
          stream_error = Error{0, "InvalidResponse", "watch " + r.plural + ": undecodable event", {}};
          return false;
        }
        const std::string t = ev.value("type", "");
        WatchEvent we;
        we.object = ev["object"];
        if (t == "ADDED") we.type = WatchEvent::Type::kAdded;
        else if (t == "MODIFIED") we.type = WatchEvent::Type::kModified;
        else if (t == "DELETED") we.type = WatchEvent::Type::kDeleted;
        else if (t == "BOOKMARK") we.type = WatchEvent::Type::kBookmark;
        else {
          // ERROR carries a Status: 410 means the resourceVersion is too old.
          HttpResponse fake{we.object.value("code", 500), {}, we.object.dump()};
          stream_error = error_from_response(fake, "watch " + r.plural);
          return false;
        }
        return on_event(we);
      },
      cancel);
  if (!resp) {
    observe("WATCH", 0);
    return std::unexpected(resp.error());
  }
  observe("WATCH", resp->status);
  if (resp->status < 200 || resp->status >= 300)
    return std::unexpected(error_from_response(*resp, "watch " + r.plural));
  if (stream_error) return std::unexpected(*stream_error);
  return {};
}

}  // namespace bo::kube
