#include "kube-local/validation.h"

#include <algorithm>
#include <cctype>
#include <regex>

namespace kl {
namespace {

// validation.go: RegexError, MaxLenError, EmptyError.
std::string regex_error(const std::string& msg, const std::string& fmt, const std::vector<std::string>& examples) {
  if (examples.empty()) return msg + " (regex used for validation is '" + fmt + "')";
  std::string out = msg + " (e.g. ";
  for (size_t i = 0; i < examples.size(); ++i) {
    if (i > 0) out += " or ";
    out += "'" + examples[i] + "', ";
  }
  return out + "regex used for validation is '" + fmt + "')";
}

std::string max_len_error(size_t n) { return "must be no more than " + std::to_string(n) + " characters"; }

constexpr const char* kQualifiedNameFmt = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
constexpr const char* kQualifiedNameErrMsg =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
constexpr const char* kLabelValueFmt = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
constexpr const char* kLabelValueErrMsg =
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start "
    "and end with an alphanumeric character";
constexpr const char* kDns1123SubdomainFmt = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
constexpr const char* kDns1123SubdomainErrMsg =
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character";

// field.Invalid(path, string value, detail).Error()
FieldError invalid_string(const std::string& path, const std::string& value, const std::string& detail) {
  return {"FieldValueInvalid", path, path + ": Invalid value: " + json(value).dump() + ": " + detail};
}

FieldError forbidden(const std::string& path, const std::string& detail) {
  return {"FieldValueForbidden", path, path + ": Forbidden: " + detail};
}

const json& member(const json& o, const char* k) {
  static const json null;
  if (!o.is_object()) return null;
  auto it = o.find(k);
  return it == o.end() ? null : *it;
}

}  // namespace

std::vector<std::string> is_dns1123_subdomain(const std::string& value) {
  static const std::regex re(std::string("^") + kDns1123SubdomainFmt + "$");
  std::vector<std::string> errs;
  if (value.size() > 253) errs.push_back(max_len_error(253));
  if (!std::regex_match(value, re)) errs.push_back(regex_error(kDns1123SubdomainErrMsg, kDns1123SubdomainFmt, {"example.com"}));
  return errs;
}

std::vector<std::string> is_qualified_name(const std::string& value) {
  static const std::regex re(std::string("^") + kQualifiedNameFmt + "$");
  std::vector<std::string> errs;
  std::string name;
  const auto slashes = std::count(value.begin(), value.end(), '/');
  if (slashes == 0) {
    name = value;
  } else if (slashes == 1) {
    const auto pos = value.find('/');
    const std::string prefix = value.substr(0, pos);
    name = value.substr(pos + 1);
    if (prefix.empty()) errs.push_back("prefix part must be non-empty");
    else
      for (const auto& m : is_dns1123_subdomain(prefix)) errs.push_back("prefix part " + m);
  } else {
    errs.push_back("a qualified name " + regex_error(kQualifiedNameErrMsg, kQualifiedNameFmt, {"MyName", "my.name", "123-abc"}) +
                   " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
    return errs;
  }
  if (name.empty()) errs.push_back("name part must be non-empty");
  else if (name.size() > 63) errs.push_back("name part " + max_len_error(63));
  if (!std::regex_match(name, re))
    errs.push_back("name part " + regex_error(kQualifiedNameErrMsg, kQualifiedNameFmt, {"MyName", "my.name", "123-abc"}));
  return errs;
}

std::vector<std::string> is_valid_label_value(const std::string& value) {
  static const std::regex re(std::string("^") + kLabelValueFmt + "$");
  std::vector<std::string> errs;
  if (value.size() > 63) errs.push_back(max_len_error(63));
  if (!std::regex_match(value, re)) errs.push_back(regex_error(kLabelValueErrMsg, kLabelValueFmt, {"MyValue", "my_value", "12345"}));
  return errs;
}

std::vector<FieldError> validate_labels(const json& labels, const std::string& path) {
  std::vector<FieldError> errs;
  if (!labels.is_object()) return errs;
  for (const auto& [k, v] : labels.items()) {
    for (const auto& m : is_qualified_name(k)) errs.push_back(invalid_string(path, k, m));
    const std::string value = v.is_string() ? v.get<std::string>() : v.dump();
    for (const auto& m : is_valid_label_value(value)) errs.push_back(invalid_string(path, value, m));
  }
  return errs;
}

std::vector<FieldError> validate_annotations(const json& annotations, const std::string& path) {
  std::vector<FieldError> errs;
  if (!annotations.is_object()) return errs;
  size_t total = 0;
  for (const auto& [k, v] : annotations.items()) {
    std::string lower = k;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    for (const auto& m : is_qualified_name(lower)) errs.push_back(invalid_string(path, k, m));
    total += k.size() + (v.is_string() ? v.get<std::string>().size() : v.dump().size());
  }
  // field.TooLong(fldPath, "", TotalAnnotationSizeLimitB): the value is never shown.
  if (total > kTotalAnnotationSizeLimitB)
    errs.push_back({"FieldValueTooLong", path,
                    path + ": Too long: may not be more than " + std::to_string(kTotalAnnotationSizeLimitB) + " bytes"});
  return errs;
}

std::vector<FieldError> validate_object_meta(const std::string& gr, const json& obj) {
  std::vector<FieldError> errs;
  auto add = [&](std::vector<FieldError> more) { errs.insert(errs.end(), more.begin(), more.end()); };
  const json& meta = member(obj, "metadata");
  add(validate_labels(member(meta, "labels"), "metadata.labels"));
  add(validate_annotations(member(meta, "annotations"), "metadata.annotations"));
  static const std::vector<std::string> kWorkloads = {"batch/jobs", "apps/deployments", "apps/statefulsets",
                                                      "apps/replicasets", "apps/daemonsets"};
  if (std::find(kWorkloads.begin(), kWorkloads.end(), gr) != kWorkloads.end()) {
    // pkg/apis/core/validation ValidatePodTemplateSpec(template, fldPath "spec.template"):
    // ValidateLabels(spec.Labels, fldPath.Child("labels")), so the errors name
    // spec.template.labels (as a refused Job's reads: "spec.template.labels: Invalid value: ...").
    const json& tmeta = member(member(member(obj, "spec"), "template"), "metadata");
    add(validate_labels(member(tmeta, "labels"), "spec.template.labels"));
    add(validate_annotations(member(tmeta, "annotations"), "spec.template.annotations"));
  }
  return errs;
}

std::vector<FieldError> validate_immutable_update(const std::string& gr, const json& obj, const json& old) {
  std::vector<FieldError> errs;
  if (gr == "/configmaps" || gr == "/secrets") {
    if (member(old, "immutable") == true) {
      if (member(obj, "immutable") != true)
        errs.push_back(forbidden("immutable", "field is immutable when `immutable` is set"));
      auto data = [](const json& o, const char* k) { return member(o, k).is_null() ? json::object() : member(o, k); };
      if (data(obj, "data") != data(old, "data"))
        errs.push_back(forbidden("data", "field is immutable when `immutable` is set"));
      if (gr == "/configmaps" && data(obj, "binaryData") != data(old, "binaryData"))
        errs.push_back(forbidden("binaryData", "field is immutable when `immutable` is set"));
    }
  } else if (gr == "apps/deployments") {
    const json& sel = member(member(obj, "spec"), "selector");
    if (sel != member(member(old, "spec"), "selector"))
      errs.push_back({"FieldValueInvalid", "spec.selector",
                      "spec.selector: Invalid value: " + (sel.is_null() ? std::string("null") : sel.dump()) +
                          ": field is immutable"});
  }
  return errs;
}

std::optional<std::string> micro_time_error(const std::string& value) {
  // Layout "2006-01-02T15:04:05.000000Z07:00", walked element by element as
  // time.Parse does, so the error names the same layout and value elements.
  static const char* kLayout = "2006-01-02T15:04:05.000000Z07:00";
  auto fail = [&](const std::string& layout_elem, size_t at) {
    return "parsing time " + json(value).dump() + " as \"" + kLayout + "\": cannot parse " +
           json(value.substr(std::min(at, value.size()))).dump() + " as " + json(layout_elem).dump();
  };
  struct Elem {
    const char* layout;
    int digits;  // 0: a literal
  };
  static const Elem kElems[] = {{"2006", 4}, {"-", 0},  {"01", 2}, {"-", 0},       {"02", 2}, {"T", 0},
                                {"15", 2},   {":", 0},  {"04", 2}, {":", 0},       {"05", 2}, {".000000", 6}};
  size_t i = 0;
  for (const auto& e : kElems) {
    const std::string l = e.layout;
    if (e.digits == 0) {
      if (value.compare(i, l.size(), l) != 0) return fail(l, i);
      i += l.size();
    } else if (e.digits == 6) {
      if (i >= value.size() || value[i] != '.') return fail(l, i);
      for (int d = 1; d <= 6; ++d)
        if (i + d >= value.size() || !std::isdigit(static_cast<unsigned char>(value[i + d]))) return fail(l, i);
      i += 7;
    } else {
      for (int d = 0; d < e.digits; ++d)
        if (i + d >= value.size() || !std::isdigit(static_cast<unsigned char>(value[i + d]))) return fail(l, i);
      i += e.digits;
    }
  }
  if (i < value.size() && value[i] == 'Z' && i + 1 == value.size()) return std::nullopt;
  static const std::regex offset(R"(^[+-]\d\d:\d\d$)");
  if (i < value.size() && std::regex_match(value.substr(i), offset)) return std::nullopt;
  if (i < value.size() && value[i] == 'Z') return "parsing time " + json(value).dump() + ": extra text: " + json(value.substr(i + 1)).dump();
  return fail("Z07:00", i);
}

std::optional<std::string> decode_error(const std::string& gr, const std::string& kind, const std::string& version,
                                        const json& obj) {
  std::vector<const json*> times;
  if (gr == "coordination.k8s.io/leases") {
    const json& spec = member(obj, "spec");
    for (const char* f : {"acquireTime", "renewTime"})
      if (member(spec, f).is_string()) times.push_back(&member(spec, f));
  } else if (gr == "events.k8s.io/events" || gr == "/events") {
    if (member(obj, "eventTime").is_string()) times.push_back(&member(obj, "eventTime"));
  }
  for (const json* t : times)
    if (auto err = micro_time_error(t->get<std::string>()))
      return kind + " in version \"" + version + "\" cannot be handled as a " + kind + ": " + *err;
  return std::nullopt;
}

bool owner_references_change(const json& obj, const json* old) {
  const json refs = member(member(obj, "metadata"), "ownerReferences");
  const size_t n = refs.is_array() ? refs.size() : 0;
  if (!old) return n > 0;
  const json old_refs = member(member(*old, "metadata"), "ownerReferences");
  const size_t m = old_refs.is_array() ? old_refs.size() : 0;
  if (n != m) return true;
  for (size_t i = 0; i < n; ++i)
    if (refs[i] != old_refs[i]) return true;
  return false;
}

std::vector<json> new_blocking_owner_refs(const json& obj, const json* old) {
  std::vector<json> out;
  const json refs = member(member(obj, "metadata"), "ownerReferences");
  if (!refs.is_array()) return out;
  const json old_refs = old ? member(member(*old, "metadata"), "ownerReferences") : json();
  for (const auto& r : refs) {
    if (member(r, "blockOwnerDeletion") != true) continue;
    const json* before = nullptr;
    if (old_refs.is_array())
      for (const auto& o : old_refs)
        if (member(o, "uid") == member(r, "uid")) before = &o;
    if (!before || member(*before, "blockOwnerDeletion") != true) out.push_back(r);
  }
  return out;
}

}  // namespace kl
