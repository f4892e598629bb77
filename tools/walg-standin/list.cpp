// backup-list [--json] [--detail] [--pretty] and st cat|ls, after wal-g's
// internal/databases/postgres/backup_list_handler.go and backup_detail.go:
//  - backup-list shows backups oldest first; each is internal.BackupTime
//    (backup_name, time = the sentinel's modification time, wal_file_name,
//    storage_name) and, with --detail, ExtendedMetadataDto from metadata.json
//    (start_time, finish_time, date_fmt, hostname, data_dir, pg_version,
//    start_lsn, finish_lsn, is_permanent, system_identifier, timeline,
//    uncompressed_size, compressed_size). With no backups it logs
//    "No backups found" and prints nothing.
//  - st cat PATH prints the object as stored (docs/StorageTools.md: no
//    decompression unless asked); st ls [PATH] lists one folder level;
//    st put LOCAL REMOTE uploads a file (below).
// Differences: the table (non --json) layout is approximate; st ls prints
// "obj|dir size modified name" lines rather than wal-g's table; st get/rm/
// transfer are not implemented; st put only uncompressed and unencrypted.
#include <iostream>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <set>
#include <vector>

#include "catalog.h"
#include "commands.h"
#include "storage.h"

namespace walg {
using nlohmann::json;
using nlohmann::ordered_json;

int backup_list(const Args& args, const Settings& settings) {
  bool as_json = false, detail = false, pretty = false;
  for (const auto& a : args) {
    if (a == "--json") as_json = true;
    else if (a == "--detail") detail = true;
    else if (a == "--pretty") pretty = true;
    else throw Failure{"wal-g stand-in: backup-list " + a + " is not implemented"};
  }
  Storage storage = configure_storage(settings);
  const auto backups = list_backups(storage);
  if (backups.empty()) {
    log_info("No backups found");
    return 0;
  }
  ordered_json out = ordered_json::array();
  for (const auto& b : backups) {
    ordered_json row = {{"backup_name", b.name},
                        {"time", go_time(b.modified)},
                        {"wal_file_name", strip_wal_file_name(b.name)},
                        {"storage_name", "default"}};
    if (detail) {
      const json meta = read_backup_json(storage, b.name, "metadata.json");
      for (const char* k : {"start_time", "finish_time", "date_fmt", "hostname", "data_dir", "pg_version", "start_lsn",
                            "finish_lsn", "is_permanent", "system_identifier", "timeline", "uncompressed_size",
                            "compressed_size"})
        row[k] = meta.contains(k) ? meta[k] : json(nullptr);
      if (meta.contains("user_data")) row["user_data"] = meta["user_data"];
    }
    out.push_back(std::move(row));
  }
  if (as_json) {
    std::cout << (pretty ? out.dump(2) : out.dump()) << "\n";
    return 0;
  }
  std::cout << (detail ? "name modified wal_segment_backup_start start_time finish_time hostname data_dir pg_version "
                         "start_lsn finish_lsn is_permanent\n"
                       : "name modified wal_segment_backup_start\n");
  for (const auto& r : out) {
    std::cout << r["backup_name"].get<std::string>() << " " << r["time"].get<std::string>() << " "
              << r["wal_file_name"].get<std::string>();
    if (detail)
      for (const char* k : {"start_time", "finish_time", "hostname", "data_dir", "pg_version", "start_lsn", "finish_lsn",
                            "is_permanent"})
        std::cout << " " << (r[k].is_string() ? r[k].get<std::string>() : r[k].dump());
    std::cout << "\n";
  }
  return 0;
}

int storage_tools(const Args& args, const Settings& settings) {
  if (args.empty()) throw Failure{"wal-g stand-in: st needs a subcommand"};
  if (args[0] == "cat") {
    if (args.size() != 2) throw Failure{"accepts 1 arg(s), received " + std::to_string(args.size() - 1)};
    Storage storage = configure_storage(settings);
    const auto text = storage.get_text(args[1]);
    if (!text) throw Failure{"object '" + args[1] + "' not found in storage"};
    std::cout << *text;
    return 0;
  }
  if (args[0] == "ls") {
    if (args.size() > 2) throw Failure{"wal-g stand-in: st ls " + args[2] + " is not implemented"};
    std::string folder = args.size() == 2 ? args[1] : "";
    if (!folder.empty() && !folder.ends_with("/")) folder += "/";
    Storage storage = configure_storage(settings);
    std::set<std::string> dirs;
    for (const auto& o : storage.list(folder)) {
      const std::string rel = o.name.substr(folder.size());
      const auto slash = rel.find('/');
      if (slash != std::string::npos) {
        if (dirs.insert(rel.substr(0, slash)).second) std::cout << "dir 0 - " << rel.substr(0, slash) << "\n";
        continue;
      }
      std::cout << "obj " << o.size << " " << go_time(o.modified) << " " << rel << "\n";
    }
    return 0;
  }
  if (args[0] == "put") {
    // internal/storagetools/put_object_handler.go (HandlePutObject) and
    // cmd/common/st/put_object.go: `st put LOCAL REMOTE`, flags --no-compress,
    // --no-encrypt, -f/--force. Its overwrite check looks for REMOTE plus the
    // compression's extension (checkOverwrite), even with --no-compress.
    bool no_compress = false, no_encrypt = false, force = false;
    std::vector<std::string> paths;
    for (size_t i = 1; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--no-compress") no_compress = true;
      else if (a == "--no-encrypt") no_encrypt = true;
      else if (a == "-f" || a == "--force") force = true;
      else if (a.starts_with("-")) throw Failure{"unknown flag: " + a};
      else paths.push_back(a);
    }
    if (paths.size() != 2) throw Failure{"accepts 2 arg(s), received " + std::to_string(paths.size())};
    if (!no_compress || !no_encrypt)
      throw Failure{"wal-g stand-in: st put with compression or encryption is not implemented (use --no-compress --no-encrypt)"};
    const std::filesystem::path local = paths[0];
    std::error_code ec;
    if (!std::filesystem::is_regular_file(local, ec))
      throw Failure{"open the local file: open " + local.string() + ": no such file or directory"};
    Storage storage = configure_storage(settings);
    const std::string checked = paths[1] + ".lz4";
    if (!force && storage.exists(checked))
      throw Failure{"check file overwrite: object " + checked + " already exists. To overwrite it, add the -f flag"};
    storage.put_file(paths[1], local);
    return 0;
  }
  throw Failure{"wal-g stand-in: st " + args[0] + " is not implemented"};
}

}  // namespace walg
