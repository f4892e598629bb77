// A small CEL evaluator for what kube-local needs: CRD
// x-kubernetes-validations and ValidatingAdmissionPolicy expressions. It
// covers the common subset of the language over JSON values: literals,
// field selection and indexing, ! && || (with CEL's error-absorbing
// short-circuit), == != < <= > >=, + - * / %, `in`, ?:, has(), size(),
// string startsWith/endsWith/contains/matches, and the list macros
// all/exists/exists_one/map/filter. Anything else is a compile error, never a
// silent pass.
#pragma once
#include <expected>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace kl::cel {

using json = nlohmann::json;

// Evaluates `expr` with the given variables (self, oldSelf, object, request, ...).
std::expected<json, std::string> evaluate(const std::string& expr, const std::map<std::string, json>& vars);

}  // namespace kl::cel
