// The error type of the Kubernetes client: an HTTP status (0 when the request
// never got an answer), the API's Status reason and message, and the server's
// Retry-After when it gave one.
#pragma once
#include <chrono>
#include <expected>
#include <string>

namespace bo::kube {

struct Error {
  int status = 0;       // HTTP status; 0 for transport, TLS, config and parse errors
  std::string reason;   // Kubernetes StatusReason (NotFound, Conflict, Expired, ...) or a local cause
  std::string message;  // human-readable, names what failed
  std::chrono::milliseconds retry_after{0};

  [[nodiscard]] bool not_found() const { return status == 404; }
  [[nodiscard]] bool conflict() const { return status == 409 && reason != "AlreadyExists"; }
  [[nodiscard]] bool already_exists() const { return status == 409 && reason == "AlreadyExists"; }
  [[nodiscard]] bool gone() const { return status == 410; }
  [[nodiscard]] bool invalid() const { return status == 422; }
  [[nodiscard]] bool forbidden() const { return status == 403; }
  [[nodiscard]] bool unauthorized() const { return status == 401; }
  // Worth retrying with backoff: throttling, server errors, and no answer at all.
  [[nodiscard]] bool retryable() const {
    if (status == 0)
      return reason != "ConfigError" && reason != "TLSError" && reason != "Cancelled" && reason != "NotLeader";
    return status == 429 || status >= 500;
  }
  [[nodiscard]] std::string str() const {
    if (status == 0) return reason + ": " + message;
    return std::to_string(status) + " " + reason + ": " + message;
  }
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(int status, std::string reason, std::string message) {
  return std::unexpected(Error{status, std::move(reason), std::move(message), {}});
}

}  // namespace bo::kube
