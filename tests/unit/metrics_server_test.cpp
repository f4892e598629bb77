// /metrics over plain HTTP (metrics/plain_server.h): the exposition is sent
// as it is written, a piece per chunk, gzip'd for a scraper that asks, and
// nothing but GET /metrics is answered.
#include <gtest/gtest.h>
#include <zlib.h>

#include <chrono>
#include <condition_variable>
#include <cpprest/http_client.h>
#include <mutex>
#include <string>

#include "metrics/metrics.h"
#include "metrics/plain_server.h"

namespace {

namespace http = web::http;

http::http_response get(int port, const std::string& path, const std::string& accept_encoding = "",
                        http::method method = http::methods::GET) {
  http::client::http_client c("http://127.0.0.1:" + std::to_string(port));
  http::http_request req(method);
  req.set_request_uri(path);
  if (!accept_encoding.empty()) req.headers().add("Accept-Encoding", accept_encoding);
  return c.request(req).get();
}

std::string body_of(http::http_response r) {
  const auto bytes = r.extract_vector().get();
  return {bytes.begin(), bytes.end()};
}

std::string gunzip(const std::string& in) {
  z_stream z{};
  EXPECT_EQ(inflateInit2(&z, 15 + 16), Z_OK);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  }
  EXPECT_EQ(rc, Z_STREAM_END) << "a complete gzip stream";
  inflateEnd(&z);
  return out;
}

// A fleet's worth of series: far more than one piece.
void fill_fleet(bo::metrics::Metrics& m) {
  for (int i = 0; i < 2000; ++i) {
    const std::string p = "db-" + std::to_string(i);
    m.policy_condition("bench", p, "Ready", "True");
    m.policy_condition("bench", p, "BackupHealthy", "Unknown");
    m.backup_interval("bench", p, 3600);
    m.backup_last_success("bench", p, "full", 1767139200 + i);
  }
}

TEST(PlainMetricsServer, ServesTheExpositionPlainOrGzipAsAsked) {
  bo::metrics::Metrics m;
  fill_fleet(m);
  bo::metrics::PlainServer server([&m](const bo::metrics::TextSink& sink) { return m.write_text(sink); });
  ASSERT_TRUE(server.start("127.0.0.1:0"));
  ASSERT_GT(server.port(), 0);
  const std::string expected = m.text();
  ASSERT_GT(expected.size(), 300'000u);

  auto plain = get(server.port(), "/metrics");
  EXPECT_EQ(plain.status_code(), 200);
  EXPECT_EQ(plain.headers().content_type(), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_FALSE(plain.headers().has("Content-Encoding"));
  EXPECT_EQ(body_of(plain), expected);

  // As Prometheus asks.
  auto gz = get(server.port(), "/metrics", "gzip");
  EXPECT_EQ(gz.status_code(), 200);
  ASSERT_TRUE(gz.headers().has("Content-Encoding"));
  EXPECT_EQ(gz.headers()["Content-Encoding"], "gzip");
  const std::string compressed = body_of(gz);
  EXPECT_LT(compressed.size(), expected.size() / 5);
  EXPECT_EQ(gunzip(compressed), expected);

  // gzip refused with q=0: plain.
  auto refused = get(server.port(), "/metrics", "gzip;q=0, identity");
  EXPECT_FALSE(refused.headers().has("Content-Encoding"));
  EXPECT_EQ(body_of(refused), expected);
}

TEST(PlainMetricsServer, AnswersOnlyGetMetrics) {
  bo::metrics::PlainServer server([](const bo::metrics::TextSink& sink) { return sink("x 1\n"); });
  ASSERT_TRUE(server.start("127.0.0.1:0"));
  EXPECT_EQ(get(server.port(), "/").status_code(), 404);
  EXPECT_EQ(get(server.port(), "/metrics/x").status_code(), 404);
  EXPECT_EQ(get(server.port(), "/metrics", "", http::methods::POST).status_code(), 405);
  EXPECT_EQ(body_of(get(server.port(), "/metrics")), "x 1\n");
}

// A piece reaches the scraper before the next one is written: the server
// holds no more than a piece, however large the exposition.
TEST(PlainMetricsServer, SendsEachPieceBeforeTheNextIsWritten) {
  std::mutex mu;
  std::condition_variable cv;
  bool first_read = false;
  bool waited_in_vain = false;
  bo::metrics::PlainServer server([&](const bo::metrics::TextSink& sink) {
    if (!sink("first 1\n")) return false;
    std::unique_lock lock(mu);
    waited_in_vain = !cv.wait_for(lock, std::chrono::seconds(20), [&] { return first_read; });
    lock.unlock();
    return sink("second 2\n");
  });
  ASSERT_TRUE(server.start("127.0.0.1:0"));
  http::client::http_client c("http://127.0.0.1:" + std::to_string(server.port()));
  auto resp = c.request(http::methods::GET, "/metrics").get();
  auto body = resp.body();
  std::string got;
  while (got.find('\n') == std::string::npos) {
    const auto ch = body.read().get();
    ASSERT_NE(ch, std::char_traits<char>::eof()) << "the body ended before its first line";
    got.push_back(static_cast<char>(ch));
  }
  EXPECT_EQ(got, "first 1\n");
  {
    std::lock_guard lock(mu);
    first_read = true;
  }
  cv.notify_all();
  EXPECT_EQ(got + resp.extract_string().get(), "first 1\nsecond 2\n");
  EXPECT_FALSE(waited_in_vain) << "the first piece reached the client only after the writer was done";
}

TEST(PlainMetricsServer, ABindThatFailsSaysWhy) {
  bo::metrics::PlainServer first([](const bo::metrics::TextSink&) { return true; });
  ASSERT_TRUE(first.start("127.0.0.1:0"));
  bo::metrics::PlainServer second([](const bo::metrics::TextSink&) { return true; });
  const auto again = second.start("127.0.0.1:" + std::to_string(first.port()));
  ASSERT_FALSE(again);
  EXPECT_NE(again.error(), "");
  EXPECT_EQ(second.port(), 0);
  EXPECT_FALSE(second.start("not an address"));
}

}  // namespace
