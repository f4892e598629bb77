// Certificate authority and serving certificate (kube-local, the operator's webhook), made with
// OpenSSL at start-up (or read back from --data-dir so kubeconfigs stay valid).
#pragma once
#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace bo {

struct Pem {
  std::string cert;
  std::string key;
};

struct TlsMaterial {
  Pem ca;
  Pem server;
};

// A fresh EC P-256 CA and a server certificate for 127.0.0.1/localhost signed by it.
TlsMaterial generate_tls(const std::string& common_name = "kube-local",
                         const std::string& hosts_csv = "127.0.0.1,localhost,::1");

// When a PEM certificate stops being valid; nullopt if it does not parse.
std::optional<std::chrono::system_clock::time_point> certificate_not_after(const std::string& cert_pem);

// A certificate for `hosts` (DNS names or IP addresses) signed by `ca`.
// `organizations` become O entries (Kubernetes reads them as groups of a client certificate).
Pem issue_certificate(const Pem& ca, const std::string& common_name, const std::string& hosts_csv,
                      int days = 365, const std::vector<std::string>& organizations = {});

}  // namespace bo
