// /openapi/v2, which kubectl still reads to validate a `kind: List` (what
// `kubectl get -o yaml` prints) before creating its items: the definitions of
// the OpenAPI v3 documents under #/definitions, as JSON, and as the protobuf
// kubectl asks for (Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf;
// the message is gnostic's openapi_v2.Document, google/gnostic openapiv2/OpenAPIv2.proto).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "kube-local/registry.h"

namespace kl {

[[nodiscard]] nlohmann::json openapi_v2_document(const Registry& registry);
// gnostic's openapi_v2.Document encoding of a v2 JSON document (definitions and info; paths empty).
[[nodiscard]] std::string openapi_v2_protobuf(const nlohmann::json& doc);

}  // namespace kl
