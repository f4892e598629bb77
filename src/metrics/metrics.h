// The operator's Prometheus metrics (prometheus-cpp). Besides the
// backup_operator_* series, reconcile and workqueue metrics are exported
// under controller-runtime's names so existing dashboards work unchanged.
#pragma once
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>
#include <string>

#include "kube/controller.h"
#include "metrics/policy_series.h"

namespace bo::metrics {

class Metrics final : public kube::ControllerObserver {
 public:
  Metrics();
  // Everything to expose: the registry's families and the per-policy ones
  // (PolicySeries), in the order one prometheus-cpp registry gave them.
  [[nodiscard]] std::shared_ptr<prometheus::Collectable> registry() const { return exposition_; }
  // The same exposition as text, byte for byte what prometheus::TextSerializer
  // writes for registry()->Collect(), handed to `sink` in pieces: the
  // per-policy families straight from PolicySeries (a 10 000-policy scrape
  // never holds more than a piece of them), the others a slice of series at
  // a time. False when `sink` returned false.
  bool write_text(const TextSink& sink) const;
  [[nodiscard]] std::string text() const;
  // How many per-policy gauge and counter series are held (for tests).
  [[nodiscard]] size_t policy_series() const { return series_->series(); }

  void kube_request(const std::string& verb, int code);
  void set_leader(bool leader);
  void reconcile(const std::string& controller, const std::string& result, double seconds) override;
  void queue_depth(const std::string& controller, double depth) override;
  void queue_add(const std::string& controller) override;
  void queue_retry(const std::string& controller) override;

  // Per-policy series; forget_policy() removes them when the policy is deleted.
  void backup_missed(const std::string& ns, const std::string& policy, int n);
  void backup_run(const std::string& ns, const std::string& policy, const std::string& action,
                  const std::string& result, double seconds);
  void backup_last_success(const std::string& ns, const std::string& policy, const std::string& type, double ts);
  void backup_interval(const std::string& ns, const std::string& policy, double seconds);
  void policy_condition(const std::string& ns, const std::string& policy, const std::string& type,
                        const std::string& status);
  void backup_last_verified(const std::string& ns, const std::string& policy, double ts);
  void drill_last_success(const std::string& ns, const std::string& policy, double ts);
  void forget_policy(const std::string& ns, const std::string& policy);
  // 1 while something reaches the policy's Databasus pods; `enabled` false removes the series.
  void databasus_exposed(const std::string& ns, const std::string& policy, bool enabled, bool exposed);

  // WAL archiving (ContinuousArchiving): `healthy` is the condition being
  // True; the last archived time and pg_stat_archiver.failed_count when a
  // probe read them (failed_count is PostgreSQL's counter, which
  // pg_stat_reset_shared('archiver') resets: exported as a gauge).
  void continuous_archiving(const std::string& ns, const std::string& policy, bool healthy,
                            std::optional<double> last_archived_ts, std::optional<double> failed_count);

  // RestoreRequests: result is success, failure or blocked.
  void restore_run(const std::string& ns, const std::string& purpose, const std::string& result, double seconds);
  // A scratch instance's time from server start to accepting writes after
  // recovery: a measured RTO (the newest, per policy and purpose).
  void restore_recovery(const std::string& ns, const std::string& policy, const std::string& purpose, double seconds);

  // Seconds from a scheduled slot to the create of its Job (Kubernetes'
  // cronjob_controller_job_creation_skew_duration_seconds): call once per
  // Job this replica created, never for a create answered 409. Labelled by
  // action only (a handful of values): a namespace/policy label would cost
  // 16 series per policy.
  void schedule_skew(const std::string& action, double seconds);

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& kube_requests_;
  prometheus::Family<prometheus::Gauge>& leader_;
  prometheus::Family<prometheus::Counter>& reconcile_total_;
  prometheus::Family<prometheus::Histogram>& reconcile_seconds_;
  prometheus::Family<prometheus::Counter>& cr_reconcile_total_;
  prometheus::Family<prometheus::Histogram>& cr_reconcile_seconds_;
  prometheus::Family<prometheus::Gauge>& depth_;
  prometheus::Family<prometheus::Gauge>& cr_depth_;
  prometheus::Family<prometheus::Counter>& adds_;
  prometheus::Family<prometheus::Counter>& retries_;
  prometheus::Family<prometheus::Histogram>& run_seconds_;
  prometheus::Family<prometheus::Counter>& restore_runs_;
  prometheus::Family<prometheus::Histogram>& restore_seconds_;
  prometheus::Family<prometheus::Histogram>& schedule_skew_;
  // The per-policy gauges and counters (all but the duration histogram).
  std::shared_ptr<PolicySeries> series_;
  std::shared_ptr<prometheus::Collectable> exposition_;
  std::mutex mu_;
  // The per-policy histogram series, so a deleted policy leaves none behind.
  std::map<std::string, std::map<const void*, std::function<void()>>> removers_;
  void track(const std::string& key, const void* series, std::function<void()> remove);
};

}  // namespace bo::metrics
