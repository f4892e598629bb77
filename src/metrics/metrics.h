// The operator's Prometheus metrics (prometheus-cpp). Besides the
// backup_operator_* series, reconcile and workqueue metrics are exported
// under controller-runtime's names so existing dashboards work unchanged.
#pragma once
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

namespace bo::metrics {

class Metrics {
 public:
  Metrics();
  [[nodiscard]] std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  void kube_request(const std::string& verb, int code);
  void set_leader(bool leader);
  void reconcile(const std::string& controller, const std::string& result, double seconds);
  void queue_depth(const std::string& controller, double depth);
  void queue_add(const std::string& controller);
  void queue_retry(const std::string& controller);

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
};

}  // namespace bo::metrics
