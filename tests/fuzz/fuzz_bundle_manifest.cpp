// The bundle manifest reader; anything it accepts must print and read back the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "bundle/bundle.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto m = bo::bundle::parse_manifest(std::string_view(reinterpret_cast<const char*>(data), size));
  if (!m) return 0;
  auto again = bo::bundle::parse_manifest(bo::bundle::manifest_text(*m));
  if (!again || again->files != m->files || again->context != m->context) std::abort();
  return 0;
}
