#include "bundle/store.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cpprest/filestream.h>
#include <cpprest/http_client.h>

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstring>
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
  Result<std::string> put(const std::string& name, const fs::path& file) override { return write(name, file, false); }
  Result<std::string> put_new(const std::string& name, const fs::path& file) override { return write(name, file, true); }
  Result<std::string> write(const std::string& name, const fs::path& file, bool no_replace) {
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
    bool exists = false;
    if (!ec && no_replace) {
      if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) != 0) {
        exists = errno == EEXIST;
        ec = std::error_code(errno, std::generic_category());
      }
    } else if (!ec) {
      fs::rename(tmp, dest, ec);
    }
    if (ec) {
      std::error_code ignore;
      fs::remove(tmp, ignore);
      if (exists) return std::unexpected(dest.string() + " already exists: a stored object is never replaced");
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
  Result<bool> exists(const std::string& name) override {
    std::error_code ec;
    const bool found = fs::is_regular_file(dir_ / name, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) return std::unexpected("cannot stat " + location(name) + ": " + ec.message());
    return found;
  }
  Result<std::vector<ObjectInfo>> list(const std::string& prefix) override {
    std::vector<ObjectInfo> out;
    std::error_code ec;
    const fs::path base = prefix.empty() ? dir_ : dir_ / prefix;
    if (!fs::exists(base, ec)) return out;
    for (auto it = fs::recursive_directory_iterator(base, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_regular_file()) continue;
      const std::string rel = fs::relative(it->path(), dir_).generic_string();
      if (rel.ends_with(".partial")) continue;  // a write in progress is not an object yet
      struct stat st {};
      if (::stat(it->path().c_str(), &st) != 0) continue;  // removed while listing
      const auto modified = std::chrono::system_clock::time_point(
          std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::seconds(st.st_mtim.tv_sec) +
                                                                          std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
      out.push_back({rel, modified, static_cast<uint64_t>(st.st_size)});
    }
    if (ec) return std::unexpected("cannot list " + base.string() + ": " + ec.message());
    std::sort(out.begin(), out.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    return out;
  }
  Result<void> remove(const std::string& name) override {
    std::error_code ec;
    fs::remove(dir_ / name, ec);
    if (ec) return std::unexpected("cannot delete " + location(name) + ": " + ec.message());
    return {};
  }

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
    auto r = send(web::http::methods::PUT, object_path(name), "", digest, [&](web::http::http_request& req) {
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
      auto r = send(web::http::methods::GET, object_path(name), "", kEmptySha, nullptr, &sink);
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

  Result<bool> exists(const std::string& name) override {
    int code = 0;
    auto r = send(web::http::methods::HEAD, object_path(name), "", kEmptySha, nullptr, nullptr, nullptr, &code);
    if (r) return true;
    if (code == 404) return false;
    return std::unexpected(r.error());
  }

  // ListObjectsV2, page by page.
  Result<std::vector<ObjectInfo>> list(const std::string& prefix) override {
    std::vector<ObjectInfo> out;
    const std::string full = prefix.empty() ? (prefix_.empty() ? "" : prefix_ + "/") : key(prefix);
    std::string token;
    for (;;) {
      std::map<std::string, std::string> q{{"list-type", "2"}, {"prefix", full}};
      if (!token.empty()) q["continuation-token"] = token;
      std::string query;
      for (const auto& [k, v] : q) query += (query.empty() ? "" : "&") + s3_uri_encode(k, false) + "=" + s3_uri_encode(v, false);
      std::string body;
      auto r = send(web::http::methods::GET, path_style_ ? "/" + bucket_ : "/", query, kEmptySha, nullptr, nullptr, &body);
      if (!r) return std::unexpected(r.error());
      for (size_t pos = 0; (pos = body.find("<Contents>", pos)) != std::string::npos;) {
        const size_t end = body.find("</Contents>", pos);
        if (end == std::string::npos) break;
        const std::string item = body.substr(pos, end - pos);
        pos = end;
        std::string k = xml_unescape(xml_field(item, "Key"));
        if (!prefix_.empty()) {
          if (!k.starts_with(prefix_ + "/")) continue;
          k = k.substr(prefix_.size() + 1);
        }
        ObjectInfo info{k, {}, 0};
        if (auto t = parse_rfc3339(xml_field(item, "LastModified"))) info.modified = *t;
        try {
          info.size = std::stoull(xml_field(item, "Size"));
        } catch (const std::exception&) {
          info.size = 0;
        }
        out.push_back(std::move(info));
      }
      if (xml_field(body, "IsTruncated") != "true") break;
      token = xml_unescape(xml_field(body, "NextContinuationToken"));
      if (token.empty()) break;
    }
    std::sort(out.begin(), out.end(), [](const ObjectInfo& a, const ObjectInfo& b) { return a.name < b.name; });
    return out;
  }

  Result<void> remove(const std::string& name) override {
    return send(web::http::methods::DEL, object_path(name), "", kEmptySha, nullptr);
  }

  Result<RawResponse> get_raw(const std::string& name, const std::string& query) override {
    RawResponse raw;
    auto r = send(web::http::methods::GET, object_path(name), query, kEmptySha, nullptr, nullptr, nullptr, nullptr, &raw);
    if (!r) return std::unexpected(r.error());
    return raw;
  }

 private:
  static std::string xml_unescape(std::string s) {
    static const std::pair<const char*, const char*> kEntities[] = {
        {"&lt;", "<"}, {"&gt;", ">"}, {"&quot;", "\""}, {"&apos;", "'"}, {"&amp;", "&"}};
    for (const auto& [from, to] : kEntities)
      for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += std::strlen(to)) s.replace(p, std::strlen(from), to);
    return s;
  }
  [[nodiscard]] std::string object_path(const std::string& name) const {
    return path_style_ ? "/" + bucket_ + "/" + key(name) : "/" + key(name);
  }

  static constexpr const char* kEmptySha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

  [[nodiscard]] std::string key(const std::string& name) const { return prefix_.empty() ? name : prefix_ + "/" + name; }

  // `path` is the unencoded request path (bucket included when path-style), `query` already canonical.
  Result<void> send(const web::http::method& method, const std::string& path, const std::string& query,
                    const std::string& payload_sha, const std::function<void(web::http::http_request&)>& body,
                    concurrency::streams::ostream* sink = nullptr, std::string* body_text = nullptr,
                    int* status = nullptr, RawResponse* raw = nullptr) {
    const std::string where = "S3 " + method + " s3://" + bucket_ + (path_style_ ? path.substr(bucket_.size() + 1) : path) +
                              (query.empty() ? "" : "?" + query);
    try {
      const web::uri base(utility::conversions::to_string_t(endpoint_));
      std::string host = base.host();
      if (!base.is_port_default()) host += ":" + std::to_string(base.port());
      const std::string canonical_uri = s3_uri_encode(path, true);
      const std::string date = format_compact_utc(std::chrono::system_clock::now());
      SigV4Request sreq{method, canonical_uri, query, {{"host", host}, {"x-amz-content-sha256", payload_sha}, {"x-amz-date", date}},
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
      req.set_request_uri(query.empty() ? canonical_uri : canonical_uri + "?" + query);
      // cpprest writes "Host: host[:port]" itself (the value signed above); setting it here
      // would also make it the TLS server name, port included, and fail the handshake.
      req.headers().add("x-amz-date", date);
      req.headers().add("x-amz-content-sha256", payload_sha);
      req.headers().add("Authorization", sigv4_authorization(sreq, creds_, date));
      if (body) body(req);
      auto resp = client.request(req).get();
      const auto code = resp.status_code();
      if (status) *status = code;
      if (raw) {
        raw->status = code;
        raw->body = resp.extract_utf8string(true).get();
        return {};
      }
      if (code >= 200 && code < 300) {
        if (sink) resp.body().read_to_end(sink->streambuf()).wait();
        if (body_text) *body_text = resp.extract_utf8string(true).get();
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

std::expected<std::string, std::string> Store::put_new(const std::string& name, const fs::path& file) {
  auto found = exists(name);
  if (!found) return std::unexpected(found.error());
  if (*found) return std::unexpected(location(name) + " already exists: a stored object is never replaced");
  return put(name, file);
}

Result<bool> Store::exists(const std::string& name) { return std::unexpected("exists(" + name + "): not supported by this store"); }
Result<std::vector<ObjectInfo>> Store::list(const std::string& prefix) {
  return std::unexpected("list(" + prefix + "): not supported by this store");
}
Result<void> Store::remove(const std::string& name) { return std::unexpected("remove(" + name + "): not supported by this store"); }
Result<RawResponse> Store::get_raw(const std::string& name, const std::string&) {
  return std::unexpected("get_raw(" + name + "): not supported by this store");
}

std::unique_ptr<Store> make_s3_store_at(S3Location w) {
  return std::make_unique<S3Store>(std::move(w.endpoint), w.path_style, std::move(w.bucket), std::move(w.prefix),
                                   std::move(w.creds), std::move(w.ca_file));
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
