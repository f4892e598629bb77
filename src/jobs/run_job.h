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

namespace bo::jobs {

using Env = std::map<std::string, std::string>;

// Returns the process exit code. `env` is the job's environment (WALG_*,
// PG*, BACKUP_*, RETAIN_*; WALG_BINARY and TERMINATION_LOG override the
// wal-g path and /dev/termination-log).
int run_job(const std::string& action, const Env& env, std::ostream& log);

// The value of `key`, or `def` when it is missing or empty.
[[nodiscard]] std::string env_value(const Env& env, const std::string& key, const std::string& def = "");

// Replaces every value of a secret-looking variable (…SECRET…, …KEY…,
// …PASSWORD…, …TOKEN…) found in `text` by "[redacted]".
std::string redact(std::string text, const Env& env);

Env current_environment();

// Writes `text` (at most 4096 bytes, what the kubelet keeps) to
// $TERMINATION_LOG, default /dev/termination-log.
void write_termination(const Env& env, const std::string& text);

}  // namespace bo::jobs
