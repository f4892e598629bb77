// `run-job verify`: the scratch verification's `postgres` container, run in
// the database's own image through the tools the init container installed
// (install_tools.h). It proves a backup by restoring it into a throwaway
// PostgreSQL and querying it:
//   1. `wal-g st cat` the stop sentinel; its sha256 must be BACKUP_CHECKSUM
//      (refused before anything is fetched);
//   2. `wal-g backup-fetch PGDATA BACKUP_ID`;
//   3. recovery settings (verify_checks.h: restore_command through the copied
//      loader, to the backup's end or POINT_IN_TIME, then promote) and
//      recovery.signal;
//   4. the image's `postgres` with no TCP listener (listen_addresses=''), its
//      socket in SCRATCH_SOCKET_DIR, archive_mode=off (it never archives into
//      production's storage), its own hba_file ("local all all trust" only),
//      no preloaded libraries (no extension's background worker runs: pg_cron
//      jobs do not fire, pg_net sends nothing);
//   5. waits (RECOVERY_DEADLINE_SECONDS, default 1800) until recovery has
//      ended and a write succeeds;
//   6. the built-in checks as the bootstrap superuser, then the user's SQL
//      checks (VERIFY_CHECKS) as the role backup_operator_check, which may
//      read and write every table (pg_read_all_data, pg_write_all_data,
//      BYPASSRLS) but is no superuser: a check cannot run programs or read
//      the server's files or environment, where the storage Secret is;
//   7. stops the server (fast shutdown, then SIGKILL to its process group)
//      and writes the result JSON (verify_checks.h) to the termination
//      message: exit 0 when every check passed, else 1.
// The server's log is kept beside PGDATA (postgres.log) with the rest of the
// scratch volume, for whoever looks at a failed verification.
#pragma once
#include <ostream>

#include "jobs/run_job.h"

namespace bo::jobs {

inline constexpr const char* kCheckRole = "backup_operator_check";
inline constexpr const char* kScratchMarker = ".backup-operator-scratch";  // beside PGDATA: we made it
inline constexpr const char* kServerLog = "postgres.log";                  // beside PGDATA

int verify(const Env& env, std::ostream& log);

}  // namespace bo::jobs
