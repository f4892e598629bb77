// WAL archiving: the ContinuousArchiving evaluator, the "pushes with wal-g"
// rule, redaction, WAL segment arithmetic, the background prober's threading,
// and the policy-side condition and status. Pure and in-process; the libpq
// probe against a real PostgreSQL is in tests/integration/archiving_postgres_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/clock.h"
#include "common/timefmt.h"
#include "postgres/archive_prober.h"
#include "postgres/archiving.h"
#include "reconcile/backup_policy_plan.h"
#include "reconcile/conditions.h"
#include "reconcile/continuous_archiving.h"

using namespace bo::postgres;
using namespace std::chrono;
using nlohmann::json;

namespace {

bo::SysTime at(const char* s) { return *bo::parse_rfc3339(s); }

constexpr uint64_t kSeg = kDefaultWalSegmentSize;

// A healthy primary: archived segment 0x10 on timeline 1 a minute ago, now
// writing in segment 0x11, archive_timeout 60 s.
ArchiveObservation healthy() {
  ArchiveObservation o;
  o.archive_mode = "on";
  o.archive_command = "wal-g wal-push %p";
  o.archive_timeout_seconds = 60;
  o.data_directory = "/var/lib/postgresql/data";
  o.archived_count = 16;
  o.last_archived_wal = "000000010000000000000010";
  o.last_archived_time = at("2026-12-01T10:00:00Z");
  o.stats_reset = at("2026-12-01T00:00:00Z");
  o.server_now = at("2026-12-01T10:01:00Z");
  o.current_lsn = 0x11 * kSeg + 4096;
  o.current_timeline = 1;
  return o;
}

// --- the evaluator: every reason ---------------------------------------------

struct EvalCase {
  const char* name;
  std::function<void(ArchiveObservation&)> change;
  const char* status;
  const char* reason;
  const char* message_has;
};

class Evaluate : public ::testing::TestWithParam<EvalCase> {};

TEST_P(Evaluate, GivesTheReason) {
  ArchiveObservation o = healthy();
  GetParam().change(o);
  const auto c = evaluate_archiving(o);
  EXPECT_EQ(c.status, GetParam().status) << c.message;
  EXPECT_EQ(c.reason, GetParam().reason) << c.message;
  EXPECT_NE(c.message.find(GetParam().message_has), std::string::npos) << c.message;
}

INSTANTIATE_TEST_SUITE_P(
    Archiving, Evaluate,
    ::testing::Values(
        EvalCase{"HealthyPrimary", [](auto&) {}, "True", "ArchivingHealthy", "000000010000000000000010"},
        EvalCase{"ProbeFailed", [](auto& o) { o.error = "connecting to db:5432 as postgres: timeout expired"; },
                 "False", "DatabaseUnreachable", "timeout expired"},
        EvalCase{"ModeOff", [](auto& o) { o.archive_mode = "off"; }, "False", "ArchiveModeOff", "archive_mode = on"},
        EvalCase{"ModeAlwaysIsOn", [](auto& o) { o.archive_mode = "always"; }, "True", "ArchivingHealthy", "wal-g"},
        EvalCase{"StandbyWithModeOn", [](auto& o) { o.in_recovery = true; }, "False", "ArchiveModeOff", "standby"},
        EvalCase{"StandbyWithModeAlways",
                 [](auto& o) {
                   o.in_recovery = true;
                   o.archive_mode = "always";
                 },
                 "True", "ArchivingHealthy", "wal-g"},
        EvalCase{"ArchiveLibrarySet", [](auto& o) { o.archive_library = "basic_archive"; }, "False",
                 "ArchiveCommandNotWalG", "archive_library"},
        EvalCase{"CommandIsCp", [](auto& o) { o.archive_command = "cp %p /archive/%f"; }, "False",
                 "ArchiveCommandNotWalG", "runs `cp`"},
        EvalCase{"CommandMasksFailures", [](auto& o) { o.archive_command = "wal-g wal-push %p || true"; }, "False",
                 "ArchiveCommandNotWalG", "chains commands"},
        EvalCase{"CommandEmpty", [](auto& o) { o.archive_command = ""; }, "False", "ArchiveCommandNotWalG", "empty"},
        EvalCase{"FailureAfterLastSuccess",
                 [](auto& o) {
                   o.failed_count = 3;
                   o.last_failed_wal = "000000010000000000000011";
                   o.last_failed_time = at("2026-12-01T10:00:30Z");
                 },
                 "False", "ArchivingFailing", "000000010000000000000011"},
        EvalCase{"FailureAtTheSameInstantAsSuccessIsFailing",
                 [](auto& o) {
                   o.failed_count = 1;
                   o.last_failed_wal = "000000010000000000000011";
                   o.last_failed_time = o.last_archived_time;
                 },
                 "False", "ArchivingFailing", "failed at"},
        EvalCase{"FailureBeforeLastSuccessIsHistory",
                 [](auto& o) {
                   o.failed_count = 2;
                   o.last_failed_wal = "000000010000000000000010";
                   o.last_failed_time = at("2026-12-01T09:59:00Z");
                 },
                 "True", "ArchivingHealthy", "wal-g"},
        EvalCase{"FailedAndNeverArchived",
                 [](auto& o) {
                   o.archived_count = 0;
                   o.last_archived_wal.clear();
                   o.last_archived_time.reset();
                   o.failed_count = 1;
                   o.last_failed_wal = "000000010000000000000001";
                   o.last_failed_time = at("2026-12-01T10:00:30Z");
                 },
                 "False", "ArchivingFailing", "last success: none"},
        EvalCase{"NothingArchivedYet",
                 [](auto& o) {
                   o.archived_count = 0;
                   o.last_archived_wal.clear();
                   o.last_archived_time.reset();
                 },
                 "Unknown", "AwaitingFirstArchive", "pg_switch_wal"},
        EvalCase{"WritingAndNoArchiveForLongerThanTwiceTheTimeout",
                 [](auto& o) { o.server_now = *o.last_archived_time + seconds(301); }, "False", "ArchivingStale",
                 "stale after 300s"}),
    [](const auto& info) { return std::string(info.param.name); });

// --- staleness boundaries ------------------------------------------------------

TEST(ArchivingStaleness, WritingServerIsStaleOnlyPastTheFloorWhenTheTimeoutIsShort) {
  ArchiveObservation o = healthy();  // archive_timeout 60 s: max(120 s, 300 s) = 300 s
  o.server_now = *o.last_archived_time + seconds(300);
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingHealthy");
  o.server_now = *o.last_archived_time + seconds(301);
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingStale");
}

TEST(ArchivingStaleness, ALongTimeoutDoublesIntoTheThreshold) {
  ArchiveObservation o = healthy();
  o.archive_timeout_seconds = 600;  // max(1200 s, 300 s)
  o.server_now = *o.last_archived_time + seconds(1200);
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingHealthy");
  o.server_now = *o.last_archived_time + seconds(1201);
  const auto c = evaluate_archiving(o);
  EXPECT_EQ(c.reason, "ArchivingStale");
  EXPECT_NE(c.message.find("1200s"), std::string::npos) << c.message;
}

TEST(ArchivingStaleness, AnIdleServerIsNeverStale) {
  ArchiveObservation o = healthy();
  o.current_lsn = 0x11 * kSeg;  // exactly where the last archived segment ended: nothing written since
  o.server_now = *o.last_archived_time + hours(24 * 30);
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingHealthy");
  o.archive_timeout_seconds = 0;
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingHealthy");
}

TEST(ArchivingStaleness, WithoutArchiveTimeoutOnlyACompletedSegmentIsDue) {
  ArchiveObservation o = healthy();
  o.archive_timeout_seconds = 0;
  o.server_now = *o.last_archived_time + hours(5);
  o.current_lsn = 0x12 * kSeg - 1;  // segment 0x11 partly written: not due without archive_timeout
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingHealthy");
  o.current_lsn = 0x12 * kSeg;  // segment 0x11 complete and not archived
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingStale");
}

TEST(ArchivingStaleness, WalMustHaveWaitedAsLongAsTheThreshold) {
  // After a long idle spell, the first write is not stale before
  // archive_timeout could have switched it out.
  ArchiveObservation o = healthy();
  o.server_now = *o.last_archived_time + hours(3);
  o.waiting_since = o.server_now - seconds(299);
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingHealthy");
  o.waiting_since = o.server_now - seconds(300);
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingStale");
}

TEST(ArchivingStaleness, AnotherTimelineOrAnUnknownPositionIsNotJudged) {
  ArchiveObservation o = healthy();
  o.server_now = *o.last_archived_time + hours(3);
  o.current_timeline = 2;
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingHealthy");
  o = healthy();
  o.server_now = *o.last_archived_time + hours(3);
  o.current_lsn.reset();
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingHealthy");
  o = healthy();
  o.server_now = *o.last_archived_time + hours(3);
  o.last_archived_wal = "00000002.history";
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingHealthy");
}

TEST(ArchivingStaleness, ABackupLabelCountsAsItsSegment) {
  ArchiveObservation o = healthy();
  o.last_archived_wal = "000000010000000000000010.00000028.backup";
  o.server_now = *o.last_archived_time + hours(1);
  EXPECT_EQ(evaluate_archiving(o).reason, "ArchivingStale");
}

// --- the command rule ------------------------------------------------------------

struct CommandCase {
  const char* command;
  bool accepted;
  const char* why_has;  // refused: part of the reason
};

class WalgCommand : public ::testing::TestWithParam<CommandCase> {};

TEST_P(WalgCommand, FollowsTheRule) {
  std::string why;
  EXPECT_EQ(pushes_with_walg(GetParam().command, &why), GetParam().accepted) << GetParam().command << ": " << why;
  if (!GetParam().accepted) {
    EXPECT_NE(why.find(GetParam().why_has), std::string::npos) << why;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Archiving, WalgCommand,
    ::testing::Values(
        // accepted spellings
        CommandCase{"wal-g wal-push %p", true, ""}, CommandCase{"  wal-g   wal-push  %p  ", true, ""},
        CommandCase{"/usr/local/bin/wal-g wal-push %p", true, ""}, CommandCase{"wal-g wal-push \"%p\"", true, ""},
        CommandCase{"wal-g wal-push '%p'", true, ""},
        CommandCase{"envdir /etc/wal-g.d/env wal-g wal-push %p", true, ""},
        CommandCase{"/usr/bin/envdir /etc/wal-g.d/env /usr/local/bin/wal-g wal-push %p", true, ""},
        CommandCase{"WALG_S3_PREFIX=s3://b/p AWS_REGION=eu-west-1 wal-g wal-push %p", true, ""},
        CommandCase{"env WALG_FILE_PREFIX=/backups wal-g wal-push %p", true, ""},
        CommandCase{"env -i PATH=/usr/bin wal-g wal-push %p", true, ""},
        CommandCase{"exec wal-g wal-push %p", true, ""},
        CommandCase{"wal-g --config /etc/wal-g/config.json wal-push %p", true, ""},
        CommandCase{"wal-g --turbo wal-push %p", true, ""},
        CommandCase{"wal-g wal-push %p >> /var/log/wal-g/wal-push.log 2>&1", true, ""},
        CommandCase{"wal-g wal-push %p >/dev/null", true, ""},
        CommandCase{"bash --login -c \"wal-g wal-push %p\"", true, ""},
        CommandCase{"sh -c 'envdir /etc/wal-g.d/env wal-g wal-push %p'", true, ""},
        // refused spellings
        CommandCase{"", false, "empty"}, CommandCase{"cp %p /mnt/archive/%f", false, "runs `cp`"},
        CommandCase{"true", false, "runs `true`"}, CommandCase{"/bin/true", false, "runs `true`"},
        CommandCase{"wal-e wal-push %p", false, "runs `wal-e`"}, CommandCase{"my-wal-g wal-push %p", false, "runs `my-wal-g`"},
        CommandCase{"wal-g wal-push %p || true", false, "chains commands"},
        CommandCase{"wal-g wal-push %p; exit 0", false, "chains commands"},
        CommandCase{"wal-g wal-push %p && echo ok", false, "chains commands"},
        CommandCase{"wal-g wal-push %p | tee log", false, "chains commands"},
        CommandCase{"wal-g wal-push %p &", false, "chains commands"},
        CommandCase{"wal-g wal-push $(echo %p)", false, "command substitution"},
        CommandCase{"wal-g wal-push `echo %p`", false, "command substitution"},
        CommandCase{"wal-g wal-push %p < /dev/null", false, "'<'"},
        CommandCase{"wal-g wal-fetch %f %p", false, "`wal-fetch`"},
        CommandCase{"wal-g wal-push %f", false, "exactly %p"}, CommandCase{"wal-g wal-push", false, "exactly %p"},
        CommandCase{"wal-g wal-push %p extra", false, "`extra` after %p"},
        CommandCase{"wal-g", false, "not `wal-push %p`"},
        CommandCase{"echo wal-g wal-push %p", false, "runs `echo`"},
        CommandCase{"sh /opt/push.sh %p", false, "other than as"},
        CommandCase{"sh -c 'wal-g wal-push %p || true'", false, "chains commands"},
        CommandCase{"wal-g wal-push '%p", false, "unterminated quote"},
        CommandCase{"envdir", false, "names no program"}),
    [](const auto& info) { return "Case" + std::to_string(info.index); });

// --- redaction ----------------------------------------------------------------------

TEST(ArchiveCommandRedaction, SecretLookingValuesGoOthersStay) {
  EXPECT_EQ(redact_command("AWS_SECRET_ACCESS_KEY=abc123 AWS_REGION=eu-west-1 wal-g wal-push %p"),
            "AWS_SECRET_ACCESS_KEY=[redacted] AWS_REGION=eu-west-1 wal-g wal-push %p");
  EXPECT_EQ(redact_command("env WALG_LIBSODIUM_KEY='k e y' PGPASSWORD=\"p w\" wal-g wal-push %p"),
            "env WALG_LIBSODIUM_KEY=[redacted] PGPASSWORD=[redacted] wal-g wal-push %p");
  EXPECT_EQ(redact_command("wal-g --aws-session-token=tok wal-push %p"), "wal-g --aws-session-token=[redacted] wal-push %p");
  EXPECT_EQ(redact_command("WALG_S3_PREFIX=s3://user:hunter2@host/b wal-g wal-push %p"),
            "WALG_S3_PREFIX=s3://user:[redacted]@host/b wal-g wal-push %p");
  EXPECT_EQ(redact_command("envdir /etc/wal-g.d/env wal-g wal-push %p"), "envdir /etc/wal-g.d/env wal-g wal-push %p");
  EXPECT_LE(redact_command(std::string(2000, 'x')).size(), 512u);
}

// --- WAL segments and LSNs ----------------------------------------------------------

TEST(WalSegments, NamesParseIntoTimelineAndSegmentNumber) {
  EXPECT_EQ(parse_wal_name("000000010000000000000001"), (WalSegment{1, 1}));
  EXPECT_EQ(parse_wal_name("0000000200000003000000FF"), (WalSegment{2, 3 * 256 + 255}));
  EXPECT_EQ(parse_wal_name("000000010000000000000010.partial"), (WalSegment{1, 16}));
  EXPECT_EQ(parse_wal_name("000000010000000000000010.00000028.backup"), (WalSegment{1, 16}));
  EXPECT_EQ(parse_wal_name("00000002.history"), std::nullopt);
  EXPECT_EQ(parse_wal_name("000000010000000000000100"), std::nullopt);  // seg 0x100 does not exist at 16 MiB
  EXPECT_EQ(parse_wal_name("00000001000000000000001g"), std::nullopt);
  EXPECT_EQ(parse_wal_name("00000001000000000000001a"), std::nullopt);  // PostgreSQL writes upper case
  EXPECT_EQ(parse_wal_name(""), std::nullopt);
  // 64 MiB segments: 64 per 4 GiB.
  EXPECT_EQ(parse_wal_name("00000001000000020000003F", 64ull << 20), (WalSegment{1, 2 * 64 + 63}));
  EXPECT_EQ(parse_wal_name("000000010000000200000040", 64ull << 20), std::nullopt);
}

TEST(WalSegments, NameRoundTrips) {
  for (const char* n : {"000000010000000000000001", "0000000200000003000000FF", "0000000A0000001B00000000"})
    EXPECT_EQ(wal_name(*parse_wal_name(n)), n);
}

TEST(WalSegments, LsnsParseAndFormat) {
  EXPECT_EQ(parse_lsn("16/B374D848"), 0x16B374D848ull);
  EXPECT_EQ(parse_lsn("0/0"), 0ull);
  EXPECT_EQ(parse_lsn("FFFFFFFF/FFFFFFFF"), 0xFFFFFFFFFFFFFFFFull);
  EXPECT_EQ(parse_lsn("16B374D848"), std::nullopt);
  EXPECT_EQ(parse_lsn("/1"), std::nullopt);
  EXPECT_EQ(parse_lsn("1/"), std::nullopt);
  EXPECT_EQ(parse_lsn("1/x"), std::nullopt);
  EXPECT_EQ(parse_lsn("100000000/0"), std::nullopt);
  EXPECT_EQ(format_lsn(0x16B374D848ull), "16/B374D848");
  EXPECT_EQ(format_lsn(0), "0/0");
}

TEST(WalSegments, RangesAndTheSegmentHoldingAnLsn) {
  const auto r = segment_range({1, 0x16B3 >> 0});
  EXPECT_EQ(r.first, 0x16B3ull * kSeg);
  EXPECT_EQ(r.end, 0x16B4ull * kSeg);
  EXPECT_EQ(segment_of(1, *parse_lsn("16/B374D848")), (WalSegment{1, 0x16 * 256 + 0xB3}));
  EXPECT_EQ(wal_name(segment_of(1, *parse_lsn("16/B374D848"))), "0000000100000016000000B3");
  EXPECT_EQ(segment_of(1, *parse_lsn("0/3000000")).segno, 3u);   // a boundary starts the next segment
  EXPECT_EQ(segment_of(1, *parse_lsn("0/2FFFFFF")).segno, 2u);
}

TEST(WalSegments, WalIsArchivedThroughAnLsnOnlyWhenItsLastByteIsInAnArchivedSegment) {
  // A backup that stopped at 0/3000028 needs segment 3.
  EXPECT_FALSE(wal_archived_through("000000010000000000000002", 1, *parse_lsn("0/3000028")));
  EXPECT_TRUE(wal_archived_through("000000010000000000000003", 1, *parse_lsn("0/3000028")));
  EXPECT_TRUE(wal_archived_through("000000010000000000000009", 1, *parse_lsn("0/3000028")));
  // Ending exactly at a segment boundary needs only the segment before it.
  EXPECT_TRUE(wal_archived_through("000000010000000000000002", 1, *parse_lsn("0/3000000")));
  // Another timeline, a history file, a partial segment or a backup label prove nothing.
  EXPECT_FALSE(wal_archived_through("000000020000000000000009", 1, *parse_lsn("0/3000028")));
  EXPECT_FALSE(wal_archived_through("00000002.history", 1, *parse_lsn("0/3000028")));
  EXPECT_FALSE(wal_archived_through("000000010000000000000009.partial", 1, *parse_lsn("0/3000028")));
  EXPECT_FALSE(wal_archived_through("000000010000000000000003.00000028.backup", 1, *parse_lsn("0/3000028")));
  EXPECT_FALSE(wal_archived_through("", 1, *parse_lsn("0/3000028")));
}

// --- the prober's threading ---------------------------------------------------------

// A probe the test releases one call at a time, recording what it was given.
class GatedProbe {
 public:
  ArchiveObservation operator()(const ConnectionParams& p) {
    std::unique_lock lock(mu_);
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    passwords_.push_back(p.password);
    cv_.notify_all();
    cv_.wait(lock, [&] { return releases_ > 0 || closed_; });
    if (releases_ > 0) --releases_;
    --in_flight_;
    ++calls_;
    cv_.notify_all();
    ArchiveObservation o = next_;
    return o;
  }
  void release(ArchiveObservation o) {
    std::lock_guard lock(mu_);
    next_ = std::move(o);
    ++releases_;
    cv_.notify_all();
  }
  void close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  bool wait_for(const std::function<bool()>& pred) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, seconds(10), pred);
  }
  std::mutex mu_;
  std::condition_variable cv_;
  int in_flight_ = 0, max_in_flight_ = 0, releases_ = 0, calls_ = 0;
  bool closed_ = false;
  std::vector<std::string> passwords_;
  ArchiveObservation next_;
};

struct Wakes {
  void add(const std::string& k) {
    std::lock_guard lock(mu);
    keys.push_back(k);
    cv.notify_all();
  }
  bool wait_count(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, seconds(10), [&] { return keys.size() >= n; });
  }
  size_t count() {
    std::lock_guard lock(mu);
    return keys.size();
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> keys;
};

ConnectionParams params(const std::string& password = "CANARY-pw") {
  ConnectionParams p;
  p.host = "db";
  p.user = "postgres";
  p.password = password;
  return p;
}

TEST(ArchiveProber, ReturnsAtOnceAndWakesWhenTheFirstObservationArrives) {
  GatedProbe probe;
  Wakes wakes;
  bo::FakeClock clock(at("2026-12-01T10:00:00Z"));
  ArchiveProber prober([&](const ConnectionParams& p) { return probe(p); }, [&](const std::string& k) { wakes.add(k); },
                       clock, hours(1));
  EXPECT_EQ(prober.observe("ns/a", params()), std::nullopt);  // nothing yet, and no waiting for the probe
  ASSERT_TRUE(probe.wait_for([&] { return probe.in_flight_ == 1; }));
  probe.release(healthy());
  ASSERT_TRUE(wakes.wait_count(1));
  EXPECT_EQ(wakes.keys[0], "ns/a");
  const auto got = prober.latest("ns/a");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->last_archived_wal, "000000010000000000000010");
  EXPECT_EQ(got->observed_at, at("2026-12-01T10:00:00Z"));
  EXPECT_EQ(probe.passwords_, std::vector<std::string>{"CANARY-pw"});
  probe.close();
}

TEST(ArchiveProber, NeverRunsTwoProbesOfOnePolicyAndRespectsTheInterval) {
  GatedProbe probe;
  Wakes wakes;
  bo::FakeClock clock(at("2026-12-01T10:00:00Z"));
  ArchiveProber prober([&](const ConnectionParams& p) { return probe(p); }, [&](const std::string& k) { wakes.add(k); },
                       clock, hours(1));
  (void)prober.observe("ns/a", params());
  ASSERT_TRUE(probe.wait_for([&] { return probe.in_flight_ == 1; }));
  for (int i = 0; i < 20; ++i) (void)prober.observe("ns/a", params());  // while one runs: nothing more queued
  probe.release(healthy());
  ASSERT_TRUE(wakes.wait_count(1));
  for (int i = 0; i < 20; ++i) (void)prober.observe("ns/a", params());  // within the interval: nothing either
  // Another policy is probed; its completion proves the worker had the chance to run anything queued.
  (void)prober.observe("ns/b", params());
  ASSERT_TRUE(probe.wait_for([&] { return probe.in_flight_ == 1; }));
  probe.release(healthy());
  ASSERT_TRUE(wakes.wait_count(2));
  EXPECT_EQ(prober.probes_started(), 2);
  EXPECT_EQ(probe.max_in_flight_, 1);
  probe.close();
}

// Polls `pred` until it holds or the deadline passes (for conditions no one signals).
bool eventually(const std::function<bool()>& pred, milliseconds deadline = seconds(10)) {
  const auto until = steady_clock::now() + deadline;
  while (!pred()) {
    if (steady_clock::now() > until) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

TEST(ArchiveProber, WakesWhenAProbeIsDueSoTheReconcileHandsOverCredentialsAgain) {
  GatedProbe probe;
  Wakes wakes;
  bo::FakeClock clock(at("2026-12-01T10:00:00Z"));
  ArchiveProber prober([&](const ConnectionParams& p) { return probe(p); }, [&](const std::string& k) { wakes.add(k); },
                       clock, milliseconds(20));
  (void)prober.observe("ns/a", params("first"));
  ASSERT_TRUE(probe.wait_for([&] { return probe.in_flight_ == 1; }));
  probe.release(healthy());
  ASSERT_TRUE(wakes.wait_count(2)) << "the change, then the due probe";
  ASSERT_TRUE(eventually([&] {
    (void)prober.observe("ns/a", params("second"));
    return prober.probes_started() == 2;
  }));
  ASSERT_TRUE(probe.wait_for([&] { return probe.in_flight_ == 1; }));
  probe.release(healthy());
  ASSERT_TRUE(probe.wait_for([&] { return probe.calls_ == 2; }));
  EXPECT_EQ(probe.passwords_, (std::vector<std::string>{"first", "second"}));
  probe.close();
}

TEST(ArchiveProberCarry, UnchangedValuesKeepWhenTheyWereFirstRead) {
  ArchiveObservation first = ArchiveProber::carry(std::nullopt, healthy(), at("2026-12-01T10:00:00Z"));
  EXPECT_EQ(first.observed_at, at("2026-12-01T10:00:00Z"));
  EXPECT_TRUE(ArchiveProber::changed(std::nullopt, first));
  ArchiveObservation again = healthy();
  again.server_now += seconds(30);
  again.current_lsn = *again.current_lsn + 8192;
  again = ArchiveProber::carry(first, again, at("2026-12-01T10:00:30Z"));
  EXPECT_EQ(again.observed_at, at("2026-12-01T10:00:00Z"));
  EXPECT_FALSE(ArchiveProber::changed(first, again)) << "only the server's clock and WAL position moved";
  ArchiveObservation failing = healthy();
  failing.failed_count = 1;
  failing.last_failed_wal = "000000010000000000000011";
  failing.last_failed_time = at("2026-12-01T10:00:40Z");
  failing = ArchiveProber::carry(again, failing, at("2026-12-01T10:01:00Z"));
  EXPECT_EQ(failing.observed_at, at("2026-12-01T10:01:00Z"));
  EXPECT_TRUE(ArchiveProber::changed(again, failing));
}

TEST(ArchiveProberCarry, TurningStaleWakesThoughNothingElseChanged) {
  ArchiveObservation o = healthy();
  ArchiveObservation prev = ArchiveProber::carry(std::nullopt, o, at("2026-12-01T10:00:00Z"));
  EXPECT_EQ(prev.waiting_since, o.server_now);  // WAL written past segment 0x10: waiting since this reading
  for (int i = 1; i <= 4; ++i) {
    ArchiveObservation next = o;
    next.server_now = o.server_now + minutes(2 * i);
    next = ArchiveProber::carry(prev, next, at("2026-12-01T10:00:00Z"));
    EXPECT_EQ(next.waiting_since, o.server_now);
    // Stale once waited 5 min (since 10:01) and the last archive (10:00) is 5 min old: at 10:07.
    EXPECT_EQ(ArchiveProber::changed(prev, next), i == 3) << i;
    prev = next;
  }
  EXPECT_EQ(evaluate_archiving(prev).reason, "ArchivingStale");
  // Archived again: no longer waiting.
  ArchiveObservation caught_up = o;
  caught_up.last_archived_wal = "000000010000000000000011";
  caught_up.last_archived_time = o.server_now + minutes(9);
  caught_up.server_now = o.server_now + minutes(10);
  caught_up.current_lsn = 0x12 * kSeg;
  caught_up = ArchiveProber::carry(prev, caught_up, at("2026-12-01T10:11:00Z"));
  EXPECT_EQ(caught_up.waiting_since, std::nullopt);
  EXPECT_TRUE(ArchiveProber::changed(prev, caught_up));
}

TEST(ArchiveProber, StopJoinsAndForgetDropsThePolicy) {
  GatedProbe probe;
  Wakes wakes;
  bo::FakeClock clock(at("2026-12-01T10:00:00Z"));
  auto prober = std::make_unique<ArchiveProber>([&](const ConnectionParams& p) { return probe(p); },
                                                [&](const std::string& k) { wakes.add(k); }, clock, hours(1));
  (void)prober->observe("ns/a", params());
  ASSERT_TRUE(probe.wait_for([&] { return probe.in_flight_ == 1; }));
  prober->forget("ns/a");  // while its probe runs: the result is dropped
  probe.release(healthy());
  ASSERT_TRUE(probe.wait_for([&] { return probe.calls_ == 1; }));
  // A probe for another key is stuck when stop is called: stop waits for it.
  (void)prober->observe("ns/b", params());
  ASSERT_TRUE(probe.wait_for([&] { return probe.in_flight_ == 1; }));
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    prober->stop();
    stopped = true;
  });
  EXPECT_FALSE(stopped.load());
  probe.release(healthy());
  stopper.join();
  EXPECT_TRUE(stopped.load());
  EXPECT_EQ(prober->latest("ns/a"), std::nullopt);
  EXPECT_EQ(prober->observe("ns/c", params()), std::nullopt);  // stopped: nothing new starts
  EXPECT_EQ(prober->probes_started(), 2);
  prober.reset();  // a second stop in the destructor is harmless
  // ns/b may be woken if its probe ended before stop() began; the forgotten ns/a never is.
  EXPECT_EQ(std::count(wakes.keys.begin(), wakes.keys.end(), "ns/a"), 0);
}

// --- the policy's condition and status ------------------------------------------------

bo::api::BackupPolicySpec spec_with_credentials() {
  bo::api::BackupPolicySpec s;
  s.database.host = "db";
  s.database.credentials_secret = "supabase-db";
  return s;
}
const bo::api::SecretData kSecrets = {{"supabase-db", {{"username", "postgres"}, {"password", "CANARY-9d1e"}}}};

TEST(ContinuousArchivingCondition, NoCredentialsNamesTheField) {
  json status = json::object(), conditions = json::array();
  bo::api::BackupPolicySpec s;
  s.database.host = "db";
  bo::reconcile::apply_continuous_archiving(status, conditions, s, {}, std::nullopt, 3, at("2026-12-01T10:00:00Z"));
  const json* c = bo::reconcile::find_condition(conditions, "ContinuousArchiving");
  ASSERT_TRUE(c);
  EXPECT_EQ((*c)["status"], "False");
  EXPECT_EQ((*c)["reason"], "NoCredentials");
  EXPECT_NE((*c)["message"].get<std::string>().find("spec.database.credentialsSecretRef.name"), std::string::npos);
  s.database.credentials_secret = "supabase-db";
  bo::reconcile::apply_continuous_archiving(status, conditions, s, {{"supabase-db", {{"username", "u"}}}}, std::nullopt,
                                            3, at("2026-12-01T10:00:00Z"));
  EXPECT_NE((*bo::reconcile::find_condition(conditions, "ContinuousArchiving"))["message"].get<std::string>().find(
                "passwordKey"),
            std::string::npos);
}

TEST(ContinuousArchivingCondition, PendingUntilTheFirstProbe) {
  json status = json::object(), conditions = json::array();
  bo::reconcile::apply_continuous_archiving(status, conditions, spec_with_credentials(), kSecrets, std::nullopt, 1,
                                            at("2026-12-01T10:00:00Z"));
  EXPECT_EQ((*bo::reconcile::find_condition(conditions, "ContinuousArchiving"))["reason"], "ProbePending");
  EXPECT_FALSE(status.contains("continuousArchiving"));
}

TEST(ContinuousArchivingCondition, StatusCarriesTheEssentialsRedacted) {
  json status = json::object(), conditions = json::array();
  ArchiveObservation o = healthy();
  o.archive_command = "AWS_SECRET_ACCESS_KEY=CANARY-9d1e wal-g wal-push %p";
  o.observed_at = at("2026-12-01T10:01:02Z");
  o.failed_count = 2;
  o.last_failed_wal = "00000001000000000000000F";
  o.last_failed_time = at("2026-12-01T09:00:00Z");
  bo::reconcile::apply_continuous_archiving(status, conditions, spec_with_credentials(), kSecrets, o, 1,
                                            at("2026-12-01T10:02:00Z"));
  EXPECT_EQ((*bo::reconcile::find_condition(conditions, "ContinuousArchiving"))["status"], "True");
  EXPECT_EQ(status["continuousArchiving"],
            json({{"archiveMode", "on"},
                  {"archiveCommand", "AWS_SECRET_ACCESS_KEY=[redacted] wal-g wal-push %p"},
                  {"dataDirectory", "/var/lib/postgresql/data"},
                  {"lastArchivedWAL", "000000010000000000000010"},
                  {"lastArchivedTime", "2026-12-01T10:00:00Z"},
                  {"lastFailedWAL", "00000001000000000000000F"},
                  {"lastFailedTime", "2026-12-01T09:00:00Z"},
                  {"failedCount", 2},
                  {"observedAt", "2026-12-01T10:01:02Z"}}));
  EXPECT_EQ(status.dump().find("CANARY"), std::string::npos);
  EXPECT_EQ(json(conditions).dump().find("CANARY"), std::string::npos);
  // Unreachable later: the condition says so, the last reading stays.
  ArchiveObservation down;
  down.error = "connecting to db:5432 as postgres: could not translate host name \"db\" to address";
  const json before = status;
  bo::reconcile::apply_continuous_archiving(status, conditions, spec_with_credentials(), kSecrets, down, 1,
                                            at("2026-12-01T10:03:00Z"));
  EXPECT_EQ((*bo::reconcile::find_condition(conditions, "ContinuousArchiving"))["reason"], "DatabaseUnreachable");
  EXPECT_EQ(status, before);
}

TEST(ContinuousArchivingCondition, ConnectionComesFromSpecAndSecret) {
  auto s = spec_with_credentials();
  s.database.port = 6543;
  s.database.name = "app";
  const auto c = bo::reconcile::archive_connection(s, kSecrets);
  ASSERT_TRUE(c.params);
  EXPECT_EQ(c.params->host, "db");
  EXPECT_EQ(c.params->port, 6543);
  EXPECT_EQ(c.params->dbname, "app");
  EXPECT_EQ(c.params->user, "postgres");
  EXPECT_EQ(c.params->password, "CANARY-9d1e");
  EXPECT_FALSE(bo::reconcile::archive_connection(s, {}).params);
}

// The planner reports archiving but never lets it gate Ready or the Jobs.
TEST(ContinuousArchivingPlan, ArchivingOffStillArmsThePolicyAndRunsItsJobs) {
  const json policy = {
      {"apiVersion", "backup.si.dev/v1alpha1"},
      {"kind", "BackupPolicy"},
      {"metadata", {{"name", "db"}, {"namespace", "supabase"}, {"uid", "u1"}, {"generation", 2},
                    {"creationTimestamp", "2026-11-24T09:30:00Z"}}},
      {"spec", {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "db"}, {"credentialsSecretRef", {{"name", "supabase-db"}}}}},
                {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                             {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                {"verification", {{"targetNamespace", "verify"}}}}},
      // The catalog is in step with storage (no catalog Job besides the backup).
      {"status", {{"schedules", {{"catalog", {{"lastScheduleTime", "2026-11-24T09:30:00Z"}}}}}}}};
  bo::reconcile::PlanInputs in;
  in.policy = policy;
  in.now = at("2026-11-24T10:00:10Z");
  in.secrets = {{"walg-storage", {{"WALG_S3_PREFIX", "s3://b"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                                  {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY"}, {"WALG_AWS_ENDPOINT", "https://s3"}}},
                {"walg-encryption", {{"WALG_LIBSODIUM_KEY", "CANARY"}}},
                {"supabase-db", {{"username", "u"}, {"password", "CANARY"}}}};
  ArchiveObservation off = healthy();
  off.archive_mode = "off";
  in.archiving = off;
  in.data_volume = bo::reconcile::DataVolumeCheck{};
  in.data_volume->resolved = true;
  in.data_volume->volume = {"supabase-db-data", "/var/lib/postgresql/data", "", 101, 102, "", "", "", ""};
  const auto plan = bo::reconcile::plan_backup_policy(in);
  EXPECT_EQ(plan.create.size(), 1u);
  const json* ready = bo::reconcile::find_condition(plan.status["conditions"], "Ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ((*ready)["status"], "True");
  const json* ca = bo::reconcile::find_condition(plan.status["conditions"], "ContinuousArchiving");
  ASSERT_TRUE(ca) << plan.status["conditions"].dump();
  EXPECT_EQ((*ca)["status"], "False");
  EXPECT_EQ((*ca)["reason"], "ArchiveModeOff");
  EXPECT_EQ((*ca)["observedGeneration"], 2);
  EXPECT_EQ(plan.status["continuousArchiving"]["dataDirectory"], "/var/lib/postgresql/data");
  EXPECT_EQ(plan.status.dump().find("CANARY"), std::string::npos);
  // Before the first probe: Unknown, still armed.
  in.archiving.reset();
  const auto pending = bo::reconcile::plan_backup_policy(in);
  EXPECT_EQ((*bo::reconcile::find_condition(pending.status["conditions"], "ContinuousArchiving"))["reason"],
            "ProbePending");
  EXPECT_EQ(pending.create.size(), 1u);
}

}  // namespace
