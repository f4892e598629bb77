// `run-job restore-in-place`: the Job of an in-place restore (a
// RestoreRequest with purpose restore into the policy's own namespace). The
// operator has frozen the namespace and scaled the database workload to 0;
// this Job's Pod mounts the database's claim at its root (RESTORE_VOLUME)
// and runs in the database's own image through the tools the init container
// installed (install_tools.h), as `run-job verify` does. It:
//   1. checks the whole request, then the stop sentinel's sha256 (nothing is
//      moved before that);
//   2. decides what becomes of the current data directory (in_place_plan.h:
//      moved aside by rename, discarded when the user said so, or refused),
//      recording each step in a marker on the volume first, so that a re-run
//      after a crash at any point carries on and never moves a partial
//      restore onto the real aside copy, and a re-run after success reports
//      the success again;
//   3. fetches the backup into the data directory and recovers it here, not
//      in the production Pod: the image's postgres with no TCP listener, its
//      socket in SCRATCH_SOCKET_DIR, archive_mode=off, its own hba file, no
//      preloaded libraries (recovery.h), until it has promoted and accepts a
//      write; the built-in checks (no user checks, no role: nothing is
//      created in production data); a clean fast shutdown;
//   4. puts postgresql.auto.conf back as it was fetched, and marks the new
//      timeline's history file ready for archiving, so that production's own
//      archiver uploads it when it starts (archive_mode was off here);
//   5. writes the result (verify's shape plus "aside" and "discarded") to the
//      termination message: exit 0 only when recovered and every check passed.
// Production then starts on an already promoted, consistent cluster and needs
// no restore_command; a failed recovery never brings it up on half-recovered
// data. The server's log stays on the volume beside the data directory.
// BO_TEST_KILL_AFTER=move|fetch|stop makes the process _exit(137) right
// after that step (tests only: a crash at a known point).
#pragma once
#include <ostream>

#include "jobs/run_job.h"

namespace bo::jobs {

// With HOLD_WRITES=true the restored postgresql.auto.conf ends with this:
// production starts refusing writes from every session that does not ask
// otherwise, until `run-job check-database` with RELEASE_WRITES=true has
// checked it and reset the setting (check_database.h).
inline constexpr const char* kHoldWritesSetting =
    "\n# backup-operator: writes held until the in-place restore's checks pass\n"
    "default_transaction_read_only = on\n";


int restore_in_place(const Env& env, std::ostream& log);

}  // namespace bo::jobs
