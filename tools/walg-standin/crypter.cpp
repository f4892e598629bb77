// See crypter.h.
#include "crypter.h"

#include <sodium.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

namespace walg {
namespace fs = std::filesystem;

namespace {

constexpr size_t kHeaderBytes = crypto_secretstream_xchacha20poly1305_HEADERBYTES;  // 24
constexpr size_t kABytes = crypto_secretstream_xchacha20poly1305_ABYTES;            // 17
static_assert(crypto_secretstream_xchacha20poly1305_KEYBYTES == Crypter::kKeyBytes);

// Go's base64.StdEncoding.DecodeString: padded standard alphabet; '\r' and '\n' are ignored.
std::string base64_decode(const std::string& in) {
  std::string s;
  std::vector<size_t> at;  // position of each kept character in `in`, for errors
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i] != '\r' && in[i] != '\n') {
      s.push_back(in[i]);
      at.push_back(i);
    }
  const auto illegal = [&](size_t i) {
    return Failure{"while base64 decoding key: illegal base64 data at input byte " + std::to_string(i < at.size() ? at[i] : in.size())};
  };
  const auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  for (size_t q = 0; q < s.size(); q += 4) {
    uint32_t acc = 0;
    size_t n = 0;  // data characters in this quantum
    for (size_t k = 0; k < 4; ++k) {
      const size_t i = q + k;
      if (i >= s.size()) throw illegal(i);  // incomplete quantum
      if (s[i] == '=') {
        // Padding: only in the last quantum, after at least two characters, up to its end.
        if (k < 2 || q + 4 != s.size()) throw illegal(i);
        for (size_t r = k; r < 4; ++r)
          if (s[q + r] != '=') throw illegal(q + r);
        break;
      }
      const int v = value(s[i]);
      if (v < 0) throw illegal(i);
      acc |= static_cast<uint32_t>(v) << (18 - 6 * k);
      ++n;
    }
    out.push_back(static_cast<char>(acc >> 16));
    if (n >= 3) out.push_back(static_cast<char>((acc >> 8) & 0xff));
    if (n == 4) out.push_back(static_cast<char>(acc & 0xff));
  }
  return out;
}

// Go's hex.DecodeString (either case; odd length is an error).
std::string hex_decode(const std::string& in) {
  const auto value = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  const auto invalid = [](char c) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "encoding/hex: invalid byte: U+%04X", static_cast<unsigned char>(c));
    return Failure{std::string("while hex decoding key: ") + buf};
  };
  std::string out;
  size_t i = 0;
  for (; i + 1 < in.size(); i += 2) {
    const int hi = value(in[i]), lo = value(in[i + 1]);
    if (hi < 0) throw invalid(in[i]);
    if (lo < 0) throw invalid(in[i + 1]);
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  if (in.size() % 2 == 1) {
    if (value(in.back()) < 0) throw invalid(in.back());
    throw Failure{"while hex decoding key: encoding/hex: odd length hex string"};
  }
  return out;
}

std::string trim_space(const std::string& s) {
  const char* ws = " \t\n\r\v\f";
  const auto b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

struct File {
  std::FILE* f = nullptr;
  File(const fs::path& p, const char* mode) : f(std::fopen(p.c_str(), mode)) {
    if (!f) throw Failure{"open " + p.string() + ": " + std::strerror(errno)};
  }
  ~File() {
    if (f) std::fclose(f);
  }
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  // Reads up to n bytes (fewer only at end of file).
  size_t read(unsigned char* p, size_t n, const fs::path& name) const {
    const size_t got = std::fread(p, 1, n, f);
    if (got < n && std::ferror(f)) throw Failure{"read " + name.string() + ": " + std::strerror(errno)};
    return got;
  }
  void write(const unsigned char* p, size_t n, const fs::path& name) const {
    if (std::fwrite(p, 1, n, f) != n) throw Failure{"write " + name.string() + ": " + std::strerror(errno)};
  }
  void close(const fs::path& name) {
    const int rc = std::fclose(f);
    f = nullptr;
    if (rc != 0) throw Failure{"write " + name.string() + ": " + std::strerror(errno)};
  }
};

void init_sodium() {
  if (sodium_init() < 0) throw Failure{"libsodium: sodium_init failed"};
}

}  // namespace

std::string transform_key(const std::string& input, const std::string& transform) {
  std::string key;
  if (transform == "base64") {
    key = base64_decode(input);
  } else if (transform == "hex") {
    key = hex_decode(input);
  } else if (transform == "none") {
    // keyTransformNone mimics older wal-g: the raw bytes, cut or zero-padded to 32.
    if (input.size() < Crypter::kMinimalKeyLength)
      throw Failure{"key length must not be less than " + std::to_string(Crypter::kMinimalKeyLength) + ", got " +
                    std::to_string(input.size())};
    key = input.substr(0, Crypter::kKeyBytes);
    key.resize(Crypter::kKeyBytes, '\0');
  } else {
    throw Failure{"unknown key transform '" + transform + "' (must be base64, hex or none)"};
  }
  if (key.size() != Crypter::kKeyBytes)
    throw Failure{"key must be exactly " + std::to_string(Crypter::kKeyBytes) + " bytes (got " + std::to_string(key.size()) +
                  " bytes)"};
  return key;
}

std::optional<Crypter> Crypter::from_settings(const Settings& settings) {
  Crypter c;
  c.inline_key_ = setting(settings, "WALG_LIBSODIUM_KEY");
  c.key_path_ = setting(settings, "WALG_LIBSODIUM_KEY_PATH");
  c.transform_ = setting(settings, "WALG_LIBSODIUM_KEY_TRANSFORM", "none");
  if (c.inline_key_.empty() && c.key_path_.empty()) return std::nullopt;
  return c;
}

const std::array<unsigned char, Crypter::kKeyBytes>& Crypter::key() const {
  if (key_) return *key_;
  init_sodium();
  std::string text = inline_key_;
  if (text.empty()) {
    std::ifstream in(key_path_, std::ios::binary);
    if (!in)
      throw Failure{"libsodium Crypter: unable to read key from file: open " + key_path_ + ": " + std::strerror(errno)};
    std::stringstream ss;
    ss << in.rdbuf();
    text = trim_space(ss.str());
  }
  std::string bytes;
  try {
    bytes = transform_key(text, transform_);
  } catch (const Failure& f) {
    throw Failure{"libsodium Crypter: during key transform: " + f.message};
  }
  std::array<unsigned char, kKeyBytes> k{};
  std::memcpy(k.data(), bytes.data(), kKeyBytes);
  sodium_memzero(bytes.data(), bytes.size());
  key_ = k;
  return *key_;
}

void Crypter::encrypt_file(const fs::path& in, const fs::path& out) const {
  const auto& k = key();
  File src(in, "rb"), dst(out, "wb");
  crypto_secretstream_xchacha20poly1305_state state;
  unsigned char header[kHeaderBytes];
  crypto_secretstream_xchacha20poly1305_init_push(&state, header, k.data());
  dst.write(header, sizeof header, out);
  std::vector<unsigned char> plain(kChunkSize), cipher(kChunkSize + kABytes);
  // Full chunks go out as soon as they fill (writer.go Write); the remainder, possibly
  // empty, is the TAG_FINAL chunk (writer.go Close).
  for (;;) {
    const size_t n = src.read(plain.data(), kChunkSize, in);
    const bool last = n < kChunkSize;
    unsigned long long len = 0;
    crypto_secretstream_xchacha20poly1305_push(&state, cipher.data(), &len, plain.data(), n, nullptr, 0,
                                               last ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0);
    dst.write(cipher.data(), static_cast<size_t>(len), out);
    if (last) break;
  }
  sodium_memzero(&state, sizeof state);
  sodium_memzero(plain.data(), plain.size());
  dst.close(out);
}

void Crypter::decrypt_file(const fs::path& in, const fs::path& out, const std::string& object) const {
  const auto& k = key();
  const auto fail = [&](const std::string& why) {
    return Failure{"failed to decrypt " + object + " with WALG_LIBSODIUM_KEY: " + why};
  };
  File src(in, "rb"), dst(out, "wb");
  unsigned char header[kHeaderBytes];
  if (src.read(header, sizeof header, in) != sizeof header) throw fail("failed to read libsodium header: unexpected EOF");
  crypto_secretstream_xchacha20poly1305_state state;
  if (crypto_secretstream_xchacha20poly1305_init_pull(&state, header, k.data()) != 0) throw fail("corrupted libsodium header");
  std::vector<unsigned char> cipher(kChunkSize + kABytes), plain(kChunkSize);
  for (;;) {
    const size_t n = src.read(cipher.data(), cipher.size(), in);
    if (n == 0) throw fail("truncated stream: no final chunk");
    unsigned long long len = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(&state, plain.data(), &len, &tag, cipher.data(), n, nullptr, 0) != 0)
      throw fail("corrupted chunk (wrong key, or a damaged object)");
    const bool final = tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL;
    if (final && n == cipher.size()) throw fail("premature end");
    dst.write(plain.data(), static_cast<size_t>(len), out);
    if (n < cipher.size()) {
      if (!final) throw fail("truncated stream: no final chunk");
      break;
    }
  }
  sodium_memzero(&state, sizeof state);
  dst.close(out);
}

void encrypt_in_place(const std::optional<Crypter>& crypter, const fs::path& file) {
  if (!crypter) return;
  const fs::path tmp = file.string() + ".libsodium";
  try {
    crypter->encrypt_file(file, tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, file);
}

void decrypt_in_place(const std::optional<Crypter>& crypter, const fs::path& file, const std::string& object) {
  if (!crypter) return;
  const fs::path tmp = file.string() + ".plain";
  try {
    crypter->decrypt_file(file, tmp, object);
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  fs::rename(tmp, file);
}

}  // namespace walg
