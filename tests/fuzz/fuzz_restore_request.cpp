// RestoreRequest specs from arbitrary JSON, then the restore decision over a small catalog.
#include <cstddef>
#include <cstdint>

#include "api/restore_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto doc = nlohmann::json::parse(data, data + size, nullptr, false);
  if (doc.is_discarded()) return 0;
  (void)bo::api::parse_restore_request_spec(doc);
  return 0;
}
