// Decodes the Kubernetes protobuf envelope ("k8s\0" + runtime.Unknown) into
// JSON for the kinds kubectl's typed clients send as protobuf: what its
// generators create here (create job/deployment/service/serviceaccount/role/
// rolebinding/clusterrole/clusterrolebinding/ingress/configmap/secret/
// namespace/token, run, expose), auth can-i's SelfSubjectAccessReview, auth
// whoami's SelfSubjectReview, and
// DeleteOptions (Helm's uninstall). Field numbers are those of k8s.io/api's
// and k8s.io/apimachinery's generated.proto; fields not listed are skipped as
// unknown, as protobuf does. Other kinds answer 415.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kl {

// nullopt when the bytes are not a well-formed envelope of a supported kind.
std::optional<nlohmann::json> decode_k8s_protobuf(const std::string& body);

}  // namespace kl
