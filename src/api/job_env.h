// The contract between the operator and the Job side that is carried in a
// Job's environment and annotations (the result contract is job_result.h).
// Both sides include it; neither includes the other.
#pragma once
#include <string>
#include <vector>

namespace bo::api {

// Verified backups whose marker the backup Job writes: id@checksum@request, comma-separated.
inline constexpr const char* kVerifiedMarkersEnv = "VERIFIED_MARKERS";
// The backups a retain Job deletes: ids, comma-separated (also the expire annotation).
inline constexpr const char* kRetainExpireEnv = "RETAIN_EXPIRE";
inline constexpr const char* kAnnotationExpire = "backup.si.dev/expire";

// The id lists above: comma-separated, empty items dropped.
[[nodiscard]] std::string join_ids(const std::vector<std::string>& ids);
[[nodiscard]] std::vector<std::string> split_ids(const std::string& text);

}  // namespace bo::api
