// RestoreRequest status (backup.si.dev/v1alpha1), typed: read once from the
// stored object when the plan starts (reconcile/restore_plan.cpp), planned
// over, written once when it ends. It mirrors the CRD's status schema field
// for field (crds/backup.si.dev_restorerequests.yaml); every leaf is optional
// because the schema requires none, so what was stored comes back out
// unchanged (the controller writes only when the status changed). Reading
// never throws: a field of the wrong type reads as absent, a list entry that
// is not an object is dropped, and anything but an object reads as an empty
// status (the API server refuses all of these, so only a status written
// around it, or by an older operator, has them). Fields the schema does not
// name are pruned by the API server and dropped here too.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bo::api {

// status.requestedBy: the API server's userInfo, as the identity webhook stamped it.
struct RequesterRecord {
  std::optional<std::string> username, uid;
  std::optional<std::vector<std::string>> groups;
  std::optional<std::map<std::string, std::vector<std::string>>> extra;
};

// status.access: the SubjectAccessReview's answer (api/restore_request.h, access_to_json).
struct AccessRecord {
  std::optional<std::string> user, verb, resource, ns;  // ns: "namespace"
  std::optional<bool> allowed;
  std::optional<std::string> reason;
};

// status.backup: the backup restored, fixed when the restore starts.
struct RestoredBackupRef {
  std::optional<std::string> id, checksum;
};

// status.scratch: the scratch instance of a verification or drill.
struct ScratchRecord {
  std::optional<std::string> ns, name, image, size, keep_until;  // ns: "namespace"
  std::optional<bool> removed;
};

// status.inPlace: an in-place restore and the step it is at (reconcile/in_place.h).
struct InPlaceRecord {
  struct Workload {
    std::optional<std::string> kind, name;
  };
  std::optional<Workload> workload;
  std::optional<std::string> claim, data_path, aside_path, aside;
  std::optional<int64_t> run_as_user, run_as_group;
  std::optional<std::string> image, node_name, step;
  std::optional<int64_t> replicas;
  std::optional<bool> discard_current_data, discarded, scaled_down;
  std::optional<std::string> system_identifier;
};

// status.recovery: what the recovered server reported.
struct RecoveryRecord {
  std::optional<bool> recovered;
  std::optional<double> seconds;
  std::optional<std::string> system_identifier, replay_lsn;
};

// status.validation[]: one check's result.
struct CheckResult {
  std::optional<std::string> name, query, expect;
  std::optional<bool> passed;
  std::optional<int64_t> exit_code;
  std::optional<double> duration_ms;
  std::optional<std::string> output, job, stage;
  std::optional<int64_t> attempt;
};

struct RestoreRequestStatus {
  std::optional<int64_t> observed_generation;
  std::optional<std::string> phase, message, purpose, target_namespace, start_time, completion_time, restored_time,
      job_name;
  // metav1.Conditions, kept as JSON for the condition helpers both kinds
  // share (reconcile/conditions.h); read as an array of objects whose known
  // fields have their types.
  std::optional<nlohmann::json> conditions;
  std::optional<RequesterRecord> requested_by;
  std::optional<AccessRecord> access;
  std::optional<RestoredBackupRef> backup;
  std::optional<ScratchRecord> scratch;
  std::optional<InPlaceRecord> in_place;
  std::optional<RecoveryRecord> recovery;
  std::optional<std::vector<CheckResult>> validation;
  std::optional<int64_t> validation_attempt;
  std::optional<std::string> validation_rerun;
};

// Never throws; anything but an object reads as an empty status.
[[nodiscard]] RestoreRequestStatus restore_request_status_from_json(const nlohmann::json& status);
[[nodiscard]] nlohmann::json to_json(const RestoreRequestStatus& status);

// The parts the plan fills from JSON it is handed (the identity annotation,
// an access answer, a check Job's reported checks); never throw.
[[nodiscard]] RequesterRecord requester_record_from_json(const nlohmann::json& who);
[[nodiscard]] AccessRecord access_record_from_json(const nlohmann::json& access);
[[nodiscard]] CheckResult check_result_from_json(const nlohmann::json& check);

}  // namespace bo::api
