#include "kube-local/scale.h"

#include <algorithm>
#include <cstdint>

#include "common/timefmt.h"

namespace kl {
namespace {

// A replicas path ".spec.replicas" as its keys (customresource etcd.go splitReplicasPath).
std::vector<std::string> path_keys(const std::string& path) {
  std::vector<std::string> keys;
  std::string cur;
  for (char c : path.starts_with(".") ? path.substr(1) : path) {
    if (c == '.') {
      keys.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  keys.push_back(cur);
  return keys;
}

const json* nested(const json& obj, const std::string& path) {
  const json* cur = &obj;
  for (const auto& k : path_keys(path)) {
    if (!cur->is_object() || !cur->contains(k)) return nullptr;
    cur = &(*cur)[k];
  }
  return cur;
}

}  // namespace

std::optional<ScalePaths> crd_scale_paths(const json& crd, const std::string& version) {
  for (const auto& v : crd.value("spec", json::object()).value("versions", json::array())) {
    if (v.value("name", "") != version) continue;
    const json sub = v.value("subresources", json::object());
    if (!sub.is_object() || !sub.contains("scale") || !sub["scale"].is_object()) return std::nullopt;
    const json& s = sub["scale"];
    return ScalePaths{s.value("specReplicasPath", ""), s.value("statusReplicasPath", ""), s.value("labelSelectorPath", "")};
  }
  return std::nullopt;
}

std::string selector_string(const json& selector) {
  if (!selector.is_object()) return "";
  struct Req {
    std::string key, text;
  };
  std::vector<Req> reqs;
  const json labels = selector.value("matchLabels", json::object());  // a local: never iterate a temporary's items()
  for (const auto& [k, v] : labels.items())
    reqs.push_back({k, k + "=" + (v.is_string() ? v.get<std::string>() : v.dump())});
  for (const auto& e : selector.value("matchExpressions", json::array())) {
    const std::string key = e.value("key", "");
    const std::string op = e.value("operator", "");
    std::vector<std::string> values;
    for (const auto& v : e.value("values", json::array())) values.push_back(v.is_string() ? v.get<std::string>() : v.dump());
    // labels.Requirement.String writes In and NotIn values sorted.
    std::sort(values.begin(), values.end());
    std::string list;
    for (const auto& v : values) list += (list.empty() ? "" : ",") + v;
    if (op == "In") reqs.push_back({key, key + " in (" + list + ")"});
    else if (op == "NotIn") reqs.push_back({key, key + " notin (" + list + ")"});
    else if (op == "Exists") reqs.push_back({key, key});
    else if (op == "DoesNotExist") reqs.push_back({key, "!" + key});
  }
  // internalSelector.Add sorts its requirements by key.
  std::stable_sort(reqs.begin(), reqs.end(), [](const Req& a, const Req& b) { return a.key < b.key; });
  std::string out;
  for (const auto& r : reqs) out += (out.empty() ? "" : ",") + r.text;
  return out;
}

std::expected<json, std::string> scale_of(const json& parent, const ScalePaths& paths) {
  const json meta = parent.value("metadata", json::object());
  json m = json::object();
  for (const char* k : {"name", "namespace", "uid", "resourceVersion", "creationTimestamp"})
    if (meta.contains(k)) m[k] = meta[k];
  const json* spec = nested(parent, paths.spec_replicas);
  if (!spec) return std::unexpected("the spec replicas field \"" + paths.spec_replicas + "\" does not exist");
  if (!spec->is_number_integer()) return std::unexpected(".spec.replicas accessor error: " + spec->dump() + " is of the type " +
                                                         std::string(spec->type_name()) + ", expected int64");
  const json* status = nested(parent, paths.status_replicas);
  const long long status_replicas = status && status->is_number_integer() ? status->get<long long>() : 0;
  std::string selector;
  if (paths.label_selector.empty()) {
    selector = selector_string(parent.value("spec", json::object()).value("selector", json::object()));
  } else if (const json* s = nested(parent, paths.label_selector); s && s->is_string()) {
    selector = s->get<std::string>();
  }
  // autoscaling/v1: spec.replicas and status.selector are omitempty, status.replicas is not.
  json scale_spec = json::object();
  if (spec->get<long long>() != 0) scale_spec["replicas"] = spec->get<long long>();
  json scale_status{{"replicas", status_replicas}};
  if (!selector.empty()) scale_status["selector"] = selector;
  return json{{"kind", "Scale"}, {"apiVersion", "autoscaling/v1"}, {"metadata", m}, {"spec", scale_spec},
              {"status", scale_status}};
}

std::vector<FieldError> validate_scale(const json& scale) {
  const auto replicas = scale_replicas(scale);
  if (replicas && *replicas < 0)
    return {{"FieldValueInvalid", "spec.replicas",
             "spec.replicas: Invalid value: " + std::to_string(*replicas) + ": must be greater than or equal to 0"}};
  return {};
}

std::expected<long long, std::string> scale_replicas(const json& scale) {
  const json spec = scale.value("spec", json::object());
  if (!spec.is_object())
    return std::unexpected("json: cannot unmarshal " + std::string(spec.type_name()) +
                           " into Go struct field Scale.spec of type v1.ScaleSpec");
  if (!spec.contains("replicas") || spec["replicas"].is_null()) return 0;
  const json& r = spec["replicas"];
  if (!r.is_number_integer() || r.get<long long>() < INT32_MIN || r.get<long long>() > INT32_MAX)
    return std::unexpected("json: cannot unmarshal " + std::string(r.is_number() ? "number " + r.dump() : r.type_name()) +
                           " into Go struct field ScaleSpec.spec.replicas of type int32");
  return r.get<long long>();
}

json with_replicas(const json& parent, long long replicas, const ScalePaths& paths) {
  json out = parent;
  json* cur = &out;
  for (const auto& k : path_keys(paths.spec_replicas)) {
    if (!cur->is_object()) *cur = json::object();
    cur = &(*cur)[k];
  }
  *cur = replicas;
  return out;
}

json scale_table(const json& scale, std::chrono::system_clock::time_point now, const std::string& include_object) {
  std::string age = "<unknown>";
  if (auto t = bo::parse_rfc3339(scale["metadata"].value("creationTimestamp", "")))
    age = bo::human_duration(std::chrono::duration_cast<std::chrono::seconds>(now - *t));
  json defs = json::array();
  for (const auto& [name, type] : std::vector<std::pair<std::string, std::string>>{
           {"Name", "string"}, {"Desired", "integer"}, {"Available", "integer"}, {"Age", "string"}})
    defs.push_back({{"name", name}, {"type", type}, {"format", ""}, {"description", name}, {"priority", 0}});
  json row{{"cells", {scale["metadata"].value("name", ""), scale["spec"].value("replicas", 0),
                      scale["status"].value("replicas", 0), age}}};
  if (include_object == "Object") row["object"] = scale;
  else if (include_object != "None")
    row["object"] = {{"kind", "PartialObjectMetadata"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", scale["metadata"]}};
  return json{{"kind", "Table"}, {"apiVersion", "meta.k8s.io/v1"},
              {"metadata", {{"resourceVersion", scale["metadata"].value("resourceVersion", "")}}},
              {"columnDefinitions", defs}, {"rows", json::array({row})}};
}

}  // namespace kl
