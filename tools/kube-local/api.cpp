#include "kube-local/api.h"

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "common/encoding.h"
#include "common/timefmt.h"
#include "kube-local/admission.h"
#include "kube-local/builtin_admission.h"
#include "kube-local/decode.h"
#include "kube-local/defaults.h"
#include "kube-local/list_options.h"
#include "kube-local/managed_fields.h"
#include "kube-local/openapi.h"
#include "kube-local/openapi_v2.h"
#include "kube-local/patch.h"
#include "kube-local/pod_deletion.h"
#include "kube-local/protobuf.h"
#include "kube-local/scale.h"
#include "kube-local/schema.h"
#include "kube-local/table.h"
#include "kube-local/validation.h"
#include "kube-local/yaml_json.h"
#include "kube/selector.h"

namespace kl {

using bo::kube::FieldSelector;
using bo::kube::LabelSelector;

namespace {

constexpr const char* kGitVersion = "v1.35.0-kube-local";

std::string now_str() { return bo::format_rfc3339(std::chrono::system_clock::now()); }

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

Response json_response(int code, const json& body) {
  Response r;
  r.status = code;
  r.body = body.dump();
  return r;
}

ApiError bad_request(std::string msg) { return {400, "BadRequest", std::move(msg)}; }

// field.ErrorList as errors.NewInvalid renders it, for any group and kind.
ApiError invalid_kind(const std::string& group, const std::string& kind, const std::string& name,
                      const std::vector<FieldError>& errs) {
  json causes = json::array();
  std::string msgs;
  for (const auto& e : errs) {
    causes.push_back({{"reason", e.type}, {"message", e.message.substr(e.field.size() + 2)}, {"field", e.field}});
    msgs += (msgs.empty() ? "" : ", ") + e.message;
  }
  const std::string qualified = group.empty() ? kind : kind + "." + group;
  std::string msg = qualified + " \"" + name + "\" is invalid: ";
  msg += errs.size() == 1 ? msgs : "[" + msgs + "]";
  return {422, "Invalid", msg, json{{"name", name}, {"group", group}, {"kind", kind}, {"causes", causes}}};
}

ApiError invalid(const ResourceType& t, const std::string& name, const std::vector<FieldError>& errs) {
  return invalid_kind(t.group, t.kind, name, errs);
}

ApiError conflict(const ResourceType& t, const std::string& name, const std::string& why) {
  const std::string qualified = t.group.empty() ? t.resource : t.resource + "." + t.group;
  return {409, "Conflict", "Operation cannot be fulfilled on " + qualified + " \"" + name + "\": " + why,
          json{{"name", name}, {"group", t.group}, {"kind", t.resource}}};
}

ApiError already_exists(const ResourceType& t, const std::string& name) {
  const std::string qualified = t.group.empty() ? t.resource : t.resource + "." + t.group;
  return {409, "AlreadyExists", qualified + " \"" + name + "\" already exists",
          json{{"name", name}, {"group", t.group}, {"kind", t.resource}}};
}

bool is_dns_subdomain(const std::string& s) {
  static const std::regex re(R"(^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$)");
  return !s.empty() && s.size() <= 253 && std::regex_match(s, re);
}

bool is_dns_label(const std::string& s) {
  static const std::regex re(R"(^[a-z0-9]([-a-z0-9]*[a-z0-9])?$)");
  return !s.empty() && s.size() <= 63 && std::regex_match(s, re);
}

// Everything but metadata and status: what a generation bump tracks.
json spec_part(const json& obj) {
  json out = obj;
  out.erase("metadata");
  out.erase("status");
  out.erase("apiVersion");
  out.erase("kind");
  return out;
}

uint64_t parse_rv(const std::string& s) {
  if (s.empty()) return 0;
  try {
    size_t pos = 0;
    const uint64_t v = std::stoull(s, &pos);
    return pos == s.size() ? v : UINT64_MAX;
  } catch (...) {
    return UINT64_MAX;
  }
}

std::optional<std::string> field_value(const ResourceType& t, const json& o, const std::string& field) {
  if (t.group == "events.k8s.io") {
    // pkg/apis/events/v1 AddFieldLabelConversionsForEvent: evaluated on the stored core Event.
    static const std::map<std::string, std::string> kToCore = {
        {"metadata.name", "metadata.name"}, {"metadata.namespace", "metadata.namespace"},
        {"reason", "reason"}, {"type", "type"}, {"reportingController", "reportingComponent"},
        {"regarding.kind", "involvedObject.kind"}, {"regarding.namespace", "involvedObject.namespace"},
        {"regarding.name", "involvedObject.name"}, {"regarding.uid", "involvedObject.uid"},
        {"regarding.apiVersion", "involvedObject.apiVersion"},
        {"regarding.resourceVersion", "involvedObject.resourceVersion"},
        {"regarding.fieldPath", "involvedObject.fieldPath"}};
    auto it = kToCore.find(field);
    if (it == kToCore.end()) return std::nullopt;
    ResourceType core = t;
    core.group = "";
    return field_value(core, o, it->second);
  }
  if (field == "metadata.name") return o["metadata"].value("name", "");
  if (field == "metadata.namespace") return o["metadata"].value("namespace", "");
  static const std::map<std::string, std::vector<std::string>> kSupported = {
      {"/pods", {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                 "status.phase", "status.podIP", "status.nominatedNodeName"}},
      {"/events", {"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                   "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                   "reason", "reportingComponent", "source", "type"}},
      {"/secrets", {"type"}},
      {"/namespaces", {"status.phase"}},
      {"batch/jobs", {"status.successful"}},
  };
  auto it = kSupported.find(t.gr());
  if (it == kSupported.end() || std::find(it->second.begin(), it->second.end(), field) == it->second.end())
    return std::nullopt;
  const auto got = eval_jsonpath(o, "." + field);
  if (got.empty()) return std::string();
  return got[0].is_string() ? got[0].get<std::string>() : got[0].dump();
}

bool field_supported(const ResourceType& t, const std::string& field) {
  static const json probe = json{{"metadata", json::object()}};
  return field_value(t, probe, field).has_value();
}

json with_type(const json& obj, const ResourceType& t) {
  json o = t.group == "events.k8s.io" ? core_to_event(obj) : obj;
  o["apiVersion"] = t.api_version();
  o["kind"] = t.kind;
  return o;
}

// kube-local's own controllers act as the system; webhooks never see
// changes to webhook configurations themselves (as in Kubernetes).
bool webhooks_apply(const ResourceType& t, const CallContext& ctx) {
  return ctx.user.username != "system:kube-local" && t.group != "admissionregistration.k8s.io" && !t.virtual_only;
}

// Refers to t.schema: the request's TypePtr keeps it alive.
fields::TypeInfo type_info(const ResourceType& t) {
  return fields::type_info(t.custom ? &t.schema : nullptr, t.kind);
}

// The manager of a write: ?fieldManager=, else the User-Agent up to its first
// "/" (fieldmanager.go prefixFromUserAgent); kube-local's own controllers act
// as kube-controller-manager does.
std::string field_manager_of(const Request& req, const UserInfo& user) {
  if (const std::string m = req.param("fieldManager"); !m.empty()) return m;
  if (user.username == "system:kube-local") return "kube-controller-manager";
  const std::string ua = req.header("user-agent");
  return ua.substr(0, ua.find('/'));
}

// ListOptions.limit: an integer, 0 (or absent) for no limit.
ApiResult<long> parse_limit(const Request& req) {
  const std::string v = req.param("limit");
  if (v.empty()) return 0L;
  try {
    size_t pos = 0;
    const long n = std::stol(v, &pos);
    if (pos == v.size()) return n;
  } catch (...) {
  }
  return std::unexpected(bad_request("invalid limit \"" + v + "\""));
}

bool is_watch(const Request& req) { return query_bool(req.query, "watch").value_or(false); }

bool wants_table(const Request& req) { return req.header("accept").find("as=Table") != std::string::npos; }

// Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1, as client-go's
// metadata client (and controller-runtime's metadata informers) ask: the server answers with
// metadata only (apiserver endpoints/handlers/response.go, doTransformObject ->
// asPartialObjectMetadata / asPartialObjectMetadataList), never the object's data.
enum class Partial { kNone, kObject, kList };
struct PartialTarget {
  Partial as = Partial::kNone;
  std::string group_version;  // meta.k8s.io/v1 or meta.k8s.io/v1beta1
};
// The first JSON media type of Accept that asks for a conversion (protobuf ones are skipped:
// kube-local answers JSON). A group version other than meta.k8s.io v1 or v1beta1 is refused
// as the API server refuses it (targetEncodingForTransform -> NotAcceptable).
ApiResult<PartialTarget> partial_target(const Request& req) {
  const std::string accept = req.header("accept");
  size_t start = 0;
  while (start <= accept.size()) {
    size_t end = accept.find(',', start);
    if (end == std::string::npos) end = accept.size();
    const std::string media = accept.substr(start, end - start);
    start = end + 1;
    if (media.find("application/json") == std::string::npos) continue;
    std::map<std::string, std::string> params;
    for (size_t p = media.find(';'); p != std::string::npos;) {
      const size_t next = media.find(';', p + 1);
      std::string kv = media.substr(p + 1, next == std::string::npos ? std::string::npos : next - p - 1);
      kv.erase(0, kv.find_first_not_of(' '));
      kv.erase(kv.find_last_not_of(' ') + 1);
      if (const auto eq = kv.find('='); eq != std::string::npos) params[kv.substr(0, eq)] = kv.substr(eq + 1);
      p = next;
    }
    const std::string as = params["as"];
    if (as != "PartialObjectMetadata" && as != "PartialObjectMetadataList") continue;
    if (params["g"] != "meta.k8s.io" || (params["v"] != "v1" && params["v"] != "v1beta1"))
      return std::unexpected(ApiError{406, "NotAcceptable",
                                      "no " + as + " exists in group version " + params["g"] + "/" + params["v"]});
    return PartialTarget{as == "PartialObjectMetadata" ? Partial::kObject : Partial::kList,
                         "meta.k8s.io/" + params["v"]};
  }
  return PartialTarget{};
}

// meta.AsPartialObjectMetadata: the object's metadata under the PartialObjectMetadata kind.
json as_partial(const json& obj, const std::string& group_version) {
  return json{{"kind", "PartialObjectMetadata"}, {"apiVersion", group_version},
              {"metadata", obj.value("metadata", json::object())}};
}

// The NotAcceptable answers of asPartialObjectMetadata / asPartialObjectMetadataList.
ApiError partial_not_acceptable(Partial asked, const ResourceType& type) {
  if (asked == Partial::kObject)
    return {406, "NotAcceptable",
            "you requested PartialObjectMetadata, but the requested object is a list (*" + type.kind + "List)"};
  return {406, "NotAcceptable",
          "you requested PartialObjectMetadataList, but the requested object is not a list (*" + type.kind + ")"};
}

std::string qualified_resource(const ResourceType& t) {
  return t.group.empty() ? t.resource : t.resource + "." + t.group;
}


struct Filter {
  LabelSelector labels;
  FieldSelector fields;
  std::string ns;
  bool matches(const ResourceType& t, const json& o) const {
    if (!ns.empty() && o["metadata"].value("namespace", "") != ns) return false;
    if (!labels.matches(o["metadata"].value("labels", json::object()))) return false;
    return fields.matches([&](const std::string& f) { return field_value(t, o, f); });
  }
};

ApiResult<Filter> make_filter(const Request& req, const ResourceType& t, const std::string& ns) {
  Filter f;
  f.ns = ns;
  std::string err;
  auto ls = LabelSelector::parse(req.param("labelSelector"), &err);
  if (!ls) return std::unexpected(bad_request("unable to parse requirement: " + err));
  f.labels = *ls;
  auto fs = FieldSelector::parse(req.param("fieldSelector"), &err);
  if (!fs) return std::unexpected(bad_request(err));
  for (const auto& term : fs->terms())
    if (!field_supported(t, term.field))
      return std::unexpected(bad_request("field label not supported: " + term.field));
  f.fields = *fs;
  return f;
}


// Where a kind's Scale reads and writes: the built-in workloads' fields, or a CRD's
// subresources.scale for the served version; nullopt for a kind without /scale.
std::optional<ScalePaths> scale_paths(const Store& store, const ResourceType& t) {
  if (!t.has_subresource("scale")) return std::nullopt;
  if (!t.custom) return ScalePaths{};
  auto crd = store.get("apiextensions.k8s.io/customresourcedefinitions", "", t.crd_name);
  if (!crd) return std::nullopt;
  return crd_scale_paths(*crd, t.version);
}

// The Scale `parent` shows; customresource ScaleREST.Get answers one it cannot make as an internal error.
ApiResult<json> scale_for(const Store& store, const ResourceType& t, const json& parent) {
  const auto paths = scale_paths(store, t);
  std::expected<json, std::string> scale = std::unexpected(std::string("the resource has no scale subresource"));
  if (paths) scale = scale_of(parent, *paths);
  if (scale) return *scale;
  const std::string why = scale.error();
  return std::unexpected(
      ApiError{500, "InternalError", "Internal error occurred: " + why, json{{"causes", json::array({{{"message", why}}})}}});
}

// Stores that set ReturnDeletedObject (pkg/registry/core/{pod,service,serviceaccount,namespace,
// persistentvolumeclaim}/storage/storage.go); a CRD's Delete returns the CRD it keeps for the
// customresourcecleanup finalizer (apiextensions-apiserver/pkg/registry/customresourcedefinition/etcd.go).
bool returns_deleted_object(const ResourceType& t) {
  static const std::vector<std::string> kReturning = {"/pods", "/services", "/serviceaccounts", "/namespaces",
                                                      "/persistentvolumeclaims",
                                                      "apiextensions.k8s.io/customresourcedefinitions"};
  return std::find(kReturning.begin(), kReturning.end(), t.gr()) != kReturning.end();
}
}  // namespace

json UserInfo::to_json() const {
  return json{{"username", username}, {"uid", uid}, {"groups", groups}};
}

std::string Request::header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

std::string Request::param(const std::string& name) const {
  auto it = query.find(name);
  return it == query.end() ? std::string() : it->second;
}

Response status_response(const ApiError& e) {
  json body{{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()}, {"status", "Failure"},
            {"message", e.message}, {"code", e.code}};
  if (!e.reason.empty()) body["reason"] = e.reason;  // StatusReasonUnknown is "", omitted
  if (!e.details.empty()) {
    // StatusDetails' name, group and kind are omitempty (apimachinery/pkg/apis/meta/v1/types.go):
    // a core-group error carries no "group" at all.
    json details = e.details;
    for (const char* k : {"name", "group", "kind"})
      if (details.contains(k) && details[k] == "") details.erase(k);
    if (!details.empty()) body["details"] = details;
  }
  Response r = json_response(e.code, body);
  if (e.details.contains("retryAfterSeconds"))
    r.headers.push_back({"Retry-After", std::to_string(e.details["retryAfterSeconds"].get<int>())});
  return r;
}

ApiError not_found(const ResourceType& t, const std::string& name) {
  return {404, "NotFound", qualified_resource(t) + " \"" + name + "\" not found",
          json{{"name", name}, {"group", t.group}, {"kind", t.resource}}};
}

struct ApiServer::Target {
  TypePtr type;
  std::string ns;
  std::string name;
  std::string subresource;
};

ApiServer::ApiServer(Store& store, Registry& registry, ApiOptions options)
    : store_(store), registry_(registry), opts_(std::move(options)), rng_(std::random_device{}()) {
  if (opts_.sa_signing_key.empty()) opts_.sa_signing_key = bo::random_bytes(32);
}

UserInfo ApiServer::system_user() { return {"system:kube-local", "", {"system:masters", "system:authenticated"}}; }

std::string ApiServer::random_suffix() {
  static const char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::lock_guard lock(rng_mu_);
  std::string s;
  for (int i = 0; i < 5; ++i) s += kAlphabet[rng_() % (sizeof kAlphabet - 1)];
  return s;
}

std::string ApiServer::new_uid() {
  std::string b = bo::random_bytes(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80);
  const std::string h = bo::hex_encode(b);
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

void ApiServer::restore_crds() {
  for (const auto& crd : store_.list("apiextensions.k8s.io/customresourcedefinitions", ""))
    registry_.set_crd((*crd)["metadata"].value("name", ""), *crd);
}

// --- authentication ---------------------------------------------------------

std::string ApiServer::mint_service_account_token(const std::string& ns, const std::string& name,
                                                  const std::string& uid) const {
  const std::string payload = bo::base64url_encode(json{{"ns", ns}, {"name", name}, {"uid", uid}}.dump());
  return "kl-sa." + payload + "." + bo::base64url_encode(bo::hmac_sha256(opts_.sa_signing_key, payload));
}

std::optional<UserInfo> ApiServer::authenticate_token(const std::string& token) const {
  if (auto it = opts_.tokens.find(token); it != opts_.tokens.end()) return it->second;
  if (!token.starts_with("kl-sa.")) return std::nullopt;
  const auto parts = split(token, '.');
  if (parts.size() != 3) return std::nullopt;
  const std::string expected = bo::base64url_encode(bo::hmac_sha256(opts_.sa_signing_key, parts[1]));
  if (!bo::secure_equals(expected, parts[2])) return std::nullopt;
  const auto payload = bo::base64url_decode(parts[1]);
  if (!payload) return std::nullopt;
  const json p = json::parse(*payload, nullptr, false);
  if (p.is_discarded()) return std::nullopt;
  const std::string ns = p.value("ns", ""), name = p.value("name", ""), uid = p.value("uid", "");
  // A token outlives neither its service account nor a re-created one.
  auto sa = store_.get("/serviceaccounts", ns, name);
  if (!sa || (*sa)["metadata"].value("uid", "") != uid) return std::nullopt;
  return UserInfo{"system:serviceaccount:" + ns + ":" + name, uid,
                  {"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}};
}

std::optional<UserInfo> ApiServer::authenticate(const Request& req) const {
  const std::string auth = req.header("authorization");
  if (auth.starts_with("Bearer ")) return authenticate_token(auth.substr(7));
  return req.client_cert_user;  // CN is the user, O entries the groups, as kube-apiserver reads them
}

// --- RBAC -------------------------------------------------------------------

namespace {

bool contains_or_star(const json& list, const std::string& v) {
  if (!list.is_array()) return false;
  for (const auto& x : list)
    if (x.is_string() && (x.get<std::string>() == "*" || x.get<std::string>() == v)) return true;
  return false;
}

bool rule_allows(const json& rule, const std::string& verb, const std::string& group, const std::string& resource,
                 const std::string& subresource, const std::string& name, const std::string& path) {
  if (!contains_or_star(rule.value("verbs", json::array()), verb)) return false;
  if (!path.empty()) {
    for (const auto& u : rule.value("nonResourceURLs", json::array())) {
      const std::string s = u.is_string() ? u.get<std::string>() : "";
      if (s == "*" || s == path || (s.ends_with("*") && path.starts_with(s.substr(0, s.size() - 1)))) return true;
    }
    return false;
  }
  if (!contains_or_star(rule.value("apiGroups", json::array()), group)) return false;
  // plugin/pkg/auth/authorizer/rbac/rbac.go ResourceMatches: "*" is every resource and
  // subresource, else the exact "resource/subresource" or "*/subresource"; a rule naming the
  // resource alone does not reach its subresources, and RBAC has no "resource/*".
  const std::string full = subresource.empty() ? resource : resource + "/" + subresource;
  bool res_ok = false;
  for (const auto& r : rule.value("resources", json::array())) {
    const std::string s = r.is_string() ? r.get<std::string>() : "";
    if (s == "*" || s == full || (!subresource.empty() && s == "*/" + subresource)) res_ok = true;
  }
  if (!res_ok) return false;
  const auto names = rule.value("resourceNames", json::array());
  if (names.empty()) return true;
  return !name.empty() && contains_or_star(names, name) && names.size() > 0 &&
         std::any_of(names.begin(), names.end(), [&](const json& n) { return n == name; });
}

bool subject_matches(const json& s, const UserInfo& u) {
  const std::string kind = s.value("kind", "");
  const std::string name = s.value("name", "");
  if (kind == "User") return name == u.username;
  if (kind == "Group") return std::find(u.groups.begin(), u.groups.end(), name) != u.groups.end();
  if (kind == "ServiceAccount")
    return u.username == "system:serviceaccount:" + s.value("namespace", "") + ":" + name;
  return false;
}

}  // namespace

void ApiServer::audit(const UserInfo& user, const std::string& verb, const std::string& group, const std::string& resource,
                      const std::string& subresource, const std::string& ns, const std::string& name,
                      const std::string& path, bool allowed, const std::string& as) {
  if (opts_.audit_log.empty()) return;
  json line{{"user", user.username}, {"verb", verb}, {"allowed", allowed}};
  // What the caller asked the answer to be converted to (Accept's as=): Table,
  // PartialObjectMetadata(List); absent for the object itself.
  if (!as.empty()) line["as"] = as;
  if (path.empty()) {
    line["group"] = group;
    line["resource"] = subresource.empty() ? resource : resource + "/" + subresource;
    if (!ns.empty()) line["namespace"] = ns;
    if (!name.empty()) line["name"] = name;
  } else {
    line["path"] = path;
  }
  std::lock_guard lock(audit_mu_);
  std::ofstream out(opts_.audit_log, std::ios::app);
  out << line.dump() << "\n";
}

bool ApiServer::authorized(const UserInfo& user, const std::string& verb, const std::string& group,
                           const std::string& resource, const std::string& subresource, const std::string& ns,
                           const std::string& name, const std::string& path) const {
  if (!opts_.authorize) return true;
  if (std::find(user.groups.begin(), user.groups.end(), "system:masters") != user.groups.end()) return true;
  // Discovery, version and health are public, as system:discovery and
  // system:public-info-viewer make them in Kubernetes.
  if (!path.empty() && verb == "get" &&
      (path == "/version" || path == "/healthz" || path == "/readyz" || path == "/livez" || path == "/api" ||
       path.starts_with("/api/") || path == "/apis" || path.starts_with("/apis/") || path.starts_with("/openapi")))
    return true;
  // Every authenticated user may review itself (kubectl auth can-i, whoami).
  if (path.empty() && verb == "create" &&
      ((group == "authorization.k8s.io" && resource == "selfsubjectaccessreviews") ||
       (group == "authentication.k8s.io" && resource == "selfsubjectreviews")))
    return true;
  auto rules_of = [&](const json& role_ref, const std::string& binding_ns) -> std::vector<json> {
    const std::string kind = role_ref.value("kind", "");
    const std::string rname = role_ref.value("name", "");
    ObjPtr role = kind == "ClusterRole" ? store_.get("rbac.authorization.k8s.io/clusterroles", "", rname)
                                        : store_.get("rbac.authorization.k8s.io/roles", binding_ns, rname);
    if (!role) return {};
    const auto rules = role->value("rules", json::array());
    return {rules.begin(), rules.end()};
  };
  auto binding_allows = [&](const json& b, const std::string& binding_ns) {
    bool subject = false;
    for (const auto& s : b.value("subjects", json::array())) subject = subject || subject_matches(s, user);
    if (!subject) return false;
    for (const auto& r : rules_of(b.value("roleRef", json::object()), binding_ns))
      if (rule_allows(r, verb, group, resource, subresource, name, path)) return true;
    return false;
  };
  for (const auto& b : store_.list("rbac.authorization.k8s.io/clusterrolebindings", ""))
    if (binding_allows(*b, "")) return true;
  if (!ns.empty() && path.empty())
    for (const auto& b : store_.list("rbac.authorization.k8s.io/rolebindings", ns))
      if (binding_allows(*b, ns)) return true;
  return false;
}

// --- routing ----------------------------------------------------------------

Response ApiServer::handle(const Request& req) {
  if (faults_.latency_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(faults_.latency_ms));
  const bool public_path = req.path == "/version" || req.path == "/healthz" || req.path == "/readyz" ||
                           req.path == "/livez";
  if (req.path == "/healthz" || req.path == "/readyz" || req.path == "/livez") {
    Response r;
    r.content_type = "text/plain";
    r.body = "ok";
    return r;
  }
  if (req.path == "/version")
    return json_response(200, {{"major", "1"}, {"minor", "35"}, {"gitVersion", kGitVersion},
                               {"gitCommit", "kube-local"}, {"gitTreeState", "clean"},
                               {"buildDate", "2026-01-01T00:00:00Z"}, {"goVersion", "n/a"},
                               {"compiler", "gc"}, {"platform", "linux/amd64"}});
  auto user = authenticate(req);
  if (!user && !public_path)
    return status_response({401, "Unauthorized", "Unauthorized"});

  if (req.path.starts_with("/kube-local/")) {
    if (std::find(user->groups.begin(), user->groups.end(), "system:masters") == user->groups.end())
      return status_response({403, "Forbidden", "kube-local admin endpoints need system:masters"});
    json body = json::parse(req.body.empty() ? "{}" : req.body, nullptr, false);
    if (body.is_discarded()) return status_response(bad_request("invalid JSON body"));
    if (req.path == "/kube-local/compact") {
      store_.compact();
    } else if (req.path == "/kube-local/drop-watches") {
      ++faults_.drop_watches_generation;
    } else if (req.path == "/kube-local/faults") {
      faults_.error_rate = body.value("errorRate", 0.0);
      faults_.error_code = body.value("errorCode", 503);
      faults_.retry_after_seconds = body.value("retryAfterSeconds", 1);
      faults_.latency_ms = body.value("latencyMs", 0);
      faults_.fail_watches = body.value("failWatches", false);
    } else {
      return status_response({404, "NotFound", "the server could not find the requested resource"});
    }
    return json_response(200, {{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Success"}});
  }

  const auto seg = split(req.path, '/');
  std::string group, version;
  size_t rest = 0;
  if (!seg.empty() && seg[0] == "api") {
    if (seg.size() >= 2) version = seg[1];
    rest = 2;
  } else if (!seg.empty() && seg[0] == "apis") {
    if (seg.size() >= 2) group = seg[1];
    if (seg.size() >= 3) version = seg[2];
    rest = 3;
  }
  const bool resource_request = !seg.empty() && (seg[0] == "api" || seg[0] == "apis") && seg.size() > rest;
  if (!resource_request) {
    const bool allowed = !opts_.authorize || authorized(*user, "get", "", "", "", "", "", req.path);
    audit(*user, "get", "", "", "", "", "", req.path, allowed);
    if (!allowed)
      return status_response({403, "Forbidden",
                              "forbidden: User \"" + user->username + "\" cannot get path \"" + req.path + "\""});
    bool handled = false;
    Response r = discovery(req, &handled);
    if (handled) return r;
    return status_response({404, "NotFound", "the server could not find the requested resource"});
  }

  Target t;
  std::vector<std::string> tail(seg.begin() + static_cast<long>(rest), seg.end());
  if (tail.size() >= 3 && tail[0] == "namespaces" && registry_.find(group, version, tail[2]) &&
      registry_.find(group, version, tail[2])->namespaced) {
    t.ns = tail[1];
    tail.erase(tail.begin(), tail.begin() + 2);
  }
  t.type = registry_.find(group, version, tail[0]);
  if (!t.type) return status_response({404, "NotFound", "the server could not find the requested resource"});
  if (tail.size() >= 2) t.name = tail[1];
  if (tail.size() >= 3) t.subresource = tail[2];
  if (tail.size() > 3) return status_response({404, "NotFound", "the server could not find the requested resource"});
  if (!t.subresource.empty() && !t.type->has_subresource(t.subresource))
    return status_response({404, "NotFound", "the server could not find the requested resource"});

  // Fault injection applies to resource requests only, so tests can still reach the admin endpoint.
  if (faults_.fail_watches && is_watch(req))
    return status_response({503, "ServiceUnavailable", "kube-local: watches are failing (fault injection)",
                            json{{"retryAfterSeconds", 0}}});
  if (faults_.error_rate > 0) {
    std::uniform_real_distribution<double> d(0, 1);
    bool fail;
    {
      std::lock_guard lock(rng_mu_);
      fail = d(rng_) < faults_.error_rate;
    }
    if (fail) {
      ApiError e{faults_.error_code, faults_.error_code == 429 ? "TooManyRequests" : "InternalError",
                 faults_.error_code == 429 ? "Too many requests, please try again later."
                                           : "kube-local: injected failure",
                 json{{"retryAfterSeconds", faults_.retry_after_seconds}}};
      if (faults_.error_code == 503) e.reason = "ServiceUnavailable";
      return status_response(e);
    }
  }
  return serve_resource(req, t, *user);
}

Response ApiServer::serve_resource(const Request& req, const Target& t, const UserInfo& user) {
  const ResourceType& type = *t.type;
  const bool collection = t.name.empty();
  const bool watching = is_watch(req);
  std::string verb;
  if (req.method == "GET") verb = collection ? (watching ? "watch" : "list") : "get";
  else if (req.method == "POST") verb = "create";
  else if (req.method == "PUT") verb = "update";
  else if (req.method == "PATCH") verb = "patch";
  else if (req.method == "DELETE") verb = collection ? "deletecollection" : "delete";
  else return status_response({405, "MethodNotAllowed", "the server does not allow this method on the requested resource"});
  // POST to a named object's subresource (serviceaccounts/x/token) is a create.
  const std::string authz_name = t.name;
  const bool allowed = authorized(user, verb, type.group, type.resource, t.subresource, t.ns, authz_name, "");
  std::string as;
  if (const std::string accept = req.header("accept"); accept.find("as=") != std::string::npos) {
    as = accept.substr(accept.find("as=") + 3);
    as = as.substr(0, as.find_first_of(";, "));
  }
  audit(user, verb, type.group, type.resource, t.subresource, t.ns, authz_name, "", allowed, as);
  if (!allowed) {
    // responsewriters.Forbidden: NewForbidden on the group and resource (no subresource), the
    // verb's resource with its subresource in the message (forbiddenMessage).
    std::string msg = qualified_resource(type);
    if (!t.name.empty()) msg += " \"" + t.name + "\"";
    msg += " is forbidden: User \"" + user.username + "\" cannot " + verb + " resource \"" + type.resource +
           (t.subresource.empty() ? "" : "/" + t.subresource) + "\" in API group \"" + type.group + "\"";
    msg += t.ns.empty() ? " at the cluster scope" : " in the namespace \"" + t.ns + "\"";
    return status_response({403, "Forbidden", msg,
                            json{{"name", t.name}, {"group", type.group}, {"kind", type.resource}}});
  }
  // kubectl's typed clients send protobuf: decode the kinds they use, refuse the rest.
  if (!req.body.empty() && req.header("content-type").starts_with("application/vnd.kubernetes.protobuf")) {
    auto decoded = decode_k8s_protobuf(req.body);
    if (!decoded)
      return status_response({415, "UnsupportedMediaType",
                              "the body of the request was in an unknown format - accepted media types include: "
                              "application/json, application/yaml"});
    Request json_req = req;
    json_req.body = decoded->dump();
    json_req.headers["content-type"] = "application/json";
    return serve_resource(json_req, t, user);
  }
  if (req.body.size() > opts_.max_body_bytes)
    return status_response({413, "RequestEntityTooLarge", "Request entity too large: limit is 3145728"});
  if (type.virtual_only) {
    if (req.method != "POST") return status_response({405, "MethodNotAllowed", "only create is allowed"});
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return status_response(bad_request("invalid JSON body"));
    return review(t, body, user);
  }
  if (type.namespaced && t.ns.empty() && !collection)
    return status_response({404, "NotFound", "the server could not find the requested resource"});

  // ValidateCreateOptions / ValidateUpdateOptions / ValidatePatchOptions / ValidateDeleteOptions
  // (apimachinery/pkg/apis/meta/v1/validation/validation.go, ValidateDryRun): "All" is the only
  // dryRun value; anything else is a 422 on the options kind, before anything is written.
  json delete_opts = json::object();
  if (req.method == "DELETE" && !req.body.empty()) {
    delete_opts = json::parse(req.body, nullptr, false);
    if (delete_opts.is_discarded() || !delete_opts.is_object())
      return status_response(bad_request("invalid DeleteOptions body"));
  }
  std::vector<std::string> dry_run;
  if (req.query.contains("dryRun")) dry_run.push_back(req.param("dryRun"));
  if (const auto it = delete_opts.find("dryRun"); it != delete_opts.end() && it->is_array())
    for (const auto& v : *it) dry_run.push_back(v.is_string() ? v.get<std::string>() : v.dump());
  if (req.method != "GET") {
    std::string quoted;
    bool ok = true;
    for (const auto& v : dry_run) {
      quoted += (quoted.empty() ? "" : ", ") + json(v).dump();
      ok = ok && v == "All";
    }
    if (!ok) {
      const std::string kind = req.method == "POST"    ? "CreateOptions"
                               : req.method == "PUT"   ? "UpdateOptions"
                               : req.method == "PATCH" ? "PatchOptions"
                                                       : "DeleteOptions";
      return status_response(invalid_kind("meta.k8s.io", kind, "",
                                          {{"FieldValueNotSupported", "dryRun",
                                            "dryRun: Unsupported value: []string{" + quoted +
                                                "}: supported values: \"All\""}}));
    }
  }
  CallContext ctx{user, !dry_run.empty(), req.param("fieldValidation"), nullptr, "", false};
  if (ctx.field_validation.empty()) ctx.field_validation = "Warn";
  ctx.field_manager = field_manager_of(req, user);
  std::vector<std::string> warnings;
  ctx.warnings = &warnings;
  auto finish = [&](const ApiResult<json>& r, int ok_code) {
    if (!r) return status_response(r.error());
    Response resp = json_response(ok_code, r.value());
    for (const auto& w : warnings) resp.headers.push_back({"Warning", "299 - \"" + w + "\""});
    return resp;
  };
  // A write through /scale answers with the parent's new Scale (ScaleREST.Update).
  auto as_scale = [&](ApiResult<json> r) -> ApiResult<json> {
    if (!r || t.subresource != "scale") return r;
    return scale_for(store_, type, *r);
  };

  if (req.method == "GET") {
    if (collection) return list_or_watch(req, t);
    if (t.subresource == "log") return pod_log(req, t);
    if (t.subresource == "scale") return get_scale(req, t);
    auto obj = store_.get(type.gr(), t.ns, t.name);
    if (!obj) return status_response(not_found(type, t.name));
    if (auto partial = partial_target(req); !partial) {
      return status_response(partial.error());
    } else if (partial->as == Partial::kList) {
      return status_response(partial_not_acceptable(Partial::kList, type));
    } else if (partial->as == Partial::kObject) {
      Response r = json_response(200, as_partial(*obj, partial->group_version));
      r.content_type = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=" +
                       partial->group_version.substr(partial->group_version.find('/') + 1);
      return r;
    }
    if (wants_table(req)) {
      Response r = json_response(200, to_table(type, {obj}, std::chrono::system_clock::now(),
                                               req.param("includeObject"),
                                               json{{"resourceVersion", (*obj)["metadata"].value("resourceVersion", "")}}));
      r.content_type = "application/json;as=Table;v=v1;g=meta.k8s.io";
      return r;
    }
    return json_response(200, with_type(*obj, type));
  }
  if (req.method == "POST") {
    if (type.resource == "serviceaccounts" && t.subresource == "token") {
      json body = json::parse(req.body.empty() ? "{}" : req.body, nullptr, false);
      return create_token(t, body.is_discarded() ? json::object() : body);
    }
    if (!collection) return status_response({405, "MethodNotAllowed", "POST is not allowed on a named resource"});
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object())
      return status_response(bad_request("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml"));
    return finish(create(type, t.ns, std::move(body), ctx), 201);
  }
  if (req.method == "PUT") {
    if (collection) return status_response({405, "MethodNotAllowed", "PUT is not allowed on a collection"});
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object()) return status_response(bad_request("invalid JSON body"));
    return finish(as_scale(update(type, t.ns, t.name, std::move(body), ctx, t.subresource)), 200);
  }
  if (req.method == "PATCH") {
    if (collection) return status_response({405, "MethodNotAllowed", "PATCH is not allowed on a collection"});
    std::string ctype = req.header("content-type");
    if (auto semi = ctype.find(';'); semi != std::string::npos) ctype = ctype.substr(0, semi);
    if (ctype != "application/merge-patch+json" && ctype != "application/json-patch+json" &&
        ctype != "application/strategic-merge-patch+json" && ctype != "application/apply-patch+yaml")
      return status_response({415, "UnsupportedMediaType",
                              "the body of the request was in an unknown format - accepted media types include: "
                              "application/json-patch+json, application/merge-patch+json, "
                              "application/apply-patch+yaml, application/strategic-merge-patch+json"});
    const auto force = query_bool(req.query, "force");
    if (ctype == "application/apply-patch+yaml" && t.subresource == "scale")
      return status_response({415, "UnsupportedMediaType",
                              "kube-local serves no server-side apply on the scale subresource - accepted media types "
                              "include: application/json-patch+json, application/merge-patch+json, "
                              "application/strategic-merge-patch+json"});
    if (ctype == "application/apply-patch+yaml") {
      bool created = false;
      auto applied = server_side_apply(t, req, ctx, force.value_or(false), &created);
      return finish(applied, created ? 201 : 200);
    }
    // handlers/patch.go: force is an apply option only.
    if (force)
      return status_response(invalid_kind("meta.k8s.io", "PatchOptions", "",
                                          {{"FieldValueForbidden", "force",
                                            "force: Forbidden: may not be specified for non-apply patch"}}));
    if (ctype == "application/strategic-merge-patch+json" && type.custom)
      return status_response({415, "UnsupportedMediaType",
                              "strategic merge patch is not supported for custom resources; use a merge or JSON patch"});
    json patch = json::parse(req.body, nullptr, false);
    if (patch.is_discarded()) return status_response(bad_request("invalid JSON patch body"));
    ApiResult<json> result = std::unexpected(ApiError{});
    for (int attempt = 0; attempt < 16; ++attempt) {
      auto cur = store_.get(type.gr(), t.ns, t.name);
      if (!cur) return status_response(not_found(type, t.name));
      std::string err;
      std::optional<json> patched;
      // The object as this API version shows it; through /scale, the parent's Scale.
      json base = with_type(*cur, type);
      if (t.subresource == "scale") {
        auto scale = scale_for(store_, type, *cur);
        if (!scale) return status_response(scale.error());
        base = std::move(*scale);
      }
      if (ctype == "application/merge-patch+json") patched = apply_merge_patch(base, patch, &err);
      else if (ctype == "application/json-patch+json") patched = apply_json_patch(base, patch, &err);
      else patched = apply_strategic_merge_patch(base, patch, &err);
      if (!patched) return status_response({422, "Invalid", err});
      if (!patched->is_object() || !patched->contains("metadata") || !(*patched)["metadata"].is_object())
        return status_response({422, "Invalid", "the patch removed metadata"});
      // Without a resourceVersion in the patch, the patch applies to what was read: CAS on it.
      const bool patch_sets_rv = (*patched)["metadata"].value("resourceVersion", "") !=
                                 (*cur)["metadata"].value("resourceVersion", "");
      if (!patch_sets_rv) (*patched)["metadata"]["resourceVersion"] = (*cur)["metadata"]["resourceVersion"];
      result = update(type, t.ns, t.name, std::move(*patched), ctx, t.subresource);
      if (result || result.error().code != 409 || patch_sets_rv || result.error().reason != "Conflict") break;
    }
    return finish(as_scale(result), 200);
  }
  // DELETE
  json opts = delete_opts;
  if (!req.param("propagationPolicy").empty()) opts["propagationPolicy"] = req.param("propagationPolicy");
  // DeleteOptions may also come as query parameters (metav1 ParameterCodec).
  if (const std::string g = req.param("gracePeriodSeconds"); !g.empty()) {
    try {
      size_t pos = 0;
      const long long v = std::stoll(g, &pos);
      if (pos != g.size()) throw std::invalid_argument(g);
      opts["gracePeriodSeconds"] = v;
    } catch (...) {
      return status_response(bad_request("invalid gracePeriodSeconds \"" + g + "\""));
    }
  }
  if (!collection) {
    auto r = remove(type, t.ns, t.name, opts, ctx);
    if (!r) return status_response(r.error());
    // Store.Delete (apiserver/pkg/registry/generic/registry/store.go): an object kept for its
    // finalizers (or graceful deletion) comes back as it now is; one deleted at once goes through
    // finalizeDelete, which returns the object only where the store sets ReturnDeletedObject and
    // otherwise a Success Status naming it (details.kind is the resource, as there).
    if (r->value("metadata", json::object()).contains("deletionTimestamp") || returns_deleted_object(type))
      return finish(r, 200);
    json details{{"name", t.name}, {"kind", type.resource}, {"uid", (*r)["metadata"].value("uid", "")}};
    if (!type.group.empty()) details["group"] = type.group;
    return finish(json{{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()},
                       {"status", "Success"}, {"details", details}},
                  200);
  }
  // Store.DeleteCollection: the collection as ListOptions select it (labels, fields, limit),
  // each item deleted as a single Delete would, and the list of what was selected returned.
  auto parsed = parse_list_options(req.query);
  if (!parsed.errors.empty()) return status_response(invalid_kind("meta.k8s.io", "ListOptions", "", parsed.errors));
  auto filter = make_filter(req, type, t.ns);
  if (!filter) return status_response(filter.error());
  const auto limit = parse_limit(req);
  if (!limit) return status_response(limit.error());
  auto [all, rv] = store_.snapshot(type.gr(), t.ns);
  json deleted = json::array();
  for (const auto& o : all) {
    if (!filter->matches(type, *o)) continue;
    if (*limit > 0 && static_cast<long>(deleted.size()) >= *limit) break;
    auto r = remove(type, (*o)["metadata"].value("namespace", ""), (*o)["metadata"].value("name", ""), opts, ctx);
    if (!r && r.error().code != 404) return status_response(r.error());
    deleted.push_back(with_type(*o, type));
  }
  return finish(json{{"kind", type.kind + "List"}, {"apiVersion", type.api_version()},
                     {"metadata", {{"resourceVersion", std::to_string(rv)}}}, {"items", deleted}},
                200);
}

// --- pods/log -------------------------------------------------------------------

// registry/core/pod/rest/log.go and the kubelet's log handler: the container's
// output as text, checked as PodLogOptions are (validation.ValidatePodLogOptions),
// tailLines before limitBytes, and follow streaming until the container ends.
// Process pods' output is what the process wrote; a simulated pod's is its
// termination message.
Response ApiServer::pod_log(const Request& req, const Target& t) {
  auto pod = store_.get(t.type->gr(), t.ns, t.name);
  if (!pod) return status_response(not_found(*t.type, t.name));
  const json& p = *pod;
  std::vector<std::string> names;
  for (const auto& c : p["spec"].value("containers", json::array())) names.push_back(c.value("name", ""));
  std::vector<std::string> init_names;  // their logs too (`kubectl logs -c <init container>`)
  for (const auto& c : p["spec"].value("initContainers", json::array())) init_names.push_back(c.value("name", ""));
  std::string container = req.param("container");
  if (container.empty()) {
    if (names.size() != 1) {
      std::string all;
      for (const auto& n : names) all += (all.empty() ? "" : " ") + n;
      return status_response(bad_request("a container name must be specified for pod " + t.name +
                                         ", choose one of: [" + all + "]"));
    }
    container = names[0];
  } else if (std::find(names.begin(), names.end(), container) == names.end() &&
             std::find(init_names.begin(), init_names.end(), container) == init_names.end()) {
    return status_response(bad_request("container " + container + " is not valid for pod " + t.name));
  }
  auto number = [&](const char* name, long min, std::optional<long>* out) -> std::optional<ApiError> {
    const std::string v = req.param(name);
    if (v.empty()) return std::nullopt;
    long n = 0;
    try {
      size_t pos = 0;
      n = std::stol(v, &pos);
      if (pos != v.size()) throw std::invalid_argument(v);
    } catch (...) {
      return bad_request("invalid value for " + std::string(name) + ": \"" + v + "\"");
    }
    if (n < min)
      return invalid_kind("", "PodLogOptions", "",
                          {{"FieldValueInvalid", name,
                            std::string(name) + ": Invalid value: " + v + ": must be greater than " +
                                (min == 0 ? "or equal to 0" : "0")}});
    *out = n;
    return std::nullopt;
  };
  std::optional<long> tail, limit;
  if (auto e = number("tailLines", 0, &tail)) return status_response(*e);
  if (auto e = number("limitBytes", 1, &limit)) return status_response(*e);
  if (query_bool(req.query, "previous").value_or(false))
    return status_response(bad_request("previous terminated container \"" + container + "\" in pod \"" + t.name +
                                       "\" not found"));
  json state;
  for (const char* list : {"initContainerStatuses", "containerStatuses"})
    for (const auto& cs : p.value("status", json::object()).value(list, json::array()))
      if (cs.value("name", "") == container) state = cs.value("state", json::object());
  if (!state.is_object() || state.contains("waiting") || state.empty()) {
    const std::string why = state.is_object() && state.contains("waiting")
                                ? state["waiting"].value("reason", "ContainerCreating")
                                : "ContainerCreating";
    return status_response(bad_request("container \"" + container + "\" in pod \"" + t.name +
                                       "\" is waiting to start: " + why));
  }
  std::optional<std::filesystem::path> file;
  {
    std::lock_guard lock(log_source_mu_);
    if (log_source_) file = log_source_(p, container);
  }
  auto read_all = [&]() -> std::string {
    if (!file) return state.contains("terminated") ? state["terminated"].value("message", "") : std::string();
    std::ifstream in(*file, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto shape = [&](std::string text) {
    if (tail) {
      size_t pos = text.size();
      if (!text.empty() && text.back() == '\n') --pos;
      for (long n = 0; pos > 0; --pos)
        if (text[pos - 1] == '\n' && ++n == *tail) break;
      text = *tail == 0 ? std::string() : text.substr(pos);
    }
    if (limit && text.size() > static_cast<size_t>(*limit)) text.resize(static_cast<size_t>(*limit));
    return text;
  };
  Response r;
  r.content_type = "text/plain";
  const bool running = state.contains("running");
  if (!query_bool(req.query, "follow").value_or(false) || !running || !file) {
    r.body = shape(read_all());
    return r;
  }
  const auto gr = t.type->gr();
  const std::string ns = t.ns, name = t.name, uid = p["metadata"].value("uid", "");
  const std::string first = shape(read_all());
  const std::filesystem::path path = *file;
  const size_t start = read_all().size();
  const std::optional<long> cap = limit;
  r.stream = [this, gr, ns, name, uid, container, first, path, start, cap](const ChunkWriter& write) {
    size_t sent = first.size(), offset = start;
    if (!first.empty() && !write(first)) return;
    while (!store_.closed() && (!cap || sent < static_cast<size_t>(*cap))) {
      std::ifstream in(path, std::ios::binary);
      in.seekg(static_cast<std::streamoff>(offset));
      std::string more(std::istreambuf_iterator<char>(in), {});
      if (cap && sent + more.size() > static_cast<size_t>(*cap)) more.resize(static_cast<size_t>(*cap) - sent);
      offset += more.size();
      sent += more.size();
      if (!write(more)) return;
      if (!more.empty()) continue;
      // The stream ends once the container has: the Pod is gone, replaced, or finished.
      auto now = store_.get(gr, ns, name);
      if (!now || (*now)["metadata"].value("uid", "") != uid) return;
      const json st = (*now).value("status", json::object());
      const std::string phase = st.value("phase", "");
      bool ended = phase == "Succeeded" || phase == "Failed";
      for (const char* list : {"initContainerStatuses", "containerStatuses"})
        for (const auto& cs : st.value(list, json::array()))
          if (cs.value("name", "") == container && cs.value("state", json::object()).contains("terminated")) ended = true;
      if (ended) {
        std::ifstream rest(path, std::ios::binary);
        rest.seekg(static_cast<std::streamoff>(offset));
        std::string tail_bytes(std::istreambuf_iterator<char>(rest), {});
        if (cap && sent + tail_bytes.size() > static_cast<size_t>(*cap)) tail_bytes.resize(static_cast<size_t>(*cap) - sent);
        if (!tail_bytes.empty()) write(tail_bytes);
        return;
      }
      store_.wait_past(store_.current_rv(), std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
    }
  };
  return r;
}

// --- scale ------------------------------------------------------------------------

// ScaleREST.Get: the parent's Scale (scale.h), or its Table (printScale) for `kubectl get --subresource=scale`.
Response ApiServer::get_scale(const Request& req, const Target& t) {
  auto obj = store_.get(t.type->gr(), t.ns, t.name);
  if (!obj) return status_response(not_found(*t.type, t.name));
  auto scale = scale_for(store_, *t.type, *obj);
  if (!scale) return status_response(scale.error());
  if (wants_table(req)) {
    Response r = json_response(200, scale_table(*scale, std::chrono::system_clock::now(), req.param("includeObject")));
    r.content_type = "application/json;as=Table;v=v1;g=meta.k8s.io";
    return r;
  }
  return json_response(200, *scale);
}

bool ApiServer::pod_containers_running(const json& pod) {
  std::lock_guard lock(pod_runtime_mu_);
  return pod_runtime_ && pod_runtime_(pod);
}

// --- Service cluster IPs -------------------------------------------------------

// pkg/registry/core/service/ipallocator over the default service CIDR
// 10.96.0.0/12 (kube-apiserver's --service-cluster-ip-range default): the first
// free address from .1, IPv4 single stack; "None" is a headless Service and
// ExternalName Services get none. The lock is held until the Service is stored,
// so two creates cannot take one address.
std::unique_lock<std::mutex> ApiServer::allocate_cluster_ip(json& svc) {
  std::unique_lock lock(ip_mu_);
  if (!svc.contains("spec") || !svc["spec"].is_object()) return lock;
  json& spec = svc["spec"];
  if (spec.value("type", "ClusterIP") == "ExternalName") return lock;
  std::string ip = spec.value("clusterIP", "");
  if (ip.empty()) {
    std::set<std::string> used;
    for (const auto& o : store_.list("/services", ""))
      if (auto c = (*o).value("spec", json::object()).value("clusterIP", ""); !c.empty()) used.insert(c);
    for (uint32_t n = 1; n < (1u << 20) - 1; ++n) {
      const uint32_t addr = (10u << 24) | (96u << 16) | n;
      const std::string cand = std::to_string(addr >> 24) + "." + std::to_string((addr >> 16) & 255) + "." +
                               std::to_string((addr >> 8) & 255) + "." + std::to_string(addr & 255);
      if (!used.count(cand)) {
        ip = cand;
        break;
      }
    }
    spec["clusterIP"] = ip;
  }
  spec["clusterIPs"] = json::array({ip});
  if (ip != "None") {
    if (!spec.contains("ipFamilies")) spec["ipFamilies"] = json::array({"IPv4"});
    if (!spec.contains("ipFamilyPolicy")) spec["ipFamilyPolicy"] = "SingleStack";
  }
  return lock;
}

// storage.go patchAllocatedValues: an update that leaves the allocated addresses out keeps them.
void ApiServer::keep_allocated_ips(const json& old, json& next) {
  const json os = old.value("spec", json::object());
  if (!next.contains("spec") || !next["spec"].is_object()) return;
  json& ns = next["spec"];
  if (ns.value("type", "ClusterIP") == "ExternalName") return;
  for (const char* k : {"clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"})
    if ((!ns.contains(k) || ns[k] == "" || ns[k].empty()) && os.contains(k)) ns[k] = os[k];
}

// --- server-side apply -------------------------------------------------------

// handlers/patch.go applyPatcher with fieldmanager's structured merge: the
// configuration is merged into the live object (created when absent), fields
// the manager applied before and no longer does are removed, and changing a
// value another manager owns is a 409 Conflict unless ?force=true.
ApiResult<json> ApiServer::server_side_apply(const Target& t, const Request& req, CallContext ctx, bool force,
                                            bool* created) {
  const ResourceType& type = *t.type;
  // validation.ValidatePatchOptions / ValidateFieldManager.
  const std::string manager = req.param("fieldManager");
  if (manager.empty())
    return std::unexpected(invalid_kind("meta.k8s.io", "PatchOptions", "",
                                        {{"FieldValueRequired", "fieldManager",
                                          "fieldManager: Required value: is required for apply patch"}}));
  if (manager.size() > 128)
    return std::unexpected(invalid_kind("meta.k8s.io", "PatchOptions", "",
                                        {{"FieldValueTooLong", "fieldManager",
                                          "fieldManager: Too long: may not be more than 128 bytes"}}));
  std::string err;
  auto parsed = yaml_to_json(req.body, &err);
  if (!parsed) return std::unexpected(bad_request("error decoding YAML: " + err));
  json config = std::move(*parsed);
  if (!config.is_object() || !config.contains("kind") || !config["kind"].is_string() || config["kind"] == "")
    return std::unexpected(bad_request("Object 'Kind' is missing in '" + req.body + "'"));
  if (config["kind"] != type.kind || config.value("apiVersion", "") != type.api_version())
    return std::unexpected(bad_request("the API version in the data (" + config.value("apiVersion", "") +
                                       ") does not match the expected API version (" + type.api_version() + ")"));
  if (!config.contains("metadata") || !config["metadata"].is_object()) config["metadata"] = json::object();
  json& meta = config["metadata"];
  if (meta.value("name", t.name) != t.name)
    return std::unexpected(bad_request("the name of the object (" + meta.value("name", "") +
                                       ") does not match the name on the URL (" + t.name + ")"));
  // rest.EnsureObjectNamespaceMatchesRequestNamespace: an empty namespace takes the request's.
  if (type.namespaced && !meta.value("namespace", "").empty() && meta.value("namespace", "") != t.ns)
    return std::unexpected(bad_request("the namespace of the provided object does not match the namespace sent on the request"));
  meta["name"] = t.name;
  if (type.namespaced) meta["namespace"] = t.ns;
  meta.erase("managedFields");
  const bool rv_given = meta.contains("resourceVersion");
  // ResetFieldsStrategy: the main resource ignores status, the status subresource everything else.
  if (t.subresource.empty() && type.has_subresource("status") && type.gr() != "/namespaces") config.erase("status");
  if (t.subresource == "status")
    for (auto it = config.begin(); it != config.end();)
      it = (it.key() == "apiVersion" || it.key() == "kind" || it.key() == "metadata" || it.key() == "status")
               ? std::next(it)
               : config.erase(it);
  ctx.field_manager = manager;
  ctx.applying = true;
  const auto types = type_info(type);
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto cur = store_.get(type.gr(), t.ns, t.name);
    if (!cur) {
      if (!t.subresource.empty()) return std::unexpected(not_found(type, t.name));
      auto r = fields::apply(nullptr, config, manager, force, t.subresource, type.api_version(), now_str(), types);
      auto res = create(type, t.ns, std::move(r.object), ctx);
      if (!res && res.error().reason == "AlreadyExists") continue;  // created meanwhile: apply onto it
      *created = res.has_value() && !ctx.dry_run;
      return res;
    }
    auto r = fields::apply(*cur, config, manager, force, t.subresource, type.api_version(), now_str(), types);
    if (!r.conflicts.empty()) {
      json causes = json::array();
      for (const auto& c : r.conflicts)
        causes.push_back({{"reason", "FieldManagerConflict"}, {"message", "conflict with " + c.manager}, {"field", c.field}});
      return std::unexpected(ApiError{409, "Conflict", fields::conflict_message(r.conflicts), json{{"causes", causes}}});
    }
    if (!rv_given) r.object["metadata"]["resourceVersion"] = (*cur)["metadata"]["resourceVersion"];
    auto res = update(type, t.ns, t.name, std::move(r.object), ctx, t.subresource);
    if (res || rv_given || res.error().code != 409 || res.error().reason != "Conflict") return res;
  }
  return std::unexpected(conflict(type, t.name, "the object has been modified; please apply your changes to the "
                                                "latest version and try again"));
}

// --- list and watch -----------------------------------------------------------


Response ApiServer::list_or_watch(const Request& req, const Target& t) {
  auto parsed = parse_list_options(req.query);
  if (!parsed.errors.empty()) return status_response(invalid_kind("meta.k8s.io", "ListOptions", "", parsed.errors));
  if (parsed.options.watch) return watch(req, t, parsed.options);
  const ResourceType& type = *t.type;
  const auto partial = partial_target(req);
  if (!partial) return status_response(partial.error());
  if (partial->as == Partial::kObject) return status_response(partial_not_acceptable(Partial::kObject, type));
  auto filter = make_filter(req, type, t.ns);
  if (!filter) return status_response(filter.error());
  const auto limit = parse_limit(req);
  if (!limit) return status_response(limit.error());
  std::string start_after;
  std::optional<uint64_t> continue_rv;
  if (const std::string cont = req.param("continue"); !cont.empty()) {
    auto decoded = bo::base64url_decode(cont);
    json tok = decoded ? json::parse(*decoded, nullptr, false) : json();
    if (!tok.is_object()) return status_response(bad_request("continue key is not valid"));
    if (tok.value("rv", uint64_t{0}) < store_.oldest_available_rv())
      return status_response({410, "Expired",
                              "The provided continue parameter is too old to display a consistent list result. "
                              "You can start a new list without the continue parameter."});
    start_after = tok.value("start", "");
    continue_rv = tok.value("rv", uint64_t{0});
  }
  auto [all, rv] = store_.snapshot(type.gr(), t.ns);
  if (continue_rv) {
    // Every page of a continued list is served at the first page's resourceVersion
    // (storage/etcd3 store.go GetList reads the continue key's revision), or 410.
    auto then = store_.snapshot_at(type.gr(), t.ns, *continue_rv);
    if (!then)
      return status_response({410, "Expired",
                              "The provided continue parameter is too old to display a consistent list result. "
                              "You can start a new list without the continue parameter."});
    all = std::move(*then);
    rv = *continue_rv;
  }
  std::vector<ObjPtr> items;
  std::string last_key;
  std::string next_continue;
  long remaining = 0;
  for (const auto& o : all) {
    const std::string key = (*o)["metadata"].value("namespace", "") + "/" + (*o)["metadata"].value("name", "");
    if (!start_after.empty() && key <= start_after) continue;
    if (!filter->matches(type, *o)) continue;
    if (*limit > 0 && static_cast<long>(items.size()) >= *limit) {
      ++remaining;
      continue;
    }
    items.push_back(o);
    last_key = key;
  }
  json meta{{"resourceVersion", std::to_string(rv)}};
  if (remaining > 0) {
    meta["continue"] = bo::base64url_encode(json{{"rv", rv}, {"start", last_key}}.dump());
    // PrepareContinueToken (apiserver/pkg/storage/continue.go): the count is exact only for an
    // empty predicate, so with a label or field selector it is left unset.
    if (req.param("labelSelector").empty() && req.param("fieldSelector").empty()) meta["remainingItemCount"] = remaining;
  }
  if (wants_table(req)) {
    Response r = json_response(200, to_table(type, items, std::chrono::system_clock::now(), req.param("includeObject"), meta));
    r.content_type = "application/json;as=Table;v=v1;g=meta.k8s.io";
    return r;
  }
  if (partial->as == Partial::kList) {
    // asPartialObjectMetadataList: the list's metadata (resourceVersion, continue,
    // remainingItemCount) and each item's metadata, nothing else.
    json out{{"kind", "PartialObjectMetadataList"}, {"apiVersion", partial->group_version}, {"metadata", meta},
             {"items", json::array()}};
    for (const auto& o : items) out["items"].push_back(as_partial(*o, partial->group_version));
    Response r = json_response(200, out);
    r.content_type = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=" +
                     partial->group_version.substr(partial->group_version.find('/') + 1);
    return r;
  }
  json out{{"kind", type.kind + "List"}, {"apiVersion", type.api_version()}, {"metadata", meta},
           {"items", json::array()}};
  for (const auto& o : items) out["items"].push_back(with_type(*o, type));
  return json_response(200, out);
}

// A watch as the cacher serves it (apiserver/pkg/storage/cacher): with
// sendInitialEvents the current state as ADDED events, then, for a watch-list
// request (bookmarks allowed), a BOOKMARK at the state's resourceVersion
// annotated k8s.io/initial-events-end and carrying the empty list's blueprint
// (endpoints/handlers/watch.go, watchListTransformer); then live events.
Response ApiServer::watch(const Request& req, const Target& t, const ListOptions& opts) {
  const TypePtr type = t.type;
  auto filter = make_filter(req, *type, t.ns);
  if (!filter) return status_response(filter.error());
  const std::string rv_param = opts.resource_version;
  const uint64_t start_rv = parse_rv(rv_param);
  if (start_rv == UINT64_MAX) return status_response(bad_request("invalid resourceVersion \"" + rv_param + "\""));
  long timeout_s = 1800;
  if (!req.param("timeoutSeconds").empty()) {
    try {
      timeout_s = std::stol(req.param("timeoutSeconds"));
    } catch (...) {
      return status_response(bad_request("invalid timeoutSeconds"));
    }
  }
  const bool initial = opts.sends_initial_events();
  if (initial && start_rv > store_.current_rv()) {
    // NotOlderThan a version the store has not reached: the cacher waits up to
    // 3 s for it (waitUntilFreshAndBlock), then answers TooLargeResourceVersion.
    store_.wait_past(start_rv - 1, std::chrono::steady_clock::now() + std::chrono::seconds(3));
    if (start_rv > store_.current_rv())
      return status_response({504, "Timeout",
                              "Too large resource version: " + rv_param + ", current: " +
                                  std::to_string(store_.current_rv()),
                              json{{"causes", json::array({{{"reason", "ResourceVersionTooLarge"},
                                                            {"message", "Too large resource version"}}})},
                                   {"retryAfterSeconds", 1}}});
  }
  const bool bookmarks = opts.allow_watch_bookmarks;
  const bool end_bookmark = opts.ends_initial_events_with_bookmark();
  const bool table = wants_table(req);
  // A metadata watch (client-go's metadata informer asks as=PartialObjectMetadata): each event's
  // object, bookmarks included, passes through asPartialObjectMetadata (response.go,
  // watchEmbeddedEncoder.doEncode); a list kind cannot describe one object.
  const auto partial = partial_target(req);
  if (!partial) return status_response(partial.error());
  if (partial->as == Partial::kList) return status_response(partial_not_acceptable(Partial::kList, *type));
  const std::string partial_gv = partial->as == Partial::kObject ? partial->group_version : "";
  Response r;
  r.content_type = table ? "application/json;as=Table;v=v1;g=meta.k8s.io"
                   : !partial_gv.empty()
                       ? "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=" + partial_gv.substr(partial_gv.find('/') + 1)
                       : "application/json";
  Filter f = *filter;
  const std::string include_object = req.param("includeObject");
  r.stream = [this, type, f, rv_param, start_rv, timeout_s, bookmarks, initial, end_bookmark, table,
              include_object, partial_gv](const ChunkWriter& write) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    const uint64_t drop_gen = faults_.drop_watches_generation.load();
    auto emit = [&](const char* kind, const json& obj) {
      json o = table ? to_table(*type, {std::make_shared<const json>(obj)}, std::chrono::system_clock::now(), include_object,
                                json{{"resourceVersion", obj["metadata"].value("resourceVersion", "")}})
               : !partial_gv.empty() ? as_partial(obj, partial_gv)
                                     : with_type(obj, *type);
      return write(json{{"type", kind}, {"object", o}}.dump() + "\n");
    };
    auto bookmark = [&](uint64_t rv, bool initial_events_end) {
      json bm{{"kind", partial_gv.empty() ? type->kind : "PartialObjectMetadata"},
              {"apiVersion", partial_gv.empty() ? type->api_version() : partial_gv},
              {"metadata", {{"resourceVersion", std::to_string(rv)}}}};
      if (initial_events_end) {
        const json blueprint{{"kind", partial_gv.empty() ? type->kind + "List" : "PartialObjectMetadataList"},
                             {"apiVersion", partial_gv.empty() ? type->api_version() : partial_gv},
                             {"metadata", {{"resourceVersion", std::to_string(rv)}}}, {"items", nullptr}};
        bm["metadata"]["annotations"] = {{"k8s.io/initial-events-end", "true"},
                                         {"k8s.io/initial-events-list-blueprint", bo::base64_encode(blueprint.dump())}};
      }
      return write(json{{"type", "BOOKMARK"}, {"object", bm}}.dump() + "\n");
    };
    auto gone = [&](uint64_t rv) {
      write(json{{"type", "ERROR"},
                 {"object",
                  {{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()}, {"status", "Failure"},
                   {"message", "too old resource version: " + std::to_string(rv) + " (" +
                                   std::to_string(store_.oldest_available_rv()) + ")"},
                   {"reason", "Expired"}, {"code", 410}}}}
                .dump() +
            "\n");
    };
    uint64_t cursor = start_rv;
    if (initial) {
      auto [objs, rv] = store_.snapshot(type->gr(), f.ns);
      for (const auto& o : objs)
        if (f.matches(*type, *o) && !emit("ADDED", *o)) return;
      cursor = rv;
      if (end_bookmark && !bookmark(cursor, true)) return;
    } else if (rv_param.empty() || rv_param == "0") {
      cursor = store_.current_rv();  // sendInitialEvents=false: from now on
    }
    auto last_bookmark = std::chrono::steady_clock::now();
    while (true) {
      auto poll = store_.events_since(cursor);
      if (poll.gone) {
        gone(cursor);
        return;
      }
      for (const auto& ev : poll.events) {
        cursor = ev.rv;
        if (ev.gr != type->gr()) continue;
        const bool now_matches = f.matches(*type, *ev.obj);
        const bool was_matching = ev.prev && f.matches(*type, *ev.prev);
        bool ok = true;
        if (ev.type == EventType::kAdded) {
          if (now_matches) ok = emit("ADDED", *ev.obj);
        } else if (ev.type == EventType::kDeleted) {
          if (was_matching) ok = emit("DELETED", *ev.obj);
        } else if (now_matches && was_matching) {
          ok = emit("MODIFIED", *ev.obj);
        } else if (now_matches) {
          ok = emit("ADDED", *ev.obj);
        } else if (was_matching) {
          // cacheWatcher.convertToWatchEvent (apiserver/pkg/storage/cacher/cache_watcher.go): an
          // object that stops matching leaves as a DELETED event with its previous (matching)
          // content, at the event's resourceVersion.
          json last = *ev.prev;
          last["metadata"]["resourceVersion"] = std::to_string(ev.rv);
          ok = emit("DELETED", last);
        }
        if (!ok) return;
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline || store_.closed() || faults_.drop_watches_generation.load() != drop_gen) return;
      if (bookmarks && now - last_bookmark >= opts_.bookmark_interval) {
        last_bookmark = now;
        if (!bookmark(cursor, false)) return;
      }
      // Wake at least every 200 ms to notice dropped clients and fault injection.
      const auto wake = std::min({deadline, last_bookmark + opts_.bookmark_interval,
                                  now + std::chrono::milliseconds(200)});
      store_.wait_past(cursor, wake);
      if (!write("")) return;  // a zero-length probe: false once the peer is gone
    }
  };
  return r;
}

// --- discovery --------------------------------------------------------------

Response ApiServer::discovery(const Request& req, bool* handled) {
  *handled = true;
  const auto types = registry_.all();
  auto resource_list = [&](const std::string& group, const std::string& version) {
    json resources = json::array();
    for (const auto& t : types) {
      if (t->group != group || t->version != version) continue;
      json r{{"name", t->resource}, {"singularName", t->singular}, {"namespaced", t->namespaced},
             {"kind", t->kind}, {"verbs", t->verbs}};
      if (!t->short_names.empty()) r["shortNames"] = t->short_names;
      if (!t->categories.empty()) r["categories"] = t->categories;
      resources.push_back(r);
      for (const auto& s : t->subresources) {
        json verbs = s == "token" ? json::array({"create"})
                     : s == "log" ? json::array({"get"})
                     : s == "finalize" ? json::array({"update"})
                                       : json::array({"get", "patch", "update"});
        json sub{{"name", t->resource + "/" + s}, {"singularName", ""}, {"namespaced", t->namespaced},
                 {"kind", s == "scale" ? "Scale" : s == "token" ? "TokenRequest" : t->kind}, {"verbs", verbs}};
        // A subresource of another kind names its group and version: client-go's scale client
        // (discoveryScaleResolver.ScaleForResource) reads autoscaling/v1 from here.
        if (s == "scale") {
          sub["group"] = "autoscaling";
          sub["version"] = "v1";
        } else if (s == "token") {
          sub["group"] = "authentication.k8s.io";
          sub["version"] = "v1";
        }
        resources.push_back(sub);
      }
    }
    return json{{"kind", "APIResourceList"}, {"apiVersion", "v1"},
                {"groupVersion", group.empty() ? version : group + "/" + version}, {"resources", resources}};
  };
  if (req.path == "/api" || req.path == "/api/")
    return json_response(200, {{"kind", "APIVersions"}, {"versions", {"v1"}},
                               {"serverAddressByClientCIDRs",
                                {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", opts_.server_address}}}}});
  if (req.path == "/api/v1") return json_response(200, resource_list("", "v1"));
  if (req.path == "/openapi/v3" || req.path == "/openapi/v3/") return json_response(200, openapi_v3_index(registry_));
  if (req.path == "/openapi/v2") {
    const json doc = openapi_v2_document(registry_);
    if (req.header("accept").find("application/com.github.proto-openapi.spec.v2") == std::string::npos)
      return json_response(200, doc);
    Response r;
    r.content_type = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";
    r.body = openapi_v2_protobuf(doc);
    return r;
  }
  if (req.path.starts_with("/openapi/v3/")) {
    if (auto doc = openapi_v3_document(registry_, req.path.substr(12))) return json_response(200, *doc);
    return status_response({404, "NotFound", "the server could not find the requested resource"});
  }
  if (req.path == "/apis" || req.path == "/apis/") {
    json groups = json::array();
    std::map<std::string, std::vector<std::string>> versions;
    std::vector<std::string> order;
    for (const auto& t : types) {
      if (t->group.empty()) continue;
      auto& vs = versions[t->group];
      if (vs.empty()) order.push_back(t->group);
      if (std::find(vs.begin(), vs.end(), t->version) == vs.end()) vs.push_back(t->version);
    }
    for (const auto& g : order) {
      json vs = json::array();
      for (const auto& v : versions[g]) vs.push_back({{"groupVersion", g + "/" + v}, {"version", v}});
      groups.push_back({{"name", g}, {"versions", vs}, {"preferredVersion", vs[0]}});
    }
    return json_response(200, {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", groups}});
  }
  const auto seg = split(req.path, '/');
  if (seg.size() == 2 && seg[0] == "apis") {
    json vs = json::array();
    for (const auto& t : types)
      if (t->group == seg[1]) {
        json v{{"groupVersion", t->group + "/" + t->version}, {"version", t->version}};
        if (std::find(vs.begin(), vs.end(), v) == vs.end()) vs.push_back(v);
      }
    if (vs.empty()) return status_response({404, "NotFound", "the server could not find the requested resource"});
    return json_response(200, {{"kind", "APIGroup"}, {"apiVersion", "v1"}, {"name", seg[1]}, {"versions", vs},
                               {"preferredVersion", vs[0]}});
  }
  if (seg.size() == 3 && seg[0] == "apis") {
    json list = resource_list(seg[1], seg[2]);
    if (list["resources"].empty())
      return status_response({404, "NotFound", "the server could not find the requested resource"});
    return json_response(200, list);
  }
  *handled = false;
  return {};
}

// --- reviews and tokens -------------------------------------------------------

Response ApiServer::review(const Target& t, const json& body, const UserInfo& user) {
  json out = body;
  out["apiVersion"] = t.type->api_version();
  out["kind"] = t.type->kind;
  const json spec = body.value("spec", json::object());
  if (t.type->resource == "tokenreviews") {
    auto u = authenticate_token(spec.value("token", ""));
    out["status"] = u ? json{{"authenticated", true}, {"user", u->to_json()}, {"audiences", spec.value("audiences", json::array())}}
                      : json{{"authenticated", false}, {"error", "invalid bearer token"}};
    return json_response(201, out);
  }
  if (t.type->resource == "selfsubjectreviews") {
    out["status"] = {{"userInfo", user.to_json()}};
    return json_response(201, out);
  }
  UserInfo subject = user;
  if (t.type->resource != "selfsubjectaccessreviews") {
    subject.username = spec.value("user", "");
    subject.uid = spec.value("uid", "");
    subject.groups = spec.value("groups", std::vector<std::string>{});
  }
  bool allowed = false;
  if (spec.contains("resourceAttributes")) {
    const json ra = spec["resourceAttributes"];
    std::string ns = ra.value("namespace", "");
    if (t.type->resource == "localsubjectaccessreviews") ns = t.ns;
    allowed = !opts_.authorize ||
              authorized(subject, ra.value("verb", ""), ra.value("group", ""), ra.value("resource", ""),
                         ra.value("subresource", ""), ns, ra.value("name", ""), "");
  } else if (spec.contains("nonResourceAttributes")) {
    const json na = spec["nonResourceAttributes"];
    allowed = !opts_.authorize || authorized(subject, na.value("verb", ""), "", "", "", "", "", na.value("path", "/"));
  }
  if (!opts_.authorize) allowed = true;
  else if (std::find(subject.groups.begin(), subject.groups.end(), "system:masters") != subject.groups.end())
    allowed = true;
  out["status"] = {{"allowed", allowed}};
  if (!allowed) out["status"]["reason"] = "no RBAC policy matched";
  return json_response(201, out);
}

Response ApiServer::create_token(const Target& t, const json& body) {
  auto sa = store_.get("/serviceaccounts", t.ns, t.name);
  if (!sa) return status_response(not_found(*t.type, t.name));
  const std::string token = mint_service_account_token(t.ns, t.name, (*sa)["metadata"].value("uid", ""));
  json out{{"kind", "TokenRequest"}, {"apiVersion", "authentication.k8s.io/v1"},
           {"metadata", {{"name", t.name}, {"namespace", t.ns}, {"creationTimestamp", nullptr}}},
           {"spec", body.value("spec", json::object())},
           {"status", {{"token", token}, {"expirationTimestamp",
                                          bo::format_rfc3339(std::chrono::system_clock::now() + std::chrono::hours(1))}}}};
  return json_response(201, out);
}

// --- admission: built-in validation and custom-resource schemas ---------------

ApiResult<void> ApiServer::check_namespace(const ResourceType& type, const std::string& ns, bool creating) const {
  if (!type.namespaced) return {};
  auto nsobj = store_.get("/namespaces", "", ns);
  if (!nsobj)
    return std::unexpected(ApiError{404, "NotFound", "namespaces \"" + ns + "\" not found",
                                    json{{"name", ns}, {"kind", "namespaces"}}});
  if (creating && (*nsobj)["metadata"].contains("deletionTimestamp"))
    return std::unexpected(ApiError{403, "Forbidden",
                                    type.resource + " \"\" is forbidden: unable to create new content in namespace " +
                                        ns + " because it is being terminated",
                                    json{{"causes", {{{"reason", "NamespaceTerminating"},
                                                      {"message", "namespace " + ns + " is being terminated"},
                                                      {"field", "metadata.namespace"}}}}}});
  return {};
}

ApiResult<void> ApiServer::admit(const ResourceType& type, const std::string& op, json& obj, const json* old,
                                 const CallContext& ctx) {
  const std::string name = obj["metadata"].value("name", "");
  // Decoding applies the scheme's defaults before anything else sees the object.
  if (!type.custom) apply_builtin_defaults(type.gr(), obj);
  // ValidateObjectMeta (labels, annotations) comes first in every kind's validation.
  std::vector<FieldError> errs = validate_object_meta(type.gr(), obj);
  if (type.custom) {
    std::vector<std::string> unknown;
    prune(obj, type.schema, &unknown);
    if (!unknown.empty()) {
      if (ctx.field_validation == "Strict") {
        std::string msg = type.kind + " in version \"" + type.version + "\" cannot be handled as a " + type.kind +
                          ": strict decoding error: ";  // transformDecodeError, as for built-in kinds
        for (size_t i = 0; i < unknown.size(); ++i)
          msg += (i ? ", " : "") + std::string("unknown field \"") + unknown[i] + "\"";
        return std::unexpected(bad_request(msg));
      }
      if (ctx.field_validation == "Warn" && ctx.warnings)
        for (const auto& u : unknown) ctx.warnings->push_back("unknown field \\\"" + u + "\\\"");
    }
    apply_defaults(obj, type.schema);
    auto schema_errs = validate_schema(obj, type.schema);
    if (schema_errs.empty()) schema_errs = validate_cel(obj, old, type.schema);
    for (auto& e : schema_errs) errs.push_back(std::move(e));
  }
  const json& spec = obj.contains("spec") ? obj["spec"] : json();
  if (type.gr() == "/secrets") {
    if (obj.contains("stringData") && obj["stringData"].is_object()) {
      for (const auto& [k, v] : obj["stringData"].items())
        if (v.is_string()) obj["data"][k] = bo::base64_encode(v.get<std::string>());
      obj.erase("stringData");
    }
    if (!obj.contains("type")) obj["type"] = "Opaque";
    const json data = obj.value("data", json::object());
    for (const auto& [k, v] : data.items())
      if (!v.is_string() || !bo::base64_decode(v.get<std::string>()))
        errs.push_back({"FieldValueInvalid", "data[" + k + "]",
                        "data[" + k + "]: Invalid value: \"<secret contents redacted>\": illegal base64 data"});
    if (old && old->value("type", "Opaque") != obj.value("type", "Opaque"))
      errs.push_back({"FieldValueInvalid", "type", "type: Invalid value: " + obj["type"].dump() + ": field is immutable"});
  } else if (type.gr() == "/pods") {
    if (!spec.is_object() || spec.value("containers", json::array()).empty())
      errs.push_back({"FieldValueRequired", "spec.containers", "spec.containers: Required value"});
    else
      for (size_t i = 0; i < spec["containers"].size(); ++i) {
        const auto& c = spec["containers"][i];
        const std::string f = "spec.containers[" + std::to_string(i) + "]";
        if (c.value("name", "").empty()) errs.push_back({"FieldValueRequired", f + ".name", f + ".name: Required value"});
        if (c.value("image", "").empty()) errs.push_back({"FieldValueRequired", f + ".image", f + ".image: Required value"});
      }
    if (op == "CREATE" && obj["spec"].is_object() && obj["spec"].value("serviceAccountName", "").empty()) {
      // The ServiceAccount admission plugin; the deprecated serviceAccount follows it.
      obj["spec"]["serviceAccountName"] = "default";
      obj["spec"]["serviceAccount"] = "default";
    }
  } else if (type.gr() == "policy/poddisruptionbudgets") {
    // pkg/apis/policy/validation ValidatePodDisruptionBudgetSpec: one of the two, each an
    // int >= 0 or a percentage.
    if (spec.is_object() && spec.contains("minAvailable") && spec.contains("maxUnavailable"))
      errs.push_back({"FieldValueInvalid", "spec",
                      "spec: Invalid value: " + spec.dump() + ": minAvailable and maxUnavailable cannot be both set"});
    for (const char* f : {"minAvailable", "maxUnavailable"}) {
      if (!spec.is_object() || !spec.contains(f)) continue;
      const json& v = spec[f];
      const std::string path = std::string("spec.") + f;
      if (v.is_number_integer() && v.get<long long>() < 0)
        errs.push_back({"FieldValueInvalid", path, path + ": Invalid value: " + v.dump() + ": must be greater than or equal to 0"});
      else if (v.is_string()) {
        const std::string t = v.get<std::string>();
        const bool pct = !t.empty() && t.back() == '%' && t.size() > 1 &&
                         std::all_of(t.begin(), t.end() - 1, [](char c) { return c >= '0' && c <= '9'; });
        if (!pct)
          errs.push_back({"FieldValueInvalid", path, path + ": Invalid value: " + v.dump() + ": a valid percent string must be a numeric string followed by an ending '%'"});
        else if (t.size() > 5 || std::stoi(t.substr(0, t.size() - 1)) > 100)
          errs.push_back({"FieldValueInvalid", path, path + ": Invalid value: " + v.dump() + ": must not be greater than 100%"});
      } else if (!v.is_number_integer()) {
        errs.push_back({"FieldValueInvalid", path, path + ": Invalid value: " + v.dump() + ": must be an integer or a percentage"});
      }
    }
  } else if (type.gr() == "batch/jobs") {
    if (!spec.is_object() || !spec.contains("template")) {
      errs.push_back({"FieldValueRequired", "spec.template", "spec.template: Required value"});
    } else {
      // Defaulting made an unset restartPolicy "Always", which a Job refuses (ValidateJobSpec).
      const json rp = spec["template"].value("spec", json::object()).value("restartPolicy", json(""));
      if (rp != "Never" && rp != "OnFailure")
        errs.push_back({"FieldValueNotSupported", "spec.template.spec.restartPolicy",
                        "spec.template.spec.restartPolicy: Unsupported value: " + rp.dump() +
                            ": supported values: \"OnFailure\", \"Never\""});
      if (spec["template"].value("spec", json::object()).value("containers", json::array()).empty())
        errs.push_back({"FieldValueRequired", "spec.template.spec.containers",
                        "spec.template.spec.containers: Required value"});
    }
    if (errs.empty() && op == "CREATE" && obj["spec"].value("manualSelector", false) != true) {
      // pkg/registry/batch/job/strategy.go generateSelector (PrepareForCreate).
      auto& s = obj["spec"];
      const std::string uid = obj["metadata"].value("uid", "");
      const std::string jn = obj["metadata"].value("name", "");
      auto& labels = s["template"]["metadata"]["labels"];
      for (const char* k : {"job-name", "batch.kubernetes.io/job-name"})
        if (!labels.contains(k)) labels[k] = jn;
      for (const char* k : {"controller-uid", "batch.kubernetes.io/controller-uid"})
        if (!labels.contains(k)) labels[k] = uid;
      if (!s.contains("selector") || !s["selector"].is_object()) s["selector"] = json::object();
      if (!s["selector"].contains("matchLabels") || !s["selector"]["matchLabels"].is_object())
        s["selector"]["matchLabels"] = json::object();
      if (!s["selector"]["matchLabels"].contains("batch.kubernetes.io/controller-uid"))
        s["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] = uid;
      // Validation runs after PrepareForCreate, so the generated job-name labels are checked with the
      // template's (ValidatePodTemplateSpec: spec.template.labels): a Job's name is limited to a label
      // value's 63 characters. Both labels give the same message, which ToAggregate reports once.
      for (auto& e : validate_labels(json{{"batch.kubernetes.io/job-name", jn}}, "spec.template.labels"))
        errs.push_back(std::move(e));
    }
    if (old && old->contains("spec") && spec.is_object()) {
      for (const char* f : {"template", "selector", "completions"}) {
        if (old->at("spec").value(f, json()) != spec.value(f, json()))
          errs.push_back({"FieldValueInvalid", std::string("spec.") + f,
                          std::string("spec.") + f + ": Invalid value: " + spec.value(f, json()).dump().substr(0, 80) +
                              ": field is immutable"});
      }
    }
  } else if (type.group == "apps") {
    if (!spec.is_object() || !spec.contains("selector"))
      errs.push_back({"FieldValueRequired", "spec.selector", "spec.selector: Required value"});
    else if (spec.contains("template")) {
      auto sel = LabelSelector::from_json(spec["selector"]);
      const auto labels = spec["template"].value("metadata", json::object()).value("labels", json::object());
      if (!sel || sel->empty() || !sel->matches(labels))
        errs.push_back({"FieldValueInvalid", "spec.template.metadata.labels",
                        "spec.template.metadata.labels: Invalid value: " + labels.dump() +
                            ": `selector` does not match template `labels`"});
    }
  } else if (type.gr() == "/namespaces") {
    if (op == "CREATE") {
      obj["spec"]["finalizers"] = json::array({"kubernetes"});
      obj["status"] = {{"phase", "Active"}};
      obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
    }
    if (!is_dns_label(name))
      errs.push_back({"FieldValueInvalid", "metadata.name",
                      "metadata.name: Invalid value: \"" + name + "\": a lowercase RFC 1123 label must consist of "
                      "lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"});
  } else if (type.gr() == "apiextensions.k8s.io/customresourcedefinitions") {
    const json names = spec.value("names", json::object());
    const std::string group = spec.value("group", "");
    const std::string plural = names.value("plural", "");
    if (group.empty()) errs.push_back({"FieldValueRequired", "spec.group", "spec.group: Required value"});
    if (plural.empty()) errs.push_back({"FieldValueRequired", "spec.names.plural", "spec.names.plural: Required value"});
    if (names.value("kind", "").empty())
      errs.push_back({"FieldValueRequired", "spec.names.kind", "spec.names.kind: Required value"});
    if (!group.empty() && !plural.empty() && name != plural + "." + group)
      errs.push_back({"FieldValueInvalid", "metadata.name",
                      "metadata.name: Invalid value: \"" + name + "\": must be spec.names.plural+\".\"+spec.group"});
    const std::string scope = spec.value("scope", "");
    if (scope != "Namespaced" && scope != "Cluster")
      errs.push_back({"FieldValueNotSupported", "spec.scope",
                      "spec.scope: Unsupported value: \"" + scope + "\": supported values: \"Cluster\", \"Namespaced\""});
    int storage = 0;
    const json versions = spec.value("versions", json::array());
    if (versions.empty()) errs.push_back({"FieldValueRequired", "spec.versions", "spec.versions: Required value"});
    for (size_t i = 0; i < versions.size(); ++i) {
      const auto& v = versions[i];
      storage += v.value("storage", false) ? 1 : 0;
      const std::string f = "spec.versions[" + std::to_string(i) + "].schema.openAPIV3Schema";
      const json s = v.value("schema", json::object()).value("openAPIV3Schema", json());
      if (!s.is_object()) errs.push_back({"FieldValueRequired", f, f + ": Required value: schemas are required"});
      else if (s.value("type", "") != "object")
        errs.push_back({"FieldValueInvalid", f + ".type", f + ".type: Invalid value: " + s.value("type", json("")).dump() +
                                                            ": must be object at the root"});
    }
    if (!versions.empty() && storage != 1)
      errs.push_back({"FieldValueInvalid", "spec.versions",
                      "spec.versions: Invalid value: " + versions.dump().substr(0, 60) +
                          ": must have exactly one version marked as storage version"});
    if (errs.empty()) {
      json st = obj.value("status", json::object());
      st["acceptedNames"] = names;
      if (!st["acceptedNames"].contains("singular")) {
        std::string singular = names.value("kind", "");
        std::transform(singular.begin(), singular.end(), singular.begin(), ::tolower);
        st["acceptedNames"]["singular"] = singular;
      }
      if (!st["acceptedNames"].contains("listKind")) st["acceptedNames"]["listKind"] = names.value("kind", "") + "List";
      const std::string ts = now_str();
      st["conditions"] = json::array(
          {{{"type", "NamesAccepted"}, {"status", "True"}, {"reason", "NoConflicts"},
            {"message", "no conflicts found"}, {"lastTransitionTime", ts}},
           {{"type", "Established"}, {"status", "True"}, {"reason", "InitialNamesAccepted"},
            {"message", "the initial names have been accepted"}, {"lastTransitionTime", ts}}});
      json stored = json::array();
      for (const auto& v : versions)
        if (v.value("storage", false)) stored.push_back(v.value("name", ""));
      st["storedVersions"] = stored;
      if (old && old->contains("status")) {
        for (const auto& sv : old->at("status").value("storedVersions", json::array()))
          if (std::find(stored.begin(), stored.end(), sv) == stored.end()) st["storedVersions"].push_back(sv);
        // Keep transition times of unchanged conditions.
        st["conditions"] = old->at("status").value("conditions", st["conditions"]);
      }
      obj["status"] = st;
    }
  }
  // After the kind's own normalisation (a Secret's stringData is data by now, as decoding makes it).
  if (old)
    for (auto& e : validate_immutable_update(type.gr(), obj, *old)) errs.push_back(std::move(e));
  if (!errs.empty()) return std::unexpected(invalid(type, name, errs));
  // Validating admission plugins run after field validation (store.go createValidation).
  if (opts_.authorize) {
    auto authorize = [&](const std::string& verb, const std::string& group, const std::string& resource,
                         const std::string& sub, const std::string& ns, const std::string& n) {
      const bool ok = authorized(ctx.user, verb, group, resource, sub, ns, n, "");
      audit(ctx.user, verb, group, resource, sub, ns, n, "", ok);
      return ok;
    };
    if (auto ok = admit_owner_references(registry_, type, op, "", obj, old, authorize); !ok) return ok;
  }
  if (auto ok = admit_pod_security(store_, type, op, obj, old, ctx.warnings); !ok) return ok;
  return {};
}

// --- the write path -----------------------------------------------------------

ApiResult<json> ApiServer::create(const ResourceType& type, const std::string& ns, json obj, const CallContext& ctx) {
  if (auto ok = decode_builtin(type, obj, ctx); !ok) return std::unexpected(ok.error());
  if (obj.contains("apiVersion") && obj["apiVersion"] != type.api_version())
    return std::unexpected(bad_request("the API version in the data (" + obj["apiVersion"].dump() +
                                       ") does not match the expected API version (" + type.api_version() + ")"));
  if (obj.contains("kind") && obj["kind"] != type.kind)
    return std::unexpected(bad_request("the kind in the data (" + obj["kind"].dump() +
                                       ") does not match the expected kind (" + type.kind + ")"));
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) obj["metadata"] = json::object();
  json& meta = obj["metadata"];
  if (type.namespaced) {
    const std::string body_ns = meta.value("namespace", "");
    if (!body_ns.empty() && !ns.empty() && body_ns != ns)
      return std::unexpected(bad_request("the namespace of the provided object does not match the namespace sent on the request"));
    meta["namespace"] = ns.empty() ? body_ns : ns;
    if (meta["namespace"] == "") return std::unexpected(bad_request("a namespace is required for " + type.resource));
  } else {
    meta.erase("namespace");
  }
  if (meta.value("name", "").empty()) {
    const std::string gen = meta.value("generateName", "");
    if (gen.empty())
      return std::unexpected(invalid(type, "", {{"FieldValueRequired", "metadata.name",
                                                 "metadata.name: Required value: name or generateName is required"}}));
    // apiserver/pkg/storage/names/generate.go SimpleNameGenerator: the base is cut to
    // maxGeneratedNameLength (63 - 5) before the 5 random characters, so a Job of 63
    // characters still gets pods whose names fit a label value.
    meta["name"] = gen.substr(0, std::min<size_t>(gen.size(), 58)) + random_suffix();
  }
  const std::string name = meta["name"];
  if (!is_dns_subdomain(name) && type.gr() != "/namespaces")
    return std::unexpected(invalid(type, name, {{"FieldValueInvalid", "metadata.name",
                                                 "metadata.name: Invalid value: \"" + name +
                                                     "\": a lowercase RFC 1123 subdomain must consist of lower case "
                                                     "alphanumeric characters, '-' or '.', and must start and end with "
                                                     "an alphanumeric character"}}));
  if (auto ok = check_namespace(type, meta.value("namespace", ""), true); !ok) return std::unexpected(ok.error());
  meta["uid"] = new_uid();
  meta["creationTimestamp"] = now_str();
  const uint64_t given_rv = parse_rv(meta.value("resourceVersion", ""));
  meta.erase("resourceVersion");
  meta.erase("deletionTimestamp");
  meta.erase("deletionGracePeriodSeconds");
  if (!ctx.applying) meta.erase("managedFields");
  meta.erase("selfLink");
  if (type.generation) meta["generation"] = 1;
  else meta.erase("generation");
  if (type.has_subresource("status") && type.gr() != "/namespaces") obj.erase("status");
  obj["apiVersion"] = type.api_version();
  obj["kind"] = type.kind;
  const bool hooks = webhooks_apply(type, ctx);
  AdmissionRequest areq{&type, "", meta.value("namespace", ""), name, "CREATE", nullptr, ctx.user, ctx.dry_run, "", ""};
  if (hooks) {
    auto mutated = call_mutating_webhooks(store_, areq, std::move(obj));
    if (!mutated) return std::unexpected(mutated.error());
    obj = std::move(*mutated);
  }
  if (auto ok = admit(type, "CREATE", obj, nullptr, ctx); !ok) return std::unexpected(ok.error());
  if (hooks) {
    if (auto ok = call_validating_admission_policies(store_, areq, obj); !ok) return std::unexpected(ok.error());
    if (auto ok = call_validating_webhooks(store_, areq, obj); !ok) return std::unexpected(ok.error());
  }
  if (!ctx.applying) {
    // The creator owns every field it set (an Update in managedFields).
    auto entries = fields::record_update({}, json::object(), obj, ctx.field_manager, "", type.api_version(),
                                         now_str(), type_info(type));
    if (!entries.empty()) obj["metadata"]["managedFields"] = fields::render_entries(entries);
  }
  // A Service's cluster IP is allocated by its storage, after the field manager: nobody owns it.
  std::unique_lock<std::mutex> ip_lock;
  if (type.gr() == "/services") ip_lock = allocate_cluster_ip(obj);
  if (ctx.dry_run) return obj;
  // storage/etcd3 store.Create refuses an object that still carries a resourceVersion; the handler
  // answers an error that is not a Status as 500 with an empty reason (responsewriters.ErrorToAPIStatus).
  if (given_rv != 0 && given_rv != UINT64_MAX)
    return std::unexpected(ApiError{500, "", "resourceVersion should not be set on objects to be created"});
  auto w = store_.create(type.gr(), std::move(obj));
  if (w.outcome == Store::Outcome::kExists) return std::unexpected(already_exists(type, name));
  on_committed(type, *w.obj, false);
  return with_type(*w.obj, type);
}

ApiResult<json> ApiServer::update(const ResourceType& type, const std::string& ns, const std::string& name, json obj,
                                  const CallContext& ctx, const std::string& subresource) {
  if (!obj.contains("metadata") || !obj["metadata"].is_object())
    return std::unexpected(bad_request("metadata is required"));
  // Through /scale the body is an autoscaling/v1 Scale (scaleUpdatedObjectInfo.UpdatedObject); the
  // parent changes its replicas only.
  const bool scaling = subresource == "scale";
  const auto paths = scaling ? scale_paths(store_, type) : std::nullopt;
  if (scaling && !paths) return std::unexpected(ApiError{404, "NotFound", "the server could not find the requested resource"});
  if (scaling) {
    if (obj.contains("apiVersion") && obj["apiVersion"] != "autoscaling/v1")
      return std::unexpected(bad_request("the API version in the data (" + obj["apiVersion"].dump() +
                                         ") does not match the expected API version (autoscaling/v1)"));
    if (obj.contains("kind") && obj["kind"] != "Scale")
      return std::unexpected(bad_request("the kind in the data (" + obj["kind"].dump() +
                                         ") does not match the expected kind (Scale)"));
  } else if (auto ok = decode_builtin(type, obj, ctx); !ok) {
    return std::unexpected(ok.error());
  }
  if (obj["metadata"].value("name", name) != name)
    return std::unexpected(bad_request("the name of the object (" + obj["metadata"].value("name", "") +
                                       ") does not match the name on the URL (" + name + ")"));
  // rest.EnsureObjectNamespaceMatchesRequestNamespace: an empty namespace takes the request's.
  if (type.namespaced && !obj["metadata"].value("namespace", "").empty() && obj["metadata"].value("namespace", "") != ns)
    return std::unexpected(bad_request("the namespace of the provided object does not match the namespace sent on the request"));
  if (!scaling && obj.contains("apiVersion") && obj["apiVersion"] != type.api_version())
    return std::unexpected(bad_request("the API version in the data (" + obj["apiVersion"].dump() +
                                       ") does not match the expected API version (" + type.api_version() + ")"));
  const uint64_t want_rv = parse_rv(obj["metadata"].value("resourceVersion", ""));
  if (want_rv == UINT64_MAX)
    return std::unexpected(invalid(type, name, {{"FieldValueInvalid", "metadata.resourceVersion",
                                                 "metadata.resourceVersion: Invalid value: must be a number"}}));
  auto cur = store_.get(type.gr(), ns, name);
  if (!cur) return std::unexpected(not_found(type, name));
  const json& old = *cur;
  // Store.Update (apiserver/pkg/registry/generic/registry/store.go): without a resourceVersion
  // only a strategy that AllowUnconditionalUpdate()s updates; custom resources
  // (apiextensions-apiserver/pkg/registry/customresource/strategy.go) and CRDs do not, and the
  // error names the resource as its kind.
  if (want_rv == 0 && (type.custom || type.gr() == "apiextensions.k8s.io/customresourcedefinitions"))
    return std::unexpected(invalid_kind(type.group, type.resource, name,
                                        {{"FieldValueInvalid", "metadata.resourceVersion",
                                          "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"}}));
  if (want_rv != 0 && std::to_string(want_rv) != old["metadata"].value("resourceVersion", ""))
    return std::unexpected(conflict(type, name, "the object has been modified; please apply your changes to the "
                                                "latest version and try again"));
  json next;
  if (scaling) {
    const auto replicas = scale_replicas(obj);
    if (!replicas) return std::unexpected(bad_request("Scale in version \"v1\" cannot be handled as a Scale: " + replicas.error()));
    // The Scale's uid is a precondition (resourceVersion matching is the store's, above).
    const std::string uid = obj["metadata"].value("uid", "");
    if (!uid.empty() && uid != old["metadata"].value("uid", ""))
      return std::unexpected(ApiError{409, "Conflict",
                                      "Operation cannot be fulfilled on " + type.resource + "/scale" +
                                          (type.group.empty() ? "" : "." + type.group) + " \"" + name +
                                          "\": Precondition failed: UID in precondition: " + uid +
                                          ", UID in object meta: " + old["metadata"].value("uid", ""),
                                      json{{"name", name}, {"group", type.group}, {"kind", type.resource + "/scale"}}});
    next = with_replicas(old, *replicas, *paths);
  } else if (subresource == "status") {
    // The status endpoint changes status only.
    next = old;
    if (obj.contains("status")) next["status"] = obj["status"];
    else next.erase("status");
  } else if (subresource.empty() || subresource == "finalize") {
    next = std::move(obj);
    json& m = next["metadata"];
    for (const char* k : {"uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"}) {
      if (old["metadata"].contains(k)) m[k] = old["metadata"][k];
      else m.erase(k);
    }
    m["name"] = name;
    if (type.namespaced) m["namespace"] = ns;
    // Without managedFields in the body the object keeps its own; an explicit list replaces them.
    if (!m.contains("managedFields") || !m["managedFields"].is_array()) {
      if (old["metadata"].contains("managedFields")) m["managedFields"] = old["metadata"]["managedFields"];
      else m.erase("managedFields");
    }
    if (type.has_subresource("status") && type.gr() != "/namespaces") {
      if (old.contains("status")) next["status"] = old["status"];
      else next.erase("status");
    }
    if (subresource.empty() && type.gr() == "/namespaces") {
      next["spec"] = old.value("spec", json::object());
      next["status"] = old.value("status", json::object());
    }
    if (old["metadata"].contains("deletionTimestamp")) {
      const auto old_f = old["metadata"].value("finalizers", json::array());
      for (const auto& f : next["metadata"].value("finalizers", json::array()))
        if (std::find(old_f.begin(), old_f.end(), f) == old_f.end())
          return std::unexpected(invalid(type, name, {{"FieldValueForbidden", "metadata.finalizers",
                                                       "metadata.finalizers: Forbidden: no new finalizers can be added "
                                                       "if the object is being deleted, found new finalizers " + f.dump()}}));
    }
  } else {
    return std::unexpected(ApiError{404, "NotFound", "the server could not find the requested resource"});
  }
  next["apiVersion"] = type.api_version();
  next["kind"] = type.kind;
  next["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"];
  const bool hooks = webhooks_apply(type, ctx);
  // Admission of a /scale write sees Scales, new and old (toScaleUpdateValidation), of kind autoscaling/v1 Scale.
  auto view = [&](const json& parent) { return scaling ? scale_of(parent, *paths).value_or(json()) : parent; };
  const json old_scale = scaling ? view(old) : json();
  AdmissionRequest areq{&type, subresource, ns, name, "UPDATE", scaling ? &old_scale : &old, ctx.user, ctx.dry_run,
                        scaling ? "autoscaling/v1" : "", scaling ? "Scale" : ""};
  if (hooks) {
    auto mutated = call_mutating_webhooks(store_, areq, view(next));
    if (!mutated) return std::unexpected(mutated.error());
    if (!scaling) {
      next = std::move(*mutated);
    } else {
      const auto replicas = scale_replicas(*mutated);
      if (!replicas) return std::unexpected(bad_request("Scale in version \"v1\" cannot be handled as a Scale: " + replicas.error()));
      next = with_replicas(next, *replicas, *paths);
    }
  }
  if (scaling)
    if (auto errs = validate_scale(view(next)); !errs.empty())
      return std::unexpected(invalid_kind("autoscaling", "Scale", name, errs));
  if (type.gr() == "/services" && subresource.empty()) keep_allocated_ips(old, next);
  if (auto ok = admit(type, "UPDATE", next, &old, ctx); !ok) return std::unexpected(ok.error());
  if (hooks && next != old) {
    const json next_view = view(next);
    if (auto ok = call_validating_admission_policies(store_, areq, next_view); !ok) return std::unexpected(ok.error());
    if (auto ok = call_validating_webhooks(store_, areq, next_view); !ok) return std::unexpected(ok.error());
  }
  if (!ctx.applying) {
    json& nm = next["metadata"];
    auto entries = fields::record_update(fields::parse_entries(nm.value("managedFields", json::array())), old, next,
                                         ctx.field_manager, subresource, type.api_version(), now_str(), type_info(type));
    if (entries.empty()) nm.erase("managedFields");
    else nm["managedFields"] = fields::render_entries(entries);
  }
  if (type.generation && spec_part(next) != spec_part(old))
    next["metadata"]["generation"] = old["metadata"].value("generation", 0) + 1;
  // An update that changes nothing is not written: no new resourceVersion, no event.
  if (next == old) return with_type(old, type);
  if (ctx.dry_run) return with_type(next, type);
  // Store.Update's shouldDeleteDuringUpdate: an update that removes the last finalizer of an
  // object being deleted with no grace left deletes it. A Pod in its grace period stays: the
  // kubelet's delete with grace 0 ends it. A Namespace goes once its spec.finalizers are gone too.
  const json& nm = next["metadata"];
  const bool no_finalizers_left = nm.value("finalizers", json::array()).empty();
  const bool finalized =
      nm.contains("deletionTimestamp") && no_finalizers_left &&
      (type.gr() == "/namespaces"
           ? next.value("spec", json::object()).value("finalizers", json::array()).empty()
           : !old["metadata"].value("finalizers", json::array()).empty() && nm.value("deletionGracePeriodSeconds", 0) == 0);
  const uint64_t cas = parse_rv(old["metadata"].value("resourceVersion", ""));
  if (finalized) {
    auto w = store_.remove(type.gr(), ns, name, cas);
    if (w.outcome == Store::Outcome::kConflict)
      return std::unexpected(conflict(type, name, "the object has been modified; please apply your changes to the latest version and try again"));
    if (w.outcome == Store::Outcome::kNotFound) return std::unexpected(not_found(type, name));
    on_committed(type, *w.obj, true);
    return with_type(*w.obj, type);
  }
  auto w = store_.update(type.gr(), std::move(next), cas);
  if (w.outcome == Store::Outcome::kConflict)
    return std::unexpected(conflict(type, name, "the object has been modified; please apply your changes to the latest version and try again"));
  if (w.outcome == Store::Outcome::kNotFound) return std::unexpected(not_found(type, name));
  on_committed(type, *w.obj, false);
  return with_type(*w.obj, type);
}

ApiResult<json> ApiServer::mutate(const ResourceType& type, const std::string& ns, const std::string& name,
                                  const std::function<bool(json&)>& fn, const std::string& subresource) {
  CallContext ctx = system_context();
  for (int attempt = 0; attempt < 32; ++attempt) {
    auto cur = store_.get(type.gr(), ns, name);
    if (!cur) return std::unexpected(not_found(type, name));
    json next = *cur;
    if (!fn(next)) return *cur;
    auto r = update(type, ns, name, std::move(next), ctx, subresource);
    if (r || r.error().reason != "Conflict") return r;
  }
  return std::unexpected(ApiError{409, "Conflict", "too many conflicts"});
}

ApiResult<json> ApiServer::remove(const ResourceType& type, const std::string& ns, const std::string& name,
                                  const json& options, const CallContext& ctx) {
  for (int attempt = 0;; ++attempt) {
    bool raced = false;
    auto r = remove_once(type, ns, name, options, ctx, raced);
    if (r || !raced || attempt == 31) return r;
  }
}

ApiResult<json> ApiServer::remove_once(const ResourceType& type, const std::string& ns, const std::string& name,
                                       const json& options, const CallContext& ctx, bool& raced) {
  auto cur = store_.get(type.gr(), ns, name);
  if (!cur) return std::unexpected(not_found(type, name));
  const json& old = *cur;
  if (auto pre = options.find("preconditions"); pre != options.end() && pre->is_object()) {
    if (pre->contains("uid") && (*pre)["uid"] != old["metadata"].value("uid", ""))
      return std::unexpected(conflict(type, name, "Precondition failed: UID in precondition: " +
                                                      (*pre)["uid"].get<std::string>() + ", UID in object meta: " +
                                                      old["metadata"].value("uid", "")));
    if (pre->contains("resourceVersion") && (*pre)["resourceVersion"] != old["metadata"].value("resourceVersion", ""))
      return std::unexpected(conflict(type, name, "Precondition failed: ResourceVersion in precondition: " +
                                                      (*pre)["resourceVersion"].get<std::string>() +
                                                      ", ResourceVersion in object meta: " +
                                                      old["metadata"].value("resourceVersion", "")));
  }
  // A Pod goes gracefully (pod_deletion.h): a running one is kept with deletionTimestamp and
  // deletionGracePeriodSeconds until its kubelet deletes it with grace 0. One already being
  // deleted that this request does not hurry is left as it is, finalizers included (store.go
  // Delete: pendingGraceful returns before anything is written or validated).
  std::optional<PodDeletion> graceful;
  if (type.gr() == "/pods") {
    const auto plan = plan_pod_deletion(old, options, pod_containers_running(old), std::chrono::system_clock::now());
    if (plan.kind == PodDeletion::Kind::kPending) return with_type(old, type);
    if (plan.kind == PodDeletion::Kind::kGraceful) graceful = plan;
  }
  if (webhooks_apply(type, ctx)) {
    AdmissionRequest areq{&type, "", ns, name, "DELETE", &old, ctx.user, ctx.dry_run, "", ""};
    if (auto ok = call_validating_admission_policies(store_, areq, json()); !ok) return std::unexpected(ok.error());
    if (auto ok = call_validating_webhooks(store_, areq, json()); !ok) return std::unexpected(ok.error());
  }
  std::string policy = options.value("propagationPolicy", "");
  if (policy.empty() && options.contains("orphanDependents"))
    policy = options["orphanDependents"].get<bool>() ? "Orphan" : "Background";
  if (policy.empty()) policy = type.gr() == "batch/jobs" ? "Orphan" : "Background";
  if (policy != "Orphan" && policy != "Background" && policy != "Foreground")
    return std::unexpected(invalid(type, name, {{"FieldValueNotSupported", "propagationPolicy",
                                                 "propagationPolicy: Unsupported value: \"" + policy +
                                                     "\": supported values: \"Foreground\", \"Background\", \"Orphan\""}}));
  json next = old;
  auto& meta = next["metadata"];
  json finalizers = meta.value("finalizers", json::array());
  auto add_finalizer = [&](const std::string& f) {
    if (std::find(finalizers.begin(), finalizers.end(), f) == finalizers.end()) finalizers.push_back(f);
  };
  const bool has_dependents = !store_.dependents(old["metadata"].value("uid", "")).empty();
  if (has_dependents && policy == "Orphan") add_finalizer("orphan");
  if (has_dependents && policy == "Foreground") add_finalizer("foregroundDeletion");
  if (type.gr() == "/namespaces") {
    next["status"]["phase"] = "Terminating";
  }
  const bool ns_pending = type.gr() == "/namespaces" && !next.value("spec", json::object()).value("finalizers", json::array()).empty();
  if (!finalizers.empty() || ns_pending || (graceful && graceful->grace > 0)) {
    meta["finalizers"] = finalizers;
    if (finalizers.empty()) meta.erase("finalizers");
    if (graceful) {
      // rest.BeforeDelete: deletionTimestamp is when the grace period ends; the first one bumps a generation.
      if (!meta.contains("deletionTimestamp") && meta.value("generation", 0) > 0)
        meta["generation"] = meta.value("generation", 0) + 1;
      meta["deletionTimestamp"] = graceful->deletion_timestamp;
      meta["deletionGracePeriodSeconds"] = graceful->grace;
    } else if (!meta.contains("deletionTimestamp")) {
      meta["deletionTimestamp"] = now_str();
      meta["deletionGracePeriodSeconds"] = 0;
      // registry/generic/registry/store.go updateForGracefulDeletionAndFinalizers (and
      // rest.BeforeDelete): setting deletionTimestamp bumps a non-zero generation.
      if (meta.value("generation", 0) > 0) meta["generation"] = meta.value("generation", 0) + 1;
    }
    // A dry run answers what the update would have stored (store.go Delete: dry-run returns `out`).
    if (ctx.dry_run) return with_type(next, type);
    if (next == old) return with_type(old, type);
    auto w = store_.update(type.gr(), std::move(next), parse_rv(old["metadata"].value("resourceVersion", "")));
    if (w.outcome == Store::Outcome::kConflict) {
      raced = true;
      return std::unexpected(conflict(type, name, "the object has been modified; please apply your changes to the latest version and try again"));
    }
    if (w.outcome == Store::Outcome::kNotFound) return std::unexpected(not_found(type, name));
    on_committed(type, *w.obj, false);
    return with_type(*w.obj, type);
  }
  if (ctx.dry_run) return with_type(old, type);
  auto w = store_.remove(type.gr(), ns, name, parse_rv(old["metadata"].value("resourceVersion", "")));
  if (w.outcome == Store::Outcome::kConflict) {
    raced = true;
    return std::unexpected(conflict(type, name, "the object has been modified; please apply your changes to the latest version and try again"));
  }
  if (w.outcome == Store::Outcome::kNotFound) return std::unexpected(not_found(type, name));
  on_committed(type, *w.obj, true);
  return with_type(*w.obj, type);
}

void ApiServer::on_committed(const ResourceType& type, const json& obj, bool deleted) {
  if (type.gr() == "apiextensions.k8s.io/customresourcedefinitions") {
    const std::string name = obj["metadata"].value("name", "");
    if (deleted) {
      // The CRD's custom resources go with it.
      const std::string gr = obj["spec"].value("group", "") + "/" + obj["spec"]["names"].value("plural", "");
      for (const auto& o : store_.list(gr, ""))
        store_.remove(gr, (*o)["metadata"].value("namespace", ""), (*o)["metadata"].value("name", ""), 0);
      registry_.set_crd(name, json());
    } else {
      registry_.set_crd(name, obj);
    }
  }
}

}  // namespace kl
