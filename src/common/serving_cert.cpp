#include "common/serving_cert.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/encoding.h"
#include "common/log.h"

namespace bo {

namespace {

std::optional<std::string> read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

nlohmann::json describe(const std::string& cert_pem) {
  nlohmann::json d{{"serial", certificate_serial(cert_pem)}};
  if (auto na = certificate_not_after(cert_pem)) d["notAfter"] = std::chrono::system_clock::to_time_t(*na);
  return d;
}

}  // namespace

std::expected<std::shared_ptr<ServingCertificate>, std::string> ServingCertificate::make(Pem initial) {
  if (auto ok = check_key_pair(initial); !ok) return std::unexpected(ok.error());
  return std::make_shared<ServingCertificate>(std::move(initial));
}

std::shared_ptr<const Pem> ServingCertificate::get() const {
  std::lock_guard lock(mu_);
  return current_;
}

std::expected<bool, std::string> ServingCertificate::replace(Pem next) {
  if (auto ok = check_key_pair(next); !ok) return std::unexpected(ok.error());
  std::lock_guard lock(mu_);
  if (current_->cert == next.cert && current_->key == next.key) return false;
  current_ = std::make_shared<const Pem>(std::move(next));
  return true;
}

CertWatcher::CertWatcher(std::filesystem::path dir, std::shared_ptr<ServingCertificate> cert)
    : dir_(std::move(dir)), cert_(std::move(cert)) {}

std::expected<std::unique_ptr<CertWatcher>, std::string> CertWatcher::start(const std::filesystem::path& dir,
                                                                           std::chrono::milliseconds poll) {
  const auto crt = read_file(dir / "tls.crt"), key = read_file(dir / "tls.key");
  if (!crt || !key || crt->empty() || key->empty()) return std::unexpected("tls.crt and tls.key must be readable");
  auto cert = ServingCertificate::make({*crt, *key});
  if (!cert) return std::unexpected("tls.crt and tls.key: " + cert.error());
  std::unique_ptr<CertWatcher> w(new CertWatcher(dir, *cert));
  w->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  w->inotify_fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  // The directory, not the files: the kubelet replaces them by renaming a symlink.
  if (w->inotify_fd_ >= 0 &&
      inotify_add_watch(w->inotify_fd_, dir.c_str(),
                        IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_MODIFY | IN_ATTRIB) < 0) {
    close(w->inotify_fd_);
    w->inotify_fd_ = -1;  // polling alone still sees every change, later
  }
  log::info("serving certificate loaded", {{"dir", dir.string()}, {"certificate", describe((*cert)->get()->cert)}});
  w->thread_ = std::jthread([raw = w.get(), poll](std::stop_token st) { raw->watch(st, poll); });
  return w;
}

CertWatcher::~CertWatcher() {
  thread_.request_stop();
  if (wake_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void CertWatcher::reload() {
  std::lock_guard lock(reload_mu_);
  const auto crt = read_file(dir_ / "tls.crt"), key = read_file(dir_ / "tls.key");
  if (!crt || !key) return;  // mid-swap: the next event or poll reads them again
  auto taken = cert_->replace({*crt, *key});
  if (!taken) {
    // Log each refused pair once, by a digest: never the key itself.
    const std::string digest = sha256_hex(*crt + *key);
    if (digest != last_refused_) {
      last_refused_ = digest;
      log::warn("serving certificate not reloaded: the files do not hold a matching pair yet; still serving the last good one",
                {{"dir", dir_.string()}, {"reason", taken.error()}});
    }
    return;
  }
  last_refused_.clear();
  if (*taken)
    log::info("serving certificate reloaded", {{"dir", dir_.string()}, {"certificate", describe(*crt)}});
}

void CertWatcher::watch(std::stop_token stop, std::chrono::milliseconds poll) {
  std::vector<pollfd> fds{{wake_fd_, POLLIN, 0}};
  if (inotify_fd_ >= 0) fds.push_back({inotify_fd_, POLLIN, 0});
  alignas(inotify_event) char buf[4096];
  while (!stop.stop_requested()) {
    const int n = ::poll(fds.data(), fds.size(), static_cast<int>(poll.count()));
    if (stop.stop_requested()) return;
    if (n > 0 && fds.size() > 1 && (fds[1].revents & POLLIN))
      while (read(inotify_fd_, buf, sizeof buf) > 0) {
      }  // drain: one reload covers every event so far
    reload();
  }
}

}  // namespace bo
