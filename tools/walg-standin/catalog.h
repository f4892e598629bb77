// The backups a storage holds, as wal-g sees them: a backup exists once its
// stop sentinel (basebackups_005/<name>_backup_stop_sentinel.json) does, and
// its time is the sentinel object's modification time (internal.BackupTime,
// internal/backup.go GetBackups). Uploading the sentinel last is what keeps a
// half-written backup invisible.
#pragma once
#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "storage.h"

namespace walg {

struct BackupEntry {
  std::string name;
  std::chrono::system_clock::time_point modified;
};

// Sorted oldest first (by modification time, then name), as wal-g sorts for LATEST.
[[nodiscard]] std::vector<BackupEntry> list_backups(Storage& storage);
// `name` or LATEST; Failure "Backup '<name>' does not exist." as internal.NewBackupNonExistenceError.
[[nodiscard]] BackupEntry find_backup(Storage& storage, const std::string& name);
[[nodiscard]] nlohmann::json read_sentinel(Storage& storage, const std::string& name);
// metadata.json (ExtendedMetadataDto) and files_metadata.json (FilesMetadataDto); {} when missing.
[[nodiscard]] nlohmann::json read_backup_json(Storage& storage, const std::string& name, const std::string& file);
// utility.StripWalFileName: the first 24-hex-digit WAL file name in a backup name.
[[nodiscard]] std::string strip_wal_file_name(const std::string& backup_name);
// Every object of a backup: its sentinel and everything under basebackups_005/<name>/.
[[nodiscard]] std::vector<std::string> backup_objects(Storage& storage, const std::string& name);

}  // namespace walg
