#include "bundle/store.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cpprest/filestream.h>
#include <cpprest/http_client.h>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <regex>

#include "bundle/crypto.h"
#include "bundle/sigv4.h"
#include "common/timefmt.h"

namespace bo::bundle {
namespace fs = std::filesystem;
namespace {

template <class T>
using Result = std::expected<T, std::string>;

class DirectoryStore final : public Store {
 public:
  explicit DirectoryStore(fs::path dir) : dir_(std::move(dir)) {}
  Result<std::string> put(const std::string& name, const fs::path& file) override {
    const fs::path dest = dir_ / name;
    std::error_code ec;
    fs::create_directories(dest.parent_path(), ec);
    if (ec) return std::unexpected("cannot create " + dest.parent_path().string() + ": " + ec.message());
    // Copy beside the destination, sync, then rename: a reader sees the whole bundle or none.
    const fs::path tmp = dest.string() + ".partial";
    fs::copy_file(file, tmp, fs::copy_options::overwrite_existing, ec);
    if (!ec) {
      const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::fsync(fd) != 0) ec = std::error_code(errno, std::generic_category());
      if (fd >= 0) ::close(fd);
    }
    if (!ec) fs::rename(tmp, dest, ec);
    if (ec) {
      std::error_code ignore;
      fs::remove(tmp, ignore);
      return std::unexpected("cannot write " + dest.string() + ": " + ec.message());
    }
    return dest.string();
  }
  Result<void> get(const std::string& name, const fs::path& file) override {
    std::error_code ec;
    fs::copy_file(dir_ / name, file, fs::copy_options::overwrite_existing, ec);
    if (ec) return std::unexpected("cannot read " + (dir_ / name).string() + ": " + ec.message());
    return {};
  }
  [[nodiscard]] std::string location(const std::string& name) const override { return (dir_ / name).string(); }

 private:
  fs::path dir_;
};

std::string file_sha256(const fs::path& p, uint64_t& size) {
  std::ifstream in(p, std::ios::binary);
  Sha256 h;
  std::string buf(64 * 1024, '\0');
  size = 0;
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<size_t>(in.gcount());
    h.update(buf.data(), n);
    size += n;
  }
  return h.hex();
}

std::string xml_field(const std::string& body, const std::string& tag) {
  const auto a = body.find("<" + tag + ">");
  const auto b = body.find("</" + tag + ">");
  if (a == std::string::npos || b == std::string::npos || b < a) return "";
  return body.substr(a + tag.size() + 2, b - a - tag.size() - 2);
}

class S3Store final : public Store {
 public:
  S3Store(std::string endpoint, bool path_style, std::string bucket, std::string prefix, SigV4Credentials creds,
          std::string ca_file)
      : endpoint_(std::move(endpoint)), path_style_(path_style), bucket_(std::move(bucket)), prefix_(std::move(prefix)),
        creds_(std::move(creds)), ca_file_(std::move(ca_file)) {}

  Result<std::string> put(const std::string& name, const fs::path& file) override {
    uint64_t size = 0;
    const std::string digest = file_sha256(file, size);
    auto body = concurrency::streams::file_stream<uint8_t>::open_istream(file.string()).get();
    auto r = send(web::http::methods::PUT, name, digest, [&](web::http::http_request& req) {
      req.set_body(body, static_cast<size_t>(size), "application/octet-stream");
    });
    body.close().wait();
    if (!r) return std::unexpected(r.error());
    return location(name);
  }

  Result<void> get(const std::string& name, const fs::path& file) override {
    const std::string partial = file.string() + ".partial";
    Result<void> out;
    try {
      auto sink = concurrency::streams::file_stream<uint8_t>::open_ostream(partial, std::ios::out | std::ios::trunc).get();
      auto r = send(web::http::methods::GET, name, kEmptySha, nullptr, &sink);
      sink.close().wait();
      if (!r) out = std::unexpected(r.error());
    } catch (const std::exception& e) {
      out = std::unexpected("S3 GET " + location(name) + ": " + e.what());
    }
    std::error_code ec;
    if (out) fs::rename(partial, file, ec);
    if (!out || ec) fs::remove(partial, ec);
    return out;
  }

  [[nodiscard]] std::string location(const std::string& name) const override {
    return "s3://" + bucket_ + "/" + key(name);
  }

 private:
  static constexpr const char* kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

  [[nodiscard]] std::string key(const std::string& name) const { return prefix_.empty() ? name : prefix_ + "/" + name; }

  Result<void> send(const web::http::method& method, const std::string& name, const std::string& payload_sha,
                    const std::function<void(web::http::http_request&)>& body,
                    concurrency::streams::ostream* sink = nullptr) {
    const std::string where = "S3 " + method + " " + location(name);
    try {
      const web::uri base(utility::conversions::to_string_t(endpoint_));
      std::string host = base.host();
      if (!base.is_port_default()) host += ":" + std::to_string(base.port());
      const std::string path = path_style_ ? "/" + bucket_ + "/" + key(name) : "/" + key(name);
      const std::string canonical_uri = s3_uri_encode(path, true);
      const std::string date = format_compact_utc(std::chrono::system_clock::now());
      SigV4Request sreq{method, canonical_uri, "", {{"host", host}, {"x-amz-content-sha256", payload_sha}, {"x-amz-date", date}},
                        payload_sha};
      web::http::client::http_client_config cfg;
      cfg.set_timeout(std::chrono::seconds(300));
      if (!ca_file_.empty()) {
        // As WAL-G's WALG_S3_CA_CERT_FILE: trust this CA (in addition to the system's).
        std::ifstream in(ca_file_);
        const std::string ca((std::istreambuf_iterator<char>(in)), {});
        cfg.set_ssl_context_callback([ca](boost::asio::ssl::context& ctx) {
          X509_STORE* store = SSL_CTX_get_cert_store(ctx.native_handle());
          BIO* bio = BIO_new_mem_buf(ca.data(), static_cast<int>(ca.size()));
          while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
            X509_STORE_add_cert(store, x);
            X509_free(x);
          }
          BIO_free(bio);
          ERR_clear_error();  // the end-of-PEM "error" would otherwise fail the handshake
        });
      }
      web::http::client::http_client client(base, cfg);
      web::http::http_request req(method);
      req.set_request_uri(canonical_uri);
      // cpprest writes "Host: host[:port]" itself (the value signed above); setting it here
      // would also make it the TLS server name, port included, and fail the handshake.
      req.headers().add("x-amz-date", date);
      req.headers().add("x-amz-content-sha256", payload_sha);
      req.headers().add("Authorization", sigv4_authorization(sreq, creds_, date));
      if (body) body(req);
      auto resp = client.request(req).get();
      const auto code = resp.status_code();
      if (code >= 200 && code < 300) {
        if (sink) resp.body().read_to_end(sink->streambuf()).wait();
        return {};
      }
      const std::string text = resp.extract_string(true).get();
      const std::string code_text = xml_field(text, "Code");
      const std::string message = xml_field(text, "Message");
      return std::unexpected(where + ": HTTP " + std::to_string(code) + (code_text.empty() ? "" : " " + code_text) +
                             (message.empty() ? "" : ": " + message));
    } catch (const std::exception& e) {
      const std::string what = e.what();
      const bool tls = what.find("SSL") != std::string::npos || what.find("certificate") != std::string::npos;
      return std::unexpected(where + ": " + what +
                             (tls ? " (is the endpoint's CA trusted? WALG_S3_CA_CERT_FILE names an extra CA)" : ""));
    }
  }

  std::string endpoint_;
  bool path_style_;
  std::string bucket_, prefix_;
  SigV4Credentials creds_;
  std::string ca_file_;
};

std::string env_or(const std::map<std::string, std::string>& env, const std::string& k, const std::string& dflt = "") {
  const auto it = env.find(k);
  return it == env.end() || it->second.empty() ? dflt : it->second;
}

}  // namespace

std::string object_name(const std::string& context, const std::string& id) {
  return "paas-state/" + context + "/" + id + ".bundle";
}

std::unique_ptr<Store> make_directory_store(fs::path dir) { return std::make_unique<DirectoryStore>(std::move(dir)); }

Result<std::unique_ptr<Store>> make_s3_store(const std::map<std::string, std::string>& env) {
  const std::string prefix = env_or(env, "WALG_S3_PREFIX");
  static const std::regex kPrefix(R"(s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(/.*)?)");
  std::smatch m;
  if (!std::regex_match(prefix, m, kPrefix)) return std::unexpected("WALG_S3_PREFIX: must be s3://<bucket>[/<path>]");
  std::string path = m[2].matched ? m[2].str() : "";
  while (!path.empty() && path.front() == '/') path.erase(path.begin());
  while (!path.empty() && path.back() == '/') path.pop_back();
  SigV4Credentials creds;
  creds.access_key = env_or(env, "WALG_AWS_ACCESS_KEY_ID", env_or(env, "AWS_ACCESS_KEY_ID"));
  creds.secret_key = env_or(env, "WALG_AWS_SECRET_ACCESS_KEY", env_or(env, "AWS_SECRET_ACCESS_KEY"));
  if (creds.access_key.empty()) return std::unexpected("WALG_AWS_ACCESS_KEY_ID: not set");
  if (creds.secret_key.empty()) return std::unexpected("WALG_AWS_SECRET_ACCESS_KEY: not set");
  creds.region = env_or(env, "WALG_AWS_REGION", env_or(env, "AWS_REGION", "us-east-1"));
  std::string endpoint = env_or(env, "WALG_AWS_ENDPOINT", env_or(env, "AWS_ENDPOINT"));
  const bool path_style = !endpoint.empty();
  if (endpoint.empty()) endpoint = "https://" + m[1].str() + ".s3." + creds.region + ".amazonaws.com";
  if (!endpoint.starts_with("http://") && !endpoint.starts_with("https://"))
    return std::unexpected("WALG_AWS_ENDPOINT: must start with http:// or https://");
  while (endpoint.size() > 8 && endpoint.back() == '/') endpoint.pop_back();
  const std::string ca_file = env_or(env, "WALG_S3_CA_CERT_FILE");
  if (!ca_file.empty() && !fs::is_regular_file(ca_file)) return std::unexpected("WALG_S3_CA_CERT_FILE: " + ca_file + " is not a file");
  return std::make_unique<S3Store>(endpoint, path_style, m[1].str(), path, creds, ca_file);
}

Result<std::unique_ptr<Store>> make_store(const std::string& spec, const std::map<std::string, std::string>& env) {
  if (spec == "s3") return make_s3_store(env);
  if (spec.starts_with("dir:") && spec.size() > 4) return make_directory_store(spec.substr(4));
  return std::unexpected("--store: must be dir:<path> or s3, not \"" + spec + "\"");
}

}  // namespace bo::bundle
