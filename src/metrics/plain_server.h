// /metrics over plain HTTP (--metrics-bind-address without --metrics-secure).
// prometheus-cpp's Exposer served it by collecting every series into
// MetricFamily objects and serializing them into one string: at 10 000
// policies a scrape raised the operator's peak RSS by about 55 MiB. Here
// civetweb (the server the Exposer itself runs on) sends Metrics::write_text's
// pieces as HTTP chunks as they are written, gzip'd when the scraper accepts
// it (Prometheus does), so the per-policy gauges and counters of any number
// of policies cost a scrape about one piece (the registry's families, the
// per-policy duration histogram among them, are still collected first).
#pragma once
#include <expected>
#include <functional>
#include <memory>
#include <string>

#include "metrics/policy_series.h"

namespace bo::metrics {

class PlainServer {
 public:
  explicit PlainServer(TextWriter write);
  ~PlainServer();
  PlainServer(const PlainServer&) = delete;
  PlainServer& operator=(const PlainServer&) = delete;
  // `bind` is host:port (port 0: any free port). GET /metrics answers with
  // the exposition; any other path 404, any other method 405.
  [[nodiscard]] std::expected<void, std::string> start(const std::string& bind);
  void stop();
  // The port it listens on (`bind` on port 0: the one it got); 0 when stopped.
  [[nodiscard]] int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bo::metrics
