#include "api/job_result.h"

#include <nlohmann/json.hpp>

#include "common/timefmt.h"

namespace bo::api {

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
  if (r.backup_id.empty() || r.backup_id.size() > 256 ||
      r.backup_id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") != std::string::npos)
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
  return r;
}

}  // namespace bo::api
