#include "reconcile/conditions.h"

#include "common/timefmt.h"

namespace bo::reconcile {

const nlohmann::json* find_condition(const nlohmann::json& conditions, const std::string& type) {
  if (!conditions.is_array()) return nullptr;
  for (const auto& c : conditions)
    if (c.value("type", "") == type) return &c;
  return nullptr;
}

void set_condition(nlohmann::json& conditions, const std::string& type, const std::string& status,
                   const std::string& reason, const std::string& message, int64_t observed_generation,
                   std::chrono::system_clock::time_point now) {
  if (!conditions.is_array()) conditions = nlohmann::json::array();
  nlohmann::json c{{"type", type},
                   {"status", status},
                   {"reason", reason},
                   {"message", message.substr(0, 32768)},
                   {"observedGeneration", observed_generation},
                   {"lastTransitionTime", format_rfc3339(now)}};
  for (auto& existing : conditions) {
    if (existing.value("type", "") != type) continue;
    if (existing.value("status", "") == status && existing.contains("lastTransitionTime"))
      c["lastTransitionTime"] = existing["lastTransitionTime"];
    existing = c;
    return;
  }
  conditions.push_back(c);
}

void remove_condition(nlohmann::json& conditions, const std::string& type) {
  if (!conditions.is_array()) return;
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& c : conditions)
    if (!c.is_object() || c.value("type", "") != type) kept.push_back(c);
  conditions = std::move(kept);
}

}  // namespace bo::reconcile
