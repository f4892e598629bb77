// The pure part of `run-job restore-in-place` and `run-job check-database`
// (docs/verification.md, "In-place restore: the Job side"): the volume's
// paths as the environment gives them, the decision what becomes of the
// current data directory (moved aside, discarded, refused, or an interrupted
// attempt carried on), the marker on the volume that makes a re-run safe,
// and the verdicts only the production checks have. No I/O, no clock:
// restore_in_place.cpp and check_database.cpp observe, these functions decide.
#pragma once
#include <cstdint>
#include <expected>
#include <optional>
#include <string>

#include "jobs/run_job.h"
#include "jobs/verify_checks.h"

namespace bo::jobs {

// Files of ours at the volume's root. The marker is not inside the data
// directory (that is backed up later), except when the data directory is the
// volume root: there is nowhere else on the volume then.
inline constexpr const char* kRestoreMarker = ".backup-operator-restore.json";
inline constexpr const char* kRootRestoreLog = ".backup-operator-restore.log";  // the server's log when DATA_PATH is ""
// Where a fetch into the volume root is unpacked first: wal-g fetches only
// into an empty directory, and a volume's root has lost+found.
inline constexpr const char* kFetchStaging = ".backup-operator-fetch";
inline constexpr const char* kLostAndFound = "lost+found";
inline constexpr uint64_t kRoomMarginBytes = uint64_t{64} << 20;  // WAL and the server's first files

// RESTORE_VOLUME, DATA_PATH, ASIDE_PATH, DISCARD_CURRENT_DATA,
// UNCOMPRESSED_BYTES and RESTORE_REQUEST, checked.
struct InPlacePaths {
  std::string volume;      // absolute, normalized, no trailing slash
  std::string data_path;   // relative to volume, normalized; "" is the volume root itself
  std::string aside_path;  // relative to volume, normalized; "" only when data_path is ""
  bool discard = false;
  uint64_t uncompressed_bytes = 0;  // 0: unknown
  std::string request;              // ns/name: the marker's key with the backup id
};

// An error names the variable, e.g. "DATA_PATH: must not contain \"..\"".
// ASIDE_PATH must not be DATA_PATH, nor inside it, nor contain it; when
// DATA_PATH is "" nothing can be moved aside, so ASIDE_PATH is only checked
// for its form.
[[nodiscard]] std::expected<InPlacePaths, std::string> parse_in_place_paths(const Env& env);

// The data directory, the aside copy and the server's log, as absolute paths.
[[nodiscard]] std::string data_dir_of(const InPlacePaths& p);
[[nodiscard]] std::string aside_dir_of(const InPlacePaths& p);
[[nodiscard]] std::string restore_log_of(const InPlacePaths& p);
[[nodiscard]] std::string marker_of(const InPlacePaths& p);

// Names at the volume root that are not the data directory's even when it is
// the root: the filesystem's lost+found and our own files. They are kept
// when the root is cleared and never counted as data.
[[nodiscard]] bool kept_at_root(const std::string& name);

// Free bytes a fetch of `uncompressed` bytes needs beside an aside copy: 10 %
// over the size plus kRoomMarginBytes (saturating); nullopt when the size is
// unknown (0).
[[nodiscard]] std::optional<uint64_t> bytes_needed(uint64_t uncompressed);

// --- the marker ---------------------------------------------------------------
// Written atomically at RESTORE_VOLUME/.backup-operator-restore.json before
// the data directory changes, so that a re-run after a crash at any point
// knows what the directory holds:
//   moving      the data directory is being renamed to `aside` (it may or may not have happened);
//   discarding  the data directory's contents are being deleted (the user asked for it);
//   restoring   the data directory holds a partial restore: never the user's data;
//   done        the restore of (request, backup) finished; `result` is what it reported.
enum class MarkerState { kMoving, kDiscarding, kRestoring, kDone };

struct RestoreMarker {
  MarkerState state = MarkerState::kRestoring;
  std::string request;
  std::string backup_id;
  std::string data_path;
  std::string aside;       // where the data from before the restore is ("" when none was moved)
  bool discarded = false;  // the data from before the restore was deleted
  std::string result;      // done: the result JSON that was reported
};

[[nodiscard]] std::string marker_state_name(MarkerState s);
[[nodiscard]] std::string marker_json(const RestoreMarker& m);
[[nodiscard]] std::expected<RestoreMarker, std::string> parse_restore_marker(const std::string& text);

// --- the decision ---------------------------------------------------------------
struct CurrentData {
  bool empty = true;                 // the data directory is missing or empty (at the root: but kept_at_root names)
  bool aside_exists = false;         // ASIDE_PATH exists
  bool marker_aside_exists = false;  // the aside path an unfinished marker names exists
  uint64_t free_bytes = 0;           // statvfs of the volume (f_bavail * f_frsize)
};

enum class InPlaceStep {
  kReportDone,     // this request's restore of this backup finished before: report its result again
  kResume,         // an earlier attempt left a partial restore: clear it and restore
  kNothingToMove,  // the data directory is missing or empty
  kMoveAside,      // rename the data directory to ASIDE_PATH
  kDiscard,        // delete the data directory's contents (at the root: but kept_at_root names)
  kRefuse,         // nothing is touched: reason and message say why
};

struct InPlaceDecision {
  InPlaceStep step = InPlaceStep::kRefuse;
  std::string aside;       // where the data from before the restore is (or will be) ("" when none)
  bool discarded = false;  // the data from before the restore is (or will be) deleted
  std::string reason;      // kRefuse: NoRoom, AsideExists, DataDirectoryIsVolumeRoot, UnfinishedRestore
  std::string message;
  std::string note;        // a line for the log: why this step (unknown size, an earlier attempt, …)
};

// The move/discard/refuse table: an unfinished marker is carried on (a
// partial restore is never moved aside, never onto the real aside copy);
// a done marker of this request and backup is reported again; otherwise an
// empty directory needs nothing, a non-empty one is moved aside when there
// is room (unknown size: assumed) and ASIDE_PATH is free, or discarded when
// the user said so, else refused.
[[nodiscard]] InPlaceDecision decide_in_place(const InPlacePaths& paths, const std::string& backup_id,
                                              const std::optional<RestoreMarker>& marker, const CurrentData& current);

// The timeline history file a promotion to `timeline` writes into pg_wal ("00000002.history").
[[nodiscard]] std::string history_file_name(uint32_t timeline);

// --- check-database -------------------------------------------------------------
// `recovered` against production: connected and out of recovery. Nothing is
// written to prove it (production data), so it says nothing about writes.
[[nodiscard]] CheckResult judge_serving(bool in_recovery, const std::string& error);
// `system-identifier` against what the restore Job reported; an empty
// expectation cannot be compared and fails.
[[nodiscard]] CheckResult judge_expected_system_identifier(const std::string& expected, const std::string& actual);

}  // namespace bo::jobs
