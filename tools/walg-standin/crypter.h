// wal-g's libsodium encryption (WALG_LIBSODIUM_KEY / WALG_LIBSODIUM_KEY_PATH /
// WALG_LIBSODIUM_KEY_TRANSFORM), after wal-g's internal/crypto/libsodium/
// (crypter.go, keytransform.go, reader.go, writer.go) and
// internal/configure_crypter_libsodium.go, with Debian's libsodium:
//  - Key: WALG_LIBSODIUM_KEY if set, else the contents of
//    WALG_LIBSODIUM_KEY_PATH with surrounding white space trimmed, turned into
//    the 32-byte crypto_secretstream_xchacha20poly1305 key by
//    WALG_LIBSODIUM_KEY_TRANSFORM (default "none"):
//      base64: standard, padded base64 that must decode to exactly 32 bytes;
//      hex:    hex digits that must decode to exactly 32 bytes;
//      none:   the key's bytes, at least 25 ("key length must not be less
//              than 25, got N"), cut to 32 or zero-padded to 32;
//    any other transform: "unknown key transform '<t>' (must be base64, hex or
//    none)". Errors read "libsodium Crypter: during key transform: ...". As in
//    wal-g the key is only checked when something is encrypted or decrypted.
//  - Stream: a 24-byte secretstream header (crypto_secretstream_xchacha20poly1305
//    _init_push), then the plaintext in 8192-byte chunks, each pushed as
//    8192 + 17 (ABYTES) bytes with tag 0 (MESSAGE); Close pushes the rest (0 to
//    8191 bytes) as a last, shorter chunk with TAG_FINAL. No associated data.
//  - Reading: the header ("failed to read libsodium header", "corrupted
//    libsodium header"), then chunks of up to 8209 bytes; a chunk that does not
//    authenticate is "corrupted chunk" (a wrong key fails here), TAG_FINAL on a
//    full-sized chunk is "premature end".
// Difference: wal-g's reader accepts a stream cut at a chunk boundary (no
// TAG_FINAL chunk at all); the stand-in refuses it ("truncated stream: no final
// chunk"). Every stream wal-g writes has its final chunk.
#pragma once
#include <array>
#include <filesystem>
#include <optional>
#include <string>

#include "common.h"

namespace walg {

class Crypter {
 public:
  static constexpr size_t kChunkSize = 8192;  // wal-g's libsodium.chunkSize
  static constexpr size_t kKeyBytes = 32;
  static constexpr size_t kMinimalKeyLength = 25;  // for WALG_LIBSODIUM_KEY_TRANSFORM=none

  // The crypter the settings configure (inline key before key path), nullopt without either.
  // The key itself is read and checked on first use, as in wal-g.
  [[nodiscard]] static std::optional<Crypter> from_settings(const Settings& settings);

  // The 32-byte key; Failure when the key (file) is missing, too short or badly encoded.
  [[nodiscard]] const std::array<unsigned char, kKeyBytes>& key() const;

  void encrypt_file(const std::filesystem::path& in, const std::filesystem::path& out) const;
  // `object` names what is decrypted in errors.
  void decrypt_file(const std::filesystem::path& in, const std::filesystem::path& out, const std::string& object) const;

 private:
  std::string inline_key_, key_path_, transform_;
  mutable std::optional<std::array<unsigned char, kKeyBytes>> key_;
};

// wal-g's key transform (keytransform.go): the key bytes for `input`, or Failure
// with wal-g's message (without the "libsodium Crypter: during key transform: " prefix).
[[nodiscard]] std::string transform_key(const std::string& input, const std::string& transform);

// Replace `file` by its encryption / decryption when a crypter is configured (no-op without).
void encrypt_in_place(const std::optional<Crypter>& crypter, const std::filesystem::path& file);
void decrypt_in_place(const std::optional<Crypter>& crypter, const std::filesystem::path& file, const std::string& object);

}  // namespace walg
