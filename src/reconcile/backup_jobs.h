// Pure builders for BackupPolicy runs: which schedule slot is due, the
// deterministic Job name for a slot, and the Job manifest itself. No client,
// no clock, no logging: (spec, observed state, now) in, manifests out.
#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/backup_policy.h"
#include "api/job_env.h"
#include "kube/names.h"
#include "reconcile/data_volume.h"
#include "schedule/cron.h"

namespace bo::reconcile {

using json = nlohmann::json;
using SysTime = std::chrono::system_clock::time_point;

enum class Action { kBackup, kFullBackup, kVerify, kRetain, kOffsiteCopy, kRestore, kStateBundle, kCatalog };

// The backup.si.dev/action label value: backup, full-backup, verify, retain, offsite-copy, restore, state-bundle,
// catalog (rebuilds status.backups from what storage holds).
[[nodiscard]] std::string action_name(Action a);
// supabase-walg-backup, or supabase-walg-restore for restores (verify: a verification restore).
[[nodiscard]] std::string service_name(Action a);

inline constexpr const char* kManagedBy = "backup-operator";
inline constexpr const char* kLabelPolicy = "backup.si.dev/policy";
inline constexpr const char* kLabelService = "backup.si.dev/service";
inline constexpr const char* kLabelAction = "backup.si.dev/action";
inline constexpr const char* kAnnotationSlot = "backup.si.dev/scheduled-at";
inline constexpr const char* kLabelContext = "backup.si.dev/context";  // state-bundle Jobs: the context, or "all"
inline constexpr const char* kStateMount = "/state";                  // the state root inside state-bundle Jobs
inline constexpr const char* kBundleMount = "/bundles";               // a destination claim inside state-bundle Jobs
inline constexpr const char* kDefaultImage = "si-dev/backup-operator:0.1.0";

// The same policy, action and slot always give the same name (at most 63
// characters, so it is valid as the job-name label), which is what makes a
// restarted or duplicated operator unable to create two Jobs for one slot.
// State-bundle Jobs add the context: <policy>-state-<context>-<slot> (or
// <policy>-state-<slot> for every context).
[[nodiscard]] std::string job_name(const std::string& policy, Action a, SysTime slot, const std::string& context = "");
// Derived names and label values are bounded by the one helper in kube/names.h.
using kube::bounded_name;

struct SlotPlan {
  std::optional<SysTime> run;      // the slot to run now, if any
  int missed = 0;                  // slots that passed without a run (outside the starting deadline)
  std::optional<SysTime> latest;   // the most recent slot at or before now
  std::optional<SysTime> next;     // the first slot after now
};

// Slots in (since, now]: only the most recent one runs, and only within the
// starting deadline; older ones count as missed (at most `max_slots` are
// examined; beyond that they all count as missed).
[[nodiscard]] SlotPlan plan_slots(const schedule::Cron& cron, const date::time_zone* tz, SysTime since, SysTime now,
                                  std::chrono::seconds starting_deadline, int max_slots = 1000);

// WALG_DELTA_MAX_STEPS for a policy: the most delta slots that fall strictly
// between two consecutive full-backup slots (over the next few full cycles
// after `from`), so every scheduled delta chains on the last full and a
// missed full makes wal-g fall back to a full push instead of growing the
// chain without bound. 0 (wal-g's default: every push is full) when the
// delta schedule never fires between two fulls.
[[nodiscard]] int delta_max_steps(const schedule::Cron& backup, const schedule::Cron& full, const date::time_zone* tz,
                                  SysTime from);

// Where backup Jobs mount the database's data volume when the spec's
// mountPath is used as is; `data_directory` below overrides it when the
// server reports a directory under the mount.
inline constexpr const char* kDataVolumeName = "pgdata";

struct JobInputs {
  json policy;                           // the BackupPolicy object (for name, namespace, uid)
  api::BackupPolicySpec spec;
  Action action = Action::kBackup;
  SysTime slot;
  std::vector<std::string> storage_keys;  // keys of the storage Secret; WALG_* ones pass through by reference
  std::string default_image = kDefaultImage;
  std::vector<std::string> expire;  // retain: the backup ids to delete (RETAIN_EXPIRE)
  std::string backup_id;            // offsite-copy: the full backup to copy (OFFSITE_BACKUP_ID)
  std::string context;              // state-bundle: the context, or "*" for every context
  // backup/full-backup: the server's data_directory when known (SHOW
  // data_directory, under spec.database.dataVolume.mountPath); empty: the mountPath.
  std::string data_directory;
  int delta_max_steps = 0;  // backup/full-backup: WALG_DELTA_MAX_STEPS
  // backup/full-backup: the checked data volume (claim, mount, uid/gid, and
  // with workloadRef the node the Job is pinned to); none: the spec's dataVolume.
  std::optional<ResolvedDataVolume> data_volume{};
  // backup/full-backup: verified backups whose marker is not in storage yet,
  // as id@checksum@request (VERIFIED_MARKERS): the Job writes them with the
  // storage Secret's credentials (a verification's are read-only).
  std::vector<std::string> verified_markers{};
};

// At most this many markers per backup Job (each id is reported in its 4096-byte result).
inline constexpr size_t kMarkersPerJob = 8;

// The bundle tag of a slot (yyyymmddThhmmssZ): a state-bundle Job's bundles
// are <context>-<tag>, so a retried Job rewrites the same objects.
[[nodiscard]] std::string bundle_tag(SysTime slot);

// The Job env contract (api/job_env.h), shared with the Job side.
using api::join_ids;
using api::kAnnotationExpire;
using api::kRetainExpireEnv;
using api::kVerifiedMarkersEnv;
using api::split_ids;

// What the informer caches of a Job or Pod: only the fields reconciles read
// (identity, labels, the slot and expire annotations, owners, status
// conditions and times, container termination messages). A full Job costs
// ~20 KB in nlohmann::json; this keeps a few.
void slim_job(json& job);
void slim_pod(json& pod);

// A batch/v1 Job whose every secret value reaches the pod by secretKeyRef,
// owned by the policy, and meeting Pod Security "restricted".
[[nodiscard]] json build_job(const JobInputs& in);

}  // namespace bo::reconcile
