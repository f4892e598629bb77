#include <gtest/gtest.h>

#include "api/job_result.h"
#include "common/timefmt.h"

TEST(Rfc3339, ReadsOffsetsAndFractionsAndRefusesWhatSystemClockCannotHold) {
  EXPECT_EQ(bo::format_rfc3339(*bo::parse_rfc3339("2026-11-24T10:00:00+02:00")), "2026-11-24T08:00:00Z");
  EXPECT_TRUE(bo::parse_rfc3339("2026-11-24T10:00:00.123456Z"));
  for (const char* bad : {"4148-11-24T02:00:01Z", "0001-01-01T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-24 10:00",
                          "2026-11-24T10:00:00", "2026-11-24T-1:00:00Z"})
    EXPECT_FALSE(bo::parse_rfc3339(bad)) << bad;
  // Found by fuzzing: a far-future startTime overflowed a nanosecond conversion (UB).
  auto r = bo::api::parse_job_result(R"({"backupId":"base_1","checksum":"sha256:)" + std::string(64, 'b') +
                                     R"(","type":"full","startTime":"4148-11-24T02:00:01Z","finishTime":"2026-11-24T02:00:01Z","sizeBytes":1})");
  EXPECT_FALSE(r);
}
