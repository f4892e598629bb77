// What the typed-status tests share: a status schema from crds/, the paths
// a schema has and a value holds, every node of a value, and values of the
// wrong type for a node.
#pragma once
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kube-local/yaml_json.h"

namespace status_support {

using nlohmann::json;

inline const std::filesystem::path kSource = SOURCE_DIR;

inline std::string read(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A JSON file of the source tree (a fixture).
inline json read_json(const std::string& relative) { return json::parse(read(kSource / relative)); }

// The status schema of the CRD in crds/<file>.
inline json status_schema(const std::string& crd_file) {
  std::string err;
  auto crd = kl::yaml_to_json(read(kSource / "crds" / crd_file), &err);
  EXPECT_TRUE(crd) << err;
  return crd ? (*crd)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"] : json::object();
}

// Every path of a schema (maps as [*], list items as []).
inline void schema_paths(const json& s, const std::string& path, std::set<std::string>& out) {
  if (!path.empty()) out.insert(path);
  if (s.contains("properties"))
    for (const auto& [k, v] : s["properties"].items()) schema_paths(v, path + "." + k, out);
  if (s.contains("items")) schema_paths(s["items"], path + "[]", out);
  if (s.contains("additionalProperties") && s["additionalProperties"].is_object())
    schema_paths(s["additionalProperties"], path + "[*]", out);
}

// The schema paths a value holds.
inline void value_paths(const json& s, const json& v, const std::string& path, std::set<std::string>& out) {
  if (!path.empty()) out.insert(path);
  if (v.is_object() && s.contains("properties")) {
    for (const auto& [k, sub] : s["properties"].items())
      if (v.contains(k)) value_paths(sub, v[k], path + "." + k, out);
  } else if (v.is_object() && s.contains("additionalProperties")) {
    for (const auto& [k, sub] : v.items()) value_paths(s["additionalProperties"], sub, path + "[*]", out);
  } else if (v.is_array() && s.contains("items")) {
    for (const auto& e : v) value_paths(s["items"], e, path + "[]", out);
  }
}

// Every node of a JSON value, by JSON pointer.
inline void nodes(const json& v, const json::json_pointer& at, std::vector<json::json_pointer>& out) {
  if (!at.empty()) out.push_back(at);
  if (v.is_object())
    for (const auto& [k, sub] : v.items()) nodes(sub, at / k, out);
  if (v.is_array())
    for (size_t i = 0; i < v.size(); ++i) nodes(v[i], at / i, out);
}

// Values of a type other than `v`'s.
inline std::vector<json> wrong_types(const json& v) {
  std::vector<json> out;
  if (!v.is_string()) out.push_back("x");
  if (!v.is_number()) out.push_back(5);
  if (!v.is_boolean()) out.push_back(true);
  if (!v.is_object()) out.push_back(json{{"a", 1}});
  if (!v.is_array()) out.push_back(json::array({1}));
  out.push_back(nullptr);
  out.push_back(2.5);
  return out;
}

// The schema's paths that `value` does not hold, in order; `schema_paths_count`,
// when given, gets how many paths the schema has.
inline std::vector<std::string> paths_not_held(const json& schema, const json& value, size_t* schema_paths_count = nullptr) {
  std::set<std::string> all, held;
  schema_paths(schema, "", all);
  value_paths(schema, value, "", held);
  if (schema_paths_count) *schema_paths_count = all.size();
  std::vector<std::string> missing;
  for (const auto& p : all)
    if (!held.count(p)) missing.push_back(p);
  return missing;
}

}  // namespace status_support
