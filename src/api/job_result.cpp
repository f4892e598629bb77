#include "api/job_result.h"

#include <nlohmann/json.hpp>

#include "common/timefmt.h"

namespace bo::api {
namespace {

bool backup_name(const std::string& id) {
  return !id.empty() && id.size() <= 256 &&
         id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == std::string::npos;
}

// A condition reason as the API conventions want it: CamelCase, letters and digits.
bool camel_case(const std::string& s) {
  return !s.empty() && s.size() <= 64 && s[0] >= 'A' && s[0] <= 'Z' &&
         s.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == std::string::npos;
}

}  // namespace

std::expected<JobResult, std::string> parse_job_result(const std::string& msg) {
  if (msg.empty()) return std::unexpected("the job wrote no result to its termination message");
  const auto j = nlohmann::json::parse(msg, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::unexpected("the job's result is not a JSON object");
  auto str = [&](const char* k) -> std::string {
    auto it = j.find(k);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  JobResult r;
  r.backup_id = str("backupId");
  if (!backup_name(r.backup_id))
    return std::unexpected("result.backupId: missing or not a WAL-G backup name");
  r.checksum = str("checksum");
  if (!r.checksum.starts_with("sha256:") || r.checksum.size() != 71 ||
      r.checksum.find_first_not_of("0123456789abcdef", 7) != std::string::npos)
    return std::unexpected("result.checksum: must be sha256:<64 lower-case hex digits>");
  r.type = str("type");
  if (r.type != "full" && r.type != "delta") return std::unexpected("result.type: must be full or delta");
  r.base = str("base");
  if (r.type == "delta" && r.base.empty()) return std::unexpected("result.base: a delta backup must name its base");
  r.full = str("full");
  if (r.type == "delta" && r.full.empty()) r.full = r.base;
  if (auto c = j.find("deltaCount"); c != j.end() && c->is_number_integer()) r.delta_count = c->get<int>();
  r.start_lsn = str("startLsn");
  r.finish_lsn = str("finishLsn");
  auto archived = j.find("walArchived");
  if (archived == j.end() || !archived->is_boolean())
    return std::unexpected("result.walArchived: must be true or false (was the WAL the backup needs archived?)");
  r.wal_archived = archived->get<bool>();
  r.wal_message = str("walMessage");
  const auto start = parse_rfc3339(str("startTime"));
  const auto finish = parse_rfc3339(str("finishTime"));
  if (!start) return std::unexpected("result.startTime: must be an RFC 3339 time");
  if (!finish) return std::unexpected("result.finishTime: must be an RFC 3339 time");
  if (*finish < *start) return std::unexpected("result.finishTime: earlier than startTime");
  r.start = *start;
  r.finish = *finish;
  auto size = j.find("sizeBytes");
  if (size == j.end() || !size->is_number_integer() || size->get<int64_t>() < 0)
    return std::unexpected("result.sizeBytes: must be a non-negative integer");
  r.size_bytes = size->get<int64_t>();
  if (auto u = j.find("uncompressedBytes"); u != j.end()) {
    if (!u->is_number_integer() || u->get<int64_t>() < 0)
      return std::unexpected("result.uncompressedBytes: must be a non-negative integer");
    r.uncompressed_bytes = u->get<int64_t>();
  }
  if (auto m = j.find("markers"); m != j.end()) {
    if (!m->is_array()) return std::unexpected("result.markers: must be an array of backup ids");
    for (const auto& id : *m) {
      if (!id.is_string() || !backup_name(id.get<std::string>()))
        return std::unexpected("result.markers: must be an array of backup ids");
      r.markers.push_back(id.get<std::string>());
    }
  }
  return r;
}

std::expected<OffsiteCopyResult, std::string> parse_offsite_copy_result(const std::string& msg) {
  if (msg.empty()) return std::unexpected("the job wrote no result to its termination message");
  const auto j = nlohmann::json::parse(msg, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::unexpected("the job's result is not a JSON object");
  auto str = [](const nlohmann::json& o, const char* k) -> std::string {
    auto it = o.find(k);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  OffsiteCopyResult r;
  r.backup_id = str(j, "copied");
  if (!backup_name(r.backup_id)) return std::unexpected("result.copied: missing or not a WAL-G backup name");
  r.checksum = str(j, "checksum");
  if (!r.checksum.empty() && (!r.checksum.starts_with("sha256:") || r.checksum.size() != 71 ||
                              r.checksum.find_first_not_of("0123456789abcdef", 7) != std::string::npos))
    return std::unexpected("result.checksum: must be sha256:<64 lower-case hex digits>");
  if (auto w = j.find("walSegments"); w != j.end() && w->is_number_integer() && w->get<int64_t>() >= 0 &&
                                      w->get<int64_t>() < (int64_t{1} << 30))
    r.wal_segments = static_cast<int>(w->get<int64_t>());
  if (auto until = j.find("immutableUntil"); until != j.end()) {
    const auto when = until->is_string() ? parse_rfc3339(until->get<std::string>()) : std::nullopt;
    if (!when) return std::unexpected("result.immutableUntil: must be an RFC 3339 time");
    const std::string mode = str(j, "retentionMode");
    if (mode == "GOVERNANCE" || mode == "COMPLIANCE") {
      r.immutable_until = when;
      r.retention_mode = mode;
      return r;
    }
    r.immutability_reason = "ImmutabilityUnverified";
    r.immutability_message = "the Job reported immutableUntil without the retentionMode it read back (GOVERNANCE or "
                             "COMPLIANCE): a date it did not read from the offsite store";
    return r;
  }
  const auto imm = j.find("immutability");
  const nlohmann::json why = imm != j.end() && imm->is_object() ? *imm : nlohmann::json::object();
  r.immutability_reason = str(why, "reason");
  r.immutability_message = str(why, "message").substr(0, 1024);
  if (!camel_case(r.immutability_reason)) {
    r.immutability_reason = "ImmutabilityUnverified";
    if (r.immutability_message.empty())
      r.immutability_message = "the Job reported no Object Lock retention read back from the offsite store";
  }
  return r;
}

std::expected<CatalogResult, std::string> parse_catalog_result(const std::string& msg) {
  if (msg.empty()) return std::unexpected("the job wrote no result to its termination message");
  const auto j = nlohmann::json::parse(msg, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::unexpected("the job's result is not a JSON object");
  CatalogResult r;
  const auto at = j.contains("listedAt") && j["listedAt"].is_string() ? parse_rfc3339(j["listedAt"].get<std::string>())
                                                                      : std::nullopt;
  if (!at) return std::unexpected("result.listedAt: must be an RFC 3339 time");
  r.listed_at = *at;
  const auto rows = j.find("backups");
  if (rows == j.end() || !rows->is_array()) return std::unexpected("result.backups: must be an array");
  // First the names (a base may be named by its index in the array).
  std::vector<std::string> ids;
  for (const auto& row : *rows) {
    if (!row.is_array() || row.size() != 8 || !row[0].is_string())
      return std::unexpected("result.backups[" + std::to_string(ids.size()) + "]: must be [id, sha256, base, full, "
                             "finish, seconds, size, flags]");
    ids.push_back(row[0].get<std::string>());
    if (!backup_name(ids.back()))
      return std::unexpected("result.backups[" + std::to_string(ids.size() - 1) + "]: not a WAL-G backup name");
  }
  auto ref = [&](const nlohmann::json& v, std::string& out) {
    if (v.is_string() && (v.get<std::string>().empty() || backup_name(v.get<std::string>()))) {
      out = v.get<std::string>();
      return true;
    }
    if (v.is_number_unsigned() && v.get<uint64_t>() < ids.size()) {
      out = ids[v.get<size_t>()];
      return true;
    }
    return false;
  };
  for (size_t i = 0; i < rows->size(); ++i) {
    const auto& row = (*rows)[i];
    const std::string where = "result.backups[" + std::to_string(i) + "]";
    CatalogEntry e;
    e.backup_id = ids[i];
    const std::string hex = row[1].is_string() ? row[1].get<std::string>() : "";
    if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != std::string::npos)
      return std::unexpected(where + ": the checksum must be 64 lower-case hex digits");
    e.checksum = "sha256:" + hex;
    if (!ref(row[2], e.base) || !ref(row[3], e.full))
      return std::unexpected(where + ": base and full must be \"\", a backup name or an index into backups");
    e.type = e.base.empty() ? "full" : "delta";
    if (e.type == "delta" && e.full.empty()) e.full = e.base;
    if (!row[4].is_number_integer() || !row[5].is_number_integer() || !row[6].is_number_integer() ||
        !row[7].is_number_integer() || row[4].get<int64_t>() < 0 || row[5].get<int64_t>() < 0 ||
        row[6].get<int64_t>() < 0)
      return std::unexpected(where + ": finish, seconds, size and flags must be non-negative integers");
    e.finish = std::chrono::system_clock::time_point(std::chrono::seconds(row[4].get<int64_t>()));
    e.start = e.finish - std::chrono::seconds(row[5].get<int64_t>());
    e.size_bytes = row[6].get<int64_t>();
    const int64_t flags = row[7].get<int64_t>();
    e.restorable = (flags & kCatalogRestorable) != 0;
    e.verified = (flags & kCatalogVerified) != 0;
    r.entries.push_back(std::move(e));
  }
  const auto listed = j.find("listed");
  r.listed = listed != j.end() && listed->is_number_integer() ? listed->get<int>() : static_cast<int>(r.entries.size());
  if (r.listed < static_cast<int>(r.entries.size())) return std::unexpected("result.listed: fewer than the backups reported");
  return r;
}

}  // namespace bo::api
