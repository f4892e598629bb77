#include "api/restore_request.h"

#include <algorithm>

namespace bo::api {

std::expected<RestoreRequestSpec, Problem> parse_restore_request_spec(const json& spec) {
  if (!spec.is_object()) return std::unexpected(Problem{"InvalidSpec", "spec", "spec: must be an object"});
  RestoreRequestSpec s;
  auto str = [&](const json& obj, const char* key, std::string& out, const std::string& field) -> bool {
    if (!obj.contains(key) || obj[key].is_null()) return true;
    if (!obj[key].is_string()) return false;
    out = obj[key].get<std::string>();
    (void)field;
    return true;
  };
  const json ref = spec.value("policyRef", json::object());
  if (!ref.is_object() || !str(ref, "name", s.policy, "spec.policyRef.name") || s.policy.empty())
    return std::unexpected(Problem{"InvalidSpec", "spec.policyRef.name", "spec.policyRef.name: required"});
  for (const auto& [key, out] : {std::pair<const char*, std::string*>{"backupId", &s.backup_id}, {"checksum", &s.checksum},
                                 {"purpose", &s.purpose}, {"targetNamespace", &s.target_namespace},
                                 {"pointInTime", &s.point_in_time}})
    if (!str(spec, key, *out, std::string("spec.") + key))
      return std::unexpected(Problem{"InvalidSpec", std::string("spec.") + key, std::string("spec.") + key + ": must be a string"});
  if (s.backup_id.empty()) s.backup_id = "latest";
  if (auto d = spec.find("discardCurrentData"); d != spec.end() && !d->is_null()) {
    if (!d->is_boolean())
      return std::unexpected(Problem{"InvalidSpec", "spec.discardCurrentData", "spec.discardCurrentData: must be a boolean"});
    s.discard_current_data = d->get<bool>();
  }
  if (auto t = spec.find("target"); t != spec.end() && !t->is_null()) {
    if (!t->is_object()) return std::unexpected(Problem{"InvalidSpec", "spec.target", "spec.target: must be an object"});
    if (auto dv = t->find("dataVolume"); dv != t->end() && !dv->is_null()) {
      if (!dv->is_object())
        return std::unexpected(Problem{"InvalidSpec", "spec.target.dataVolume", "spec.target.dataVolume: must be an object"});
      auto& v = s.target_volume;
      for (const auto& [key, out] : {std::pair<const char*, std::string*>{"claimName", &v.claim_name},
                                     {"mountPath", &v.mount_path}, {"subPath", &v.sub_path}})
        if (!str(*dv, key, *out, ""))
          return std::unexpected(Problem{"InvalidSpec", std::string("spec.target.dataVolume.") + key,
                                         std::string("spec.target.dataVolume.") + key + ": must be a string"});
      if (v.claim_name.empty())
        return std::unexpected(Problem{"InvalidSpec", "spec.target.dataVolume.claimName",
                                       "spec.target.dataVolume.claimName: required (the empty claim to restore into)"});
      if (!v.mount_path.starts_with("/") || v.mount_path.find("..") != std::string::npos)
        return std::unexpected(Problem{"InvalidSpec", "spec.target.dataVolume.mountPath",
                                       "spec.target.dataVolume.mountPath: must be an absolute path"});
      if (v.sub_path.starts_with("/") || v.sub_path.find("..") != std::string::npos)
        return std::unexpected(Problem{"InvalidSpec", "spec.target.dataVolume.subPath",
                                       "spec.target.dataVolume.subPath: must be a relative path inside the claim"});
    }
  }
  if (s.purpose != "restore" && s.purpose != "drill" && s.purpose != "verification")
    return std::unexpected(Problem{"InvalidSpec", "spec.purpose", "spec.purpose: must be restore, drill or verification"});
  if (auto v = spec.find("validation"); v != spec.end() && v->is_array()) {
    for (size_t i = 0; i < v->size(); ++i) {
      const json& c = (*v)[i];
      const std::string at = "spec.validation[" + std::to_string(i) + "]";
      auto invalid = [&](const std::string& field, const std::string& want) {
        return std::unexpected(Problem{"InvalidSpec", at + field, at + field + ": must be " + want});
      };
      if (!c.is_object()) return invalid("", "an object");
      ValidationCheck check;
      if (!str(c, "name", check.name, at + ".name")) return invalid(".name", "a string");
      if (!str(c, "image", check.image, at + ".image")) return invalid(".image", "a string");
      if (!str(c, "sql", check.sql, at + ".sql")) return invalid(".sql", "a string");
      if (c.contains("expect") && !c["expect"].is_null()) {
        if (!c["expect"].is_string()) return invalid(".expect", "a string");
        check.expect = c["expect"].get<std::string>();
      }
      if (c.contains("timeoutSeconds") && !c["timeoutSeconds"].is_null()) {
        if (!c["timeoutSeconds"].is_number_integer()) return invalid(".timeoutSeconds", "an integer");
        check.timeout_seconds = c["timeoutSeconds"].get<long>();
      }
      if (c.contains("command") && !c["command"].is_null()) {
        if (!c["command"].is_array()) return invalid(".command", "a list of strings");
        for (const auto& a : c["command"]) {
          if (!a.is_string()) return invalid(".command", "a list of strings");
          check.command.push_back(a.get<std::string>());
        }
      }
      if (check.name.empty()) return invalid(".name", "a non-empty string");
      if (check.sql.empty() == check.image.empty())
        return std::unexpected(Problem{"InvalidSpec", at, at + ": exactly one of sql or image is required"});
      if (check.expect && check.sql.empty()) return invalid(".expect", "given with sql only");
      if (check.timeout_seconds < 1) return invalid(".timeoutSeconds", "at least 1");
      for (const char* builtin : {"recovered", "recovery-target", "system-identifier", "supabase-schemas"})
        if (check.is_sql() && check.name == builtin)
          return invalid(".name", "not a built-in check's name (\"" + check.name + "\" is one)");
      for (size_t j = 0; j < i; ++j)
        if (s.validation[j].name == check.name) return invalid(".name", "unique (\"" + check.name + "\" repeats)");
      s.validation.push_back(std::move(check));
    }
  }
  return s;
}

namespace {

constexpr const char* kRequestedByAnnotation = "backup.si.dev/requested-by";

std::optional<Requester> requester_from(const json& who) {
  if (!who.is_object() || !who.contains("username") || !who["username"].is_string()) return std::nullopt;
  Requester r;
  r.username = who["username"].get<std::string>();
  if (r.username.empty()) return std::nullopt;
  if (auto u = who.find("uid"); u != who.end() && u->is_string()) r.uid = u->get<std::string>();
  if (auto g = who.find("groups"); g != who.end() && g->is_array())
    for (const auto& x : *g)
      if (x.is_string()) r.groups.push_back(x.get<std::string>());
  if (auto e = who.find("extra"); e != who.end() && e->is_object())
    for (const auto& [key, values] : e->items()) {
      if (!values.is_array()) continue;
      auto& out = r.extra[key];
      for (const auto& v : values)
        if (v.is_string()) out.push_back(v.get<std::string>());
    }
  return r;
}

}  // namespace

std::optional<Requester> requester_of(const json& request) {
  if (!request.is_object()) return std::nullopt;
  if (auto st = request.find("status"); st != request.end() && st->is_object())
    if (auto r = requester_from(st->value("requestedBy", json()))) return r;
  const json meta = request.value("metadata", json::object());
  if (!meta.is_object()) return std::nullopt;
  const json annotations = meta.value("annotations", json::object());
  if (!annotations.is_object()) return std::nullopt;
  const auto a = annotations.find(kRequestedByAnnotation);
  if (a == annotations.end() || !a->is_string()) return std::nullopt;
  return requester_from(json::parse(a->get<std::string>(), nullptr, false));
}

json job_access_review(const Requester& who, const std::string& ns) {
  json spec{{"user", who.username},
            {"groups", who.groups},
            {"resourceAttributes",
             {{"namespace", ns}, {"verb", kAccessVerb}, {"group", kAccessGroup}, {"resource", kAccessResource}}}};
  if (!who.uid.empty()) spec["uid"] = who.uid;
  if (!who.extra.empty()) spec["extra"] = who.extra;
  return {{"apiVersion", "authorization.k8s.io/v1"}, {"kind", "SubjectAccessReview"}, {"spec", spec}};
}

AccessCheck read_access_review(const json& review, const Requester& who, const std::string& ns) {
  AccessCheck a;
  a.checked = true;
  a.user = who.username;
  a.ns = ns;
  const json st = review.is_object() ? review.value("status", json::object()) : json::object();
  if (!st.is_object()) return a;
  const auto allowed = st.find("allowed");
  a.allowed = allowed != st.end() && allowed->is_boolean() && allowed->get<bool>();
  // denied=true is a definite no even where allowed would say otherwise.
  if (const auto denied = st.find("denied"); denied != st.end() && denied->is_boolean() && denied->get<bool>())
    a.allowed = false;
  for (const char* key : {"reason", "evaluationError"})
    if (const auto v = st.find(key); v != st.end() && v->is_string() && !v->get<std::string>().empty())
      a.reason += (a.reason.empty() ? "" : "; ") + v->get<std::string>().substr(0, 512);
  return a;
}

json access_to_json(const AccessCheck& a) {
  json out{{"user", a.user}, {"verb", kAccessVerb}, {"resource", std::string(kAccessResource) + "." + kAccessGroup},
           {"namespace", a.ns}, {"allowed", a.allowed}};
  if (!a.reason.empty()) {
    // status.access.reason has a maxLength of 4096 (the authorizer's text is unbounded); cut on a
    // character boundary so the JSON stays valid UTF-8.
    size_t n = std::min<size_t>(a.reason.size(), 4096);
    while (n > 0 && n < a.reason.size() && (static_cast<unsigned char>(a.reason[n]) & 0xC0) == 0x80) --n;
    out["reason"] = a.reason.substr(0, n);
  }
  return out;
}

AccessCheck access_from_json(const json& j) {
  AccessCheck a;
  if (!j.is_object()) return a;
  const auto str = [&](const char* key) {
    const auto v = j.find(key);
    return v != j.end() && v->is_string() ? v->get<std::string>() : std::string();
  };
  const auto allowed = j.find("allowed");
  if (allowed == j.end() || !allowed->is_boolean() || str("verb") != kAccessVerb ||
      str("resource") != std::string(kAccessResource) + "." + kAccessGroup)
    return a;
  a.checked = true;
  a.allowed = allowed->get<bool>();
  a.user = str("user");
  a.ns = str("namespace");
  a.reason = str("reason");
  return a;
}

namespace {

// The newest verified backup in a policy's catalog (the catalog is newest first).
const json* last_verified(const json& catalog) {
  const json* best = nullptr;
  for (const auto& e : catalog)
    if (e.value("verified", false) && (!best || e.value("completionTime", "") > best->value("completionTime", "")))
      best = &e;
  return best;
}

}  // namespace

RestoreDecision decide_restore(const RestoreRequestSpec& spec, const std::string& request_namespace, const json& policy,
                               const RestoreContext& context) {
  RestoreDecision d;
  auto block = [&](const char* reason, std::string message) {
    d.blocked = true;
    d.reason = reason;
    d.message = std::move(message);
    return d;
  };
  if (!policy.is_object()) return block("PolicyNotFound", "BackupPolicy \"" + spec.policy + "\" not found in namespace " + request_namespace);
  const json catalog = policy.value("status", json::object()).value("backups", json::array());
  const json* verified = last_verified(catalog);
  const std::string use_instead =
      verified ? "the last verified backup is " + verified->value("id", "") + " (" + verified->value("checksum", "") + ")"
               : "no backup of policy " + spec.policy + " has been verified yet";

  d.target_namespace = spec.target_namespace;
  if (spec.purpose == "restore" && d.target_namespace.empty()) d.target_namespace = request_namespace;
  if (spec.purpose != "restore") {
    if (d.target_namespace.empty())
      return block("InvalidTarget", "spec.targetNamespace: required for purpose " + spec.purpose);
    if (context.target_is_production)
      return block("InvalidTarget", "spec.targetNamespace: \"" + d.target_namespace + "\" is a production namespace; a " +
                                        spec.purpose + " must restore elsewhere");
  }

  // Where the operator may run Jobs for this request, and with which images.
  const auto policy_spec = parse_backup_policy_spec(policy.value("spec", json::object()));
  if (!policy_spec)
    return block("InvalidPolicy", "BackupPolicy " + spec.policy + " has an invalid spec: " + policy_spec.error().message);
  const auto& ver = policy_spec->verification;
  const std::string target_field = spec.target_namespace.empty() ? "spec.targetNamespace (unset: the request's namespace)"
                                                                 : "spec.targetNamespace";
  if (target_always_refused(d.target_namespace, context.operator_namespace))
    return block("TargetNotAllowed", target_field + ": \"" + d.target_namespace + "\" is refused: " +
                                         (d.target_namespace == "kube-system" ? std::string("kube-system")
                                                                              : "the operator's own namespace") +
                                         " is never a restore target");
  if (spec.purpose != "restore" && d.target_namespace != ver.target_namespace &&
      std::find(ver.allowed_target_namespaces.begin(), ver.allowed_target_namespaces.end(), d.target_namespace) ==
          ver.allowed_target_namespaces.end()) {
    std::string listed = ver.target_namespace.empty() ? "" : "\"" + ver.target_namespace + "\"";
    for (const auto& n : ver.allowed_target_namespaces) listed += (listed.empty() ? "\"" : ", \"") + n + "\"";
    return block("TargetNotAllowed", "spec.targetNamespace: \"" + d.target_namespace + "\" is not a namespace BackupPolicy " +
                                         spec.policy + " lets a " + spec.purpose +
                                         " target; it allows its spec.verification.targetNamespace and "
                                         "spec.verification.allowedTargetNamespaces (" +
                                         (listed.empty() ? std::string("none") : listed) + ")");
  }
  for (size_t i = 0; i < spec.validation.size(); ++i) {
    const std::string& image = spec.validation[i].image;
    if (image.empty()) continue;  // a sql check: the operator's own runner
    if (std::find(ver.check_images.begin(), ver.check_images.end(), image) == ver.check_images.end())
      return block("ImageNotAllowed", "spec.validation[" + std::to_string(i) + "].image: \"" + image +
                                          "\" is not listed in spec.verification.checkImages of BackupPolicy " +
                                          spec.policy + " (images are compared as written)");
  }

  // Who asked must be allowed to run Jobs where this request runs them.
  const auto& access = context.access;
  if (!access.checked || access.ns != d.target_namespace) {
    d.awaiting_access = true;
    return d;
  }
  if (!access.allowed)
    return block("Forbidden", "user \"" + access.user + "\" may not " + kAccessVerb + " " + kAccessResource + "." +
                                  kAccessGroup + " in namespace " + d.target_namespace +
                                  (access.reason.empty() ? std::string() : " (the API server: " + access.reason + ")") +
                                  "; the operator runs this request's Jobs there only for someone who may");

  const json* entry = nullptr;
  if (spec.backup_id == "latest") {
    if (!verified) return block("NoVerifiedBackup", "backupId latest: " + use_instead);
    entry = verified;
  } else {
    for (const auto& e : catalog)
      if (e.value("id", "") == spec.backup_id) entry = &e;
    if (!entry)
      return block("UnknownBackup", "backup " + spec.backup_id + " is not in the catalog of policy " + spec.policy + "; " + use_instead);
  }
  if (!spec.checksum.empty() && spec.checksum != entry->value("checksum", ""))
    return block("ChecksumMismatch", "spec.checksum does not match the catalog's checksum of " + entry->value("id", "") + "; " + use_instead);
  if (!entry->value("restorable", true))
    return block("NotRestorable", "backup " + entry->value("id", "") + " cannot be restored (" +
                                      entry->value("notRestorableReason", "the WAL it needs was not archived") + "); " +
                                      use_instead);
  if (!entry->value("verified", false) && spec.purpose != "verification")
    return block("UnverifiedBackup", "backup " + entry->value("id", "") + " has not been verified; " + use_instead);
  d.backup_id = entry->value("id", "");
  d.checksum = entry->value("checksum", "");
  return d;
}

}  // namespace bo::api
