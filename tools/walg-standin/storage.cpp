// Storage selection follows wal-g's configure step: internal/configure.go
// (configureFolder) tries the prefixes in this order and takes the first set:
// WALE_S3_PREFIX/WALG_S3_PREFIX, WALG_FILE_PREFIX, WALG_GS_PREFIX,
// WALG_AZ_PREFIX, WALG_SWIFT_PREFIX (later versions add WALG_SSH_PREFIX), and
// fails naming them all when none is. S3 settings are those of
// docs/STORAGES.md: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
// AWS_ENDPOINT, AWS_S3_FORCE_PATH_STYLE (default false), WALG_S3_CA_CERT_FILE.
// wal-g has no WALG_AWS_* spellings, so neither has the stand-in.
#include "storage.h"

#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace walg {
namespace fs = std::filesystem;

void Storage::put_file(const std::string& name, const fs::path& file) {
  auto r = store_->put(name, file);
  if (!r) throw Failure{"failed to upload " + name + ": " + r.error()};
}

void Storage::put_text(const std::string& name, const std::string& text) {
  char tmpl[] = "/tmp/walg-standin-put-XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) throw Failure{"cannot create a temporary file"};
  ::close(fd);
  {
    std::ofstream out(tmpl, std::ios::binary);
    out << text;
  }
  try {
    put_file(name, tmpl);
  } catch (...) {
    fs::remove(tmpl);
    throw;
  }
  fs::remove(tmpl);
}

std::optional<std::string> Storage::get_text(const std::string& name) {
  char tmpl[] = "/tmp/walg-standin-get-XXXXXX";
  const int fd = mkstemp(tmpl);
  if (fd < 0) throw Failure{"cannot create a temporary file"};
  ::close(fd);
  struct Remove {
    const char* path;
    ~Remove() { ::unlink(path); }
  } remove{tmpl};  // also when the download throws
  const bool found = get_file(name, tmpl);
  std::optional<std::string> out;
  if (found) {
    std::ifstream in(tmpl, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out = ss.str();
  }
  return out;
}

bool Storage::get_file(const std::string& name, const fs::path& file) {
  if (!exists(name)) return false;
  auto r = store_->get(name, file);
  if (!r) throw Failure{"failed to download " + name + ": " + r.error()};
  return true;
}

bool Storage::exists(const std::string& name) {
  auto r = store_->exists(name);
  if (!r) throw Failure{r.error()};
  return *r;
}

std::vector<bo::bundle::ObjectInfo> Storage::list(const std::string& prefix) {
  auto r = store_->list(prefix);
  if (!r) throw Failure{"failed to list " + prefix + ": " + r.error()};
  return *r;
}

void Storage::remove(const std::string& name) {
  auto r = store_->remove(name);
  if (!r) throw Failure{"failed to delete " + name + ": " + r.error()};
}

namespace {

bool parse_bool(const std::string& key, const std::string& v) {
  // Go's strconv.ParseBool, as viper reads booleans.
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") return true;
  if (v.empty() || v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") return false;
  throw Failure{"invalid value for " + key + ": " + v};
}

Storage configure_s3(const Settings& s, const std::string& prefix) {
  static const std::regex kPrefix(R"(s3://([^/]+)(/.*)?)");
  std::smatch m;
  if (!std::regex_match(prefix, m, kPrefix)) throw Failure{"failed to parse the S3 prefix " + prefix};
  bo::bundle::S3Location w;
  w.bucket = m[1].str();
  w.prefix = m[2].matched ? m[2].str() : "";
  while (!w.prefix.empty() && w.prefix.front() == '/') w.prefix.erase(w.prefix.begin());
  while (!w.prefix.empty() && w.prefix.back() == '/') w.prefix.pop_back();
  w.creds.access_key = setting(s, "AWS_ACCESS_KEY_ID");
  w.creds.secret_key = setting(s, "AWS_SECRET_ACCESS_KEY");
  // wal-g falls back to ~/.aws/credentials and the EC2 metadata service; the stand-in does not.
  if (w.creds.access_key.empty() || w.creds.secret_key.empty())
    throw Failure{"wal-g stand-in: S3 credentials other than AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not implemented"};
  w.creds.region = setting(s, "AWS_REGION", "us-east-1");
  w.path_style = parse_bool("AWS_S3_FORCE_PATH_STYLE", setting(s, "AWS_S3_FORCE_PATH_STYLE"));
  std::string endpoint = setting(s, "AWS_ENDPOINT");
  if (endpoint.empty()) endpoint = "https://s3." + w.creds.region + ".amazonaws.com";
  if (!endpoint.starts_with("http://") && !endpoint.starts_with("https://")) endpoint = "https://" + endpoint;
  while (endpoint.size() > 8 && endpoint.back() == '/') endpoint.pop_back();
  if (!w.path_style) {
    // Virtual-hosted style: the bucket becomes part of the host name.
    const auto scheme_end = endpoint.find("://") + 3;
    endpoint = endpoint.substr(0, scheme_end) + w.bucket + "." + endpoint.substr(scheme_end);
  }
  w.endpoint = endpoint;
  w.ca_file = setting(s, "WALG_S3_CA_CERT_FILE");
  return Storage(bo::bundle::make_s3_store_at(std::move(w)), prefix);
}

}  // namespace

Storage configure_storage(const Settings& s) {
  // WALE_S3_PREFIX is the documented alternative form of WALG_S3_PREFIX.
  if (const auto p = setting(s, "WALG_S3_PREFIX", setting(s, "WALE_S3_PREFIX")); !p.empty()) return configure_s3(s, p);
  if (const auto p = setting(s, "WALG_FILE_PREFIX", setting(s, "WALE_FILE_PREFIX")); !p.empty())
    return Storage(bo::bundle::make_directory_store(p), p);
  for (const char* other : {"WALG_GS_PREFIX", "WALG_AZ_PREFIX", "WALG_SWIFT_PREFIX", "WALG_SSH_PREFIX"})
    if (!setting(s, other).empty()) throw Failure{std::string("wal-g stand-in: storage ") + other + " is not implemented"};
  throw Failure{
      "Did not set the following environment variables:\nWALG_S3_PREFIX\nWALG_FILE_PREFIX\nWALG_GS_PREFIX\n"
      "WALG_AZ_PREFIX\nWALG_SWIFT_PREFIX"};
}

Settings settings_from_config_file(const std::string& path) {
  Settings s;
  try {
    // YAML is a superset of JSON: one parser reads both config forms wal-g accepts.
    const YAML::Node root = YAML::LoadFile(path);
    if (!root.IsMap()) throw Failure{"config file " + path + " is not a map of settings"};
    for (const auto& kv : root) s[kv.first.as<std::string>()] = kv.second.IsScalar() ? kv.second.as<std::string>() : "";
  } catch (const YAML::Exception& e) {
    throw Failure{"failed to read config file " + path + ": " + e.what()};
  }
  return s;
}

}  // namespace walg
