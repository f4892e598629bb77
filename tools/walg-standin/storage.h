// Where the stand-in keeps backups and WAL: chosen from settings in wal-g's
// order (S3, then the file system; see storage.cpp), over the project's
// bo::bundle::Store (SigV4 S3 or a directory).
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bundle/store.h"
#include "common.h"

namespace walg {

class Storage {
 public:
  explicit Storage(std::unique_ptr<bo::bundle::Store> store, std::string description)
      : store_(std::move(store)), description_(std::move(description)) {}

  void put_file(const std::string& name, const std::filesystem::path& file);
  void put_text(const std::string& name, const std::string& text);
  // nullopt when the object does not exist.
  [[nodiscard]] std::optional<std::string> get_text(const std::string& name);
  // false when the object does not exist.
  [[nodiscard]] bool get_file(const std::string& name, const std::filesystem::path& file);
  [[nodiscard]] bool exists(const std::string& name);
  [[nodiscard]] std::vector<bo::bundle::ObjectInfo> list(const std::string& prefix);
  void remove(const std::string& name);
  [[nodiscard]] const std::string& description() const { return description_; }

 private:
  std::unique_ptr<bo::bundle::Store> store_;
  std::string description_;
};

// The storage the settings configure; Failure when none is, or one the stand-in lacks.
[[nodiscard]] Storage configure_storage(const Settings& settings);

// Settings from a wal-g config file (JSON or YAML, keys as the variables), as `copy --from/--to` reads them.
[[nodiscard]] Settings settings_from_config_file(const std::string& path);

}  // namespace walg
