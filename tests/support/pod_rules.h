// kube-local's simulated pod outcomes (--pod-rules: a JSON list, first match
// wins) shared by the integration tests: the Job results follow run-job's
// result contract (src/api/job_result.h), as the real Jobs write them.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace testing_support {

// A pod matching `selector` ends with `result` ("Succeeded"/"Failed") after
// `after` seconds, its termination message `message`.
inline nlohmann::json pod_rule(const std::string& selector, const std::string& result, const std::string& message,
                               double after = 0.2) {
  return {{"selector", selector}, {"outcome", {{"result", result}, {"afterSeconds", after}, {"message", message}}}};
}

// A backup Job's result: one full backup that started at `start` and
// finished at `finish` (RFC 3339 times, or kube-local's "{{now}}").
inline std::string backup_result(const std::string& start, const std::string& finish) {
  return R"({"backupId":"base_000000010000000000000009","checksum":"sha256:)" + std::string(64, 'b') +
         R"(","type":"full","walArchived":true,"startTime":")" + start + R"(","finishTime":")" + finish +
         R"(","sizeBytes":4096})";
}

// A scratch instance's result (run-job verify's contract; the real one runs in real_backup_test.cpp).
inline const std::string kScratchResult =
    R"({"restored":"{{env:BACKUP_ID}}","recovered":true,"recoverySeconds":2,"checks":[)"
    R"({"name":"recovered","passed":true},{"name":"recovery-target","passed":true},)"
    R"({"name":"system-identifier","passed":true}]})";

// Every Job of a healthy fleet succeeds at once with a valid result: scratch
// instances, backups (with `backup`, see backup_result), restores and
// verifications, retention and validation. A test puts its own rules first.
inline nlohmann::json healthy_pod_rules(const std::string& backup) {
  return nlohmann::json::array(
      {pod_rule("backup.si.dev/action=scratch", "Succeeded", kScratchResult),
       pod_rule("backup.si.dev/action in (backup,full-backup)", "Succeeded", backup),
       pod_rule("backup.si.dev/action in (restore,verify)", "Succeeded",
                R"({"restored":"{{env:BACKUP_ID}}","checksum":"{{env:BACKUP_CHECKSUM}}"})"),
       pod_rule("backup.si.dev/action=retain", "Succeeded", R"({"deleted":[]})"),
       pod_rule("backup.si.dev/action=validate", "Succeeded", "accepting connections")});
}

}  // namespace testing_support
