// Structural-schema handling for custom resources, as kube-apiserver does it:
// prune unknown fields, apply defaults, then validate (type, enum, format,
// bounds, pattern, required, lengths).
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kl {

using json = nlohmann::json;

struct FieldError {
  std::string type;   // metav1.CauseType: FieldValueRequired, FieldValueInvalid, ...
  std::string field;  // dotted path: spec.database.host
  std::string message;  // as field.Error.Error() renders it
};

// Removes fields the schema does not declare; their paths go to `unknown`.
// At the root, apiVersion, kind and metadata are always kept.
void prune(json& obj, const json& schema, std::vector<std::string>* unknown, bool root = true);
void apply_defaults(json& obj, const json& schema);
[[nodiscard]] std::vector<FieldError> validate_schema(const json& obj, const json& schema, bool root = true);
// x-kubernetes-validations (CEL) at every schema node; rules that read
// oldSelf are transition rules, checked on update only.
[[nodiscard]] std::vector<FieldError> validate_cel(const json& obj, const json* old, const json& schema);

}  // namespace kl
