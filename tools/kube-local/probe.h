// Readiness probes of the process kubelet (pkg/kubelet/prober): a container's
// readinessProbe with tcpSocket, checked by connecting to 127.0.0.1:port (a
// process Pod shares kube-local's network), with the probe's own timing and
// thresholds. Without such a probe a running container is ready, as in
// Kubernetes; exec, httpGet and grpc probes are not run (the container counts
// as ready), which kube-local documents.
#pragma once
#include <chrono>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace kl {

using json = nlohmann::json;

// core/v1 Probe with its defaults (SetDefaults_Probe).
struct TcpProbe {
  int port = 0;
  int initial_delay_seconds = 0;
  int period_seconds = 10;
  int timeout_seconds = 1;
  int success_threshold = 1;
  int failure_threshold = 3;
};

// The container's readinessProbe when it is a tcpSocket one whose port (a
// number, or the name of one of the container's ports) resolves; nullopt otherwise.
[[nodiscard]] std::optional<TcpProbe> tcp_readiness_probe(const json& container);

// Where a probe's counts go after one result (prober/worker.go doProbe): the
// container becomes ready after success_threshold successes in a row, and
// unready after failure_threshold failures in a row.
struct ProbeState {
  bool ready = false;
  int successes = 0;  // in a row
  int failures = 0;   // in a row
};
[[nodiscard]] ProbeState after_probe(ProbeState state, bool success, const TcpProbe& probe);

// Whether something accepts a TCP connection on 127.0.0.1:port within `timeout`.
[[nodiscard]] bool tcp_connects(int port, std::chrono::milliseconds timeout);

}  // namespace kl
