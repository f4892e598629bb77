#include "common.h"

#include <cstdio>
#include <ctime>
#include <iostream>

#include "postgres/archiving.h"

extern char** environ;

namespace walg {

Settings settings_from_environment() {
  Settings s;
  for (char** e = environ; e && *e; ++e) {
    const std::string kv = *e;
    const auto eq = kv.find('=');
    if (eq != std::string::npos) s[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return s;
}

std::string setting(const Settings& s, const std::string& key, const std::string& dflt) {
  const auto it = s.find(key);
  return it == s.end() || it->second.empty() ? dflt : it->second;
}

namespace {
void log_line(const char* level, const std::string& message) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t t = std::chrono::system_clock::to_time_t(now);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y/%m/%d %H:%M:%S", &tm);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  char frac[16];
  std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>(us));
  std::cerr << level << ": " << buf << frac << " " << message << "\n";
}
}  // namespace

void log_info(const std::string& message) { log_line("INFO", message); }
void log_warning(const std::string& message) { log_line("WARNING", message); }

uint64_t parse_lsn(const std::string& text) {
  if (const auto lsn = bo::postgres::parse_lsn(text)) return *lsn;
  throw Failure{"cannot parse LSN \"" + text + "\""};
}


std::string go_time(std::chrono::system_clock::time_point t) {
  const std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count() % 1000000000;
  if (ns < 0) ns += 1000000000;
  std::string out = buf;
  if (ns != 0) {
    // Go trims trailing zeros of the fraction (RFC3339Nano).
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%09lld", static_cast<long long>(ns));
    std::string f = frac;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out + "Z";
}

}  // namespace walg
