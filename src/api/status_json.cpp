#include "api/status_json.h"

namespace bo::api::status_json {

using json = nlohmann::json;

std::optional<json> conditions_from_json(const json* v) {
  if (!v || !v->is_array()) return std::nullopt;
  json out = json::array();
  for (const auto& c : *v) {
    if (!c.is_object()) continue;
    const Reader r(c);
    json condition = json::object();
    for (const char* k : {"type", "status", "reason", "message", "lastTransitionTime"}) put(condition, k, r.text(k));
    put(condition, "observedGeneration", r.integer("observedGeneration"));
    out.push_back(std::move(condition));
  }
  return out;
}

}  // namespace bo::api::status_json
