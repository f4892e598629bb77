// The informers the controllers share (as controller-runtime's shared cache):
// one watch and one copy of each kind, however many controllers read it.
// Jobs and Pods are limited to the operator's own (managed-by label) and
// slimmed to the fields reconciles read.
#pragma once
#include <chrono>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "kube/client.h"
#include "kube/informer.h"
#include "reconcile/backup_policy_plan.h"

namespace bo::reconcile {

inline const kube::Resource kBackupPolicies{"backup.si.dev", "v1alpha1", "backuppolicies", "BackupPolicy", true};
inline const kube::Resource kRestoreRequests{"backup.si.dev", "v1alpha1", "restorerequests", "RestoreRequest", true};

// Index names.
inline constexpr const char* kIndexPolicy = "policy";          // Jobs: backup.si.dev/policy label
inline constexpr const char* kIndexJob = "job";                // Pods: their Job's name
inline constexpr const char* kIndexRestore = "restore";        // Jobs: backup.si.dev/restore-request label
inline constexpr const char* kIndexPolicyRef = "policyRef";    // RestoreRequests: spec.policyRef.name
inline constexpr const char* kIndexSecretRef = "secretRef";    // BackupPolicies: <namespace>/<Secret> they refer to
// BackupPolicies and RestoreRequests: <namespace>/<their name as a label value> (kube::label_value), which
// maps a Job's label back to its owner when the name was too long to be the label.
inline constexpr const char* kIndexLabelName = "labelName";

// Drops what no reconcile reads: managedFields and the last-applied annotation.
void slim_object(nlohmann::json& obj);

// What a Job's status and its pods say: state, the ending pod's termination
// message and exit code, the Job's failure reason, when it finished.
struct JobView {
  ObservedJob::State state = ObservedJob::State::kActive;
  std::string message;
  int exit_code = 0;
  std::string failure;
  std::optional<SysTime> finished;
  bool awaiting_pod = false;  // finished, but the pod's final status is not cached yet
};

// A finished Job's status can reach the cache before its pod's: its result
// waits (up to a grace period) rather than being judged missing.
class PodGrace {
 public:
  // True while the Job (by uid) is still within its grace period.
  bool wait(const std::string& job_uid);
  void done(const std::string& job_uid);

 private:
  std::mutex mu_;
  std::map<std::string, std::chrono::steady_clock::time_point> first_seen_;
};

[[nodiscard]] JobView view_job(const nlohmann::json& job, const kube::Informer& pods, const std::string& container,
                               PodGrace& grace);

class Caches {
 public:
  Caches(kube::Client& client, const std::string& watch_namespace);
  ~Caches();
  // Handlers and indexes must be added before start().
  void start();
  void stop();
  [[nodiscard]] bool synced() const;
  // The decoded contents of the named Secrets that exist in `ns`.
  [[nodiscard]] api::SecretData secret_data(const std::string& ns, const std::vector<std::string>& names) const;

  kube::Informer policies;
  kube::Informer restores;
  kube::Informer jobs;
  kube::Informer pods;
  kube::Informer secrets;
  // Databasus: the operator's own Deployments, NetworkPolicies and claims, and
  // every Service and Ingress (the exposure audit looks for ones reaching its pods).
  kube::Informer deployments;
  kube::Informer network_policies;
  kube::Informer claims;
  kube::Informer services;
  kube::Informer ingresses;

 private:
  std::vector<std::jthread> threads_;
};

}  // namespace bo::reconcile
