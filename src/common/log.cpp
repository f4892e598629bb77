#include "common/log.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>

#include "common/timefmt.h"

namespace bo::log {
namespace {

std::atomic<bool> g_json{true};
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};

std::shared_ptr<spdlog::logger> logger() {
  static auto l = [] {
    auto lg = spdlog::stderr_logger_mt("backup-operator");
    lg->set_pattern("%v");
    lg->set_level(spdlog::level::trace);
    lg->flush_on(spdlog::level::trace);
    return lg;
  }();
  return l;
}

const char* name(Level l) {
  switch (l) {
    case Level::kDebug: return "debug";
    case Level::kInfo: return "info";
    case Level::kWarn: return "warn";
    case Level::kError: return "error";
  }
  return "info";
}

}  // namespace

bool init(const std::string& format, const std::string& level) {
  if (format != "json" && format != "text") return false;
  Level l;
  if (level == "debug") l = Level::kDebug;
  else if (level == "info") l = Level::kInfo;
  else if (level == "warn") l = Level::kWarn;
  else if (level == "error") l = Level::kError;
  else return false;
  g_json = format == "json";
  g_level = static_cast<int>(l);
  logger();
  return true;
}

void write(Level level, const std::string& msg, const nlohmann::json& fields) {
  if (static_cast<int>(level) < g_level.load()) return;
  const std::string ts = format_rfc3339_micro(std::chrono::system_clock::now());
  std::string line;
  if (g_json) {
    nlohmann::json j{{"ts", ts}, {"level", name(level)}, {"msg", msg}};
    if (fields.is_object())
      for (const auto& [k, v] : fields.items()) j[k] = v;
    line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    line = ts + " " + name(level) + " " + msg;
    if (fields.is_object())
      for (const auto& [k, v] : fields.items())
        line += " " + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  }
  logger()->info(line);
}

}  // namespace bo::log
