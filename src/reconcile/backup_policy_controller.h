// The BackupPolicy controller: informers for policies, their Jobs, Pods and
// Secrets; a work queue of policy keys; and a reconcile that reads the cache,
// asks the pure planner what to do, and does exactly that.
#pragma once
#include <expected>
#include <map>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "kube/client.h"
#include "kube/controller.h"
#include "kube/events.h"
#include "kube/informer.h"
#include "metrics/metrics.h"
#include "postgres/archive_prober.h"
#include "reconcile/caches.h"
#include "reconcile/data_volume_resolver.h"

namespace bo::reconcile {

struct BackupPolicyControllerOptions {
  std::string watch_namespace;  // empty: all
  int workers = 2;
  std::string default_image;
  // How often each policy's database is probed for its WAL archiving state.
  std::chrono::milliseconds archive_probe_interval{std::chrono::seconds(30)};
  // The probe; empty: postgres::probe_archiving (libpq). Tests substitute one.
  postgres::ArchiveProber::ProbeFn archive_probe{};
  // How often each policy's data volume (claim, or workload) is re-checked,
  // and at most how many checks start a second across all policies.
  std::chrono::milliseconds data_volume_interval{std::chrono::seconds(60)};
  double data_volume_checks_per_second = 5;
  // How long a status that would only say the data volume's first check is
  // pending is held back, waiting for that check's answer (which wakes the
  // policy): a new policy's first status is then its judged one.
  std::chrono::milliseconds first_status_hold{std::chrono::seconds(10)};
  // The operator's own namespace: never a verification or drill target.
  std::string operator_namespace{};
  // How soon Databasus' objects are applied again after they were refused
  // (at most; sooner when a backup falls due first).
  std::chrono::milliseconds addon_retry{std::chrono::seconds(30)};
  // Catalog Jobs (run-job catalog) rebuild status.backups from storage when
  // status does not say it matches (PlanInputs::sync_catalog). The operator
  // binary turns it on; off here so that in-process tests whose simulated
  // Jobs (kube-local pod rules) have no catalog outcome keep their Job counts.
  bool catalog_sync = false;
};

class BackupPolicyController {
 public:
  // Adds its handlers to `caches`, which must not have started yet.
  BackupPolicyController(kube::Client& client, Caches& caches, const Clock& clock, kube::EventRecorder& events,
                         metrics::Metrics& metrics, BackupPolicyControllerOptions opts);
  ~BackupPolicyController();

  // Starts the workers once the caches have synced.
  void start();
  // Stops the workers and the archiving prober (for good: no restart).
  void stop();
  [[nodiscard]] bool synced() const;

  // One reconcile of "namespace/name" (public for tests).
  kube::ReconcileResult reconcile(const std::string& key);

 private:
  void enqueue_policy(const std::string& ns, const std::string& name);
  void enqueue_owner(const kube::ObjPtr& obj);
  void enqueue_secret_users(const kube::ObjPtr& secret);
  std::expected<void, std::string> apply_object(const nlohmann::json& obj);
  // backup_operator_schedule_skew_seconds for a scheduled Job this replica just created.
  void observe_schedule_skew(const nlohmann::json& job);

  kube::Client& client_;
  const Clock& clock_;
  kube::EventRecorder& events_;
  metrics::Metrics& metrics_;
  BackupPolicyControllerOptions opts_;
  Caches& caches_;
  kube::Controller controller_;
  PodGrace grace_;
  // Last: its worker enqueues into controller_, so it stops first.
  std::unique_ptr<postgres::ArchiveProber> prober_;
  std::unique_ptr<DataVolumeResolver> volumes_;
};

}  // namespace bo::reconcile
