#include "common/redaction.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "common/encoding.h"

namespace bo {
namespace {

// Polynomial hash modulo the Mersenne prime 2^61-1 with a base drawn per
// process; Fingerprint keeps its low 32 bits only.
constexpr uint64_t kMod = (uint64_t{1} << 61) - 1;

uint64_t mulmod(uint64_t a, uint64_t b) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  uint64_t r = static_cast<uint64_t>(p & kMod) + static_cast<uint64_t>(p >> 61);
  if (r >= kMod) r -= kMod;
  return r;
}

struct ProcessKeys {
  uint64_t base = 0;
  std::string mac_key;
};

const ProcessKeys& keys() {
  static const ProcessKeys k = [] {
    ProcessKeys out;
    const std::string r = random_bytes(8);
    for (unsigned char c : r) out.base = (out.base << 8) | c;
    out.base = out.base % (kMod - 256) + 256;  // above any byte value
    out.mac_key = random_bytes(32);
    return out;
  }();
  return k;
}

uint64_t full_hash(std::string_view text) {
  uint64_t h = 0;
  for (unsigned char c : text) {
    h = mulmod(h, keys().base) + c + 1;
    if (h >= kMod) h -= kMod;
  }
  return h;
}

}  // namespace

uint32_t rolling_hash(std::string_view text) { return static_cast<uint32_t>(full_hash(text)); }

Fingerprint Fingerprint::of(std::string_view value) {
  Fingerprint f;
  f.size_ = static_cast<uint32_t>(value.size());
  f.rolling_ = rolling_hash(value);
  const std::string mac = hmac_sha256(keys().mac_key, value);
  std::copy_n(mac.begin(), std::min(mac.size(), f.mac_.size()), f.mac_.begin());
  return f;
}

bool Fingerprint::matches(std::string_view window) const {
  return window.size() == size_ && secure_equals(hmac_sha256(keys().mac_key, window), std::string_view(mac_.data(), mac_.size()));
}

std::string redact_fingerprints(std::string text, const std::vector<const Fingerprint*>& values, size_t min_size) {
  std::map<size_t, std::vector<const Fingerprint*>, std::greater<>> by_size;  // longest first
  for (const auto* f : values)
    if (f && f->size() >= min_size) by_size[f->size()].push_back(f);
  for (const auto& [len, fs] : by_size) {
    if (text.size() < len) continue;
    // h(window) over [i, i+len): roll by removing the leading byte's weight base^(len-1).
    uint64_t top = 1;
    for (size_t i = 1; i < len; ++i) top = mulmod(top, keys().base);
    std::string out;
    out.reserve(text.size());
    uint64_t h = full_hash(std::string_view(text).substr(0, len));
    size_t i = 0;   // window start
    size_t copied = 0;
    while (i + len <= text.size()) {
      bool hit = false;
      for (const auto* f : fs)
        if (static_cast<uint32_t>(h) == f->rolling() && f->matches(std::string_view(text).substr(i, len))) hit = true;
      if (hit) {
        out.append(text, copied, i - copied);
        out += "[redacted]";
        i += len;
        copied = i;
        if (i + len <= text.size()) h = full_hash(std::string_view(text).substr(i, len));
        continue;
      }
      if (i + len < text.size()) {
        const unsigned char lead = static_cast<unsigned char>(text[i]);
        const unsigned char next = static_cast<unsigned char>(text[i + len]);
        h = (h + kMod - mulmod(top, lead + 1)) % kMod;
        h = mulmod(h, keys().base) + next + 1;
        if (h >= kMod) h -= kMod;
      }
      ++i;
    }
    out.append(text, copied, std::string::npos);
    text = std::move(out);
  }
  return text;
}

std::string redact_environment(std::string text, const std::map<std::string, std::string>& env) {
  for (const auto& [k, v] : env) {
    const bool secret = k.find("SECRET") != std::string::npos || k.find("KEY") != std::string::npos ||
                        k.find("PASSWORD") != std::string::npos || k.find("TOKEN") != std::string::npos;
    if (!secret || v.size() < 4) continue;
    for (size_t pos; (pos = text.find(v)) != std::string::npos;) text.replace(pos, v.size(), "[redacted]");
  }
  return text;
}

}  // namespace bo
