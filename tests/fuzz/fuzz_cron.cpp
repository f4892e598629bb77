// Cron expressions: parse, then walk a few firings in a zone with DST.
#include <date/tz.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "schedule/cron.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const date::time_zone* zone = date::locate_zone("Europe/Berlin");
  auto cron = bo::schedule::Cron::parse(std::string(reinterpret_cast<const char*>(data), size));
  if (!cron) return 0;
  std::optional<std::chrono::system_clock::time_point> t = date::sys_days(date::year{2026} / 3 / 28);
  for (int i = 0; i < 5 && t; ++i) t = cron->next(*t, zone);
  return 0;
}
