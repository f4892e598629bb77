#include "cli/plugin.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <vector>

namespace bo::cli {
namespace {

using Row = std::vector<std::string>;

// kubectl's plain table: upper-case headers, columns three spaces apart.
std::string table(const Row& header, const std::vector<Row>& rows) {
  std::vector<size_t> width(header.size(), 0);
  auto measure = [&](const Row& r) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], r[i].size());
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  std::string out;
  auto print = [&](const Row& r) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  print(header);
  for (const auto& r : rows) print(r);
  return out;
}

json status_of(const json& obj) {
  const json s = obj.value("status", json::object());
  return s.is_object() ? s : json::object();
}

std::string condition_status(const json& status, const std::string& type) {
  for (const auto& c : status.value("conditions", json::array()))
    if (c.is_object() && c.value("type", "") == type) return c.value("status", "Unknown");
  return "-";
}

// Reconciling and Stalled are abnormal-true (kstatus, the API conventions):
// False is their normal state, True the one to show.
bool abnormal_true(const std::string& type) { return type == "Reconciling" || type == "Stalled"; }

std::string not_true(const json& status) {
  std::string out;
  for (const auto& c : status.value("conditions", json::array())) {
    if (!c.is_object()) continue;
    if ((c.value("status", "") == "True") != abnormal_true(c.value("type", ""))) continue;
    out += (out.empty() ? "" : ",") + c.value("type", "?") + "=" + c.value("status", "?");
    if (!c.value("reason", "").empty()) out += "(" + c.value("reason", "") + ")";
  }
  return out.empty() ? "-" : out;
}

std::string bytes(int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

// yyyymmddhhmmss, for names (lower-case DNS labels).
std::string stamp(SysTime now) {
  std::string s = format_compact_utc(now);  // 20261124T101500Z
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return !std::isdigit(static_cast<unsigned char>(c)); }),
          s.end());
  return s;
}

json request(const json& policy, const std::string& name, json spec) {
  const json meta = policy.value("metadata", json::object());
  spec["policyRef"] = {{"name", meta.value("name", "")}};
  return {{"apiVersion", "backup.si.dev/v1alpha1"},
          {"kind", "RestoreRequest"},
          {"metadata", {{"name", name}, {"namespace", meta.value("namespace", "")},
                        {"labels", {{"app.kubernetes.io/created-by", "kubectl-backup"}}}}},
          {"spec", std::move(spec)}};
}

// A generated name within a label value's 63 characters: the policy's name cut to fit.
std::string generated_name(const std::string& policy, const std::string& what, SysTime now) {
  const std::string suffix = "-" + what + "-" + stamp(now);
  std::string head = policy.substr(0, 63 - std::min<size_t>(63, suffix.size()));
  while (!head.empty() && (head.back() == '-' || head.back() == '.')) head.pop_back();
  return head + suffix;
}

}  // namespace

std::string age(const std::string& then, SysTime now) {
  const auto t = parse_rfc3339(then);
  if (!t) return "-";
  return human_duration(std::chrono::duration_cast<std::chrono::seconds>(std::max(now - *t, SysTime::duration{})));
}

std::string status_table(const json& list, SysTime now, bool all_namespaces) {
  Row header = {"NAME", "LAST BACKUP", "AGE", "ARCHIVING", "LAST VERIFIED", "NEXT", "NOT TRUE"};
  if (all_namespaces) header.insert(header.begin(), "NAMESPACE");
  std::vector<Row> rows;
  for (const auto& p : list.value("items", json::array())) {
    if (!p.is_object()) continue;
    const json meta = p.value("metadata", json::object());
    const json st = status_of(p);
    const json last = st.value("lastSuccessfulBackup", json::object());
    const json verified = st.value("lastVerifiedBackup", json::object());
    Row r = {meta.value("name", ""),
             last.is_object() ? last.value("id", "-") : "-",
             last.is_object() ? age(last.value("completionTime", ""), now) : "-",
             condition_status(st, "ContinuousArchiving"),
             verified.is_object() ? age(verified.value("verifiedAt", ""), now) : "-",
             st.value("nextScheduleTime", "-"),
             not_true(st)};
    if (all_namespaces) r.insert(r.begin(), meta.value("namespace", ""));
    rows.push_back(std::move(r));
  }
  return table(header, rows);
}

std::string catalog_table(const json& policy, SysTime now) {
  std::vector<Row> rows;
  for (const auto& e : status_of(policy).value("backups", json::array())) {
    if (!e.is_object()) continue;
    std::string kept;
    for (const auto& k : e.value("keptFor", json::array()))
      if (k.is_string()) kept += (kept.empty() ? "" : ",") + k.get<std::string>();
    rows.push_back({e.value("id", ""), e.value("type", "-"), age(e.value("completionTime", ""), now),
                    bytes(e.value("sizeBytes", int64_t{0})), e.value("restorable", true) ? "yes" : "NO",
                    e.value("verified", false) ? "yes" : "no", kept.empty() ? "-" : kept});
  }
  return table({"ID", "TYPE", "COMPLETED", "SIZE", "RESTORABLE", "VERIFIED", "KEPT FOR"}, rows);
}

std::expected<json, std::string> verification_request(const json& policy, SysTime now) {
  const json spec = policy.value("spec", json::object());
  const json ver = spec.value("verification", json::object());
  const std::string name = policy.value("metadata", json::object()).value("name", "");
  if (ver.is_object() && !ver.value("enabled", true))
    return std::unexpected("BackupPolicy " + name + ": spec.verification.enabled is false");
  const std::string target = ver.is_object() ? ver.value("targetNamespace", "") : "";
  if (target.empty()) return std::unexpected("BackupPolicy " + name + ": spec.verification.targetNamespace is not set");
  for (const auto& e : status_of(policy).value("backups", json::array()))  // newest first
    if (e.is_object() && e.value("type", "") == "full" && e.value("restorable", true))
      return request(policy, generated_name(name, "verify-now", now),
                     {{"backupId", e.value("id", "")},
                      {"checksum", e.value("checksum", "")},
                      {"purpose", "verification"},
                      {"targetNamespace", target}});
  return std::unexpected("BackupPolicy " + name + " has no restorable full backup in its catalog to verify");
}

std::expected<json, std::string> restore_request(const json& policy, const RestoreOptions& opts, SysTime now) {
  const std::string name = policy.value("metadata", json::object()).value("name", "");
  if (opts.to.empty()) return std::unexpected("--to: the target namespace is required");
  if (opts.purpose != "restore" && opts.purpose != "drill")
    return std::unexpected("--purpose: \"" + opts.purpose + "\" is not restore or drill");
  json spec = {{"backupId", opts.backup_id.empty() ? "latest" : opts.backup_id},
               {"purpose", opts.purpose},
               {"targetNamespace", opts.to}};
  if (!opts.point_in_time.empty()) {
    if (!parse_rfc3339(opts.point_in_time))
      return std::unexpected("--point-in-time: \"" + opts.point_in_time + "\" is not an RFC 3339 time");
    spec["pointInTime"] = opts.point_in_time;
  }
  if (spec["backupId"] != "latest") {
    const json catalog = status_of(policy).value("backups", json::array());
    const json* found = nullptr;
    for (const auto& e : catalog)
      if (e.is_object() && e.value("id", "") == opts.backup_id) found = &e;
    if (!found) return std::unexpected("--id: backup " + opts.backup_id + " is not in the catalog of BackupPolicy " + name);
    if (!found->value("checksum", "").empty()) spec["checksum"] = found->value("checksum", "");
  }
  return request(policy, opts.name.empty() ? generated_name(name, opts.purpose, now) : opts.name, std::move(spec));
}

Progress progress(const json& rr, const std::string& last_line) {
  const json st = status_of(rr);
  Progress p;
  const std::string phase = st.value("phase", "Pending");
  std::string line = phase;
  if (!st.value("message", "").empty()) line += ": " + st.value("message", "");
  p.ended = phase == "Succeeded" || phase == "Failed" || phase == "Blocked";
  p.succeeded = phase == "Succeeded";
  if (line != last_line) p.line = line;
  return p;
}

}  // namespace bo::cli
