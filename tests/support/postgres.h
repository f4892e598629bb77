// Test harness: Debian's PostgreSQL 15 (/usr/lib/postgresql/15/bin) on a free
// loopback port (started again on another when another process took it first;
// see Postgres::start), either freshly initdb'd with WAL archiving on, or started on
// an existing (restored) data directory, waiting until its recovery has ended
// and it accepts writes. PostgreSQL refuses to run as root: under root (CI)
// the server, initdb and everything archive_command runs are `nobody:nogroup`
// (setpriv), and the data directory is handed to that user. Every wait has a
// deadline; the server stops (fast shutdown, then SIGKILL) on destruction.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace testing_support {

using PgRow = std::vector<std::optional<std::string>>;

struct PostgresOptions {
  // archive_mode=on with this archive_command (e.g. "WALG_FILE_PREFIX=/x /path/wal-g wal-push %p"); empty: archiving off.
  std::string archive_command;
  int archive_timeout_s = 0;  // 0: PostgreSQL's default (off)
  // More settings, passed as `-c key=value` (they override postgresql.conf, also a restored one's).
  std::map<std::string, std::string> settings;
  std::chrono::seconds start_deadline{60};
  // The superuser's (postgres) password: TCP connections then need it
  // (scram-sha-256, as a real server's pg_hba would ask); empty: trust.
  std::string password;
  // The port to try first (0: one the kernel names free). A test that holds
  // this port proves the server starts on another all the same.
  int first_port = 0;
};

class Postgres {
 public:
  static constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";
  // Starts on a port another process took in the meantime are retried on another port this often.
  static constexpr int kStartAttempts = 5;

  // initdb into `data_dir` (created; must be missing or empty), configure archiving, start.
  static Postgres init(const std::filesystem::path& data_dir, const PostgresOptions& options = {});
  // Starts on an existing data directory (e.g. a restored backup with recovery.signal and
  // restore_command), and waits until recovery has finished and the server accepts writes.
  static Postgres start_existing(const std::filesystem::path& data_dir, const PostgresOptions& options = {},
                                 std::chrono::seconds recovery_deadline = std::chrono::seconds(120));

  Postgres(Postgres&& other) noexcept;
  Postgres& operator=(Postgres&&) = delete;
  Postgres(const Postgres&) = delete;
  ~Postgres();

  // Runs one statement in a new session; throws std::runtime_error with the server's message.
  std::vector<PgRow> query(const std::string& sql) const;
  // The single value of a one-row, one-column query ("" for NULL).
  std::string value(const std::string& sql) const;
  // libpq variables that reach this server (PGHOST, PGPORT, PGUSER, PGDATABASE, and PGPASSWORD when set).
  [[nodiscard]] std::map<std::string, std::string> libpq_env() const;
  // "PGHOST=... PGPORT=... " for a shell command line.
  [[nodiscard]] std::string libpq_env_prefix() const;
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] const std::filesystem::path& data_dir() const { return data_dir_; }
  [[nodiscard]] std::string log() const;
  // Fast shutdown (SIGINT), then SIGKILL after `deadline`.
  void stop(std::chrono::seconds deadline = std::chrono::seconds(30));

  // Whether servers run as nobody:nogroup (the current user is root).
  static bool drops_root();
  // Gives `path` (recursively) to the user the server runs as; a no-op unless drops_root().
  static void hand_to_server_user(const std::filesystem::path& path);
  // Runs argv as the server user (setpriv under root); returns the exit code, output appended to `log`.
  static int run_as_server_user(const std::vector<std::string>& argv, const std::filesystem::path& log);

 private:
  Postgres(std::filesystem::path data_dir, int port, std::string password)
      : data_dir_(std::move(data_dir)), port_(port), password_(std::move(password)) {}
  void start(const PostgresOptions& options);
  void launch(const PostgresOptions& options);
  // Until this server (its own postmaster.pid says so) accepts connections: true; false
  // when it exited because its port was taken; throws on any other failure or at `deadline`.
  [[nodiscard]] bool wait_ready(std::chrono::seconds deadline, std::uintmax_t log_offset);

  std::filesystem::path data_dir_;
  int port_ = 0;
  std::string password_;
  pid_t pid_ = -1;
};

}  // namespace testing_support
