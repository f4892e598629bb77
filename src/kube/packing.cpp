#include "kube/packing.h"

#include <zlib.h>

#include <stdexcept>

namespace bo::kube {
namespace {

constexpr int kWindowBits = 13;  // 8 KiB: kDictionaryBytes
constexpr int kMemLevel = 6;     // about 64 KiB of deflate state per packing thread
constexpr size_t kSmall = 64;    // not worth deflating

// One deflate and one inflate stream per thread, reset for each object
// (deflateInit's state is allocated once, not per object).
struct Deflater {
  z_stream z{};
  bool ok = deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, -kWindowBits, kMemLevel, Z_DEFAULT_STRATEGY) == Z_OK;
  ~Deflater() {
    if (ok) deflateEnd(&z);
  }
};
struct Inflater {
  z_stream z{};
  bool ok = inflateInit2(&z, -kWindowBits) == Z_OK;
  ~Inflater() {
    if (ok) inflateEnd(&z);
  }
};

// `raw` deflated against `dict` after a 5-byte header; empty when deflate failed.
std::vector<std::uint8_t> deflate_with(const std::vector<std::uint8_t>& raw, const std::string& dict, size_t index) {
  thread_local Deflater d;
  if (!d.ok || deflateReset(&d.z) != Z_OK ||
      deflateSetDictionary(&d.z, reinterpret_cast<const Bytef*>(dict.data()), static_cast<uInt>(dict.size())) != Z_OK)
    return {};
  std::vector<std::uint8_t> out(5 + deflateBound(&d.z, static_cast<uLong>(raw.size())));
  out[0] = static_cast<std::uint8_t>(1 + index);
  for (int i = 0; i < 4; ++i) out[1 + i] = static_cast<std::uint8_t>(raw.size() >> (8 * i));
  d.z.next_in = const_cast<Bytef*>(raw.data());
  d.z.avail_in = static_cast<uInt>(raw.size());
  d.z.next_out = out.data() + 5;
  d.z.avail_out = static_cast<uInt>(out.size() - 5);
  if (deflate(&d.z, Z_FINISH) != Z_STREAM_END) return {};
  out.resize(out.size() - d.z.avail_out);
  return out;
}

}  // namespace

std::vector<std::uint8_t> ObjectPacker::pack(const nlohmann::json& obj) {
  std::vector<std::uint8_t> raw = nlohmann::json::to_msgpack(obj);
  auto as_is = [&] {
    raw.insert(raw.begin(), 0);
    raw.shrink_to_fit();
    return std::move(raw);
  };
  if (raw.size() < kSmall || raw.size() > UINT32_MAX) return as_is();
  size_t index = 0;
  std::shared_ptr<const std::string> dict;
  {
    std::lock_guard lock(mu_);
    if (dicts_.empty()) dicts_.push_back(std::make_shared<const std::string>(raw.begin(), raw.end()));
    index = dicts_.size() - 1;
    dict = dicts_.back();
  }
  auto out = deflate_with(raw, *dict, index);
  if (!out.empty() && out.size() > raw.size() / 4) {
    // A shape the dictionary does not know: learn it.
    std::shared_ptr<const std::string> learned;
    {
      std::lock_guard lock(mu_);
      if (dicts_.size() < kMaxDictionaries) {
        std::string grown = *dicts_.back();
        grown.append(raw.begin(), raw.end());
        if (grown.size() > kDictionaryBytes) grown.erase(0, grown.size() - kDictionaryBytes);
        learned = dicts_.emplace_back(std::make_shared<const std::string>(std::move(grown)));
        index = dicts_.size() - 1;
      }
    }
    if (learned) {
      auto again = deflate_with(raw, *learned, index);
      if (!again.empty() && again.size() < out.size()) out = std::move(again);
    }
  }
  if (out.empty() || out.size() >= raw.size()) return as_is();
  out.shrink_to_fit();
  return out;
}

nlohmann::json ObjectPacker::unpack(std::span<const std::uint8_t> packed) const {
  if (packed.empty()) throw std::runtime_error("packed object: empty");
  if (packed[0] == 0) return nlohmann::json::from_msgpack(packed.begin() + 1, packed.end());
  if (packed.size() < 5) throw std::runtime_error("packed object: truncated header");
  const auto dict = dictionary(packed[0] - 1);
  if (!dict) throw std::runtime_error("packed object: unknown dictionary");
  size_t size = 0;
  for (int i = 0; i < 4; ++i) size |= static_cast<size_t>(packed[1 + i]) << (8 * i);
  if (size > (packed.size() - 5) * 1032 + 64) throw std::runtime_error("packed object: impossible size");  // deflate's limit
  thread_local Inflater f;
  std::vector<std::uint8_t> raw(size);
  if (!f.ok || inflateReset(&f.z) != Z_OK ||
      inflateSetDictionary(&f.z, reinterpret_cast<const Bytef*>(dict->data()), static_cast<uInt>(dict->size())) != Z_OK)
    throw std::runtime_error("packed object: inflate");
  f.z.next_in = const_cast<Bytef*>(packed.data() + 5);
  f.z.avail_in = static_cast<uInt>(packed.size() - 5);
  f.z.next_out = raw.data();
  f.z.avail_out = static_cast<uInt>(raw.size());
  if (inflate(&f.z, Z_FINISH) != Z_STREAM_END || f.z.avail_out != 0) throw std::runtime_error("packed object: corrupt");
  return nlohmann::json::from_msgpack(raw);
}

size_t ObjectPacker::dictionaries() const {
  std::lock_guard lock(mu_);
  return dicts_.size();
}

std::shared_ptr<const std::string> ObjectPacker::dictionary(size_t i) const {
  std::lock_guard lock(mu_);
  return i < dicts_.size() ? dicts_[i] : nullptr;
}

}  // namespace bo::kube
