#include "common/timefmt.h"

#include <cctype>
#include <cstdio>
#include <ctime>

namespace bo {

std::string format_rfc3339(SysTime t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string format_compact_utc(SysTime t) {
  std::string out;
  for (char c : format_rfc3339(std::chrono::floor<std::chrono::seconds>(t)))
    if (c != '-' && c != ':') out.push_back(c);
  return out;
}

std::string format_rfc3339_micro(SysTime t) {
  const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(t - secs).count();
  if (micros < 0) micros = 0;
  std::string s = format_rfc3339(secs);
  char frac[24];  // room for any long long, though micros is always below 10^6
  std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>(micros % 1000000));
  return s.substr(0, s.size() - 1) + frac + "Z";
}

std::optional<SysTime> parse_rfc3339(const std::string& s) {
  int y, mo, d, h, mi, sec;
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &consumed) != 6)
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || mi < 0 || sec < 0 || h > 23 || mi > 59 || sec > 60)
    return std::nullopt;
  // system_clock counts nanoseconds: it spans 1677..2262. Outside that a
  // conversion overflows (found by fuzzing), so such a time is invalid here.
  if (y < 1678 || y > 2261) return std::nullopt;
  size_t pos = static_cast<size_t>(consumed);
  long long frac_us = 0;
  if (pos < s.size() && s[pos] == '.') {
    ++pos;
    int digits = 0;
    while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
      if (digits < 6) {
        frac_us = frac_us * 10 + (s[pos] - '0');
        ++digits;
      }
      ++pos;
    }
    while (digits++ < 6) frac_us *= 10;
  }
  long offset = 0;
  if (pos < s.size() && (s[pos] == 'Z' || s[pos] == 'z')) {
    ++pos;
  } else if (pos + 6 == s.size() && (s[pos] == '+' || s[pos] == '-') && s[pos + 3] == ':') {
    int oh = 0, om = 0;
    if (std::sscanf(s.c_str() + pos + 1, "%2d:%2d", &oh, &om) != 2) return std::nullopt;
    offset = (s[pos] == '+' ? 1 : -1) * (oh * 3600L + om * 60L);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != s.size()) return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  const std::time_t tt = timegm(&tm);
  return std::chrono::system_clock::from_time_t(tt - offset) + std::chrono::microseconds(frac_us);
}

std::string human_duration(std::chrono::seconds d) {
  long s = d.count();
  if (s < 0) s = 0;
  if (s < 120) return std::to_string(s) + "s";
  const long m = s / 60;
  if (m < 10) return s % 60 == 0 ? std::to_string(m) + "m" : std::to_string(m) + "m" + std::to_string(s % 60) + "s";
  if (m < 180) return std::to_string(m) + "m";
  const long h = s / 3600;
  if (h < 8) return h * 60 == m ? std::to_string(h) + "h" : std::to_string(h) + "h" + std::to_string(m % 60) + "m";
  if (h < 48) return std::to_string(h) + "h";
  const long days = h / 24;
  if (h < 24 * 8) return h % 24 == 0 ? std::to_string(days) + "d" : std::to_string(days) + "d" + std::to_string(h % 24) + "h";
  if (days < 365 * 2) return std::to_string(days) + "d";
  if (days < 365 * 8) return std::to_string(days / 365) + "y" + std::to_string(days % 365) + "d";
  return std::to_string(days / 365) + "y";
}

}  // namespace bo
