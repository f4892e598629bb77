#include "jobs/restore_in_place.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "jobs/in_place_plan.h"
#include "jobs/recovery.h"
#include "postgres/archiving.h"

namespace bo::jobs {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPrefix = "run-job: restore-in-place: ";

std::string errno_text(int err) { return std::strerror(err); }

// Tests only: a crash at a known point (documented in restore_in_place.h).
void test_kill_point(const Env& env, const std::string& point, std::ostream& log) {
  if (env_value(env, "BO_TEST_KILL_AFTER") != point) return;
  log << kPrefix << "BO_TEST_KILL_AFTER=" << point << ": exiting with 137 as if killed\n";
  log.flush();
  ::_exit(137);
}

// Makes a rename or a new file durable: fsync of the directory holding it.
void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0) throw JobError{"VolumeUnwritable", "cannot open " + p.string() + " to sync it: " + errno_text(errno)};
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw JobError{"VolumeUnwritable", "fsync " + p.string() + " failed: " + errno_text(err)};
}

// Replaces `p` by `text` atomically (a temporary file beside it, synced, renamed, the directory synced).
void write_atomically(const fs::path& p, const std::string& text) {
  const fs::path tmp = p.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw JobError{"VolumeUnwritable", "cannot write " + tmp.string() + ": " + errno_text(errno)};
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      throw JobError{"VolumeUnwritable", "cannot write " + tmp.string() + ": " + errno_text(err)};
    }
    done += static_cast<size_t>(n);
  }
  const bool synced = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!synced) throw JobError{"VolumeUnwritable", "fsync " + tmp.string() + " failed: " + errno_text(err)};
  if (::rename(tmp.c_str(), p.c_str()) != 0)
    throw JobError{"VolumeUnwritable", "cannot rename " + tmp.string() + " to " + p.string() + ": " + errno_text(errno)};
  fsync_path(p.parent_path(), true);
}

// Whether `dir` holds anything (at the volume root: anything but kept_at_root names).
bool holds_data(const fs::path& dir, bool root) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return false;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (!root || !kept_at_root(e.path().filename().string())) return true;
  if (ec) throw JobError{"VolumeUnreadable", "cannot list " + dir.string() + ": " + ec.message()};
  return false;
}

// Deletes what `dir` holds (at the volume root: but kept_at_root names); the top-level names deleted, sorted.
std::vector<std::string> clear_directory(const fs::path& dir, bool root) {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::exists(dir, ec)) return names;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (!root || !kept_at_root(e.path().filename().string())) names.push_back(e.path().filename().string());
  if (ec) throw JobError{"VolumeUnreadable", "cannot list " + dir.string() + ": " + ec.message()};
  std::sort(names.begin(), names.end());
  for (const auto& n : names) {
    fs::remove_all(dir / n, ec);
    if (ec) throw JobError{"VolumeUnwritable", "cannot delete " + (dir / n).string() + ": " + ec.message()};
  }
  fsync_path(dir, true);
  return names;
}

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "nothing" : out;
}

// rename(2) that never replaces: an existing (even empty) aside directory stays as it is.
void rename_no_replace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  int err = errno;
  if (err == EINVAL || err == ENOSYS) {  // a filesystem without RENAME_NOREPLACE: checked just before
    std::error_code ec;
    if (fs::exists(to, ec)) err = EEXIST;
    else if (::rename(from.c_str(), to.c_str()) == 0) return;
    else err = errno;
  }
  if (err == EEXIST || err == ENOTEMPTY)
    throw JobError{"AsideExists", to.string() + " already exists; an aside copy is never overwritten: move or delete it"};
  throw JobError{"MoveFailed", "cannot rename " + from.string() + " to " + to.string() + ": " + errno_text(err) +
                                   (err == EXDEV ? " (both must be on the claim's filesystem)" : "")};
}

uint64_t free_bytes(const fs::path& volume) {
  struct statvfs s{};
  if (::statvfs(volume.c_str(), &s) != 0)
    throw JobError{"VolumeUnreadable", "statvfs " + volume.string() + " failed: " + errno_text(errno)};
  return static_cast<uint64_t>(s.f_bavail) * static_cast<uint64_t>(s.f_frsize);
}

class InPlaceRestore {
 public:
  InPlaceRestore(const Env& env, std::ostream& log) : env_(env), log_(log) {}

  // The result, and the text to report when an earlier success is reported again.
  VerifyResult run(std::string& reported_again) {
    result_.restored = env_value(env_, "BACKUP_ID");
    result_.aside = "";
    result_.discarded = false;
    run_steps(result_, [&] { steps(reported_again); });
    if (server_) server_->stop();  // after a failure: fast shutdown, then SIGKILL (the marker says the directory is partial)
    if (!result_.error.empty() && touched_) result_.error += "; " + state_after_failure();
    return result_;
  }

  [[nodiscard]] bool finished() const { return finished_; }

 private:
  std::string state_after_failure() const {
    const std::string before = *result_.discarded ? "the data from before it was deleted (discardCurrentData)"
                               : result_.aside->empty()
                                   ? "there was no data before it"
                                   : "the data from before it is intact at " + paths_.volume + "/" + *result_.aside;
    return data_dir_.string() + " holds a partial restore, not a database to start (re-running the request carries on); " +
           before;
  }

  void write_marker(MarkerState state, const std::string& result_text = "") {
    RestoreMarker m;
    m.state = state;
    m.request = paths_.request;
    m.backup_id = request_.backup_id;
    m.data_path = paths_.data_path;
    m.aside = *result_.aside;
    m.discarded = *result_.discarded;
    m.result = result_text;
    write_atomically(marker_of(paths_), marker_json(m));
  }

  void steps(std::string& reported_again) {
    // 1. Everything the request says is checked before anything is touched.
    const auto request = parse_backup_request(
        env_, {"restore", "an in-place restore restores only the backup the catalog recorded, so it needs the "
                          "recorded checksum"});
    if (!request) throw request.error();
    request_ = *request;
    const auto paths = parse_in_place_paths(env_);
    if (!paths) throw JobError{"InvalidRequest", paths.error()};
    paths_ = *paths;
    const bool root = paths_.data_path.empty();
    data_dir_ = data_dir_of(paths_);
    std::error_code ec;
    if (!fs::is_directory(paths_.volume, ec))
      throw JobError{"InvalidRequest", "RESTORE_VOLUME " + paths_.volume + " is not a directory: is the claim mounted there?"};
    if (fs::exists(data_dir_, ec) && !fs::is_directory(data_dir_, ec))
      throw JobError{"InvalidRequest", "DATA_PATH: " + data_dir_.string() + " is not a directory"};
    if (!env_value(env_, "VERIFY_CHECKS").empty())
      log_ << kPrefix << "VERIFY_CHECKS are not run here (production data: nothing is created in it); "
           << "run-job check-database runs them against the production server\n";
    const fs::path run_dir = env_value(env_, "SCRATCH_SOCKET_DIR", "/run/scratch");
    const fs::path tools = env_value(env_, "TOOLS_DIR", "/tools");
    const fs::path tmp = run_dir / "tmp";
    fs::create_directories(tmp, ec);
    if (ec) throw JobError{"ScratchUnwritable", "cannot create " + tmp.string() + ": " + ec.message()};
    ::setenv("TMPDIR", tmp.c_str(), 1);
    const std::string who = env_value(env_, "RESTORE_REQUEST");
    log_ << kPrefix << who << ": " << request_.backup_id << " into " << data_dir_.string() << "\n";

    // An earlier attempt's marker: unreadable is a refusal (what the directory holds would be a guess).
    std::optional<RestoreMarker> marker;
    const fs::path marker_path = marker_of(paths_);
    if (fs::exists(marker_path, ec)) {
      auto parsed = parse_restore_marker(slurp_file(marker_path));
      if (!parsed)
        throw JobError{"MarkerUnreadable", marker_path.string() + ": " + parsed.error() +
                                               "; it records an in-place restore's progress: inspect the volume, then "
                                               "delete it"};
      marker = *parsed;
    }
    if (marker && marker->state == MarkerState::kDone && marker->request == paths_.request &&
        marker->backup_id == request_.backup_id && marker->data_path == paths_.data_path) {
      log_ << kPrefix << "this request already restored " << request_.backup_id << " into " << data_dir_.string()
           << "; reporting that result again, touching nothing\n";
      if (marker->result.empty())
        throw JobError{"MarkerUnreadable", marker_path.string() + " records this restore as done but not its result"};
      reported_again = marker->result;
      finished_ = true;
      return;
    }

    // 2. The stop sentinel, as stored, is the one the catalog recorded: nothing is moved before this.
    const auto walg = walg_command(env_, tools);
    const StopSentinel stop = check_stop_sentinel(
        walg, request_, result_, "refusing to restore a backup that changed after it was taken; nothing was moved");
    log_ << kPrefix << request_.backup_id << " " << result_.checksum << " ends at " << postgres::format_lsn(stop.finish_lsn)
         << "\n";

    // 3. The current data directory: moved aside, discarded, refused, or an earlier attempt carried on.
    CurrentData current;
    current.empty = !holds_data(data_dir_, root);
    current.aside_exists = !paths_.aside_path.empty() && fs::exists(aside_dir_of(paths_), ec);
    if (marker && !marker->aside.empty()) current.marker_aside_exists = fs::exists(paths_.volume + "/" + marker->aside, ec);
    current.free_bytes = free_bytes(paths_.volume);
    const InPlaceDecision decision = decide_in_place(paths_, request_.backup_id, marker, current);
    if (!decision.note.empty()) log_ << kPrefix << decision.note << "\n";
    if (decision.step == InPlaceStep::kRefuse) throw JobError{decision.reason, decision.message};
    result_.aside = decision.aside;
    result_.discarded = decision.discarded;
    switch (decision.step) {
      case InPlaceStep::kMoveAside: {
        const fs::path aside = aside_dir_of(paths_);
        write_marker(MarkerState::kMoving);
        fs::create_directories(aside.parent_path(), ec);
        try {
          rename_no_replace(data_dir_, aside);
        } catch (const JobError&) {
          // Nothing moved: the marker must not claim a move (a re-run would find both directories).
          fs::remove(marker_of(paths_), ec);
          throw;
        }
        touched_ = true;
        fsync_path(data_dir_.parent_path(), true);
        fsync_path(aside.parent_path(), true);
        log_ << kPrefix << "moved " << data_dir_.string() << " aside to " << aside.string()
             << " (a rename: it stays there for you to delete)\n";
        test_kill_point(env_, "move", log_);
        write_marker(MarkerState::kRestoring);
        break;
      }
      case InPlaceStep::kDiscard: {
        write_marker(MarkerState::kDiscarding);
        touched_ = true;
        const auto deleted = clear_directory(data_dir_, root);
        log_ << kPrefix << "deleted the current data (spec.discardCurrentData) from " << data_dir_.string() << ": "
             << joined(deleted) << (root ? " (lost+found kept)" : "") << "\n";
        write_marker(MarkerState::kRestoring);
        break;
      }
      case InPlaceStep::kResume: {
        write_marker(MarkerState::kRestoring);
        touched_ = true;
        const auto cleared = clear_directory(data_dir_, root);
        log_ << kPrefix << "cleared the partial restore from " << data_dir_.string() << ": " << joined(cleared) << "\n";
        break;
      }
      case InPlaceStep::kNothingToMove:
        write_marker(MarkerState::kRestoring);
        touched_ = true;
        log_ << kPrefix << data_dir_.string() << " is missing or empty: nothing to move aside\n";
        break;
      case InPlaceStep::kReportDone:
      case InPlaceStep::kRefuse:
        break;  // handled above
    }

    // 4. The backup's files.
    fetch_into_data_dir(walg, root);
    test_kill_point(env_, "fetch", log_);

    // 5. Recovery here, with the same private server as a verification.
    const ReplacedSettings replaced = write_recovery_settings(data_dir_, walg, request_.point_in_time);
    if (replaced.had_standby_signal)
      log_ << kPrefix << "the backup carried standby.signal: removed it, so the server promotes and production starts "
           << "as a primary\n";
    fs::path config_file;
    if (!fs::exists(data_dir_ / "postgresql.conf", ec)) {
      // The image keeps its postgresql.conf elsewhere (Debian: /etc): an empty one here, none written into the data.
      config_file = run_dir / "postgresql.conf";
      write_file(config_file, "", "ScratchUnwritable");
    }
    const fs::path server_log = restore_log_of(paths_);
    {
      std::ofstream header(server_log, std::ios::app);
      header << "----- backup-operator run-job restore-in-place " << who << ": " << request_.backup_id << " at "
             << format_rfc3339(std::chrono::system_clock::now()) << "\n";
    }
    fs::permissions(server_log, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace, ec);
    server_ = std::make_unique<PrivateServer>(
        env_, PrivateServerConfig{data_dir_, run_dir, server_log, "restore-in-place", config_file});
    server_->start(log_, kPrefix,
                   request_.point_in_time ? format_rfc3339_micro(*request_.point_in_time) : "the end of the backup");
    const std::string superuser = server_->wait_until_promoted(request_.recovery_deadline_seconds);
    result_.recovery_seconds = server_->seconds_since_start();
    log_ << kPrefix << "recovered and promoted in " << *result_.recovery_seconds << " s; connected as " << superuser
         << "\n";

    // 6. The built-in checks only: no user check, no role (nothing is created in production data).
    uint32_t timeline = 0;
    {
      std::string error;
      PgConn su = server_->connect(superuser, 60, error);
      if (!su) throw JobError{"ConnectFailed", "cannot connect as " + superuser + ": " + error};
      run_builtin_checks(su.get(), stop, request_, server_log, result_, env_, log_, kPrefix);
      const SqlOutcome wal = run_sql(su.get(), "select pg_walfile_name(pg_current_wal_lsn())");
      const auto segment = wal.error.empty() ? postgres::parse_wal_name(wal.value) : std::nullopt;
      if (!segment) throw JobError{"TimelineUnknown", "cannot read the promoted server's timeline: " + wal.error + wal.value};
      timeline = segment->timeline;
    }

    // 7. A clean stop: the shutdown checkpoint makes the directory consistent without any WAL replay.
    const bool clean = server_->stop(std::chrono::seconds(std::max(120, request_.recovery_deadline_seconds)));
    if (!clean)
      throw JobError{"UncleanShutdown", "the restored server did not shut down cleanly; its log ends:\n" +
                                            tail_text(slurp_file(server_log), 1500)};
    log_ << kPrefix << "the restored server has stopped cleanly on timeline " << timeline << "\n";
    test_kill_point(env_, "stop", log_);
    leave_for_production(replaced, timeline);

    // 8. Done: recorded before it is reported, so that a re-run reports it again.
    if (!all_passed(result_)) return;  // the marker stays "restoring": the directory is not to be started
    VerifyResult copy = result_;
    const std::string text = redacted_result_json(copy, env_);
    write_marker(MarkerState::kDone, text);
    reported_again = text;
    finished_ = true;
  }

  // wal-g fetches only into an empty directory; the volume root holds
  // lost+found (and our marker), so there it fetches into a staging
  // directory on the same filesystem and the entries are renamed up.
  void fetch_into_data_dir(const std::vector<std::string>& walg, bool root) {
    std::error_code ec;
    if (!root) {
      fs::create_directories(data_dir_, ec);
      if (ec) throw JobError{"VolumeUnwritable", "cannot create " + data_dir_.string() + ": " + ec.message()};
      fs::permissions(data_dir_, fs::perms::owner_all, fs::perm_options::replace, ec);
      log_ << kPrefix << "wal-g backup-fetch " << data_dir_.string() << " " << request_.backup_id << "\n";
      fetch_backup(walg, data_dir_, request_.backup_id);
      fsync_path(data_dir_, true);
      return;
    }
    const fs::path staging = data_dir_ / kFetchStaging;
    fs::remove_all(staging, ec);
    fs::create_directory(staging, ec);
    if (ec) throw JobError{"VolumeUnwritable", "cannot create " + staging.string() + ": " + ec.message()};
    fs::permissions(staging, fs::perms::owner_all, fs::perm_options::replace, ec);
    log_ << kPrefix << "wal-g backup-fetch " << staging.string() << " " << request_.backup_id
         << " (then moved up into the volume root)\n";
    fetch_backup(walg, staging, request_.backup_id);
    for (const auto& e : fs::directory_iterator(staging)) {
      const std::string name = e.path().filename().string();
      if (kept_at_root(name)) {
        log_ << kPrefix << "the backup carried " << name << "; the volume's own is kept\n";
        fs::remove_all(e.path(), ec);
        continue;
      }
      if (::rename(e.path().c_str(), (data_dir_ / name).c_str()) != 0)
        throw JobError{"VolumeUnwritable", "cannot move " + e.path().string() + " into " + data_dir_.string() + ": " +
                                               errno_text(errno)};
    }
    fs::remove(staging, ec);
    // PostgreSQL refuses a data directory others can read; the root may not be ours to change (then it says so).
    fs::permissions(data_dir_, fs::perms::owner_all, fs::perm_options::replace, ec);
    fsync_path(data_dir_, true);
  }

  // What production starts on: the settings as fetched, no signal file, and
  // the new timeline's history file marked for production's archiver.
  void leave_for_production(const ReplacedSettings& replaced, uint32_t timeline) {
    std::error_code ec;
    if (fs::exists(data_dir_ / "recovery.signal", ec)) {
      // Promotion removes it; one left would make production restore again, with no restore_command.
      fs::remove(data_dir_ / "recovery.signal", ec);
      log_ << kPrefix << "removed a recovery.signal the promotion left behind\n";
    }
    fs::remove(data_dir_ / "standby.signal", ec);
    const fs::path auto_conf = data_dir_ / "postgresql.auto.conf";
    if (env_value(env_, "HOLD_WRITES") == "true") {
      // Production comes up refusing writes until `run-job check-database`
      // has checked it and released them (ALTER SYSTEM RESET rewrites this file).
      write_atomically(auto_conf, replaced.auto_conf.value_or("") + std::string(kHoldWritesSetting));
      log_ << kPrefix << "postgresql.auto.conf is back as fetched, plus default_transaction_read_only = on: "
           << "writes are held until the checks pass\n";
    } else if (replaced.auto_conf) {
      write_atomically(auto_conf, *replaced.auto_conf);
      log_ << kPrefix << "postgresql.auto.conf is back as fetched (" << replaced.auto_conf->size()
           << " bytes): no restore_command or recovery target of ours remains\n";
    } else {
      fs::remove(auto_conf, ec);
      fsync_path(data_dir_, true);
      log_ << kPrefix << "the backup had no postgresql.auto.conf: removed ours\n";
    }
    const std::string history = history_file_name(timeline);
    const fs::path wal = data_dir_ / "pg_wal";
    if (!fs::exists(wal / history, ec))
      throw JobError{"HistoryFileMissing", "the promotion to timeline " + std::to_string(timeline) + " left no " +
                                               (wal / history).string() +
                                               "; a later point-in-time restore across this timeline would need it"};
    const fs::path status = wal / "archive_status";
    if (fs::exists(status / (history + ".ready"), ec) || fs::exists(status / (history + ".done"), ec)) {
      log_ << kPrefix << history << " already has an archive status\n";
      return;
    }
    fs::create_directories(status, ec);
    write_atomically(status / (history + ".ready"), "");
    log_ << kPrefix << "marked pg_wal/" << history
         << " ready for archiving: production's archiver uploads it when it starts (archive_mode was off here)\n";
  }

  const Env& env_;
  std::ostream& log_;
  VerifyResult result_;
  BackupRequest request_;
  InPlacePaths paths_;
  fs::path data_dir_;
  std::unique_ptr<PrivateServer> server_;
  bool touched_ = false;   // the marker was written: the data directory may have changed
  bool finished_ = false;  // success, recorded in the marker
};

}  // namespace

int restore_in_place(const Env& env, std::ostream& log) {
  std::string reported;
  InPlaceRestore restore(env, log);
  VerifyResult result = restore.run(reported);
  if (restore.finished() && result.error.empty() && !reported.empty()) {
    write_termination(env, reported);
    log << kPrefix << result.restored << ": restored in place\n";
    return 0;
  }
  return report_result(result, all_passed(result) && restore.finished(), env, log, kPrefix, "restored in place",
                       "NOT restored");
}

}  // namespace bo::jobs
