#include "common/https_listener.h"

#include <boost/asio/ssl.hpp>

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
  try {
    listener_ = std::make_unique<web::http::experimental::listener::http_listener>("https://" + bind, conf);
    listener_->support(method, std::move(handler));
    listener_->open().wait();
  } catch (const std::exception& e) {
    listener_.reset();
    return std::unexpected(std::string(e.what()));
  }
  return {};
}

void HttpsListener::close() {
  if (!listener_) return;
  try {
    listener_->close().wait();
  } catch (const std::exception&) {
  }
  listener_.reset();
}

}  // namespace bo
