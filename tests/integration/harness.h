// Test harness: starts the real kube-local binary on a free loopback port,
// waits for its ready line (with a deadline), and offers a client, kubectl
// and fault injection against it.
#pragma once
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/certs.h"
#include "kube/client.h"
#include "kube/config.h"

namespace testing_support {

namespace fs = std::filesystem;

inline fs::path make_temp_dir(const std::string& prefix) {
  std::string tmpl = (fs::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs a shell command with a time limit (coreutils timeout), capturing output.
inline CommandResult run(const std::string& cmd, int timeout_s = 60) {
  CommandResult r;
  const std::string full = "timeout " + std::to_string(timeout_s) + " " + cmd + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int st = pclose(p);
  r.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

// Polls `cond` until it holds or the deadline passes.
inline bool eventually(const std::function<bool()>& cond, std::chrono::milliseconds deadline = std::chrono::seconds(20),
                       std::chrono::milliseconds every = std::chrono::milliseconds(20)) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(every);
  }
  return cond();
}

class KubeLocal {
 public:
  explicit KubeLocal(std::vector<std::string> extra_args = {}, fs::path data_dir = {}) {
    dir_ = make_temp_dir("kube-local");
    kubeconfig_ = dir_ / "kubeconfig";
    data_dir_ = data_dir;
    extra_ = std::move(extra_args);
    start();
  }
  ~KubeLocal() {
    stop(SIGTERM);
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void start(int port = 0) {
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe failed");
    std::vector<std::string> args = {KUBE_LOCAL_BIN, "--port", std::to_string(port), "--write-kubeconfig",
                                     kubeconfig_.string(), "--bookmark-interval-ms", "500"};
    if (!data_dir_.empty()) {
      args.push_back("--data-dir");
      args.push_back(data_dir_.string());
    }
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test killed by its timeout
      dup2(out[1], 1);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    // Read the ready line with a deadline.
    std::string line;
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    char c;
    fd_set fds;
    while (std::chrono::steady_clock::now() < end) {
      FD_ZERO(&fds);
      FD_SET(out[0], &fds);
      timeval tv{0, 100000};
      if (select(out[0] + 1, &fds, nullptr, nullptr, &tv) > 0) {
        if (read(out[0], &c, 1) != 1) break;
        if (c == '\n') break;
        line += c;
      }
    }
    close(out[0]);
    if (line.find("serving on https://127.0.0.1:") == std::string::npos)
      throw std::runtime_error("kube-local did not start: " + line);
    const auto colon = line.rfind(':', line.find(" (kubeconfig"));
    port_ = std::stoi(line.substr(colon + 1));
  }

  // Sends `sig` and waits for the process to end.
  void stop(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int st;
    waitpid(pid_, &st, 0);
    pid_ = -1;
  }

  [[nodiscard]] const fs::path& kubeconfig() const { return kubeconfig_; }
  [[nodiscard]] const fs::path& dir() const { return dir_; }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] pid_t pid() const { return pid_; }

  [[nodiscard]] bo::kube::RestConfig config() const {
    auto c = bo::kube::load_kubeconfig(kubeconfig_.string());
    if (!c) throw std::runtime_error(c.error().str());
    return *c;
  }

  [[nodiscard]] std::unique_ptr<bo::kube::Client> client(bo::kube::RetryPolicy retry = {}) const {
    auto t = bo::kube::make_cpprest_transport(config());
    if (!t) throw std::runtime_error(t.error().str());
    return std::make_unique<bo::kube::Client>(std::move(*t), 0, 1, retry);
  }

  // The raw HTTPS transport, for tests that judge status codes, headers and bodies as sent.
  [[nodiscard]] std::unique_ptr<bo::kube::Transport> transport() const {
    auto t = bo::kube::make_cpprest_transport(config());
    if (!t) throw std::runtime_error(t.error().str());
    return std::move(*t);
  }

  // kubectl against this server, with a private discovery cache.
  [[nodiscard]] CommandResult kubectl(const std::string& args, int timeout_s = 60) const {
    return run("kubectl --kubeconfig " + kubeconfig_.string() + " --cache-dir " + (dir_ / "kubectl-cache").string() +
                   " " + args,
               timeout_s);
  }

  void admin(const std::string& path, const nlohmann::json& body = nlohmann::json::object()) const {
    auto c = client({1});
    auto r = c->request("POST", path, &body);
    if (!r) throw std::runtime_error("admin " + path + ": " + r.error().str());
  }

 private:
  fs::path dir_;
  fs::path kubeconfig_;
  fs::path data_dir_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Tests run in parallel (ctest -j), so no server here gets a port picked for
// it in advance: servers bind port 0 and the test reads the port they got back
// (listening_port, port_after), and PostgreSQL, which cannot, retries on
// another port (support/postgres.h). The one exception is below.
//
// A loopback port for a server that must be told its port before it starts,
// cannot be asked afterwards, and comes back on the same port: a Pod's command
// line and its tcpSocket probe, fixed in its manifest and reused when a
// StatefulSet scales back. It is free when asked and lies below the kernel's
// ephemeral range (ip_local_port_range), the only range from which the kernel
// hands out ports (to binds on port 0 and to outgoing connections): so nothing
// here that binds port 0 can take it in between. Drawn at random (the draw is
// logged) among the 8192 ports below that range, so that two test processes
// rarely draw the same one.
inline int port_below_ephemeral_range() {
  int low = 32768;
  std::ifstream("/proc/sys/net/ipv4/ip_local_port_range") >> low;
  const int first = std::max(1024, low - 8192);
  if (first >= low) throw std::runtime_error("no ports below the ephemeral range " + std::to_string(low));
  const unsigned seed = std::random_device{}();
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> draw(first, low - 1);
  for (int i = 0; i < 64; ++i) {
    const int port = draw(gen);
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    if (free) {
      std::fprintf(stderr, "port_below_ephemeral_range: %d (seed %u, draw %d)\n", port, seed, i);
      return port;
    }
  }
  throw std::runtime_error("port_below_ephemeral_range: no free port in 64 draws (seed " + std::to_string(seed) + ")");
}

// A child process (the operator binary) with stdout and stderr in a log file;
// killed with the test (PR_SET_PDEATHSIG) and on destruction.
class Child {
 public:
  Child(std::vector<std::string> args, const fs::path& log) : log_(log) {
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      FILE* f = fopen(log.c_str(), "w");
      if (f) {
        dup2(fileno(f), 1);
        dup2(fileno(f), 2);
      }
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~Child() { stop(SIGKILL); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  void stop(int sig = SIGTERM) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int st;
    waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  [[nodiscard]] std::string log() const {
    std::ifstream in(log_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  [[nodiscard]] pid_t pid() const { return pid_; }
  // Whether the process still runs (one that exited is reaped).
  [[nodiscard]] bool running() {
    if (pid_ <= 0) return false;
    int st;
    if (waitpid(pid_, &st, WNOHANG) == 0) return true;
    pid_ = -1;
    return false;
  }

 private:
  fs::path log_;
  pid_t pid_ = -1;
};

// The port the operator's `listener` ("webhook", "metrics", "health-probe")
// bound, from its log line {"msg":"listening","listener":...,"address":"host:port"}
// (it is started on port 0); 0 when no such line came within `deadline`.
[[nodiscard]] inline int listening_port(const Child& op, const std::string& listener,
                                        std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
  int port = 0;
  eventually([&] {
    std::istringstream lines(op.log());
    for (std::string line; std::getline(lines, line);) {
      const auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_object() || j.value("msg", "") != "listening" || j.value("listener", "") != listener) continue;
      const std::string address = j.value("address", "");
      port = std::atoi(address.substr(address.rfind(':') + 1).c_str());
      return port > 0;
    }
    return false;
  }, deadline);
  return port;
}

// The number right after `marker` in a child's output (a third-party server
// started on port 0 that prints the port it got, e.g. s3rver's "S3rver
// listening on 127.0.0.1:"); 0 when it was not printed within `deadline`.
[[nodiscard]] inline int port_after(const Child& child, const std::string& marker,
                                    std::chrono::milliseconds deadline = std::chrono::seconds(30)) {
  int port = 0;
  eventually([&] {
    const std::string log = child.log();
    const auto at = log.find(marker);
    if (at == std::string::npos) return false;
    const auto digits = log.substr(at + marker.size());
    const auto end = digits.find_first_not_of("0123456789");
    if (end == 0 || end == std::string::npos) return false;  // not printed whole yet
    port = std::stoi(digits.substr(0, end));
    return port > 0;
  }, deadline);
  return port;
}

inline std::string write_file(const fs::path& p, const std::string& content) {
  std::ofstream out(p);
  out << content;
  return p.string();
}

#ifdef S3RVER_BIN
// s3rver (the npm S3 server) over TLS on a loopback port (port 0: the port it
// prints), its data in <dir>/s3 and one bucket; clients trust <dir>/ca.crt
// (world-readable, for Jobs that run as another user). Waits (with a deadline)
// until it answers.
struct S3rverTls {
  std::unique_ptr<Child> process;
  int port = 0;
  fs::path ca;
  [[nodiscard]] std::string endpoint() const { return "https://127.0.0.1:" + std::to_string(port); }
};

inline S3rverTls start_s3rver_tls(const fs::path& dir, const std::string& bucket) {
  const std::string bin = S3RVER_BIN;
  if (bin.empty() || bin.ends_with("NOTFOUND")) throw std::runtime_error("s3rver is not installed; run scripts/setup.sh");
  const auto tls = bo::generate_tls("s3rver", "127.0.0.1");
  write_file(dir / "s3.crt", tls.server.cert);
  write_file(dir / "s3.key", tls.server.key);
  write_file(dir / "ca.crt", tls.ca.cert);
  fs::permissions(dir / "ca.crt", fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
  S3rverTls s3;
  s3.ca = dir / "ca.crt";
  fs::create_directories(dir / "s3");
  s3.process = std::make_unique<Child>(
      std::vector<std::string>{bin, "-d", (dir / "s3").string(), "-a", "127.0.0.1", "-p", "0",
                               "--key", (dir / "s3.key").string(), "--cert", (dir / "s3.crt").string(),
                               "--configure-bucket", bucket},
      dir / "s3.log");
  s3.port = port_after(*s3.process, "S3rver listening on 127.0.0.1:");
  if (s3.port == 0) throw std::runtime_error("s3rver did not say where it listens: " + s3.process->log());
  if (!eventually([&] { return run("curl -s -o /dev/null --cacert " + s3.ca.string() + " " + s3.endpoint() + "/").exit_code == 0; }))
    throw std::runtime_error("s3rver did not answer: " + s3.process->log());
  return s3;
}
#endif

}  // namespace testing_support
