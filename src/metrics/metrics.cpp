#include "metrics/metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <utility>

namespace bo::metrics {
namespace {

const prometheus::Histogram::BucketBoundaries kReconcileBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                                   1,     2.5,  5,     10,   30,  60};

// The per-policy gauges and counters, held by PolicySeries; indexes into kPolicyFamilies.
enum PolicyFamily : size_t {
  kMissed,
  kRuns,
  kLastSuccess,
  kCondition,
  kInterval,
  kLastVerified,
  kDatabasusExposed,
  kDrillSuccess,
  kWalLastArchived,
  kWalFailures,
  kContinuousArchiving,
  kRecoverySeconds,
};

std::vector<PolicySeries::FamilyInfo> policy_families() {
  using prometheus::MetricType;
  return {
      {"backup_operator_backup_missed_total", "Schedule slots that passed without a run.", MetricType::Counter, {}},
      {"backup_operator_backup_runs_total", "Finished runs by action and result.", MetricType::Counter, {"action", "result"}},
      {"backup_operator_backup_last_success_timestamp_seconds",
       "Completion time of the newest successful backup, by type.", MetricType::Gauge, {"type"}},
      // Only the current status has a series (value 1): kube-state-metrics'
      // three series per condition would triple the largest family. `== 1`
      // alerts and sum by status read the same.
      {"backup_operator_policy_condition", "1 for each policy condition's current status.", MetricType::Gauge,
       {"type", "status"}},
      {"backup_operator_backup_interval_seconds",
       "Seconds between the policy's scheduled backups (what BackupMissed compares against).", MetricType::Gauge, {}},
      {"backup_operator_backup_last_verified_timestamp_seconds",
       "Completion time of the newest backup a verification restore proved good.", MetricType::Gauge, {}},
      {"backup_operator_databasus_exposed",
       "1 while a Service, Ingress, host port or host network reaches the policy's Databasus, or its NetworkPolicy was "
       "tampered with.",
       MetricType::Gauge, {}},
      {"backup_operator_drill_last_success_timestamp_seconds", "Completion time of the newest successful restore drill.",
       MetricType::Gauge, {}},
      {"backup_operator_wal_last_archived_timestamp_seconds",
       "pg_stat_archiver.last_archived_time of the policy's database.", MetricType::Gauge, {}},
      {"backup_operator_wal_archive_failures",
       "pg_stat_archiver.failed_count of the policy's database (a counter PostgreSQL "
       "resets with pg_stat_reset_shared('archiver'), hence a gauge; not *_count, which Prometheus "
       "reserves for histograms and summaries).",
       MetricType::Gauge, {}},
      {"backup_operator_continuous_archiving", "1 while the policy's ContinuousArchiving condition is True, else 0.",
       MetricType::Gauge, {}},
      {"backup_operator_restore_recovery_seconds",
       "The newest measured recovery of a verification or drill: seconds from the scratch "
       "server's start to accepting writes (a measured RTO, fetch excluded).",
       MetricType::Gauge, {"purpose"}},
  };
}

// The order one prometheus-cpp Registry gave every family in, when the
// per-policy ones were registered on it too: by type (counters, gauges,
// histograms, summaries), then in order of registration, which was this.
const std::vector<std::string>& registration_order() {
  static const std::vector<std::string> kOrder = {
      "backup_operator_kube_requests_total",
      "backup_operator_leader",
      "backup_operator_reconcile_total",
      "backup_operator_reconcile_duration_seconds",
      "controller_runtime_reconcile_total",
      "controller_runtime_reconcile_time_seconds",
      "backup_operator_workqueue_depth",
      "workqueue_depth",
      "workqueue_adds_total",
      "workqueue_retries_total",
      "backup_operator_backup_missed_total",
      "backup_operator_backup_runs_total",
      "backup_operator_backup_duration_seconds",
      "backup_operator_backup_last_success_timestamp_seconds",
      "backup_operator_policy_condition",
      "backup_operator_backup_interval_seconds",
      "backup_operator_backup_last_verified_timestamp_seconds",
      "backup_operator_databasus_exposed",
      "backup_operator_drill_last_success_timestamp_seconds",
      "backup_operator_wal_last_archived_timestamp_seconds",
      "backup_operator_wal_archive_failures",
      "backup_operator_continuous_archiving",
      "backup_operator_restore_runs_total",
      "backup_operator_restore_duration_seconds",
      "backup_operator_restore_recovery_seconds",
      "backup_operator_schedule_skew_seconds",
  };
  return kOrder;
}

int type_rank(prometheus::MetricType t) {
  switch (t) {
    case prometheus::MetricType::Counter: return 0;
    case prometheus::MetricType::Gauge: return 1;
    case prometheus::MetricType::Histogram: return 2;
    case prometheus::MetricType::Summary: return 3;
    default: return 5;
  }
}

// Where a family goes in the exposition: by type, then by registration_order().
std::pair<int, size_t> exposition_rank(prometheus::MetricType type, const std::string& name) {
  const auto& order = registration_order();
  return {type_rank(type), static_cast<size_t>(std::find(order.begin(), order.end(), name) - order.begin())};
}

// Serializes `family` (moved from) a slice of series at a time, as one
// TextSerializer pass would: HELP and TYPE once, before the first slice.
bool write_registered(prometheus::MetricFamily& family, const TextSink& sink) {
  constexpr size_t kSlice = 256;
  const prometheus::TextSerializer serializer;
  size_t i = 0;
  do {
    std::vector<prometheus::MetricFamily> part(1);
    part[0].name = family.name;
    part[0].type = family.type;
    if (i == 0) part[0].help = family.help;
    const size_t end = std::min(family.metric.size(), i + kSlice);
    part[0].metric.assign(std::make_move_iterator(family.metric.begin() + static_cast<std::ptrdiff_t>(i)),
                          std::make_move_iterator(family.metric.begin() + static_cast<std::ptrdiff_t>(end)));
    std::string text = serializer.Serialize(part);
    if (i > 0) text.erase(0, text.find('\n') + 1);  // the TYPE line, already written
    if (!sink(text)) return false;
    i = end;
  } while (i < family.metric.size());
  return true;
}

// The registry's families and the per-policy ones, merged in registration_order().
class Exposition final : public prometheus::Collectable {
 public:
  Exposition(std::shared_ptr<prometheus::Registry> registry, std::shared_ptr<PolicySeries> series)
      : registry_(std::move(registry)), series_(std::move(series)) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    auto out = registry_->Collect();
    auto more = series_->Collect();
    out.insert(out.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
    std::stable_sort(out.begin(), out.end(), [&](const auto& a, const auto& b) {
      return exposition_rank(a.type, a.name) < exposition_rank(b.type, b.name);
    });
    return out;
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<PolicySeries> series_;
};

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
      run_seconds_(prometheus::BuildHistogram()
                       .Name("backup_operator_backup_duration_seconds")
                       .Help("Duration of successful backups, from the job's result.")
                       .Register(*registry_)),
      restore_runs_(prometheus::BuildCounter()
                        .Name("backup_operator_restore_runs_total")
                        .Help("Finished RestoreRequests by purpose and result (success, failure, blocked).")
                        .Register(*registry_)),
      restore_seconds_(prometheus::BuildHistogram()
                           .Name("backup_operator_restore_duration_seconds")
                           .Help("Time from a restore's start to its final outcome, validation included.")
                           .Register(*registry_)),
      schedule_skew_(prometheus::BuildHistogram()
                         .Name("backup_operator_schedule_skew_seconds")
                         .Help("Time between when a backup is scheduled to run and when its Job is created, by action.")
                         .Register(*registry_)),
      series_(std::make_shared<PolicySeries>(policy_families())),
      exposition_(std::make_shared<Exposition>(registry_, series_)) {
  set_leader(false);
}

bool Metrics::write_text(const TextSink& sink) const {
  auto registered = registry_->Collect();
  // Each family in exposition order: a registered one by its index in `registered`, a per-policy one by its
  // index in PolicySeries (the other index SIZE_MAX).
  struct Item {
    std::pair<int, size_t> rank;
    size_t registered;
    size_t policy_family;
  };
  std::vector<Item> items;
  for (size_t i = 0; i < registered.size(); ++i)
    items.push_back({exposition_rank(registered[i].type, registered[i].name), i, SIZE_MAX});
  const auto& policy_families = series_->families();
  for (size_t f = 0; f < policy_families.size(); ++f)
    items.push_back({exposition_rank(policy_families[f].type, policy_families[f].name), SIZE_MAX, f});
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.rank < b.rank; });
  for (const auto& item : items) {
    const bool ok = item.registered != SIZE_MAX ? write_registered(registered[item.registered], sink)
                                                : series_->write_family(item.policy_family, sink);
    if (!ok) return false;
  }
  return true;
}

std::string Metrics::text() const {
  std::string out;
  write_text([&](std::string_view piece) {
    out.append(piece);
    return true;
  });
  return out;
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
  series_->add(ns, policy, kMissed, {}, n);
}

void Metrics::backup_run(const std::string& ns, const std::string& policy, const std::string& action,
                         const std::string& result, double seconds) {
  series_->add(ns, policy, kRuns, {action, result}, 1);
  if (seconds > 0) {
    static const prometheus::Histogram::BucketBoundaries kBuckets = {10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200};
    auto& h = run_seconds_.Add({{"namespace", ns}, {"policy", policy}, {"action", action}}, kBuckets);
    h.Observe(seconds);
    track(ns + "/" + policy, &h, [this, &h] { run_seconds_.Remove(&h); });
  }
}

void Metrics::backup_last_success(const std::string& ns, const std::string& policy, const std::string& type,
                                  double ts) {
  series_->set(ns, policy, kLastSuccess, {type}, ts);
}

void Metrics::backup_interval(const std::string& ns, const std::string& policy, double seconds) {
  series_->set(ns, policy, kInterval, {}, seconds);
}

void Metrics::backup_last_verified(const std::string& ns, const std::string& policy, double ts) {
  series_->set(ns, policy, kLastVerified, {}, ts);
}

void Metrics::databasus_exposed(const std::string& ns, const std::string& policy, bool enabled, bool exposed) {
  if (!enabled) {
    series_->remove(ns, policy, kDatabasusExposed, {});
    return;
  }
  series_->set(ns, policy, kDatabasusExposed, {}, exposed ? 1 : 0);
}

void Metrics::drill_last_success(const std::string& ns, const std::string& policy, double ts) {
  series_->set(ns, policy, kDrillSuccess, {}, ts);
}

void Metrics::continuous_archiving(const std::string& ns, const std::string& policy, bool healthy,
                                   std::optional<double> last_archived_ts, std::optional<double> failed_count) {
  series_->set(ns, policy, kContinuousArchiving, {}, healthy ? 1 : 0);
  if (last_archived_ts) series_->set(ns, policy, kWalLastArchived, {}, *last_archived_ts);
  if (failed_count) series_->set(ns, policy, kWalFailures, {}, *failed_count);
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
  series_->set(ns, policy, kRecoverySeconds, {purpose}, seconds);
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
  // One series per type, labelled with the current status: a new status replaces it.
  series_->set(ns, policy, kCondition, {type, status}, 1, /*identity=*/1);
}

void Metrics::forget_policy(const std::string& ns, const std::string& policy) {
  series_->remove_policy(ns, policy);
  std::map<const void*, std::function<void()>> removers;
  {
    std::lock_guard lock(mu_);
    auto it = removers_.find(ns + "/" + policy);
    if (it == removers_.end()) return;
    removers = std::move(it->second);
    removers_.erase(it);
  }
  for (auto& [series, remove] : removers) remove();
}

}  // namespace bo::metrics
