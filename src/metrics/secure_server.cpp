#include "metrics/secure_server.h"

#include <map>
#include <mutex>

#include "common/encoding.h"
#include "common/https_listener.h"
#include "common/log.h"

namespace bo::metrics {

using json = nlohmann::json;
namespace http = web::http;

Authorizer kube_authorizer(kube::Client& client, std::chrono::seconds ttl) {
  struct Cache {
    std::mutex mu;
    std::map<std::string, std::pair<int, std::chrono::steady_clock::time_point>> answers;  // by sha256(token)
  };
  auto cache = std::make_shared<Cache>();
  return [&client, cache, ttl](const std::string& token) -> int {
    if (token.empty()) return 401;
    const std::string key = sha256_hex(token);
    const auto now = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(cache->mu);
      if (auto it = cache->answers.find(key); it != cache->answers.end() && now - it->second.second < ttl)
        return it->second.first;
    }
    int answer = 401;
    const json review{{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "TokenReview"}, {"spec", {{"token", token}}}};
    auto tr = client.create(kube::resources::kTokenReviews, "", review);
    if (!tr) {
      log::warn("metrics: TokenReview failed", {{"error", tr.error().str()}});
      return 503;  // not cached: the API may be back in a moment
    }
    const json st = (*tr).value("status", json::object());
    if (st.value("authenticated", false)) {
      const json user = st.value("user", json::object());
      json spec{{"user", user.value("username", "")},
                {"groups", user.value("groups", json::array())},
                {"nonResourceAttributes", {{"path", "/metrics"}, {"verb", "get"}}}};
      if (user.contains("uid")) spec["uid"] = user["uid"];
      auto sar = client.create(kube::resources::kSubjectAccessReviews, "",
                               json{{"apiVersion", "authorization.k8s.io/v1"}, {"kind", "SubjectAccessReview"}, {"spec", spec}});
      if (!sar) {
        log::warn("metrics: SubjectAccessReview failed", {{"error", sar.error().str()}});
        return 503;
      }
      answer = (*sar).value("status", json::object()).value("allowed", false) ? 200 : 403;
    }
    std::lock_guard lock(cache->mu);
    if (cache->answers.size() > 1024) cache->answers.clear();  // bounded
    cache->answers[key] = {answer, now};
    return answer;
  };
}

struct SecureServer::Impl {
  TextWriter write;
  Authorizer authorize;
  HttpsListener listener;
};

SecureServer::SecureServer(TextWriter write, Authorizer authorize) : impl_(std::make_unique<Impl>()) {
  impl_->write = std::move(write);
  impl_->authorize = std::move(authorize);
}

SecureServer::~SecureServer() { stop(); }

std::expected<void, std::string> SecureServer::start(const std::string& bind, const Pem& serving) {
  auto cert = ServingCertificate::make(serving);
  if (!cert) return std::unexpected("serving certificate: " + cert.error());
  return start(bind, std::move(*cert));
}

std::expected<void, std::string> SecureServer::start(const std::string& bind,
                                                     std::shared_ptr<const ServingCertificate> serving) {
  return impl_->listener.open(bind, std::move(serving), http::methods::GET, [this](http::http_request req) {
    if (req.relative_uri().path() != "/metrics") {
      req.reply(http::status_codes::NotFound, "not found");
      return;
    }
    std::string token;
    const auto& h = req.headers();
    if (auto it = h.find("Authorization"); it != h.end() && it->second.starts_with("Bearer ")) token = it->second.substr(7);
    const int code = impl_->authorize(token);
    if (code != 200) {
      req.reply(static_cast<http::status_code>(code),
                code == 401 ? "Unauthorized" : code == 403 ? "Forbidden" : "authorization unavailable");
      return;
    }
    std::string body;
    impl_->write([&](std::string_view piece) {
      body.append(piece);
      return true;
    });
    http::http_response r(http::status_codes::OK);
    r.set_body(std::move(body), "text/plain; version=0.0.4; charset=utf-8");
    req.reply(r);
  });
}

void SecureServer::stop() { impl_->listener.close(); }

int SecureServer::port() const { return impl_->listener.port(); }

}  // namespace bo::metrics
