// Certificate authority and serving certificate for kube-local, made with
// OpenSSL at start-up (or read back from --data-dir so kubeconfigs stay valid).
#pragma once
#include <string>
#include <vector>

namespace kl {

struct Pem {
  std::string cert;
  std::string key;
};

struct TlsMaterial {
  Pem ca;
  Pem server;
};

// A fresh EC P-256 CA and a server certificate for 127.0.0.1/localhost signed by it.
TlsMaterial generate_tls(const std::string& common_name = "kube-local");

// A certificate for `hosts` (DNS names or IP addresses) signed by `ca`.
// `organizations` become O entries (Kubernetes reads them as groups of a client certificate).
Pem issue_certificate(const Pem& ca, const std::string& common_name, const std::string& hosts_csv,
                      int days = 365, const std::vector<std::string>& organizations = {});

}  // namespace kl
