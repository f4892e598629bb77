// The pure part of `run-job verify` (src/jobs/verify_checks.h) and of
// install-tools (the loader's list), without a server.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <iostream>
#include <algorithm>
#include <random>
#include <sstream>

#include "common/timefmt.h"
#include "jobs/install_tools.h"
#include "jobs/verify_checks.h"

using namespace bo::jobs;
using nlohmann::json;

namespace {

bo::SysTime at(const char* s) { return *bo::parse_rfc3339(s); }

// --- profiles ---------------------------------------------------------------

TEST(VerifyProfile, EmptyMeansTheThreeChecksEveryVerificationHas) {
  const auto p = parse_verify_profile("");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(builtin_check_names(*p), (std::vector<std::string>{"recovered", "recovery-target", "system-identifier"}));
}

TEST(VerifyProfile, SupabaseSelfHostedAddsItsSchemas) {
  const auto p = parse_verify_profile("supabase-self-hosted");
  ASSERT_TRUE(p) << p.error();
  EXPECT_EQ(builtin_check_names(*p),
            (std::vector<std::string>{"recovered", "recovery-target", "system-identifier", "supabase-schemas"}));
}

TEST(VerifyProfile, AnUnknownProfileIsRefusedNamingTheVariable) {
  const auto p = parse_verify_profile("supabase");
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().find("VERIFY_PROFILE: unknown profile \"supabase\""), std::string::npos) << p.error();
}

// --- VERIFY_CHECKS ----------------------------------------------------------

TEST(SqlChecks, EmptyTextIsNoChecks) {
  for (const char* text : {"", "  ", "\n"}) {
    const auto c = parse_sql_checks(text);
    ASSERT_TRUE(c) << c.error();
    EXPECT_TRUE(c->empty());
  }
  const auto empty_array = parse_sql_checks("[]");
  ASSERT_TRUE(empty_array) << empty_array.error();
  EXPECT_TRUE(empty_array->empty());
}

TEST(SqlChecks, ParsesNameSqlExpectAndTimeoutWithDefaults) {
  const auto c = parse_sql_checks(R"([{"name":"orders","sql":"select count(*) from orders","expect":"42","timeoutSeconds":5},
                                      {"name":"up","sql":"select 1"},
                                      {"name":"n","sql":"select 1","expect":null,"timeoutSeconds":null}])");
  ASSERT_TRUE(c) << c.error();
  ASSERT_EQ(c->size(), 3u);
  EXPECT_EQ((*c)[0].name, "orders");
  EXPECT_EQ((*c)[0].sql, "select count(*) from orders");
  EXPECT_EQ((*c)[0].expect, std::optional<std::string>("42"));
  EXPECT_EQ((*c)[0].timeout_seconds, 5);
  EXPECT_EQ((*c)[1].expect, std::nullopt);
  EXPECT_EQ((*c)[1].timeout_seconds, kDefaultCheckTimeoutSeconds);
  EXPECT_EQ((*c)[2].expect, std::nullopt);
  EXPECT_EQ((*c)[2].timeout_seconds, kDefaultCheckTimeoutSeconds);
}

TEST(SqlChecks, AnEmptyExpectIsKeptAsTheEmptyString) {
  const auto c = parse_sql_checks(R"([{"name":"blank","sql":"select ''","expect":""}])");
  ASSERT_TRUE(c) << c.error();
  EXPECT_EQ((*c)[0].expect, std::optional<std::string>(""));
}

TEST(SqlChecks, EachBadInputIsRefusedNamingTheElementAndField) {
  struct Case {
    std::string text, error;
  };
  const std::vector<Case> cases = {
      {"{", "VERIFY_CHECKS: not JSON"},
      {R"({"name":"a","sql":"select 1"})", "VERIFY_CHECKS: must be a JSON array"},
      {R"(["select 1"])", "VERIFY_CHECKS[0]: must be an object"},
      {R"([{"sql":"select 1"}])", "VERIFY_CHECKS[0].name: a non-empty string is required"},
      {R"([{"name":"","sql":"select 1"}])", "VERIFY_CHECKS[0].name: a non-empty string is required"},
      {R"([{"name":7,"sql":"select 1"}])", "VERIFY_CHECKS[0].name: a non-empty string is required"},
      {R"([{"name":"a","sql":"select 1"},{"name":"b"}])", "VERIFY_CHECKS[1].sql: a non-empty string is required"},
      {R"([{"name":"a","sql":"   "}])", "VERIFY_CHECKS[0].sql: a non-empty string is required"},
      {R"([{"name":"a","sql":"select 1","expect":3}])", "VERIFY_CHECKS[0].expect: must be a string"},
      {R"([{"name":"a","sql":"select 1","timeoutSeconds":0}])", "VERIFY_CHECKS[0].timeoutSeconds: must be an integer from 1 to 3600"},
      {R"([{"name":"a","sql":"select 1","timeoutSeconds":3601}])", "VERIFY_CHECKS[0].timeoutSeconds: must be an integer from 1 to 3600"},
      {R"([{"name":"a","sql":"select 1","timeoutSeconds":1.5}])", "VERIFY_CHECKS[0].timeoutSeconds: must be an integer"},
      {R"([{"name":"a","sql":"select 1","timeoutSeconds":"5"}])", "VERIFY_CHECKS[0].timeoutSeconds: must be an integer"},
      {R"([{"name":"a","sql":"select 1","expected":"1"}])", "VERIFY_CHECKS[0].expected: unknown field"},
      {R"([{"name":"a","sql":"select 1"},{"name":"a","sql":"select 2"}])", "VERIFY_CHECKS[1].name: \"a\" is used twice"},
      {R"([{"name":"recovered","sql":"select 1"}])", "VERIFY_CHECKS[0].name: \"recovered\" is a built-in check's name"},
      {R"([{"name":"supabase-schemas","sql":"select 1"}])", "is a built-in check's name"},
      {R"([{"name":")" + std::string(64, 'x') + R"(","sql":"select 1"}])", "VERIFY_CHECKS[0].name: at most 63 characters"},
      {R"([{"name":"a\nb","sql":"select 1"}])", "VERIFY_CHECKS[0].name: must not contain control characters"},
  };
  for (const auto& c : cases) {
    const auto parsed = parse_sql_checks(c.text);
    ASSERT_FALSE(parsed) << c.text;
    EXPECT_NE(parsed.error().find(c.error), std::string::npos) << c.text << " -> " << parsed.error();
  }
}

TEST(SqlChecks, AtMostTwentyChecks) {
  json many = json::array();
  for (int i = 0; i < 21; ++i) many.push_back({{"name", "c" + std::to_string(i)}, {"sql", "select 1"}});
  const auto refused = parse_sql_checks(many.dump());
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().find("VERIFY_CHECKS: at most 20 checks (got 21)"), std::string::npos) << refused.error();
  many.erase(many.size() - 1);
  EXPECT_TRUE(parse_sql_checks(many.dump()));
}

// --- judging a user check -----------------------------------------------------

TEST(JudgeSqlCheck, WithoutExpectPassesWhenTheStatementRan) {
  const SqlCheck check{"up", "select 1", std::nullopt, 60};
  const auto r = judge_sql_check(check, SqlOutcome{"", true, false, "1"});
  EXPECT_TRUE(r.passed);
  EXPECT_EQ(r.name, "up");
  EXPECT_EQ(r.output, "1");
  const auto no_rows = judge_sql_check(check, SqlOutcome{"", false, false, ""});
  EXPECT_TRUE(no_rows.passed);
  EXPECT_EQ(no_rows.output, "(no rows)");
}

TEST(JudgeSqlCheck, TheServersErrorFailsItAndIsTheOutput) {
  const SqlCheck check{"orders", "select count(*) from orders", std::string("3"), 60};
  const auto r = judge_sql_check(check, SqlOutcome{"ERROR:  canceling statement due to statement timeout\n", false, false, ""});
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.output, "ERROR:  canceling statement due to statement timeout");
}

TEST(JudgeSqlCheck, ExpectComparesTheFirstValueAsText) {
  struct Case {
    SqlOutcome outcome;
    bool passed;
    std::string output;
  };
  const SqlCheck check{"orders", "select count(*) from orders", std::string("3"), 60};
  const std::vector<Case> cases = {
      {SqlOutcome{"", true, false, "3"}, true, "3"},
      {SqlOutcome{"", true, false, "4"}, false, "4 (expected 3)"},
      {SqlOutcome{"", true, false, "3 "}, false, "3  (expected 3)"},
      {SqlOutcome{"", true, true, ""}, false, "NULL (expected 3)"},
      {SqlOutcome{"", false, false, ""}, false, "(no rows) (expected 3)"},
  };
  for (const auto& c : cases) {
    const auto r = judge_sql_check(check, c.outcome);
    EXPECT_EQ(r.passed, c.passed) << c.output;
    EXPECT_EQ(r.output, c.output);
  }
  // An expected empty string is not NULL.
  const SqlCheck blank{"blank", "select ''", std::string(""), 60};
  EXPECT_TRUE(judge_sql_check(blank, SqlOutcome{"", true, false, ""}).passed);
  EXPECT_FALSE(judge_sql_check(blank, SqlOutcome{"", true, true, ""}).passed);
}

// --- the stop sentinel --------------------------------------------------------

TEST(StopSentinel, ReadsTheLsnsTimelineAndSystemIdentifier) {
  const auto s = parse_stop_sentinel(R"({"LSN":33554472,"FinishLSN":33554744,"Timeline":1,"SystemIdentifier":7401234567890123456})");
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->start_lsn, 33554472u);
  EXPECT_EQ(s->finish_lsn, 33554744u);
  EXPECT_EQ(s->timeline, 1u);
  EXPECT_EQ(s->system_identifier, "7401234567890123456");
}

TEST(StopSentinel, WithoutSystemIdentifierItIsEmpty) {
  const auto s = parse_stop_sentinel(R"({"LSN":1,"FinishLSN":2,"SystemIdentifier":null})");
  ASSERT_TRUE(s) << s.error();
  EXPECT_EQ(s->system_identifier, "");
}

TEST(StopSentinel, NoFinishLsnOrNotJsonIsRefused) {
  EXPECT_FALSE(parse_stop_sentinel("not json"));
  EXPECT_FALSE(parse_stop_sentinel("[]"));
  EXPECT_FALSE(parse_stop_sentinel(R"({"LSN":5})"));
  EXPECT_FALSE(parse_stop_sentinel(R"({"LSN":5,"FinishLSN":4})"));
}

// --- built-in checks ------------------------------------------------------------

TEST(BuiltinChecks, RecoveredNeedsOutOfRecoveryAndAWrite) {
  EXPECT_TRUE(judge_recovered(false, "").passed);
  const auto still = judge_recovered(true, "");
  EXPECT_FALSE(still.passed);
  EXPECT_NE(still.output.find("still in recovery"), std::string::npos);
  const auto ro = judge_recovered(false, "ERROR:  cannot execute CREATE TABLE in a read-only transaction");
  EXPECT_FALSE(ro.passed);
  EXPECT_NE(ro.output.find("read-only transaction"), std::string::npos) << ro.output;
}

TEST(BuiltinChecks, RecoveryToTheEndOfTheBackupNeedsTheReplayAtOrPastFinishLsn) {
  const RecoveryTarget end{0x3000100, std::nullopt};
  struct Case {
    std::optional<uint64_t> replay;
    bool passed;
    std::string says;
  };
  const std::vector<Case> cases = {
      {0x3000100, true, "replayed to 0/3000100, at or past the end of the backup at 0/3000100"},
      {0x4000000, true, "replayed to 0/4000000"},
      {0x30000FF, false, "before the end of the backup at 0/3000100: the copy is not consistent"},
      {std::nullopt, false, "pg_last_wal_replay_lsn() is NULL"},
  };
  for (const auto& c : cases) {
    const auto r = judge_recovery_target(end, ReplayState{c.replay, std::nullopt, ""});
    EXPECT_EQ(r.name, "recovery-target");
    EXPECT_EQ(r.passed, c.passed) << r.output;
    EXPECT_NE(r.output.find(c.says), std::string::npos) << r.output;
  }
}

TEST(BuiltinChecks, RecoveryToAPointInTimeFailsWhenACommitAfterItWasReplayed) {
  const RecoveryTarget pit{0x3000100, at("2026-11-24T10:00:00Z")};
  const std::string log =
      "LOG:  starting point-in-time recovery to 2026-11-24 10:00:00+00\n"
      "LOG:  recovery stopping before commit of transaction 741, time 2026-11-24 10:00:01.5+00\n"
      "LOG:  redo done at 0/4000100\n";
  const auto ok = judge_recovery_target(pit, ReplayState{0x4000100, at("2026-11-24T09:59:59Z"), log});
  EXPECT_TRUE(ok.passed) << ok.output;
  EXPECT_NE(ok.output.find("recovery stopping before commit of transaction 741"), std::string::npos) << ok.output;
  EXPECT_NE(ok.output.find("last replayed commit 2026-11-24T09:59:59"), std::string::npos) << ok.output;
  const auto exact = judge_recovery_target(pit, ReplayState{0x4000100, at("2026-11-24T10:00:00Z"), ""});
  EXPECT_TRUE(exact.passed) << "recovery_target_inclusive: a commit at the target is part of it";
  const auto late = judge_recovery_target(pit, ReplayState{0x4000100, at("2026-11-24T10:00:01Z"), log});
  EXPECT_FALSE(late.passed);
  EXPECT_NE(late.output.find("a commit after the target was replayed"), std::string::npos) << late.output;
  const auto none = judge_recovery_target(pit, ReplayState{0x4000100, std::nullopt, ""});
  EXPECT_TRUE(none.passed) << "no commit replayed is not one after the target";
  const auto short_replay = judge_recovery_target(pit, ReplayState{0x2000000, at("2026-11-24T09:00:00Z"), log});
  EXPECT_FALSE(short_replay.passed) << "not even consistent";
}

TEST(BuiltinChecks, SystemIdentifierMustEqualTheSentinels) {
  EXPECT_TRUE(judge_system_identifier("7401", "7401").passed);
  const auto other = judge_system_identifier("7401", "7402");
  EXPECT_FALSE(other.passed);
  EXPECT_NE(other.output.find("7402 differs from the backup's 7401"), std::string::npos) << other.output;
  EXPECT_FALSE(judge_system_identifier("", "7402").passed) << "nothing recorded proves nothing";
  EXPECT_FALSE(judge_system_identifier("7401", "").passed);
}

TEST(BuiltinChecks, SupabaseSchemasNamesTheCountsOrWhatIsMissing) {
  const std::vector<TableCount> counted = {{"auth.users", 3, ""}, {"storage.buckets", 1, ""}, {"storage.objects", 2, ""}};
  const auto ok = judge_supabase_schemas({"auth", "storage"}, counted);
  EXPECT_TRUE(ok.passed) << ok.output;
  EXPECT_EQ(ok.output, "auth.users=3, storage.buckets=1, storage.objects=2");

  const auto no_storage = judge_supabase_schemas(
      {"auth"}, {{"auth.users", 3, ""},
                 {"storage.buckets", std::nullopt, "ERROR:  relation \"storage.buckets\" does not exist"},
                 {"storage.objects", std::nullopt, "ERROR:  relation \"storage.objects\" does not exist"}});
  EXPECT_FALSE(no_storage.passed);
  EXPECT_NE(no_storage.output.find("missing schema(s): storage"), std::string::npos) << no_storage.output;
  EXPECT_NE(no_storage.output.find("storage.buckets: ERROR:  relation \"storage.buckets\" does not exist"),
            std::string::npos) << no_storage.output;
  EXPECT_NE(no_storage.output.find("auth.users=3"), std::string::npos) << no_storage.output;

  const auto uncounted = judge_supabase_schemas({"auth", "storage"}, {{"auth.users", 3, ""}});
  EXPECT_FALSE(uncounted.passed);
  EXPECT_NE(uncounted.output.find("storage.objects: not counted"), std::string::npos) << uncounted.output;
}

// --- recovery settings -----------------------------------------------------------

TEST(RecoverySettings, ToTheEndOfTheBackupIsRecoveryTargetImmediateThenPromote) {
  const std::string conf = recovery_auto_conf("# Do not edit this file manually!\nwork_mem = '8MB'\n",
                                              "/tools/ld.so --library-path /tools/lib /tools/bin/wal-g wal-fetch %f %p",
                                              std::nullopt);
  EXPECT_NE(conf.find("work_mem = '8MB'\n"), std::string::npos) << conf;
  EXPECT_NE(conf.find("restore_command = '/tools/ld.so --library-path /tools/lib /tools/bin/wal-g wal-fetch %f %p'\n"),
            std::string::npos) << conf;
  EXPECT_NE(conf.find("recovery_target = 'immediate'\n"), std::string::npos) << conf;
  EXPECT_NE(conf.find("recovery_target_action = 'promote'\n"), std::string::npos) << conf;
  EXPECT_EQ(conf.find("recovery_target_time"), std::string::npos) << conf;
}

TEST(RecoverySettings, ToAPointInTimeIsWrittenInPostgresSpelling) {
  const std::string conf = recovery_auto_conf("", "wal-g wal-fetch %f %p", at("2026-11-24T10:00:00.25Z"));
  EXPECT_NE(conf.find("recovery_target_time = '2026-11-24 10:00:00.250000+00'\n"), std::string::npos) << conf;
  EXPECT_EQ(conf.find("recovery_target = "), std::string::npos) << conf;
  EXPECT_NE(conf.find("recovery_target_action = 'promote'\n"), std::string::npos) << conf;
}

TEST(RecoverySettings, SettingsLeftInTheBackupThatWouldConflictOrReachOutAreCommentedOut) {
  const std::string restored =
      "restore_command = 'wal-g wal-fetch %f %p'\n"
      "recovery_target_time = '2026-01-01 00:00:00+00'\n"
      "Recovery_Target_Name='before-migration'\n"
      "primary_conninfo = 'host=db.supabase.svc user=replicator password=CANARY'\n"
      "  recovery_target_action = shutdown\n"
      "max_connections = 200\n";
  const std::string conf = recovery_auto_conf(restored, "wal-g wal-fetch %f %p", std::nullopt);
  EXPECT_NE(conf.find("# (run-job verify) recovery_target_time = '2026-01-01 00:00:00+00'"), std::string::npos) << conf;
  EXPECT_NE(conf.find("# (run-job verify) Recovery_Target_Name='before-migration'"), std::string::npos) << conf;
  EXPECT_NE(conf.find("# (run-job verify) primary_conninfo"), std::string::npos) << conf;
  EXPECT_NE(conf.find("# (run-job verify)   recovery_target_action = shutdown"), std::string::npos) << conf;
  EXPECT_NE(conf.find("\nmax_connections = 200\n"), std::string::npos) << conf;
  // Exactly one active restore_command and one target: ours, after everything else.
  size_t active = 0;
  std::istringstream lines(conf);
  for (std::string line; std::getline(lines, line);)
    if (line.starts_with("restore_command") || line.starts_with("recovery_target")) ++active;
  EXPECT_EQ(active, 3u) << conf;  // restore_command, recovery_target, recovery_target_action
}

TEST(RecoverySettings, QuotesAreDoubled) {
  EXPECT_EQ(conf_quote("it's"), "'it''s'");
  const std::string conf = recovery_auto_conf("", "'/t o/wal-g' wal-fetch %f %p", std::nullopt);
  EXPECT_NE(conf.find("restore_command = '''/t o/wal-g'' wal-fetch %f %p'"), std::string::npos) << conf;
}

// --- the result --------------------------------------------------------------------

VerifyResult passing_result() {
  VerifyResult r;
  r.restored = "base_000000010000000000000004";
  r.checksum = "sha256:" + std::string(64, 'a');
  r.recovered = true;
  r.recovery_seconds = 2.3456;
  r.system_identifier = "7401234567890123456";
  r.replay_lsn = "0/4000100";
  r.checks = {{"recovered", true, 3, "out of recovery"}, {"orders", true, 12, "42"}};
  return r;
}

TEST(VerifyResultJson, CarriesEveryFieldOfTheContract) {
  const json j = json::parse(result_json(passing_result()));
  EXPECT_EQ(j["restored"], "base_000000010000000000000004");
  EXPECT_EQ(j["checksum"], "sha256:" + std::string(64, 'a'));
  EXPECT_EQ(j["recovered"], true);
  EXPECT_DOUBLE_EQ(j["recoverySeconds"].get<double>(), 2.346);
  EXPECT_EQ(j["systemIdentifier"], "7401234567890123456");
  EXPECT_EQ(j["replayLsn"], "0/4000100");
  EXPECT_EQ(j["checks"], json::parse(R"([{"name":"recovered","passed":true,"ms":3,"output":"out of recovery"},
                                         {"name":"orders","passed":true,"ms":12,"output":"42"}])"));
  EXPECT_FALSE(j.contains("error"));
  EXPECT_FALSE(j.contains("checksOmitted"));
  EXPECT_TRUE(all_passed(passing_result()));
}

TEST(VerifyResultJson, AFailureBeforeTheChecksHasAnErrorAndNoChecks) {
  VerifyResult r;
  r.restored = "base_1";
  r.error = "ChecksumMismatch: storage holds sha256:1 but the catalog recorded sha256:2";
  const json j = json::parse(result_json(r));
  EXPECT_EQ(j["error"], r.error);
  EXPECT_EQ(j["recovered"], false);
  EXPECT_EQ(j["checks"], json::array());
  EXPECT_FALSE(j.contains("recoverySeconds"));
  EXPECT_FALSE(all_passed(r));
}

TEST(VerifyResultJson, OneFailedCheckFailsTheWhole) {
  auto r = passing_result();
  r.checks[1].passed = false;
  EXPECT_FALSE(all_passed(r));
  r = passing_result();
  r.checks.clear();
  EXPECT_FALSE(all_passed(r)) << "no check ran: nothing was proven";
}

TEST(VerifyResultJson, LongOutputsAreCutEvenlySoTheWholeFitsIn4096Bytes) {
  std::mt19937 rng(std::random_device{}());
  const unsigned seed = rng();
  std::cout << "random seed: " << seed << "\n";
  rng.seed(seed);
  for (int round = 0; round < 50; ++round) {
    auto r = passing_result();
    r.checks.clear();
    const int n = 1 + static_cast<int>(rng() % 24);
    for (int i = 0; i < n; ++i) {
      std::string out;
      const int len = static_cast<int>(rng() % 3000);
      for (int k = 0; k < len; ++k) {
        // Quotes, control characters (escaped: longer in JSON) and multi-byte characters.
        const char* pieces[] = {"a", "\"", "\n", "é", "€", "\x01"};
        out += pieces[rng() % 6];
      }
      r.checks.push_back({"check-" + std::to_string(i), rng() % 2 == 0, static_cast<int64_t>(rng() % 1000), out});
    }
    if (rng() % 2) r.error = std::string(5000, 'x') + "LOG:  the last line of the server's log";
    const std::string text = result_json(r);
    ASSERT_LE(text.size(), kTerminationLimit) << "seed " << seed << " round " << round;
    const json j = json::parse(text);  // valid JSON, also where a multi-byte character was cut
    const size_t omitted = j.value("checksOmitted", size_t{0});
    ASSERT_EQ(j["checks"].size() + omitted, r.checks.size());
    for (const auto& c : j["checks"]) {
      const auto it = std::find_if(r.checks.begin(), r.checks.end(),
                                   [&](const CheckResult& x) { return x.name == c["name"]; });
      ASSERT_NE(it, r.checks.end());
      EXPECT_EQ(c["passed"], it->passed);
      const std::string out = c["output"];
      if (out != it->output) {
        EXPECT_TRUE(out.ends_with("…")) << out;
        EXPECT_TRUE(it->output.starts_with(out.substr(0, out.size() - std::string("…").size())));
      }
    }
    if (!r.error.empty()) {
      const std::string e = j["error"];
      EXPECT_TRUE(e.starts_with("xxx")) << "the head says what failed";
      EXPECT_TRUE(e.ends_with("LOG:  the last line of the server's log")) << "the tail is the log's end";
    }
  }
}

TEST(VerifyResultJson, ShortOutputsAreNotCut) {
  auto r = passing_result();
  r.checks.push_back({"long", false, 1, std::string(5000, 'y')});
  const json j = json::parse(result_json(r));
  EXPECT_EQ(j["checks"][0]["output"], "out of recovery");
  EXPECT_EQ(j["checks"][1]["output"], "42");
  const std::string cut = j["checks"][2]["output"];
  EXPECT_LT(cut.size(), 5000u);
  EXPECT_GT(cut.size(), 3000u) << "the budget goes to the output that needs it";
}

TEST(VerifyResultJson, WhenVerdictsAloneDoNotFitPassedChecksAreLeftOutFirst) {
  auto r = passing_result();
  r.checks.clear();
  for (int i = 0; i < 60; ++i)
    r.checks.push_back({std::string(60, 'a' + static_cast<char>(i % 26)) + std::to_string(i), i != 59, 1, "x"});
  const std::string text = result_json(r);
  ASSERT_LE(text.size(), kTerminationLimit);
  const json j = json::parse(text);
  EXPECT_GT(j["checksOmitted"].get<size_t>(), 0u);
  bool failed_kept = false;
  for (const auto& c : j["checks"]) failed_kept = failed_kept || c["passed"] == false;
  EXPECT_TRUE(failed_kept) << "the failure is what someone needs to see";
}

TEST(CapText, CutsAtACharacterBoundaryAndMarksTheCut) {
  EXPECT_EQ(cap_text("abc", 3), "abc");
  EXPECT_EQ(cap_text("abcdef", 5), "ab…");
  EXPECT_EQ(cap_text("éé", 4), "éé");
  EXPECT_EQ(cap_text("éééé", 6), "é…");  // 2 + 3 bytes: the second é would not fit whole
  EXPECT_EQ(cap_text("abcdef", 2), "");
}

// --- install-tools: the loader's list ------------------------------------------------

TEST(LdList, ReadsWhatEachProgramNeedsAndWhereItWasFound) {
  const auto entries = parse_ld_list(
      "\tlinux-vdso.so.1 (0x00007ffd)\n"
      "\tlibpq.so.5 => /lib/x86_64-linux-gnu/libpq.so.5 (0x00007f01)\n"
      "\tlibmissing.so.2 => not found\n"
      "\t/lib64/ld-linux-x86-64.so.2 (0x00007f02)\n");
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].name, "linux-vdso.so.1");
  EXPECT_EQ(entries[0].path, "");
  EXPECT_EQ(entries[1].name, "libpq.so.5");
  EXPECT_EQ(entries[1].path, "/lib/x86_64-linux-gnu/libpq.so.5");
  EXPECT_FALSE(entries[1].not_found);
  EXPECT_EQ(entries[2].name, "libmissing.so.2");
  EXPECT_TRUE(entries[2].not_found);
  EXPECT_EQ(entries[3].path, "/lib64/ld-linux-x86-64.so.2");
  EXPECT_TRUE(parse_ld_list("\tstatically linked\n").empty());
}

TEST(ElfInterpreter, ADynamicProgramNamesItsLoader) {
  const auto interp = elf_interpreter("/proc/self/exe");
  ASSERT_TRUE(interp);
  EXPECT_TRUE(interp->starts_with("/")) << *interp;
  EXPECT_NE(interp->find("ld-linux"), std::string::npos) << *interp;
  EXPECT_THROW((void)elf_interpreter("/proc/self/status"), std::runtime_error);
}

}  // namespace
