// backup-push PGDATA [--full|-f], after wal-g's local (PGDATA given) path:
// internal/databases/postgres/backup_push_handler.go
//  - handleBackupPushLocal: PGDATA must equal the server's `show data_directory`
//    (symlinks resolved), else "Data directory from command line '%s' is not the
//    same as Postgres' one '%s'"; checkPgVersionAndPgControl then requires
//    global/pg_control and PG_VERSION ("It looks like you are trying to backup
//    not pg_data. PgControl file not found: ...").
//  - delta_backup_configurator.go (RegularDeltaBackupConfigurator.Configure):
//    no delta unless WALG_DELTA_MAX_STEPS > 0 and a previous backup exists;
//    DeltaCount = previous + 1, full once it would exceed the maximum; a base
//    without LSN or a permanent base (unless LATEST_FULL) gives a full backup;
//    WALG_DELTA_ORIGIN=LATEST_FULL bases the delta on the chain's full backup.
//    --full skips all this (isFullBackup).
//  - queryRunner.go (PG >= 15): one connection runs
//    pg_backup_start($1, true) with label time.Now() and, after the copy,
//    pg_backup_stop(false) in a transaction (wait_for_archive = false: wal-g
//    does not wait for the WAL to be archived).
//  - bundle.go: StartBackup names the backup "base_" + pg_walfile_name(start
//    lsn); handleDeltaBackup appends "_D_" + StripWalFileName(base name) and
//    refuses a base whose FinishLSN is past the new start ("Finish LSN of backup
//    %v greater than current LSN") or whose SystemIdentifier differs ("Current
//    database and database of base backup are not equal."). ExcludedFilenames:
//    log, pg_log, pg_xlog, pg_wal, pgsql_tmp, postgresql.auto.conf.tmp,
//    postmaster.pid, postmaster.opts, recovery.conf, pg_dynshmem, pg_notify,
//    pg_replslot, pg_serial, pg_stat_tmp, pg_snapshots, pg_subtrans,
//    standby.signal (excluded directories are kept, empty). pg_control goes
//    last into its own tar_partitions/pg_control.tar.lz4; backup_label and
//    tablespace_map from pg_backup_stop into tar_partitions/backup_label.tar.lz4.
//    addToBundle skips (IsSkipped) a file of the base whose mtime is unchanged.
//  - uploadMetadata: metadata.json (ExtendedMetadataDto), files_metadata.json
//    (FilesMetadataDto), and the sentinel (BackupSentinelDtoV2) last.
// Differences: a changed file goes into a delta whole (wal-g sends only the
// changed pages of paged relation files, IsIncremented); one tar partition
// (no WALG_TAR_SIZE_THRESHOLD split); no tablespaces (refused); no
// --permanent, --add-user-data, --delta-from-name, remote (no PGDATA) backups,
// page checksum verification, rate limits or WAL-delta maps.
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "archive.h"
#include "catalog.h"
#include "commands.h"
#include "crypter.h"
#include "pg.h"
#include "storage.h"

namespace walg {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::set<std::string> kExcluded = {
    "log",         "pg_log",      "pg_xlog",     "pg_wal",       "pgsql_tmp",      "postgresql.auto.conf.tmp",
    "postmaster.pid", "postmaster.opts", "recovery.conf", "pg_dynshmem", "pg_notify", "pg_replslot",
    "pg_serial",   "pg_stat_tmp", "pg_snapshots", "pg_subtrans",  "standby.signal"};

struct DeltaBase {
  std::string name;
  json sentinel;
  json files;  // FilesMetadataDto.Files of the base
  int increment_count = 0;
};

// RegularDeltaBackupConfigurator.Configure; nullopt means a full backup.
std::optional<DeltaBase> configure_delta(Storage& storage, const Settings& settings) {
  int max_deltas = 0;
  try {
    max_deltas = std::stoi(setting(settings, "WALG_DELTA_MAX_STEPS", "0"));
  } catch (const std::exception&) {
    throw Failure{"invalid WALG_DELTA_MAX_STEPS"};
  }
  const std::string origin = setting(settings, "WALG_DELTA_ORIGIN", "LATEST");
  if (origin != "LATEST" && origin != "LATEST_FULL") throw Failure{"Unknown WALG_DELTA_ORIGIN: " + origin};
  const bool from_full = origin == "LATEST_FULL";
  if (max_deltas <= 0) return std::nullopt;
  const auto all = list_backups(storage);
  if (all.empty()) {
    log_info("Couldn't find previous backup. Doing full backup.");
    return std::nullopt;
  }
  DeltaBase base{all.back().name, read_sentinel(storage, all.back().name), {}, 1};
  if (base.sentinel.contains("DeltaCount")) base.increment_count = base.sentinel["DeltaCount"].get<int>() + 1;
  if (base.increment_count > max_deltas) {
    log_info("Reached max delta steps. Doing full backup.");
    return std::nullopt;
  }
  if (!base.sentinel.contains("LSN") || base.sentinel["LSN"].is_null()) {
    log_info("LATEST backup was made without support for delta feature. Fallback to full backup with LSN marker for future deltas.");
    return std::nullopt;
  }
  const json meta = read_backup_json(storage, base.name, "metadata.json");
  if (meta.is_object() && meta.empty()) {
    log_info("Failed to get previous backup metadata. Doing full backup.");
    return std::nullopt;
  }
  if (!from_full && meta.value("is_permanent", false)) {
    log_info("Can't do a delta backup from permanent backup. Doing full backup.");
    return std::nullopt;
  }
  if (from_full) {
    log_info("Delta will be made from full backup.");
    if (base.sentinel.contains("DeltaFullName")) {
      base.name = base.sentinel["DeltaFullName"].get<std::string>();
      base.sentinel = read_sentinel(storage, base.name);
    }
  }
  base.files = read_backup_json(storage, base.name, "files_metadata.json").value("Files", json::object());
  log_info("Delta backup from " + base.name + " with LSN " + std::to_string(base.sentinel["LSN"].get<uint64_t>()) + ".");
  return base;
}

std::string mtime_text(const struct stat& st) {
  return go_time(std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec))));
}

struct Walk {
  const fs::path root;
  TarWriter& tar;
  const json& base_files;
  const bool delta;
  json files = json::object();

  void dir(const fs::path& d) {
    std::vector<fs::path> entries;
    for (const auto& e : fs::directory_iterator(d)) entries.push_back(e.path());
    std::sort(entries.begin(), entries.end());
    for (const auto& p : entries) {
      struct stat st {};
      if (::lstat(p.c_str(), &st) != 0) continue;  // deleted during the walk, as wal-g tolerates
      const std::string name = p.filename().string();
      const std::string rel = fs::relative(p, root).generic_string();
      if (rel == "global/pg_control") continue;  // uploaded last, separately
      const bool excluded = kExcluded.contains(name);
      if (S_ISDIR(st.st_mode)) {
        tar.add_directory(rel, st);
        if (rel == "pg_tblspc" && !fs::is_empty(p))
          throw Failure{"wal-g stand-in: backup-push of tablespaces is not implemented"};
        if (!excluded) dir(p);
      } else if (S_ISREG(st.st_mode) && !excluded) {
        const std::string mtime = mtime_text(st);
        if (delta && base_files.contains(rel) && base_files[rel].value("MTime", "") == mtime) {
          files[rel] = {{"IsIncremented", false}, {"IsSkipped", true}, {"MTime", mtime}};
          continue;
        }
        tar.add_file(rel, p, st);
        files[rel] = {{"IsIncremented", false}, {"IsSkipped", false}, {"MTime", mtime}};
      }
    }
  }
};

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "walg-standin-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw Failure{"cannot create a temporary directory"};
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

}  // namespace

int backup_push(const Args& args, const Settings& settings) {
  std::string pgdata;
  bool full = false;
  for (const auto& a : args) {
    if (a == "--full" || a == "-f") full = true;
    else if (a.starts_with("-")) throw Failure{"wal-g stand-in: backup-push " + a + " is not implemented"};
    else if (pgdata.empty()) pgdata = a;
    else throw Failure{"accepts at most 1 arg(s), received " + std::to_string(args.size())};
  }
  if (pgdata.empty()) throw Failure{"wal-g stand-in: backup-push without PGDATA (remote backup) is not implemented"};
  const auto start_time = std::chrono::system_clock::now();
  Storage storage = configure_storage(settings);
  // wal-g checks the key when it encrypts the first partition, after pg_backup_start;
  // the stand-in checks it before starting the backup.
  const std::optional<Crypter> crypter = Crypter::from_settings(settings);
  if (crypter) (void)crypter->key();

  PgConnection pg;
  std::error_code ec;
  const std::string from_server = fs::weakly_canonical(pg.value("show data_directory", {}, "show data_directory"), ec).string();
  const int pg_version = std::stoi(pg.value("select (current_setting('server_version_num'))::int"));
  // NewPgQueryRunner: a failing system identifier query is only a warning.
  std::string system_id;
  try {
    system_id = pg.value("select system_identifier from pg_control_system()");
  } catch (const Failure& f) {
    log_warning("Couldn't get system identifier because of error: '" + f.message + "'");
  }
  // utility.AbsResolveSymlink(fromCli) != fromServer
  const std::string from_cli = fs::weakly_canonical(fs::absolute(pgdata), ec).string();
  if (from_cli != from_server)
    throw Failure{"Data directory from command line '" + pgdata + "' is not the same as Postgres' one '" + from_server + "'"};
  if (!fs::is_regular_file(fs::path(from_server) / "global/pg_control"))
    throw Failure{"It looks like you are trying to backup not pg_data. PgControl file not found: open " + from_server +
                  "/global/pg_control: no such file or directory"};
  if (!fs::is_regular_file(fs::path(from_server) / "PG_VERSION"))
    throw Failure{"It looks like you are trying to backup not pg_data. PG_VERSION file not found: open " + from_server +
                  "/PG_VERSION: no such file or directory"};

  std::optional<DeltaBase> base;
  if (full) log_info("Doing full backup.");
  else base = configure_delta(storage, settings);

  // Label: utility.CeilTimeUpToMicroseconds(time.Now()).String(), Go's time format.
  const auto row = pg.query(
      "SELECT case when pg_is_in_recovery() then '' else (pg_walfile_name_offset(lsn)).file_name end, lsn::text, "
      "pg_is_in_recovery() FROM pg_backup_start($1, true) lsn",
      {go_time(start_time)}, "QueryRunner StartBackup: pg_start_backup() failed");
  if (row.size() != 1 || !row[0][0] || !row[0][1]) throw Failure{"QueryRunner StartBackup: unexpected result"};
  if (row[0][2] == std::optional<std::string>("t"))
    throw Failure{"wal-g stand-in: backup-push from a standby is not implemented"};
  const uint64_t start_lsn = parse_lsn(*row[0][1]);
  const auto timeline = static_cast<uint32_t>(std::stoul(pg.value("select timeline_id from pg_control_checkpoint()")));
  std::string name = "base_" + *row[0][0];
  if (base) {
    log_info("Delta backup enabled");
    if (base->sentinel.value("FinishLSN", uint64_t{0}) > start_lsn)
      throw Failure{"Finish LSN of backup " + base->name + " greater than current LSN"};
    if (base->sentinel.contains("SystemIdentifier") && !system_id.empty() && std::to_string(base->sentinel["SystemIdentifier"].get<uint64_t>()) != system_id)
      throw Failure{"Current database and database of base backup are not equal."};
    name += "_D_" + strip_wal_file_name(base->name);
  }

  TempDir tmp;
  const std::string parts = kBaseBackups + name + "/tar_partitions/";
  uint64_t compressed = 0;
  auto upload = [&](const std::string& object, const fs::path& file) {
    encrypt_in_place(crypter, file);  // compress, then encrypt (internal.CompressAndEncrypt)
    compressed += fs::file_size(file);
    storage.put_file(object, file);
  };
  log_info("Starting a new tar bundle");
  TarWriter tar(tmp.path / "part_1.tar.lz4");
  static const json kNoFiles = json::object();
  Walk walk{from_server, tar, base ? base->files : kNoFiles, base.has_value()};
  log_info("Walking ...");
  walk.dir(from_server);
  tar.close();
  uint64_t uncompressed = tar.content_bytes();
  upload(parts + "part_1.tar.lz4", tmp.path / "part_1.tar.lz4");

  {  // pg_control, after everything else (bundle.UploadPgControl)
    TarWriter control(tmp.path / "pg_control.tar.lz4");
    struct stat st {};
    const fs::path p = fs::path(from_server) / "global/pg_control";
    if (::stat(p.c_str(), &st) != 0) throw Failure{"UploadPgControl: cannot stat " + p.string()};
    control.add_file("global/pg_control", p, st);
    control.close();
    uncompressed += control.content_bytes();
    upload(parts + "pg_control.tar.lz4", tmp.path / "pg_control.tar.lz4");
  }

  pg.query("BEGIN");
  pg.query("SET statement_timeout=0;");
  const auto stop = pg.query("SELECT labelfile, spcmapfile, lsn FROM pg_backup_stop(false)", {},
                             "UploadLabelFiles: failed to stop backup: QueryRunner StopBackup: stop backup failed");
  pg.query("COMMIT");
  if (stop.size() != 1 || !stop[0][0] || !stop[0][2]) throw Failure{"pg_backup_stop returned no label"};
  const uint64_t finish_lsn = parse_lsn(*stop[0][2]);
  {
    TarWriter labels(tmp.path / "backup_label.tar.lz4");
    labels.add_bytes("backup_label", *stop[0][0], 0600);
    labels.add_bytes("tablespace_map", stop[0][1].value_or(""), 0600);
    labels.close();
    uncompressed += labels.content_bytes();
    upload(parts + "backup_label.tar.lz4", tmp.path / "backup_label.tar.lz4");
  }

  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  json sentinel = {{"LSN", start_lsn},
                   {"Timeline", timeline},
                   {"PgVersion", pg_version},
                   {"FinishLSN", finish_lsn},
                   {"SystemIdentifier", system_id.empty() ? json(nullptr) : json(std::stoull(system_id))},
                   {"UncompressedSize", uncompressed},
                   {"CompressedSize", compressed},
                   {"DataCatalogSize", 0},
                   {"Spec", nullptr}};
  if (base) {
    sentinel["DeltaLSN"] = base->sentinel["LSN"];
    sentinel["DeltaFrom"] = base->name;
    sentinel["DeltaFullName"] = base->sentinel.contains("DeltaFullName") ? base->sentinel["DeltaFullName"] : json(base->name);
    sentinel["DeltaCount"] = base->increment_count;
  }
  const std::string finish_time = go_time(std::chrono::system_clock::now());
  const json meta = {{"start_time", go_time(start_time)}, {"finish_time", finish_time},
                     {"date_fmt", "%Y-%m-%dT%H:%M:%S.%fZ"}, {"hostname", host},
                     {"data_dir", from_server},           {"pg_version", pg_version},
                     {"start_lsn", start_lsn},            {"finish_lsn", finish_lsn},
                     {"is_permanent", false},             {"system_identifier", system_id.empty() ? json(nullptr) : json(std::stoull(system_id))},
                     {"timeline", timeline},              {"uncompressed_size", uncompressed},
                     {"compressed_size", compressed}};
  json files_meta = {{"Files", walk.files},
                     {"TarFileSets",
                      {{"part_1.tar.lz4", json::array()}, {"backup_label.tar.lz4", {"tablespace_map", "backup_label"}}}}};
  for (const auto& [f, d] : walk.files.items())
    if (!d["IsSkipped"].get<bool>()) files_meta["TarFileSets"]["part_1.tar.lz4"].push_back(f);
  storage.put_text(kBaseBackups + name + "/metadata.json", meta.dump());
  storage.put_text(kBaseBackups + name + "/files_metadata.json", files_meta.dump());
  json v2 = sentinel;  // BackupSentinelDtoV2
  v2["Version"] = 2;
  v2["StartTime"] = go_time(start_time);
  v2["FinishTime"] = finish_time;
  v2["DateFmt"] = "%Y-%m-%dT%H:%M:%S.%fZ";
  v2["Hostname"] = host;
  v2["DataDir"] = from_server;
  v2["IsPermanent"] = false;
  storage.put_text(kBaseBackups + name + kSentinelSuffix, v2.dump());
  log_info("Wrote backup with name " + name + " to storage default");
  return 0;
}

}  // namespace walg
