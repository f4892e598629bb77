#include "bundle/sigv4.h"

#include <cctype>

#include "common/encoding.h"

namespace bo::bundle {

std::string s3_uri_encode(const std::string& s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string sigv4_authorization(const SigV4Request& req, const SigV4Credentials& creds, const std::string& amz_date) {
  std::string canonical_headers, signed_headers;
  for (const auto& [name, value] : req.headers) {
    // Trim, and fold inner runs of spaces, as the specification asks.
    std::string v;
    bool space = false;
    for (char c : value) {
      if (c == ' ' || c == '\t') {
        space = !v.empty();
        continue;
      }
      if (space) v.push_back(' ');
      space = false;
      v.push_back(c);
    }
    canonical_headers += name + ":" + v + "\n";
    signed_headers += (signed_headers.empty() ? "" : ";") + name;
  }
  const std::string canonical_request = req.method + "\n" + req.canonical_uri + "\n" + req.canonical_query + "\n" +
                                        canonical_headers + "\n" + signed_headers + "\n" + req.payload_sha256;
  const std::string day = amz_date.substr(0, 8);
  const std::string scope = day + "/" + creds.region + "/" + creds.service + "/aws4_request";
  const std::string to_sign = "AWS4-HMAC-SHA256\n" + amz_date + "\n" + scope + "\n" + sha256_hex(canonical_request);
  std::string k = hmac_sha256("AWS4" + creds.secret_key, day);
  k = hmac_sha256(k, creds.region);
  k = hmac_sha256(k, creds.service);
  k = hmac_sha256(k, "aws4_request");
  const std::string signature = hex_encode(hmac_sha256(k, to_sign));
  return "AWS4-HMAC-SHA256 Credential=" + creds.access_key + "/" + scope + ", SignedHeaders=" + signed_headers +
         ", Signature=" + signature;
}

}  // namespace bo::bundle
