// Certificate authority and serving certificate (kube-local, the operator's webhook), made with
// OpenSSL at start-up (or read back from --data-dir so kubeconfigs stay valid).
#pragma once
#include <chrono>
#include <expected>
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
// Valid from an hour before `now` (default: the system clock) for `days`.
Pem issue_certificate(const Pem& ca, const std::string& common_name, const std::string& hosts_csv,
                      int days = 365, const std::vector<std::string>& organizations = {},
                      std::optional<std::chrono::system_clock::time_point> now = std::nullopt);

// A fresh self-signed EC P-256 CA, valid from an hour before `now` for `days`.
Pem generate_ca(const std::string& common_name, int days = 3650,
                std::optional<std::chrono::system_clock::time_point> now = std::nullopt);

// Whether `pair` can be served: the first certificate of `pair.cert` parses
// and `pair.key` is its private key. The error says which part is wrong and
// never holds key material.
std::expected<void, std::string> check_key_pair(const Pem& pair);

// Whether the first certificate of `cert_pem` carries a signature by the CA `ca_cert_pem`.
bool signed_by(const std::string& cert_pem, const std::string& ca_cert_pem);

// The first certificate's serial number in upper-case hex ("" if it does not parse): for logs.
std::string certificate_serial(const std::string& cert_pem);

}  // namespace bo
