// The patch types kubectl and controllers send: JSON merge patch (RFC 7386),
// JSON patch (RFC 6902) and strategic merge patch for the built-in kinds.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kl {

using json = nlohmann::json;

// Each returns the patched document, or nullopt with `error` set.
std::optional<json> apply_merge_patch(const json& target, const json& patch, std::string* error);
std::optional<json> apply_json_patch(const json& target, const json& patch, std::string* error);
std::optional<json> apply_strategic_merge_patch(const json& target, const json& patch, std::string* error);

}  // namespace kl
