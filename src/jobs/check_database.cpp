#include "jobs/check_database.h"

#include <chrono>
#include <thread>

#include "jobs/in_place_plan.h"
#include "jobs/recovery.h"

namespace bo::jobs {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kPrefix = "run-job: check-database: ";

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

// A session with the production server, everything but the application name from libpq's environment.
PgConn connect_production(const Env& env, std::string& error) {
  std::vector<const char*> keys = {"application_name"}, values = {"backup-operator-check-database"};
  if (env_value(env, "PGCONNECT_TIMEOUT").empty()) {
    keys.push_back("connect_timeout");
    values.push_back("10");
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PgConn c(PQconnectdbParams(keys.data(), values.data(), 0));
  if (!c || PQstatus(c.get()) != CONNECTION_OK) {
    error = c ? trim(PQerrorMessage(c.get())) : "out of memory";
    return nullptr;
  }
  // Belt and braces: every transaction of this session is read only unless one says otherwise.
  const SqlOutcome ro = run_sql(c.get(), "set default_transaction_read_only = on; set statement_timeout = '60s'");
  if (!ro.error.empty()) {
    error = ro.error;
    return nullptr;
  }
  return c;
}

// `sql` (one statement) in a READ ONLY transaction with its own statement_timeout, rolled back.
SqlOutcome read_only(PGconn* c, const std::string& sql, int timeout_seconds) {
  // The snapshot `select 1` takes makes a later `set transaction read write` an error too.
  const SqlOutcome begin = run_sql(c, "begin transaction read only; set local statement_timeout = " +
                                          std::to_string(timeout_seconds * 1000) + "; select 1");
  if (!begin.error.empty()) {
    (void)run_sql(c, "rollback");
    return begin;
  }
  SqlOutcome o = run_one_statement(c, sql);
  (void)run_sql(c, "rollback");
  return o;
}

class DatabaseCheck {
 public:
  DatabaseCheck(const Env& env, std::ostream& log) : env_(env), log_(log) {}

  VerifyResult run() {
    result_.restored = env_value(env_, "BACKUP_ID");
    result_.checksum = env_value(env_, "BACKUP_CHECKSUM");
    run_steps(result_, [this] { steps(); });
    return result_;
  }

 private:
  void steps() {
    const auto profile = parse_verify_profile(env_value(env_, "VERIFY_PROFILE"));
    if (!profile) throw JobError{"InvalidProfile", profile.error()};
    const auto checks = parse_sql_checks(env_value(env_, "VERIFY_CHECKS"));
    if (!checks) throw JobError{"InvalidChecks", checks.error()};
    const auto ready_deadline = positive_seconds(env_, "READY_DEADLINE_SECONDS", 600);
    if (!ready_deadline) throw ready_deadline.error();
    const int deadline_s = *ready_deadline;
    const std::string expected = env_value(env_, "EXPECT_SYSTEM_IDENTIFIER");

    // Until the server accepts a connection and is out of recovery (or the deadline).
    const auto deadline = Clock::now() + std::chrono::seconds(deadline_s);
    std::string last_error;
    bool in_recovery = false;
    PgConn c;
    for (;;) {
      c = connect_production(env_, last_error);
      if (c) {
        const SqlOutcome rec = run_sql(c.get(), "select pg_is_in_recovery()");
        in_recovery = rec.error.empty() && rec.value == "t";
        if (rec.error.empty() && rec.value == "f") break;
        last_error = rec.error.empty() ? "the server is in recovery" : rec.error;
      }
      if (Clock::now() > deadline) {
        record_check(result_, [&] { return judge_serving(in_recovery, in_recovery ? "" : last_error); }, env_, log_,
                     kPrefix);
        throw JobError{"NotReady", "the server did not accept a connection out of recovery within "
                                   "READY_DEADLINE_SECONDS=" + std::to_string(deadline_s) + " (last: " + last_error + ")"};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    log_ << kPrefix << "connected to " << PQhost(c.get()) << ":" << PQport(c.get()) << " as " << PQuser(c.get())
         << ", out of recovery\n";

    const auto timed = [&](const std::function<CheckResult()>& f) { record_check(result_, f, env_, log_, kPrefix); };
    timed([&] {
      const SqlOutcome rec = run_sql(c.get(), "select pg_is_in_recovery()");
      return judge_serving(rec.error.empty() && rec.value != "f", rec.error);
    });
    result_.recovered = result_.checks.back().passed;
    timed([&] {
      const SqlOutcome o = run_sql(c.get(), "select system_identifier::text from pg_control_system()");
      if (o.error.empty() && o.has_row && !o.is_null) result_.system_identifier = o.value;
      CheckResult r = judge_expected_system_identifier(expected, result_.system_identifier);
      if (!o.error.empty()) r.output = o.error;
      return r;
    });
    // Each count in a transaction of its own (a missing table must not abort the others'), read only by default.
    if (*profile == VerifyProfile::kSupabaseSelfHosted) timed([&] { return supabase_schemas_check(c.get()); });
    for (const auto& check : *checks)
      timed([&] {
        if (PQstatus(c.get()) != CONNECTION_OK) {
          std::string error;
          c = connect_production(env_, error);
          if (!c) return judge_sql_check(check, SqlOutcome{"cannot connect: " + error, false, false, ""});
        }
        return judge_sql_check(check, read_only(c.get(), check.sql, check.timeout_seconds));
      });
    if (env_value(env_, "RELEASE_WRITES") == "true") timed([&] { return release_writes(); });
  }

  // The restore held writes (default_transaction_read_only = on in
  // postgresql.auto.conf): released only when every check before passed,
  // and proven by what a new session would get.
  CheckResult release_writes() {
    CheckResult r;
    r.name = kCheckWritesReleased;
    if (!all_passed(result_)) {
      r.output = "not released: a check failed, so the database keeps refusing writes";
      return r;
    }
    std::string error;
    PgConn c = connect_production(env_, error);
    if (!c) {
      r.output = "cannot connect: " + error;
      return r;
    }
    for (const char* sql : {"set default_transaction_read_only = off", "alter system reset default_transaction_read_only",
                            "select pg_reload_conf()"}) {
      const SqlOutcome o = run_sql(c.get(), sql);
      if (!o.error.empty()) {
        r.output = std::string(sql) + ": " + o.error +
                   " (the database user needs ALTER SYSTEM on default_transaction_read_only and pg_reload_conf())";
        return r;
      }
    }
    const auto until = Clock::now() + std::chrono::seconds(30);
    for (;;) {
      PgConn fresh = connect_production(env_, error);
      const SqlOutcome o = fresh ? run_sql(fresh.get(), "select reset_val from pg_settings where name = "
                                                        "'default_transaction_read_only'")
                                 : SqlOutcome{error, false, false, ""};
      if (o.error.empty() && o.value == "off") {
        r.passed = true;
        r.output = "default_transaction_read_only is off again: the database accepts writes";
        return r;
      }
      if (Clock::now() > until) {
        r.output = "the server still starts sessions read-only after pg_reload_conf(): " +
                   (o.error.empty() ? o.value : o.error);
        return r;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  const Env& env_;
  std::ostream& log_;
  VerifyResult result_;
};

}  // namespace

int check_database(const Env& env, std::ostream& log) {
  VerifyResult result = DatabaseCheck(env, log).run();
  return report_result(result, all_passed(result), env, log, kPrefix, "every check passed", "NOT passed");
}

}  // namespace bo::jobs
