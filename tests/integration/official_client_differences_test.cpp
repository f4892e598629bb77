// Differences from kube-apiserver that official clients found (issue 14, item 5),
// pinned at the HTTP and TLS level with kube-apiserver's source cited beside each.
// The client suites in tests/clients drive the same behaviour through
// @kubernetes/client-node and python3-kubernetes.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "common/encoding.h"
#include "harness.h"

using namespace bo::kube;
using nlohmann::json;
using testing_support::KubeLocal;

namespace {

class OfficialClientDifferences : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new KubeLocal(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    c_ = server_->client({1});
    t_ = server_->transport();
    ns_ = "d" + bo::hex_encode(bo::random_bytes(3));
    ASSERT_TRUE(c_->create(resources::kNamespaces, "", {{"metadata", {{"name", ns_}}}}));
  }
  HttpResponse send(const std::string& method, const std::string& path, const json& body = nullptr) {
    auto r = t_->send({method, path, body.is_null() ? "" : "application/json", body.is_null() ? "" : body.dump(), {}, ""});
    EXPECT_TRUE(r) << r.error().str();
    return r ? *r : HttpResponse{};
  }
  static KubeLocal* server_;
  std::unique_ptr<Client> c_;
  std::unique_ptr<Transport> t_;
  std::string ns_;
};
KubeLocal* OfficialClientDifferences::server_ = nullptr;

// One TLS connection that GETs /version and reads to the end (TLS 1.3 session
// tickets arrive after the handshake); returns the session to resume, whether
// this connection resumed one, and OpenSSL's error text on failure.
struct TlsOutcome {
  bool ok = false;
  bool reused = false;
  SSL_SESSION* session = nullptr;
  std::string error;
};

TlsOutcome tls_get_version(int port, SSL_SESSION* resume) {
  TlsOutcome out;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  SSL* ssl = SSL_new(ctx);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    SSL_set_fd(ssl, fd);
    if (resume) SSL_set_session(ssl, resume);
    ERR_clear_error();
    if (SSL_connect(ssl) == 1) {
      const std::string req = "GET /version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
      SSL_write(ssl, req.data(), static_cast<int>(req.size()));
      // Read exactly one response (headers, then Content-Length bytes), then close
      // cleanly: OpenSSL does not resume a session whose connection ended in an error.
      char buf[4096];
      std::string resp;
      size_t want = std::string::npos;
      int n;
      while ((want == std::string::npos || resp.size() < want) && (n = SSL_read(ssl, buf, sizeof buf)) > 0) {
        resp.append(buf, static_cast<size_t>(n));
        const auto end = resp.find("\r\n\r\n");
        const auto cl = resp.find("Content-Length: ");
        if (want == std::string::npos && end != std::string::npos && cl != std::string::npos && cl < end)
          want = end + 4 + std::stoul(resp.substr(cl + 16));
      }
      SSL_shutdown(ssl);
      out.ok = resp.starts_with("HTTP/1.1 200");
      if (!out.ok) out.error = "response: " + resp.substr(0, 200);
      out.reused = SSL_session_reused(ssl) == 1;
      out.session = SSL_get1_session(ssl);
    } else {
      char err[256];
      ERR_error_string_n(ERR_get_error(), err, sizeof err);
      out.error = err;
    }
  } else {
    out.error = "connect failed";
  }
  SSL_free(ssl);
  close(fd);
  SSL_CTX_free(ctx);
  return out;
}

// kube-apiserver serves with Go's crypto/tls and leaves session tickets on
// (apiserver/pkg/server/secure_serving.go, SecureServingInfo.tlsConfig sets no
// SessionTicketsDisabled), so a client that caches sessions (Node's https.Agent,
// which @kubernetes/client-node uses) resumes on its next connection.
TEST_F(OfficialClientDifferences, TlsSessionsResumeOnTheNextConnection) {
  auto first = tls_get_version(server_->port(), nullptr);
  ASSERT_TRUE(first.ok) << first.error;
  ASSERT_NE(first.session, nullptr);
  EXPECT_FALSE(first.reused);
  auto second = tls_get_version(server_->port(), first.session);
  SSL_SESSION_free(first.session);
  if (second.session) SSL_SESSION_free(second.session);
  ASSERT_TRUE(second.ok) << second.error;
  EXPECT_TRUE(second.reused);
}

// registry/generic/registry/store.go Delete: an object deleted at once goes through
// finalizeDelete, which answers a Success Status (details.kind is the resource,
// group omitted for core) unless the store sets ReturnDeletedObject (service
// accounts do: pkg/registry/core/serviceaccount/storage/storage.go); an object kept
// for its finalizers is returned as it now is.
TEST_F(OfficialClientDifferences, DeleteAnswersAsStoreDelete) {
  auto cm = c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", "plain"}}}});
  ASSERT_TRUE(cm);
  auto r = send("DELETE", resources::kConfigMaps.path(ns_, "plain"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body), (json{{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()},
                                      {"status", "Success"},
                                      {"details", {{"name", "plain"}, {"kind", "configmaps"},
                                                   {"uid", (*cm)["metadata"]["uid"]}}}}));
  ASSERT_TRUE(c_->create(resources::kServiceAccounts, ns_, {{"metadata", {{"name", "sa"}}}}));
  r = send("DELETE", resources::kServiceAccounts.path(ns_, "sa"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["kind"], "ServiceAccount");
  ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", "held"}, {"finalizers", {"example.com/x"}}}}}));
  r = send("DELETE", resources::kConfigMaps.path(ns_, "held"));
  EXPECT_EQ(r.status, 200);
  const json held = json::parse(r.body);
  EXPECT_EQ(held["kind"], "ConfigMap");
  EXPECT_TRUE(held["metadata"].contains("deletionTimestamp"));
  // The operator's own client keeps working with both answers.
  ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", "again"}}}}));
  auto removed = c_->remove(resources::kConfigMaps, ns_, "again", {"Background", "", ""});
  ASSERT_TRUE(removed) << removed.error().str();
  EXPECT_EQ((*removed)["status"], "Success");
}

// Store.DeleteCollection lists with the request's ListOptions (field selector
// included) and returns that list.
TEST_F(OfficialClientDifferences, DeleteCollectionSelectsByFieldAndReturnsTheDeletedItems) {
  for (const char* n : {"a", "b", "c"}) ASSERT_TRUE(c_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", n}}}}));
  auto r = send("DELETE", resources::kConfigMaps.path(ns_) + "?fieldSelector=metadata.name%3Db");
  EXPECT_EQ(r.status, 200);
  const json list = json::parse(r.body);
  EXPECT_EQ(list["kind"], "ConfigMapList");
  ASSERT_EQ(list["items"].size(), 1u);
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "b");
  EXPECT_TRUE(c_->get(resources::kConfigMaps, ns_, "a"));
  EXPECT_TRUE(c_->get(resources::kConfigMaps, ns_, "c"));
  EXPECT_TRUE(c_->get(resources::kConfigMaps, ns_, "b").error().not_found());
}

// ValidateCreateOptions -> ValidateDryRun (apimachinery/pkg/apis/meta/v1/validation/
// validation.go): only "All"; endpoints/handlers/create.go answers errors.NewInvalid
// on meta.k8s.io CreateOptions before anything is written.
TEST_F(OfficialClientDifferences, AnInvalidDryRunValueIs422AndWritesNothing) {
  auto r = send("POST", resources::kConfigMaps.path(ns_) + "?dryRun=Sometimes", {{"metadata", {{"name", "x"}}}});
  EXPECT_EQ(r.status, 422);
  const json st = json::parse(r.body);
  EXPECT_EQ(st["message"], "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: []string{\"Sometimes\"}: "
                           "supported values: \"All\"");
  EXPECT_EQ(st["details"], (json{{"group", "meta.k8s.io"}, {"kind", "CreateOptions"},
                                 {"causes", {{{"reason", "FieldValueNotSupported"},
                                              {"message", "Unsupported value: []string{\"Sometimes\"}: supported values: \"All\""},
                                              {"field", "dryRun"}}}}}));
  EXPECT_TRUE(c_->get(resources::kConfigMaps, ns_, "x").error().not_found());
}

}  // namespace
