#include "kube/names.h"

#include "common/encoding.h"

namespace bo::kube {

std::string bounded_name(std::string_view base, size_t limit) {
  constexpr size_t kHash = 10;
  if (base.size() <= limit) return std::string(base);
  const std::string hash = sha256_hex(base).substr(0, kHash);
  if (limit <= kHash + 1) return hash.substr(0, limit);
  std::string head(base.substr(0, limit - kHash - 1));
  while (!head.empty() && (head.back() == '-' || head.back() == '.')) head.pop_back();
  return head.empty() ? hash : head + "-" + hash;
}

std::string label_value(std::string_view name) { return bounded_name(name, kMaxLabelValue); }

}  // namespace bo::kube
