// Shared pieces of the wal-g stand-in: the error type every command throws
// (main prints it as wal-g's tracelog does, "ERROR: ..."), settings, logging
// and LSNs.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

namespace walg {

// What a command failed with; main prints "ERROR: <message>" and exits with `exit_code`.
struct Failure {
  std::string message;
  int exit_code = 1;
};

// wal-g's settings: environment variables (or a config file's keys, for copy).
using Settings = std::map<std::string, std::string>;
[[nodiscard]] Settings settings_from_environment();
[[nodiscard]] std::string setting(const Settings& s, const std::string& key, const std::string& dflt = "");

// tracelog's line format: "INFO: 2026/12/01 23:45:34.123456 message" on stderr.
void log_info(const std::string& message);
void log_warning(const std::string& message);

// A PostgreSQL LSN ("16/B374D848"), via bo::postgres::parse_lsn; throws Failure when malformed.
[[nodiscard]] uint64_t parse_lsn(const std::string& text);

// Go's time.Time JSON form (RFC 3339 with nanoseconds, UTC: "2026-12-01T23:45:34.123456789Z").
[[nodiscard]] std::string go_time(std::chrono::system_clock::time_point t);

// Object layout (wal-g's utility.BaseBackupPath, utility.WalPath, utility.SentinelSuffix).
inline const std::string kBaseBackups = "basebackups_005/";
inline const std::string kWal = "wal_005/";
inline const std::string kSentinelSuffix = "_backup_stop_sentinel.json";

}  // namespace walg
