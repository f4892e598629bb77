// The termination-message contract a backup Job writes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/job_result.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)bo::api::parse_job_result(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}
