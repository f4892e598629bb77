// RFC 3339 timestamps as the Kubernetes API writes them (UTC, second
// precision: metav1.Time) and reads them (any offset, optional fraction).
#pragma once
#include <chrono>
#include <optional>
#include <string>

namespace bo {

using SysTime = std::chrono::system_clock::time_point;

[[nodiscard]] std::string format_rfc3339(SysTime t);
// metav1.MicroTime: microsecond precision, as Leases and events.k8s.io use.
[[nodiscard]] std::string format_rfc3339_micro(SysTime t);
[[nodiscard]] std::optional<SysTime> parse_rfc3339(const std::string& s);
// The basic ISO 8601 form, to the second: 20261124T101500Z (SigV4 dates, bundle tags).
[[nodiscard]] std::string format_compact_utc(SysTime t);
// kubectl's short ages: 45s, 5m10s, 3h, 2d4h, 400d.
[[nodiscard]] std::string human_duration(std::chrono::seconds d);

}  // namespace bo
