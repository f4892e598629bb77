// A stand-in for wal-g (github.com/wal-g/wal-g) in tests: the PostgreSQL
// commands the operator runs, behaving as wal-g's documentation
// (docs/PostgreSQL.md, docs/STORAGES.md, docs/StorageTools.md) and source
// (cmd/pg/, internal/, internal/databases/postgres/) say, over a real
// PostgreSQL and real storage (a directory or S3). Each command's file cites
// the upstream code it follows and lists where it still differs.
//
// Differences from wal-g overall (besides those in each file):
//  - encryption: libsodium only (WALG_LIBSODIUM_KEY, WALG_LIBSODIUM_KEY_PATH,
//    WALG_LIBSODIUM_KEY_TRANSFORM; see crypter.h, after wal-g's
//    internal/crypto/libsodium/{crypter,keytransform,reader,writer}.go): tar
//    partitions and WAL files are compressed, then encrypted
//    (internal.CompressAndEncrypt), and decrypted, then decompressed, on fetch
//    (DecompressDecryptBytes); sentinels, metadata.json and files_metadata.json
//    stay plain JSON, as wal-g uploads them with Uploader.Upload (UploadDto).
//    WALG_PGP_KEY(_PATH) and WALG_CSE_KMS_ID are refused as not implemented;
//    `st cat` has no --decrypt/--decompress; copy moves objects as stored (as
//    wal-g's copy does), so both storages need the same key;
//  - compression is always LZ4 (WALG_COMPRESSION_METHOD other than lz4 refused);
//  - storages: S3 and the file system only; S3 credentials only from
//    AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; no region discovery (AWS_REGION or
//    us-east-1);
//  - no --config flag, no WALG_* config file in $HOME (settings come from the
//    environment; copy reads its two config files);
//  - log lines imitate tracelog's format, their wording is not guaranteed;
//  - anything not implemented exits 1 with
//    "wal-g stand-in: <command> is not implemented".
#include <cstdlib>
#include <cstdio>
#include <iostream>

#include "commands.h"

namespace {

// Leaves without running static destructors: cpprestsdk's shared thread pool
// (the S3 client's) still has threads at exit, and destroying the statics
// under them corrupted the heap now and then ("malloc_consolidate():
// unaligned fastbin chunk detected", an abort instead of wal-g's exit 74 to
// a restore_command). Everything the command wrote is flushed first.
[[noreturn]] void finish(int code) {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  std::_Exit(code);
}

int run(const walg::Args& all) {
  using namespace walg;
  const std::string command = all.empty() ? "" : all[0];
  const Args args(all.empty() ? all.begin() : all.begin() + 1, all.end());
  try {
    const Settings settings = settings_from_environment();
    for (const char* key : {"WALG_PGP_KEY", "WALG_PGP_KEY_PATH", "WALG_CSE_KMS_ID"})
      if (!setting(settings, key).empty()) throw Failure{std::string("wal-g stand-in: encryption (") + key + ") is not implemented"};
    if (const auto c = setting(settings, "WALG_COMPRESSION_METHOD", "lz4"); c != "lz4")
      throw Failure{"wal-g stand-in: WALG_COMPRESSION_METHOD=" + c + " is not implemented"};
    if (command == "backup-push") return backup_push(args, settings);
    if (command == "backup-fetch") return backup_fetch(args, settings);
    if (command == "backup-list") return backup_list(args, settings);
    if (command == "wal-push") return wal_push(args, settings);
    if (command == "wal-fetch") return wal_fetch(args, settings);
    if (command == "delete") return delete_backups(args, settings);
    if (command == "st") return storage_tools(args, settings);
    if (command == "copy") return copy_backups(args, settings);
    throw Failure{"wal-g stand-in: " + (command.empty() ? std::string("(no command)") : command) + " is not implemented"};
  } catch (const Failure& f) {
    std::cerr << "ERROR: " << f.message << "\n";
    return f.exit_code;
  } catch (const std::exception& e) {
    std::cerr << "ERROR: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace

int main(int argc, char** argv) { finish(run(walg::Args(argv + 1, argv + argc))); }
