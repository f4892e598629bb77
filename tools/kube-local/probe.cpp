#include "kube-local/probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace kl {
namespace {

int int_or(const json& o, const char* key, int fallback) {
  return o.contains(key) && o[key].is_number_integer() ? o[key].get<int>() : fallback;
}

}  // namespace

std::optional<TcpProbe> tcp_readiness_probe(const json& container) {
  if (!container.is_object()) return std::nullopt;
  const json probe = container.value("readinessProbe", json::object());
  if (!probe.is_object() || !probe.contains("tcpSocket") || !probe["tcpSocket"].is_object()) return std::nullopt;
  const json port = probe["tcpSocket"].value("port", json());
  TcpProbe p;
  if (port.is_number_integer()) {
    p.port = port.get<int>();
  } else if (port.is_string()) {
    // An IntOrString: a number written as a string, or the name of a container port (FindPort).
    const std::string name = port.get<std::string>();
    for (const auto& cp : container.value("ports", json::array()))
      if (cp.is_object() && cp.value("name", "") == name) p.port = int_or(cp, "containerPort", 0);
    if (p.port == 0 && !name.empty() && name.find_first_not_of("0123456789") == std::string::npos && name.size() < 6)
      p.port = std::stoi(name);
  }
  if (p.port <= 0 || p.port > 65535) return std::nullopt;
  p.initial_delay_seconds = std::max(int_or(probe, "initialDelaySeconds", 0), 0);
  p.period_seconds = std::max(int_or(probe, "periodSeconds", 10), 1);
  p.timeout_seconds = std::max(int_or(probe, "timeoutSeconds", 1), 1);
  p.success_threshold = std::max(int_or(probe, "successThreshold", 1), 1);
  p.failure_threshold = std::max(int_or(probe, "failureThreshold", 3), 1);
  return p;
}

ProbeState after_probe(ProbeState state, bool success, const TcpProbe& probe) {
  if (success) {
    state.failures = 0;
    if (++state.successes >= probe.success_threshold) state.ready = true;
  } else {
    state.successes = 0;
    if (++state.failures >= probe.failure_threshold) state.ready = false;
  }
  return state;
}

bool tcp_connects(int port, std::chrono::milliseconds timeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  if (!ok && errno == EINPROGRESS) {
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) == 1) {
      int err = 0;
      socklen_t len = sizeof err;
      ok = ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
    }
  }
  ::close(fd);
  return ok;
}

}  // namespace kl
