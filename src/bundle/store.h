// Where bundles live: a directory (written through a temporary file and a
// rename) or S3-compatible storage next to the WAL-G backups (PUT and GET
// signed with SigV4, credentials from the same WALG_* environment).
#pragma once
#include <chrono>
#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bundle/sigv4.h"

namespace bo::bundle {

struct ObjectInfo {
  std::string name;  // relative to the store
  std::chrono::system_clock::time_point modified;
  uint64_t size = 0;
};

// An answer as the store gave it, whatever its status.
struct RawResponse {
  int status = 0;
  std::string body;
};

class Store {
 public:
  virtual ~Store() = default;
  // Stores `file` under `name` (e.g. paas-state/<context>/<id>.bundle); returns where it went.
  virtual std::expected<std::string, std::string> put(const std::string& name, const std::filesystem::path& file) = 0;
  // As put, but never replaces an object already stored under `name`: an
  // error saying so. A directory makes that atomic (rename with
  // RENAME_NOREPLACE); the default asks exists() first (a writer racing in
  // between could still land first).
  virtual std::expected<std::string, std::string> put_new(const std::string& name, const std::filesystem::path& file);
  // Fetches `name` into `file`.
  virtual std::expected<void, std::string> get(const std::string& name, const std::filesystem::path& file) = 0;
  [[nodiscard]] virtual std::string location(const std::string& name) const = 0;
  // Whether `name` exists: false when it is missing, an error for anything else.
  [[nodiscard]] virtual std::expected<bool, std::string> exists(const std::string& name);
  // Every object under `prefix` (recursively), sorted by name.
  [[nodiscard]] virtual std::expected<std::vector<ObjectInfo>, std::string> list(const std::string& prefix);
  // Deletes `name`; deleting a missing object is not an error (as S3 DELETE).
  [[nodiscard]] virtual std::expected<void, std::string> remove(const std::string& name);
  // A signed GET of `name` with a canonical sub-resource `query` (e.g.
  // "retention="): the answer whatever its HTTP status; an error only when
  // none came (connection, TLS). S3 only.
  [[nodiscard]] virtual std::expected<RawResponse, std::string> get_raw(const std::string& name, const std::string& query);
};

// The object name of a bundle: paas-state/<context>/<id>.bundle.
[[nodiscard]] std::string object_name(const std::string& context, const std::string& id);

[[nodiscard]] std::unique_ptr<Store> make_directory_store(std::filesystem::path dir);

// From WALG_S3_PREFIX (s3://bucket[/prefix]), WALG_AWS_ACCESS_KEY_ID,
// WALG_AWS_SECRET_ACCESS_KEY, WALG_AWS_ENDPOINT (path-style when set) and
// WALG_AWS_REGION or AWS_REGION (default us-east-1); WALG_S3_CA_CERT_FILE adds a
// trusted CA, as in WAL-G. Errors name the variable, never its value.
[[nodiscard]] std::expected<std::unique_ptr<Store>, std::string> make_s3_store(const std::map<std::string, std::string>& env);

// An S3 location given explicitly (the wal-g stand-in reads its own variables).
struct S3Location {
  std::string endpoint;  // http(s)://host[:port]
  bool path_style = true;
  std::string bucket;
  std::string prefix;  // no leading or trailing '/'
  SigV4Credentials creds;
  std::string ca_file;
};
[[nodiscard]] std::unique_ptr<Store> make_s3_store_at(S3Location where);

// "dir:<path>" or "s3".
[[nodiscard]] std::expected<std::unique_ptr<Store>, std::string> make_store(const std::string& spec,
                                                                            const std::map<std::string, std::string>& env);

}  // namespace bo::bundle
