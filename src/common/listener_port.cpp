#include "common/listener_port.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/system_error.hpp>

#include "common/log.h"

namespace bo {
namespace {

// "host:port" -> {host, port}; an IPv6 host keeps its brackets ("[::1]").
std::pair<std::string, std::string> split(const std::string& bind) {
  const auto colon = bind.rfind(':');
  if (colon == std::string::npos) return {bind, ""};
  return {bind.substr(0, colon), bind.substr(colon + 1)};
}

std::string unbracketed(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

}  // namespace

int kernel_free_port(const std::string& host) {
  try {
    boost::asio::io_context io;
    boost::asio::ip::tcp::resolver resolver(io);
    const auto endpoints = resolver.resolve(unbracketed(host), "0");
    if (endpoints.empty()) return 0;
    boost::asio::ip::tcp::acceptor acceptor(io);
    acceptor.open(endpoints.begin()->endpoint().protocol());
    acceptor.bind(endpoints.begin()->endpoint());
    return acceptor.local_endpoint().port();
  } catch (const std::exception&) {
    return 0;
  }
}

std::string with_port(const std::string& bind, int port) { return split(bind).first + ":" + std::to_string(port); }

std::expected<BoundListener, std::string> open_listener(const std::string& bind, const ListenerFactory& make,
                                                        const PortPicker& pick) {
  const auto [host, port] = split(bind);
  const bool any_port = port == "0";
  for (int attempt = 1;; ++attempt) {
    std::string address = bind;
    int chosen = 0;
    if (any_port) {
      chosen = pick(host);
      if (chosen <= 0) return std::unexpected("no free port on " + host);
      address = with_port(bind, chosen);
    }
    try {
      BoundListener bound{make(address), chosen};
      bound.listener->open().wait();
      if (!any_port) bound.port = bound.listener->uri().port();
      return bound;
    } catch (const boost::system::system_error& e) {
      // Only a port we named ourselves is worth another try: another process may have bound it since.
      if (!any_port || e.code() != boost::asio::error::address_in_use || attempt >= kPortZeroAttempts)
        return std::unexpected(any_port ? "port " + std::to_string(chosen) + ": " + e.what() : std::string(e.what()));
      log::info("a free port was taken before the listener bound it; trying another",
                {{"address", address}, {"attempt", attempt}});
    } catch (const std::exception& e) {
      return std::unexpected(std::string(e.what()));
    }
  }
}

}  // namespace bo
