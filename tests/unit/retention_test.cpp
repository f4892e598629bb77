#include <gtest/gtest.h>

#include <date/tz.h>

#include <set>

#include "common/timefmt.h"
#include "reconcile/retention.h"

using namespace bo::reconcile;
using namespace std::chrono;

namespace {

bo::SysTime at(const char* s) { return *bo::parse_rfc3339(s); }
const date::time_zone* utc() { return date::locate_zone("UTC"); }

// A year of the default policy: a full backup every day at 02:00 and hourly deltas.
std::vector<RetainedBackup> simulated_year(bo::SysTime start, int days) {
  std::vector<RetainedBackup> out;
  for (int d = 0; d < days; ++d) {
    const auto day = start + hours(24 * d);
    const std::string full = "full-" + std::to_string(d);
    out.push_back({full, "full", "", day + hours(2), false, "", true});
    for (int h = 3; h < 24; h += 7) out.push_back({"delta-" + std::to_string(d) + "-" + std::to_string(h), "delta", full, day + hours(h), false, "", true});
  }
  return out;
}

TEST(Retention, AYearOfDailyBackupsKeepsSevenDailyFourWeeklyThreeMonthly) {
  const auto catalog = simulated_year(at("2026-01-01T00:00:00Z"), 365);
  const auto d = apply_retention(catalog, {7, 4, 3}, utc());
  std::set<std::string> fulls_kept;
  int daily = 0, weekly = 0, monthly = 0;
  for (const auto& [id, why] : d.kept_for) {
    if (!id.starts_with("full-")) continue;
    fulls_kept.insert(id);
    for (const auto& w : why) {
      daily += w == "daily";
      weekly += w == "weekly";
      monthly += w == "monthly";
    }
  }
  EXPECT_EQ(daily, 7);
  EXPECT_EQ(weekly, 4);
  EXPECT_EQ(monthly, 3);
  // The newest full is daily, weekly and monthly at once; overlaps shrink the set.
  EXPECT_TRUE(fulls_kept.count("full-364"));
  EXPECT_LE(fulls_kept.size(), 14u);
  EXPECT_GE(fulls_kept.size(), 9u);
  // Monthly keeps: the newest full of December, November and October 2026.
  EXPECT_TRUE(fulls_kept.count("full-333"));  // 2026-11-30
  EXPECT_TRUE(fulls_kept.count("full-303"));  // 2026-10-31
  // Every kept delta has its base kept; every expired delta's base is expired too.
  for (const auto& b : catalog) {
    if (b.type != "delta") continue;
    EXPECT_EQ(d.kept_for.count(b.id), d.kept_for.count(b.base)) << b.id;
  }
  EXPECT_EQ(d.kept_for.size() + d.expire.size(), catalog.size());
  // Oldest first.
  EXPECT_EQ(d.expire.front(), "full-0");
}

TEST(Retention, GapsDoNotAgeOutTheLastBackups) {
  // Backups stopped ten days ago: the last seven days that had one are still kept.
  const auto catalog = simulated_year(at("2026-03-01T00:00:00Z"), 20);
  const auto d = apply_retention(catalog, {7, 1, 1}, utc());
  for (int day = 13; day < 20; ++day) EXPECT_TRUE(d.kept_for.count("full-" + std::to_string(day))) << day;
  EXPECT_FALSE(d.kept_for.count("full-12"));
}

TEST(Retention, NewestVerifiedBackupAndItsBaseAreNeverExpired) {
  auto catalog = simulated_year(at("2026-01-01T00:00:00Z"), 60);
  for (auto& b : catalog)
    if (b.id == "delta-5-10") b.verified = true;
  const auto d = apply_retention(catalog, {2, 1, 1}, utc());
  ASSERT_TRUE(d.kept_for.count("delta-5-10"));
  EXPECT_EQ(d.kept_for.at("delta-5-10"), (std::vector<std::string>{"verified"}));
  EXPECT_TRUE(d.kept_for.count("full-5"));
  EXPECT_EQ(std::count(d.expire.begin(), d.expire.end(), "full-5"), 0);
}

TEST(Retention, BucketsFollowThePolicyTimeZone) {
  // 23:30 UTC on Jan 1 is already Jan 2 in Berlin: two fulls, one Berlin day.
  std::vector<RetainedBackup> c = {{"a", "full", "", at("2026-01-02T00:30:00Z"), false, "", true},
                                   {"b", "full", "", at("2026-01-01T23:30:00Z"), false, "", true}};
  EXPECT_EQ(apply_retention(c, {7, 1, 1}, date::locate_zone("Europe/Berlin")).expire, std::vector<std::string>{"b"});
  EXPECT_TRUE(apply_retention(c, {7, 1, 1}, utc()).expire.empty());
}

}  // namespace

namespace {

TEST(Retention, DeltasOfAnUnknownBaseAreNeverDeleted) {
  // The operator starts with an empty catalog: the first backups are deltas of
  // a full it never saw. Deleting them would lose data.
  std::vector<RetainedBackup> c = {{"d1", "delta", "base_old", at("2026-03-01T01:00:00Z"), false, "", true},
                                   {"d2", "delta", "base_old", at("2026-03-01T02:00:00Z"), false, "", true},
                                   {"f1", "full", "", at("2026-03-02T02:00:00Z"), false, "", true}};
  const auto d = apply_retention(c, {1, 1, 1}, utc());
  EXPECT_TRUE(d.expire.empty());
  EXPECT_EQ(d.kept_for.at("d1"), std::vector<std::string>{"unknown-base"});
}

}  // namespace

namespace {

// wal-g chains deltas (WALG_DELTA_ORIGIN=LATEST): each names the previous
// backup as DeltaFrom and the full at the root as DeltaFullName.
std::vector<RetainedBackup> chain(const std::string& full, const char* day, int deltas) {
  std::vector<RetainedBackup> out = {{full, "full", "", at((std::string(day) + "T02:00:00Z").c_str()), false, "", true}};
  std::string prev = full;
  for (int i = 1; i <= deltas; ++i) {
    const std::string id = full + "_D" + std::to_string(i);
    char t[32];
    std::snprintf(t, sizeof t, "%sT%02d:00:00Z", day, 2 + i);
    out.push_back({id, "delta", prev, at(t), false, full, true});
    prev = id;
  }
  return out;
}

TEST(Retention, AKeptDeltaKeepsItsWholeChainBackToTheFull) {
  auto c = chain("f1", "2026-03-01", 4);
  auto newer = chain("f2", "2026-03-02", 1);
  c.insert(c.end(), newer.begin(), newer.end());
  c[3].verified = true;  // f1_D3, the newest verified backup
  const auto d = apply_retention(c, {1, 1, 1}, utc());
  // f1 is past every bucket (f2 fills them), but f1_D3 is verified: f1, D1 and D2 stay as its chain.
  EXPECT_EQ(d.kept_for.at("f1_D3"), std::vector<std::string>{"verified"});
  EXPECT_EQ(d.kept_for.at("f1_D2"), std::vector<std::string>{"chain"});
  EXPECT_EQ(d.kept_for.at("f1_D1"), std::vector<std::string>{"chain"});
  EXPECT_EQ(d.kept_for.at("f1"), std::vector<std::string>{"chain"});
  // D4 builds on the kept D3, but nothing needs it: it goes.
  EXPECT_EQ(d.expire, std::vector<std::string>{"f1_D4"});
}

TEST(Retention, DeltasFollowTheFullAtTheRootOfTheirChainNotTheirName) {
  auto c = chain("f1", "2026-03-01", 3);
  auto newer = chain("f2", "2026-03-02", 0);
  c.insert(c.end(), newer.begin(), newer.end());
  const auto d = apply_retention(c, {1, 1, 1}, utc());
  // f1 expires with every delta of its chain (wal-g's delete target of f1 removes them too).
  EXPECT_EQ(d.expire, (std::vector<std::string>{"f1", "f1_D1", "f1_D2", "f1_D3"}));
  c = chain("f1", "2026-03-01", 3);
  const auto kept = apply_retention(c, {1, 1, 1}, utc());
  EXPECT_TRUE(kept.expire.empty());
  EXPECT_EQ(kept.kept_for.at("f1_D3"), std::vector<std::string>{"base"});
}

TEST(Retention, AFullWhoseWalWasNotArchivedFillsNoBucket) {
  std::vector<RetainedBackup> c = {{"broken", "full", "", at("2026-03-02T02:00:00Z"), false, "", false},
                                   {"good", "full", "", at("2026-03-01T02:00:00Z"), false, "", true}};
  const auto d = apply_retention(c, {1, 1, 1}, utc());
  EXPECT_EQ(d.expire, std::vector<std::string>{"broken"});
  EXPECT_TRUE(d.kept_for.count("good"));
}

}  // namespace
