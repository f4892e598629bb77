#include "kube-local/managed_fields.h"

#include <algorithm>
#include <map>

namespace kl::fields {
namespace {

// stripmeta.go: fields the server owns, never a manager.
bool ignored(const std::vector<std::string>& names, const std::string& key) {
  if (names.empty()) return key == "apiVersion" || key == "kind";
  if (names.size() == 1 && names[0] == "metadata") {
    static const std::set<std::string> kServer = {"name", "namespace", "creationTimestamp", "selfLink", "uid",
                                                  "clusterName", "generation", "managedFields", "resourceVersion",
                                                  "deletionTimestamp", "deletionGracePeriodSeconds"};
    return kServer.count(key) > 0;
  }
  return false;
}

json list_key(const json& item, const ListType& lt) {
  json key = json::object();
  for (const auto& k : lt.keys)
    if (item.is_object() && item.contains(k)) key[k] = item[k];
  return key;
}

void walk(const json& v, Path& p, std::vector<std::string>& names, FieldSet& out, const TypeInfo& t);

void walk_fields(const json& obj, Path& p, std::vector<std::string>& names, FieldSet& out, const TypeInfo& t) {
  for (const auto& [k, child] : obj.items()) {
    if (ignored(names, k)) continue;
    p.push_back("f:" + k);
    names.push_back(k);
    walk(child, p, names, out, t);
    names.pop_back();
    p.pop_back();
  }
}

void walk(const json& v, Path& p, std::vector<std::string>& names, FieldSet& out, const TypeInfo& t) {
  if (v.is_object()) {
    if (!p.empty() && (v.empty() || t.is_map(names))) out.insert(p);
    walk_fields(v, p, names, out, t);
    return;
  }
  if (v.is_array()) {
    const ListType lt = t.list_type(names);
    if (lt.kind == ListType::kAtomic || v.empty()) {
      out.insert(p);
      return;
    }
    for (const auto& item : v) {
      if (lt.kind == ListType::kSet || !item.is_object()) {
        p.push_back("v:" + item.dump());
        out.insert(p);
        p.pop_back();
        continue;
      }
      p.push_back("k:" + list_key(item, lt).dump());
      out.insert(p);
      walk_fields(item, p, names, out, t);
      p.pop_back();
    }
    return;
  }
  out.insert(p);
}

bool is_prefix(const Path& prefix, const Path& p) {
  return prefix.size() < p.size() && std::equal(prefix.begin(), prefix.end(), p.begin());
}

// True when `p` has members below it in `set` (a map or list item owned as a whole).
bool has_descendants(const FieldSet& set, const Path& p) {
  auto it = set.upper_bound(p);
  return it != set.end() && is_prefix(p, *it);
}

bool item_matches(const json& item, const std::string& element) {
  if (element.starts_with("v:")) return item == json::parse(element.substr(2), nullptr, false);
  const json key = json::parse(element.substr(2), nullptr, false);
  if (!key.is_object() || !item.is_object()) return false;
  for (const auto& [k, v] : key.items())
    if (!item.contains(k) || item[k] != v) return false;
  return true;
}

const json* value_at(const json& obj, const Path& p) {
  const json* cur = &obj;
  for (const auto& e : p) {
    if (e.starts_with("f:")) {
      if (!cur->is_object()) return nullptr;
      auto it = cur->find(e.substr(2));
      if (it == cur->end()) return nullptr;
      cur = &*it;
    } else {
      if (!cur->is_array()) return nullptr;
      auto it = std::find_if(cur->begin(), cur->end(), [&](const json& item) { return item_matches(item, e); });
      if (it == cur->end()) return nullptr;
      cur = &*it;
    }
  }
  return cur;
}

void remove_at(json& obj, const Path& p) {
  json* cur = &obj;
  for (size_t i = 0; i + 1 < p.size(); ++i) {
    const json* next = value_at(*cur, {p[i]});
    if (!next) return;
    cur = const_cast<json*>(next);
  }
  const std::string& last = p.back();
  if (last.starts_with("f:")) {
    if (cur->is_object()) cur->erase(last.substr(2));
  } else if (cur->is_array()) {
    cur->erase(std::remove_if(cur->begin(), cur->end(), [&](const json& item) { return item_matches(item, last); }),
               cur->end());
  }
}

json merge(const json& live, const json& cfg, std::vector<std::string>& names, const TypeInfo& t) {
  if (cfg.is_object() && live.is_object()) {
    json out = live;
    for (const auto& [k, v] : cfg.items()) {
      if (v.is_null()) {
        out.erase(k);
        continue;
      }
      names.push_back(k);
      out[k] = out.contains(k) ? merge(out[k], v, names, t) : v;
      names.pop_back();
    }
    return out;
  }
  if (cfg.is_array() && live.is_array()) {
    const ListType lt = t.list_type(names);
    if (lt.kind == ListType::kAtomic) return cfg;
    json out = live;
    for (const auto& item : cfg) {
      const std::string element =
          lt.kind == ListType::kSet || !item.is_object() ? "v:" + item.dump() : "k:" + list_key(item, lt).dump();
      auto it = std::find_if(out.begin(), out.end(), [&](const json& x) { return item_matches(x, element); });
      if (it == out.end()) out.push_back(item);
      else if (lt.kind == ListType::kMap) *it = merge(*it, item, names, t);
    }
    return out;
  }
  return cfg;
}

// printManager over BuildManagerIdentifier (no time; Apply without apiVersion).
std::string manager_label(const Entry& e) {
  std::string s = "\"" + e.manager + "\"";
  if (!e.subresource.empty()) s += " with subresource \"" + e.subresource + "\"";
  if (e.operation == "Update") s += " using " + e.api_version;
  return s;
}

FieldSet minus(const FieldSet& a, const FieldSet& b) {
  FieldSet out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::inserter(out, out.end()));
  return out;
}

}  // namespace

namespace {

ListType metadata_list(const std::string& field) {
  if (field == "finalizers") return {ListType::kSet, {}};
  if (field == "ownerReferences") return {ListType::kMap, {"uid"}};
  return {};
}

// The built-in kinds' list markers (k8s.io/api types.go, +listType/+listMapKey
// or patchMergeKey) for the fields kube-local's users write.
ListType builtin_list(const std::vector<std::string>& names, const std::string& kind) {
  const std::string& f = names.back();
  const std::string parent = names.size() >= 2 ? names[names.size() - 2] : "";
  if (f == "containers" || f == "initContainers" || f == "ephemeralContainers" || f == "env" || f == "volumes" ||
      f == "imagePullSecrets" || f == "resourceClaims")
    return {ListType::kMap, {"name"}};
  if (f == "volumeMounts") return {ListType::kMap, {"mountPath"}};
  if (f == "volumeDevices") return {ListType::kMap, {"devicePath"}};
  if (f == "ports") {
    if (parent == "containers" || parent == "initContainers") return {ListType::kMap, {"containerPort", "protocol"}};
    if (kind == "Service") return {ListType::kMap, {"port", "protocol"}};
    return {};
  }
  if (f == "conditions") return {ListType::kMap, {"type"}};
  if (f == "hostAliases") return {ListType::kMap, {"ip"}};
  if (f == "topologySpreadConstraints") return {ListType::kMap, {"topologyKey", "whenUnsatisfiable"}};
  return {};
}

bool builtin_map(const std::vector<std::string>& names, const std::string& kind) {
  static const std::set<std::string> kMaps = {"labels", "annotations", "data", "binaryData", "stringData",
                                              "matchLabels", "nodeSelector", "limits", "requests", "capacity",
                                              "allocatable", "parameters"};
  if (kind == "Service" && names.size() == 2 && names[0] == "spec" && names[1] == "selector") return true;
  return kMaps.count(names.back()) > 0;
}

// The schema node at `names` (list items skipped), or null.
const json* schema_at(const json& schema, const std::vector<std::string>& names) {
  const json* node = &schema;
  for (const auto& n : names) {
    if (node->value("type", "") == "array" && node->contains("items")) node = &(*node)["items"];
    if (auto p = node->find("properties"); p != node->end() && p->contains(n)) {
      node = &(*p)[n];
    } else if (auto a = node->find("additionalProperties"); a != node->end() && a->is_object()) {
      node = &*a;
    } else {
      return nullptr;
    }
  }
  return node;
}

}  // namespace

TypeInfo type_info(const json* schema, const std::string& kind) {
  TypeInfo t;
  t.list_type = [schema, kind](const std::vector<std::string>& names) -> ListType {
    if (names.empty()) return {};
    if (names.size() == 2 && names[0] == "metadata") return metadata_list(names[1]);
    if (!schema || schema->is_null()) return builtin_list(names, kind);
    const json* node = schema_at(*schema, names);
    if (!node) return {};
    const std::string lt = node->value("x-kubernetes-list-type", "atomic");
    if (lt == "set") return {ListType::kSet, {}};
    if (lt == "map") return {ListType::kMap, node->value("x-kubernetes-list-map-keys", std::vector<std::string>{})};
    return {};
  };
  t.is_map = [schema, kind](const std::vector<std::string>& names) {
    if (names.empty()) return false;
    if (names[0] == "metadata") return names.size() == 2 && (names[1] == "labels" || names[1] == "annotations");
    if (!schema || schema->is_null()) return builtin_map(names, kind);
    const json* node = schema_at(*schema, names);
    if (!node) return true;  // preserved unknown fields: a deduced map, as structured-merge-diff treats them
    return !node->contains("properties") &&
           (node->contains("additionalProperties") || node->value("x-kubernetes-preserve-unknown-fields", false));
  };
  return t;
}

FieldSet field_set(const json& obj, const TypeInfo& types) {
  FieldSet out;
  Path p;
  std::vector<std::string> names;
  if (obj.is_object()) walk_fields(obj, p, names, out, types);
  return out;
}

FieldSet changed(const json& before, const json& now, const TypeInfo& types) {
  const FieldSet set = field_set(now, types);
  FieldSet out;
  for (const auto& p : set) {
    const json* a = value_at(before, p);
    if (!a) {
      out.insert(p);
      continue;
    }
    if (has_descendants(set, p)) continue;  // a map or list item that was there already
    if (*a != *value_at(now, p)) out.insert(p);
  }
  return out;
}

json to_fields_v1(const FieldSet& set) {
  json root = json::object();
  for (const auto& p : set) {
    json* node = &root;
    for (const auto& e : p) node = &(*node)[e];
    if (!node->is_object()) *node = json::object();
  }
  // A member with members below it is marked ".".
  for (const auto& p : set) {
    if (!has_descendants(set, p)) continue;
    json* node = &root;
    for (const auto& e : p) node = &(*node)[e];
    (*node)["."] = json::object();
  }
  return root;
}

namespace {
void collect(const json& node, Path& p, FieldSet& out) {
  if (!node.is_object()) return;
  if (!p.empty() && (node.empty() || node.contains("."))) out.insert(p);
  for (const auto& [k, child] : node.items()) {
    if (k == ".") continue;
    p.push_back(k);
    collect(child, p, out);
    p.pop_back();
  }
}
}  // namespace

FieldSet from_fields_v1(const json& v1) {
  FieldSet out;
  Path p;
  collect(v1, p, out);
  return out;
}

std::string path_string(const Path& p) {
  std::string s;
  for (const auto& e : p) {
    if (e.starts_with("f:")) {
      s += "." + e.substr(2);
    } else if (e.starts_with("v:")) {
      s += "[=" + e.substr(2) + "]";
    } else if (e.starts_with("k:")) {
      const json key = json::parse(e.substr(2), nullptr, false);
      std::string inner;
      if (key.is_object())
        for (const auto& [k, v] : key.items()) inner += (inner.empty() ? "" : ",") + k + "=" + v.dump();
      s += "[" + inner + "]";
    }
  }
  return s;
}

std::vector<Entry> parse_entries(const json& managed_fields) {
  std::vector<Entry> out;
  if (!managed_fields.is_array()) return out;
  for (const auto& m : managed_fields) {
    if (!m.is_object()) continue;
    Entry e;
    e.manager = m.value("manager", "");
    e.operation = m.value("operation", "Update");
    e.subresource = m.value("subresource", "");
    e.api_version = m.value("apiVersion", "");
    e.time = m.value("time", "");
    e.fields = from_fields_v1(m.value("fieldsV1", json::object()));
    out.push_back(std::move(e));
  }
  return out;
}

json render_entries(const std::vector<Entry>& entries) {
  json out = json::array();
  for (const auto& e : entries) {
    json m{{"manager", e.manager}, {"operation", e.operation}, {"apiVersion", e.api_version}};
    if (!e.time.empty()) m["time"] = e.time;
    m["fieldsType"] = "FieldsV1";
    m["fieldsV1"] = to_fields_v1(e.fields);
    if (!e.subresource.empty()) m["subresource"] = e.subresource;
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<Entry> record_update(std::vector<Entry> entries, const json& before, const json& now,
                                 const std::string& manager, const std::string& subresource,
                                 const std::string& api_version, const std::string& time, const TypeInfo& types) {
  const FieldSet ch = changed(before, now, types);
  const FieldSet removed = minus(field_set(before, types), field_set(now, types));
  for (auto& e : entries) e.fields = minus(minus(e.fields, ch), removed);
  if (!ch.empty()) {
    auto it = std::find_if(entries.begin(), entries.end(), [&](const Entry& e) {
      return e.manager == manager && e.operation == "Update" && e.subresource == subresource;
    });
    if (it == entries.end()) it = entries.insert(entries.end(), Entry{manager, "Update", subresource, "", "", {}});
    it->fields.insert(ch.begin(), ch.end());
    it->api_version = api_version;
    it->time = time;
  }
  std::erase_if(entries, [](const Entry& e) { return e.fields.empty(); });
  return entries;
}

ApplyResult apply(const json& live, const json& config, const std::string& manager, bool force,
                  const std::string& subresource, const std::string& api_version, const std::string& time,
                  const TypeInfo& types) {
  ApplyResult result;
  const bool exists = live.is_object();
  std::vector<Entry> entries = exists ? parse_entries(live["metadata"].value("managedFields", json::array()))
                                      : std::vector<Entry>{};
  auto is_applier = [&](const Entry& e) {
    return e.manager == manager && e.operation == "Apply" && e.subresource == subresource;
  };
  const FieldSet cfg = field_set(config, types);
  // Conflicts: a value this configuration changes that another manager owns.
  std::map<size_t, FieldSet> lost;  // entry index -> fields taken from it by force
  for (size_t i = 0; i < entries.size(); ++i) {
    if (is_applier(entries[i]) || !exists) continue;
    for (const auto& p : entries[i].fields) {
      if (!cfg.count(p) || has_descendants(cfg, p)) continue;
      const json* have = value_at(live, p);
      const json* want = value_at(config, p);
      if (have && want && *have != *want) {
        result.conflicts.push_back({manager_label(entries[i]), path_string(p)});
        lost[i].insert(p);
      }
    }
  }
  if (!result.conflicts.empty() && !force) return result;
  result.conflicts.clear();
  for (const auto& [i, taken] : lost) entries[i].fields = minus(entries[i].fields, taken);

  std::vector<std::string> names;
  json merged = exists ? merge(live, config, names, types) : config;
  // What this manager applied before and no longer does goes, unless another manager keeps it.
  FieldSet previous;
  FieldSet others;
  for (const auto& e : entries) {
    if (is_applier(e)) previous = e.fields;
    else others.insert(e.fields.begin(), e.fields.end());
  }
  const FieldSet dropped = minus(previous, cfg);
  for (auto it = dropped.rbegin(); it != dropped.rend(); ++it) {
    if (others.count(*it) || has_descendants(others, *it)) continue;
    remove_at(merged, *it);
  }
  auto self = std::find_if(entries.begin(), entries.end(), is_applier);
  if (self == entries.end()) self = entries.insert(entries.end(), Entry{manager, "Apply", subresource, "", "", {}});
  if (self->fields != cfg || self->time.empty()) self->time = time;
  self->fields = cfg;
  self->api_version = api_version;
  std::erase_if(entries, [](const Entry& e) { return e.fields.empty(); });
  merged["metadata"]["managedFields"] = render_entries(entries);
  result.object = std::move(merged);
  return result;
}

std::string conflict_message(const std::vector<Conflict>& conflicts) {
  if (conflicts.size() == 1)
    return "Apply failed with 1 conflict: conflict with " + conflicts[0].manager + ": " + conflicts[0].field;
  std::map<std::string, std::vector<std::string>> by_manager;
  for (const auto& c : conflicts) by_manager[c.manager].push_back(c.field);
  std::string msg;
  for (const auto& [m, paths] : by_manager) {
    msg += (msg.empty() ? "" : "\n") + ("conflicts with " + m + ":");
    for (const auto& p : paths) msg += "\n- " + p;
  }
  return "Apply failed with " + std::to_string(conflicts.size()) + " conflicts: " + msg;
}

}  // namespace kl::fields
