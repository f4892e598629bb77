#include "jobs/run_job.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include <cstdio>

#include <algorithm>
#include <date/date.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "bundle/object_lock.h"
#include "bundle/store.h"
#include "common/encoding.h"
#include "jobs/check_database.h"
#include "jobs/databasus_client.h"
#include "jobs/install_tools.h"
#include "jobs/restore_in_place.h"
#include "jobs/verify.h"
#include "common/process.h"
#include "common/timefmt.h"
#include "postgres/archiving.h"
#include "api/job_env.h"
#include "api/job_result.h"

extern char** environ;

namespace bo::jobs {
namespace {

using json = nlohmann::json;

std::string get(const Env& env, const std::string& k, const std::string& def = "") {
  auto it = env.find(k);
  return it == env.end() || it->second.empty() ? def : it->second;
}

std::string tail(const std::string& s, size_t n = 1500) { return s.size() <= n ? s : "…" + s.substr(s.size() - n); }

struct Failure {
  std::string message;
};

std::string walg_error(const std::string& what, const ProcessResult& r) {
  if (!r.start_error.empty()) return what + ": cannot run wal-g (" + r.start_error + "); is it installed in the image?";
  std::string detail = r.err.empty() ? r.out : r.err;
  while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
  return what + " failed (exit " + std::to_string(r.exit_code) + "): " + tail(detail);
}

// The newest backup in `wal-g backup-list --json --detail` output.
std::optional<json> newest_backup(const std::string& list_json) {
  const json list = json::parse(list_json, nullptr, false);
  if (!list.is_array()) return std::nullopt;
  std::optional<json> best;
  for (const auto& b : list) {
    if (!b.is_object() || !b.contains("backup_name")) continue;
    const std::string t = b.value("finish_time", b.value("time", ""));
    if (!best || t > best->value("finish_time", best->value("time", ""))) best = b;
  }
  return best;
}

std::string normalize_time(const std::string& t) {
  auto parsed = parse_rfc3339(t);
  return parsed ? format_rfc3339(*parsed) : t;
}

uint64_t lsn_of(const json& v) {
  if (v.is_number_unsigned() || v.is_number_integer()) return v.get<uint64_t>();
  return 0;
}

// wal-g with this process's environment, or with `walg_env` as its whole environment.
ProcessResult run_walg(const std::vector<std::string>& argv, const Env* walg_env) {
  return walg_env ? run_process(argv, *walg_env) : run_process(argv);
}

// The segments holding bytes [start, finish) on `timeline`: a finish LSN on a
// segment boundary needs nothing of the segment it starts.
std::vector<std::string> wal_segments(uint32_t timeline, uint64_t start, uint64_t finish) {
  std::vector<std::string> names;
  const auto first = postgres::segment_of(timeline, start);
  const auto last = postgres::segment_of(timeline, std::max(start, finish - 1));
  for (auto seg = first; seg.segno <= last.segno; ++seg.segno) names.push_back(postgres::wal_name(seg));
  return names;
}

// Whether every WAL segment from `start` to `finish` (on the backup's
// timeline) can be fetched through wal-g, as recovery will fetch it; wal-g
// runs with `walg_env` when given (another storage, named `where` in the
// message), else with this process's environment. A missing segment is retried until `wait_seconds`
// pass (archiving is asynchronous). Empty when all are there; else what is missing.
std::string check_wal(const std::string& walg, uint32_t timeline, uint64_t start, uint64_t finish, int wait_seconds,
                      const Env* walg_env, const std::string& where, const std::string& tmpdir, std::ostream& log) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_seconds);
  const std::string dest = tmpdir + "/walg-check-segment";
  for (const std::string& name : wal_segments(timeline, start, finish)) {
    for (;;) {
      auto r = run_walg({walg, "wal-fetch", name, dest}, walg_env);
      std::remove(dest.c_str());
      if (r.exit_code == 0) break;
      if (!r.start_error.empty()) return "cannot run wal-g wal-fetch (" + r.start_error + ")";
      if (std::chrono::steady_clock::now() >= deadline) {
        std::string detail = r.err.empty() ? r.out : r.err;
        while (!detail.empty() && (detail.back() == '\n' || detail.back() == ' ')) detail.pop_back();
        return "WAL segment " + name + " (needed up to finish LSN " + postgres::format_lsn(finish) +
               ") is not in " + where + " after " + std::to_string(wait_seconds) + "s (wal-g wal-fetch exit " +
               std::to_string(r.exit_code) + ": " + tail(detail, 300) + ")";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    log << "run-job: WAL segment " << name << " is " << (walg_env ? "fetchable there" : "archived") << "\n";
  }
  return "";
}

// What a stop sentinel says about its backup (internal/backup_sentinel_dto.go):
// type, base and chain, and the WAL range recovery needs.
struct SentinelFacts {
  std::string delta_from, delta_full;
  int delta_count = 0;
  uint64_t start_lsn = 0, finish_lsn = 0;
  uint32_t timeline = 1;
};

SentinelFacts read_sentinel(const std::string& name, const std::string& text) {
  const json stop = json::parse(text, nullptr, false);
  if (!stop.is_object()) throw Failure{"the stop sentinel of " + name + " is not a JSON object"};
  SentinelFacts f;
  f.delta_from = stop.value("DeltaFrom", json()).is_string() ? stop["DeltaFrom"].get<std::string>() : "";
  f.delta_full = stop.value("DeltaFullName", json()).is_string() ? stop["DeltaFullName"].get<std::string>() : "";
  f.delta_count = stop.value("DeltaCount", json()).is_number_integer() ? stop["DeltaCount"].get<int>() : 0;
  f.start_lsn = lsn_of(stop.value("LSN", json()));
  f.finish_lsn = lsn_of(stop.value("FinishLSN", json()));
  // The timeline wal-g recorded; older sentinels lack it: the name's segment starts with it (base_TTTTTTTT…).
  uint32_t timeline = stop.value("Timeline", json()).is_number_unsigned() ? stop["Timeline"].get<uint32_t>() : 0;
  if (timeline == 0 && name.size() >= 29)
    if (const auto seg = postgres::parse_wal_name(name.substr(5, 24))) timeline = seg->timeline;
  f.timeline = timeline == 0 ? 1 : timeline;
  return f;
}

int wal_wait_seconds(const Env& env) {
  try {
    return std::max(0, std::stoi(get(env, "BACKUP_WAL_WAIT_SECONDS", "300")));
  } catch (...) {
    return 300;
  }
}

int backup(const std::string& action, const Env& env, std::ostream& log) {
  const std::string walg = get(env, "WALG_BINARY", "wal-g");
  const std::string pgdata = get(env, "PGDATA", "/var/lib/postgresql/data");
  const auto started = std::chrono::system_clock::now();
  std::vector<std::string> push = {walg, "backup-push", pgdata};
  if (action == "full-backup") push.insert(push.begin() + 2, "--full");
  log << "run-job: " << action << ": wal-g backup-push " << (action == "full-backup" ? "--full " : "") << pgdata
      << " (WALG_DELTA_MAX_STEPS=" << get(env, "WALG_DELTA_MAX_STEPS", "0") << ")\n";
  auto r = run_process(push);
  if (r.exit_code != 0) throw Failure{walg_error("wal-g backup-push", r)};
  auto list = run_process({walg, "backup-list", "--json", "--detail"});
  if (list.exit_code != 0) throw Failure{walg_error("wal-g backup-list", list)};
  auto newest = newest_backup(list.out);
  if (!newest) throw Failure{"wal-g backup-list --json --detail: no backups listed after a successful push"};
  const std::string name = newest->value("backup_name", "");
  const auto finish = parse_rfc3339(newest->value("finish_time", ""));
  if (finish && *finish + std::chrono::minutes(5) < started)
    throw Failure{"wal-g backup-push succeeded but the newest backup (" + name + ") is older than this run"};
  auto sentinel = run_process({walg, "st", "cat", "basebackups_005/" + name + "_backup_stop_sentinel.json"});
  if (sentinel.exit_code != 0 || sentinel.out.empty())
    throw Failure{walg_error("wal-g st cat of the stop sentinel of " + name, sentinel)};
  // Type, base and chain as wal-g recorded them.
  const SentinelFacts stop = read_sentinel(name, sentinel.out);
  const std::string& delta_from = stop.delta_from;
  const std::string& delta_full = stop.delta_full;
  const int delta_count = stop.delta_count;
  const uint64_t start_lsn = stop.start_lsn, finish_lsn = stop.finish_lsn;
  const std::string type = delta_from.empty() ? "full" : "delta";
  std::string wal_problem =
      finish_lsn < start_lsn || finish_lsn == 0 ? "the stop sentinel of " + name + " has no FinishLSN" : "";
  if (wal_problem.empty()) {
    wal_problem = check_wal(walg, stop.timeline, start_lsn, finish_lsn, wal_wait_seconds(env), nullptr, "storage",
                            get(env, "TMPDIR", "/tmp"), log);
    if (!wal_problem.empty()) wal_problem += "; is archive_command = 'wal-g wal-push %p' set and working?";
  }
  json result{{"backupId", name},
              {"checksum", "sha256:" + sha256_hex(sentinel.out)},
              {"type", type},
              {"base", delta_from},
              {"full", delta_full},
              {"deltaCount", delta_count},
              {"startLsn", postgres::format_lsn(start_lsn)},
              {"finishLsn", postgres::format_lsn(finish_lsn)},
              {"walArchived", wal_problem.empty()},
              {"startTime", normalize_time(newest->value("start_time", newest->value("time", "")))},
              {"finishTime", normalize_time(newest->value("finish_time", newest->value("time", "")))},
              {"sizeBytes", newest->value("compressed_size", int64_t{0})},
              {"uncompressedBytes", newest->value("uncompressed_size", int64_t{0})}};
  if (!wal_problem.empty()) result["walMessage"] = wal_problem;
  // The markers of verified backups (VERIFIED_MARKERS, id@checksum@request),
  // with this Job's storage credentials. One that fails is retried next slot.
  json markers = json::array();
  for (const auto& m : api::split_ids(get(env, api::kVerifiedMarkersEnv))) {
    const auto at1 = m.find('@'), at2 = m.find('@', at1 == std::string::npos ? 0 : at1 + 1);
    if (at1 == std::string::npos || at2 == std::string::npos) continue;
    const std::string id = m.substr(0, at1);
    const std::string error =
        put_verified_marker({walg}, get(env, "TMPDIR", "/tmp"), id, m.substr(at1 + 1, at2 - at1 - 1), m.substr(at2 + 1));
    if (error.empty()) {
      markers.push_back(id);
      log << "run-job: " << action << ": left " << verified_marker_name(id) << " in storage\n";
    } else {
      log << "run-job: " << action << ": " << redact(error, env) << "\n";
    }
  }
  if (!markers.empty()) result["markers"] = markers;
  write_termination(env, result.dump());
  log << "run-job: " << action << ": " << type << " backup " << name << " " << result["checksum"].get<std::string>()
      << (wal_problem.empty() ? "" : " NOT RESTORABLE: " + wal_problem) << "\n";
  return 0;
}

// wal-g reads AWS_* (and a config file for copy); the policy's Secrets name them WALG_AWS_*.
void export_aws_names(const Env& env, const std::string& prefix = "") {
  for (const char* k : {"ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "ENDPOINT"}) {
    const std::string v = get(env, prefix + "WALG_AWS_" + k);
    if (!v.empty() && prefix.empty()) setenv((std::string("AWS_") + k).c_str(), v.c_str(), 0);
  }
}

// One side's wal-g settings, as wal-g names them: the storage it has (S3
// or a directory, WALG_FILE_PREFIX) and its options, from the variables
// <prefix>WALG_* and <prefix>AWS_* of the Job; empty ones are left out.
Env storage_settings(const Env& env, const std::string& prefix) {
  Env cfg;
  auto put = [&](const std::string& key, const std::string& value) {
    if (!value.empty()) cfg[key] = value;
  };
  put("WALG_S3_PREFIX", get(env, prefix + "WALG_S3_PREFIX"));
  put("WALG_FILE_PREFIX", get(env, prefix + "WALG_FILE_PREFIX"));
  put("AWS_ACCESS_KEY_ID", get(env, prefix + "WALG_AWS_ACCESS_KEY_ID"));
  put("AWS_SECRET_ACCESS_KEY", get(env, prefix + "WALG_AWS_SECRET_ACCESS_KEY"));
  put("AWS_ENDPOINT", get(env, prefix + "WALG_AWS_ENDPOINT"));
  put("AWS_REGION", get(env, prefix + "AWS_REGION"));
  put("AWS_S3_FORCE_PATH_STYLE", get(env, prefix + "AWS_S3_FORCE_PATH_STYLE"));
  put("WALG_S3_CA_CERT_FILE", get(env, prefix + "WALG_S3_CA_CERT_FILE"));
  put("WALG_LIBSODIUM_KEY", get(env, "WALG_LIBSODIUM_KEY"));
  return cfg;
}

// A wal-g config file for one side of `wal-g copy`.
std::string write_config(const Env& env, const std::string& prefix, const std::string& path) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json(storage_settings(env, prefix)).dump();
    if (!out.flush()) throw Failure{"cannot write " + path + " (is /tmp an emptyDir?)"};
  }
  ::chmod(tmp.c_str(), 0600);
  std::rename(tmp.c_str(), path.c_str());
  return path;
}

// Whether the offsite copy of `id` is restorable from the offsite storage
// alone: wal-g, with nothing but the offsite settings in its environment,
// lists the backup, reads a stop sentinel identical to the source's, finds
// every base of a delta's chain, and fetches each WAL segment recovery needs
// ([LSN, FinishLSN) on the sentinel's Timeline). Throws a Failure naming
// what is missing; returns the WAL segment names it checked.
std::vector<std::string> prove_offsite_restorable(const std::string& walg, const std::string& id,
                                                  const std::string& source_sentinel, const Env& offsite,
                                                  const std::string& tmpdir, std::ostream& log) {
  const std::string lacks = "the offsite copy of " + id + " is not restorable on its own: ";
  auto list = run_walg({walg, "backup-list", "--json", "--detail"}, &offsite);
  if (list.exit_code != 0) throw Failure{lacks + walg_error("wal-g backup-list of the offsite storage", list)};
  std::set<std::string> listed;
  const json parsed = json::parse(list.out, nullptr, false);
  if (parsed.is_array())
    for (const auto& b : parsed)
      if (b.is_object() && b.value("backup_name", json()).is_string()) listed.insert(b["backup_name"].get<std::string>());
  std::string sentinel_text;
  SentinelFacts facts;
  // The backup, then each base of its chain down to its full (a delta's bases are copied separately).
  std::set<std::string> seen;
  for (std::string name = id; !name.empty() && seen.insert(name).second;) {  // a cycle ends the walk
    if (!listed.count(name))
      throw Failure{lacks + "wal-g backup-list --json --detail of the offsite storage does not list " + name +
                    (name == id ? "" : " (a base of its delta chain)")};
    auto sentinel = run_walg({walg, "st", "cat", "basebackups_005/" + name + "_backup_stop_sentinel.json"}, &offsite);
    if (sentinel.exit_code != 0 || sentinel.out.empty())
      throw Failure{lacks + walg_error("wal-g st cat of the offsite stop sentinel of " + name, sentinel)};
    const SentinelFacts f = read_sentinel(name, sentinel.out);
    if (name == id) {
      sentinel_text = sentinel.out;
      facts = f;
    }
    name = f.delta_from;
  }
  if (sentinel_text != source_sentinel)
    throw Failure{lacks + "its stop sentinel (sha256:" + sha256_hex(sentinel_text) +
                  ") differs from the source's (sha256:" + sha256_hex(source_sentinel) + ")"};
  if (facts.finish_lsn == 0 || facts.finish_lsn < facts.start_lsn)
    throw Failure{lacks + "its stop sentinel has no FinishLSN, so the WAL it needs is unknown"};
  // The copy has finished: nothing more will arrive, so each segment gets one try.
  const std::string missing = check_wal(walg, facts.timeline, facts.start_lsn, facts.finish_lsn, 0, &offsite,
                                        "the offsite storage", tmpdir, log);
  if (!missing.empty()) throw Failure{lacks + missing};
  return wal_segments(facts.timeline, facts.start_lsn, facts.finish_lsn);
}

// The Object Lock retention of the copied objects, read back from the
// offsite store with GetObjectRetention (bundle/object_lock.h): the stop
// sentinel first, then the backup's other objects and the WAL segments it
// needs; the earliest RetainUntilDate of all. When any object's cannot be
// read back, no date at all: {"immutability": {"reason", "message"}}.
json read_back_retention(const Env& env, const std::string& id, const std::vector<std::string>& segments,
                         std::ostream& log) {
  auto not_reported = [](const std::string& reason, const std::string& message) {
    return json{{"immutability", {{"reason", reason}, {"message", message.substr(0, 1024)}}}};
  };
  if (get(env, "OFFSITE_WALG_S3_PREFIX").empty())
    return not_reported("NotObjectStorage", "the offsite storage is a directory (OFFSITE_WALG_FILE_PREFIX " +
                                                get(env, "OFFSITE_WALG_FILE_PREFIX") +
                                                "): it has no Object Lock retention to read back");
  // The offsite Secret's keys, under the names bundle::make_s3_store reads.
  std::map<std::string, std::string> s3;
  for (const char* k : {"WALG_S3_PREFIX", "WALG_AWS_ACCESS_KEY_ID", "WALG_AWS_SECRET_ACCESS_KEY", "WALG_AWS_ENDPOINT",
                        "AWS_REGION", "WALG_S3_CA_CERT_FILE"})
    if (!get(env, std::string("OFFSITE_") + k).empty()) s3[k] = get(env, std::string("OFFSITE_") + k);
  auto store = bundle::make_s3_store(s3);
  if (!store) return not_reported("RetentionUnreadable", "OFFSITE_" + store.error());
  const std::string sentinel = "basebackups_005/" + id + "_backup_stop_sentinel.json";
  std::vector<std::string> names = {sentinel};
  auto backup_objects = (*store)->list("basebackups_005/" + id + "/");
  if (!backup_objects) return not_reported("RetentionUnreadable", "listing the copied backup: " + backup_objects.error());
  for (const auto& o : *backup_objects) names.push_back(o.name);
  for (const auto& seg : segments) {
    auto wal = (*store)->list("wal_005/" + seg);
    if (!wal) return not_reported("RetentionUnreadable", "listing WAL segment " + seg + ": " + wal.error());
    for (const auto& o : *wal) names.push_back(o.name);
  }
  std::optional<bundle::ObjectRetention> earliest;
  bool governance = false;
  for (const auto& name : names) {
    const std::string what = "GetObjectRetention on " + (*store)->location(name);
    auto answer = (*store)->get_raw(name, "retention=");
    if (!answer) return not_reported("RetentionUnreadable", what + ": " + answer.error());
    auto retention = bundle::parse_object_retention(answer->status, answer->body);
    if (!retention) {
      log << "run-job: offsite-copy: " << what << ": " << retention.error() << "\n";
      return not_reported("RetentionNotReported", what + ": " + retention.error());
    }
    governance = governance || retention->mode == "GOVERNANCE";
    if (!earliest || retention->retain_until < earliest->retain_until) earliest = *retention;
  }
  log << "run-job: offsite-copy: Object Lock retention read back from " << names.size() << " object(s): earliest "
      << format_rfc3339(earliest->retain_until) << "\n";
  // GOVERNANCE can be lifted by a privileged user: the weakest mode found is the one that holds.
  return json{{"immutableUntil", format_rfc3339(earliest->retain_until)},
              {"retentionMode", governance ? "GOVERNANCE" : "COMPLIANCE"},
              {"retentionObjects", names.size()}};
}

// wal-g copy of one full backup (and its WAL) to the offsite storage; then
// the proof that the copy restores from there alone, and the Object Lock
// retention as the offsite store reports it (never a date of our own).
int offsite_copy(const Env& env, std::ostream& log) {
  const std::string walg = get(env, "WALG_BINARY", "wal-g");
  const std::string id = get(env, "OFFSITE_BACKUP_ID");
  if (id.empty()) throw Failure{"OFFSITE_BACKUP_ID is not set: the operator names the backup to copy"};
  if (get(env, "OFFSITE_WALG_S3_PREFIX").empty() && get(env, "OFFSITE_WALG_FILE_PREFIX").empty())
    throw Failure{"OFFSITE_WALG_S3_PREFIX is not set: check spec.offsite.secretRef"};
  const std::string dir = get(env, "TMPDIR", "/tmp");
  // The source's sentinel, before the copy: the offsite one must be the same bytes.
  auto source = run_process({walg, "st", "cat", "basebackups_005/" + id + "_backup_stop_sentinel.json"});
  if (source.exit_code != 0 || source.out.empty())
    throw Failure{walg_error("wal-g st cat of the stop sentinel of " + id + " in the source storage", source)};
  const std::string from = write_config(env, "", dir + "/walg-copy-from.json");
  const std::string to = write_config(env, "OFFSITE_", dir + "/walg-copy-to.json");
  log << "run-job: offsite-copy: wal-g copy --backup-name " << id << "\n";
  auto r = run_process({walg, "copy", "--from=" + from, "--to=" + to, "--backup-name=" + id});
  std::remove(from.c_str());
  std::remove(to.c_str());
  if (r.exit_code != 0) throw Failure{walg_error("wal-g copy of " + id, r)};
  // wal-g with the offsite settings only: nothing of the source's may help.
  Env offsite = storage_settings(env, "OFFSITE_");
  // The process's own runtime settings carry over (where programs are, the
  // locale and zone, sanitizer options of an instrumented build); no storage setting does.
  for (const char* k : {"PATH", "HOME", "LANG", "LC_ALL", "TZ", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"})
    if (!get(env, k).empty()) offsite[k] = get(env, k);
  offsite["TMPDIR"] = dir;
  const auto segments = prove_offsite_restorable(walg, id, source.out, offsite, dir, log);
  log << "run-job: offsite-copy: " << id << " and its " << segments.size()
      << " WAL segment(s) restore from the offsite storage alone\n";
  json result = read_back_retention(env, id, segments, log);
  result["copied"] = id;
  result["checksum"] = "sha256:" + sha256_hex(source.out);
  result["restorable"] = true;
  result["walSegments"] = segments.size();
  write_termination(env, redact(result.dump(), env));
  return 0;
}

std::set<std::string> listed_backups(const std::string& walg) {
  auto list = run_process({walg, "backup-list", "--json", "--detail"});
  if (list.exit_code != 0) throw Failure{walg_error("wal-g backup-list", list)};
  std::set<std::string> names;
  const json parsed = json::parse(list.out, nullptr, false);
  if (parsed.is_array())
    for (const auto& b : parsed)
      if (b.is_object() && b.value("backup_name", json()).is_string()) names.insert(b["backup_name"].get<std::string>());
  return names;
}

// wal-g delete target NAME --confirm for each expired backup. Deleting a
// full also deletes the deltas built on it (wal-g's delete target), so a
// later id may already be gone: that is not an error. The result lists
// what storage no longer holds, which is what the catalog drops.
int retain(const Env& env, std::ostream& log) {
  const std::string walg = get(env, "WALG_BINARY", "wal-g");
  const auto before = listed_backups(walg);
  for (const auto& id : api::split_ids(get(env, api::kRetainExpireEnv))) {
    if (!before.count(id)) {
      log << "run-job: retain: " << id << " is not in storage (already deleted)\n";
      continue;
    }
    if (!listed_backups(walg).count(id)) {
      log << "run-job: retain: " << id << " went with an earlier deletion\n";
      continue;
    }
    log << "run-job: retain: wal-g delete target " << id << " --confirm\n";
    auto r = run_process({walg, "delete", "target", id, "--confirm"});
    if (r.exit_code != 0) throw Failure{walg_error("wal-g delete target " + id, r)};
  }
  const auto after = listed_backups(walg);
  json deleted = json::array();
  for (const auto& id : api::split_ids(get(env, api::kRetainExpireEnv)))
    if (!after.count(id)) deleted.push_back(id);
  for (const auto& id : before)
    if (!after.count(id) && std::find(deleted.begin(), deleted.end(), id) == deleted.end()) deleted.push_back(id);
  write_termination(env, json{{"deleted", deleted}}.dump());
  return 0;
}

// Rebuilds the catalog from storage, the source of truth: every backup
// `wal-g backup-list --json --detail` lists, its stop sentinel
// (basebackups_005/<name>_backup_stop_sentinel.json, as WAL-G lays it out:
// internal/backup.go, utility.SentinelSuffix) for the checksum, type, chain
// and WAL range, whether that WAL is in storage, and whether a verification
// left its marker beside it (verified_marker_name). The result (job_result.h,
// CatalogResult) must fit the kubelet's 4096 bytes: fulls first (retention
// decides over fulls; wal-g's delete target takes a full's deltas with it),
// then the newest deltas while room is left; every backup is logged, and
// "listed" says how many storage holds.
int catalog(const Env& env, std::ostream& log) {
  const std::string walg = get(env, "WALG_BINARY", "wal-g");
  const std::string tmp = get(env, "TMPDIR", "/tmp");
  const auto listed_at = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  auto list = run_process({walg, "backup-list", "--json", "--detail"});
  if (list.exit_code != 0) throw Failure{walg_error("wal-g backup-list", list)};
  // With no backups wal-g logs "No backups found" and prints nothing.
  const json parsed = list.out.find_first_not_of(" \n") == std::string::npos ? json::array()
                                                                              : json::parse(list.out, nullptr, false);
  if (!parsed.is_array()) throw Failure{"wal-g backup-list --json --detail printed no JSON array"};
  struct Found {
    std::string name, hex;
    SentinelFacts stop;
    int64_t finish = 0, seconds = 0, size = 0;
  };
  std::vector<Found> found;
  for (const auto& b : parsed) {
    if (!b.is_object() || !b.value("backup_name", json()).is_string()) continue;
    Found f;
    f.name = b["backup_name"].get<std::string>();
    auto sentinel = run_process({walg, "st", "cat", "basebackups_005/" + f.name + "_backup_stop_sentinel.json"});
    if (sentinel.exit_code != 0 || sentinel.out.empty())
      throw Failure{walg_error("wal-g st cat of the stop sentinel of " + f.name, sentinel)};
    f.hex = sha256_hex(sentinel.out);
    f.stop = read_sentinel(f.name, sentinel.out);
    auto time_of = [&](const char* k) {
      const json v = b.value(k, json());
      return v.is_string() ? parse_rfc3339(v.get<std::string>()) : std::nullopt;
    };
    const auto finish = time_of("finish_time") ? time_of("finish_time") : time_of("time");
    if (!finish) throw Failure{"wal-g backup-list --json --detail gives " + f.name + " no finish_time or time"};
    const auto start = time_of("start_time").value_or(*finish);
    f.finish = std::chrono::duration_cast<std::chrono::seconds>(finish->time_since_epoch()).count();
    f.seconds = std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(*finish - start).count());
    const json size = b.value("compressed_size", json());
    f.size = size.is_number_integer() ? std::max<int64_t>(0, size.get<int64_t>()) : 0;
    found.push_back(std::move(f));
  }
  // Fulls first, then deltas; newest first within each.
  std::stable_sort(found.begin(), found.end(), [](const Found& a, const Found& b) {
    const bool af = a.stop.delta_from.empty(), bf = b.stop.delta_from.empty();
    return af != bf ? af : a.finish > b.finish;
  });
  json result{{"listedAt", format_rfc3339(listed_at)}, {"listed", found.size()}, {"backups", json::array()}};
  json& rows = result["backups"];
  std::map<std::string, size_t> index;  // name -> row
  auto ref = [&](const std::string& name) -> json {
    if (name.empty()) return "";
    auto it = index.find(name);
    return it == index.end() ? json(name) : json(it->second);
  };
  // What a row may take: the kubelet keeps 4096 bytes, and "listed" was counted in already.
  constexpr size_t kBudget = 4096;
  size_t left_out = 0;
  for (const auto& f : found) {
    const std::string full = f.stop.delta_from.empty() ? "" : (f.stop.delta_full.empty() ? f.stop.delta_from : f.stop.delta_full);
    json row = {f.name, f.hex, ref(f.stop.delta_from), ref(full), f.finish, f.seconds, f.size, 3};
    rows.push_back(row);
    if (result.dump().size() > kBudget) {
      rows.erase(rows.end() - 1);
      ++left_out;
      log << "run-job: catalog: " << f.name << " (" << (full.empty() ? "full" : "delta of " + full)
          << ") left out of the result: no room in 4096 bytes\n";
      continue;
    }
    int flags = 0;
    const bool wal_ok = f.stop.finish_lsn > 0 && f.stop.finish_lsn >= f.stop.start_lsn &&
                        check_wal(walg, f.stop.timeline, f.stop.start_lsn, f.stop.finish_lsn, 0, nullptr, "storage", tmp,
                                  log).empty();
    if (wal_ok) flags |= api::kCatalogRestorable;
    auto marker = run_process({walg, "st", "cat", verified_marker_name(f.name)});
    const json m = marker.exit_code == 0 ? json::parse(marker.out, nullptr, false) : json();
    if (m.is_object() && m.value("checksum", "") == "sha256:" + f.hex) flags |= api::kCatalogVerified;
    rows.back()[7] = flags;
    index[f.name] = rows.size() - 1;
    log << "run-job: catalog: " << f.name << " " << (full.empty() ? "full" : "delta of " + full) << " sha256:" << f.hex
        << (wal_ok ? "" : " NOT RESTORABLE (its WAL is not all in storage)")
        << ((flags & api::kCatalogVerified) ? " verified" : "") << "\n";
  }
  // A base listed after its delta (bases are older) by name: now by index, which is shorter.
  for (auto& row : rows)
    for (size_t k : {size_t{2}, size_t{3}})
      if (row[k].is_string() && !row[k].get<std::string>().empty()) row[k] = ref(row[k].get<std::string>());
  write_termination(env, result.dump());
  log << "run-job: catalog: " << found.size() << " backup(s) in storage, " << rows.size() << " in the result"
      << (left_out ? " (" + std::to_string(left_out) + " left out: no room)" : "") << "\n";
  return 0;
}

// wal-g backup-fetch into PGDATA, after checking that what storage holds is
// what the catalog recorded (sha256 over the stop sentinel), then the
// recovery settings for WAL replay (to POINT_IN_TIME when given).
int restore(const Env& env, std::ostream& log) {
  const std::string walg = get(env, "WALG_BINARY", "wal-g");
  const std::string pgdata = get(env, "PGDATA", "/var/lib/postgresql/restore");
  const std::string id = get(env, "BACKUP_ID");
  const std::string expected = get(env, "BACKUP_CHECKSUM");
  if (id.empty()) throw Failure{"BACKUP_ID is not set: the operator names the backup to restore"};
  auto sentinel = run_process({walg, "st", "cat", "basebackups_005/" + id + "_backup_stop_sentinel.json"});
  if (sentinel.exit_code != 0 || sentinel.out.empty())
    throw Failure{walg_error("wal-g st cat of the stop sentinel of " + id, sentinel)};
  const std::string actual = "sha256:" + sha256_hex(sentinel.out);
  if (!expected.empty() && actual != expected)
    throw Failure{"ChecksumMismatch: storage holds " + actual + " for " + id + " but the catalog recorded " + expected +
                  "; refusing to restore a backup that changed after it was taken"};
  log << "run-job: restore: wal-g backup-fetch " << pgdata << " " << id << "\n";
  auto r = run_process({walg, "backup-fetch", pgdata, id});
  if (r.exit_code != 0) throw Failure{walg_error("wal-g backup-fetch " + id, r)};
  // PostgreSQL recovery: fetch WAL with wal-g, stop at the point in time if asked.
  std::string conf = "restore_command = '" + walg + " wal-fetch %f %p'\n";
  const std::string pit = get(env, "POINT_IN_TIME");
  if (!pit.empty()) {
    const auto when = parse_rfc3339(pit);
    if (!when) throw Failure{"POINT_IN_TIME \"" + pit + "\" is not an RFC 3339 time"};
    // PostgreSQL's recovery_target_time refuses RFC 3339's "T…Z" spelling: write it in its own.
    conf += "recovery_target_time = '" + date::format("%F %T", std::chrono::floor<std::chrono::microseconds>(*when)) +
            "+00'\nrecovery_target_action = 'promote'\n";
  }
  {
    std::ofstream auto_conf(pgdata + "/postgresql.auto.conf", std::ios::app);
    auto_conf << conf;
    std::ofstream signal(pgdata + "/recovery.signal", std::ios::trunc);
    if (!auto_conf.flush() || !signal.flush()) throw Failure{"cannot write the recovery settings into " + pgdata};
  }
  json result{{"restored", id}, {"checksum", actual}};
  if (!pit.empty()) result["pointInTime"] = pit;
  write_termination(env, result.dump());
  log << "run-job: restore: restored " << id << " " << actual << "\n";
  return 0;
}

// The profile's first validation: the restored database answers (pg_isready).
int validate_database(const Env& env, std::ostream& log) {
  const std::string bin = get(env, "PG_ISREADY", "pg_isready");
  const std::string host = get(env, "PGHOST"), port = get(env, "PGPORT", "5432"), db = get(env, "PGDATABASE", "postgres");
  if (host.empty()) throw Failure{"PGHOST is not set"};
  auto r = run_process({bin, "-h", host, "-p", port, "-d", db, "-t", "10"});
  std::string out = r.out.empty() ? r.err : r.out;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  if (!r.start_error.empty()) throw Failure{"cannot run " + bin + " (" + r.start_error + ")"};
  log << "run-job: validate-database-answers: " << out << "\n";
  write_termination(env, out.empty() ? host + ":" + port + " exit " + std::to_string(r.exit_code) : out);
  return r.exit_code == 0 ? 0 : 1;
}

// The Databasus sidecar: keeps a description of the policy's database (never
// its password) in Databasus' state volume, rewriting it atomically every
// DATABASUS_SYNC_SECONDS [60]; with DATABASUS_ADMIN_EMAIL/PASSWORD it also
// registers the database in Databasus (databasus_client.h).
// DATABASUS_METADATA_ONCE=1 does one round and exits (1 if registration failed).
int databasus_metadata(const Env& env, std::ostream& log) {
  const std::string dir = get(env, "METADATA_DIR", "/databasus-data/backup-operator");
  int interval = 60;
  try {
    interval = std::max(1, std::stoi(get(env, "DATABASUS_SYNC_SECONDS", "60")));
  } catch (...) {
  }
  ::mkdir(dir.c_str(), 0700);
  for (;;) {
    json meta{{"policy", get(env, "BACKUP_POLICY")},
              {"host", get(env, "PGHOST")},
              {"port", get(env, "PGPORT", "5432")},
              {"database", get(env, "PGDATABASE", "postgres")},
              {"user", get(env, "PGUSER")},
              {"passwordFrom", "environment (secretKeyRef), never written here"},
              {"updated", format_rfc3339(std::chrono::system_clock::now())}};
    const std::string path = dir + "/database.json", tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::trunc);
      out << meta.dump(2) << "\n";
      if (!out.flush()) throw Failure{"cannot write " + tmp + " (is the state volume mounted?)"};
    }
    ::chmod(tmp.c_str(), 0600);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) throw Failure{"cannot replace " + path};
    log << "run-job: databasus-metadata: wrote " << path << "\n";
    bool registered = true;
    if (!get(env, "DATABASUS_ADMIN_EMAIL").empty() && !get(env, "DATABASUS_ADMIN_PASSWORD").empty()) {
      // Register (or update) the database in Databasus, keeping the ids it assigned.
      const std::string reg_path = dir + "/registration.json";
      DatabasusRegistration previous;
      {
        std::ifstream in(reg_path);
        const json saved = json::parse(in, nullptr, false);
        if (saved.is_object()) {
          previous.workspace_id = saved.value("workspaceId", "");
          previous.database_id = saved.value("databaseId", "");
        }
      }
      int port = 5432;
      try {
        port = std::stoi(get(env, "PGPORT", "5432"));
      } catch (...) {
      }
      const DatabaseDescription db{get(env, "BACKUP_POLICY"), get(env, "PGHOST"), get(env, "PGDATABASE", "postgres"),
                                   get(env, "PGUSER"), get(env, "PGPASSWORD"), port};
      auto reg = register_database(get(env, "DATABASUS_API", get(env, "DATABASUS_URL", "http://127.0.0.1:4005") + "/api/v1"),
                                   get(env, "DATABASUS_ADMIN_EMAIL"), get(env, "DATABASUS_ADMIN_PASSWORD"), db, previous);
      if (reg) {
        const json saved = {{"workspaceId", reg->workspace_id}, {"databaseId", reg->database_id},
                            {"name", db.name}, {"registeredAt", format_rfc3339(std::chrono::system_clock::now())}};
        std::ofstream(reg_path + ".tmp", std::ios::trunc) << saved.dump(2) << "\n";
        ::chmod((reg_path + ".tmp").c_str(), 0600);
        std::rename((reg_path + ".tmp").c_str(), reg_path.c_str());
        log << "run-job: databasus-metadata: " << (previous.database_id == reg->database_id ? "updated" : "registered")
            << " database " << db.name << " in Databasus (workspace " << reg->workspace_id << ", database "
            << reg->database_id << ")\n";
      } else {
        registered = false;
        log << "run-job: databasus-metadata: registration failed, retrying next round: " << redact(reg.error(), env) << "\n";
      }
    }
    if (get(env, "DATABASUS_METADATA_ONCE") == "1") return registered ? 0 : 1;
    std::this_thread::sleep_for(std::chrono::seconds(interval));
  }
}

}  // namespace

std::string env_value(const Env& env, const std::string& key, const std::string& def) { return get(env, key, def); }

std::string verified_marker_name(const std::string& backup_id) { return "backup-operator/verified/" + backup_id + ".json"; }

std::string put_verified_marker(const std::vector<std::string>& walg, const std::string& tmp_dir,
                                const std::string& backup_id, const std::string& checksum, const std::string& request) {
  const std::filesystem::path tmp = std::filesystem::path(tmp_dir) / ("verified-marker-" + std::to_string(getpid()) + ".json");
  const json marker{{"backupId", backup_id},
                    {"checksum", checksum},
                    {"verifiedAt", format_rfc3339(std::chrono::system_clock::now())},
                    {"request", request}};
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << marker.dump() << "\n";
    if (!out.flush()) return "could not write " + tmp.string();
  }
  std::vector<std::string> argv = walg;
  argv.insert(argv.end(), {"st", "put", "--no-compress", "--no-encrypt", "-f", tmp.string(), verified_marker_name(backup_id)});
  const auto r = run_process(argv);
  std::error_code ec;
  std::filesystem::remove(tmp, ec);
  if (r.exit_code != 0)
    return "wal-g st put of " + verified_marker_name(backup_id) + " failed (exit " + std::to_string(r.exit_code) +
           "): " + (r.err.empty() ? r.out : r.err).substr(0, 500);
  return "";
}

void write_termination(const Env& env, const std::string& text) {
  const std::string path = get(env, "TERMINATION_LOG", "/dev/termination-log");
  std::ofstream out(path, std::ios::trunc);
  out << text.substr(0, 4096);  // the kubelet keeps at most 4 KiB
}

Env current_environment() {
  Env env;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv(*e);
    const auto eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

int run_job(const std::string& action, const Env& env, std::ostream& log) {
  try {
    export_aws_names(env);
    if (action == "backup" || action == "full-backup") return backup(action, env, log);
    if (action == "offsite-copy") return offsite_copy(env, log);
    if (action == "retain") return retain(env, log);
    if (action == "catalog") return catalog(env, log);
    if (action == "restore") return restore(env, log);
    if (action == "validate-database-answers") return validate_database(env, log);
    if (action == "databasus-metadata") return databasus_metadata(env, log);
    if (action == "install-tools") return install_tools(env, log);
    if (action == "verify") return verify(env, log);
    if (action == "restore-in-place") return restore_in_place(env, log);
    if (action == "check-database") return check_database(env, log);
    throw Failure{"unknown action \"" + action +
                  "\" (supported: backup, full-backup, retain, catalog, offsite-copy, restore, validate-database-answers, "
                  "databasus-metadata, install-tools, verify, restore-in-place, check-database)"};
  } catch (const Failure& f) {
    const std::string msg = redact(f.message, env);
    log << "run-job: " << action << ": " << msg << "\n";
    write_termination(env, json{{"error", msg}}.dump());
    return 1;
  }
}

}  // namespace bo::jobs
