// Small encodings used across the project: base64 (Secret data, continue
// tokens, PEM payloads), hex, SHA-256 and HMAC-SHA-256 (OpenSSL).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace bo {

[[nodiscard]] std::string base64_encode(std::string_view in);
// nullopt on characters outside the standard alphabet or bad padding.
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view in);
[[nodiscard]] std::string base64url_encode(std::string_view in);
[[nodiscard]] std::optional<std::string> base64url_decode(std::string_view in);
[[nodiscard]] std::string hex_encode(std::string_view in);
[[nodiscard]] std::string sha256_hex(std::string_view in);
[[nodiscard]] std::string hmac_sha256(std::string_view key, std::string_view data);
[[nodiscard]] std::string random_bytes(size_t n);
// Constant-time comparison for secrets.
[[nodiscard]] bool secure_equals(std::string_view a, std::string_view b);

}  // namespace bo
