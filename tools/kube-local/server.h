// HTTPS front end of kube-local (Boost.Beast over OpenSSL): one thread per
// connection, HTTP/1.1 keep-alive, chunked streaming for watches.
#pragma once
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include <boost/asio/ip/tcp.hpp>

#include "kube-local/api.h"
#include "kube-local/certs.h"

namespace kl {

class HttpsServer {
 public:
  // `client_ca` verifies client certificates (optional for clients; bearer tokens work without).
  using Handler = std::function<Response(const Request&)>;
  HttpsServer(ApiServer& api, const Pem& serving, uint16_t port, const std::string& client_ca = "");
  // Any handler: tests use this to serve admission webhooks.
  HttpsServer(Handler handler, const Pem& serving, uint16_t port, const std::string& client_ca = "");
  ~HttpsServer();
  HttpsServer(const HttpsServer&) = delete;
  HttpsServer& operator=(const HttpsServer&) = delete;

  void start();
  // Closes the listener and every connection, and waits up to 5 s for their
  // threads (detached) to end. False when some still run: whatever their
  // handler uses must then outlive this process's teardown.
  bool stop();
  [[nodiscard]] uint16_t port() const { return port_; }
  [[nodiscard]] size_t requests_served() const { return served_.load(); }

 private:
  struct Impl;
  void accept_loop();
  void serve(boost::asio::ip::tcp::socket sock);

  Handler handler_;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> served_{0};
  std::thread acceptor_thread_;
  std::mutex mu_;
  std::set<int> open_fds_;
  std::atomic<int> active_{0};
};

// Decodes %XX and '+' in a query component.
std::string url_decode(const std::string& s);

}  // namespace kl
