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

namespace bo::reconcile {

void set_progress(nlohmann::json& conditions, const Progress& p, int64_t gen, std::chrono::system_clock::time_point now) {
  using State = Progress::State;
  if (p.state == State::kReconciling)
    set_condition(conditions, "Reconciling", "True", p.reason, p.message, gen, now);
  else if (p.state == State::kStalled)
    set_condition(conditions, "Reconciling", "False", "Stalled",
                  "nothing is in progress: the operator cannot go on without a change (see Stalled)", gen, now);
  else
    set_condition(conditions, "Reconciling", "False", "Reconciled",
                  "the operator has acted on this generation; nothing is in progress", gen, now);
  if (p.state == State::kStalled)
    set_condition(conditions, "Stalled", "True", p.reason, p.message, gen, now);
  else
    set_condition(conditions, "Stalled", "False", "NotStalled", "nothing needs a human to go on", gen, now);
}

}  // namespace bo::reconcile
