// The pure part of `run-job restore-in-place` and `run-job check-database`
// (src/jobs/in_place_plan.h): the volume's paths, the move/discard/refuse
// table with the marker's states, the marker's format, and the production
// checks' verdicts. NoRoom is decided here: a real volume that is full at
// the right moment is not something a test can arrange reliably, so the
// table's room column is tested with the free bytes given.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <limits>

#include "jobs/in_place_plan.h"

using namespace bo::jobs;
using nlohmann::json;

namespace {

Env base_env() {
  return {{"RESTORE_VOLUME", "/var/lib/postgresql/data"},
          {"DATA_PATH", "pgdata"},
          {"ASIDE_PATH", "pgdata.before-restore-1"},
          {"RESTORE_REQUEST", "supabase/restore-1"}};
}

std::expected<InPlacePaths, std::string> parse_with(std::initializer_list<std::pair<const std::string, std::string>> changes) {
  Env env = base_env();
  for (const auto& [k, v] : changes) env[k] = v;
  return parse_in_place_paths(env);
}

void expect_error(std::initializer_list<std::pair<const std::string, std::string>> changes, const std::string& starts) {
  const auto p = parse_with(changes);
  ASSERT_FALSE(p) << "accepted: " << starts;
  EXPECT_EQ(p.error().rfind(starts, 0), 0u) << p.error();
}

// --- paths ---------------------------------------------------------------------

TEST(InPlacePaths, TheOperatorsUsualRequestParses) {
  const auto p = parse_in_place_paths(base_env());
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->volume, "/var/lib/postgresql/data");
  EXPECT_EQ(p->data_path, "pgdata");
  EXPECT_EQ(p->aside_path, "pgdata.before-restore-1");
  EXPECT_FALSE(p->discard);
  EXPECT_EQ(p->uncompressed_bytes, 0u) << "missing: unknown";
  EXPECT_EQ(p->request, "supabase/restore-1");
  EXPECT_EQ(data_dir_of(*p), "/var/lib/postgresql/data/pgdata");
  EXPECT_EQ(aside_dir_of(*p), "/var/lib/postgresql/data/pgdata.before-restore-1");
  EXPECT_EQ(restore_log_of(*p), "/var/lib/postgresql/data/pgdata.restore.log");
  EXPECT_EQ(marker_of(*p), "/var/lib/postgresql/data/.backup-operator-restore.json");
}

TEST(InPlacePaths, PathsAreNormalized) {
  const auto p = parse_with({{"RESTORE_VOLUME", "/mnt//claim/"}, {"DATA_PATH", "./db/./pgdata/"}, {"ASIDE_PATH", "old//pgdata"}});
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(p->volume, "/mnt/claim");
  EXPECT_EQ(p->data_path, "db/pgdata");
  EXPECT_EQ(p->aside_path, "old/pgdata");
  EXPECT_EQ(restore_log_of(*p), "/mnt/claim/db/pgdata.restore.log");
}

TEST(InPlacePaths, AnEmptyOrDotDataPathIsTheVolumeRootWhoseLogIsHidden) {
  for (const char* root : {"", ".", "./"}) {
    const auto p = parse_with({{"DATA_PATH", root}, {"ASIDE_PATH", ""}});
    ASSERT_TRUE(p) << root << ": " << p.error();
    EXPECT_EQ(p->data_path, "");
    EXPECT_EQ(data_dir_of(*p), "/var/lib/postgresql/data");
    EXPECT_EQ(restore_log_of(*p), "/var/lib/postgresql/data/.backup-operator-restore.log");
  }
  // Nothing can be moved aside from the root: ASIDE_PATH is only checked for its form then.
  const auto with_aside = parse_with({{"DATA_PATH", ""}, {"ASIDE_PATH", "pgdata.before-x"}});
  ASSERT_TRUE(with_aside) << with_aside.error();
  expect_error({{"DATA_PATH", ""}, {"ASIDE_PATH", "../x"}}, "ASIDE_PATH: must not contain \"..\"");
}

TEST(InPlacePaths, EachBadValueIsRefusedNamingItsVariable) {
  expect_error({{"RESTORE_VOLUME", ""}}, "RESTORE_VOLUME: must be the absolute path");
  expect_error({{"RESTORE_VOLUME", "data"}}, "RESTORE_VOLUME: must be the absolute path");
  expect_error({{"RESTORE_VOLUME", "/"}}, "RESTORE_VOLUME: must be the claim's mount point, not /");
  expect_error({{"RESTORE_VOLUME", "/mnt/../etc"}}, "RESTORE_VOLUME: must not contain \"..\"");
  expect_error({{"DATA_PATH", "/var/lib/postgresql/data/pgdata"}}, "DATA_PATH: must be relative to RESTORE_VOLUME");
  expect_error({{"DATA_PATH", "../pgdata"}}, "DATA_PATH: must not contain \"..\"");
  expect_error({{"DATA_PATH", "a/../../b"}}, "DATA_PATH: must not contain \"..\"");
  expect_error({{"DATA_PATH", "pg\ndata"}}, "DATA_PATH: must not contain control characters");
  expect_error({{"DATA_PATH", ".backup-operator-restore.json"}}, "DATA_PATH: \".backup-operator-restore.json\" is a file of backup-operator's own");
  expect_error({{"ASIDE_PATH", ""}}, "ASIDE_PATH: is required");
  expect_error({{"ASIDE_PATH", "/tmp/aside"}}, "ASIDE_PATH: must be relative to RESTORE_VOLUME");
  expect_error({{"ASIDE_PATH", "x/../../aside"}}, "ASIDE_PATH: must not contain \"..\"");
  expect_error({{"ASIDE_PATH", "./pgdata/"}}, "ASIDE_PATH: must not be DATA_PATH");
  expect_error({{"ASIDE_PATH", "pgdata/old"}}, "ASIDE_PATH: must not be inside DATA_PATH");
  expect_error({{"DATA_PATH", "db/pgdata"}, {"ASIDE_PATH", "db"}}, "ASIDE_PATH: must not contain DATA_PATH");
  expect_error({{"ASIDE_PATH", ".backup-operator-fetch"}}, "ASIDE_PATH: \".backup-operator-fetch\" is a file of backup-operator's own");
  expect_error({{"DISCARD_CURRENT_DATA", "yes"}}, "DISCARD_CURRENT_DATA: must be \"true\" or \"false\"");
  expect_error({{"DISCARD_CURRENT_DATA", "True"}}, "DISCARD_CURRENT_DATA: must be \"true\" or \"false\"");
  expect_error({{"UNCOMPRESSED_BYTES", "-1"}}, "UNCOMPRESSED_BYTES: must be a number of bytes");
  expect_error({{"UNCOMPRESSED_BYTES", "+1"}}, "UNCOMPRESSED_BYTES: must be a number of bytes");
  expect_error({{"UNCOMPRESSED_BYTES", "12k"}}, "UNCOMPRESSED_BYTES: must be a number of bytes");
  expect_error({{"UNCOMPRESSED_BYTES", "99999999999999999999999"}}, "UNCOMPRESSED_BYTES: must be a number of bytes");
  expect_error({{"RESTORE_REQUEST", ""}}, "RESTORE_REQUEST: is required");
}

TEST(InPlacePaths, DiscardAndSizeAreRead) {
  const auto p = parse_with({{"DISCARD_CURRENT_DATA", "true"}, {"UNCOMPRESSED_BYTES", "18446744073709551615"}});
  ASSERT_TRUE(p) << p.error();
  EXPECT_TRUE(p->discard);
  EXPECT_EQ(p->uncompressed_bytes, std::numeric_limits<uint64_t>::max());
  const auto f = parse_with({{"DISCARD_CURRENT_DATA", "false"}, {"UNCOMPRESSED_BYTES", "0"}});
  ASSERT_TRUE(f) << f.error();
  EXPECT_FALSE(f->discard);
}

TEST(InPlacePaths, TheRootKeepsLostAndFoundAndOurOwnFilesOnly) {
  for (const char* kept : {"lost+found", ".backup-operator-restore.json", ".backup-operator-restore.json.tmp",
                           ".backup-operator-restore.log"})
    EXPECT_TRUE(kept_at_root(kept)) << kept;
  for (const char* data : {"base", "global", "pg_wal", "PG_VERSION", "postgresql.auto.conf", ".backup-operator-fetch",
                           "lost+found2"})
    EXPECT_FALSE(kept_at_root(data)) << data;
}

// --- room ------------------------------------------------------------------------

TEST(Room, TenPercentOverTheSizePlus64MiBRoundedUpAndSaturating) {
  EXPECT_FALSE(bytes_needed(0)) << "unknown size";
  EXPECT_EQ(bytes_needed(100), 110u + kRoomMarginBytes);
  EXPECT_EQ(bytes_needed(101), 101u + 11u + kRoomMarginBytes);
  EXPECT_EQ(bytes_needed(uint64_t{10} << 30), (uint64_t{11} << 30) + kRoomMarginBytes);
  EXPECT_EQ(bytes_needed(std::numeric_limits<uint64_t>::max()), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(bytes_needed(std::numeric_limits<uint64_t>::max() / 11 * 10), std::numeric_limits<uint64_t>::max());
}

// --- the marker -----------------------------------------------------------------

TEST(RestoreMarker, EveryStateRoundTrips) {
  for (auto state : {MarkerState::kMoving, MarkerState::kDiscarding, MarkerState::kRestoring, MarkerState::kDone}) {
    RestoreMarker m;
    m.state = state;
    m.request = "supabase/restore-1";
    m.backup_id = "base_000000010000000000000004";
    m.data_path = "pgdata";
    m.aside = "pgdata.before-restore-1";
    m.discarded = state == MarkerState::kDiscarding;
    m.result = state == MarkerState::kDone ? R"({"restored":"base_000000010000000000000004","checks":[]})" : "";
    const auto back = parse_restore_marker(marker_json(m));
    ASSERT_TRUE(back) << back.error() << "\n" << marker_json(m);
    EXPECT_EQ(back->state, m.state);
    EXPECT_EQ(back->request, m.request);
    EXPECT_EQ(back->backup_id, m.backup_id);
    EXPECT_EQ(back->data_path, m.data_path);
    EXPECT_EQ(back->aside, m.aside);
    EXPECT_EQ(back->discarded, m.discarded);
    EXPECT_EQ(back->result, m.result);
    EXPECT_EQ(json::parse(marker_json(m))["state"], marker_state_name(state));
  }
}

TEST(RestoreMarker, AnythingElseIsRefusedSayingWhat) {
  const auto error_of = [](const std::string& text) {
    const auto m = parse_restore_marker(text);
    return m ? std::string("accepted") : m.error();
  };
  const json good = {{"version", 1}, {"state", "restoring"}, {"request", "ns/r"}, {"backupId", "b"},
                     {"dataPath", "pgdata"}, {"aside", ""}, {"discarded", false}};
  EXPECT_EQ(error_of(good.dump()), "accepted");
  EXPECT_EQ(error_of(""), "not a JSON object");
  EXPECT_EQ(error_of("{\"version\":1,"), "not a JSON object") << "a torn write";
  EXPECT_EQ(error_of("[]"), "not a JSON object");
  auto with = [&](const char* key, json value) {
    json j = good;
    if (value.is_null()) j.erase(key);
    else j[key] = value;
    return error_of(j.dump());
  };
  EXPECT_EQ(with("version", 2), "unknown version (this run-job writes version 1)");
  EXPECT_EQ(with("state", "paused"), "state: unknown state \"paused\"");
  EXPECT_EQ(with("state", nullptr), "state: a string is required");
  EXPECT_EQ(with("request", ""), "request: a non-empty string is required");
  EXPECT_EQ(with("backupId", 7), "backupId: a non-empty string is required");
  EXPECT_EQ(with("aside", false), "aside: must be a string");
  EXPECT_EQ(with("discarded", "no"), "discarded: must be true or false");
  json moving = good;
  moving["state"] = "moving";
  EXPECT_EQ(error_of(moving.dump()), "aside: a move needs the aside path");
}

// --- the decision ---------------------------------------------------------------

constexpr uint64_t kGiB = uint64_t{1} << 30;
const std::string kBackup = "base_000000010000000000000004";

InPlacePaths paths(bool root, bool discard, uint64_t size = 10 * kGiB) {
  InPlacePaths p;
  p.volume = "/v";
  p.data_path = root ? "" : "pgdata";
  p.aside_path = root ? "" : "pgdata.before-r1";
  p.discard = discard;
  p.uncompressed_bytes = size;
  p.request = "ns/r1";
  return p;
}

CurrentData data(bool empty, bool aside_exists, uint64_t free_bytes, bool marker_aside_exists = false) {
  return CurrentData{empty, aside_exists, marker_aside_exists, free_bytes};
}

RestoreMarker marker(MarkerState state, std::string request = "ns/r1", std::string backup = kBackup,
                     std::string aside = "pgdata.before-r1", bool discarded = false, std::string data_path = "pgdata") {
  RestoreMarker m;
  m.state = state;
  m.request = std::move(request);
  m.backup_id = std::move(backup);
  m.data_path = std::move(data_path);
  m.aside = std::move(aside);
  m.discarded = discarded;
  m.result = state == MarkerState::kDone ? "{}" : "";
  return m;
}

const char* step_name(InPlaceStep s) {
  switch (s) {
    case InPlaceStep::kReportDone: return "ReportDone";
    case InPlaceStep::kResume: return "Resume";
    case InPlaceStep::kNothingToMove: return "NothingToMove";
    case InPlaceStep::kMoveAside: return "MoveAside";
    case InPlaceStep::kDiscard: return "Discard";
    case InPlaceStep::kRefuse: return "Refuse";
  }
  return "?";
}

struct Row {
  const char* name;
  bool root, discard;
  uint64_t size;  // UNCOMPRESSED_BYTES (0: unknown)
  CurrentData current;
  std::optional<RestoreMarker> marker;
  InPlaceStep step;
  std::string reason;   // kRefuse
  std::string aside;    // expected decision.aside
  bool discarded;
};

constexpr uint64_t kRoom = 12 * kGiB;  // enough for 10 GiB + 10 % + 64 MiB
constexpr uint64_t kTight = 11 * kGiB; // not enough

TEST(InPlaceDecision, TheTable) {
  const std::vector<Row> rows = {
      // No marker: the current data decides.
      {"empty dir, nothing to move", false, false, 10 * kGiB, data(true, false, 0), std::nullopt, InPlaceStep::kNothingToMove, "", "", false},
      {"empty root, nothing to move", true, false, 10 * kGiB, data(true, false, 0), std::nullopt, InPlaceStep::kNothingToMove, "", "", false},
      {"empty dir even with an aside present", false, false, 10 * kGiB, data(true, true, 0), std::nullopt, InPlaceStep::kNothingToMove, "", "", false},
      {"data with room: moved aside", false, false, 10 * kGiB, data(false, false, kRoom), std::nullopt, InPlaceStep::kMoveAside, "", "pgdata.before-r1", false},
      {"data with room and discard: still moved (room wins)", false, true, 10 * kGiB, data(false, false, kRoom), std::nullopt, InPlaceStep::kMoveAside, "", "pgdata.before-r1", false},
      {"data, unknown size: room assumed", false, false, 0, data(false, false, 1), std::nullopt, InPlaceStep::kMoveAside, "", "pgdata.before-r1", false},
      {"data with room, aside exists", false, false, 10 * kGiB, data(false, true, kRoom), std::nullopt, InPlaceStep::kRefuse, "AsideExists", "", false},
      {"data with room, aside exists, discard: still refused", false, true, 10 * kGiB, data(false, true, kRoom), std::nullopt, InPlaceStep::kRefuse, "AsideExists", "", false},
      {"data, no room", false, false, 10 * kGiB, data(false, false, kTight), std::nullopt, InPlaceStep::kRefuse, "NoRoom", "", false},
      {"data, no room, aside exists: NoRoom", false, false, 10 * kGiB, data(false, true, kTight), std::nullopt, InPlaceStep::kRefuse, "NoRoom", "", false},
      {"data, no room, discard", false, true, 10 * kGiB, data(false, false, kTight), std::nullopt, InPlaceStep::kDiscard, "", "", true},
      {"data, no room, discard, aside exists: discard", false, true, 10 * kGiB, data(false, true, kTight), std::nullopt, InPlaceStep::kDiscard, "", "", true},
      {"root with data", true, false, 10 * kGiB, data(false, false, kRoom), std::nullopt, InPlaceStep::kRefuse, "DataDirectoryIsVolumeRoot", "", false},
      {"root with data, unknown size", true, false, 0, data(false, false, kRoom), std::nullopt, InPlaceStep::kRefuse, "DataDirectoryIsVolumeRoot", "", false},
      {"root with data, discard", true, true, 10 * kGiB, data(false, false, kTight), std::nullopt, InPlaceStep::kDiscard, "", "", true},
      // A finished restore.
      {"done, same request and backup: reported again", false, false, 10 * kGiB, data(false, true, kTight), marker(MarkerState::kDone), InPlaceStep::kReportDone, "", "pgdata.before-r1", false},
      {"done, another request: the directory is live data", false, false, 10 * kGiB, data(false, false, kRoom), marker(MarkerState::kDone, "ns/r0", kBackup, "pgdata.before-r0"), InPlaceStep::kMoveAside, "", "pgdata.before-r1", false},
      {"done, another backup: the directory is live data", false, false, 10 * kGiB, data(false, true, kRoom), marker(MarkerState::kDone, "ns/r1", "base_other"), InPlaceStep::kRefuse, "AsideExists", "", false},
      // An interrupted one: the directory is a partial restore, never moved aside.
      {"restoring: resumed, aside kept", false, false, 10 * kGiB, data(false, true, kTight), marker(MarkerState::kRestoring), InPlaceStep::kResume, "", "pgdata.before-r1", false},
      {"restoring with nothing before", false, false, 10 * kGiB, data(false, false, kTight), marker(MarkerState::kRestoring, "ns/r1", kBackup, ""), InPlaceStep::kResume, "", "", false},
      {"restoring of another request: carried on, its aside reported", false, false, 10 * kGiB, data(false, false, kRoom), marker(MarkerState::kRestoring, "ns/r0", "base_old", "pgdata.before-r0"), InPlaceStep::kResume, "", "pgdata.before-r0", false},
      {"restoring after a discard", false, false, 10 * kGiB, data(false, false, kRoom), marker(MarkerState::kRestoring, "ns/r1", kBackup, "", true), InPlaceStep::kResume, "", "", true},
      {"discarding: the rest is deleted", false, false, 10 * kGiB, data(false, false, kRoom), marker(MarkerState::kDiscarding, "ns/r1", kBackup, ""), InPlaceStep::kResume, "", "", true},
      {"root restoring", true, false, 10 * kGiB, data(false, false, kRoom), marker(MarkerState::kRestoring, "ns/r1", kBackup, "", true, ""), InPlaceStep::kResume, "", "", true},
      {"moving, the rename happened", false, false, 10 * kGiB, data(true, true, kTight, true), marker(MarkerState::kMoving), InPlaceStep::kResume, "", "pgdata.before-r1", false},
      {"moving, the rename did not happen", false, false, 10 * kGiB, data(false, false, kRoom, false), marker(MarkerState::kMoving), InPlaceStep::kMoveAside, "", "pgdata.before-r1", false},
      {"moving, both hold data", false, false, 10 * kGiB, data(false, true, kRoom, true), marker(MarkerState::kMoving), InPlaceStep::kRefuse, "UnfinishedRestore", "", false},
      {"unfinished into another directory", false, false, 10 * kGiB, data(false, false, kRoom), marker(MarkerState::kRestoring, "ns/r0", kBackup, "x", false, "olddata"), InPlaceStep::kRefuse, "UnfinishedRestore", "", false},
  };
  for (const auto& row : rows) {
    const InPlaceDecision d = decide_in_place(paths(row.root, row.discard, row.size), kBackup, row.marker, row.current);
    EXPECT_EQ(step_name(d.step), std::string(step_name(row.step))) << row.name << ": " << d.reason << " " << d.message;
    EXPECT_EQ(d.reason, row.reason) << row.name;
    EXPECT_EQ(d.aside, row.aside) << row.name;
    EXPECT_EQ(d.discarded, row.discarded) << row.name;
    EXPECT_EQ(d.step == InPlaceStep::kRefuse, !d.message.empty()) << row.name;
  }
}

TEST(InPlaceDecision, RefusalsSayWhatToDo) {
  auto d = decide_in_place(paths(false, false), kBackup, std::nullopt, data(false, false, 5 * kGiB));
  EXPECT_EQ(d.message,
            "the volume has 5368709120 bytes free but the restore needs 11878268928 (the backup's 10737418240 bytes + "
            "10 % + 64 MiB) beside the current data; set spec.discardCurrentData: true to delete the current data "
            "instead of moving it aside");
  d = decide_in_place(paths(true, false), kBackup, std::nullopt, data(false, false, kRoom));
  EXPECT_NE(d.message.find("spec.discardCurrentData"), std::string::npos) << d.message;
  EXPECT_NE(d.message.find("/v"), std::string::npos) << d.message;
  d = decide_in_place(paths(false, false), kBackup, std::nullopt, data(false, true, kRoom));
  EXPECT_EQ(d.message, "/v/pgdata.before-r1 already exists; an aside copy is never overwritten: move or delete it");
  d = decide_in_place(paths(false, false, 0), kBackup, std::nullopt, data(false, false, 7));
  EXPECT_NE(d.note.find("the backup's size is unknown (UNCOMPRESSED_BYTES)"), std::string::npos) << d.note;
  d = decide_in_place(paths(false, false), kBackup, marker(MarkerState::kRestoring, "ns/r0", "base_old", "pgdata.before-r0"),
                      data(false, false, kRoom));
  EXPECT_NE(d.note.find("request ns/r0 (backup base_old) left a partial restore"), std::string::npos) << d.note;
  EXPECT_NE(d.note.find("the data from before it is at /v/pgdata.before-r0"), std::string::npos) << d.note;
}

// Over every combination of the table's columns: what must never happen.
TEST(InPlaceDecision, NeverMovesAPartialRestoreNorOverwritesAnAsideNorDeletesUnasked) {
  std::vector<std::optional<RestoreMarker>> markers = {std::nullopt};
  for (auto state : {MarkerState::kMoving, MarkerState::kDiscarding, MarkerState::kRestoring, MarkerState::kDone})
    for (const char* request : {"ns/r1", "ns/r0"}) markers.push_back(marker(state, request));
  size_t combinations = 0;
  for (bool root : {false, true})
    for (bool discard : {false, true})
      for (uint64_t size : {uint64_t{0}, 10 * kGiB})
        for (bool empty : {false, true})
          for (bool aside_exists : {false, true})
            for (bool marker_aside_exists : {false, true})
              for (uint64_t free_bytes : {kTight, kRoom})
                for (auto m : markers) {
                  if (m && root) m->data_path = "";
                  ++combinations;
                  const auto d = decide_in_place(paths(root, discard, size), kBackup, m,
                                                 data(empty, aside_exists, free_bytes, marker_aside_exists));
                  const std::string where = "root=" + std::to_string(root) + " discard=" + std::to_string(discard) +
                                            " size=" + std::to_string(size) + " empty=" + std::to_string(empty) +
                                            " aside=" + std::to_string(aside_exists) + " free=" +
                                            std::to_string(free_bytes) + " marker=" +
                                            (m ? marker_state_name(m->state) + ":" + m->request : "none");
                  const bool unfinished = m && m->state != MarkerState::kDone &&
                                          !(m->state == MarkerState::kMoving && !marker_aside_exists);
                  if (d.step == InPlaceStep::kMoveAside) {
                    EXPECT_FALSE(unfinished) << "a partial restore moved aside: " << where;
                    EXPECT_FALSE(aside_exists) << "an aside overwritten: " << where;
                    EXPECT_FALSE(root) << where;
                    EXPECT_FALSE(empty) << where;
                  }
                  if (d.step == InPlaceStep::kDiscard) {
                    EXPECT_TRUE(discard) << "deleted without spec.discardCurrentData: " << where;
                    EXPECT_FALSE(unfinished) << where;
                  }
                  if (d.step == InPlaceStep::kReportDone) {
                    ASSERT_TRUE(m) << where;
                    EXPECT_EQ(m->state, MarkerState::kDone) << where;
                    EXPECT_EQ(m->request, "ns/r1") << where;
                  }
                  if (unfinished) {
                    EXPECT_TRUE(d.step == InPlaceStep::kResume || d.step == InPlaceStep::kRefuse) << where;
                  }
                }
  EXPECT_EQ(combinations, 2u * 2 * 2 * 2 * 2 * 2 * 2 * markers.size());
}

// --- the history file and the production checks -----------------------------------

TEST(HistoryFile, IsNamedByTheTimelineInEightHexDigits) {
  EXPECT_EQ(history_file_name(2), "00000002.history");
  EXPECT_EQ(history_file_name(0x1A), "0000001A.history");
  EXPECT_EQ(history_file_name(0xFFFFFFFF), "FFFFFFFF.history");
}

TEST(CheckDatabase, RecoveredMeansOutOfRecoveryWithoutAWrite) {
  auto r = judge_serving(false, "");
  EXPECT_TRUE(r.passed);
  EXPECT_EQ(r.name, "recovered");
  EXPECT_EQ(r.output, "out of recovery (pg_is_in_recovery() = false); nothing was written to prove it");
  r = judge_serving(true, "");
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.output, "the server is in recovery (pg_is_in_recovery() = true)");
  r = judge_serving(false, "connection refused");
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.output, "connection refused");
}

TEST(CheckDatabase, SystemIdentifierMustEqualTheRestoredOne) {
  auto r = judge_expected_system_identifier("7312", "7312");
  EXPECT_TRUE(r.passed);
  EXPECT_EQ(r.name, "system-identifier");
  r = judge_expected_system_identifier("7312", "9999");
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.output, "the server's system_identifier 9999 differs from the restored cluster's 7312: it is not the restored database");
  r = judge_expected_system_identifier("", "9999");
  EXPECT_FALSE(r.passed) << "nothing to compare with is a failure";
  EXPECT_EQ(r.output, "EXPECT_SYSTEM_IDENTIFIER is empty, so the server's system_identifier (9999) could not be compared with the restored cluster's");
  r = judge_expected_system_identifier("7312", "");
  EXPECT_FALSE(r.passed);
}

// --- the result ----------------------------------------------------------------------

TEST(InPlaceResult, CarriesAsideAndDiscardedWithinTheTerminationLimit) {
  VerifyResult r;
  r.restored = kBackup;
  r.checksum = "sha256:" + std::string(64, 'a');
  r.recovered = true;
  r.aside = "pgdata.before-r1";
  r.discarded = false;
  for (const char* name : {"recovered", "recovery-target", "system-identifier", "supabase-schemas"})
    r.checks.push_back(CheckResult{name, true, 3, std::string(3000, 'x')});
  const json j = json::parse(result_json(r));
  EXPECT_EQ(j["aside"], "pgdata.before-r1");
  EXPECT_EQ(j["discarded"], false);
  EXPECT_LE(result_json(r).size(), kTerminationLimit);
  // verify's result has neither.
  VerifyResult v;
  v.restored = kBackup;
  const json vj = json::parse(result_json(v));
  EXPECT_FALSE(vj.contains("aside"));
  EXPECT_FALSE(vj.contains("discarded"));
}

}  // namespace
