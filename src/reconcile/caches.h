// The informers the controllers share (as controller-runtime's shared cache):
// one watch and one copy of each kind, however many controllers read it.
// Jobs and Pods are limited to the operator's own (managed-by label) and
// slimmed to the fields reconciles read. With watched namespaces, one
// informer per namespace and kind, read as one (controller-runtime's
// multi-namespace cache, cache.Options.DefaultNamespaces).
//
// Secrets on a need-to-know basis: the operator watches Secrets' metadata
// only (PartialObjectMetadata: name and resourceVersion, never data) and
// reads a Secret with a GET only when a policy names it and its
// resourceVersion moved. Of such a Secret it holds the key names, for every
// value whether it is empty and a fingerprint to redact it from output
// (common/redaction.h), and the plaintext only of the values it uses itself
// (api::used_value_keys: the database credentials for the archiving probe,
// WALG_AWS_ENDPOINT for its scheme). A Secret no policy names is never read.
#pragma once
#include <chrono>
#include <memory>
#include <mutex>
#include <atomic>
#include <expected>
#include <map>
#include <optional>
#include <set>
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

// The pods the operator caches: those that have ended (Succeeded or Failed;
// Unknown is a lost node's pod, not an ended one).
inline constexpr const char* kEndedPodSelector = "status.phase!=Pending,status.phase!=Running,status.phase!=Unknown";

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

// One informer per watched namespace (or one for all namespaces), read as one.
class NamespacedInformers {
 public:
  // `namespaces` empty: every namespace.
  NamespacedInformers(kube::Client& client, const kube::Resource& resource, const std::vector<std::string>& namespaces,
                      const kube::InformerOptions& opts);
  // Both must be called before the informers run.
  void add_handlers(const kube::InformerHandlers& h);
  void add_index(const std::string& name, const kube::Informer::IndexFn& fn);
  [[nodiscard]] bool synced() const;
  // nullptr also for a namespace not watched.
  [[nodiscard]] kube::ObjPtr get(const std::string& ns, const std::string& name) const;
  [[nodiscard]] std::vector<kube::ObjPtr> list(const std::string& ns = "") const;
  [[nodiscard]] std::vector<kube::ObjPtr> by_index(const std::string& index, const std::string& value) const;
  [[nodiscard]] std::vector<std::string> keys_by_index(const std::string& index, const std::string& value) const;
  [[nodiscard]] size_t size() const;
  [[nodiscard]] const std::vector<std::unique_ptr<kube::Informer>>& informers() const { return informers_; }

 private:
  std::vector<std::string> namespaces_;  // parallel to informers_; {""}: all
  std::vector<std::unique_ptr<kube::Informer>> informers_;
};

// Whether a pod shows anything view_job reads: a final phase, a terminated
// container, or an init container that failed. A pod being scheduled,
// pulled or started shows none of it.
[[nodiscard]] bool pod_has_ended(const nlohmann::json& pod);

// Whether a cached (slim_job) Job changed in anything a reconcile reads:
// anything but its resourceVersion. The Job controller's own bookkeeping
// (active and ready counts, startTime) is not cached, so at a slot the
// status write that follows each due Job's create wakes no one.
[[nodiscard]] bool job_changed(const nlohmann::json& old_job, const nlohmann::json& new_job);

[[nodiscard]] JobView view_job(const nlohmann::json& job, const NamespacedInformers& pods, const std::string& container,
                               PodGrace& grace);

// Parses --watch-namespace values: each may be a comma-separated list;
// blanks are dropped, duplicates once. An error names the bad value.
[[nodiscard]] std::expected<std::vector<std::string>, std::string> parse_watch_namespaces(
    const std::vector<std::string>& values);

class Caches {
 public:
  // `namespaces` empty: every namespace.
  Caches(kube::Client& client, std::vector<std::string> namespaces);
  Caches(kube::Client& client, const std::string& watch_namespace)
      : Caches(client, watch_namespace.empty() ? std::vector<std::string>{} : std::vector<std::string>{watch_namespace}) {}
  ~Caches();
  // Handlers and indexes must be added before start().
  void start();
  void stop();
  [[nodiscard]] bool synced() const;
  [[nodiscard]] const std::vector<std::string>& namespaces() const { return namespaces_; }
  // Whether `ns` is watched (always, without watched namespaces).
  [[nodiscard]] bool watches(const std::string& ns) const;
  // What the operator holds of the Secrets `policy_spec` names in `ns` (those
  // that exist): see the file comment. Reads a named Secret (GET) when it is
  // not held yet, its resourceVersion moved, or the spec uses a value not held.
  [[nodiscard]] kube::Result<api::SecretData> secret_data(const std::string& ns, const nlohmann::json& policy_spec);
  // The same for Secrets named directly (every value fingerprinted only): a
  // verification target's storage Secret, whose key names a scratch pod takes.
  [[nodiscard]] kube::Result<api::SecretData> named_secrets(const std::string& ns, const std::vector<std::string>& names);
  // For tests: the Secrets held ("namespace/name"), and one's values as held.
  [[nodiscard]] std::vector<std::string> held_secrets() const;
  [[nodiscard]] std::optional<std::map<std::string, api::SecretValue>> held_secret(const std::string& ns,
                                                                                   const std::string& name) const;
  // How many Secrets were read (GET) so far.
  [[nodiscard]] uint64_t secret_reads() const { return secret_reads_.load(); }

  NamespacedInformers policies;
  NamespacedInformers restores;
  NamespacedInformers jobs;
  NamespacedInformers pods;
  NamespacedInformers secrets;  // metadata only: namespace, name, resourceVersion
  // Databasus: the operator's own Deployments, NetworkPolicies and claims, and
  // every Service and Ingress (the exposure audit looks for ones reaching its pods).
  NamespacedInformers deployments;
  NamespacedInformers network_policies;
  NamespacedInformers claims;
  NamespacedInformers services;
  NamespacedInformers ingresses;

 private:
  // 56 bytes and 88 a value (a map and a set were 192 and 176): a
  // 10 000-policy fleet holds 20 000 Secrets with 50 000 values.
  struct HeldSecret {
    std::string resource_version;
    std::vector<std::pair<std::string, api::SecretValue>> data;  // by key, sorted
    // Whether every one of `keys` the Secret has is held in plaintext.
    [[nodiscard]] bool holds(const std::set<std::string>& keys) const;
    [[nodiscard]] std::map<std::string, api::SecretValue> values() const { return {data.begin(), data.end()}; }
  };
  void forget_unnamed(const std::string& ns, const std::string& name);
  // Reads `names` in `ns` as secret_data says; `wanted`: name -> keys whose plaintext is held.
  [[nodiscard]] kube::Result<api::SecretData> read_secrets(const std::string& ns, const std::vector<std::string>& names,
                                                           const std::map<std::string, std::set<std::string>>& wanted);

  kube::Client& client_;
  std::vector<std::string> namespaces_;
  mutable std::mutex held_mu_;
  std::map<std::string, HeldSecret> held_;  // "namespace/name"
  std::atomic<uint64_t> secret_reads_{0};
  std::vector<std::jthread> threads_;
};

}  // namespace bo::reconcile
