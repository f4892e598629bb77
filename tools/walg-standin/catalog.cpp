#include "catalog.h"

#include <algorithm>
#include <regex>

namespace walg {

std::vector<BackupEntry> list_backups(Storage& storage) {
  std::vector<BackupEntry> out;
  for (const auto& o : storage.list(kBaseBackups)) {
    const std::string rel = o.name.substr(kBaseBackups.size());
    if (rel.find('/') != std::string::npos || !rel.ends_with(kSentinelSuffix)) continue;
    out.push_back({rel.substr(0, rel.size() - kSentinelSuffix.size()), o.modified});
  }
  std::sort(out.begin(), out.end(), [](const BackupEntry& a, const BackupEntry& b) {
    return a.modified != b.modified ? a.modified < b.modified : a.name < b.name;
  });
  return out;
}

BackupEntry find_backup(Storage& storage, const std::string& name) {
  const auto all = list_backups(storage);
  if (name == "LATEST") {
    if (all.empty()) throw Failure{"No backups found"};
    return all.back();
  }
  for (const auto& b : all)
    if (b.name == name) return b;
  throw Failure{"Backup '" + name + "' does not exist."};
}

nlohmann::json read_sentinel(Storage& storage, const std::string& name) {
  const auto text = storage.get_text(kBaseBackups + name + kSentinelSuffix);
  if (!text) throw Failure{"Backup '" + name + "' does not exist."};
  try {
    return nlohmann::json::parse(*text);
  } catch (const nlohmann::json::exception& e) {
    throw Failure{"failed to unmarshal sentinel of " + name + ": " + e.what()};
  }
}

nlohmann::json read_backup_json(Storage& storage, const std::string& name, const std::string& file) {
  const auto text = storage.get_text(kBaseBackups + name + "/" + file);
  if (!text) return nlohmann::json::object();
  try {
    return nlohmann::json::parse(*text);
  } catch (const nlohmann::json::exception& e) {
    throw Failure{"failed to unmarshal " + file + " of " + name + ": " + e.what()};
  }
}

std::string strip_wal_file_name(const std::string& backup_name) {
  static const std::regex kLsn("[0-9A-F]{24}");
  std::smatch m;
  if (std::regex_search(backup_name, m, kLsn)) return m.str();
  return std::string(24, 'Z');
}

std::vector<std::string> backup_objects(Storage& storage, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& o : storage.list(kBaseBackups + name + "/")) out.push_back(o.name);
  if (storage.exists(kBaseBackups + name + kSentinelSuffix)) out.push_back(kBaseBackups + name + kSentinelSuffix);
  return out;
}

}  // namespace walg
