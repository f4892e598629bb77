// Values that must never reach output (logs, status, Events), held without
// their plaintext: a Fingerprint keeps a value's length, a 32-bit rolling
// hash (to find candidate windows of a text in one pass) and an
// HMAC-SHA-256 under a key drawn once per process (to confirm a candidate).
// The operator redacts with these, so a Secret value it only has to hide is
// never kept in memory.
#pragma once
#include <cstdint>
#include <map>
#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace bo {

class Fingerprint {
 public:
  Fingerprint() = default;
  [[nodiscard]] static Fingerprint of(std::string_view value);
  [[nodiscard]] size_t size() const { return size_; }
  [[nodiscard]] uint32_t rolling() const { return rolling_; }
  // Whether `window` (of size() bytes) is the value.
  [[nodiscard]] bool matches(std::string_view window) const;

 private:
  uint32_t size_ = 0;  // a Secret is at most 1 MiB
  uint32_t rolling_ = 0;
  // HMAC-SHA-256 under a per-process key, inline: a held Secret keeps one
  // per key, and a heap string each was a tenth of a 10 000-policy fleet's
  // held Secrets.
  std::array<char, 32> mac_{};
};

// The rolling hash Fingerprint keeps, over `text` (for tests and the scan).
[[nodiscard]] uint32_t rolling_hash(std::string_view text);

// `text` with every occurrence of a fingerprinted value of at least
// `min_size` bytes replaced by "[redacted]". One pass over the text per
// distinct value length.
[[nodiscard]] std::string redact_fingerprints(std::string text, const std::vector<const Fingerprint*>& values,
                                              size_t min_size = 4);

// `text` with the value of every secret-looking variable of `env`
// (…SECRET…, …KEY…, …PASSWORD…, …TOKEN…; values of at least 4 bytes)
// replaced by "[redacted]": what a Job-side command may print or write.
[[nodiscard]] std::string redact_environment(std::string text, const std::map<std::string, std::string>& env);

}  // namespace bo
