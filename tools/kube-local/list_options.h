// ListOptions as kube-apiserver decodes, defaults and validates them for list
// and watch requests, before any storage is touched:
//   - booleans from the query (runtime.Convert_Slice_string_To_bool): present
//     and not "0"/"false" (any case) means true, so `watch=True` is a watch;
//   - internalversion.SetListOptionsDefaults with the WatchList feature on (its
//     default since 1.32): a watch with resourceVersion "" or "0" and neither
//     sendInitialEvents nor resourceVersionMatch becomes
//     sendInitialEvents=true&resourceVersionMatch=NotOlderThan;
//   - internalversion/validation ValidateListOptions and validateWatchOptions,
//     whose errors the handler (endpoints/handlers/get.go) returns as a 422
//     Invalid for kind ListOptions.meta.k8s.io named "".
// Pure: a query map in, options or field errors out.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kube-local/schema.h"

namespace kl {

// The value of a boolean query parameter, or nullopt when it is absent.
[[nodiscard]] std::optional<bool> query_bool(const std::map<std::string, std::string>& query, const std::string& name);

struct ListOptions {
  bool watch = false;
  std::string resource_version;
  std::string resource_version_match;  // "", "Exact" or "NotOlderThan"
  std::optional<bool> send_initial_events;
  bool allow_watch_bookmarks = false;
  std::string continue_token;

  // A watch that streams the current state first (KEP-3157, or a legacy watch from "" or "0").
  [[nodiscard]] bool sends_initial_events() const { return watch && send_initial_events.value_or(false); }
  // The cacher's isListWatchRequest: only then the initial events end with an annotated BOOKMARK.
  [[nodiscard]] bool ends_initial_events_with_bookmark() const {
    return sends_initial_events() && allow_watch_bookmarks;
  }
};

struct ParsedListOptions {
  ListOptions options;
  std::vector<FieldError> errors;  // non-empty: answer 422 for ListOptions.meta.k8s.io ""
};

[[nodiscard]] ParsedListOptions parse_list_options(const std::map<std::string, std::string>& query);

}  // namespace kl
