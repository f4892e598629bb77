#include "kube-local/admission.h"

#include <algorithm>

#include "common/encoding.h"
#include "kube-local/cel.h"
#include "kube-local/patch.h"
#include "kube/selector.h"
#include "kube/transport.h"

namespace kl {
namespace {

bool listed(const json& list, const std::string& v) {
  if (!list.is_array()) return false;
  return std::any_of(list.begin(), list.end(), [&](const json& x) { return x == "*" || x == v; });
}

bool rule_matches(const json& rule, const AdmissionRequest& r) {
  if (!listed(rule.value("operations", json::array()), r.operation)) return false;
  if (!listed(rule.value("apiGroups", json::array()), r.type->group)) return false;
  if (!listed(rule.value("apiVersions", json::array()), r.type->version)) return false;
  const std::string full = r.subresource.empty() ? r.type->resource : r.type->resource + "/" + r.subresource;
  bool res = false;
  for (const auto& x : rule.value("resources", json::array())) {
    const std::string s = x.is_string() ? x.get<std::string>() : "";
    if (s == full || (s == "*" && r.subresource.empty()) || s == "*/*" ||
        (!r.subresource.empty() && (s == "*/" + r.subresource || s == r.type->resource + "/*")))
      res = true;
  }
  if (!res) return false;
  const std::string scope = rule.value("scope", "*");
  if (scope == "Namespaced" && !r.type->namespaced) return false;
  if (scope == "Cluster" && r.type->namespaced) return false;
  return true;
}

bool selector_matches(const json& selector, const json& labels) {
  if (!selector.is_object() || selector.empty()) return true;
  auto sel = bo::kube::LabelSelector::from_json(selector);
  return sel && sel->matches(labels);
}

bool webhook_matches(const json& w, const AdmissionRequest& r, const json& object, const Store& store) {
  bool any = false;
  for (const auto& rule : w.value("rules", json::array())) any = any || rule_matches(rule, r);
  if (!any) return false;
  const json ns_sel = w.value("namespaceSelector", json::object());
  if (!ns_sel.empty()) {
    json ns_labels = json::object();
    if (r.type->namespaced) {
      if (auto ns = store.get("/namespaces", "", r.ns)) ns_labels = (*ns)["metadata"].value("labels", json::object());
    } else if (r.type->gr() == "/namespaces") {
      ns_labels = (object.is_object() ? object : *r.old_object)["metadata"].value("labels", json::object());
    }
    if (!selector_matches(ns_sel, ns_labels)) return false;
  }
  const json obj_sel = w.value("objectSelector", json::object());
  if (!obj_sel.empty()) {
    const bool new_ok = object.is_object() && selector_matches(obj_sel, object["metadata"].value("labels", json::object()));
    const bool old_ok = r.old_object && selector_matches(obj_sel, (*r.old_object)["metadata"].value("labels", json::object()));
    if (!new_ok && !old_ok) return false;
  }
  return true;
}

// POSTs the review; returns the response part or a transport error message.
std::expected<json, std::string> call(const json& w, const json& review) {
  const json cc = w.value("clientConfig", json::object());
  const std::string url = cc.value("url", "");
  if (url.empty()) return std::unexpected("kube-local calls webhooks by clientConfig.url only");
  if (!url.starts_with("https://")) return std::unexpected("webhook URL must use https");
  const auto slash = url.find('/', 8);
  bo::kube::RestConfig cfg;
  cfg.server = url.substr(0, slash);
  const std::string path = slash == std::string::npos ? "/" : url.substr(slash);
  if (cc.contains("caBundle")) {
    auto ca = bo::base64_decode(cc.value("caBundle", ""));
    if (!ca) return std::unexpected("caBundle is not valid base64");
    cfg.ca_pem = *ca;
  }
  cfg.request_timeout = std::chrono::seconds(std::clamp(w.value("timeoutSeconds", 10), 1, 30));
  auto t = bo::kube::make_cpprest_transport(cfg);
  if (!t) return std::unexpected(t.error().message);
  auto resp = (*t)->send({"POST", path, "application/json", review.dump(), cfg.request_timeout, ""});
  if (!resp) return std::unexpected(resp.error().message);
  if (resp->status != 200) return std::unexpected("webhook answered HTTP " + std::to_string(resp->status));
  json body = json::parse(resp->body, nullptr, false);
  if (!body.is_object() || !body.contains("response") || !body["response"].is_object())
    return std::unexpected("webhook answer is not an AdmissionReview with a response");
  return body["response"];
}

// admission.k8s.io/v1 GroupVersionKind of the object under review.
json kind_of(const AdmissionRequest& r) {
  if (r.kind.empty()) return {{"group", r.type->group}, {"version", r.type->version}, {"kind", r.type->kind}};
  const auto slash = r.kind_api_version.find('/');
  return {{"group", slash == std::string::npos ? "" : r.kind_api_version.substr(0, slash)},
          {"version", slash == std::string::npos ? r.kind_api_version : r.kind_api_version.substr(slash + 1)},
          {"kind", r.kind}};
}

json resource_of(const AdmissionRequest& r) {
  return {{"group", r.type->group}, {"version", r.type->version}, {"resource", r.type->resource}};
}

json review_for(const AdmissionRequest& r, const json& object, const std::string& uid) {
  json req{{"uid", uid},
           {"kind", kind_of(r)},
           {"resource", resource_of(r)},
           {"requestKind", kind_of(r)},
           {"requestResource", resource_of(r)},
           {"name", r.name},
           {"operation", r.operation},
           {"userInfo", r.user.to_json()},
           {"object", object.is_object() ? object : json()},
           {"oldObject", r.old_object ? *r.old_object : json()},
           {"dryRun", r.dry_run},
           {"options", json::object()}};
  if (!r.ns.empty()) req["namespace"] = r.ns;
  if (!r.subresource.empty()) {
    req["subResource"] = r.subresource;
    req["requestSubResource"] = r.subresource;
  }
  return {{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"request", req}};
}

ApiError denied(const std::string& webhook, const json& response) {
  const json st = response.value("status", json::object());
  int code = st.value("code", 0);
  if (code < 400) code = 400;
  const std::string msg = st.value("message", "");
  return {code, st.value("reason", code == 403 ? "Forbidden" : "BadRequest"),
          "admission webhook \"" + webhook + "\" denied the request" + (msg.empty() ? " without explanation" : ": " + msg)};
}

template <class Fn>
ApiResult<void> for_each_webhook(const Store& store, const std::string& gr, const AdmissionRequest& r, const json& object,
                                 Fn&& fn) {
  for (const auto& cfg : store.list(gr, ""))
    for (const auto& w : (*cfg).value("webhooks", json::array())) {
      if (!webhook_matches(w, r, object, store)) continue;
      auto result = fn(w);
      if (!result) return result;
    }
  return {};
}

}  // namespace

ApiResult<json> call_mutating_webhooks(const Store& store, const AdmissionRequest& r, json object) {
  auto result = for_each_webhook(
      store, "admissionregistration.k8s.io/mutatingwebhookconfigurations", r, object, [&](const json& w) -> ApiResult<void> {
        const std::string name = w.value("name", "");
        const std::string uid = bo::hex_encode(bo::random_bytes(16));
        auto resp = call(w, review_for(r, object, uid));
        if (!resp) {
          if (w.value("failurePolicy", "Fail") == "Ignore") return {};
          return std::unexpected(ApiError{500, "InternalError",
                                          "Internal error occurred: failed calling webhook \"" + name + "\": " + resp.error()});
        }
        if (!resp->value("allowed", false)) return std::unexpected(denied(name, *resp));
        if (resp->contains("patch")) {
          if (resp->value("patchType", "") != "JSONPatch")
            return std::unexpected(ApiError{500, "InternalError", "webhook \"" + name + "\" returned an unsupported patchType"});
          auto raw = bo::base64_decode(resp->value("patch", ""));
          const json ops = raw ? json::parse(*raw, nullptr, false) : json();
          std::string err;
          auto patched = ops.is_discarded() ? std::nullopt : apply_json_patch(object, ops, &err);
          if (!patched)
            return std::unexpected(ApiError{500, "InternalError",
                                            "Internal error occurred: webhook \"" + name + "\" returned a bad patch " + err});
          object = std::move(*patched);
        }
        return {};
      });
  if (!result) return std::unexpected(result.error());
  return object;
}

ApiResult<void> call_validating_admission_policies(const Store& store, const AdmissionRequest& r, const json& object) {
  for (const auto& b : store.list("admissionregistration.k8s.io/validatingadmissionpolicybindings", "")) {
    const json bspec = (*b).value("spec", json::object());
    const auto actions = bspec.value("validationActions", json::array());
    if (std::find(actions.begin(), actions.end(), "Deny") == actions.end()) continue;
    auto policy = store.get("admissionregistration.k8s.io/validatingadmissionpolicies", "", bspec.value("policyName", ""));
    if (!policy) continue;
    const json pspec = (*policy).value("spec", json::object());
    // Both the policy's constraints and the binding's resources must match.
    const json constraints = pspec.value("matchConstraints", json::object());
    json as_webhook{{"rules", constraints.value("resourceRules", json::array())},
                    {"namespaceSelector", constraints.value("namespaceSelector", json::object())},
                    {"objectSelector", constraints.value("objectSelector", json::object())}};
    if (!webhook_matches(as_webhook, r, object, store)) continue;
    // A binding's matchResources "does not constrain resource matching" without resourceRules
    // (ValidatingAdmissionPolicyBinding API docs): subresources included, hence */*.
    const json mr = bspec.value("matchResources", json::object());
    json binding_match{{"rules", mr.value("resourceRules", json::array({{{"operations", {"*"}}, {"apiGroups", {"*"}},
                                                                         {"apiVersions", {"*"}}, {"resources", {"*/*"}}}}))},
                       {"namespaceSelector", mr.value("namespaceSelector", json::object())},
                       {"objectSelector", mr.value("objectSelector", json::object())}};
    if (!webhook_matches(binding_match, r, object, store)) continue;
    const std::map<std::string, json> vars{
        {"object", object.is_object() ? object : json()},
        {"oldObject", r.old_object ? *r.old_object : json()},
        // apiserver pkg/admission/plugin/cel CreateAdmissionRequest: the AdmissionRequest fields.
        {"request", {{"operation", r.operation}, {"namespace", r.ns}, {"name", r.name},
                     {"userInfo", r.user.to_json()}, {"kind", kind_of(r)}, {"requestKind", kind_of(r)},
                     {"resource", resource_of(r)}, {"requestResource", resource_of(r)},
                     {"subResource", r.subresource}, {"requestSubResource", r.subresource},
                     {"dryRun", r.dry_run}}}};
    const std::string pname = (*policy)["metadata"].value("name", "");
    const std::string bname = (*b)["metadata"].value("name", "");
    for (const auto& v : pspec.value("validations", json::array())) {
      auto result = cel::evaluate(v.value("expression", ""), vars);
      std::string why;
      if (!result) {
        if (pspec.value("failurePolicy", "Fail") == "Ignore") continue;
        why = "expression '" + v.value("expression", "") + "' resulted in error: " + result.error();
      } else if (!result->is_boolean() || !result->get<bool>()) {
        why = v.value("message", "failed expression: " + v.value("expression", ""));
      } else {
        continue;
      }
      const std::string reason = v.value("reason", "Invalid");
      const int code = reason == "Forbidden" ? 403 : reason == "Unauthorized" ? 401 : reason == "RequestEntityTooLarge" ? 413 : 422;
      // policy/validating/dispatcher.go: admission.NewForbidden on the resource's GroupResource, the
      // policy's reason and its code, the message also as a cause.
      const std::string message = "ValidatingAdmissionPolicy '" + pname + "' with binding '" + bname + "' denied request: " + why;
      const std::string qualified = r.type->group.empty() ? r.type->resource : r.type->resource + "." + r.type->group;
      return std::unexpected(ApiError{code, reason, qualified + " \"" + r.name + "\" is forbidden: " + message,
                                      json{{"name", r.name}, {"group", r.type->group}, {"kind", r.type->resource},
                                           {"causes", json::array({{{"message", message}}})}}});
    }
  }
  return {};
}

ApiResult<void> call_validating_webhooks(const Store& store, const AdmissionRequest& r, const json& object) {
  return for_each_webhook(
      store, "admissionregistration.k8s.io/validatingwebhookconfigurations", r, object, [&](const json& w) -> ApiResult<void> {
        const std::string name = w.value("name", "");
        auto resp = call(w, review_for(r, object, bo::hex_encode(bo::random_bytes(16))));
        if (!resp) {
          if (w.value("failurePolicy", "Fail") == "Ignore") return {};
          return std::unexpected(ApiError{500, "InternalError",
                                          "Internal error occurred: failed calling webhook \"" + name + "\": " + resp.error()});
        }
        if (!resp->value("allowed", false)) return std::unexpected(denied(name, *resp));
        return {};
      });
}

}  // namespace kl
