// The RestoreRequest reconciler's decisions as one pure function (POLICY.md
// §5, §7): from the request, its policy, the Jobs it owns and the time,
// compute the status to write, the Jobs to create and delete, whether the
// target namespace must be frozen, and the Events to record. Its sections,
// one function each, are listed in restore_plan_parts.h.
//
// Phases: Pending → (Blocked | Restoring) → Validating → (Succeeded | Failed).
// An in-place restore (purpose restore into the policy's own namespace)
// stops the database, restores into its claim, starts it and checks it with
// the target frozen throughout (in_place.h).
// Verifications and drills restore into a scratch instance (scratch.h) whose
// one Job fetches, recovers and runs every check: Restoring → (Succeeded |
// Failed), and a failed one keeps its instance for keepFailedFor, freezing
// nothing (the target is not production).
// A failed validation freezes the target (a ValidatingAdmissionPolicy that
// lets only the operator mutate Deployments, StatefulSets, Secrets and
// ConfigMaps) until the annotation backup.si.dev/rerun-validation asks for a
// rerun and it passes.
#pragma once
#include <chrono>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/restore_request.h"
#include "reconcile/backup_policy_plan.h"

namespace bo::reconcile {

inline const char* const kLabelRestoreRequest = "backup.si.dev/restore-request";
inline const char* const kLabelRestoreNamespace = "backup.si.dev/restore-namespace";
inline const char* const kLabelCheck = "backup.si.dev/check";
inline const char* const kLabelAttempt = "backup.si.dev/validation-attempt";
inline const char* const kRestoreFinalizer = "backup.si.dev/restore-cleanup";
inline const char* const kAnnotationRerun = "backup.si.dev/rerun-validation";
inline const char* const kRequestedByAnnotation = "backup.si.dev/requested-by";
// status.validation holds at most this many results (the CRD's maxItems): 20 checks of
// spec.validation and the built-in ones, twice for an in-place restore (two stages).
inline constexpr size_t kMaxValidationEntries = 64;

struct ObservedRestoreJob {
  std::string name, ns;
  // restore | validate | scratch | in-place-restore | check (from the action label)
  std::string role;
  std::string check;  // validate: the check's name
  int attempt = 0;    // validate: which validation run
  ObservedJob::State state = ObservedJob::State::kActive;
  int exit_code = 0;
  std::string message;  // the pod's termination message
  std::string failure;  // Job condition reason/message when failed
};

struct RestoreInputs {
  nlohmann::json request;  // the stored RestoreRequest
  nlohmann::json policy;   // its BackupPolicy, or null
  // request.spec and policy.spec parsed, once per reconcile, by the
  // controller (which reads them too); unset, the plan parses them itself.
  std::optional<std::expected<api::RestoreRequestSpec, api::Problem>> spec;
  std::optional<std::expected<api::BackupPolicySpec, api::Problem>> policy_spec;
  bool target_is_production = false;
  std::string waiting_for;  // another request holding the target namespace
  std::vector<ObservedRestoreJob> jobs;
  bool freeze_present = false;  // both freeze objects exist
  api::SecretData secrets;      // the policy's Secrets (values are redacted from outputs)
  // The key names of the verification storage Secret (the policy's
  // spec.verification.storageSecretRef) in the target namespace; nullopt when
  // it does not exist there. A scratch instance passes exactly these keys.
  std::optional<std::vector<std::string>> verification_keys;
  SysTime now;
  std::string default_image = kDefaultImage;
  std::string operator_username;  // exempt from the freeze
  std::string operator_namespace;  // never a target (nor is kube-system)
  // The namespaces the operator watches (--watch-namespace; empty: all). A
  // target outside them is refused: its Jobs would never be seen.
  std::vector<std::string> watched_namespaces;
  // While Pending: whether the requester may create Jobs in the target, as
  // the API server answered (or as status.access kept an earlier yes).
  api::AccessCheck access;
  // An in-place restore (in_place.h): its database workload as the
  // controller read it this time; none when it did not look.
  struct Workload {
    bool found = false;
    int64_t replicas = 0;  // spec.replicas
    int pods = 0;          // its pods (by its selector), terminating ones too
  };
  std::optional<Workload> workload;
};

struct RestorePlan {
  nlohmann::json status;
  bool add_finalizer = false;
  bool remove_finalizer = false;
  std::vector<nlohmann::json> create;  // Jobs, each with metadata.namespace
  std::vector<std::pair<std::string, std::string>> remove;  // Jobs: namespace, name
  // Other objects to delete (a scratch instance's claim and NetworkPolicy); "not found" is done.
  struct Removal {
    std::string kind, ns, name;  // kind: PersistentVolumeClaim | NetworkPolicy
    bool operator==(const Removal&) const = default;
  };
  std::vector<Removal> remove_other;
  // An in-place restore's workload to scale (through its scale subresource).
  struct Scale {
    std::string kind, ns, name;
    int64_t replicas = 0;
    bool operator==(const Scale&) const = default;
  };
  std::optional<Scale> scale;
  enum class Freeze { kNone, kApply, kLift } freeze = Freeze::kNone;
  nlohmann::json freeze_policy, freeze_binding;  // when kApply
  std::vector<EventSpec> events;
  // Set when the request reaches a final outcome this time (for metrics).
  struct Outcome {
    std::string result;  // success | failure | blocked
    double seconds = 0;
    // A scratch instance's measured time from server start to accepting
    // writes after recovery (a measured RTO); negative: none.
    double recovery_seconds = -1;
    std::string policy;
  };
  std::optional<Outcome> outcome;
  std::optional<std::chrono::milliseconds> requeue_after;
};

// The namespace a request restores into (spec.targetNamespace, or for purpose
// restore the request's own namespace).
[[nodiscard]] std::string restore_target(const nlohmann::json& request);
// Whether a request still competes for its target namespace (not yet final).
[[nodiscard]] bool restore_in_progress(const nlohmann::json& request);
[[nodiscard]] bool restore_pending(const nlohmann::json& request);
// Name of the cluster-scoped freeze objects of one request.
[[nodiscard]] std::string freeze_name(const std::string& ns, const std::string& name);

[[nodiscard]] RestorePlan plan_restore(const RestoreInputs& in);

}  // namespace bo::reconcile
