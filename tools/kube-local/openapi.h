// OpenAPI v3 documents (/openapi/v3 and /openapi/v3/<group-version>) as
// kubectl reads them: to learn that the server validates fields itself
// (the fieldValidation parameter on PATCH) and to `kubectl explain` a field.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "kube-local/registry.h"

namespace kl {

// The index: {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=..."}}}.
json openapi_v3_index(const Registry& registry);
// The document for one group-version path such as "api/v1" or "apis/batch/v1".
std::optional<json> openapi_v3_document(const Registry& registry, const std::string& gv_path);

}  // namespace kl
