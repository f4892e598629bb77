// BackupPolicy specs from arbitrary JSON: parse, validate, check Secrets,
// list referenced Secrets. Never a crash, whatever the shape.
#include <cstddef>
#include <cstdint>

#include "api/backup_policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto doc = nlohmann::json::parse(data, data + size, nullptr, false);
  if (doc.is_discarded()) return 0;
  (void)bo::api::referenced_secrets(doc);
  auto spec = bo::api::parse_backup_policy_spec(doc);
  if (!spec) return 0;
  (void)bo::api::validate(*spec, "ns");
  bo::api::SecretData secrets;
  for (const auto& name : bo::api::referenced_secrets(doc)) secrets[name] = {{"WALG_AWS_ENDPOINT", "http://x"}};
  (void)bo::api::check_secrets(*spec, secrets);
  return 0;
}
