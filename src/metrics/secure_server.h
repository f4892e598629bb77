// /metrics over HTTPS for clients that prove who they are, as well-run
// operators serve it (controller-runtime's WithAuthenticationAndAuthorization):
// the bearer token is checked with a TokenReview, then the caller's right to
// GET /metrics with a SubjectAccessReview. Answers are cached for a minute.
#pragma once
#include <chrono>
#include <expected>
#include <functional>
#include <memory>
#include <string>

#include "common/certs.h"
#include "common/serving_cert.h"
#include "kube/client.h"
#include "metrics/policy_series.h"

namespace bo::metrics {

// 200 (allowed), 401 (no or bad token) or 403 (authenticated, not allowed).
using Authorizer = std::function<int(const std::string& bearer_token)>;

// TokenReview + SubjectAccessReview through `client`, cached for `ttl`.
[[nodiscard]] Authorizer kube_authorizer(kube::Client& client, std::chrono::seconds ttl = std::chrono::seconds(60));

class SecureServer {
 public:
  // `write`: the exposition (Metrics::write_text), written into one body per
  // scrape (cpprest's listener sends a body it holds).
  SecureServer(TextWriter write, Authorizer authorize);
  ~SecureServer();
  SecureServer(const SecureServer&) = delete;
  SecureServer& operator=(const SecureServer&) = delete;
  // `bind` is host:port (port 0: any free port).
  [[nodiscard]] std::expected<void, std::string> start(const std::string& bind, const Pem& serving);
  // Serves whatever `serving` holds at each new connection's handshake (a CertWatcher's, say).
  [[nodiscard]] std::expected<void, std::string> start(const std::string& bind,
                                                       std::shared_ptr<const ServingCertificate> serving);
  void stop();
  // The port it listens on (`bind` on port 0: the one it got); 0 when stopped.
  [[nodiscard]] int port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bo::metrics
