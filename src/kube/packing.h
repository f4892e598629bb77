// How a compact informer keeps its objects: MessagePack, deflated (zlib)
// against a dictionary made of objects of the same kind it packed before.
//
// Objects of one kind repeat each other: a BackupPolicy's status carries ten
// conditions whose types, reasons and messages are the same on every
// policy, and Jobs of one operator differ in little but names. MessagePack
// alone kept a 3.7 KB policy in 3.2 KB; deflated against the previous
// policy it is a few hundred bytes. The first object packed becomes the
// dictionary; one that still packs poorly (to more than a quarter) is
// appended to it, making a new one (the last 8 KiB, deflate's window here),
// up to kMaxDictionaries. Each packed object names the dictionary it used,
// so older ones stay readable.
//
// Format: one byte, 0 for MessagePack as is, else 1 + the dictionary's
// index; then (deflated only) the MessagePack's size, 4 bytes little-endian,
// and the raw deflate stream.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bo::kube {

class ObjectPacker {
 public:
  static constexpr size_t kMaxDictionaries = 16;
  static constexpr size_t kDictionaryBytes = 8 * 1024;

  // Calls must not overlap (an informer packs on its own thread).
  [[nodiscard]] std::vector<std::uint8_t> pack(const nlohmann::json& obj);
  // Any thread, any time. Throws std::runtime_error on bytes pack() did not write.
  [[nodiscard]] nlohmann::json unpack(std::span<const std::uint8_t> packed) const;
  [[nodiscard]] size_t dictionaries() const;

 private:
  [[nodiscard]] std::shared_ptr<const std::string> dictionary(size_t i) const;

  mutable std::mutex mu_;  // dicts_ only grows
  std::vector<std::shared_ptr<const std::string>> dicts_;
};

}  // namespace bo::kube
