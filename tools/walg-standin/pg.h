// One libpq connection, configured as wal-g's is: from the libpq environment
// (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ...; docs/PostgreSQL.md
// "Configuration"). backup-push keeps this one session open from
// pg_backup_start to pg_backup_stop, which a non-exclusive backup requires.
#pragma once
#include <optional>
#include <string>
#include <vector>

struct pg_conn;

namespace walg {

using Row = std::vector<std::optional<std::string>>;

class PgConnection {
 public:
  PgConnection();  // connects or throws Failure
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // Runs `sql` with text parameters $1..$n; throws Failure naming `what` on error.
  std::vector<Row> query(const std::string& sql, const std::vector<std::string>& params = {},
                         const std::string& what = "query");
  // The single value of a one-row, one-column query.
  std::string value(const std::string& sql, const std::vector<std::string>& params = {},
                    const std::string& what = "query");

 private:
  pg_conn* conn_ = nullptr;
};

}  // namespace walg
