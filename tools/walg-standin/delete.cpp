// delete target [FIND_FULL] NAME [--confirm], after wal-g's docs/README.md
// ("delete target") and internal/databases/postgres/delete.go
// (HandleDeleteTarget via internal.DeleteHandler):
//  - deletes the target backup and every backup that depends on it (deltas
//    whose DeltaFrom chain reaches it); FIND_FULL first moves a delta target
//    to its full backup (DeltaFullName), so the whole chain goes;
//  - without --confirm it is a dry run: it lists what it would delete and
//    deletes nothing;
//  - WAL is kept (delete target removes backups only).
// Sentinels go first, so a delete cut short leaves no listed backup without data.
// Differences: delete before|retain|everything|garbage and --target-user-data
// are not implemented; there are no permanent backups to protect.
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "catalog.h"
#include "commands.h"
#include "storage.h"

namespace walg {
using nlohmann::json;

int delete_backups(const Args& args, const Settings& settings) {
  if (args.empty() || args[0] != "target") {
    throw Failure{"wal-g stand-in: delete " + (args.empty() ? std::string("") : args[0]) + " is not implemented"};
  }
  bool confirm = false, find_full = false;
  std::string name;
  for (size_t i = 1; i < args.size(); ++i) {
    if (args[i] == "--confirm") confirm = true;
    else if (args[i] == "FIND_FULL" && name.empty()) find_full = true;
    else if (args[i].starts_with("-")) throw Failure{"wal-g stand-in: delete target " + args[i] + " is not implemented"};
    else if (name.empty()) name = args[i];
    else throw Failure{"delete target: too many arguments"};
  }
  if (name.empty()) throw Failure{"delete target: a backup name is required"};
  Storage storage = configure_storage(settings);
  BackupEntry target = find_backup(storage, name);
  std::map<std::string, std::string> delta_from;  // backup -> its base
  for (const auto& b : list_backups(storage)) {
    const json s = read_sentinel(storage, b.name);
    if (s.contains("DeltaFrom")) delta_from[b.name] = s["DeltaFrom"].get<std::string>();
  }
  if (find_full) {
    const json s = read_sentinel(storage, target.name);
    if (s.contains("DeltaFullName")) target = find_backup(storage, s["DeltaFullName"].get<std::string>());
  }
  std::set<std::string> doomed{target.name};
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& [b, from] : delta_from)
      if (doomed.contains(from) && doomed.insert(b).second) grew = true;
  }
  if (!confirm) {
    for (const auto& b : doomed) log_info("would delete backup " + b);
    log_info("Dry run: nothing was deleted (add --confirm)");
    return 0;
  }
  for (const auto& b : doomed) storage.remove(kBaseBackups + b + kSentinelSuffix);
  for (const auto& b : doomed) {
    for (const auto& object : backup_objects(storage, b)) storage.remove(object);
    log_info("deleted backup " + b);
  }
  return 0;
}

}  // namespace walg
