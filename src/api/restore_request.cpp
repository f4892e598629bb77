#include "api/restore_request.h"

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
      for (size_t j = 0; j < i; ++j)
        if (s.validation[j].name == check.name) return invalid(".name", "unique (\"" + check.name + "\" repeats)");
      s.validation.push_back(std::move(check));
    }
  }
  return s;
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
                               bool target_is_production) {
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
    if (target_is_production)
      return block("InvalidTarget", "spec.targetNamespace: \"" + d.target_namespace + "\" is a production namespace; a " +
                                        spec.purpose + " must restore elsewhere");
  }

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
