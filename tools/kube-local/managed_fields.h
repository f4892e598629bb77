// Field ownership as kube-apiserver tracks it (metadata.managedFields) and
// server-side apply's merge, after sigs.k8s.io/structured-merge-diff (v4:
// fieldpath, merge/update.go) and apiserver/pkg/endpoints/handlers/fieldmanager
// (internal/structuredmerge.go, stripmeta.go, conflict.go):
//   - a field set is a set of paths; FieldsV1 is its JSON form ("f:name",
//     "k:{...}" for an item of a list keyed by fields, "v:..." for a set member,
//     "." for a map or list item that is owned as a whole besides its fields);
//   - apiVersion, kind and the server-owned metadata are never owned;
//   - an Update (create, PUT, non-apply PATCH) gives its manager the fields it
//     added or changed and takes them from every other manager;
//   - an Apply owns exactly the fields of its configuration: fields it applied
//     before and no longer does are removed unless another manager owns them,
//     and changing a value another manager owns is a conflict unless forced.
// Pure: objects, schemas and managers in; objects, entries or conflicts out.
#pragma once
#include <functional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kl::fields {

using json = nlohmann::json;
using Path = std::vector<std::string>;  // FieldsV1 path elements: "f:spec", "k:{\"name\":\"c\"}", "v:\"x\""
using FieldSet = std::set<Path>;

// How values at a schema path merge: a list is atomic (replaced whole), a map
// keyed by some of its items' fields, or a set of scalars; an object is a
// struct (named fields) or a map (granular: owned as a whole too, ".").
struct ListType {
  enum Kind { kAtomic, kMap, kSet } kind = kAtomic;
  std::vector<std::string> keys;
};
struct TypeInfo {
  // `path` is the field names from the root, list items skipped.
  std::function<ListType(const std::vector<std::string>& path)> list_type;
  std::function<bool(const std::vector<std::string>& path)> is_map;
};

// The list and map types of a kind: `schema` is a custom resource's
// openAPIV3Schema (x-kubernetes-list-type / -list-map-keys, additionalProperties),
// null for a built-in kind, whose types come from the Kubernetes API's own
// markers (+listType=map +listMapKey=..., maps such as labels and data).
// The TypeInfo refers to `schema` (copying it cost a request as much as
// validating it): the schema must outlive it.
[[nodiscard]] TypeInfo type_info(const json* schema, const std::string& kind);

// The paths an object sets (for an Apply: the configuration's fields).
[[nodiscard]] FieldSet field_set(const json& obj, const TypeInfo& types);
// Paths whose value `now` sets and `before` did not, or set differently.
[[nodiscard]] FieldSet changed(const json& before, const json& now, const TypeInfo& types);

[[nodiscard]] json to_fields_v1(const FieldSet& set);
[[nodiscard]] FieldSet from_fields_v1(const json& v1);
// structured-merge-diff's Path.String(): .spec.containers[name="c"].image
[[nodiscard]] std::string path_string(const Path& p);

struct Entry {
  std::string manager;
  std::string operation;  // Apply | Update
  std::string subresource;
  std::string api_version;
  std::string time;
  FieldSet fields;
};
[[nodiscard]] std::vector<Entry> parse_entries(const json& managed_fields);
[[nodiscard]] json render_entries(const std::vector<Entry>& entries);

// An Update by `manager`: the entries after `before` became `now`.
[[nodiscard]] std::vector<Entry> record_update(std::vector<Entry> entries, const json& before, const json& now,
                                               const std::string& manager, const std::string& subresource,
                                               const std::string& api_version, const std::string& time,
                                               const TypeInfo& types);

struct Conflict {
  std::string manager;  // as printManager renders it: "\"kubectl\" using v1"
  std::string field;    // path_string
};
struct ApplyResult {
  json object;                  // the merged object (managedFields set)
  std::vector<Conflict> conflicts;  // non-empty: nothing applied (409), unless forced
};
// An Apply of `config` by `manager` onto `live` (null when the object does not exist yet).
[[nodiscard]] ApplyResult apply(const json& live, const json& config, const std::string& manager, bool force,
                                const std::string& subresource, const std::string& api_version,
                                const std::string& time, const TypeInfo& types);
// The 409 message of fieldmanager's NewConflictError.
[[nodiscard]] std::string conflict_message(const std::vector<Conflict>& conflicts);

}  // namespace kl::fields
