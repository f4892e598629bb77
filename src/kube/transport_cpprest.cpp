#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cpprest/http_client.h>
#include <cpprest/producerconsumerstream.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "bo/version.h"
#include "kube/transport.h"

namespace bo::kube {
namespace {

namespace http = web::http;
namespace client = web::http::client;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), ::tolower);
  return s;
}

// Service-account tokens rotate; re-read the file when it changes (as
// client-go does), at most once a second.
class TokenSource {
 public:
  TokenSource(std::string token, std::string file) : token_(std::move(token)), file_(std::move(file)) {}
  std::string get() {
    if (file_.empty()) return token_;
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (now - checked_ < std::chrono::seconds(1) && !token_.empty()) return token_;
    checked_ = now;
    std::error_code ec;
    const auto mtime = std::filesystem::last_write_time(file_, ec);
    if (!ec && (mtime != mtime_ || token_.empty())) {
      std::ifstream in(file_);
      std::stringstream ss;
      ss << in.rdbuf();
      std::string t = ss.str();
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
      if (!t.empty()) {
        token_ = t;
        mtime_ = mtime;
      }
    }
    return token_;
  }
  void invalidate() {
    std::lock_guard lock(mu_);
    checked_ = {};
    mtime_ = {};
  }

 private:
  std::mutex mu_;
  std::string token_;
  std::string file_;
  std::chrono::steady_clock::time_point checked_{};
  std::filesystem::file_time_type mtime_{};
};

class CpprestTransport final : public Transport {
 public:
  explicit CpprestTransport(const RestConfig& cfg)
      : cfg_(cfg), tokens_(cfg.token, cfg.token_file), user_agent_("backup-operator/" + std::string(kVersion)) {
    if (!cfg.user_agent.empty()) user_agent_ = cfg.user_agent;
  }

  Result<HttpResponse> send(const HttpRequest& req) override {
    return run(req, nullptr, nullptr);
  }

  Result<HttpResponse> stream(const HttpRequest& req, const std::function<bool(std::string_view)>& on_line,
                              Canceller* cancel) override {
    return run(req, &on_line, cancel);
  }

 private:
  client::http_client_config client_config(std::chrono::milliseconds timeout) const {
    client::http_client_config c;
    c.set_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
    c.set_validate_certificates(!cfg_.insecure_skip_tls_verify);
    const std::string ca = cfg_.ca_pem, cert = cfg_.client_cert_pem, key = cfg_.client_key_pem;
    c.set_ssl_context_callback([ca, cert, key](boost::asio::ssl::context& ctx) {
      if (!ca.empty()) {
        // Trust exactly the configured CA: a fresh store replaces the system roots.
        X509_STORE* store = X509_STORE_new();
        BIO* bio = BIO_new_mem_buf(ca.data(), static_cast<int>(ca.size()));
        while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
          X509_STORE_add_cert(store, x);
          X509_free(x);
        }
        ERR_clear_error();
        BIO_free(bio);
        SSL_CTX_set_cert_store(ctx.native_handle(), store);
      }
      if (!cert.empty()) {
        ctx.use_certificate_chain(boost::asio::buffer(cert));
        ctx.use_private_key(boost::asio::buffer(key), boost::asio::ssl::context::pem);
      }
    });
    return c;
  }

  client::http_client& client_for(std::chrono::milliseconds timeout) {
    std::lock_guard lock(mu_);
    auto it = clients_.find(timeout.count());
    if (it == clients_.end())
      it = clients_.emplace(timeout.count(), std::make_unique<client::http_client>(
                                                 utility::conversions::to_string_t(cfg_.server), client_config(timeout)))
               .first;
    return *it->second;
  }

  Result<HttpResponse> run(const HttpRequest& req, const std::function<bool(std::string_view)>* on_line,
                           Canceller* cancel) {
    const auto timeout = req.timeout.count() > 0 ? req.timeout : cfg_.request_timeout;
    for (int attempt = 0; attempt < 2; ++attempt) {
      http::http_request r(http::method(req.method));
      r.set_request_uri(req.path);
      r.headers().add("User-Agent", user_agent_);
      r.headers().add("Accept", req.accept.empty() ? std::string("application/json") : req.accept);
      const std::string token = tokens_.get();
      if (!token.empty()) r.headers().add("Authorization", "Bearer " + token);
      if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH")
        r.set_body(req.body, req.content_type.empty() ? "application/json" : req.content_type);
      pplx::cancellation_token_source cts;
      const int hook = cancel ? cancel->add([cts]() mutable { cts.cancel(); }) : -1;
      struct Unhook {
        Canceller* c;
        int id;
        ~Unhook() {
          if (c) c->remove(id);
        }
      } unhook{cancel, hook};
      try {
        http::http_response resp = client_for(timeout).request(r, cts.get_token()).get();
        HttpResponse out;
        out.status = resp.status_code();
        for (const auto& [k, v] : resp.headers()) out.headers[lower(k)] = v;
        if (out.status == 401 && attempt == 0 && !cfg_.token_file.empty()) {
          tokens_.invalidate();  // the token may have just rotated: re-read and retry once
          continue;
        }
        if (!on_line || out.status < 200 || out.status >= 300) {
          out.body = resp.extract_utf8string(true).get();
          return out;
        }
        // Block for one byte, then take whatever else has arrived: lines are
        // delivered as soon as their newline does, without per-byte tasks.
        auto sb = resp.body().streambuf();
        std::string pending;
        std::vector<uint8_t> buf(64 * 1024);
        while (true) {
          if (cancel && cancel->cancelled()) {
            cts.cancel();
            return out;
          }
          const auto c = sb.bumpc().get();
          if (c == concurrency::streams::streambuf<uint8_t>::traits::eof() || c < 0) break;
          pending.push_back(static_cast<char>(c));
          const size_t avail = std::min(static_cast<size_t>(sb.in_avail()), buf.size());
          if (avail > 0) {
            const size_t n = sb.getn(buf.data(), avail).get();
            pending.append(reinterpret_cast<const char*>(buf.data()), n);
          }
          size_t start = 0;
          for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
            if (nl > start && !(*on_line)(std::string_view(pending).substr(start, nl - start))) {
              cts.cancel();
              return out;
            }
          }
          pending.erase(0, start);
        }
        if (!pending.empty()) (*on_line)(pending);
        return out;
      } catch (const http::http_exception& e) {
        const std::string what = e.what();
        const bool tls = what.find("certificate") != std::string::npos || what.find("handshake") != std::string::npos ||
                         what.find("SSL") != std::string::npos || what.find("ssl") != std::string::npos;
        const bool timed_out = what.find("timed out") != std::string::npos || what.find("timeout") != std::string::npos;
        if (cancel && cancel->cancelled()) return fail(0, "Cancelled", "request cancelled");
        return fail(0, tls ? "TLSError" : timed_out ? "Timeout" : "TransportError",
                    req.method + " " + cfg_.server + req.path.substr(0, req.path.find('?')) + ": " + what);
      } catch (const pplx::task_canceled&) {
        return fail(0, "Cancelled", "request cancelled");
      } catch (const std::exception& e) {
        return fail(0, "TransportError", req.method + " " + cfg_.server + ": " + e.what());
      }
    }
    return fail(401, "Unauthorized", "the API server rejected the credentials");
  }

  RestConfig cfg_;
  TokenSource tokens_;
  std::string user_agent_;
  std::mutex mu_;
  std::map<long, std::unique_ptr<client::http_client>> clients_;
};

}  // namespace

void Canceller::cancel() {
  std::map<int, std::function<void()>> hooks;
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    hooks = hooks_;
  }
  for (auto& [id, h] : hooks) h();
}

int Canceller::add(std::function<void()> hook) {
  std::unique_lock lock(mu_);
  if (cancelled_) {
    lock.unlock();
    hook();
    return -1;
  }
  hooks_[next_] = std::move(hook);
  return next_++;
}

void Canceller::remove(int id) {
  std::lock_guard lock(mu_);
  hooks_.erase(id);
}

void Canceller::reset() {
  std::lock_guard lock(mu_);
  cancelled_ = false;
}

Result<std::unique_ptr<Transport>> make_cpprest_transport(const RestConfig& config) {
  if (!config.server.starts_with("https://") && !config.server.starts_with("http://"))
    return fail(0, "ConfigError", "server must be an http(s) URL, got \"" + config.server + "\"");
  if (!config.ca_pem.empty()) {
    BIO* bio = BIO_new_mem_buf(config.ca_pem.data(), static_cast<int>(config.ca_pem.size()));
    X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (!x) {
      ERR_clear_error();
      return fail(0, "ConfigError", "certificate-authority: no PEM certificate found");
    }
    X509_free(x);
  }
  try {
    return std::unique_ptr<Transport>(std::make_unique<CpprestTransport>(config));
  } catch (const std::exception& e) {
    return fail(0, "ConfigError", std::string("cannot create HTTP client: ") + e.what());
  }
}

}  // namespace bo::kube
