// The HTTP seam of the Kubernetes client. The client talks to this small
// interface; the cpprestsdk implementation lives behind it so the HTTP stack
// can be replaced (cpprestsdk is in maintenance mode) and tests can fake it.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "kube/config.h"
#include "kube/error.h"

namespace bo::kube {

struct HttpRequest {
  std::string method;  // GET, POST, PUT, PATCH, DELETE
  std::string path;    // path and query, e.g. /api/v1/namespaces/x/pods?limit=5
  std::string content_type;
  std::string body;
  std::chrono::milliseconds timeout{0};  // 0: the transport's default
  std::string accept;                     // empty: application/json
};

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// Cancels a streaming request from another thread: sets the flag and runs
// the hooks the transport registered (closing the connection).
class Canceller {
 public:
  void cancel();
  [[nodiscard]] bool cancelled() const { return cancelled_.load(); }
  // Runs `hook` now if already cancelled. Returns an id for remove().
  int add(std::function<void()> hook);
  void remove(int id);
  void reset();

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  int next_ = 0;
  std::map<int, std::function<void()>> hooks_;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // An answer of any status is a value; only "no answer" is an Error.
  virtual Result<HttpResponse> send(const HttpRequest& req) = 0;
  // Streams a response body line by line (watch). `on_line` returns false to
  // stop. A non-2xx status returns its response (body read whole) without
  // calling on_line. `cancel` ends the stream from another thread.
  virtual Result<HttpResponse> stream(const HttpRequest& req, const std::function<bool(std::string_view)>& on_line,
                                      Canceller* cancel) = 0;
};

// cpprestsdk over OpenSSL. The server certificate is verified against
// config.ca_pem only (never the system store) when one is configured, and
// verification can only be disabled explicitly (insecure-skip-tls-verify).
Result<std::unique_ptr<Transport>> make_cpprest_transport(const RestConfig& config);

}  // namespace bo::kube
