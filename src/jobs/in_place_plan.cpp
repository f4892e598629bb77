#include "jobs/in_place_plan.h"

#include <charconv>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <vector>

namespace bo::jobs {
namespace {

using json = nlohmann::json;

std::string in_quotes(const std::string& text) { return "\"" + cap_text(text, 200) + "\""; }

// The components of a path ("" and "." dropped), or an error naming `var`.
std::expected<std::vector<std::string>, std::string> components(const std::string& var, const std::string& text) {
  std::vector<std::string> parts;
  for (unsigned char c : text)
    if (c < 0x20 || c == 0x7f) return std::unexpected(var + ": must not contain control characters");
  size_t from = 0;
  while (from <= text.size()) {
    const size_t to = std::min(text.find('/', from), text.size());
    const std::string part = text.substr(from, to - from);
    if (part == "..") return std::unexpected(var + ": must not contain \"..\" (got " + in_quotes(text) + ")");
    if (!part.empty() && part != ".") parts.push_back(part);
    from = to + 1;
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

std::expected<std::string, std::string> relative_path(const Env& env, const std::string& var) {
  const std::string text = env_value(env, var);
  if (!text.empty() && text.front() == '/')
    return std::unexpected(var + ": must be relative to RESTORE_VOLUME, not absolute (got " + in_quotes(text) + ")");
  auto parts = components(var, text);
  if (!parts) return std::unexpected(parts.error());
  if (!parts->empty() && (parts->front() == kRestoreMarker || parts->front() == kRootRestoreLog ||
                          parts->front() == kFetchStaging || parts->front() == kRestoreMarker + std::string(".tmp")))
    return std::unexpected(var + ": " + in_quotes(parts->front()) + " is a file of backup-operator's own");
  return join(*parts);
}

bool inside(const std::string& path, const std::string& dir) {
  return path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/';
}

InPlaceDecision refuse(std::string reason, std::string message) {
  InPlaceDecision d;
  d.step = InPlaceStep::kRefuse;
  d.reason = std::move(reason);
  d.message = std::move(message);
  return d;
}

std::string where(const InPlacePaths& p) {
  return p.data_path.empty() ? "the volume root " + p.volume : p.volume + "/" + p.data_path;
}

// What to do when no unfinished attempt is recorded.
InPlaceDecision decide_fresh(const InPlacePaths& paths, const CurrentData& current, std::string note) {
  InPlaceDecision d;
  d.note = std::move(note);
  if (current.empty) {
    d.step = InPlaceStep::kNothingToMove;
    return d;
  }
  if (paths.data_path.empty()) {
    if (paths.discard) {
      d.step = InPlaceStep::kDiscard;
      d.discarded = true;
      return d;
    }
    return refuse("DataDirectoryIsVolumeRoot",
                  "the data directory is the volume root " + paths.volume +
                      ", so there is nowhere on the volume to move it aside; set spec.discardCurrentData: true to "
                      "delete its contents (all but lost+found) instead");
  }
  const auto needed = bytes_needed(paths.uncompressed_bytes);
  const bool room = !needed || current.free_bytes >= *needed;
  if (room) {
    if (current.aside_exists)
      return refuse("AsideExists", paths.volume + "/" + paths.aside_path +
                                       " already exists; an aside copy is never overwritten: move or delete it");
    d.step = InPlaceStep::kMoveAside;
    d.aside = paths.aside_path;
    if (!needed)
      d.note += (d.note.empty() ? "" : "; ") +
                std::string("the backup's size is unknown (UNCOMPRESSED_BYTES), so there is assumed to be room for it "
                            "beside the aside copy (") +
                std::to_string(current.free_bytes) + " bytes free)";
    return d;
  }
  if (paths.discard) {
    d.step = InPlaceStep::kDiscard;
    d.discarded = true;
    d.note += (d.note.empty() ? "" : "; ") + std::string("no room to keep the current data beside the restore (") +
              std::to_string(current.free_bytes) + " bytes free, " + std::to_string(*needed) +
              " needed): deleting it as spec.discardCurrentData says";
    return d;
  }
  return refuse("NoRoom", "the volume has " + std::to_string(current.free_bytes) + " bytes free but the restore needs " +
                              std::to_string(*needed) + " (the backup's " + std::to_string(paths.uncompressed_bytes) +
                              " bytes + 10 % + 64 MiB) beside the current data; set spec.discardCurrentData: true "
                              "to delete the current data instead of moving it aside");
}

}  // namespace

std::expected<InPlacePaths, std::string> parse_in_place_paths(const Env& env) {
  InPlacePaths p;
  const std::string volume = env_value(env, "RESTORE_VOLUME");
  if (volume.empty() || volume.front() != '/')
    return std::unexpected("RESTORE_VOLUME: must be the absolute path where the database's claim is mounted (got " +
                           in_quotes(volume) + ")");
  auto vparts = components("RESTORE_VOLUME", volume);
  if (!vparts) return std::unexpected(vparts.error());
  if (vparts->empty()) return std::unexpected("RESTORE_VOLUME: must be the claim's mount point, not /");
  p.volume = "/" + join(*vparts);

  auto data = relative_path(env, "DATA_PATH");
  if (!data) return std::unexpected(data.error());
  p.data_path = *data;
  auto aside = relative_path(env, "ASIDE_PATH");
  if (!aside) return std::unexpected(aside.error());
  p.aside_path = *aside;
  if (!p.data_path.empty()) {
    if (p.aside_path.empty())
      return std::unexpected("ASIDE_PATH: is required: where on the volume the current data directory is moved");
    if (p.aside_path == p.data_path) return std::unexpected("ASIDE_PATH: must not be DATA_PATH (" + in_quotes(p.data_path) + ")");
    if (inside(p.aside_path, p.data_path))
      return std::unexpected("ASIDE_PATH: must not be inside DATA_PATH (" + in_quotes(p.aside_path) + " is inside " +
                             in_quotes(p.data_path) + ")");
    if (inside(p.data_path, p.aside_path))
      return std::unexpected("ASIDE_PATH: must not contain DATA_PATH (" + in_quotes(p.data_path) + " is inside " +
                             in_quotes(p.aside_path) + ")");
  }

  const std::string discard = env_value(env, "DISCARD_CURRENT_DATA", "false");
  if (discard != "true" && discard != "false")
    return std::unexpected("DISCARD_CURRENT_DATA: must be \"true\" or \"false\" (got " + in_quotes(discard) + ")");
  p.discard = discard == "true";

  const std::string size = env_value(env, "UNCOMPRESSED_BYTES", "0");
  const auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), p.uncompressed_bytes);
  if (ec != std::errc() || end != size.data() + size.size() || size.front() == '-' || size.front() == '+')
    return std::unexpected("UNCOMPRESSED_BYTES: must be a number of bytes (\"0\": unknown) (got " + in_quotes(size) + ")");

  p.request = env_value(env, "RESTORE_REQUEST");
  if (p.request.empty())
    return std::unexpected("RESTORE_REQUEST: is required (namespace/name): it keys the marker that makes a re-run safe");
  return p;
}

std::string data_dir_of(const InPlacePaths& p) { return p.data_path.empty() ? p.volume : p.volume + "/" + p.data_path; }
std::string aside_dir_of(const InPlacePaths& p) { return p.aside_path.empty() ? "" : p.volume + "/" + p.aside_path; }
std::string restore_log_of(const InPlacePaths& p) {
  return p.data_path.empty() ? p.volume + "/" + kRootRestoreLog : p.volume + "/" + p.data_path + ".restore.log";
}
std::string marker_of(const InPlacePaths& p) { return p.volume + "/" + kRestoreMarker; }

bool kept_at_root(const std::string& name) {
  return name == kLostAndFound || name == kRestoreMarker || name == std::string(kRestoreMarker) + ".tmp" ||
         name == kRootRestoreLog;
}

std::optional<uint64_t> bytes_needed(uint64_t uncompressed) {
  if (uncompressed == 0) return std::nullopt;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  const uint64_t tenth = uncompressed / 10 + (uncompressed % 10 != 0);  // rounded up
  if (uncompressed > kMax - tenth || uncompressed + tenth > kMax - kRoomMarginBytes) return kMax;
  return uncompressed + tenth + kRoomMarginBytes;
}

std::string marker_state_name(MarkerState s) {
  switch (s) {
    case MarkerState::kMoving: return "moving";
    case MarkerState::kDiscarding: return "discarding";
    case MarkerState::kRestoring: return "restoring";
    case MarkerState::kDone: return "done";
  }
  return "restoring";
}

std::string marker_json(const RestoreMarker& m) {
  json j{{"version", 1},          {"state", marker_state_name(m.state)}, {"request", m.request},
         {"backupId", m.backup_id}, {"dataPath", m.data_path},             {"aside", m.aside},
         {"discarded", m.discarded}};
  if (!m.result.empty()) j["result"] = m.result;
  return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

std::expected<RestoreMarker, std::string> parse_restore_marker(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return std::unexpected("not a JSON object");
  if (j.value("version", json()) != 1) return std::unexpected("unknown version (this run-job writes version 1)");
  const auto str = [&](const char* key, bool required, std::string& out) -> bool {
    const json v = j.value(key, json());
    if (v.is_null() && !required) return true;
    if (!v.is_string() || (required && v.get<std::string>().empty())) return false;
    out = v.get<std::string>();
    return true;
  };
  RestoreMarker m;
  std::string state;
  if (!str("state", true, state)) return std::unexpected("state: a string is required");
  if (state == "moving") m.state = MarkerState::kMoving;
  else if (state == "discarding") m.state = MarkerState::kDiscarding;
  else if (state == "restoring") m.state = MarkerState::kRestoring;
  else if (state == "done") m.state = MarkerState::kDone;
  else return std::unexpected("state: unknown state " + in_quotes(state));
  if (!str("request", true, m.request)) return std::unexpected("request: a non-empty string is required");
  if (!str("backupId", true, m.backup_id)) return std::unexpected("backupId: a non-empty string is required");
  if (!str("dataPath", false, m.data_path)) return std::unexpected("dataPath: must be a string");
  if (!str("aside", false, m.aside)) return std::unexpected("aside: must be a string");
  if (!str("result", false, m.result)) return std::unexpected("result: must be a string");
  const json discarded = j.value("discarded", json(false));
  if (!discarded.is_boolean()) return std::unexpected("discarded: must be true or false");
  m.discarded = discarded.get<bool>();
  if (m.state == MarkerState::kMoving && m.aside.empty()) return std::unexpected("aside: a move needs the aside path");
  return m;
}

InPlaceDecision decide_in_place(const InPlacePaths& paths, const std::string& backup_id,
                                const std::optional<RestoreMarker>& marker, const CurrentData& current) {
  if (!marker) return decide_fresh(paths, current, "");
  const RestoreMarker& m = *marker;
  const std::string earlier = "request " + m.request + " (backup " + m.backup_id + ")";
  if (m.state == MarkerState::kDone) {
    if (m.request == paths.request && m.backup_id == backup_id && m.data_path == paths.data_path) {
      InPlaceDecision d;
      d.step = InPlaceStep::kReportDone;
      d.aside = m.aside;
      d.discarded = m.discarded;
      d.note = "this request already restored " + backup_id + " into " + where(paths) + "; reporting that again";
      return d;
    }
    // A finished restore of another request: the data directory is live data again.
    return decide_fresh(paths, current, "the marker records a finished restore of " + earlier + "; this is a new one");
  }
  if (m.data_path != paths.data_path)
    return refuse("UnfinishedRestore",
                  "the marker " + marker_of(paths) + " records an unfinished restore of " + earlier + " into " +
                      (m.data_path.empty() ? "the volume root" : paths.volume + "/" + m.data_path) +
                      ", not into DATA_PATH " + in_quotes(paths.data_path) + "; finish or undo that one first");
  const std::string before = m.discarded ? std::string("the data from before it was discarded")
                             : m.aside.empty() ? std::string("there was no data before it")
                                               : "the data from before it is at " + paths.volume + "/" + m.aside;
  if (m.state == MarkerState::kMoving) {
    if (!current.marker_aside_exists)
      return decide_fresh(paths, current,
                          "an earlier attempt of " + earlier + " stopped before it moved the data directory: nothing changed");
    if (!current.empty)
      return refuse("UnfinishedRestore",
                    "an earlier attempt of " + earlier + " was moving " + where(paths) + " to " + paths.volume + "/" +
                        m.aside + ", but both hold data now; refusing to guess which is the database: inspect both, "
                        "keep the right one and delete " + marker_of(paths));
  }
  InPlaceDecision d;
  d.step = InPlaceStep::kResume;
  d.aside = m.aside;
  d.discarded = m.discarded || m.state == MarkerState::kDiscarding;
  d.note = "an earlier attempt of " + earlier + " left a partial restore in " + where(paths) + " (" +
           marker_state_name(m.state) + "); clearing it and restoring again; " + before;
  return d;
}

std::string history_file_name(uint32_t timeline) {
  char name[32];
  std::snprintf(name, sizeof name, "%08X.history", timeline);
  return name;
}

CheckResult judge_serving(bool in_recovery, const std::string& error) {
  CheckResult r;
  r.name = kCheckRecovered;
  if (!error.empty()) r.output = error;
  else if (in_recovery) r.output = "the server is in recovery (pg_is_in_recovery() = true)";
  else {
    r.passed = true;
    r.output = "out of recovery (pg_is_in_recovery() = false); nothing was written to prove it";
  }
  return r;
}

CheckResult judge_expected_system_identifier(const std::string& expected, const std::string& actual) {
  CheckResult r;
  r.name = kCheckSystemIdentifier;
  const std::string shown = actual.empty() ? std::string("unknown") : actual;
  if (expected.empty()) {
    r.output = "EXPECT_SYSTEM_IDENTIFIER is empty, so the server's system_identifier (" + shown +
               ") could not be compared with the restored cluster's";
  } else if (actual.empty()) {
    r.output = "the server did not report its system_identifier (the restored cluster's is " + expected + ")";
  } else if (actual != expected) {
    r.output = "the server's system_identifier " + actual + " differs from the restored cluster's " + expected +
               ": it is not the restored database";
  } else {
    r.passed = true;
    r.output = "system_identifier " + actual + ", as the restore reported";
  }
  return r;
}

}  // namespace bo::jobs
