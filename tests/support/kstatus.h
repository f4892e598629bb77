// kstatus' documented rules as a test oracle: the status that Flux (and kpt,
// cli-utils' `kapply`) compute for one of this operator's objects. Custom
// resources have no type-specific rule in kstatus, so only its generic rules
// apply (sigs.k8s.io/cli-utils pkg/kstatus):
//   - README "Conditions": Reconciling and Stalled follow the "abnormal-true"
//     polarity of the API conventions; observedGeneration tells whether the
//     controller has seen the newest spec.
//   - status/generic.go checkGenericProperties: metadata.deletionTimestamp set
//     -> Terminating; then checkGeneration: metadata.generation present and
//     status.observedGeneration present and different -> InProgress
//     ("LatestGenerationNotObserved"; a missing observedGeneration skips the
//     check); then the conditions in list order: the first Reconciling=True
//     -> InProgress, the first Stalled=True -> Failed.
//   - status/status.go Compute: nothing decided and no legacy rule for the
//     kind -> Current ("Resource is current").
// So an object without any status is Current to kstatus: the caveat the
// README names for the abnormal-true pattern.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace testing_support {

struct KStatus {
  std::string status;  // Current | InProgress | Failed | Terminating
  std::string message;
};

inline KStatus kstatus_compute(const nlohmann::json& u) {
  using nlohmann::json;
  const json meta = u.value("metadata", json::object());
  const json status = u.value("status", json::object());
  if (meta.contains("deletionTimestamp") && meta["deletionTimestamp"].is_string() &&
      !meta["deletionTimestamp"].get<std::string>().empty())
    return {"Terminating", "Resource scheduled for deletion"};
  if (meta.contains("generation") && meta["generation"].is_number_integer() && status.is_object() &&
      status.contains("observedGeneration") && status["observedGeneration"].is_number_integer() &&
      status["observedGeneration"].get<int64_t>() != meta["generation"].get<int64_t>())
    return {"InProgress", u.value("kind", "") + " generation is " + std::to_string(meta["generation"].get<int64_t>()) +
                              ", but latest observed generation is " +
                              std::to_string(status["observedGeneration"].get<int64_t>())};
  if (status.is_object() && status.contains("conditions") && status["conditions"].is_array())
    for (const auto& c : status["conditions"]) {
      if (!c.is_object()) continue;
      if (c.value("type", "") == "Reconciling" && c.value("status", "") == "True") return {"InProgress", c.value("message", "")};
      if (c.value("type", "") == "Stalled" && c.value("status", "") == "True") return {"Failed", c.value("message", "")};
    }
  return {"Current", "Resource is current"};
}

}  // namespace testing_support
