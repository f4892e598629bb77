#include <gtest/gtest.h>

#include <date/tz.h>

#include <cstdio>
#include <random>

#include "common/timefmt.h"
#include "schedule/cron.h"

using bo::schedule::Cron;

namespace {

bo::SysTime at(const char* s) { return *bo::parse_rfc3339(s); }
std::string str(const std::optional<bo::SysTime>& t) { return t ? bo::format_rfc3339(*t) : "never"; }

struct NextCase {
  const char* name;
  const char* expr;
  const char* zone;
  const char* after;
  std::vector<const char*> expected;  // successive next() results
};

class CronNext : public ::testing::TestWithParam<NextCase> {};

TEST_P(CronNext, GivesTheExpectedInstants) {
  const auto& c = GetParam();
  auto cron = Cron::parse(c.expr);
  ASSERT_TRUE(cron) << cron.error();
  auto zone = bo::schedule::find_zone(c.zone);
  ASSERT_TRUE(zone) << zone.error();
  auto t = at(c.after);
  for (const char* want : c.expected) {
    auto n = cron->next(t, *zone);
    ASSERT_EQ(str(n), want) << c.expr << " after " << bo::format_rfc3339(t);
    t = *n;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, CronNext,
    ::testing::Values(
        NextCase{"Hourly", "0 * * * *", "UTC", "2026-01-01T10:00:00Z", {"2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"}},
        NextCase{"EveryQuarterHour", "*/15 * * * *", "UTC", "2026-01-01T10:07:30Z",
                 {"2026-01-01T10:15:00Z", "2026-01-01T10:30:00Z"}},
        NextCase{"DailyAtTwo", "0 2 * * *", "UTC", "2026-01-01T02:00:00Z", {"2026-01-02T02:00:00Z"}},
        NextCase{"WeeklyMacroIsSunday", "@weekly", "UTC", "2026-01-01T00:00:00Z", {"2026-01-04T00:00:00Z"}},
        NextCase{"MonthlyMacro", "@monthly", "UTC", "2026-01-15T00:00:00Z", {"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}},
        NextCase{"NamesAndRanges", "30 4 * jan-mar mon-fri", "UTC", "2026-03-31T05:00:00Z", {"2027-01-01T04:30:00Z"}},
        NextCase{"EitherDayFieldMatches", "0 0 13 * fri", "UTC", "2026-02-01T00:00:00Z",
                 {"2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z"}},
        NextCase{"SundayAsSeven", "0 0 * * 7", "UTC", "2026-01-01T00:00:00Z", {"2026-01-04T00:00:00Z"}},
        NextCase{"LeapDay", "0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", {"2028-02-29T00:00:00Z"}},
        NextCase{"ZoneOffsetApplies", "0 2 * * *", "Europe/Berlin", "2026-01-10T12:00:00Z", {"2026-01-11T01:00:00Z"}},
        // Spring forward in Berlin (2026-03-29 02:00 CET -> 03:00 CEST): a fixed-hour job
        // inside the gap runs as it ends, then at its usual wall time.
        NextCase{"SpringGapFixedHour", "30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z",
                 {"2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"}},
        // ... and an hourly job runs every real hour, with no run for the missing hour.
        NextCase{"SpringGapHourly", "0 * * * *", "Europe/Berlin", "2026-03-28T23:30:00Z",
                 {"2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"}},
        // Fall back in Berlin (2026-10-25 03:00 CEST -> 02:00 CET): a fixed-hour job in the
        // repeated hour runs once, at the first occurrence.
        NextCase{"AutumnRepeatFixedHour", "30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z",
                 {"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
        // ... and an hourly job still runs every real hour, twice at 02:00 wall time.
        NextCase{"AutumnRepeatHourly", "0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z",
                 {"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"}},
        NextCase{"NewYorkSpring", "0 2 * * *", "America/New_York", "2026-03-07T12:00:00Z",
                 {"2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z"}},
        NextCase{"Impossible", "0 0 30 2 *", "UTC", "2026-01-01T00:00:00Z", {"never"}}),
    [](const auto& info) { return info.param.name; });

struct BadCase {
  const char* name;
  const char* expr;
  const char* says;
};

class CronParseErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(CronParseErrors, NameTheProblem) {
  auto c = Cron::parse(GetParam().expr);
  ASSERT_FALSE(c) << GetParam().expr;
  EXPECT_NE(c.error().find(GetParam().says), std::string::npos) << c.error();
}

INSTANTIATE_TEST_SUITE_P(Table, CronParseErrors,
                         ::testing::Values(BadCase{"Empty", "  ", "empty"},
                                           BadCase{"TooFewFields", "* * *", "expected 5 fields"},
                                           BadCase{"TooManyFields", "* * * * * *", "expected 5 fields"},
                                           BadCase{"MinuteRange", "60 * * * *", "minute: 60 is out of range 0-59"},
                                           BadCase{"HourRange", "0 24 * * *", "hour:"},
                                           BadCase{"ZeroStep", "*/0 * * * *", "minute: step"},
                                           BadCase{"Backwards", "0 5-1 * * *", "runs backwards"},
                                           BadCase{"NotANumber", "x * * * *", "\"x\" is not a number"},
                                           BadCase{"BadMonthName", "0 0 1 foo *", "month:"},
                                           BadCase{"UnknownMacro", "@sometimes", "unknown macro"},
                                           BadCase{"EmptyListItem", "1,,2 * * * *", "empty list item"}),
                         [](const auto& info) { return info.param.name; });

TEST(TimeZone, UnknownNameIsAnError) {
  auto z = bo::schedule::find_zone("Mars/Olympus_Mons");
  ASSERT_FALSE(z);
  EXPECT_NE(z.error().find("Mars/Olympus_Mons"), std::string::npos);
}

}  // namespace

// next() skips the zone lookups where the offset is constant; the walk that
// resolves every candidate through the zone is the reference. Random
// schedules, zones with and without daylight saving (half-hour shifts, a
// skipped day) and instants around their transitions must agree.
TEST(CronNext, TheShortcutAgreesWithTheWalkEverywhere) {
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::printf("CronNext.TheShortcutAgreesWithTheWalkEverywhere seed %u\n", seed);
  const std::vector<const char*> minutes = {"*", "0", "30", "*/15", "5,35", "59"};
  const std::vector<const char*> hours = {"*", "0", "1", "2", "3", "*/6", "1-3", "23"};
  const std::vector<const char*> doms = {"*", "*", "1", "15", "29", "31", "1-7"};
  const std::vector<const char*> months = {"*", "*", "*", "3", "10", "2", "11"};
  const std::vector<const char*> dows = {"*", "*", "*", "0", "1-5", "6"};
  const std::vector<const char*> zones = {"UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe",
                                          "Pacific/Apia", "America/Sao_Paulo", "Asia/Kolkata"};
  auto pick = [&](const auto& v) { return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)]; };
  // 2010..2031: Apia skipped 2011-12-30; Sao Paulo ended daylight saving in 2019.
  std::uniform_int_distribution<long long> when(1262304000LL, 1924992000LL);
  int compared = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::string expr = std::string(pick(minutes)) + " " + pick(hours) + " " + pick(doms) + " " + pick(months) + " " + pick(dows);
    const auto cron = Cron::parse(expr);
    ASSERT_TRUE(cron) << expr;
    const auto* zone = *bo::schedule::find_zone(pick(zones));
    // Half the instants within a day of one of the zone's transitions.
    bo::SysTime t{std::chrono::seconds(when(rng))};
    if (i % 2) {
      // (sys_seconds: a zone's last period ends in year 32767, past what SysTime's nanoseconds hold.)
      const auto info = zone->get_info(std::chrono::floor<std::chrono::seconds>(t));
      if (info.end < date::sys_seconds(std::chrono::seconds(4102444800LL)))
        t = info.end - std::chrono::minutes(std::uniform_int_distribution<int>(-1440, 1440)(rng)) +
            std::chrono::seconds(std::uniform_int_distribution<int>(0, 59)(rng));
    }
    for (int step = 0; step < 4; ++step) {
      const auto fast = cron->next(t, zone), walk = cron->next_by_walk(t, zone);
      ASSERT_EQ(str(fast), str(walk)) << expr << " in " << zone->name() << " after " << bo::format_rfc3339(t);
      ++compared;
      if (!walk) break;
      t = *walk;
    }
  }
  EXPECT_GT(compared, 3000);
}
