// Streaming SHA-256 and AES-256-GCM (OpenSSL EVP) for bundles, and the
// bundle key's parsing. Keys never appear in an error message.
#pragma once
#include <expected>
#include <memory>
#include <string>
#include <string_view>

namespace bo::bundle {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(std::string_view data);
  void update(const void* data, size_t size);
  [[nodiscard]] std::string hex();  // finishes; call once

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

inline constexpr size_t kKeySize = 32;
inline constexpr size_t kNonceSize = 12;
inline constexpr size_t kTagSize = 16;

// A 32-byte key given as 64 hex digits or as base64 of 32 bytes (whitespace
// around it is ignored, as in a file written with echo).
[[nodiscard]] std::expected<std::string, std::string> parse_key(std::string_view text);
// A short public id of a key (16 hex digits of sha256 over a domain prefix
// and the key), so "wrong key" is told apart from "altered bundle".
[[nodiscard]] std::string key_id(std::string_view key);

// One AES-256-GCM pass, encrypting or decrypting in chunks.
class Gcm {
 public:
  enum class Mode { kEncrypt, kDecrypt };
  Gcm(Mode mode, std::string_view key, std::string_view nonce, std::string_view aad);
  ~Gcm();
  Gcm(const Gcm&) = delete;
  Gcm& operator=(const Gcm&) = delete;
  // Appends the output for `in` to `out`.
  void update(std::string_view in, std::string& out);
  // Encrypt: returns the tag. Decrypt: checks `tag`; false when the data,
  // the associated data or the key do not match.
  [[nodiscard]] std::string finish_encrypt();
  [[nodiscard]] bool finish_decrypt(std::string_view tag);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bo::bundle
