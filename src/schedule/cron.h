// Cron schedules as Kubernetes users write them: five fields (minute hour
// day-of-month month day-of-week) with lists, ranges, steps and names, or
// @hourly/@daily/@weekly/@monthly/@yearly, evaluated in an IANA time zone.
//
// Daylight-saving changes follow Vixie cron, the behaviour operators expect:
// a job with a fixed hour runs once a day even when that wall-clock time is
// repeated (autumn: the first occurrence) or skipped (spring: at the first
// instant after the gap); a job whose hour field is '*' runs every real hour,
// so an hourly backup is never an hour short or doubled.
#pragma once
#include <bitset>
#include <chrono>
#include <expected>
#include <optional>
#include <string>

namespace date {
class time_zone;
}

namespace bo::schedule {

using SysTime = std::chrono::system_clock::time_point;

class Cron {
 public:
  // The error names the field and what is wrong with it.
  static std::expected<Cron, std::string> parse(const std::string& expr);

  // The first scheduled instant strictly after `after`, or nullopt if the
  // schedule never fires within five years (e.g. "0 0 30 2 *").
  [[nodiscard]] std::optional<SysTime> next(SysTime after, const date::time_zone* tz) const;
  // The same answer by the general walk alone: every matching minute from two
  // local hours before `after`, each resolved through the zone. next() takes
  // it only near an offset change; elsewhere the offset is known and a
  // matching minute is the answer as soon as it is after `after`. Kept for
  // the test that holds next() to it.
  [[nodiscard]] std::optional<SysTime> next_by_walk(SysTime after, const date::time_zone* tz) const;
  [[nodiscard]] const std::string& expression() const { return expr_; }

 private:
  [[nodiscard]] bool day_matches(unsigned dom, unsigned month, unsigned dow) const;
  // The first local minute at or after `local` that the fields match, before `limit`.
  template <class LocalMinutes>
  [[nodiscard]] std::optional<LocalMinutes> next_match(LocalMinutes local, LocalMinutes limit) const;

  std::string expr_;
  std::bitset<60> minute_;
  std::bitset<24> hour_;
  std::bitset<32> dom_;
  std::bitset<13> month_;
  std::bitset<7> dow_;
  bool dom_star_ = false;
  bool dow_star_ = false;
  bool hour_star_ = false;
};

// An IANA zone ("Europe/Berlin", "UTC"); the error says the name is unknown.
std::expected<const date::time_zone*, std::string> find_zone(const std::string& name);

}  // namespace bo::schedule
