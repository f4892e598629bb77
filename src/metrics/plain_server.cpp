#include "metrics/plain_server.h"

#include <civetweb.h>
#include <zlib.h>

#include <cstring>
#include <string_view>
#include <vector>

#include "common/log.h"

namespace bo::metrics {
namespace {

constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Whether an Accept-Encoding header lists gzip (with any q but 0).
bool accepts_gzip(const char* header) {
  if (!header) return false;
  std::string_view h(header);
  for (size_t start = 0; start <= h.size();) {
    const size_t comma = std::min(h.find(',', start), h.size());
    std::string_view item = h.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    const size_t semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
    if (coding == "gzip") {
      if (semi == std::string_view::npos) return true;
      std::string_view q = item.substr(semi + 1);
      while (!q.empty() && q.front() == ' ') q.remove_prefix(1);
      return !(q.starts_with("q=0") && q.find_first_not_of("q=0.") == std::string_view::npos);
    }
    start = comma + 1;
  }
  return false;
}

// Each piece as an HTTP chunk, through gzip when asked. civetweb's writes
// block while the socket is full: a slow scraper slows its own scrape only.
class ChunkWriter {
 public:
  ChunkWriter(mg_connection* conn, bool gzip) : conn_(conn), gzip_(gzip) {
    if (gzip_) {
      // 15 + 16: a gzip header and trailer around the deflate stream.
      gzip_ = deflateInit2(&z_, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK;
      out_.resize(64 * 1024);
    }
  }
  ~ChunkWriter() {
    if (gzip_) deflateEnd(&z_);
  }
  ChunkWriter(const ChunkWriter&) = delete;
  ChunkWriter& operator=(const ChunkWriter&) = delete;
  [[nodiscard]] bool gzip() const { return gzip_; }

  bool write(std::string_view piece) {
    if (!gzip_) return send(piece.data(), piece.size());
    return deflate_all(piece, Z_NO_FLUSH);
  }
  // The gzip trailer and the last, empty chunk.
  bool finish() {
    if (gzip_ && !deflate_all({}, Z_FINISH)) return false;
    return mg_send_chunk(conn_, "", 0) >= 0;
  }

 private:
  bool send(const char* data, size_t n) {
    return n == 0 || mg_send_chunk(conn_, data, static_cast<unsigned>(n)) >= 0;
  }
  bool deflate_all(std::string_view in, int flush) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    int rc = Z_OK;
    do {
      z_.next_out = reinterpret_cast<Bytef*>(out_.data());
      z_.avail_out = static_cast<uInt>(out_.size());
      rc = deflate(&z_, flush);
      if (rc == Z_STREAM_ERROR) return false;
      if (!send(out_.data(), out_.size() - z_.avail_out)) return false;
    } while (z_.avail_out == 0 || (flush == Z_FINISH && rc != Z_STREAM_END));
    return true;
  }

  mg_connection* conn_;
  bool gzip_;
  z_stream z_{};
  std::vector<char> out_;
};

}  // namespace

struct PlainServer::Impl {
  TextWriter write;
  mg_context* ctx = nullptr;
  int port = 0;

  static int handle(mg_connection* conn, void* data) {
    auto* self = static_cast<Impl*>(data);
    const mg_request_info* ri = mg_get_request_info(conn);
    if (std::strcmp(ri->local_uri ? ri->local_uri : "", "/metrics") != 0) {
      mg_send_http_error(conn, 404, "not found");
      return 404;
    }
    if (std::strcmp(ri->request_method, "GET") != 0) {
      mg_send_http_error(conn, 405, "method not allowed");
      return 405;
    }
    ChunkWriter out(conn, accepts_gzip(mg_get_header(conn, "Accept-Encoding")));
    mg_response_header_start(conn, 200);
    mg_response_header_add(conn, "Content-Type", kContentType, -1);
    if (out.gzip()) mg_response_header_add(conn, "Content-Encoding", "gzip", -1);
    mg_response_header_add(conn, "Transfer-Encoding", "chunked", -1);
    mg_response_header_send(conn);
    if (self->write([&](std::string_view piece) { return out.write(piece); })) out.finish();
    return 200;
  }

  static int log_message(const mg_connection*, const char* message) {
    log::debug("metrics server", {{"message", message ? message : ""}});
    return 1;  // logged: civetweb prints nothing to stderr
  }
};

PlainServer::PlainServer(TextWriter write) : impl_(std::make_unique<Impl>()) { impl_->write = std::move(write); }

PlainServer::~PlainServer() { stop(); }

std::expected<void, std::string> PlainServer::start(const std::string& bind) {
  stop();
  const char* options[] = {"listening_ports", bind.c_str(), "num_threads", "2", nullptr};
  mg_callbacks callbacks{};
  callbacks.log_message = &Impl::log_message;
  mg_init_data init{&callbacks, impl_.get(), options};
  char text[256] = {0};
  unsigned code = 0;
  mg_error_data error{&code, text, sizeof text};
  impl_->ctx = mg_start2(&init, &error);
  if (!impl_->ctx) return std::unexpected(text[0] ? std::string(text) : "cannot listen on " + bind);
  mg_set_request_handler(impl_->ctx, "/", &Impl::handle, impl_.get());
  mg_server_port ports[4];
  const int n = mg_get_server_ports(impl_->ctx, 4, ports);
  impl_->port = n > 0 ? ports[0].port : 0;
  return {};
}

void PlainServer::stop() {
  if (impl_->ctx) mg_stop(impl_->ctx);
  impl_->ctx = nullptr;
  impl_->port = 0;
}

int PlainServer::port() const { return impl_->port; }

}  // namespace bo::metrics
