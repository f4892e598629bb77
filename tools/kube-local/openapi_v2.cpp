#include "kube-local/openapi_v2.h"

#include <cstring>
#include <set>

#include "kube-local/openapi.h"

namespace kl {
namespace {

using json = nlohmann::json;

// v3 component references become v2 definition references. v2 has no
// x-kubernetes-preserve-unknown-fields: such a node loses its properties so
// kubectl treats it as arbitrary instead of refusing unknown fields (as
// apiextensions-apiserver's controller/openapi/v2 conversion does for CRDs).
json to_v2(const json& v) {
  if (v.is_object()) {
    json out = json::object();
    const bool preserve = v.value("x-kubernetes-preserve-unknown-fields", false) == true;
    for (const auto& [k, child] : v.items()) {
      if (preserve && (k == "properties" || k == "required" || k == "additionalProperties" || k == "type")) continue;
      if (k == "$ref" && child.is_string()) {
        std::string ref = child.get<std::string>();
        const std::string from = "#/components/schemas/";
        if (ref.starts_with(from)) ref = "#/definitions/" + ref.substr(from.size());
        out[k] = ref;
      } else {
        out[k] = to_v2(child);
      }
    }
    return out;
  }
  if (v.is_array()) {
    json out = json::array();
    for (const auto& child : v) out.push_back(to_v2(child));
    return out;
  }
  return v;
}

// --- protobuf wire format ------------------------------------------------------

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void bytes_field(std::string& out, int field, const std::string& payload) {
  varint(out, (static_cast<uint64_t>(field) << 3) | 2);
  varint(out, payload.size());
  out += payload;
}
void varint_field(std::string& out, int field, uint64_t v) {
  varint(out, static_cast<uint64_t>(field) << 3);
  varint(out, v);
}
void double_field(std::string& out, int field, double d) {
  varint(out, (static_cast<uint64_t>(field) << 3) | 1);
  uint64_t bits;
  static_assert(sizeof bits == sizeof d);
  std::memcpy(&bits, &d, sizeof d);
  for (int i = 0; i < 8; ++i) out += static_cast<char>((bits >> (8 * i)) & 0xff);
}

// Any { string yaml = 2; }: gnostic keeps extension and enum values as YAML text (JSON is YAML).
std::string any_yaml(const json& v) {
  std::string a;
  bytes_field(a, 2, v.dump());
  return a;
}

std::string named_any(const std::string& name, const json& v) {
  std::string n;
  bytes_field(n, 1, name);
  bytes_field(n, 2, any_yaml(v));
  return n;
}

// openapi_v2.Schema (field numbers from OpenAPIv2.proto).
std::string schema(const json& s) {
  std::string out;
  if (!s.is_object()) return out;
  auto str = [&](const char* key, int field) {
    if (auto it = s.find(key); it != s.end() && it->is_string()) bytes_field(out, field, it->get<std::string>());
  };
  auto num = [&](const char* key, int field) {
    if (auto it = s.find(key); it != s.end() && it->is_number()) double_field(out, field, it->get<double>());
  };
  auto integer = [&](const char* key, int field) {
    if (auto it = s.find(key); it != s.end() && it->is_number_integer()) varint_field(out, field, it->get<uint64_t>());
  };
  str("$ref", 1);
  str("format", 2);
  str("title", 3);
  str("description", 4);
  if (auto it = s.find("default"); it != s.end()) bytes_field(out, 5, any_yaml(*it));
  num("multipleOf", 6);
  num("maximum", 7);
  num("minimum", 9);
  integer("maxLength", 11);
  integer("minLength", 12);
  str("pattern", 13);
  integer("maxItems", 14);
  integer("minItems", 15);
  if (auto it = s.find("required"); it != s.end() && it->is_array())
    for (const auto& r : *it)
      if (r.is_string()) bytes_field(out, 19, r.get<std::string>());
  if (auto it = s.find("enum"); it != s.end() && it->is_array())
    for (const auto& e : *it) bytes_field(out, 20, any_yaml(e));
  if (auto it = s.find("additionalProperties"); it != s.end()) {
    std::string item;  // AdditionalPropertiesItem { Schema schema = 1; bool boolean = 2; }
    if (it->is_boolean()) varint_field(item, 2, it->get<bool>() ? 1 : 0);
    else bytes_field(item, 1, schema(*it));
    bytes_field(out, 21, item);
  }
  if (auto it = s.find("type"); it != s.end() && it->is_string()) {
    std::string type_item;  // TypeItem { repeated string value = 1; }
    bytes_field(type_item, 1, it->get<std::string>());
    bytes_field(out, 22, type_item);
  }
  if (auto it = s.find("items"); it != s.end() && it->is_object()) {
    std::string items;  // ItemsItem { repeated Schema schema = 1; }
    bytes_field(items, 1, schema(*it));
    bytes_field(out, 23, items);
  }
  if (auto it = s.find("allOf"); it != s.end() && it->is_array())
    for (const auto& sub : *it) bytes_field(out, 24, schema(sub));
  if (auto it = s.find("properties"); it != s.end() && it->is_object()) {
    std::string props;  // Properties { repeated NamedSchema additional_properties = 1; }
    for (const auto& [name, sub] : it->items()) {
      std::string named;
      bytes_field(named, 1, name);
      bytes_field(named, 2, schema(sub));
      bytes_field(props, 1, named);
    }
    bytes_field(out, 25, props);
  }
  for (const auto& [k, v] : s.items())
    if (k.starts_with("x-")) bytes_field(out, 31, named_any(k, v));
  return out;
}

}  // namespace

json openapi_v2_document(const Registry& registry) {
  std::set<std::string> gvs;
  for (const auto& t : registry.all()) gvs.insert(t->group.empty() ? "api/" + t->version : "apis/" + t->group + "/" + t->version);
  json definitions = json::object();
  for (const auto& gv : gvs) {
    const auto doc = openapi_v3_document(registry, gv);
    if (!doc) continue;
    for (const auto& [name, s] : (*doc)["components"]["schemas"].items()) definitions[name] = to_v2(s);
  }
  return json{{"swagger", "2.0"}, {"info", {{"title", "Kubernetes"}, {"version", "v1.35.0-kube-local"}}},
              {"paths", json::object()}, {"definitions", definitions}};
}

std::string openapi_v2_protobuf(const json& doc) {
  std::string out;
  bytes_field(out, 1, doc.value("swagger", "2.0"));
  std::string info;
  bytes_field(info, 1, doc["info"].value("title", ""));
  bytes_field(info, 2, doc["info"].value("version", ""));
  bytes_field(out, 2, info);
  bytes_field(out, 8, "");  // Paths: none (kubectl reads definitions only)
  std::string defs;  // Definitions { repeated NamedSchema additional_properties = 1; }
  for (const auto& [name, s] : doc["definitions"].items()) {
    std::string named;
    bytes_field(named, 1, name);
    bytes_field(named, 2, schema(s));
    bytes_field(defs, 1, named);
  }
  bytes_field(out, 9, defs);
  return out;
}

}  // namespace kl
