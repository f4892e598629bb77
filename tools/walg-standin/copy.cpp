// copy --from=CONFIG --to=CONFIG [--backup-name=NAME] [--without-history],
// after wal-g's internal/databases/postgres/copy.go (HandleCopy):
//  - each config file is read on its own (internal.FolderFromConfig), not
//    merged with the environment;
//  - without --backup-name every object is copied (WildcardInfo);
//  - with it, every object under basebackups_005/<NAME> (its sentinel and its
//    folder; BackupCopyingInfo) and, unless --without-history, the WAL from the
//    backup's start segment on (HistoryCopyingInfo: names >= the backup's
//    wal file name). A delta's bases are not copied: copy each backup of a
//    chain to restore a delta from the target alone.
// Differences: the sentinel is copied last (wal-g copies in listing order);
// history goes to wal_005/ of the target (the wal-g version read copies it to
// the target's root, which looks like an upstream bug).
#include <iostream>
#include <string>

#include "catalog.h"
#include "commands.h"
#include "storage.h"

namespace walg {
namespace fs = std::filesystem;

namespace {
void copy_object(Storage& from, Storage& to, const std::string& name) {
  const fs::path tmp = fs::temp_directory_path() / ("walg-standin-copy-" + std::to_string(::getpid()));
  if (!from.get_file(name, tmp)) throw Failure{"object " + name + " disappeared during copy"};
  try {
    to.put_file(name, tmp);
  } catch (...) {
    fs::remove(tmp);
    throw;
  }
  fs::remove(tmp);
}
}  // namespace

int copy_backups(const Args& args, const Settings&) {
  std::string from_file, to_file, backup_name;
  bool without_history = false;
  for (const auto& a : args) {
    if (a.starts_with("--from=")) from_file = a.substr(7);
    else if (a.starts_with("--to=")) to_file = a.substr(5);
    else if (a.starts_with("--backup-name=")) backup_name = a.substr(14);
    else if (a == "--without-history") without_history = true;
    else throw Failure{"wal-g stand-in: copy " + a + " is not implemented"};
  }
  if (from_file.empty() || to_file.empty()) throw Failure{"copy: --from and --to are required"};
  Storage from = configure_storage(settings_from_config_file(from_file));
  Storage to = configure_storage(settings_from_config_file(to_file));
  if (backup_name.empty()) {
    log_info("Copy all backups and history.");
    std::vector<std::string> sentinels;
    for (const auto& o : from.list("")) {
      if (o.name.ends_with(kSentinelSuffix)) sentinels.push_back(o.name);
      else copy_object(from, to, o.name);
    }
    for (const auto& s : sentinels) copy_object(from, to, s);
    log_info("Success copy.");
    return 0;
  }
  log_info("Handle backupname '" + backup_name + "'.");
  const BackupEntry b = find_backup(from, backup_name);
  std::string sentinel;
  for (const auto& o : from.list(kBaseBackups)) {
    if (!o.name.starts_with(kBaseBackups + b.name)) continue;  // hasBackupPrefix
    if (o.name == kBaseBackups + b.name + kSentinelSuffix) sentinel = o.name;
    else copy_object(from, to, o.name);
  }
  if (!without_history) {
    const std::string first = strip_wal_file_name(b.name);
    for (const auto& o : from.list(kWal))
      if (o.name.substr(kWal.size()) >= first) copy_object(from, to, o.name);
  }
  copy_object(from, to, sentinel);
  log_info("Success copy.");
  return 0;
}

}  // namespace walg
