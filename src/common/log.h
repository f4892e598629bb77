// Structured logging over spdlog: one JSON object per line for machines
// (--log-format=json) or "time level msg key=value" for humans. Callers pass
// fields as JSON; values are escaped, never concatenated into the message.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace bo::log {

enum class Level { kDebug, kInfo, kWarn, kError };

// Returns false (and leaves logging unchanged) for an unknown format or level.
bool init(const std::string& format, const std::string& level);
void write(Level level, const std::string& msg, const nlohmann::json& fields = nlohmann::json::object());
inline void debug(const std::string& m, const nlohmann::json& f = nlohmann::json::object()) { write(Level::kDebug, m, f); }
inline void info(const std::string& m, const nlohmann::json& f = nlohmann::json::object()) { write(Level::kInfo, m, f); }
inline void warn(const std::string& m, const nlohmann::json& f = nlohmann::json::object()) { write(Level::kWarn, m, f); }
inline void error(const std::string& m, const nlohmann::json& f = nlohmann::json::object()) { write(Level::kError, m, f); }

}  // namespace bo::log
