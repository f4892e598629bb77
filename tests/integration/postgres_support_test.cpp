// The PostgreSQL test harness itself (support/postgres.h): PostgreSQL cannot
// bind port 0, so it is given a port named free beforehand, and under
// `ctest -j` another process may take that port first. The harness must then
// start the server on another port, and must never take whoever answers on the
// lost port for its own server.
#include <gtest/gtest.h>

#include <filesystem>

#include "harness.h"
#include "support/postgres.h"

namespace {

namespace fs = std::filesystem;
using testing_support::Postgres;
using testing_support::PostgresOptions;

// The worst case of the race: the port went to another PostgreSQL, which
// answers every readiness ping the new server's start makes.
TEST(PostgresHarness, AServerWhosePortAnotherServerTookStartsOnAnotherPortAndIsTheOneQueried) {
  const fs::path dir = testing_support::make_temp_dir("pg-port-taken");
  {
    auto first = Postgres::init(dir / "first");
    PostgresOptions options;
    options.first_port = first.port();
    auto second = Postgres::init(dir / "second", options);
    EXPECT_NE(second.port(), first.port());
    EXPECT_EQ(second.value("show data_directory"), (dir / "second").string());
    EXPECT_EQ(first.value("show data_directory"), (dir / "first").string());
    // The lost start is in the server's log: the harness retried because of it, not by chance.
    EXPECT_NE(second.log().find("could not create any TCP/IP sockets"), std::string::npos) << second.log();
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

}  // namespace
