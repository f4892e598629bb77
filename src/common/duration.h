// Go-style durations ("15s", "2m30s", "2160h", "500ms") as operator users
// write them in flags and specs.
#pragma once
#include <chrono>
#include <optional>
#include <string>

namespace bo {

[[nodiscard]] std::optional<std::chrono::milliseconds> parse_duration(const std::string& s);

}  // namespace bo
