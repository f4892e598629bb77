// The termination-message contracts a backup Job and an offsite-copy Job write,
// and the S3 GetObjectRetention answer the offsite-copy Job reads.
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/job_result.h"
#include "bundle/object_lock.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  (void)bo::api::parse_job_result(text);
  (void)bo::api::parse_offsite_copy_result(text);
  (void)bo::bundle::parse_object_retention(size > 0 && data[0] % 2 ? 200 : 501, text);
  return 0;
}
