// Sources, all in kubernetes/kubernetes (staging/src/k8s.io/...):
//   apimachinery/pkg/runtime/conversion.go            Convert_Slice_string_To_bool
//   apimachinery/pkg/apis/meta/internalversion/defaults.go   SetListOptionsDefaults
//   apimachinery/pkg/apis/meta/internalversion/validation/validation.go
//                                                     ValidateListOptions, validateWatchOptions
#include "kube-local/list_options.h"

#include <algorithm>
#include <cctype>

namespace kl {

namespace {

bool equals_ignore_case(const std::string& a, const std::string& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string param(const std::map<std::string, std::string>& q, const std::string& name) {
  auto it = q.find(name);
  return it == q.end() ? std::string() : it->second;
}

FieldError forbidden(const std::string& field, const std::string& detail) {
  return {"FieldValueForbidden", field, field + ": Forbidden: " + detail};
}

FieldError not_supported(const std::string& field, const std::string& value, const std::vector<std::string>& supported) {
  std::string list;
  for (const auto& s : supported) list += (list.empty() ? "" : ", ") + ("\"" + s + "\"");
  return {"FieldValueNotSupported", field,
          field + ": Unsupported value: \"" + value + "\": supported values: " + list};
}

}  // namespace

std::optional<bool> query_bool(const std::map<std::string, std::string>& query, const std::string& name) {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return !(it->second == "0" || equals_ignore_case(it->second, "false"));
}

ParsedListOptions parse_list_options(const std::map<std::string, std::string>& query) {
  ParsedListOptions out;
  ListOptions& o = out.options;
  o.watch = query_bool(query, "watch").value_or(false);
  o.resource_version = param(query, "resourceVersion");
  o.resource_version_match = param(query, "resourceVersionMatch");
  o.send_initial_events = query_bool(query, "sendInitialEvents");
  o.allow_watch_bookmarks = query_bool(query, "allowWatchBookmarks").value_or(false);
  o.continue_token = param(query, "continue");

  // SetListOptionsDefaults (WatchList on).
  if (!o.send_initial_events && o.resource_version_match.empty() && o.watch &&
      (o.resource_version.empty() || o.resource_version == "0")) {
    o.send_initial_events = true;
    o.resource_version_match = "NotOlderThan";
  }

  auto& errs = out.errors;
  const std::string& match = o.resource_version_match;
  if (o.watch) {
    // validateWatchOptions
    if (o.send_initial_events && match != "NotOlderThan")
      errs.push_back(forbidden("resourceVersionMatch", "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"));
    if (!match.empty()) {
      if (!o.send_initial_events)
        errs.push_back(forbidden("resourceVersionMatch",
                                 "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"));
      if (match != "NotOlderThan") errs.push_back(not_supported("resourceVersionMatch", match, {"NotOlderThan"}));
      if (!o.continue_token.empty())
        errs.push_back(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"));
    }
    return out;
  }
  // ValidateListOptions
  if (!match.empty()) {
    if (o.resource_version.empty())
      errs.push_back(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden unless resourceVersion is provided"));
    if (!o.continue_token.empty())
      errs.push_back(forbidden("resourceVersionMatch", "resourceVersionMatch is forbidden when continue is provided"));
    if (match != "Exact" && match != "NotOlderThan")
      errs.push_back(not_supported("resourceVersionMatch", match, {"Exact", "NotOlderThan", ""}));
    if (match == "Exact" && o.resource_version == "0")
      errs.push_back(forbidden("resourceVersionMatch", "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\""));
  }
  if (o.send_initial_events) errs.push_back(forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"));
  return out;
}

}  // namespace kl
