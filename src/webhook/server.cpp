#include "webhook/server.h"


#include <atomic>

#include "common/encoding.h"
#include "common/https_listener.h"
#include "common/log.h"
#include "webhook/restore_identity.h"

namespace bo::webhook {

using json = nlohmann::json;
namespace http = web::http;

struct Server::Impl {
  HttpsListener listener;
  std::atomic<size_t> reviews{0};
};

Server::Server() : impl_(std::make_unique<Impl>()) {}
Server::~Server() { stop(); }

std::expected<void, std::string> Server::start(const std::string& bind, const Pem& serving) {
  auto cert = ServingCertificate::make(serving);
  if (!cert) return std::unexpected("serving certificate: " + cert.error());
  return start(bind, std::move(*cert));
}

std::expected<void, std::string> Server::start(const std::string& bind, std::shared_ptr<const ServingCertificate> serving) {
  return impl_->listener.open(bind, std::move(serving), http::methods::POST, [this](http::http_request req) {
    if (req.relative_uri().path() != kMutatePath) {
      req.reply(http::status_codes::NotFound, "not found");
      return;
    }
    req.extract_string(true).then([this, req](pplx::task<std::string> body) mutable {
      json review;
      try {
        review = json::parse(body.get(), nullptr, false);
      } catch (const std::exception&) {
        review = json();
      }
      const json out = review_restore_request(review);
      ++impl_->reviews;
      const json& resp = out["response"];
      const json in = review.is_object() ? review.value("request", json::object()) : json::object();
      log::info("admission review", {{"resource", "restorerequests"},
                                     {"operation", in.value("operation", "")},
                                     {"namespace", in.value("namespace", "")},
                                     {"name", in.value("name", "")},
                                     {"user", in.value("userInfo", json::object()).value("username", "")},
                                     {"allowed", resp.value("allowed", false)}});
      http::http_response r(http::status_codes::OK);
      r.set_body(out.dump(), "application/json");
      req.reply(r);
    });
  });
}

void Server::stop() { impl_->listener.close(); }

int Server::port() const { return impl_->listener.port(); }

size_t Server::reviews() const { return impl_->reviews.load(); }

namespace {

constexpr const char* kHostsAnnotation = "backup.si.dev/certificate-hosts";

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

constexpr auto kRenewBefore = std::chrono::hours(24 * 30);
constexpr int kLeafDays = 365;
constexpr int kCaDays = 3650;

struct Stored {
  Pem ca;        // ca.crt, ca.key
  Pem serving;   // tls.crt (leaf then CA), tls.key
};

Stored read_secret(const json& secret) {
  const json data = secret.value("data", json::object());
  auto field = [&](const char* k) { return base64_decode(data.value(k, "")).value_or(""); };
  return {{field("ca.crt"), field("ca.key")}, {field("tls.crt"), field("tls.key")}};
}

// The stored CA, if it can go on signing leaves: a matching pair, 30 days or
// more from expiry. Its certificate is what the webhook configuration trusts.
bool ca_usable(const Pem& ca, SysTime now) {
  if (ca.cert.empty() || ca.key.empty() || !check_key_pair(ca)) return false;
  const auto expiry = certificate_not_after(ca.cert);
  return expiry && *expiry - now >= kRenewBefore;
}

// The stored leaf, if it can be served for these hosts for 30 more days, signed by `ca`.
bool leaf_usable(const json& secret, const Stored& s, const std::string& hosts, SysTime now) {
  if (s.serving.cert.empty() || s.serving.key.empty() || !check_key_pair(s.serving)) return false;
  const json annotations = secret["metadata"].value("annotations", json::object());
  if (annotations.value(kHostsAnnotation, "") != hosts) return false;
  if (!signed_by(s.serving.cert, s.ca.cert)) return false;
  const auto expiry = certificate_not_after(s.serving.cert);
  return expiry && *expiry - now >= kRenewBefore;
}

}  // namespace

std::expected<ServingCert, std::string> ensure_certificate(kube::Client& client, const CertOptions& opts,
                                                           const Clock& clock) {
  const std::string hosts = join(opts.hosts);
  const std::string where = "Secret " + opts.secret_namespace + "/" + opts.secret_name;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const SysTime now = clock.now();
    auto existing = client.get(kube::resources::kSecrets, opts.secret_namespace, opts.secret_name);
    if (!existing && !existing.error().not_found()) return std::unexpected("read " + where + ": " + existing.error().str());
    Stored s = existing ? read_secret(*existing) : Stored{};
    const bool keep_ca = ca_usable(s.ca, now);
    if (keep_ca && leaf_usable(*existing, s, hosts, now)) return ServingCert{s.serving, s.ca.cert};
    // One CA for the life of the Secret: only the leaf is re-issued (hosts
    // changed, or expiry near), so the caBundle every replica's leaf chains to
    // stays the same. A new CA only when there is none usable (a Secret from
    // before CAs were kept, or the CA itself near its end).
    if (!keep_ca) s.ca = generate_ca("backup-operator-webhook-ca", kCaDays, now);
    const Pem leaf = issue_certificate(s.ca, "backup-operator-webhook", hosts, kLeafDays, {}, now);
    s.serving = {leaf.cert + s.ca.cert, leaf.key};
    json secret{{"apiVersion", "v1"},
                {"kind", "Secret"},
                {"type", "kubernetes.io/tls"},
                {"metadata", {{"name", opts.secret_name},
                              {"namespace", opts.secret_namespace},
                              {"labels", {{"app.kubernetes.io/managed-by", "backup-operator"}}},
                              {"annotations", {{kHostsAnnotation, hosts}}}}},
                {"data", {{"tls.crt", base64_encode(s.serving.cert)},
                          {"tls.key", base64_encode(s.serving.key)},
                          {"ca.crt", base64_encode(s.ca.cert)},
                          {"ca.key", base64_encode(s.ca.key)}}}};
    kube::Result<json> stored = existing ? [&] {
      secret["metadata"]["resourceVersion"] = (*existing)["metadata"].value("resourceVersion", "");
      return client.update(kube::resources::kSecrets, opts.secret_namespace, secret);
    }()
                                         : client.create(kube::resources::kSecrets, opts.secret_namespace, secret);
    if (stored) {
      log::info(keep_ca ? "webhook serving certificate re-issued by the stored CA" : "webhook certificate and CA generated",
                {{"secret", opts.secret_namespace + "/" + opts.secret_name},
                 {"hosts", hosts},
                 {"serial", certificate_serial(leaf.cert)}});
      return ServingCert{s.serving, s.ca.cert};
    }
    // Another replica stored one first: use theirs.
    if (!stored.error().already_exists() && !stored.error().conflict())
      return std::unexpected("write " + where + ": " + stored.error().str());
  }
  return std::unexpected("write " + where + ": kept conflicting with other writers");
}

std::expected<bool, std::string> patch_ca_bundle(kube::Client& client, const std::string& configuration,
                                                 const std::string& ca_cert) {
  const std::string bundle = base64_encode(ca_cert);
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto cfg = client.get(kube::resources::kMutatingWebhookConfigurations, "", configuration);
    if (!cfg) {
      if (cfg.error().not_found()) return false;
      return std::unexpected("read MutatingWebhookConfiguration " + configuration + ": " + cfg.error().str());
    }
    json updated = *cfg;
    bool changed = false;
    for (auto& w : updated["webhooks"]) {
      if (w["clientConfig"].value("caBundle", "") == bundle) continue;
      w["clientConfig"]["caBundle"] = bundle;
      changed = true;
    }
    if (!changed) return true;
    auto r = client.update(kube::resources::kMutatingWebhookConfigurations, "", updated);
    if (r) {
      log::info("webhook caBundle updated", {{"configuration", configuration}});
      return true;
    }
    if (!r.error().conflict()) return std::unexpected("update MutatingWebhookConfiguration " + configuration + ": " + r.error().str());
  }
  return std::unexpected("update MutatingWebhookConfiguration " + configuration + ": kept conflicting");
}

}  // namespace bo::webhook
