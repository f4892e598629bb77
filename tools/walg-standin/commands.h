// The wal-g commands the stand-in implements, one file each; every one takes
// its arguments after the command name and returns the exit code.
#pragma once
#include <string>
#include <vector>

#include "common.h"

namespace walg {

using Args = std::vector<std::string>;

int backup_push(const Args& args, const Settings& settings);
int backup_fetch(const Args& args, const Settings& settings);
int backup_list(const Args& args, const Settings& settings);
int wal_push(const Args& args, const Settings& settings);
int wal_fetch(const Args& args, const Settings& settings);
int delete_backups(const Args& args, const Settings& settings);
int storage_tools(const Args& args, const Settings& settings);
int copy_backups(const Args& args, const Settings& settings);

}  // namespace walg
