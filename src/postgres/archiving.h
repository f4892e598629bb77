// WAL archiving health of the policy's database, CloudNativePG's
// `ContinuousArchiving`: what PostgreSQL says about archiving (settings and
// pg_stat_archiver), a pure evaluator turning that into a condition, the
// libpq probe that reads it, and WAL segment arithmetic for "is the WAL up
// to LSN X archived?".
//
// Grants the probe needs (PostgreSQL 15), for the policy's database role:
//   GRANT pg_read_all_settings TO <role>;   -- data_directory and archive_command
//                                            -- are superuser-only settings
// pg_stat_archiver, pg_is_in_recovery(), pg_current_wal_lsn() and now() need
// nothing. wal-g's backup-push, run with the same role, also needs:
//   GRANT EXECUTE ON FUNCTION pg_backup_start(text, boolean) TO <role>;
//   GRANT EXECUTE ON FUNCTION pg_backup_stop(boolean) TO <role>;
//   GRANT EXECUTE ON FUNCTION pg_switch_wal() TO <role>;
//   GRANT pg_checkpoint TO <role>;           -- recommended (pgBackRest's list for 15)
// (all restricted to superusers by default; a superuser such as Supabase's
// `supabase_admin` needs none of them).
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "common/clock.h"

namespace bo::postgres {

inline constexpr const char* kConditionType = "ContinuousArchiving";
inline constexpr uint64_t kDefaultWalSegmentSize = 16ull * 1024 * 1024;
// No archive for longer than max(2 * archive_timeout, kStaleFloor) while WAL
// is waiting to be archived is stale.
inline constexpr std::chrono::seconds kStaleFloor{300};

// What one probe read. `error` non-empty: the probe failed and only
// `observed_at` is meaningful.
struct ArchiveObservation {
  std::string error;  // libpq's message (password and user name redacted), or the query's error
  std::string archive_mode;     // off | on | always
  std::string archive_command;  // as set; not a secret, but may carry env assignments
  std::string archive_library;  // PostgreSQL 15: when set, archive_command is not used
  int64_t archive_timeout_seconds = 0;
  std::string data_directory;
  bool in_recovery = false;
  // pg_stat_archiver
  int64_t archived_count = 0;
  std::string last_archived_wal;
  std::optional<SysTime> last_archived_time;
  int64_t failed_count = 0;
  std::string last_failed_wal;
  std::optional<SysTime> last_failed_time;
  std::optional<SysTime> stats_reset;
  // The server's now(): pg_stat_archiver's times are the server's, so
  // staleness is judged on the server's clock (no skew with the operator's).
  SysTime server_now{};
  // Where WAL is written (replayed, in recovery) and on which timeline;
  // absent when the server cannot say (a standby that has replayed nothing).
  std::optional<uint64_t> current_lsn;
  std::optional<uint32_t> current_timeline;
  uint64_t wal_segment_size = kDefaultWalSegmentSize;
  // Server time of the first probe that saw WAL waiting behind the same
  // last_archived_wal (ArchiveProber carries it from probe to probe); absent:
  // taken as last_archived_time. Keeps the first write after an idle spell
  // from reading as stale before archive_timeout could have switched it out.
  std::optional<SysTime> waiting_since;
  // The operator's clock when these values were first read (probes that
  // read the same values keep it, so an unchanged database writes no status).
  SysTime observed_at{};

  // Equal in what the status reports (times of reading excluded).
  [[nodiscard]] bool same_essentials(const ArchiveObservation& o) const;
};

struct ArchivingCondition {
  std::string status;  // True | False | Unknown
  std::string reason;  // ArchivingHealthy, ArchiveModeOff, ArchiveCommandNotWalG, ArchivingFailing,
                       // ArchivingStale, AwaitingFirstArchive, DatabaseUnreachable
  std::string message;
  bool operator==(const ArchivingCondition&) const = default;
};

// The condition for one observation (see archiving.cpp for the rules).
[[nodiscard]] ArchivingCondition evaluate_archiving(const ArchiveObservation& obs);

// True when WAL is waiting to be archived: written past the last archived
// segment (archive_timeout > 0 switches it out), or, with archive_timeout = 0,
// a whole segment completed and not archived. False when it cannot be told
// (no archived segment yet, another timeline, a standby that replayed nothing).
[[nodiscard]] bool wal_waiting(const ArchiveObservation& obs);

// Whether an archive_command pushes each segment with wal-g; on false,
// `why` says what is wrong. The rule is documented in archiving.cpp.
[[nodiscard]] bool pushes_with_walg(const std::string& archive_command, std::string* why = nullptr);

// The command with secret-looking values replaced by "[redacted]": values of
// NAME=VALUE and --name=value whose name contains KEY, SECRET, PASSWORD,
// PASSWD, PWD, TOKEN, CREDENTIAL, AUTH or SESSION (any case), and the
// password of URLs (scheme://user:password@host). Bounded to 512 characters.
[[nodiscard]] std::string redact_command(const std::string& command);

// --- WAL segments -----------------------------------------------------------
struct WalSegment {
  uint32_t timeline = 0;
  uint64_t segno = 0;  // log * (4 GiB / segment size) + seg
  bool operator==(const WalSegment&) const = default;
};

// A segment file name (24 hex digits: timeline, log, seg), also with a
// ".partial" or ".NNNNNNNN.backup" suffix as pg_stat_archiver reports them.
// nullopt for history files and anything else.
[[nodiscard]] std::optional<WalSegment> parse_wal_name(const std::string& name,
                                                       uint64_t segment_size = kDefaultWalSegmentSize);
[[nodiscard]] std::string wal_name(const WalSegment& s, uint64_t segment_size = kDefaultWalSegmentSize);
// "16/B374D848" -> 0x16B374D848.
[[nodiscard]] std::optional<uint64_t> parse_lsn(const std::string& text);
[[nodiscard]] std::string format_lsn(uint64_t lsn);
// The bytes a segment holds: [first, end).
struct LsnRange {
  uint64_t first = 0, end = 0;
};
[[nodiscard]] LsnRange segment_range(const WalSegment& s, uint64_t segment_size = kDefaultWalSegmentSize);
// The segment holding byte `lsn`.
[[nodiscard]] WalSegment segment_of(uint32_t timeline, uint64_t lsn, uint64_t segment_size = kDefaultWalSegmentSize);
// True when all WAL before `end_lsn` (a backup's stop LSN: the end of its last
// record) on `timeline` is archived, given pg_stat_archiver.last_archived_wal:
// the archived segment is on the same timeline and at or past the segment
// holding byte end_lsn - 1. Another timeline is not proof either way without
// its history file, so it answers false.
[[nodiscard]] bool wal_archived_through(const std::string& last_archived_wal, uint32_t timeline, uint64_t end_lsn,
                                        uint64_t segment_size = kDefaultWalSegmentSize);

// --- the probe (libpq) ------------------------------------------------------
struct ConnectionParams {
  std::string host;
  int port = 5432;
  std::string dbname = "postgres";
  std::string user;
  std::string password;
  std::chrono::seconds connect_timeout{5};
  std::chrono::milliseconds statement_timeout{5000};
};

// Connects, reads the settings and pg_stat_archiver in one statement, and
// disconnects. Never throws; a failure comes back in `error`. `observed_at`
// is left for the caller to stamp.
[[nodiscard]] ArchiveObservation probe_archiving(const ConnectionParams& params);

}  // namespace bo::postgres
