// The policy's side of WAL archiving: which credentials the probe uses, and
// the ContinuousArchiving condition plus status.continuousArchiving from the
// newest observation. Pure: the controller probes (postgres::ArchiveProber),
// the planner calls apply_continuous_archiving once.
#pragma once
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "api/backup_policy.h"
#include "common/clock.h"
#include "postgres/archiving.h"

namespace bo::reconcile {

// What the probe connects with: spec.database and the credentials Secret's
// username and password. `problem` says what is missing when it cannot.
struct ArchiveConnection {
  std::optional<postgres::ConnectionParams> params;
  std::string problem;  // e.g. "spec.database.credentialsSecretRef.name is not set"
};
[[nodiscard]] ArchiveConnection archive_connection(const api::BackupPolicySpec& spec, const api::SecretData& secrets);

// Sets the ContinuousArchiving condition (NoCredentials, ProbePending, or
// postgres::evaluate_archiving's verdict) and status.continuousArchiving
// (what the newest successful probe read; the command redacted). It never
// affects Ready or the Jobs: a policy is armed whatever archiving says.
void apply_continuous_archiving(nlohmann::json& status, nlohmann::json& conditions, const api::BackupPolicySpec& spec,
                                const api::SecretData& secrets,
                                const std::optional<postgres::ArchiveObservation>& observation, int64_t generation,
                                SysTime now);

}  // namespace bo::reconcile
