// The sections of plan_restore (restore_plan.cpp), one function each, in the
// order the plan runs them. They share one RestorePlanning: the inputs, the
// parsed request and policy specs (read only once parse_request has run),
// the typed status and the plan being built. A section returns true when it
// decided the plan: nothing after it runs, and plan_restore writes the status.
// Where each lives:
//   restore_deletion.cpp      deletion (every Job, the scratch instance and the freeze go), the finalizer first
//   restore_start.cpp         what the request is (specs, requester, purpose, target), and starting it while Pending
//   restore_scratch.cpp       the scratch instance of a verification or drill: its Job, its outcome, its removal
//   restore_in_place_plan.cpp an in-place restore: stop, restore, start, check (in_place.h)
//   restore_jobs.cpp          the restore Job into a namespace or claim, and what it reported
//   restore_validation.cpp    the validation Jobs after it, a rerun of a failed validation, their outcome
//   restore_freeze.cpp        the freeze follows MutationsBlocked
//   restore_conditions.cpp    Blocked, a policy gone mid-run, Reconciling/Stalled, the status written
#pragma once
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/backup_policy.h"
#include "api/restore_request.h"
#include "api/restore_request_status.h"
#include "reconcile/conditions.h"
#include "reconcile/restore_plan.h"
#include "reconcile/scratch.h"

namespace bo::reconcile::restore_plan {

// status.validation[].output keeps this many bytes (the tail).
inline constexpr size_t kOutputLimit = 4096;

struct RestorePlanning {
  RestorePlanning(const RestoreInputs& in, api::RestoreRequestStatus& status, nlohmann::json& conditions,
                  RestorePlan& plan);

  const RestoreInputs& in;
  const nlohmann::json& meta;  // the request's metadata
  const std::string ns, name;
  const int64_t gen;
  api::RestoreRequestStatus& status;
  nlohmann::json& conditions;  // status.conditions, written when the plan ends
  RestorePlan& plan;
  const std::string rr_ref;  // namespace/name
  const std::string target;  // restore_target(request)
  // Verifications and drills run in a scratch instance (scratch.h), named after the request in the target.
  const bool scratch;
  const std::string scratch_obj;

  // What the request is (parse_request).
  std::string phase;  // as read, and as the plan moves it on (status.phase may go ahead of it)
  std::expected<api::RestoreRequestSpec, api::Problem> spec = std::unexpected(api::Problem{});
  bool in_place = false;
  std::optional<api::BackupPolicySpec> policy_spec;
  std::string image;  // the operator's image for its Jobs
  // A started restore (read_started): its checks, its backup, its validation run.
  std::vector<api::ValidationCheck> checks;
  std::string backup_id, checksum;
  int attempt = 0;

  void cond(const char* type, const char* st, const std::string& reason, const std::string& msg);
  void event(const char* type, const char* reason, const std::string& msg);
  [[nodiscard]] double seconds_since_start() const;
  [[nodiscard]] const ObservedRestoreJob* find_job(const std::string& job_name) const;
  // Every value of the policy's Secrets of 4 bytes or more, redacted.
  [[nodiscard]] std::string redact(std::string text) const;
  // A check Job's output as status keeps it: redacted, its last kOutputLimit bytes.
  [[nodiscard]] std::string bounded_output(const std::string& output) const;
  // The request as the owner of the Jobs in its own namespace.
  [[nodiscard]] nlohmann::json owner_ref() const;
  // The scratch instance's claim and NetworkPolicy, by name ("not found" is done).
  void remove_scratch();
};

// status.validation within the CRD's bounds (maxItems, name's maxLength): a
// scratch Job may report more checks, or longer names, than the request has.
[[nodiscard]] std::vector<api::CheckResult> bounded_validation(std::vector<api::CheckResult> entries);
[[nodiscard]] RestorePlan::Outcome outcome_of(const char* result, double seconds);
// A request annotation's value ("" when none).
[[nodiscard]] std::string annotation(const nlohmann::json& request, const char* key);

// --- deletion: remove every Job, the scratch instance and the freeze, then let go (restore_deletion.cpp) ---
[[nodiscard]] bool follow_deletion(RestorePlanning& p);
// --- nothing is created before the finalizer that cleans it up is stored (restore_deletion.cpp) ---
[[nodiscard]] bool add_finalizer_first(RestorePlanning& p);
// --- what the request is; status.requestedBy, purpose and targetNamespace (restore_start.cpp) ---
void parse_request(RestorePlanning& p);
// --- Pending: blocked, waiting, or started (restore_start.cpp) ---
[[nodiscard]] bool start_restore(RestorePlanning& p);
// --- a request whose spec or policy is gone (restore_conditions.cpp) ---
[[nodiscard]] bool fail_without_policy(RestorePlanning& p);
// The started restore's checks, backup and validation run (restore_start.cpp).
void read_started(RestorePlanning& p);
// --- the scratch instance: one Job fetches, recovers and checks (restore_scratch.cpp) ---
[[nodiscard]] bool follow_scratch(RestorePlanning& p);
[[nodiscard]] bool remove_finished_scratch(RestorePlanning& p);
// --- in place: stop, restore, start, check (restore_in_place_plan.cpp) ---
[[nodiscard]] bool follow_in_place(RestorePlanning& p);
// --- the restore Job (restore_jobs.cpp) ---
[[nodiscard]] bool follow_restore_job(RestorePlanning& p);
// --- a rerun of a failed validation, asked for by annotation; the validation Jobs (restore_validation.cpp) ---
[[nodiscard]] bool rerun_validation(RestorePlanning& p);
[[nodiscard]] bool follow_validation(RestorePlanning& p);
// --- the freeze follows MutationsBlocked (restore_freeze.cpp) ---
void follow_freeze(RestorePlanning& p);
// --- conditions and the status written (restore_conditions.cpp) ---
// Blocked: a final phase with a reason and a message; the outcome "blocked". True: the plan is decided.
bool block(RestorePlanning& p, const std::string& reason, const std::string& message);
// Blocked, unless it already is for the same message (nothing to write again). True, as block.
bool block_once(RestorePlanning& p, const std::string& reason, const std::string& message);
// Reconciling and Stalled from the phase; status.conditions and observedGeneration; the plan's status.
void finish(RestorePlanning& p);

// Builders the sections share.
// The restore Job (restore_jobs.cpp): deterministic name, so asking twice never makes two; returns its name.
std::string create_restore_job(RestorePlanning& p, const std::string& backup_id, const std::string& checksum);
// The scratch instance (restore_scratch.cpp): everything it needs, or why it cannot run (a reason and a
// message naming the field).
[[nodiscard]] std::expected<ScratchInputs, api::Problem> scratch_inputs(const RestorePlanning& p,
                                                                        const std::string& backup_id,
                                                                        const std::string& checksum);
void create_scratch(RestorePlanning& p, const ScratchInputs& s);
// The validation Jobs of run `attempt` (restore_validation.cpp).
void create_validation_jobs(RestorePlanning& p, int attempt);

}  // namespace bo::reconcile::restore_plan
