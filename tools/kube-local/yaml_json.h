// YAML to JSON as kube-apiserver reads an apply-patch+yaml body: sigs.k8s.io/yaml
// over its go-yaml v2 fork, whose plain scalars resolve as YAML 1.1 does
// (resolve.go: y/yes/on/true are booleans, ~ and null are null, ints and
// floats by their syntax); quoted scalars are always strings.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kl {

// nullopt with `error` set when the text is not YAML or holds something JSON cannot (a non-string key).
[[nodiscard]] std::optional<nlohmann::json> yaml_to_json(const std::string& text, std::string* error);

}  // namespace kl
