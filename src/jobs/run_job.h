// The Job side: `backup-operator run-job ACTION` runs inside backup Jobs. It
// drives wal-g (backup-push, backup-list --json --detail, st cat, delete),
// computes the backup's checksum (sha256 over its stop sentinel as stored)
// and writes the result contract to the termination message. Errors exit
// non-zero with a message a human can act on; secret values from the
// environment are redacted from anything it prints or writes.
#pragma once
#include <map>
#include <ostream>
#include <string>
#include <utility>

#include "common/redaction.h"

namespace bo::jobs {

using Env = std::map<std::string, std::string>;

// Returns the process exit code. `env` is the job's environment (WALG_*,
// PG*, BACKUP_*, RETAIN_*; WALG_BINARY and TERMINATION_LOG override the
// wal-g path and /dev/termination-log).
int run_job(const std::string& action, const Env& env, std::ostream& log);

// The value of `key`, or `def` when it is missing or empty.
[[nodiscard]] std::string env_value(const Env& env, const std::string& key, const std::string& def = "");

// Where a successful verification leaves its marker, relative to the WAL-G
// prefix and beside WAL-G's own basebackups_005/ and wal_005/ folders:
// backup-operator/verified/<backup>.json, {"backupId", "checksum",
// "verifiedAt", "request"}. `run-job verify` writes it (wal-g st put), and
// `run-job catalog` reads it back, so a catalog rebuilt from storage keeps
// what was verified. wal-g never reads or deletes it.
[[nodiscard]] std::string verified_marker_name(const std::string& backup_id);

// Writes the marker of `backup_id` with `walg` (the wal-g command line, its
// credentials in the environment): `wal-g st put --no-compress --no-encrypt`
// of a file made in `tmp_dir` (so `st cat` reads back what was written; it
// holds no secret). An empty string on success, else what failed. A
// verification's own Secret is read-only by policy, so the backup Job of the
// next slot writes the markers of what was verified (VERIFIED_MARKERS).
[[nodiscard]] std::string put_verified_marker(const std::vector<std::string>& walg, const std::string& tmp_dir,
                                              const std::string& backup_id, const std::string& checksum,
                                              const std::string& request);

// Replaces every value of a secret-looking variable (…SECRET…, …KEY…,
// …PASSWORD…, …TOKEN…) found in `text` by "[redacted]".
[[nodiscard]] inline std::string redact(std::string text, const Env& env) {
  return redact_environment(std::move(text), env);
}

Env current_environment();

// Writes `text` (at most 4096 bytes, what the kubelet keeps) to
// $TERMINATION_LOG, default /dev/termination-log.
void write_termination(const Env& env, const std::string& text);

}  // namespace bo::jobs
