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
//    decompression unless asked); st ls [PATH] lists one folder level.
// Differences: the table (non --json) layout is approximate; st ls prints
// "obj|dir size modified name" lines rather than wal-g's table; st get/put/rm/
// transfer are not implemented.
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

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
  throw Failure{"wal-g stand-in: st " + args[0] + " is not implemented"};
}

}  // namespace walg
