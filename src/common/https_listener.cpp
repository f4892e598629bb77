#include "common/https_listener.h"

#include <boost/asio/ssl.hpp>

#include "common/listener_port.h"

namespace bo {

HttpsListener::~HttpsListener() { close(); }

std::expected<void, std::string> HttpsListener::open(const std::string& bind,
                                                     std::shared_ptr<const ServingCertificate> serving,
                                                     const web::http::method& method,
                                                     std::function<void(web::http::http_request)> handler) {
  if (!serving) return std::unexpected(std::string("no serving certificate"));
  web::http::experimental::listener::http_listener_config conf;
  // Called once per accepted connection (asio_server_connection::start_connection).
  conf.set_ssl_context_callback([serving](boost::asio::ssl::context& ctx) {
    ctx.set_options(boost::asio::ssl::context::default_workarounds | boost::asio::ssl::context::no_sslv2 |
                    boost::asio::ssl::context::no_sslv3 | boost::asio::ssl::context::no_tlsv1 |
                    boost::asio::ssl::context::no_tlsv1_1);
    const auto pair = serving->get();  // checked when it was taken, so these do not throw
    ctx.use_certificate_chain(boost::asio::buffer(pair->cert));
    ctx.use_private_key(boost::asio::buffer(pair->key), boost::asio::ssl::context::pem);
  });
  auto bound = open_listener(bind, [&](const std::string& host_port) {
    auto listener = std::make_unique<web::http::experimental::listener::http_listener>("https://" + host_port, conf);
    listener->support(method, handler);
    return listener;
  });
  if (!bound) return std::unexpected(bound.error());
  listener_ = std::move(bound->listener);
  port_ = bound->port;
  return {};
}

void HttpsListener::close() {
  if (!listener_) return;
  try {
    listener_->close().wait();
  } catch (const std::exception&) {
  }
  listener_.reset();
  port_ = 0;
}

}  // namespace bo
