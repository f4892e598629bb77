// The RestoreRequest identity webhook (POLICY.md §7: every restore is
// audited). A pure function from an AdmissionReview to its answer:
//  - CREATE: stamps backup.si.dev/requested-by with the caller's userInfo
//    (username, uid, groups, extra: what a SubjectAccessReview about them needs);
//    an object that already carries the annotation is refused (it cannot be
//    forged by the client);
//  - UPDATE: the annotation and the spec cannot change.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace bo::webhook {

inline constexpr const char* kRequestedBy = "backup.si.dev/requested-by";

// admission.k8s.io/v1 AdmissionReview in, AdmissionReview (with response) out.
[[nodiscard]] nlohmann::json review_restore_request(const nlohmann::json& review);

}  // namespace bo::webhook
