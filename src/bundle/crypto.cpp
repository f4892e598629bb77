#include "bundle/crypto.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "common/encoding.h"

namespace bo::bundle {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Impl() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  if (impl_->ctx == nullptr || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("sha256: cannot initialise");
}
Sha256::~Sha256() = default;

void Sha256::update(std::string_view data) { update(data.data(), data.size()); }
void Sha256::update(const void* data, size_t size) {
  if (size > 0) EVP_DigestUpdate(impl_->ctx, data, size);
}

std::string Sha256::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(impl_->ctx, md, &n);
  return hex_encode(std::string_view(reinterpret_cast<const char*>(md), n));
}

std::expected<std::string, std::string> parse_key(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (text.size() == 2 * kKeySize &&
      std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isxdigit(c); })) {
    std::string key(kKeySize, '\0');
    for (size_t i = 0; i < kKeySize; ++i) key[i] = static_cast<char>(std::stoi(std::string(text.substr(2 * i, 2)), nullptr, 16));
    return key;
  }
  if (auto raw = base64_decode(text); raw && raw->size() == kKeySize) return *raw;
  return std::unexpected("the bundle key must be 32 bytes, as 64 hex digits or base64 (e.g. openssl rand -base64 32)");
}

std::string key_id(std::string_view key) {
  return sha256_hex(std::string("backup-operator bundle key\n").append(key)).substr(0, 16);
}

struct Gcm::Impl {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  Mode mode;
  ~Impl() { EVP_CIPHER_CTX_free(ctx); }
};

Gcm::Gcm(Mode mode, std::string_view key, std::string_view nonce, std::string_view aad)
    : impl_(std::make_unique<Impl>()) {
  impl_->mode = mode;
  if (key.size() != kKeySize || nonce.size() != kNonceSize) throw std::invalid_argument("aes-256-gcm: bad key or nonce size");
  auto* ctx = impl_->ctx;
  const auto* k = reinterpret_cast<const unsigned char*>(key.data());
  const auto* iv = reinterpret_cast<const unsigned char*>(nonce.data());
  const bool ok = mode == Mode::kEncrypt
                      ? EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
                            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceSize), nullptr) == 1 &&
                            EVP_EncryptInit_ex(ctx, nullptr, nullptr, k, iv) == 1
                      : EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
                            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kNonceSize), nullptr) == 1 &&
                            EVP_DecryptInit_ex(ctx, nullptr, nullptr, k, iv) == 1;
  if (!ok) throw std::runtime_error("aes-256-gcm: cannot initialise");
  if (!aad.empty()) {
    int n = 0;
    const auto* a = reinterpret_cast<const unsigned char*>(aad.data());
    const bool aad_ok = mode == Mode::kEncrypt ? EVP_EncryptUpdate(ctx, nullptr, &n, a, static_cast<int>(aad.size())) == 1
                                               : EVP_DecryptUpdate(ctx, nullptr, &n, a, static_cast<int>(aad.size())) == 1;
    if (!aad_ok) throw std::runtime_error("aes-256-gcm: cannot add associated data");
  }
}
Gcm::~Gcm() = default;

void Gcm::update(std::string_view in, std::string& out) {
  if (in.empty()) return;
  const size_t at = out.size();
  out.resize(at + in.size() + 16);
  int n = 0;
  auto* o = reinterpret_cast<unsigned char*>(out.data() + at);
  const auto* i = reinterpret_cast<const unsigned char*>(in.data());
  const bool ok = impl_->mode == Mode::kEncrypt ? EVP_EncryptUpdate(impl_->ctx, o, &n, i, static_cast<int>(in.size())) == 1
                                                : EVP_DecryptUpdate(impl_->ctx, o, &n, i, static_cast<int>(in.size())) == 1;
  if (!ok) throw std::runtime_error("aes-256-gcm: update failed");
  out.resize(at + static_cast<size_t>(n));
}

std::string Gcm::finish_encrypt() {
  unsigned char rest[16];
  int n = 0;
  if (EVP_EncryptFinal_ex(impl_->ctx, rest, &n) != 1) throw std::runtime_error("aes-256-gcm: final failed");
  std::string tag(kTagSize, '\0');
  if (EVP_CIPHER_CTX_ctrl(impl_->ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagSize), tag.data()) != 1)
    throw std::runtime_error("aes-256-gcm: cannot read the tag");
  return tag;
}

bool Gcm::finish_decrypt(std::string_view tag) {
  if (tag.size() != kTagSize) return false;
  std::string t(tag);
  if (EVP_CIPHER_CTX_ctrl(impl_->ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagSize), t.data()) != 1) return false;
  unsigned char rest[16];
  int n = 0;
  return EVP_DecryptFinal_ex(impl_->ctx, rest, &n) == 1;
}

}  // namespace bo::bundle
