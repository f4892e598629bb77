// Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for,
// with additionalPrinterColumns (a JSONPath subset) for custom resources.
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kube-local/registry.h"
#include "kube-local/store.h"

namespace kl {

// JSONPath as printer columns use it: .a.b, ['a'], [0], [*], [?(@.k=="v")], [?(@.k!="v")].
std::vector<json> eval_jsonpath(const json& obj, const std::string& path);

json to_table(const ResourceType& type, const std::vector<ObjPtr>& objects, std::chrono::system_clock::time_point now,
              const std::string& include_object, const json& list_metadata);

}  // namespace kl
