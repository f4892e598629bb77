#include "kube-local/openapi.h"

#include <set>

#include "common/encoding.h"
#include "kube-local/decode.h"

namespace kl {
namespace {

std::string gv_path_of(const ResourceType& t) { return t.group.empty() ? "api/" + t.version : "apis/" + t.group + "/" + t.version; }

// Schema names follow Kubernetes: io.k8s.api.<group>.<version>.<Kind> for
// built-ins, reversed group for custom resources (si.dev.backup.v1alpha1.Kind).
std::string schema_name(const ResourceType& t) {
  if (!t.custom) {
    std::string g = t.group.empty() ? "core" : t.group.substr(0, t.group.find('.'));
    return "io.k8s.api." + g + "." + t.version + "." + t.kind;
  }
  std::vector<std::string> parts;
  std::string cur;
  for (char c : t.group) {
    if (c == '.') {
      parts.push_back(cur);
      cur.clear();
    } else cur += c;
  }
  parts.push_back(cur);
  std::string out;
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) out += *it + ".";
  return out + t.version + "." + t.kind;
}

json object_meta_schema() {
  return {{"type", "object"},
          {"description", "ObjectMeta is metadata that all persisted resources must have."},
          {"properties",
           {{"name", {{"type", "string"}, {"description", "Name must be unique within a namespace."}}},
            {"namespace", {{"type", "string"}, {"description", "Namespace defines the space within which each name must be unique."}}},
            {"labels", {{"type", "object"}, {"additionalProperties", {{"type", "string"}}}, {"description", "Map of string keys and values used to organize and categorize objects."}}},
            {"annotations", {{"type", "object"}, {"additionalProperties", {{"type", "string"}}}, {"description", "Annotations is an unstructured key value map."}}},
            {"uid", {{"type", "string"}}},
            {"resourceVersion", {{"type", "string"}}},
            {"generation", {{"type", "integer"}, {"format", "int64"}}},
            {"creationTimestamp", {{"type", "string"}, {"format", "date-time"}}},
            {"deletionTimestamp", {{"type", "string"}, {"format", "date-time"}}},
            {"finalizers", {{"type", "array"}, {"items", {{"type", "string"}}}}},
            {"ownerReferences", {{"type", "array"}, {"items", {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}}}},
            {"generateName", {{"type", "string"}}}}}};
}

json type_schema(const ResourceType& t) {
  json s;
  if (t.custom && t.schema.is_object()) {
    s = t.schema;
  } else if (const json& b = builtin_schema(t); b.is_object()) {
    s = b;  // the fields kube-local decodes (decode.cpp), so kubectl explain and validation agree with it
    s["description"] = t.kind + " (served by kube-local).";
  } else {
    s = {{"type", "object"}, {"description", t.kind + " (served by kube-local)."}, {"x-kubernetes-preserve-unknown-fields", true},
         {"properties", json::object()}};
  }
  s["properties"]["apiVersion"] = {{"type", "string"}, {"description", "APIVersion defines the versioned schema of this representation of an object."}};
  s["properties"]["kind"] = {{"type", "string"}, {"description", "Kind is a string value representing the REST resource this object represents."}};
  s["properties"]["metadata"] = {{"allOf", {{{"$ref", "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}}}},
                                 {"description", "Standard object's metadata."}};
  s["x-kubernetes-group-version-kind"] = json::array({{{"group", t.group}, {"kind", t.kind}, {"version", t.version}}});
  return s;
}

json operation(const ResourceType& t, const std::string& action, bool with_params) {
  json op{{"x-kubernetes-action", action},
          {"x-kubernetes-group-version-kind", {{"group", t.group}, {"kind", t.kind}, {"version", t.version}}},
          {"responses", {{"200", {{"description", "OK"}, {"content", {{"application/json", {{"schema", {{"$ref", "#/components/schemas/" + schema_name(t)}}}}}}}}}}}};
  if (with_params) {
    json params = json::array();
    for (const char* p : {"dryRun", "fieldManager", "fieldValidation"})
      params.push_back({{"name", p}, {"in", "query"}, {"schema", {{"type", "string"}, {"uniqueItems", true}}}});
    op["parameters"] = params;
  }
  return op;
}

}  // namespace

std::optional<json> openapi_v3_document(const Registry& registry, const std::string& gv_path) {
  json paths = json::object();
  json schemas = json::object();
  bool any = false;
  for (const auto& t : registry.all()) {
    if (gv_path_of(*t) != gv_path) continue;
    any = true;
    schemas[schema_name(*t)] = type_schema(*t);
    if (t->virtual_only) {
      paths["/" + gv_path + "/" + t->resource] = {{"post", operation(*t, "post", true)}};
      continue;
    }
    const std::string base = "/" + gv_path + (t->namespaced ? "/namespaces/{namespace}/" : "/") + t->resource;
    paths[base] = {{"get", operation(*t, "list", false)}, {"post", operation(*t, "post", true)}};
    paths[base + "/{name}"] = {{"get", operation(*t, "get", false)}, {"put", operation(*t, "put", true)},
                               {"patch", operation(*t, "patch", true)}, {"delete", operation(*t, "delete", false)}};
    if (t->has_subresource("status"))
      paths[base + "/{name}/status"] = {{"get", operation(*t, "get", false)}, {"put", operation(*t, "put", true)},
                                        {"patch", operation(*t, "patch", true)}};
  }
  if (!any) return std::nullopt;
  schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"] = object_meta_schema();
  return json{{"openapi", "3.0.0"}, {"info", {{"title", "Kubernetes"}, {"version", "v1.35.0-kube-local"}}},
              {"paths", paths}, {"components", {{"schemas", schemas}}}};
}

json openapi_v3_index(const Registry& registry) {
  std::set<std::string> gvs;
  for (const auto& t : registry.all()) gvs.insert(gv_path_of(*t));
  json paths = json::object();
  for (const auto& gv : gvs) {
    const auto doc = openapi_v3_document(registry, gv);
    const std::string hash = bo::sha256_hex(doc ? doc->dump() : "").substr(0, 32);
    paths[gv] = {{"serverRelativeURL", "/openapi/v3/" + gv + "?hash=" + hash}};
  }
  return json{{"paths", paths}};
}

}  // namespace kl
