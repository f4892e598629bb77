// S3 Object Lock retention as the store reports it (GetObjectRetention,
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObjectRetention.html):
// `GET /<bucket>/<key>?retention` answers HTTP 200 with
//   <Retention><Mode>GOVERNANCE|COMPLIANCE</Mode><RetainUntilDate>timestamp</RetainUntilDate></Retention>
// (Mode's values from the ObjectLockRetention type, API_ObjectLockRetention.html)
// and an S3 error document otherwise (e.g. NoSuchObjectLockConfiguration when
// the object has none; s3rver 3.7 answers 501 NotImplemented). Only a
// well-formed Retention with both fields counts: anything else, a 200 that
// carries some other body included (a store that ignores `?retention` and
// returns the object), is "not reported". Pure: the HTTP stays in run-job.
#pragma once
#include <expected>
#include <optional>
#include <string>

#include "common/timefmt.h"

namespace bo::bundle {

struct ObjectRetention {
  std::string mode;  // GOVERNANCE or COMPLIANCE
  SysTime retain_until;
};

// The retention in a GetObjectRetention answer, or why the answer holds
// none (e.g. "HTTP 501 NotImplemented: A parameter you provided implies …").
// Never echoes a body that is not an S3 document.
[[nodiscard]] std::expected<ObjectRetention, std::string> parse_object_retention(int http_status,
                                                                                 const std::string& body);

}  // namespace bo::bundle
