// `run-job check-database`: after an in-place restore the operator scales the
// database workload back up and runs this in its own image against the
// production server (libpq's PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD,
// PGSSLMODE… read by libpq itself; the policy's credentials by secretKeyRef),
// and lifts the namespace's freeze only when every check passed:
//   recovered          it accepts connections and is out of recovery (waits up
//                      to READY_DEADLINE_SECONDS, default 600); nothing is
//                      written to prove it;
//   system-identifier  pg_control_system() is EXPECT_SYSTEM_IDENTIFIER, what
//                      the restore Job reported (empty: cannot compare, fails);
//   supabase-schemas   with VERIFY_PROFILE=supabase-self-hosted;
//   then each VERIFY_CHECKS check, as the connecting user (no role is created
//   in production), one statement inside a READ ONLY transaction with
//   SET LOCAL statement_timeout, rolled back.
// The result (verify's shape: restored, checksum, recovered, checks, error),
// capped and redacted, goes to the termination message; exit 0 iff all passed.
#pragma once
#include <ostream>

#include "jobs/run_job.h"

namespace bo::jobs {

int check_database(const Env& env, std::ostream& log);

}  // namespace bo::jobs
