// metav1.Condition bookkeeping: set a condition, keeping its
// lastTransitionTime unless its status actually changes; and the two
// abnormal-true conditions kstatus reads (Reconciling, Stalled).
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

// Where the operator stands with the current generation, as kstatus
// (sigs.k8s.io/cli-utils pkg/kstatus, which Flux uses) and the API
// conventions' abnormal-true conditions put it:
//   kReconciling: still acting on it (Reconciling=True -> kstatus InProgress);
//   kStalled: cannot go on without a human (Stalled=True -> kstatus Failed),
//     with the same reason as Ready=False;
//   kSteady: neither (both False -> kstatus Current).
struct Progress {
  enum class State { kSteady, kReconciling, kStalled } state = State::kSteady;
  std::string reason, message;  // of the condition that is True
};
// Writes both Reconciling and Stalled (present in every state, False when
// not so), with messages that do not change while the state does not, so a
// steady object is written once and then never again for them.
void set_progress(nlohmann::json& conditions, const Progress& progress, int64_t observed_generation,
                  std::chrono::system_clock::time_point now);

}  // namespace bo::reconcile
