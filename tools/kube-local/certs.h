// kube-local's TLS material comes from the library's certificate helpers.
#pragma once
#include "common/certs.h"

namespace kl {
using bo::generate_tls;
using bo::issue_certificate;
using bo::Pem;
using bo::TlsMaterial;
}  // namespace kl
