// Listeners on port 0 (common/listener_port.h): the port they got is known,
// two of one process (http and https) each get their own, and a named port
// that another socket took before the listener bound it is replaced by another.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cpprest/http_client.h>

#include "common/certs.h"
#include "common/https_listener.h"
#include "common/listener_port.h"

namespace {

namespace http = web::http;
using http::experimental::listener::http_listener;

std::unique_ptr<http_listener> hello(const std::string& host_port) {
  auto l = std::make_unique<http_listener>("http://" + host_port);
  l->support(http::methods::GET, [](http::http_request req) { req.reply(http::status_codes::OK, "hello"); });
  return l;
}

std::string get(int port) {
  http::client::http_client c("http://127.0.0.1:" + std::to_string(port));
  return c.request(http::methods::GET, "/").get().extract_string().get();
}

// A socket listening on a loopback port the kernel chose: that port is taken while it lives.
struct Occupied {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor acceptor{io, {boost::asio::ip::make_address("127.0.0.1"), 0}};
  [[nodiscard]] int port() const { return acceptor.local_endpoint().port(); }
};

TEST(ListenerPort, AListenerOnPortZeroKnowsThePortItGot) {
  auto bound = bo::open_listener("127.0.0.1:0", hello);
  ASSERT_TRUE(bound) << bound.error();
  EXPECT_GT(bound->port, 0);
  EXPECT_EQ(get(bound->port), "hello");
  EXPECT_EQ(bo::with_port("127.0.0.1:0", bound->port), "127.0.0.1:" + std::to_string(bound->port));
  bound->listener->close().wait();
}

// cpprestsdk alone files both under "127.0.0.1:0" and refuses the second
// ("can not simultaneously listen both http and https paths of one host").
TEST(ListenerPort, AnHttpAndAnHttpsListenerOfOneProcessBothOnPortZeroEachGetTheirOwnPort) {
  auto plain = bo::open_listener("127.0.0.1:0", hello);
  ASSERT_TRUE(plain) << plain.error();
  bo::HttpsListener tls;
  auto serving = bo::ServingCertificate::make(bo::generate_tls("listener-port-test", "127.0.0.1").server);
  ASSERT_TRUE(serving) << serving.error();
  auto opened = tls.open("127.0.0.1:0", *serving, http::methods::GET, [](http::http_request req) { req.reply(200); });
  ASSERT_TRUE(opened) << opened.error();
  EXPECT_GT(tls.port(), 0);
  EXPECT_NE(tls.port(), plain->port);
  EXPECT_EQ(get(plain->port), "hello");
  tls.close();
  EXPECT_EQ(tls.port(), 0);
  plain->listener->close().wait();
}

// The race a picked port has: another process binds it before the listener
// does. The listener then binds another port, instead of failing.
TEST(ListenerPort, APortTakenBeforeTheListenerBindsItIsReplacedByAnother) {
  Occupied taken;
  std::vector<int> offered;
  auto pick = [&](const std::string& host) {
    offered.push_back(offered.empty() ? taken.port() : bo::kernel_free_port(host));
    return offered.back();
  };
  auto bound = bo::open_listener("127.0.0.1:0", hello, pick);
  ASSERT_TRUE(bound) << bound.error();
  ASSERT_EQ(offered.size(), 2u);
  EXPECT_EQ(bound->port, offered[1]);
  EXPECT_NE(bound->port, taken.port());
  EXPECT_EQ(get(bound->port), "hello");
  bound->listener->close().wait();
}

// Bounded: a port that stays taken is an error naming it, after a few tries.
TEST(ListenerPort, GivesUpAfterBoundedAttemptsAndAFixedPortIsTriedOnce) {
  Occupied taken;
  int picks = 0;
  auto always_taken = [&](const std::string&) {
    ++picks;
    return taken.port();
  };
  auto bound = bo::open_listener("127.0.0.1:0", hello, always_taken);
  ASSERT_FALSE(bound);
  EXPECT_EQ(picks, bo::kPortZeroAttempts);
  EXPECT_NE(bound.error().find("port " + std::to_string(taken.port())), std::string::npos) << bound.error();
  EXPECT_NE(bound.error().find("in use"), std::string::npos) << bound.error();

  picks = 0;
  auto fixed = bo::open_listener("127.0.0.1:" + std::to_string(taken.port()), hello, always_taken);
  ASSERT_FALSE(fixed);
  EXPECT_EQ(picks, 0);
}

}  // namespace
