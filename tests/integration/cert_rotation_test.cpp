// Serving certificates that rotate (issue 18 item 6): the webhook and the
// secure metrics endpoint serve new files to new TLS clients without a
// restart, a half-written pair is not taken, and the generated Secret keeps
// its CA while its leaf is re-issued.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/certs.h"
#include "common/clock.h"
#include "common/encoding.h"
#include "common/serving_cert.h"
#include "harness.h"
#include "metrics/secure_server.h"
#include "webhook/server.h"

using nlohmann::json;
using testing_support::eventually;
namespace fs = std::filesystem;

namespace {

struct Peer {
  std::string serial;
  std::time_t not_after = 0;
};

// The certificate a new TLS client is shown by 127.0.0.1:`port`, read with OpenSSL.
std::optional<Peer> peer_certificate(int port) {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return std::nullopt;
  }
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), SSL_free);
  SSL_set_fd(ssl.get(), fd);
  std::optional<Peer> out;
  if (SSL_connect(ssl.get()) == 1) {
    if (X509* cert = SSL_get1_peer_certificate(ssl.get())) {
      BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
      char* hex = BN_bn2hex(bn);
      tm t{};
      ASN1_TIME_to_tm(X509_get0_notAfter(cert), &t);
      out = Peer{hex, timegm(&t)};
      OPENSSL_free(hex);
      BN_free(bn);
      X509_free(cert);
    }
    SSL_shutdown(ssl.get());
  }
  close(fd);
  return out;
}

// A directory laid out as the kubelet mounts a Secret: tls.crt -> ..data/tls.crt,
// ..data -> a timestamped directory, replaced by renaming a new symlink over it.
class MountedSecret {
 public:
  explicit MountedSecret(const bo::Pem& first) : dir_(testing_support::make_temp_dir("certs")) {
    publish(first);
    fs::create_symlink("..data/tls.crt", dir_ / "tls.crt");
    fs::create_symlink("..data/tls.key", dir_ / "tls.key");
  }
  ~MountedSecret() { fs::remove_all(dir_); }
  void publish(const bo::Pem& pair) {
    const std::string version = "..v" + std::to_string(++n_);
    fs::create_directory(dir_ / version);
    testing_support::write_file(dir_ / version / "tls.crt", pair.cert);
    testing_support::write_file(dir_ / version / "tls.key", pair.key);
    fs::create_symlink(version, dir_ / "..data_tmp");
    fs::rename(dir_ / "..data_tmp", dir_ / "..data");  // atomic, as the kubelet's AtomicWriter
  }
  [[nodiscard]] const fs::path& dir() const { return dir_; }

 private:
  fs::path dir_;
  int n_ = 0;
};

bo::Pem leaf(const bo::Pem& ca, int days) {
  const bo::Pem l = bo::issue_certificate(ca, "rotating", "127.0.0.1", days);
  return {l.cert + ca.cert, l.key};
}

TEST(CertRotation, TheWebhookServesRotatedFilesToNewClientsWithoutARestart) {
  const bo::Pem ca = bo::generate_ca("rotation-ca");
  const bo::Pem first = leaf(ca, 30), second = leaf(ca, 90);
  MountedSecret mount(first);
  auto watcher = bo::CertWatcher::start(mount.dir(), std::chrono::milliseconds(200));
  ASSERT_TRUE(watcher) << watcher.error();
  bo::webhook::Server webhook;
  ASSERT_TRUE(webhook.start("127.0.0.1:0", (*watcher)->certificate()));
  const int port = webhook.port();
  auto before = peer_certificate(port);
  ASSERT_TRUE(before);
  EXPECT_EQ(before->serial, bo::certificate_serial(first.cert));

  mount.publish(second);
  ASSERT_TRUE(eventually([&] {
    auto p = peer_certificate(port);
    return p && p->serial == bo::certificate_serial(second.cert);
  }));
  auto after = peer_certificate(port);
  ASSERT_TRUE(after);
  EXPECT_GT(after->not_after, before->not_after);  // 90 days, not 30
}

TEST(CertRotation, TheMetricsEndpointServesRotatedFilesAndIgnoresAHalfWrittenPair) {
  const bo::Pem ca = bo::generate_ca("rotation-ca");
  const bo::Pem first = leaf(ca, 30), second = leaf(ca, 60), third = leaf(ca, 90);
  MountedSecret mount(first);
  auto watcher = bo::CertWatcher::start(mount.dir(), std::chrono::milliseconds(200));
  ASSERT_TRUE(watcher) << watcher.error();
  bo::metrics::SecureServer server([](const bo::metrics::TextSink&) { return true; }, [](const std::string&) { return 200; });
  ASSERT_TRUE(server.start("127.0.0.1:0", (*watcher)->certificate()));
  const int port = server.port();
  mount.publish(second);
  ASSERT_TRUE(eventually([&] {
    auto p = peer_certificate(port);
    return p && p->serial == bo::certificate_serial(second.cert);
  }));
  // Half a rotation: the new certificate next to the old key. It is not taken.
  mount.publish({third.cert, second.key});
  (*watcher)->reload();  // what the watch does on the change, done here so the check below follows it
  EXPECT_EQ((*watcher)->certificate()->get()->cert, second.cert);
  auto p = peer_certificate(port);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->serial, bo::certificate_serial(second.cert));
  // The key arrives: the pair is whole and is served.
  mount.publish(third);
  ASSERT_TRUE(eventually([&] {
    auto q = peer_certificate(port);
    return q && q->serial == bo::certificate_serial(third.cert);
  }));
}

TEST(CertRotation, AMismatchedPairIsRefusedAtStart) {
  const bo::Pem ca = bo::generate_ca("rotation-ca");
  const bo::Pem a = leaf(ca, 30), b = leaf(ca, 30);
  MountedSecret mount({a.cert, b.key});
  auto watcher = bo::CertWatcher::start(mount.dir());
  ASSERT_FALSE(watcher);
  EXPECT_NE(watcher.error().find("does not belong"), std::string::npos) << watcher.error();
  EXPECT_EQ(watcher.error().find("PRIVATE KEY"), std::string::npos);  // no key material in messages
}

class GeneratedCertificate : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = server_.client();
    ASSERT_TRUE(client_->create(bo::kube::resources::kNamespaces, "", {{"metadata", {{"name", "op"}}}}));
  }
  json secret() {
    auto s = client_->get(bo::kube::resources::kSecrets, "op", "webhook-tls");
    EXPECT_TRUE(s);
    return s ? *s : json::object();
  }
  static std::string field(const json& s, const char* k) {
    return bo::base64_decode(s["data"].value(k, "")).value_or("");
  }
  testing_support::KubeLocal server_;
  std::unique_ptr<bo::kube::Client> client_;
};

TEST_F(GeneratedCertificate, AnExpiringLeafIsReissuedByTheSameCa) {
  bo::FakeClock clock(std::chrono::system_clock::now());
  bo::webhook::CertOptions opts{"op", "webhook-tls", {"svc.op.svc"}, ""};
  auto first = bo::webhook::ensure_certificate(*client_, opts, clock);
  ASSERT_TRUE(first) << first.error();
  const json s1 = secret();

  // Nothing to do a day later: the Secret is left as it is.
  clock.advance(std::chrono::hours(24));
  auto again = bo::webhook::ensure_certificate(*client_, opts, clock);
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(secret()["metadata"]["resourceVersion"], s1["metadata"]["resourceVersion"]);
  EXPECT_EQ(again->serving.cert, first->serving.cert);

  // 340 days on the 365-day leaf is within the 30 days before its end: a new leaf, the same CA.
  clock.advance(std::chrono::hours(24 * 339));
  auto renewed = bo::webhook::ensure_certificate(*client_, opts, clock);
  ASSERT_TRUE(renewed) << renewed.error();
  const json s2 = secret();
  EXPECT_EQ(field(s2, "ca.crt"), field(s1, "ca.crt"));
  EXPECT_EQ(field(s2, "ca.key"), field(s1, "ca.key"));
  EXPECT_EQ(renewed->ca_cert, first->ca_cert);
  EXPECT_NE(field(s2, "tls.crt"), field(s1, "tls.crt"));
  EXPECT_NE(field(s2, "tls.key"), field(s1, "tls.key"));
  EXPECT_NE(bo::certificate_serial(renewed->serving.cert), bo::certificate_serial(first->serving.cert));
  EXPECT_TRUE(bo::signed_by(renewed->serving.cert, first->ca_cert));
  EXPECT_TRUE(bo::check_key_pair(renewed->serving));
  const auto not_after = bo::certificate_not_after(renewed->serving.cert);
  ASSERT_TRUE(not_after);
  EXPECT_GT(*not_after, clock.now() + std::chrono::hours(24 * 300));  // counted from the clock's now

  // Other DNS names: again only the leaf changes.
  opts.hosts = {"svc.op.svc", "svc.op.svc.cluster.local"};
  auto rehosted = bo::webhook::ensure_certificate(*client_, opts, clock);
  ASSERT_TRUE(rehosted) << rehosted.error();
  EXPECT_EQ(rehosted->ca_cert, first->ca_cert);
  EXPECT_NE(rehosted->serving.cert, renewed->serving.cert);
  EXPECT_TRUE(bo::signed_by(rehosted->serving.cert, first->ca_cert));
}

}  // namespace
