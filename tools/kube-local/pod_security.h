// Pod Security admission (staging/src/k8s.io/pod-security-admission): the
// baseline and restricted profiles, evaluated as policy/registry.go does
// (baseline checks, then the restricted ones, each in check-file order), with
// each check's forbidden reason and detail from policy/check_*.go.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kl {

using json = nlohmann::json;

struct PodSecurityLevel {
  std::string level;    // privileged | baseline | restricted
  std::string version;  // "latest" or "v1.N"
  [[nodiscard]] std::string str() const { return level + ":" + version; }
};

// The namespace's pod-security.kubernetes.io/<mode> and <mode>-version labels
// (mode: enforce, warn, audit); nullopt when unset (privileged).
[[nodiscard]] std::optional<PodSecurityLevel> pod_security_level(const json& namespace_labels, const std::string& mode);

// AggregateCheckResult.ForbiddenDetail() of `spec` (and `meta`) against
// `level`: empty when allowed, else e.g. `allowPrivilegeEscalation != false
// (container "c" must set securityContext.allowPrivilegeEscalation=false), ...`.
[[nodiscard]] std::string pod_security_violations(const std::string& level, const json& meta, const json& spec);

}  // namespace kl
