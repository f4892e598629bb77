// The result contract between backup Jobs and the operator: the Job's pod
// writes one JSON object to its termination message
//   {"backupId": "base_000000010000000000000002", "checksum": "sha256:<64 hex>",
//    "type": "full"|"delta", "base": "<id of the full backup a delta builds on>",
//    "startTime": RFC 3339, "finishTime": RFC 3339, "sizeBytes": 123}
// and the operator reads it into the policy's catalog. Anything else fails
// the run with a reason that says what is wrong.
#pragma once
#include <chrono>
#include <cstdint>
#include <expected>
#include <string>

namespace bo::api {

struct JobResult {
  std::string backup_id;
  std::string checksum;  // sha256:<hex>
  std::string type;      // full | delta
  std::string base;      // for delta: the full backup it builds on
  std::chrono::system_clock::time_point start;
  std::chrono::system_clock::time_point finish;
  int64_t size_bytes = 0;
};

[[nodiscard]] std::expected<JobResult, std::string> parse_job_result(const std::string& termination_message);

}  // namespace bo::api
