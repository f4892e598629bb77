// PostgreSQL started on the data directory a restore left (run_job_test.cpp,
// offsite_copy_test.cpp), recovering through its restore_command.
#pragma once
#include <gtest/gtest.h>

#include <exception>
#include <filesystem>
#include <memory>

#include "support/postgres.h"

namespace testing_support {

// Starts PostgreSQL on `pgdata` with archiving off (a restored server must
// not push WAL into the store it came from) into `restored`, and waits until
// recovery has ended; a failure to start or recover fails the test with
// PostgreSQL's own words. Call through ASSERT_NO_FATAL_FAILURE.
inline void start_restored(const std::filesystem::path& pgdata, std::unique_ptr<Postgres>& restored) {
  Postgres::hand_to_server_user(pgdata);
  PostgresOptions options;
  options.settings["archive_mode"] = "off";
  try {
    restored = std::make_unique<Postgres>(Postgres::start_existing(pgdata, options));
  } catch (const std::exception& e) {
    FAIL() << e.what();
  }
}

}  // namespace testing_support
