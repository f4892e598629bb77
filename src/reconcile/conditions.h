// metav1.Condition bookkeeping: set a condition, keeping its
// lastTransitionTime unless its status actually changes.
#pragma once
#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

namespace bo::reconcile {

void set_condition(nlohmann::json& conditions, const std::string& type, const std::string& status,
                   const std::string& reason, const std::string& message, int64_t observed_generation,
                   std::chrono::system_clock::time_point now);
// Drops the condition of `type`, if any (a feature switched off).
void remove_condition(nlohmann::json& conditions, const std::string& type);
[[nodiscard]] const nlohmann::json* find_condition(const nlohmann::json& conditions, const std::string& type);

}  // namespace bo::reconcile
