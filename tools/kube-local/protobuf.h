// Decodes the Kubernetes protobuf envelope ("k8s\0" + runtime.Unknown) into
// JSON for the kinds kubectl's typed clients send as protobuf (auth can-i,
// create configmap/secret/namespace, and DeleteOptions with a delete, as Helm
// sends). Other kinds answer 415.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kl {

// nullopt when the bytes are not a well-formed envelope of a supported kind.
std::optional<nlohmann::json> decode_k8s_protobuf(const std::string& body);

}  // namespace kl
