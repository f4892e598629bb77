// Opening a cpprestsdk listener on host:port where port 0 means "any free
// port", and learning the port it got. cpprestsdk binds port 0 but never says
// which port the kernel gave it, and it files its sockets under "host:port",
// so two listeners of one process on port 0 would be taken for one (an http
// and an https one are refused outright). So port 0 is resolved here: the
// kernel names a free port (a socket bound to port 0, read back, closed), the
// listener binds that port, and when another process took it in the moment
// between (EADDRINUSE) another is named, a bounded number of times. A port
// given explicitly is bound as given, once.
#pragma once
#include <cpprest/http_listener.h>

#include <expected>
#include <functional>
#include <memory>
#include <string>

namespace bo {

struct BoundListener {
  std::unique_ptr<web::http::experimental::listener::http_listener> listener;  // open
  int port = 0;                                                                 // the port it is bound to
};

// Makes a listener (handlers attached, not opened) for "host:port".
using ListenerFactory =
    std::function<std::unique_ptr<web::http::experimental::listener::http_listener>(const std::string& host_port)>;
// A port on `host` free at the time of asking (0 when none can be had).
using PortPicker = std::function<int(const std::string& host)>;

inline constexpr int kPortZeroAttempts = 8;

// The kernel's choice: bind a socket on `host`, port 0, read the port back, close it.
[[nodiscard]] int kernel_free_port(const std::string& host);

// Opens the listener `make` builds for `bind` ("host:port"; port 0: a free port,
// named by `pick`). The error names the address and the cause.
[[nodiscard]] std::expected<BoundListener, std::string> open_listener(const std::string& bind, const ListenerFactory& make,
                                                                      const PortPicker& pick = kernel_free_port);

// `bind` ("host:port") with its port replaced by `port`: the address a listener actually got.
[[nodiscard]] std::string with_port(const std::string& bind, int port);

}  // namespace bo
