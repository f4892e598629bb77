// What the BackupPolicy plan tests (backup_policy_plan_test.cpp,
// state_bundle_plan_test.cpp) build their inputs from: the policy object
// around a spec, the storage Secret, the background data volume check
// having found the spec's claim, and the inputs around a policy, its
// Secrets and Jobs at a time.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/timefmt.h"
#include "reconcile/backup_policy_plan.h"

namespace plan_fixtures {

// The BackupPolicy supabase/db (uid u1, generation 1) with `spec`.
inline nlohmann::json policy_object(nlohmann::json spec) {
  return {{"apiVersion", "backup.si.dev/v1alpha1"}, {"kind", "BackupPolicy"},
          {"metadata", {{"name", "db"}, {"namespace", "supabase"}, {"uid", "u1"}, {"generation", 1},
                        {"creationTimestamp", "2026-11-24T09:30:00Z"}}},
          {"spec", std::move(spec)}};
}

// The storage Secret walg-storage as the plan reads it (its secret key "CANARY").
inline std::map<std::string, bo::api::SecretValue> storage_secret() {
  return {{"WALG_S3_PREFIX", "s3://b"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
          {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY"}, {"WALG_AWS_ENDPOINT", "https://s3"}};
}

// The background data volume check found the spec's claim (the default of these policies).
inline bo::reconcile::DataVolumeCheck claim_found() {
  bo::reconcile::DataVolumeCheck c;
  c.resolved = true;
  c.volume.claim_name = "supabase-db-data";
  c.volume.mount_path = "/var/lib/postgresql/data";
  c.volume.run_as_user = 101;
  c.volume.run_as_group = 102;
  c.message = "claim supabase-db-data exists";
  return c;
}

// `now` in RFC 3339; the data volume found. The catalog is in step with
// storage (status.schedules.catalog set, as after the policy's first catalog
// Job) unless `catalog_synced` is false or the status says otherwise already.
inline bo::reconcile::PlanInputs plan_inputs(nlohmann::json policy, bo::api::SecretData secrets, const char* now,
                                             std::vector<bo::reconcile::ObservedJob> jobs, bool catalog_synced = true) {
  bo::reconcile::PlanInputs in;
  if (catalog_synced && !policy.value("status", nlohmann::json::object()).value("schedules", nlohmann::json::object()).contains("catalog"))
    policy["status"]["schedules"]["catalog"]["lastScheduleTime"] = "2026-11-24T09:30:00Z";
  in.policy = std::move(policy);
  in.jobs = std::move(jobs);
  in.secrets = std::move(secrets);
  in.now = *bo::parse_rfc3339(now);
  in.data_volume = claim_found();
  return in;
}

}  // namespace plan_fixtures
