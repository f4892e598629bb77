// Names derived from other names, bounded as the API server bounds them.
//
// An object's name may be 253 characters (a DNS subdomain), but a label value
// may be at most 63 (apimachinery validation.IsValidLabelValue,
// LabelValueMaxLength), and so may a Job's name, since the Job controller
// copies it into the job-name label of its pod template. A name that fits is
// used as it is; one that does not keeps its head and gets a short hash of
// the whole, as controller-runtime operators and Kubernetes' own generators
// do, so distinct names stay distinct and the same name always maps to the
// same value (lookups by label compute it again).
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace bo::kube {

inline constexpr size_t kMaxLabelValue = 63;  // validation.LabelValueMaxLength
inline constexpr size_t kMaxSubdomain = 253;  // validation.DNS1123SubdomainMaxLength

// `base` when it has at most `limit` characters; otherwise its first
// limit-11 characters (trailing '-' and '.' dropped, so the result still ends
// alphanumeric) + '-' + the first 10 hex digits of sha256(base).
[[nodiscard]] std::string bounded_name(std::string_view base, size_t limit = kMaxLabelValue);

// A resource name as the value of a label (backup.si.dev/policy,
// backup.si.dev/restore-request): bounded_name(name, 63).
[[nodiscard]] std::string label_value(std::string_view name);

}  // namespace bo::kube
