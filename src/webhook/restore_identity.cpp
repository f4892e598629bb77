#include "webhook/restore_identity.h"

#include "common/encoding.h"

namespace bo::webhook {
namespace {

using json = nlohmann::json;

json answer(const json& request, bool allowed, int code = 200, const std::string& message = "") {
  json response{{"uid", request.value("uid", "")}, {"allowed", allowed}};
  if (!allowed)
    response["status"] = {{"code", code}, {"reason", code == 403 ? "Forbidden" : "BadRequest"}, {"message", message}};
  return {{"apiVersion", "admission.k8s.io/v1"}, {"kind", "AdmissionReview"}, {"response", response}};
}

const json* annotation(const json& obj) {
  if (!obj.is_object()) return nullptr;
  auto m = obj.find("metadata");
  if (m == obj.end() || !m->is_object()) return nullptr;
  auto a = m->find("annotations");
  if (a == m->end() || !a->is_object()) return nullptr;
  auto v = a->find(kRequestedBy);
  return v == a->end() ? nullptr : &*v;
}

json spec_of(const json& obj) { return obj.is_object() ? obj.value("spec", json()) : json(); }

}  // namespace

json review_restore_request(const json& review) {
  if (!review.is_object() || !review.contains("request") || !review["request"].is_object())
    return answer(json::object(), false, 400, "expected an admission.k8s.io/v1 AdmissionReview with a request");
  const json& req = review["request"];
  const std::string op = req.value("operation", "");
  const json object = req.value("object", json());
  if (req.value("subResource", "") != "") return answer(req, true);
  if (op == "CREATE") {
    if (annotation(object))
      return answer(req, false, 403,
                    std::string("metadata.annotations[") + kRequestedBy +
                        "] is set by backup-operator from the identity that creates the request; remove it");
    const json user = req.value("userInfo", json::object());
    json stamp{{"username", user.value("username", "")}, {"uid", user.value("uid", "")},
               {"groups", user.value("groups", json::array())}};
    // extra too: the controller asks the API server about this exact identity,
    // and an authorizer may narrow it by extra (scoped tokens).
    if (auto extra = user.find("extra"); extra != user.end() && extra->is_object() && !extra->empty())
      stamp["extra"] = *extra;
    const std::string value = stamp.dump();
    json ops = json::array();
    const bool has_annotations = object.is_object() && object.value("metadata", json::object()).contains("annotations") &&
                                 object["metadata"]["annotations"].is_object();
    if (has_annotations)
      ops.push_back({{"op", "add"}, {"path", "/metadata/annotations/backup.si.dev~1requested-by"}, {"value", value}});
    else
      ops.push_back({{"op", "add"}, {"path", "/metadata/annotations"}, {"value", {{kRequestedBy, value}}}});
    json out = answer(req, true);
    out["response"]["patchType"] = "JSONPatch";
    out["response"]["patch"] = base64_encode(ops.dump());
    return out;
  }
  if (op == "UPDATE") {
    const json old = req.value("oldObject", json());
    const json* before = annotation(old);
    const json* after = annotation(object);
    if ((before == nullptr) != (after == nullptr) || (before && *before != *after))
      return answer(req, false, 403,
                    std::string("metadata.annotations[") + kRequestedBy + "] records who asked for the restore and cannot change");
    if (spec_of(old) != spec_of(object))
      return answer(req, false, 403, "spec is immutable after creation; create a new RestoreRequest instead");
  }
  return answer(req, true);
}

}  // namespace bo::webhook
