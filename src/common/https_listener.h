// An HTTPS endpoint on cpprestsdk's listener (OpenSSL underneath), TLS 1.2+
// with a certificate chain and key in memory: what the webhook and the secure
// metrics endpoint serve on. cpprestsdk makes each accepted connection's SSL
// context from the listener's callback, so every new handshake serves the
// pair a ServingCertificate holds at that moment: rotation needs no restart.
#pragma once
#include <cpprest/http_listener.h>

#include <expected>
#include <functional>
#include <memory>
#include <string>

#include "common/certs.h"
#include "common/serving_cert.h"

namespace bo {

class HttpsListener {
 public:
  HttpsListener() = default;
  ~HttpsListener();
  HttpsListener(const HttpsListener&) = delete;
  HttpsListener& operator=(const HttpsListener&) = delete;

  // `bind` is host:port (port 0: any free port); `handler` answers every request of `method`.
  [[nodiscard]] std::expected<void, std::string> open(const std::string& bind,
                                                      std::shared_ptr<const ServingCertificate> serving,
                                                      const web::http::method& method,
                                                      std::function<void(web::http::http_request)> handler);
  void close();
  // The port it listens on (a bind on port 0 resolved; listener_port.h); 0 when closed.
  [[nodiscard]] int port() const { return port_; }

 private:
  std::unique_ptr<web::http::experimental::listener::http_listener> listener_;
  int port_ = 0;
};

}  // namespace bo
