#include "metrics/metrics.h"

namespace bo::metrics {
namespace {

const prometheus::Histogram::BucketBoundaries kReconcileBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                                   1,     2.5,  5,     10,   30,  60};

}  // namespace

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      kube_requests_(prometheus::BuildCounter()
                         .Name("backup_operator_kube_requests_total")
                         .Help("Requests to the Kubernetes API by verb and HTTP status (0: no answer).")
                         .Register(*registry_)),
      leader_(prometheus::BuildGauge()
                  .Name("backup_operator_leader")
                  .Help("1 while this replica holds the leader lease.")
                  .Register(*registry_)),
      reconcile_total_(prometheus::BuildCounter()
                           .Name("backup_operator_reconcile_total")
                           .Help("Reconciles by controller and result (success, error, requeue, requeue_after).")
                           .Register(*registry_)),
      reconcile_seconds_(prometheus::BuildHistogram()
                             .Name("backup_operator_reconcile_duration_seconds")
                             .Help("Time spent in one reconcile.")
                             .Register(*registry_)),
      cr_reconcile_total_(prometheus::BuildCounter()
                              .Name("controller_runtime_reconcile_total")
                              .Help("Total number of reconciliations per controller.")
                              .Register(*registry_)),
      cr_reconcile_seconds_(prometheus::BuildHistogram()
                                .Name("controller_runtime_reconcile_time_seconds")
                                .Help("Length of time per reconciliation per controller.")
                                .Register(*registry_)),
      depth_(prometheus::BuildGauge()
                 .Name("backup_operator_workqueue_depth")
                 .Help("Keys waiting in a controller's work queue.")
                 .Register(*registry_)),
      cr_depth_(prometheus::BuildGauge().Name("workqueue_depth").Help("Current depth of workqueue.").Register(*registry_)),
      adds_(prometheus::BuildCounter()
                .Name("workqueue_adds_total")
                .Help("Total number of adds handled by workqueue.")
                .Register(*registry_)),
      retries_(prometheus::BuildCounter()
                   .Name("workqueue_retries_total")
                   .Help("Total number of retries handled by workqueue.")
                   .Register(*registry_)),
      missed_(prometheus::BuildCounter()
                  .Name("backup_operator_backup_missed_total")
                  .Help("Schedule slots that passed without a run.")
                  .Register(*registry_)),
      runs_(prometheus::BuildCounter()
                .Name("backup_operator_backup_runs_total")
                .Help("Finished runs by action and result.")
                .Register(*registry_)),
      run_seconds_(prometheus::BuildHistogram()
                       .Name("backup_operator_backup_duration_seconds")
                       .Help("Duration of successful backups, from the job's result.")
                       .Register(*registry_)),
      last_success_(prometheus::BuildGauge()
                        .Name("backup_operator_backup_last_success_timestamp_seconds")
                        .Help("Completion time of the newest successful backup, by type.")
                        .Register(*registry_)),
      condition_(prometheus::BuildGauge()
                     .Name("backup_operator_policy_condition")
                     .Help("1 for each policy condition's current status.")
                     .Register(*registry_)),
      interval_(prometheus::BuildGauge()
                    .Name("backup_operator_backup_interval_seconds")
                    .Help("Seconds between the policy's scheduled backups (what BackupMissed compares against).")
                    .Register(*registry_)),
      last_verified_(prometheus::BuildGauge()
                         .Name("backup_operator_backup_last_verified_timestamp_seconds")
                         .Help("Completion time of the newest backup a verification restore proved good.")
                         .Register(*registry_)),
      databasus_exposed_(prometheus::BuildGauge()
                             .Name("backup_operator_databasus_exposed")
                             .Help("1 while a Service, Ingress, host port or host network reaches the policy's Databasus, or its NetworkPolicy was tampered with.")
                             .Register(*registry_)),
      drill_success_(prometheus::BuildGauge()
                         .Name("backup_operator_drill_last_success_timestamp_seconds")
                         .Help("Completion time of the newest successful restore drill.")
                         .Register(*registry_)),
      wal_last_archived_(prometheus::BuildGauge()
                             .Name("backup_operator_wal_last_archived_timestamp_seconds")
                             .Help("pg_stat_archiver.last_archived_time of the policy's database.")
                             .Register(*registry_)),
      wal_failed_count_(prometheus::BuildGauge()
                            .Name("backup_operator_wal_archive_failures")
                            .Help("pg_stat_archiver.failed_count of the policy's database (a counter PostgreSQL "
                                  "resets with pg_stat_reset_shared('archiver'), hence a gauge; not *_count, which Prometheus "
                                  "reserves for histograms and summaries).")
                            .Register(*registry_)),
      continuous_archiving_(prometheus::BuildGauge()
                                .Name("backup_operator_continuous_archiving")
                                .Help("1 while the policy's ContinuousArchiving condition is True, else 0.")
                                .Register(*registry_)),
      restore_runs_(prometheus::BuildCounter()
                        .Name("backup_operator_restore_runs_total")
                        .Help("Finished RestoreRequests by purpose and result (success, failure, blocked).")
                        .Register(*registry_)),
      restore_seconds_(prometheus::BuildHistogram()
                           .Name("backup_operator_restore_duration_seconds")
                           .Help("Time from a restore's start to its final outcome, validation included.")
                           .Register(*registry_)),
      recovery_seconds_(prometheus::BuildGauge()
                            .Name("backup_operator_restore_recovery_seconds")
                            .Help("The newest measured recovery of a verification or drill: seconds from the scratch "
                                  "server's start to accepting writes (a measured RTO, fetch excluded).")
                            .Register(*registry_)),
      schedule_skew_(prometheus::BuildHistogram()
                         .Name("backup_operator_schedule_skew_seconds")
                         .Help("Time between when a backup is scheduled to run and when its Job is created, by action.")
                         .Register(*registry_)) {
  set_leader(false);
}

void Metrics::kube_request(const std::string& verb, int code) {
  kube_requests_.Add({{"verb", verb}, {"code", std::to_string(code)}}).Increment();
}

void Metrics::set_leader(bool leader) { leader_.Add({}).Set(leader ? 1 : 0); }

void Metrics::reconcile(const std::string& controller, const std::string& result, double seconds) {
  reconcile_total_.Add({{"controller", controller}, {"result", result}}).Increment();
  reconcile_seconds_.Add({{"controller", controller}}, kReconcileBuckets).Observe(seconds);
  cr_reconcile_total_.Add({{"controller", controller}, {"result", result}}).Increment();
  cr_reconcile_seconds_.Add({{"controller", controller}}, kReconcileBuckets).Observe(seconds);
}

void Metrics::queue_depth(const std::string& controller, double depth) {
  depth_.Add({{"controller", controller}}).Set(depth);
  cr_depth_.Add({{"name", controller}}).Set(depth);
}

void Metrics::queue_add(const std::string& controller) { adds_.Add({{"name", controller}}).Increment(); }
void Metrics::queue_retry(const std::string& controller) { retries_.Add({{"name", controller}}).Increment(); }

}  // namespace bo::metrics

namespace bo::metrics {

void Metrics::track(const std::string& key, const void* series, std::function<void()> remove) {
  std::lock_guard lock(mu_);
  removers_[key].try_emplace(series, std::move(remove));
}

void Metrics::backup_missed(const std::string& ns, const std::string& policy, int n) {
  auto& c = missed_.Add({{"namespace", ns}, {"policy", policy}});
  c.Increment(n);
  track(ns + "/" + policy, &c, [this, &c] { missed_.Remove(&c); });
}

void Metrics::backup_run(const std::string& ns, const std::string& policy, const std::string& action,
                         const std::string& result, double seconds) {
  auto& c = runs_.Add({{"namespace", ns}, {"policy", policy}, {"action", action}, {"result", result}});
  c.Increment();
  track(ns + "/" + policy, &c, [this, &c] { runs_.Remove(&c); });
  if (seconds > 0) {
    static const prometheus::Histogram::BucketBoundaries kBuckets = {10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200};
    auto& h = run_seconds_.Add({{"namespace", ns}, {"policy", policy}, {"action", action}}, kBuckets);
    h.Observe(seconds);
    track(ns + "/" + policy, &h, [this, &h] { run_seconds_.Remove(&h); });
  }
}

void Metrics::backup_last_success(const std::string& ns, const std::string& policy, const std::string& type,
                                  double ts) {
  auto& g = last_success_.Add({{"namespace", ns}, {"policy", policy}, {"type", type}});
  g.Set(ts);
  track(ns + "/" + policy, &g, [this, &g] { last_success_.Remove(&g); });
}

void Metrics::backup_interval(const std::string& ns, const std::string& policy, double seconds) {
  auto& g = interval_.Add({{"namespace", ns}, {"policy", policy}});
  g.Set(seconds);
  track(ns + "/" + policy, &g, [this, &g] { interval_.Remove(&g); });
}

void Metrics::backup_last_verified(const std::string& ns, const std::string& policy, double ts) {
  auto& g = last_verified_.Add({{"namespace", ns}, {"policy", policy}});
  g.Set(ts);
  track(ns + "/" + policy, &g, [this, &g] { last_verified_.Remove(&g); });
}

void Metrics::databasus_exposed(const std::string& ns, const std::string& policy, bool enabled, bool exposed) {
  const prometheus::Labels labels{{"namespace", ns}, {"policy", policy}};
  if (!enabled) {
    if (!databasus_exposed_.Has(labels)) return;
    auto* g = &databasus_exposed_.Add(labels);
    std::lock_guard lock(mu_);
    if (auto it = removers_.find(ns + "/" + policy); it != removers_.end()) it->second.erase(g);
    databasus_exposed_.Remove(g);
    return;
  }
  auto& g = databasus_exposed_.Add(labels);
  g.Set(exposed ? 1 : 0);
  track(ns + "/" + policy, &g, [this, &g] { databasus_exposed_.Remove(&g); });
}

void Metrics::drill_last_success(const std::string& ns, const std::string& policy, double ts) {
  auto& g = drill_success_.Add({{"namespace", ns}, {"policy", policy}});
  g.Set(ts);
  track(ns + "/" + policy, &g, [this, &g] { drill_success_.Remove(&g); });
}

void Metrics::continuous_archiving(const std::string& ns, const std::string& policy, bool healthy,
                                   std::optional<double> last_archived_ts, std::optional<double> failed_count) {
  const prometheus::Labels labels{{"namespace", ns}, {"policy", policy}};
  const std::string key = ns + "/" + policy;
  auto& c = continuous_archiving_.Add(labels);
  c.Set(healthy ? 1 : 0);
  track(key, &c, [this, &c] { continuous_archiving_.Remove(&c); });
  if (last_archived_ts) {
    auto& g = wal_last_archived_.Add(labels);
    g.Set(*last_archived_ts);
    track(key, &g, [this, &g] { wal_last_archived_.Remove(&g); });
  }
  if (failed_count) {
    auto& g = wal_failed_count_.Add(labels);
    g.Set(*failed_count);
    track(key, &g, [this, &g] { wal_failed_count_.Remove(&g); });
  }
}

void Metrics::restore_run(const std::string& ns, const std::string& purpose, const std::string& result,
                          double seconds) {
  restore_runs_.Add({{"namespace", ns}, {"purpose", purpose}, {"result", result}}).Increment();
  if (result == "blocked") return;
  static const prometheus::Histogram::BucketBoundaries kBuckets = {30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400};
  restore_seconds_.Add({{"purpose", purpose}}, kBuckets).Observe(seconds);
}

void Metrics::restore_recovery(const std::string& ns, const std::string& policy, const std::string& purpose,
                               double seconds) {
  auto& g = recovery_seconds_.Add({{"namespace", ns}, {"policy", policy}, {"purpose", purpose}});
  g.Set(seconds);
  track(ns + "/" + policy, &g, [this, &g] { recovery_seconds_.Remove(&g); });
}

void Metrics::schedule_skew(const std::string& action, double seconds) {
  // Sub-second buckets for the goal (slot to Job p99 under a second), then
  // seconds to minutes for a backlog, a restart or an API outage. The CronJob
  // controller's are 1..512 s (ExponentialBuckets(1, 2, 10)), too coarse for that goal.
  static const prometheus::Histogram::BucketBoundaries kBuckets = {0.05, 0.1, 0.25, 0.5, 1,   2.5, 5,
                                                                   10,   30,  60,   120, 300, 600};
  schedule_skew_.Add({{"action", action}}, kBuckets).Observe(seconds < 0 ? 0 : seconds);
}

void Metrics::policy_condition(const std::string& ns, const std::string& policy, const std::string& type,
                               const std::string& status) {
  // Only the current status has a series (value 1): kube-state-metrics' three
  // series per condition cost ~19 KB per policy at 8 conditions in
  // prometheus-cpp. `== 1` alerts and sum by status read the same.
  const std::string key = ns + "/" + policy;
  prometheus::Gauge* stale = nullptr;
  {
    std::lock_guard lock(mu_);
    auto& current = condition_status_[key][type];
    if (current.first == status && current.second) return;
    stale = current.second;
    if (stale) removers_[key].erase(stale);
    current = {status, nullptr};
  }
  if (stale) condition_.Remove(stale);
  auto& g = condition_.Add({{"namespace", ns}, {"policy", policy}, {"type", type}, {"status", status}});
  g.Set(1);
  {
    std::lock_guard lock(mu_);
    condition_status_[key][type].second = &g;
  }
  track(key, &g, [this, &g] { condition_.Remove(&g); });
}

void Metrics::forget_policy(const std::string& ns, const std::string& policy) {
  std::map<const void*, std::function<void()>> removers;
  {
    std::lock_guard lock(mu_);
    condition_status_.erase(ns + "/" + policy);
    auto it = removers_.find(ns + "/" + policy);
    if (it == removers_.end()) return;
    removers = std::move(it->second);
    removers_.erase(it);
  }
  for (auto& [series, remove] : removers) remove();
}

}  // namespace bo::metrics
