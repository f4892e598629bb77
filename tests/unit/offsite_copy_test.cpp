// The offsite copy's two pure parts: reading an S3 GetObjectRetention answer
// (bundle/object_lock.h) and the offsite-copy Job's result contract
// (api/job_result.h). A retention date counts only when the store reported
// one; everything else says why not.
#include <gtest/gtest.h>

#include "api/job_result.h"
#include "bundle/object_lock.h"
#include "common/timefmt.h"

namespace {

using bo::bundle::parse_object_retention;

struct RetentionCase {
  const char* name;
  int status;
  std::string body;
  const char* until;  // nullptr: not reported
  const char* mode_or_why;  // the mode when reported, else a part of the reason
};

TEST(ObjectRetention, OnlyAWellFormedRetentionDocumentCounts) {
  const std::vector<RetentionCase> cases = {
      // AWS's Response Syntax (API_GetObjectRetention.html) with values, as S3 sends it (namespaced).
      {"AwsDocumentedAnswer", 200,
       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\n"
       "   <Mode>GOVERNANCE</Mode>\n   <RetainUntilDate>2026-12-31T00:00:00.000Z</RetainUntilDate>\n</Retention>\n",
       "2026-12-31T00:00:00Z", "GOVERNANCE"},
      {"ComplianceWithoutProlog", 200,
       "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2027-01-02T03:04:05Z</RetainUntilDate></Retention>",
       "2027-01-02T03:04:05Z", "COMPLIANCE"},
      {"MissingRetainUntilDate", 200, "<Retention><Mode>COMPLIANCE</Mode></Retention>", nullptr, "no RetainUntilDate"},
      {"EmptyRetainUntilDate", 200, "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate></RetainUntilDate></Retention>",
       nullptr, "no RetainUntilDate"},
      {"MissingMode", 200, "<Retention><RetainUntilDate>2027-01-02T03:04:05Z</RetainUntilDate></Retention>", nullptr,
       "no Mode"},
      {"UnknownMode", 200,
       "<Retention><Mode>FOREVER</Mode><RetainUntilDate>2027-01-02T03:04:05Z</RetainUntilDate></Retention>", nullptr,
       "neither GOVERNANCE nor COMPLIANCE"},
      {"DateThatIsNotOne", 200,
       "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>next year</RetainUntilDate></Retention>", nullptr,
       "not an ISO 8601 timestamp"},
      {"TruncatedDocument", 200, "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2027-01-02T03:04:05Z",
       nullptr, "not a <Retention> document"},
      {"Garbage", 200, "\x01\x02garbage<<>>", nullptr, "not a <Retention> document"},
      {"EmptyBody", 200, "", nullptr, "not a <Retention> document"},
      // A store that ignores ?retention and returns the object itself (here a stop sentinel) with 200.
      {"ObjectBodyInsteadOfRetention", 200, R"({"LSN":33554472,"FinishLSN":33554776,"Timeline":1})", nullptr,
       "the store did not answer ?retention"},
      {"OtherXmlDocument", 200, "<ListBucketResult><Name>b</Name></ListBucketResult>", nullptr,
       "<ListBucketResult> document instead of <Retention>"},
      // What s3rver 3.7.1 answers (tried: routes.js throws NotImplemented for ?retention).
      {"S3rverNotImplemented", 501,
       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NotImplemented</Code><Message>A parameter you provided "
       "implies functionality that is not implemented</Message></Error>",
       nullptr, "HTTP 501 NotImplemented: A parameter you provided implies functionality that is not implemented"},
      // S3 for an object without retention.
      {"AwsNoRetentionOnObject", 404,
       "<Error><Code>NoSuchObjectLockConfiguration</Code><Message>The specified object does not have a ObjectLock "
       "configuration</Message></Error>",
       nullptr, "HTTP 404 NoSuchObjectLockConfiguration"},
      // A Retention document under an error status is still not a retention.
      {"RetentionBodyWithErrorStatus", 500,
       "<Retention><Mode>COMPLIANCE</Mode><RetainUntilDate>2027-01-02T03:04:05Z</RetainUntilDate></Retention>", nullptr,
       "HTTP 500 without an S3 error document"},
      {"ErrorWithoutDocument", 403, "denied", nullptr, "HTTP 403 without an S3 error document"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto r = parse_object_retention(c.status, c.body);
    if (c.until) {
      ASSERT_TRUE(r) << r.error();
      EXPECT_EQ(bo::format_rfc3339(r->retain_until), c.until);
      EXPECT_EQ(r->mode, c.mode_or_why);
    } else {
      ASSERT_FALSE(r) << bo::format_rfc3339(r->retain_until);
      EXPECT_NE(r.error().find(c.mode_or_why), std::string::npos) << r.error();
      EXPECT_EQ(r.error().find("LSN"), std::string::npos) << "a body that is not an S3 document is never echoed";
    }
  }
}

using bo::api::parse_offsite_copy_result;
const std::string kChecksum = "sha256:" + std::string(64, 'c');

TEST(OffsiteCopyResult, ADateCountsOnlyWithTheModeReadBack) {
  auto r = parse_offsite_copy_result(R"({"copied":"base_000000010000000000000002","checksum":")" + kChecksum +
                                     R"(","restorable":true,"walSegments":2,"immutableUntil":"2026-12-31T00:00:00Z",)"
                                     R"("retentionMode":"COMPLIANCE","retentionObjects":4})");
  ASSERT_TRUE(r) << r.error();
  EXPECT_EQ(r->backup_id, "base_000000010000000000000002");
  EXPECT_EQ(r->checksum, kChecksum);
  EXPECT_EQ(r->wal_segments, 2);
  ASSERT_TRUE(r->immutable_until);
  EXPECT_EQ(bo::format_rfc3339(*r->immutable_until), "2026-12-31T00:00:00Z");
  EXPECT_EQ(r->retention_mode, "COMPLIANCE");
  EXPECT_TRUE(r->immutability_reason.empty());

  // The old contract: a date computed from the clock, no mode read back.
  r = parse_offsite_copy_result(R"({"copied":"base_2","immutableUntil":"2026-12-31T00:00:00Z"})");
  ASSERT_TRUE(r) << r.error();
  EXPECT_FALSE(r->immutable_until);
  EXPECT_EQ(r->immutability_reason, "ImmutabilityUnverified");
  EXPECT_NE(r->immutability_message.find("without the retentionMode"), std::string::npos) << r->immutability_message;
}

TEST(OffsiteCopyResult, NoDateCarriesTheReportedReason) {
  auto r = parse_offsite_copy_result(
      R"({"copied":"base_2","immutability":{"reason":"RetentionNotReported","message":"GetObjectRetention on s3://o/p/x: HTTP 501 NotImplemented"}})");
  ASSERT_TRUE(r) << r.error();
  EXPECT_FALSE(r->immutable_until);
  EXPECT_EQ(r->immutability_reason, "RetentionNotReported");
  EXPECT_EQ(r->immutability_message, "GetObjectRetention on s3://o/p/x: HTTP 501 NotImplemented");
  // No reason, or one that is not a CamelCase reason: unverified, never a date.
  for (const char* msg : {R"({"copied":"base_2"})", R"({"copied":"base_2","immutability":{"reason":"not a reason!"}})",
                          R"({"copied":"base_2","immutability":"RetentionNotReported"})"}) {
    r = parse_offsite_copy_result(msg);
    ASSERT_TRUE(r) << msg << ": " << r.error();
    EXPECT_FALSE(r->immutable_until) << msg;
    EXPECT_EQ(r->immutability_reason, "ImmutabilityUnverified") << msg;
    EXPECT_FALSE(r->immutability_message.empty()) << msg;
  }
}

TEST(OffsiteCopyResult, RefusesWhatIsNotAResult) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "no result"},
      {"not json", "not a JSON object"},
      {"[]", "not a JSON object"},
      {R"({"immutableUntil":"2026-12-31T00:00:00Z"})", "result.copied"},
      {R"({"copied":"../etc"})", "result.copied"},
      {R"({"copied":"base_2","checksum":"md5:abc"})", "result.checksum"},
      {R"({"copied":"base_2","immutableUntil":"soon","retentionMode":"COMPLIANCE"})", "result.immutableUntil"},
      {R"({"copied":"base_2","immutableUntil":42,"retentionMode":"COMPLIANCE"})", "result.immutableUntil"},
  };
  for (const auto& [msg, why] : cases) {
    const auto r = parse_offsite_copy_result(msg);
    ASSERT_FALSE(r) << msg;
    EXPECT_NE(r.error().find(why), std::string::npos) << msg << ": " << r.error();
  }
}

}  // namespace
