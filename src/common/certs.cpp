#include "common/certs.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>

namespace bo {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PKeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("openssl: ") + what);
}

PKeyPtr new_key() {
  PKeyPtr key(EVP_EC_gen("P-256"));
  check(key != nullptr, "EC key generation");
  return key;
}

std::string to_pem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_X509(bio.get(), cert) == 1, "PEM_write_bio_X509");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string to_pem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  check(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1,
        "PEM_write_bio_PrivateKey");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

void add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  check(ext != nullptr, "X509V3_EXT_conf_nid");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509Ptr new_cert(EVP_PKEY* key, const std::string& cn, int days,
                 std::optional<std::chrono::system_clock::time_point> now = std::nullopt) {
  X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  time_t base = std::chrono::system_clock::to_time_t(now.value_or(std::chrono::system_clock::now()));
  X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -3600, &base);
  X509_time_adj_ex(X509_getm_notAfter(cert.get()), days, 0, &base);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

PKeyPtr read_key(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PKeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  check(key != nullptr, "reading CA key");
  return key;
}

X509Ptr read_cert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  check(cert != nullptr, "reading CA certificate");
  return cert;
}

}  // namespace

Pem issue_certificate(const Pem& ca, const std::string& common_name, const std::string& hosts_csv,
                      int days, const std::vector<std::string>& organizations,
                      std::optional<std::chrono::system_clock::time_point> now) {
  PKeyPtr ca_key = read_key(ca.key);
  X509Ptr ca_cert = read_cert(ca.cert);
  PKeyPtr key = new_key();
  X509Ptr cert = new_cert(key.get(), common_name, days, now);
  for (const auto& o : organizations)
    X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "O", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(o.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  std::string san;
  size_t start = 0;
  while (start <= hosts_csv.size()) {
    size_t end = hosts_csv.find(',', start);
    if (end == std::string::npos) end = hosts_csv.size();
    const std::string host = hosts_csv.substr(start, end - start);
    if (!host.empty()) {
      const bool ip = host.find_first_not_of("0123456789.:") == std::string::npos;
      if (!san.empty()) san += ",";
      san += (ip ? "IP:" : "DNS:") + host;
    }
    start = end + 1;
  }
  add_ext(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE");
  add_ext(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature,keyEncipherment");
  add_ext(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth,clientAuth");
  if (!san.empty()) add_ext(cert.get(), ca_cert.get(), NID_subject_alt_name, san);
  add_ext(cert.get(), ca_cert.get(), NID_authority_key_identifier, "keyid:always");
  check(X509_sign(cert.get(), ca_key.get(), EVP_sha256()) > 0, "X509_sign");
  return {to_pem(cert.get()), to_pem(key.get())};
}

Pem generate_ca(const std::string& common_name, int days, std::optional<std::chrono::system_clock::time_point> now) {
  PKeyPtr ca_key = new_key();
  X509Ptr ca = new_cert(ca_key.get(), common_name, days, now);
  X509_set_issuer_name(ca.get(), X509_get_subject_name(ca.get()));
  add_ext(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE");
  add_ext(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature");
  add_ext(ca.get(), ca.get(), NID_subject_key_identifier, "hash");
  check(X509_sign(ca.get(), ca_key.get(), EVP_sha256()) > 0, "X509_sign CA");
  return {to_pem(ca.get()), to_pem(ca_key.get())};
}

TlsMaterial generate_tls(const std::string& common_name, const std::string& hosts_csv) {
  TlsMaterial m;
  m.ca = generate_ca(common_name + "-ca");
  m.server = issue_certificate(m.ca, common_name, hosts_csv);
  return m;
}

namespace {
X509Ptr parse_cert(const std::string& pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  return cert;
}
}  // namespace

std::expected<void, std::string> check_key_pair(const Pem& pair) {
  X509Ptr cert = parse_cert(pair.cert);
  if (!cert) return std::unexpected("the certificate does not parse as PEM");
  BioPtr bio(BIO_new_mem_buf(pair.key.data(), static_cast<int>(pair.key.size())));
  PKeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!key) return std::unexpected("the private key does not parse as PEM");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return std::unexpected("the private key does not belong to the certificate");
  }
  return {};
}

bool signed_by(const std::string& cert_pem, const std::string& ca_cert_pem) {
  X509Ptr cert = parse_cert(cert_pem), ca = parse_cert(ca_cert_pem);
  if (!cert || !ca) return false;
  EVP_PKEY* ca_key = X509_get0_pubkey(ca.get());
  const bool ok = ca_key && X509_verify(cert.get(), ca_key) == 1;
  ERR_clear_error();
  return ok;
}

std::string certificate_serial(const std::string& cert_pem) {
  X509Ptr cert = parse_cert(cert_pem);
  if (!cert) return "";
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr);
  if (!bn) return "";
  char* hex = BN_bn2hex(bn);
  std::string out = hex ? hex : "";
  OPENSSL_free(hex);
  BN_free(bn);
  return out;
}

std::optional<std::chrono::system_clock::time_point> certificate_not_after(const std::string& cert_pem) {
  BioPtr bio(BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return std::nullopt;
  tm t{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert.get()), &t) != 1) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&t));
}

}  // namespace bo
