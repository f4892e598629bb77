#include "jobs/verify_checks.h"

#include <date/date.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "common/timefmt.h"
#include "postgres/archiving.h"

namespace bo::jobs {
namespace {

using json = nlohmann::json;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
  return s.substr(i);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// Settings a restored postgresql.auto.conf may carry that must not survive
// into the scratch instance: recovery and replication (PostgreSQL 15 names).
const std::set<std::string>& recovery_keys() {
  static const std::set<std::string> keys = {
      "restore_command",        "archive_cleanup_command", "recovery_end_command",     "recovery_target",
      "recovery_target_name",   "recovery_target_time",    "recovery_target_xid",      "recovery_target_lsn",
      "recovery_target_inclusive", "recovery_target_timeline", "recovery_target_action", "primary_conninfo",
      "primary_slot_name",      "promote_trigger_file"};
  return keys;
}

std::string pg_time(std::chrono::system_clock::time_point t) {
  // PostgreSQL refuses RFC 3339's "T…Z" in recovery_target_time: its own spelling.
  return date::format("%F %T", std::chrono::floor<std::chrono::microseconds>(t)) + "+00";
}

}  // namespace

std::expected<VerifyProfile, std::string> parse_verify_profile(const std::string& text) {
  if (text.empty()) return VerifyProfile::kNone;
  if (text == "supabase-self-hosted") return VerifyProfile::kSupabaseSelfHosted;
  return std::unexpected("VERIFY_PROFILE: unknown profile \"" + cap_text(text, 64) +
                         "\" (supported: supabase-self-hosted, or empty for the checks every verification has)");
}

std::vector<std::string> builtin_check_names(VerifyProfile profile) {
  std::vector<std::string> names = {kCheckRecovered, kCheckRecoveryTarget, kCheckSystemIdentifier};
  if (profile == VerifyProfile::kSupabaseSelfHosted) names.push_back(kCheckSupabaseSchemas);
  return names;
}

const std::vector<std::string>& supabase_schemas() {
  static const std::vector<std::string> s = {"auth", "storage"};
  return s;
}

const std::vector<std::string>& supabase_tables() {
  static const std::vector<std::string> t = {"auth.users", "storage.buckets", "storage.objects"};
  return t;
}

std::expected<std::vector<SqlCheck>, std::string> parse_sql_checks(const std::string& text) {
  std::vector<SqlCheck> checks;
  if (trim(text).empty()) return checks;
  json parsed;
  try {
    parsed = json::parse(text);
  } catch (const json::exception& e) {
    return std::unexpected(std::string("VERIFY_CHECKS: not JSON (") + e.what() + ")");
  }
  if (!parsed.is_array()) return std::unexpected("VERIFY_CHECKS: must be a JSON array of checks");
  if (parsed.size() > kMaxUserChecks)
    return std::unexpected("VERIFY_CHECKS: at most " + std::to_string(kMaxUserChecks) + " checks (got " +
                           std::to_string(parsed.size()) + ")");
  std::set<std::string> names;
  for (const auto& n : builtin_check_names(VerifyProfile::kSupabaseSelfHosted)) names.insert(n);
  const std::set<std::string> builtin = names;
  for (size_t i = 0; i < parsed.size(); ++i) {
    const std::string at = "VERIFY_CHECKS[" + std::to_string(i) + "]";
    const json& c = parsed[i];
    if (!c.is_object()) return std::unexpected(at + ": must be an object with name and sql");
    for (const auto& [key, value] : c.items())
      if (key != "name" && key != "sql" && key != "expect" && key != "timeoutSeconds")
        return std::unexpected(at + "." + cap_text(key, 64) + ": unknown field (known: name, sql, expect, timeoutSeconds)");
    SqlCheck check;
    if (!c.contains("name") || !c["name"].is_string() || c["name"].get<std::string>().empty())
      return std::unexpected(at + ".name: a non-empty string is required");
    check.name = c["name"].get<std::string>();
    if (check.name.size() > kMaxCheckNameLength)
      return std::unexpected(at + ".name: at most " + std::to_string(kMaxCheckNameLength) + " characters");
    if (std::any_of(check.name.begin(), check.name.end(), [](unsigned char ch) { return ch < 0x20 || ch == 0x7f; }))
      return std::unexpected(at + ".name: must not contain control characters");
    if (builtin.count(check.name)) return std::unexpected(at + ".name: \"" + check.name + "\" is a built-in check's name");
    if (!names.insert(check.name).second) return std::unexpected(at + ".name: \"" + check.name + "\" is used twice");
    if (!c.contains("sql") || !c["sql"].is_string() || trim(c["sql"].get<std::string>()).empty())
      return std::unexpected(at + ".sql: a non-empty string is required");
    check.sql = c["sql"].get<std::string>();
    if (c.contains("expect") && !c["expect"].is_null()) {
      if (!c["expect"].is_string())
        return std::unexpected(at + ".expect: must be a string (the first column of the first row, as text)");
      check.expect = c["expect"].get<std::string>();
    }
    if (c.contains("timeoutSeconds") && !c["timeoutSeconds"].is_null()) {
      const json& t = c["timeoutSeconds"];
      if (!t.is_number_integer() || t.get<int64_t>() < 1 || t.get<int64_t>() > kMaxCheckTimeoutSeconds)
        return std::unexpected(at + ".timeoutSeconds: must be an integer from 1 to " +
                               std::to_string(kMaxCheckTimeoutSeconds));
      check.timeout_seconds = static_cast<int>(t.get<int64_t>());
    }
    checks.push_back(std::move(check));
  }
  return checks;
}

CheckResult judge_sql_check(const SqlCheck& check, const SqlOutcome& outcome) {
  CheckResult r;
  r.name = check.name;
  if (!outcome.error.empty()) {
    r.output = trim(outcome.error);
    return r;
  }
  const std::string shown = !outcome.has_row ? "(no rows)" : outcome.is_null ? "NULL" : outcome.value;
  if (!check.expect) {
    r.passed = true;
    r.output = shown;
    return r;
  }
  r.passed = outcome.has_row && !outcome.is_null && outcome.value == *check.expect;
  r.output = r.passed ? shown : shown + " (expected " + *check.expect + ")";
  return r;
}

std::expected<StopSentinel, std::string> parse_stop_sentinel(const std::string& text) {
  const json stop = json::parse(text, nullptr, false);
  if (!stop.is_object()) return std::unexpected("the stop sentinel is not a JSON object");
  StopSentinel s;
  const auto lsn = [&](const char* key) -> uint64_t {
    const json v = stop.value(key, json());
    return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0) ? v.get<uint64_t>() : 0;
  };
  s.start_lsn = lsn("LSN");
  s.finish_lsn = lsn("FinishLSN");
  if (s.finish_lsn == 0 || s.finish_lsn < s.start_lsn)
    return std::unexpected("the stop sentinel has no FinishLSN, so the end of the backup is unknown");
  const json tl = stop.value("Timeline", json());
  s.timeline = tl.is_number_unsigned() ? tl.get<uint32_t>() : 0;
  const json id = stop.value("SystemIdentifier", json());
  if (id.is_number_unsigned() || (id.is_number_integer() && id.get<int64_t>() >= 0))
    s.system_identifier = std::to_string(id.get<uint64_t>());
  return s;
}

CheckResult judge_recovered(bool in_recovery, const std::string& write_error) {
  CheckResult r;
  r.name = kCheckRecovered;
  if (in_recovery) {
    r.output = "the server is still in recovery (pg_is_in_recovery() = true)";
  } else if (!write_error.empty()) {
    r.output = "out of recovery, but a write into a temporary table failed: " + trim(write_error);
  } else {
    r.passed = true;
    r.output = "out of recovery; a write into a temporary table succeeded";
  }
  return r;
}

CheckResult judge_recovery_target(const RecoveryTarget& target, const ReplayState& state) {
  CheckResult r;
  r.name = kCheckRecoveryTarget;
  const std::string end = postgres::format_lsn(target.finish_lsn);
  if (!state.replay_lsn) {
    r.output = "the server reports no replayed WAL (pg_last_wal_replay_lsn() is NULL); the backup ends at " + end;
    return r;
  }
  const std::string replayed = postgres::format_lsn(*state.replay_lsn);
  if (*state.replay_lsn < target.finish_lsn) {
    r.output = "replayed to " + replayed + ", before the end of the backup at " + end + ": the copy is not consistent";
    return r;
  }
  if (!target.point_in_time) {
    r.passed = true;
    r.output = "replayed to " + replayed + ", at or past the end of the backup at " + end;
    return r;
  }
  std::string stop_line;
  std::istringstream lines(state.server_log);
  for (std::string line; std::getline(lines, line);)
    if (const auto at = line.find("recovery stopping "); at != std::string::npos) stop_line = line.substr(at);
  const std::string wanted = format_rfc3339_micro(*target.point_in_time);
  const std::string last = state.last_commit ? format_rfc3339_micro(*state.last_commit) : "none";
  std::string facts = "replayed to " + replayed + " (backup ends at " + end + "); last replayed commit " + last +
                      ", target " + wanted;
  if (!stop_line.empty()) facts += "; " + trim(stop_line);
  if (state.last_commit && *state.last_commit > *target.point_in_time) {
    r.output = "a commit after the target was replayed: " + facts;
    return r;
  }
  r.passed = true;
  r.output = facts;
  return r;
}

CheckResult judge_system_identifier(const std::string& sentinel_id, const std::string& restored_id) {
  CheckResult r;
  r.name = kCheckSystemIdentifier;
  if (sentinel_id.empty()) {
    r.output = "the stop sentinel records no SystemIdentifier, so the restored cluster (" +
               (restored_id.empty() ? std::string("unknown") : restored_id) + ") cannot be matched to it";
  } else if (restored_id.empty()) {
    r.output = "the restored server did not report its system_identifier (the backup's is " + sentinel_id + ")";
  } else if (restored_id != sentinel_id) {
    r.output = "restored system_identifier " + restored_id + " differs from the backup's " + sentinel_id;
  } else {
    r.passed = true;
    r.output = "system_identifier " + restored_id + " as recorded in the backup";
  }
  return r;
}

CheckResult judge_supabase_schemas(const std::vector<std::string>& present_schemas, const std::vector<TableCount>& counts) {
  CheckResult r;
  r.name = kCheckSupabaseSchemas;
  std::vector<std::string> missing;
  for (const auto& s : supabase_schemas())
    if (std::find(present_schemas.begin(), present_schemas.end(), s) == present_schemas.end()) missing.push_back(s);
  std::string counted, failed;
  for (const auto& want : supabase_tables()) {
    const auto it = std::find_if(counts.begin(), counts.end(), [&](const TableCount& c) { return c.table == want; });
    if (it == counts.end() || !it->count) {
      const std::string why = it == counts.end() ? "not counted" : trim(it->error);
      failed += (failed.empty() ? "" : "; ") + want + ": " + (why.empty() ? "not counted" : why);
    } else {
      counted += (counted.empty() ? "" : ", ") + want + "=" + std::to_string(*it->count);
    }
  }
  std::string out;
  if (!missing.empty()) {
    out = "missing schema(s): ";
    for (size_t i = 0; i < missing.size(); ++i) out += (i ? ", " : "") + missing[i];
  }
  if (!failed.empty()) out += (out.empty() ? "" : "; ") + std::string("unreadable: ") + failed;
  r.passed = out.empty();
  if (!counted.empty()) out += (out.empty() ? "" : "; ") + counted;
  r.output = out;
  return r;
}

std::string conf_quote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'') out += "''";
    else out += c;
  }
  return out + "'";
}

std::string recovery_auto_conf(const std::string& restored_auto_conf, const std::string& restore_command,
                               std::optional<std::chrono::system_clock::time_point> point_in_time) {
  std::string out;
  std::istringstream lines(restored_auto_conf);
  for (std::string line; std::getline(lines, line);) {
    const std::string t = trim(line);
    const size_t key_end = t.find_first_of(" \t=");
    const std::string key = lower(t.substr(0, key_end));
    if (!t.empty() && t[0] != '#' && recovery_keys().count(key)) {
      out += "# (run-job verify) " + line + "\n";
      continue;
    }
    out += line + "\n";
  }
  out += "# run-job verify: recovery of the scratch instance\n";
  out += "restore_command = " + conf_quote(restore_command) + "\n";
  if (point_in_time) out += "recovery_target_time = " + conf_quote(pg_time(*point_in_time)) + "\n";
  else out += "recovery_target = 'immediate'\n";
  out += "recovery_target_action = 'promote'\n";
  return out;
}

bool all_passed(const VerifyResult& result) {
  if (!result.error.empty() || result.checks.empty()) return false;
  return std::all_of(result.checks.begin(), result.checks.end(), [](const CheckResult& c) { return c.passed; });
}

std::string cap_text(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  static const std::string kEllipsis = "…";
  if (max_bytes < kEllipsis.size()) return "";
  size_t cut = max_bytes - kEllipsis.size();
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
  return text.substr(0, cut) + kEllipsis;
}

namespace {

// A long error keeps its first line's head (what failed) and the end (the log's tail).
std::string cap_error(const std::string& error, size_t max_bytes) {
  if (error.size() <= max_bytes) return error;
  const size_t head = std::min<size_t>(max_bytes / 3, 400);
  std::string first = cap_text(error, head);
  size_t from = error.size() - (max_bytes - first.size());
  while (from < error.size() && (static_cast<unsigned char>(error[from]) & 0xC0) == 0x80) ++from;
  return first + error.substr(from);
}

json to_json(const VerifyResult& r, const std::vector<CheckResult>& checks, size_t output_cap, size_t error_cap,
             size_t omitted) {
  json j{{"restored", r.restored}, {"recovered", r.recovered}};
  if (!r.checksum.empty()) j["checksum"] = r.checksum;
  if (r.recovery_seconds) j["recoverySeconds"] = std::round(*r.recovery_seconds * 1000) / 1000;
  if (!r.system_identifier.empty()) j["systemIdentifier"] = r.system_identifier;
  if (!r.replay_lsn.empty()) j["replayLsn"] = r.replay_lsn;
  json list = json::array();
  for (const auto& c : checks)
    list.push_back({{"name", c.name}, {"passed", c.passed}, {"ms", c.ms}, {"output", cap_text(c.output, output_cap)}});
  j["checks"] = list;
  if (omitted > 0) j["checksOmitted"] = omitted;
  if (!r.error.empty()) j["error"] = cap_error(r.error, error_cap);
  if (r.aside) j["aside"] = *r.aside;
  if (r.discarded) j["discarded"] = *r.discarded;
  return j;
}

}  // namespace

std::string result_json(const VerifyResult& result, size_t limit) {
  size_t longest = 0;
  for (const auto& c : result.checks) longest = std::max(longest, c.output.size());
  for (size_t error_cap : {size_t{1500}, size_t{300}}) {
    std::string text = dump(to_json(result, result.checks, longest, error_cap, 0));
    if (text.size() <= limit) return text;
    // The largest common output length that fits.
    size_t lo = 0, hi = longest;
    if (dump(to_json(result, result.checks, 0, error_cap, 0)).size() > limit) continue;
    while (lo < hi) {
      const size_t mid = (lo + hi + 1) / 2;
      if (dump(to_json(result, result.checks, mid, error_cap, 0)).size() <= limit) lo = mid;
      else hi = mid - 1;
    }
    return dump(to_json(result, result.checks, lo, error_cap, 0));
  }
  // Not even the verdicts fit: leave out passed checks (then any) from the end, keeping failures.
  std::vector<CheckResult> kept = result.checks;
  size_t omitted = 0;
  const auto fits = [&] { return dump(to_json(result, kept, 0, 300, omitted)).size() <= limit; };
  for (size_t i = kept.size(); i-- > 0 && !fits();) {
    if (kept[i].passed) {
      kept.erase(kept.begin() + static_cast<std::ptrdiff_t>(i));
      ++omitted;
    }
  }
  while (!kept.empty() && !fits()) {
    kept.pop_back();
    ++omitted;
  }
  return dump(to_json(result, kept, 0, 300, omitted));
}

}  // namespace bo::jobs
