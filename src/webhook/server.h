// The operator's admission webhook endpoint: HTTPS (cpprestsdk's listener over
// OpenSSL) serving POST /mutate-restorerequests, and the serving certificate's
// life cycle: read from files the chart mounts, or generated at start into a
// Secret shared by all replicas, with its CA patched into the webhook
// configuration's caBundle.
#pragma once
#include <expected>
#include <memory>
#include <string>
#include <vector>

#include "common/certs.h"
#include "common/serving_cert.h"
#include "common/clock.h"
#include "kube/client.h"

namespace bo::webhook {

inline constexpr const char* kMutatePath = "/mutate-restorerequests";

class Server {
 public:
  Server();
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  // `bind` is host:port ("0.0.0.0:9443", port 0: any free port); `serving` the certificate chain and key.
  [[nodiscard]] std::expected<void, std::string> start(const std::string& bind, const Pem& serving);
  // Serves whatever `serving` holds at each new connection's handshake (a CertWatcher's, say).
  [[nodiscard]] std::expected<void, std::string> start(const std::string& bind,
                                                       std::shared_ptr<const ServingCertificate> serving);
  void stop();
  // The port it listens on (`bind` on port 0: the one it got); 0 when stopped.
  [[nodiscard]] int port() const;
  [[nodiscard]] size_t reviews() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct CertOptions {
  std::string secret_namespace;
  std::string secret_name = "backup-operator-webhook-tls";
  std::vector<std::string> hosts;          // DNS names and IPs the certificate must cover
  std::string mutating_configuration;      // patched with the CA (empty: leave alone)
};

struct ServingCert {
  Pem serving;          // tls.crt (leaf then CA) and tls.key
  std::string ca_cert;  // ca.crt
};

// Reads the Secret (tls.crt, tls.key, ca.crt and the CA's key ca.key). Keeps
// its CA for as long as the CA is usable and re-issues only the leaf, signed
// by that CA, when the leaf is missing, for other hosts, not signed by the CA
// or within 30 days of expiry: replicas still serving the previous leaf stay
// trusted by the same caBundle. Replicas racing to write it all end up using
// the one that was stored first.
[[nodiscard]] std::expected<ServingCert, std::string> ensure_certificate(kube::Client& client, const CertOptions& opts,
                                                                      const Clock& clock);
// Sets clientConfig.caBundle on every webhook of the configuration. A missing
// configuration is not an error (the chart may install it later).
[[nodiscard]] std::expected<bool, std::string> patch_ca_bundle(kube::Client& client, const std::string& configuration,
                                                               const std::string& ca_cert);

}  // namespace bo::webhook
