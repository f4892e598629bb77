#include "kube-local/server.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <stdexcept>

namespace kl {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

struct HttpsServer::Impl {
  net::io_context ioc;
  ssl::context ctx{ssl::context::tls_server};
  tcp::acceptor acceptor{ioc};
};

std::string url_decode(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

HttpsServer::HttpsServer(ApiServer& api, const Pem& serving, uint16_t port, const std::string& client_ca)
    : HttpsServer([&api](const Request& r) { return api.handle(r); }, serving, port, client_ca) {}

HttpsServer::HttpsServer(Handler handler, const Pem& serving, uint16_t port, const std::string& client_ca)
    : handler_(std::move(handler)), impl_(std::make_unique<Impl>()) {
  if (!client_ca.empty()) {
    // Ask for a client certificate; one that does not verify fails the handshake.
    impl_->ctx.add_certificate_authority(net::buffer(client_ca));
    impl_->ctx.set_verify_mode(ssl::verify_peer);
  }
  // Clients that cache TLS sessions (Node's https.Agent, Go's ClientSessionCache) resume them on
  // their next connection, as kube-apiserver allows: its tls.Config leaves session tickets on
  // (apiserver/pkg/server/secure_serving.go, SecureServingInfo.tlsConfig). OpenSSL refuses to
  // resume a session on a context that asks for client certificates unless the context has a
  // session id context, and answers with a fatal internal_error alert instead.
  static const unsigned char kSessionIdContext[] = "kube-local";
  SSL_CTX_set_session_id_context(impl_->ctx.native_handle(), kSessionIdContext, sizeof kSessionIdContext - 1);
  impl_->ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                         ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  impl_->ctx.use_certificate_chain(net::buffer(serving.cert));
  impl_->ctx.use_private_key(net::buffer(serving.key), ssl::context::pem);
  tcp::endpoint ep(net::ip::make_address("127.0.0.1"), port);
  impl_->acceptor.open(ep.protocol());
  impl_->acceptor.set_option(net::socket_base::reuse_address(true));
  impl_->acceptor.bind(ep);
  impl_->acceptor.listen(net::socket_base::max_listen_connections);
  port_ = impl_->acceptor.local_endpoint().port();
}

HttpsServer::~HttpsServer() { (void)stop(); }

void HttpsServer::start() {
  acceptor_thread_ = std::thread([this] { accept_loop(); });
}

bool HttpsServer::stop() {
  if (stopping_.exchange(true)) return active_.load() == 0;
  boost::system::error_code ec;
  ::shutdown(impl_->acceptor.native_handle(), SHUT_RDWR);
  impl_->acceptor.close(ec);
  if (acceptor_thread_.joinable()) acceptor_thread_.join();
  {
    std::lock_guard lock(mu_);
    for (int fd : open_fds_) ::shutdown(fd, SHUT_RDWR);
  }
  // Connection threads notice the closed sockets (and the closed store) and end.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (active_.load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return active_.load() == 0;
}

void HttpsServer::accept_loop() {
  while (!stopping_) {
    boost::system::error_code ec;
    tcp::socket sock(impl_->ioc);
    impl_->acceptor.accept(sock, ec);
    if (ec) {
      if (stopping_) return;
      continue;
    }
    const int fd = sock.native_handle();
    auto owned = std::make_shared<tcp::socket>(std::move(sock));
    {
      std::lock_guard lock(mu_);
      open_fds_.insert(fd);
    }
    ++active_;
    std::thread([this, fd, owned]() mutable {
      serve(std::move(*owned));
      {
        std::lock_guard lock(mu_);
        open_fds_.erase(fd);
      }
      --active_;
    }).detach();
  }
}

void HttpsServer::serve(boost::asio::ip::tcp::socket sock) {
  boost::system::error_code ec;
  boost::beast::ssl_stream<tcp::socket> stream(std::move(sock), impl_->ctx);
  stream.handshake(ssl::stream_base::server, ec);
  if (ec) return;
  std::optional<UserInfo> cert_user;
  if (X509* peer = SSL_get1_peer_certificate(stream.native_handle())) {
    if (SSL_get_verify_result(stream.native_handle()) == X509_V_OK) {
      UserInfo u;
      X509_NAME* subject = X509_get_subject_name(peer);
      for (int i = 0; i < X509_NAME_entry_count(subject); ++i) {
        X509_NAME_ENTRY* e = X509_NAME_get_entry(subject, i);
        const int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        unsigned char* utf8 = nullptr;
        const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(e));
        if (len < 0) continue;
        const std::string value(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
        OPENSSL_free(utf8);
        if (nid == NID_commonName) u.username = value;
        if (nid == NID_organizationName) u.groups.push_back(value);
      }
      u.groups.push_back("system:authenticated");
      if (!u.username.empty()) cert_user = u;
    }
    X509_free(peer);
  }
  boost::beast::flat_buffer buffer;
  while (!stopping_) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    parser.header_limit(64 * 1024);
    http::read(stream, buffer, parser, ec);
    if (ec == http::error::body_limit) {
      http::response<http::string_body> res{http::status::payload_too_large, 11};
      res.set(http::field::content_type, "application/json");
      res.body() = R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Request entity too large","reason":"RequestEntityTooLarge","code":413})";
      res.prepare_payload();
      http::write(stream, res, ec);
      return;
    }
    if (ec) return;
    auto& msg = parser.get();
    Request req;
    req.method = std::string(msg.method_string());
    const std::string target(msg.target());
    const auto q = target.find('?');
    req.path = url_decode(target.substr(0, q));
    if (q != std::string::npos) {
      std::string qs = target.substr(q + 1);
      size_t start = 0;
      while (start <= qs.size()) {
        size_t amp = qs.find('&', start);
        if (amp == std::string::npos) amp = qs.size();
        const std::string kv = qs.substr(start, amp - start);
        if (!kv.empty()) {
          const auto eq = kv.find('=');
          req.query[url_decode(kv.substr(0, eq))] = eq == std::string::npos ? "" : url_decode(kv.substr(eq + 1));
        }
        start = amp + 1;
      }
    }
    for (const auto& h : msg) {
      std::string name(h.name_string());
      std::transform(name.begin(), name.end(), name.begin(), ::tolower);
      req.headers[name] = std::string(h.value());
    }
    req.body = std::move(msg.body());
    req.client_cert_user = cert_user;
    const bool keep_alive = msg.keep_alive();
    Response resp;
    try {
      resp = handler_(req);
    } catch (const std::exception& e) {
      resp = status_response({500, "InternalError", std::string("kube-local: internal error: ") + e.what()});
    }
    ++served_;
    if (resp.stream) {
      http::response<http::empty_body> res{http::status::ok, 11};
      res.set(http::field::content_type, resp.content_type);
      res.set(http::field::cache_control, "no-cache, private");
      res.chunked(true);
      http::response_serializer<http::empty_body> sr{res};
      http::write_header(stream, sr, ec);
      if (ec) return;
      const int raw = stream.next_layer().native_handle();
      auto write = [&](const std::string& chunk) {
        if (chunk.empty()) {
          char c;
          const ssize_t n = ::recv(raw, &c, 1, MSG_PEEK | MSG_DONTWAIT);
          return !(n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) && !stopping_;
        }
        net::write(stream, http::make_chunk(net::buffer(chunk)), ec);
        return !ec && !stopping_;
      };
      try {
        resp.stream(write);
      } catch (const std::exception&) {
        return;
      }
      net::write(stream, http::make_chunk_last(), ec);
      if (ec || !keep_alive) return;
      continue;
    }
    http::response<http::string_body> res{static_cast<http::status>(resp.status), 11};
    res.set(http::field::content_type, resp.content_type);
    res.set(http::field::cache_control, "no-cache, private");
    for (const auto& [k, v] : resp.headers) res.insert(k, v);
    res.body() = std::move(resp.body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    http::write(stream, res, ec);
    if (ec || !keep_alive) return;
  }
}

}  // namespace kl
