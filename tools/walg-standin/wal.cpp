// wal-push PATH and wal-fetch NAME DESTINATION, after wal-g's
// internal/databases/postgres/wal_push_handler.go and cmd/pg/wal_fetch.go:
//  - wal-push uploads the file, LZ4-compressed (default compression), as
//    wal_005/<file name>.lz4.
//  - wal-fetch looks the segment up in wal_005/ and, when it is missing, logs
//    "Archive '<name>' does not exist." and exits with constants.ExIoError (74),
//    which PostgreSQL's restore_command contract reads as "no such file".
// Differences: no background upload of other .ready files
// (WALG_UPLOAD_CONCURRENCY), no WALG_PREVENT_WAL_OVERWRITE check, no prefetch,
// no wal-receive/wal-verify/wal-show.
#include <unistd.h>

#include <filesystem>

#include "archive.h"
#include "commands.h"
#include "crypter.h"
#include "storage.h"

namespace walg {
namespace fs = std::filesystem;

int wal_push(const Args& args, const Settings& settings) {
  if (args.size() != 1) throw Failure{"accepts 1 arg(s), received " + std::to_string(args.size())};
  const fs::path wal = args[0];
  if (!fs::is_regular_file(wal)) throw Failure{"failed to open " + wal.string() + ": no such file or directory"};
  Storage storage = configure_storage(settings);
  const fs::path tmp = fs::temp_directory_path() / ("walg-standin-wal-" + std::to_string(::getpid()) + ".lz4");
  const std::optional<Crypter> crypter = Crypter::from_settings(settings);
  try {
    compress_lz4(wal, tmp);
    encrypt_in_place(crypter, tmp);  // compress, then encrypt (internal.CompressAndEncrypt)
    storage.put_file(kWal + wal.filename().string() + ".lz4", tmp);
  } catch (...) {
    fs::remove(tmp);
    throw;
  }
  fs::remove(tmp);
  log_info("FILE PATH: " + wal.filename().string() + ".lz4");
  return 0;
}

int wal_fetch(const Args& args, const Settings& settings) {
  if (args.size() != 2) throw Failure{"accepts 2 arg(s), received " + std::to_string(args.size())};
  const std::string name = args[0];
  const fs::path dest = args[1];
  Storage storage = configure_storage(settings);
  const fs::path partial = dest.string() + ".walg-partial";
  const fs::path plain = dest.string() + ".walg-plain";
  const std::optional<Crypter> crypter = Crypter::from_settings(settings);
  try {  // nothing half-written is left at (or next to) the destination
    if (storage.get_file(kWal + name + ".lz4", partial)) {
      decrypt_in_place(crypter, partial, kWal + name + ".lz4");  // decrypt, then decompress (DecompressDecryptBytes)
      decompress_lz4(partial, plain);
      fs::remove(partial);
      fs::rename(plain, dest);
      return 0;
    }
    if (storage.get_file(kWal + name, partial)) {  // stored uncompressed: still decrypted (DecryptBytes)
      decrypt_in_place(crypter, partial, kWal + name);
      fs::rename(partial, dest);
      return 0;
    }
  } catch (...) {
    std::error_code ec;
    fs::remove(partial, ec);
    fs::remove(plain, ec);
    throw;
  }
  throw Failure{"Archive '" + name + "' does not exist.", 74};
}

}  // namespace walg
