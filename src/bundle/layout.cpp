#include "bundle/layout.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace bo::bundle {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::vector<std::string_view> components(std::string_view rel) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= rel.size()) {
    const size_t slash = rel.find('/', start);
    const size_t end = slash == std::string_view::npos ? rel.size() : slash;
    out.push_back(rel.substr(start, end - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

bool ends_with_any(std::string_view s, std::initializer_list<std::string_view> suffixes) {
  return std::any_of(suffixes.begin(), suffixes.end(), [&](std::string_view x) { return s.ends_with(x); });
}

}  // namespace

const std::vector<ProtectedFile>& protected_files() {
  static const std::vector<ProtectedFile> kFiles = {
      {"config.json", true},          {"targets.json", false},          {"deployments.json", false},
      {"addons.json", false},         {"bluegreen.json", false},        {"webhooks/mappings.json", false},
      {"alerts/policy.json", false},  {"events/deployments.jsonl", false}, {"events/alerts.jsonl", false},
      {"events/audit.jsonl", false},
  };
  return kFiles;
}

std::optional<std::string> exclusion_reason(std::string_view rel) {
  const auto parts = components(rel);
  for (const auto& part : parts) {
    const std::string p = lower(part);
    if (p == "vault") return "vault/ holds the context's secrets and is never bundled (POLICY §2)";
    if (p == "volumes" || p == "pgdata" || p == "data-volumes")
      return "a runtime data volume is never copied into a bundle (POLICY §2)";
  }
  const std::string name = lower(parts.empty() ? rel : parts.back());
  if (name == "secrets.env" || name == ".env" || name.ends_with(".env"))
    return "an environment file is a plaintext secret export (POLICY §2)";
  if (name.find("secret") != std::string::npos &&
      (name.find("export") != std::string::npos || name.find("dump") != std::string::npos ||
       ends_with_any(name, {".txt", ".yaml", ".yml", ".csv"})))
    return "a plaintext secret export is never bundled (POLICY §2)";
  if (ends_with_any(name, {".pem", ".key", ".p12", ".pfx", ".jks"}))
    return "key material is a secret and is never bundled (POLICY §2)";
  if (name == "core" || name.starts_with("core.") ||
      ends_with_any(name, {".dump", ".sql", ".sql.gz", ".pgdump", ".bak", ".hprof", ".heapdump", ".core"}) ||
      name.find("debug-dump") != std::string::npos || name.find("debug_dump") != std::string::npos)
    return "a dump file is never bundled (POLICY §2)";
  return std::nullopt;
}

std::optional<std::string> unsafe_path_reason(std::string_view rel) {
  if (rel.empty()) return "empty path";
  if (rel.size() > 1024) return "path longer than 1024 bytes";
  if (rel.front() == '/') return "absolute path";
  if (rel.find('\0') != std::string_view::npos) return "path contains a NUL byte";
  if (rel.find('\\') != std::string_view::npos) return "path contains a backslash";
  for (const auto& part : components(rel)) {
    if (part.empty()) return "path has an empty component";
    if (part == ".") return "path has a \".\" component";
    if (part == "..") return "path escapes the context root (\"..\")";
  }
  return std::nullopt;
}

bool valid_context_name(std::string_view name) {
  if (name.empty() || name.size() > 63 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '_' || c == '-';
  });
}

std::optional<std::filesystem::path> git_work_tree_of(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path at = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  if (ec) at = fs::absolute(dir, ec);
  while (true) {
    if (fs::exists(at / ".git", ec)) return at;
    if (at == at.root_path() || !at.has_parent_path() || at.parent_path() == at) return std::nullopt;
    at = at.parent_path();
  }
}

}  // namespace bo::bundle
