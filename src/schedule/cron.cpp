#include "schedule/cron.h"

#include <date/date.h>
#include <date/tz.h>

#include <array>
#include <sstream>
#include <vector>

namespace bo::schedule {
namespace {

constexpr std::array<const char*, 12> kMonths = {"jan", "feb", "mar", "apr", "may", "jun",
                                                 "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<const char*, 7> kDays = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::stringstream ss(s);
  while (std::getline(ss, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

std::expected<int, std::string> value(const std::string& tok, int lo, int hi, const char* const* names, int count,
                                      int name_base) {
  std::string t = tok;
  for (auto& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (int i = 0; names && i < count; ++i)
    if (t == names[i]) return i + name_base;
  if (t.empty() || t.find_first_not_of("0123456789") != std::string::npos)
    return std::unexpected("\"" + tok + "\" is not a number");
  if (t.size() > 4) return std::unexpected("\"" + tok + "\" is out of range " + std::to_string(lo) + "-" + std::to_string(hi));
  const int v = std::stoi(t);
  if (v < lo || v > hi) return std::unexpected(tok + " is out of range " + std::to_string(lo) + "-" + std::to_string(hi));
  return v;
}

// Parses one field into bits [lo, hi]; `star` reports a bare '*' (or '*/1').
template <size_t N>
std::expected<void, std::string> parse_field(const std::string& field, int lo, int hi, std::bitset<N>& bits, bool* star,
                                             const char* const* names = nullptr, int count = 0, int name_base = 0) {
  *star = false;
  if (field.empty()) return std::unexpected("empty field");
  for (const auto& part : split(field, ',')) {
    if (part.empty()) return std::unexpected("empty list item in \"" + field + "\"");
    std::string range = part;
    int step = 1;
    if (auto slash = part.find('/'); slash != std::string::npos) {
      range = part.substr(0, slash);
      auto s = value(part.substr(slash + 1), 1, hi - lo + 1, nullptr, 0, 0);
      if (!s) return std::unexpected("step " + s.error());
      step = *s;
    }
    int a, b;
    if (range == "*" || range == "?") {
      a = lo;
      b = hi;
      if (step == 1 && part == range) *star = true;
    } else if (auto dash = range.find('-'); dash != std::string::npos) {
      auto x = value(range.substr(0, dash), lo, hi, names, count, name_base);
      if (!x) return std::unexpected(x.error());
      auto y = value(range.substr(dash + 1), lo, hi, names, count, name_base);
      if (!y) return std::unexpected(y.error());
      a = *x;
      b = *y;
      if (a > b) return std::unexpected("range " + range + " runs backwards");
    } else {
      auto x = value(range, lo, hi, names, count, name_base);
      if (!x) return std::unexpected(x.error());
      a = *x;
      b = part.find('/') != std::string::npos ? hi : a;  // "5/15" means 5-max/15
    }
    for (int v = a; v <= b; v += step) bits.set(static_cast<size_t>(v));
  }
  return {};
}

}  // namespace

std::expected<Cron, std::string> Cron::parse(const std::string& expr_in) {
  std::string expr = expr_in;
  const auto b = expr.find_first_not_of(" \t");
  if (b == std::string::npos) return std::unexpected("empty schedule");
  expr = expr.substr(b, expr.find_last_not_of(" \t") - b + 1);
  static const std::pair<const char*, const char*> kMacros[] = {{"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
                                                                {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
                                                                {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
                                                                {"@hourly", "0 * * * *"}};
  std::string fields_text = expr;
  if (expr[0] == '@') {
    bool found = false;
    for (const auto& [name, body] : kMacros)
      if (expr == name) {
        fields_text = body;
        found = true;
      }
    if (!found) return std::unexpected("unknown macro \"" + expr + "\" (use @hourly, @daily, @weekly, @monthly or @yearly)");
  }
  std::vector<std::string> f;
  std::stringstream ss(fields_text);
  for (std::string tok; ss >> tok;) f.push_back(tok);
  if (f.size() != 5)
    return std::unexpected("expected 5 fields (minute hour day-of-month month day-of-week), got " +
                           std::to_string(f.size()));
  Cron c;
  c.expr_ = expr;
  bool star;
  if (auto r = parse_field(f[0], 0, 59, c.minute_, &star); !r) return std::unexpected("minute: " + r.error());
  if (auto r = parse_field(f[1], 0, 23, c.hour_, &c.hour_star_); !r) return std::unexpected("hour: " + r.error());
  if (auto r = parse_field(f[2], 1, 31, c.dom_, &c.dom_star_); !r) return std::unexpected("day-of-month: " + r.error());
  if (auto r = parse_field(f[3], 1, 12, c.month_, &star, kMonths.data(), 12, 1); !r)
    return std::unexpected("month: " + r.error());
  std::bitset<8> dow8;
  if (auto r = parse_field(f[4], 0, 7, dow8, &c.dow_star_, kDays.data(), 7, 0); !r)
    return std::unexpected("day-of-week: " + r.error());
  for (size_t i = 0; i < 7; ++i) c.dow_[i] = dow8[i];
  if (dow8[7]) c.dow_[0] = true;  // 7 is Sunday too
  return c;
}

bool Cron::day_matches(unsigned dom, unsigned month, unsigned dow) const {
  if (!month_[month]) return false;
  // Vixie cron: when both day fields are restricted, either may match.
  if (!dom_star_ && !dow_star_) return dom_[dom] || dow_[dow];
  return dom_[dom] && dow_[dow];
}

template <class LocalMinutes>
std::optional<LocalMinutes> Cron::next_match(LocalMinutes local, LocalMinutes limit) const {
  using namespace std::chrono;
  using date::local_days;
  while (local < limit) {
    const auto day = floor<date::days>(local);
    const date::year_month_day ymd(day);
    const unsigned dom = static_cast<unsigned>(ymd.day());
    const unsigned mon = static_cast<unsigned>(ymd.month());
    const unsigned dow = date::weekday(day).c_encoding();
    if (!month_[mon]) {
      local = local_days((ymd.year() / ymd.month() / 1) + date::months(1)) + minutes(0);
      continue;
    }
    if (!day_matches(dom, mon, dow)) {
      local = day + date::days(1) + minutes(0);
      continue;
    }
    const auto tod = local - day;
    const auto h = static_cast<size_t>(duration_cast<hours>(tod).count());
    const auto m = static_cast<size_t>(duration_cast<minutes>(tod).count() % 60);
    if (!hour_[h]) {
      local = day + hours(h + 1);
      continue;
    }
    if (!minute_[m]) {
      local += minutes(1);
      continue;
    }
    return local;
  }
  return std::nullopt;
}

std::optional<SysTime> Cron::next(SysTime after, const date::time_zone* tz) const {
  using namespace std::chrono;
  // Where the zone's offset is constant from two days before `after` to two
  // days past the answer, every local minute is a unique instant: no gap, no
  // repeated hour, so the first matching minute past `after` is the answer.
  // (Offsets differ by at most a day between periods, so two days of margin
  // keep a neighbouring period's local times out of reach.)
  const auto at = floor<seconds>(after);
  const date::sys_info period = tz->get_info(at);
  if (at - period.begin < days(2)) return next_by_walk(after, tz);  // period bounds stay sys_seconds (see below)
  const auto safe_end = period.end - days(2);
  auto local = date::local_seconds((floor<minutes>(after) + period.offset).time_since_epoch());  // as the walk's
  const auto limit = local + days(366 * 5);
  while (auto m = next_match(local, limit)) {
    const SysTime t(duration_cast<system_clock::duration>(m->time_since_epoch() - period.offset));
    if (floor<seconds>(t) >= safe_end) return next_by_walk(after, tz);  // in seconds: a zone's last period ends in year 32767, past what nanoseconds hold
    if (t > after) return t;
    local = *m + minutes(1);
  }
  return std::nullopt;
}

std::optional<SysTime> Cron::next_by_walk(SysTime after, const date::time_zone* tz) const {
  using namespace std::chrono;
  // Start two hours early in local time: a repeated (autumn) hour's second
  // occurrence lies "behind" the current wall-clock time. Candidates at or
  // before `after` are skipped below.
  const auto local_after = tz->to_local(floor<minutes>(after));
  auto local = local_after - hours(2);
  const auto limit = local_after + days(366 * 5);
  while (auto m = next_match(local, limit)) {
    local = *m;
    const date::local_info info = tz->get_info(date::local_seconds(floor<seconds>(local)));
    const auto wall = date::local_seconds(floor<seconds>(local)).time_since_epoch();
    switch (info.result) {
      case date::local_info::unique: {
        const SysTime t(duration_cast<system_clock::duration>(wall - info.first.offset));
        if (t > after) return t;
        break;
      }
      case date::local_info::nonexistent:
        // Sprung over: a fixed-hour job runs as the gap ends; an every-hour job
        // simply has no run in an hour that does not exist.
        if (!hour_star_) {
          const SysTime t(duration_cast<system_clock::duration>(info.first.end.time_since_epoch()));
          if (t > after) return t;
        }
        break;
      case date::local_info::ambiguous: {
        const SysTime first(duration_cast<system_clock::duration>(wall - info.first.offset));
        const SysTime second(duration_cast<system_clock::duration>(wall - info.second.offset));
        if (first > after) return first;
        if (hour_star_ && second > after) return second;
        break;
      }
    }
    local += minutes(1);
  }
  return std::nullopt;
}

std::expected<const date::time_zone*, std::string> find_zone(const std::string& name) {
  try {
    return date::locate_zone(name);
  } catch (const std::exception&) {
    return std::unexpected("unknown time zone \"" + name + "\" (use an IANA name such as UTC or Europe/Berlin)");
  }
}

}  // namespace bo::schedule
