#include "kube-local/patch.h"

#include <algorithm>
#include <set>

namespace kl {
namespace {

// patchMergeKey of the list fields that the built-in kinds mark
// `patchStrategy: merge`; every other list is replaced whole.
std::optional<std::string> merge_key(const std::string& field, const std::string& parent) {
  if (field == "containers" || field == "initContainers" || field == "ephemeralContainers" ||
      field == "env" || field == "volumes" || field == "imagePullSecrets" || field == "resourceClaims")
    return "name";
  if (field == "volumeMounts") return "mountPath";
  if (field == "volumeDevices") return "devicePath";
  if (field == "ports") return parent == "containers" ? "containerPort" : "port";
  if (field == "conditions") return "type";
  if (field == "ownerReferences") return "uid";
  if (field == "hostAliases") return "ip";
  if (field == "topologySpreadConstraints") return "topologyKey";
  return std::nullopt;
}

bool merges_primitives(const std::string& field) { return field == "finalizers"; }

json merge_value(const json& target, const json& patch, const std::string& field, const std::string& parent,
                 std::string* error);

json merge_object(const json& target_in, const json& patch, const std::string& self, std::string* error) {
  if (patch.contains("$patch")) {
    const std::string directive = patch["$patch"].is_string() ? patch["$patch"].get<std::string>() : "";
    if (directive == "replace") {
      json out = patch;
      out.erase("$patch");
      return out;
    }
    if (directive == "delete") return nullptr;
    if (error && !directive.empty() && directive != "merge") *error = "unknown $patch directive \"" + directive + "\"";
  }
  json target = target_in.is_object() ? target_in : json::object();
  if (auto rk = patch.find("$retainKeys"); rk != patch.end() && rk->is_array()) {
    std::set<std::string> keep;
    for (const auto& k : *rk)
      if (k.is_string()) keep.insert(k.get<std::string>());
    for (auto it = target.begin(); it != target.end();) it = keep.count(it.key()) ? std::next(it) : target.erase(it);
  }
  for (const auto& [key, value] : patch.items()) {
    if (key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/")) continue;
    if (key.starts_with("$deleteFromPrimitiveList/")) {
      const std::string f = key.substr(std::string("$deleteFromPrimitiveList/").size());
      if (target.contains(f) && target[f].is_array() && value.is_array()) {
        auto& arr = target[f];
        for (const auto& del : value) arr.erase(std::remove(arr.begin(), arr.end(), del), arr.end());
      }
      continue;
    }
    if (value.is_null()) {
      target.erase(key);
      continue;
    }
    json merged = merge_value(target.contains(key) ? target[key] : json(), value, key, self, error);
    if (merged.is_null()) target.erase(key);
    else target[key] = std::move(merged);
  }
  return target;
}

json merge_list(const json& target, const json& patch, const std::string& field, const std::string& parent,
                std::string* error) {
  if (merges_primitives(field)) {
    json out = target.is_array() ? target : json::array();
    for (const auto& v : patch)
      if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    return out;
  }
  const auto key = merge_key(field, parent);
  if (!key) return patch;  // atomic list: replaced whole
  for (const auto& item : patch)
    if (item.is_object() && item.value("$patch", "") == "replace") {
      json out = json::array();
      for (const auto& i : patch)
        if (!(i.is_object() && i.contains("$patch"))) out.push_back(i);
      return out;
    }
  json out = target.is_array() ? target : json::array();
  for (const auto& item : patch) {
    if (!item.is_object() || !item.contains(*key)) {
      out.push_back(item);
      continue;
    }
    auto it = std::find_if(out.begin(), out.end(), [&](const json& e) {
      return e.is_object() && e.contains(*key) && e[*key] == item[*key];
    });
    const bool del = item.value("$patch", "") == "delete";
    if (it == out.end()) {
      if (!del) out.push_back(merge_object(json::object(), item, field, error));
    } else if (del) {
      out.erase(it);
    } else {
      *it = merge_object(*it, item, field, error);
    }
  }
  return out;
}

json merge_value(const json& target, const json& patch, const std::string& field, const std::string& parent,
                 std::string* error) {
  if (patch.is_object()) return merge_object(target, patch, field, error);
  if (patch.is_array()) return merge_list(target, patch, field, parent, error);
  return patch;
}

}  // namespace

std::optional<json> apply_merge_patch(const json& target, const json& patch, std::string* error) {
  if (!patch.is_object()) {
    if (error) *error = "a merge patch must be a JSON object";
    return std::nullopt;
  }
  json out = target;
  out.merge_patch(patch);
  return out;
}

std::optional<json> apply_json_patch(const json& target, const json& patch, std::string* error) {
  if (!patch.is_array()) {
    if (error) *error = "a JSON patch must be an array of operations";
    return std::nullopt;
  }
  try {
    return target.patch(patch);
  } catch (const json::exception& e) {
    if (error) *error = std::string("the JSON patch does not apply: ") + e.what();
    return std::nullopt;
  }
}

std::optional<json> apply_strategic_merge_patch(const json& target, const json& patch, std::string* error) {
  if (!patch.is_object()) {
    if (error) *error = "a strategic merge patch must be a JSON object";
    return std::nullopt;
  }
  std::string err;
  json out = merge_object(target, patch, "", &err);
  if (!err.empty()) {
    if (error) *error = err;
    return std::nullopt;
  }
  return out;
}

}  // namespace kl
