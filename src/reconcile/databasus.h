// Databasus for a policy (the databasus addon, POLICY.md §6): the desired
// Deployment, deny-all-ingress NetworkPolicy and state PVC, and the exposure
// audit, as pure functions. Databasus is never given a Service, host port,
// host network or Ingress; anything that reaches its pods anyway is reported
// (DatabasusPrivate=False, reason Exposed) and the operator's own objects are
// put back as declared.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/backup_policy.h"
#include "reconcile/backup_policy_plan.h"

namespace bo::reconcile {

inline const char* const kLabelComponent = "backup.si.dev/component";
inline constexpr int kDatabasusPort = 4005;
inline constexpr const char* kDatabasusVersionPath = "/api/v1/system/version";
inline constexpr int kDatabasusGid = 999;  // the `databasus` account's fallback group in its image

struct DatabasusObjects {
  nlohmann::json deployment, network_policy, pvc;
};

// `image` is the operator's image (the metadata sidecar runs it).
[[nodiscard]] DatabasusObjects build_databasus(const nlohmann::json& policy, const api::BackupPolicySpec& spec,
                                               const std::string& operator_image);
// The labels every Databasus pod of `policy` carries.
[[nodiscard]] nlohmann::json databasus_pod_labels(const std::string& policy);

// True when every field of `desired` has the same value in `actual` (fields
// the API server adds are ignored; a missing empty list or map counts as empty).
[[nodiscard]] bool contains(const nlohmann::json& actual, const nlohmann::json& desired);

struct DatabasusInputs {
  nlohmann::json policy;
  api::BackupPolicySpec spec;
  std::string operator_image;
  // What the cluster holds now (null when absent).
  nlohmann::json deployment, network_policy, pvc;
  // Services and Ingresses in the policy's namespace.
  std::vector<nlohmann::json> services, ingresses;
  SysTime now;
};

struct DatabasusPlan {
  std::vector<nlohmann::json> apply;              // create, or bring back to the declared spec
  std::vector<std::pair<std::string, std::string>> remove;  // kind (Deployment|NetworkPolicy|PersistentVolumeClaim), name
  std::vector<std::string> exposures;             // one line per object reaching the pods
  bool enabled = false;                           // the addon is on
  std::optional<bool> ready;                      // the Deployment's readiness (nullopt: no Deployment yet)
  std::string ready_message;
};

[[nodiscard]] DatabasusPlan plan_databasus(const DatabasusInputs& in);

// Sets DatabasusPrivate and DatabasusReady (or removes them when the addon is
// off) and returns the Events to record: a DatabasusExposed Warning on every
// reconcile that finds an exposure (the recorder aggregates repeats).
std::vector<EventSpec> databasus_conditions(const DatabasusPlan& plan, nlohmann::json& conditions, int64_t generation,
                                            SysTime now);

}  // namespace bo::reconcile
