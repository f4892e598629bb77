// Where the API server is and how to authenticate to it: kubeconfig files
// (yaml-cpp) and in-cluster service-account configuration.
#pragma once
#include <chrono>
#include <map>
#include <string>

#include "kube/error.h"

namespace bo::kube {

struct RestConfig {
  std::string server;  // https://host:port
  std::string ca_pem;  // trusted CA bundle; empty means the system roots
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;
  std::string client_key_pem;
  std::string token;       // static bearer token
  std::string token_file;  // re-read when it rotates (service-account tokens)
  std::string default_namespace = "default";
  std::chrono::milliseconds connect_timeout{10000};
  std::chrono::milliseconds request_timeout{30000};
  double qps = 20;
  int burst = 30;
  std::string user_agent;
  std::string source;  // where this came from, for messages
};

// Reads a kubeconfig. `context` empty means current-context. Errors name the
// file and the field (e.g. "contexts[0].context.cluster").
Result<RestConfig> load_kubeconfig(const std::string& path, const std::string& context = "");

// In-cluster: KUBERNETES_SERVICE_HOST/PORT and the service-account files.
Result<RestConfig> in_cluster_config(const std::string& sa_dir = "/var/run/secrets/kubernetes.io/serviceaccount",
                                     const std::map<std::string, std::string>* env = nullptr);

// --kubeconfig, then $KUBECONFIG, then in-cluster, then ~/.kube/config.
Result<RestConfig> load_default_config(const std::string& kubeconfig_flag, const std::string& context = "");

}  // namespace bo::kube
