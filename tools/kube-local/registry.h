// The kinds kube-local serves: the built-in table plus one entry per served
// version of every stored CustomResourceDefinition.
#pragma once
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kl {

using json = nlohmann::json;

struct ResourceType {
  std::string group;
  std::string version;
  std::string resource;  // plural, as in the URL
  std::string kind;
  std::string singular;
  bool namespaced = true;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  std::vector<std::string> subresources;  // "status", "scale", "token"
  std::vector<std::string> verbs;
  bool generation = false;  // keeps metadata.generation (bumped on spec changes)
  bool virtual_only = false;  // create-only reviews, never stored
  bool custom = false;
  std::string crd_name;
  json schema;           // openAPIV3Schema for custom resources
  json printer_columns;  // additionalPrinterColumns for custom resources
  // "group/resource" of another kind whose store this one shares (events.k8s.io
  // Events are core Events: one resource in kube-apiserver, converted at the API).
  std::string storage;

  // Where the objects are stored: "group/resource", "" group for core.
  [[nodiscard]] std::string gr() const { return storage.empty() ? group + "/" + resource : storage; }
  [[nodiscard]] std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  [[nodiscard]] bool has_subresource(const std::string& s) const;
};

using TypePtr = std::shared_ptr<const ResourceType>;

class Registry {
 public:
  Registry();  // registers the built-in kinds

  [[nodiscard]] TypePtr find(const std::string& group, const std::string& version,
                             const std::string& resource) const;
  [[nodiscard]] TypePtr find_kind(const std::string& api_version, const std::string& kind) const;
  // Any served version of group/resource (for storage-level operations such as GC).
  [[nodiscard]] TypePtr find_gr(const std::string& gr) const;
  [[nodiscard]] std::vector<TypePtr> all() const;

  // Replaces the entries derived from one CRD (empty `crd` removes them).
  void set_crd(const std::string& crd_name, const json& crd);

 private:
  void add(ResourceType t);
  mutable std::shared_mutex mu_;
  std::vector<TypePtr> types_;
};

}  // namespace kl
