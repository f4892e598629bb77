// The result contract between backup Jobs and the operator: the Job's pod
// writes one JSON object to its termination message
//   {"backupId": "base_000000010000000000000002", "checksum": "sha256:<64 hex>",
//    "type": "full"|"delta", "base": "<DeltaFrom: the backup a delta applies to>",
//    "full": "<DeltaFullName: the full at the root of a delta's chain>",
//    "deltaCount": 2, "startLsn": "0/2000028", "finishLsn": "0/2000138",
//    "walArchived": true, "walMessage": "why not, when false",
//    "startTime": RFC 3339, "finishTime": RFC 3339, "sizeBytes": 123,
//    "uncompressedBytes": 456 (optional: what a restore needs on disk)}
// Type, base and chain come from wal-g's stop sentinel, never from the
// backup's name; walArchived says whether the WAL from startLsn to
// finishLsn was found in storage (without it the backup cannot be restored).
// and the operator reads it into the policy's catalog. Anything else fails
// the run with a reason that says what is wrong.
#pragma once
#include <chrono>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <vector>

namespace bo::api {

struct JobResult {
  std::string backup_id;
  std::string checksum;  // sha256:<hex>
  std::string type;      // full | delta
  std::string base;      // for delta: the backup it applies to (DeltaFrom)
  std::string full;      // for delta: the full at the root of its chain (DeltaFullName)
  int delta_count = 0;
  std::string start_lsn, finish_lsn;
  bool wal_archived = false;
  std::string wal_message;
  std::chrono::system_clock::time_point start;
  std::chrono::system_clock::time_point finish;
  int64_t size_bytes = 0;
  int64_t uncompressed_bytes = 0;  // 0: not reported
  std::vector<std::string> markers;  // "markers": the verified markers the Job left in storage (backup ids)
};

[[nodiscard]] std::expected<JobResult, std::string> parse_job_result(const std::string& termination_message);

// The offsite-copy Job's result:
//   {"copied": "<backup id>", "checksum": "sha256:<hex of its stop sentinel>",
//    "restorable": true, "walSegments": 2,
//    "immutableUntil": RFC 3339, "retentionMode": "GOVERNANCE"|"COMPLIANCE", "retentionObjects": 5}
// or, when the offsite store did not report an Object Lock retention, no
// date but why: "immutability": {"reason": "RetentionNotReported"|
// "RetentionUnreadable"|"NotObjectStorage", "message": "…"}. The Job
// fails (and reports {"error"}) when the copy is not restorable from the
// offsite storage alone, so "restorable" is true in every result.
// immutableUntil counts only with a retentionMode: a date without one (as
// run-job computed it from the clock before it read retention back) is
// taken as unverified (reason ImmutabilityUnverified).
struct OffsiteCopyResult {
  std::string backup_id;
  std::string checksum;  // empty when not reported
  int wal_segments = 0;
  std::optional<std::chrono::system_clock::time_point> immutable_until;  // only as read back from the store
  std::string retention_mode;                                            // with immutable_until
  std::string immutability_reason, immutability_message;                 // without immutable_until
};

[[nodiscard]] std::expected<OffsiteCopyResult, std::string> parse_offsite_copy_result(const std::string& termination_message);

// The catalog Job's result (`run-job catalog`): what storage holds, from
// `wal-g backup-list --json --detail` and each backup's stop sentinel, in a
// form compact enough for the 4096 bytes of a termination message:
//   {"listedAt": RFC 3339, "listed": 312,
//    "backups": [[id, "<sha256 hex of the stop sentinel>", base, full,
//                 finishUnixSeconds, durationSeconds, sizeBytes, flags], ...]}
// base and full (a delta's DeltaFrom and DeltaFullName) are "" for a full,
// else the index of that backup in the same array, or its name when the
// array does not hold it. flags: 1 = every WAL segment from its start to its
// finish LSN is in storage (restorable), 2 = a verification's marker lies
// beside it in storage (backup-operator/verified/<id>.json, same checksum).
// "listed" counts every backup in storage; the array may hold fewer (fulls
// first, then the newest deltas) when all would not fit.
struct CatalogEntry {
  std::string backup_id;
  std::string checksum;  // sha256:<hex>
  std::string type;      // full | delta
  std::string base, full;
  std::chrono::system_clock::time_point start, finish;
  int64_t size_bytes = 0;
  bool restorable = false;
  bool verified = false;
};

struct CatalogResult {
  std::chrono::system_clock::time_point listed_at;
  int listed = 0;  // backups in storage (entries.size() when none was left out)
  std::vector<CatalogEntry> entries;
};

[[nodiscard]] std::expected<CatalogResult, std::string> parse_catalog_result(const std::string& termination_message);

// The flags of a catalog row.
inline constexpr int kCatalogRestorable = 1;
inline constexpr int kCatalogVerified = 2;

}  // namespace bo::api
