// A serving certificate that can change while an HTTPS endpoint serves it,
// and a watcher that reloads it from a directory of tls.crt and tls.key, as
// controller-runtime's certwatcher does for cert-manager's rotations: the
// kubelet updates a mounted Secret by renaming its `..data` symlink, so the
// directory is watched with inotify, and polled as well in case an event is
// missed. A pair whose key does not belong to its certificate (one file
// written, the other not yet) is not taken; the last good pair stays.
#pragma once
#include <chrono>
#include <expected>
#include <filesystem>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "common/certs.h"

namespace bo {

class ServingCertificate {
 public:
  // Refuses a pair check_key_pair refuses.
  [[nodiscard]] static std::expected<std::shared_ptr<ServingCertificate>, std::string> make(Pem initial);
  explicit ServingCertificate(Pem checked) : current_(std::make_shared<const Pem>(std::move(checked))) {}

  [[nodiscard]] std::shared_ptr<const Pem> get() const;
  // true: taken; false: the same pair as now; error: not a matching pair (the current one stays).
  [[nodiscard]] std::expected<bool, std::string> replace(Pem next);

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const Pem> current_;
};

class CertWatcher {
 public:
  // Reads `dir`/tls.crt and `dir`/tls.key (refusing an unreadable or
  // mismatched pair) and starts watching them.
  [[nodiscard]] static std::expected<std::unique_ptr<CertWatcher>, std::string> start(
      const std::filesystem::path& dir, std::chrono::milliseconds poll = std::chrono::seconds(10));
  ~CertWatcher();
  CertWatcher(const CertWatcher&) = delete;
  CertWatcher& operator=(const CertWatcher&) = delete;

  [[nodiscard]] std::shared_ptr<ServingCertificate> certificate() const { return cert_; }
  // Reads the files again now: what the watch thread does on each change.
  void reload();

 private:
  CertWatcher(std::filesystem::path dir, std::shared_ptr<ServingCertificate> cert);
  void watch(std::stop_token stop, std::chrono::milliseconds poll);

  std::filesystem::path dir_;
  std::shared_ptr<ServingCertificate> cert_;
  std::mutex reload_mu_;
  std::string last_refused_;  // the pair last refused, so each is logged once
  int inotify_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd that ends the watch
  std::jthread thread_;
};

}  // namespace bo
