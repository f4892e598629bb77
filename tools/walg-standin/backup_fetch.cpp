// backup-fetch DIR NAME|LATEST, after wal-g's
// internal/databases/postgres/backup_fetch_handler.go (GetFetcherOld,
// deltaFetchRecursionOld) and backup.go (unwrapToEmptyDirectory):
//  - LATEST is the backup with the newest sentinel; an unknown name fails with
//    "Backup '<name>' does not exist." (internal.NewBackupNonExistenceError).
//  - A delta is restored by first restoring its base (DeltaFrom) recursively,
//    unpacking from each base only the files the level above marks IsSkipped
//    (GetBaseFilesToUnwrap), then the delta's own files on top; the directory
//    must be empty when the full backup at the bottom is unpacked
//    (checkDBDirectoryForUnwrap: "Directory %v for delta base must be empty").
//    A missing directory counts as empty and is created.
//  - Files not in the target backup's file list are not restored; directories
//    excluded at push (pg_wal, pg_notify, ...) come back empty, as their tar
//    headers were kept; backup_label and tablespace_map come from
//    backup_label.tar, pg_control from pg_control.tar, so PostgreSQL starts
//    recovery from the backup's checkpoint. The caller adds recovery.signal and
//    restore_command, as with real wal-g.
// Differences: no --mask, --restore-spec, --reverse-unpack, --skip-redundant-tars,
// --target-user-data, --restore-only; files owned by the fetching user.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "archive.h"
#include "catalog.h"
#include "commands.h"
#include "crypter.h"
#include "storage.h"

namespace walg {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Level {
  std::string name;
  json sentinel;
  json files;  // FilesMetadataDto.Files
};

}  // namespace

int backup_fetch(const Args& args, const Settings& settings) {
  Args positional;
  for (const auto& a : args) {
    if (a.starts_with("-")) throw Failure{"wal-g stand-in: backup-fetch " + a + " is not implemented"};
    positional.push_back(a);
  }
  if (positional.size() != 2) throw Failure{"wal-g stand-in: backup-fetch needs DESTINATION and BACKUP_NAME|LATEST"};
  const fs::path dest = fs::absolute(positional[0]);
  Storage storage = configure_storage(settings);
  const std::optional<Crypter> crypter = Crypter::from_settings(settings);
  const BackupEntry target = find_backup(storage, positional[1]);

  // The chain, target first, down to the full backup.
  std::vector<Level> chain;
  for (std::string name = target.name;;) {
    Level l{name, read_sentinel(storage, name), {}};
    l.files = read_backup_json(storage, name, "files_metadata.json").value("Files", json::object());
    const bool delta = l.sentinel.contains("DeltaFrom");
    const std::string from = delta ? l.sentinel["DeltaFrom"].get<std::string>() : "";
    chain.push_back(std::move(l));
    if (!delta) break;
    if (chain.size() > 1000) throw Failure{"delta chain of " + target.name + " does not end"};
    name = from;
    log_info("Delta from " + name);
  }

  // checkDBDirectoryForUnwrap, for the full backup unpacked first.
  std::error_code ec;
  if (fs::exists(dest, ec) && !fs::is_empty(dest, ec))
    throw Failure{"Failed to fetch backup: Directory " + dest.string() + " for delta base must be empty"};
  fs::create_directories(dest);
  fs::permissions(dest, fs::perms::owner_all);

  // Which files each level restores: all of the target's; of a base, those the level above skipped.
  std::vector<std::set<std::string>> wanted(chain.size());
  for (const auto& [f, d] : chain[0].files.items()) wanted[0].insert(f);
  for (size_t i = 1; i < chain.size(); ++i)
    for (const auto& f : wanted[i - 1])
      if (chain[i - 1].files.contains(f) && chain[i - 1].files[f].value("IsSkipped", false)) wanted[i].insert(f);

  struct Tmp {
    fs::path path = fs::temp_directory_path() / ("walg-standin-fetch-" + std::to_string(::getpid()));
    ~Tmp() {
      std::error_code e;
      fs::remove_all(path, e);
    }
  } tmp;
  fs::create_directories(tmp.path);
  for (size_t i = chain.size(); i-- > 0;) {
    const Level& l = chain[i];
    const std::string parts = kBaseBackups + l.name + "/tar_partitions/";
    for (const auto& o : storage.list(parts)) {
      const std::string part = o.name.substr(parts.size());
      if (part == "pg_control.tar.lz4" || part == "backup_label.tar.lz4") continue;
      const fs::path local = tmp.path / part;
      if (!storage.get_file(o.name, local)) throw Failure{"tar partition " + o.name + " disappeared"};
      decrypt_in_place(crypter, local, o.name);  // decrypt, then decompress (DecompressDecryptBytes)
      extract_tar(local, dest, [&](const std::string& member, bool is_dir) { return is_dir || wanted[i].contains(member); });
      fs::remove(local);
    }
    log_info(l.name + " fetched.");
  }
  const std::string top = kBaseBackups + chain[0].name + "/tar_partitions/";
  for (const char* special : {"backup_label.tar.lz4", "pg_control.tar.lz4"}) {
    const fs::path local = tmp.path / special;
    if (!storage.get_file(top + special, local)) {
      if (std::string(special) == "pg_control.tar.lz4") throw Failure{"Expect pg_control archive, but not found"};
      continue;
    }
    decrypt_in_place(crypter, local, top + special);
    extract_tar(local, dest, [](const std::string&, bool) { return true; });
  }
  // An empty tablespace_map makes PostgreSQL no different; wal-g writes what pg_backup_stop returned.
  log_info("Backup extraction complete.");
  return 0;
}

}  // namespace walg
