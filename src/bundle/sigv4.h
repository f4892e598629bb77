// AWS Signature Version 4 for S3 requests, as a pure function (written by
// hand: Debian 12 ships no AWS SDK for C++, and S3 PUT/GET needs only this).
#pragma once
#include <map>
#include <string>

namespace bo::bundle {

struct SigV4Request {
  std::string method;                       // GET, PUT, HEAD
  std::string canonical_uri;                // already URI-encoded, e.g. /bucket/a%20b
  std::string canonical_query;              // sorted, encoded; "" for none
  std::map<std::string, std::string> headers;  // lower-case names; must hold host, x-amz-date, x-amz-content-sha256
  std::string payload_sha256;               // hex, or UNSIGNED-PAYLOAD
};

struct SigV4Credentials {
  std::string access_key, secret_key, region = "us-east-1", service = "s3";
};

// The Authorization header value for `req`, signed at `amz_date` (yyyymmddThhmmssZ).
[[nodiscard]] std::string sigv4_authorization(const SigV4Request& req, const SigV4Credentials& creds,
                                              const std::string& amz_date);

// S3's URI encoding: unreserved characters kept, '/' kept when `keep_slash`.
[[nodiscard]] std::string s3_uri_encode(const std::string& s, bool keep_slash);

}  // namespace bo::bundle
