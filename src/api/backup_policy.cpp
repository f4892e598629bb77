#include "api/backup_policy.h"

#include <algorithm>
#include <cctype>
#include <expected>

#include "common/duration.h"
#include "schedule/cron.h"

namespace bo::api {
namespace {

struct Reader {
  const json& obj;
  std::string path;
  std::optional<Problem>* problem;

  bool failed() const { return problem->has_value(); }
  void fail(const std::string& field, const std::string& want) {
    if (!failed()) *problem = Problem{"InvalidSpec", field, field + ": must be " + want};
  }
  std::string at(const char* key) const { return path.empty() ? key : path + "." + key; }
  const json* get(const char* key) const {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  void str(const char* key, std::string& out) {
    if (auto v = get(key)) {
      if (v->is_string()) out = v->get<std::string>();
      else fail(at(key), "a string");
    }
  }
  template <class Int>
  void integer(const char* key, Int& out) {
    if (auto v = get(key)) {
      if (v->is_number_integer()) out = static_cast<Int>(v->get<long long>());
      else fail(at(key), "an integer");
    }
  }
  void boolean(const char* key, bool& out) {
    if (auto v = get(key)) {
      if (v->is_boolean()) out = v->get<bool>();
      else fail(at(key), "true or false");
    }
  }
  void strings(const char* key, std::vector<std::string>& out) {
    if (auto v = get(key)) {
      if (!v->is_array()) return fail(at(key), "a list of strings");
      out.clear();
      for (const auto& x : *v)
        if (x.is_string()) out.push_back(x.get<std::string>());
        else return fail(at(key), "a list of strings");
    }
  }
  Reader sub(const char* key) {
    static const json kEmpty = json::object();
    const json* v = get(key);
    if (v && !v->is_object()) fail(at(key), "an object");
    return Reader{v && v->is_object() ? *v : kEmpty, at(key), problem};
  }
};

}  // namespace

bool BackupPolicySpec::has_addon(const std::string& a) const {
  return std::find(addons.begin(), addons.end(), a) != addons.end();
}

std::expected<BackupPolicySpec, Problem> parse_backup_policy_spec(const json& spec_json) {
  std::optional<Problem> problem;
  if (!spec_json.is_object()) return std::unexpected(Problem{"InvalidSpec", "spec", "spec: must be an object"});
  BackupPolicySpec s;
  Reader r{spec_json, "spec", &problem};
  r.str("profile", s.profile);
  r.str("environment", s.environment);
  if (auto a = r.get("addons")) {
    if (!a->is_array()) r.fail("spec.addons", "a list of strings");
    else {
      s.addons.clear();
      for (const auto& x : *a)
        if (x.is_string()) s.addons.push_back(x.get<std::string>());
        else r.fail("spec.addons", "a list of strings");
    }
  }
  r.boolean("suspend", s.suspend);

  Reader db = r.sub("database");
  db.str("host", s.database.host);
  db.integer("port", s.database.port);
  db.str("name", s.database.name);
  Reader creds = db.sub("credentialsSecretRef");
  creds.str("name", s.database.credentials_secret);
  creds.str("usernameKey", s.database.username_key);
  creds.str("passwordKey", s.database.password_key);
  s.database.has_data_volume = db.get("dataVolume") != nullptr;
  s.database.has_workload_ref = db.get("workloadRef") != nullptr;
  Reader wr = db.sub("workloadRef");
  wr.str("kind", s.database.workload_ref.kind);
  wr.str("name", s.database.workload_ref.name);
  db.str("container", s.database.container);
  Reader dv = db.sub("dataVolume");
  dv.str("claimName", s.database.data_volume.claim_name);
  dv.str("mountPath", s.database.data_volume.mount_path);
  dv.str("subPath", s.database.data_volume.sub_path);
  db.integer("runAsUser", s.database.run_as_user);
  db.integer("runAsGroup", s.database.run_as_group);
  db.integer("walWaitSeconds", s.database.wal_wait_seconds);
  if (auto v = db.get("podLabels")) {
    if (!v->is_object()) db.fail("spec.database.podLabels", "a map of label names to values");
    else
      for (const auto& [k, x] : v->items())
        if (x.is_string()) s.database.pod_labels[k] = x.get<std::string>();
        else db.fail("spec.database.podLabels", "a map of label names to values");
  }

  Reader storage = r.sub("storage");
  storage.sub("secretRef").str("name", s.storage.secret);
  Reader enc = storage.sub("encryption").sub("secretRef");
  enc.str("name", s.storage.encryption_secret);
  enc.str("key", s.storage.encryption_key);

  Reader sched = r.sub("schedule");
  sched.str("backup", s.schedule.backup);
  sched.str("fullBackup", s.schedule.full_backup);
  sched.str("timeZone", s.schedule.time_zone);
  sched.integer("startingDeadlineSeconds", s.schedule.starting_deadline_seconds);
  sched.str("concurrencyPolicy", s.schedule.concurrency_policy);
  sched.str("deltaOrigin", s.schedule.delta_origin);

  Reader ret = r.sub("retention");
  ret.integer("daily", s.retention.daily);
  ret.integer("weekly", s.retention.weekly);
  ret.integer("monthly", s.retention.monthly);

  Reader ver = r.sub("verification");
  ver.boolean("enabled", s.verification.enabled);
  ver.str("schedule", s.verification.schedule);
  ver.str("targetNamespace", s.verification.target_namespace);
  ver.str("image", s.verification.image);
  ver.sub("storageSecretRef").str("name", s.verification.storage_secret);
  ver.str("storageClassName", s.verification.storage_class);
  ver.str("storageSize", s.verification.storage_size);
  ver.str("keepFailedFor", s.verification.keep_failed_for);
  ver.integer("timeoutSeconds", s.verification.timeout_seconds);
  if (auto c = ver.get("checks")) {
    if (!c->is_array()) ver.fail("spec.verification.checks", "a list of {name, sql, expect}");
    else s.verification.checks = *c;
  }
  ver.strings("allowedTargetNamespaces", s.verification.allowed_target_namespaces);
  ver.strings("checkImages", s.verification.check_images);

  Reader off = r.sub("offsite");
  off.sub("secretRef").str("name", s.offsite.secret);
  off.str("schedule", s.offsite.schedule);
  off.integer("immutableDays", s.offsite.immutable_days);

  r.sub("drills").str("interval", s.drill_interval);

  Reader dbs = r.sub("databasus");
  dbs.str("image", s.databasus.image);
  dbs.str("storageSize", s.databasus.storage_size);
  dbs.str("storageClassName", s.databasus.storage_class);
  if (auto v = dbs.get("resources")) s.databasus.resources = *v;
  Reader admin = dbs.sub("adminSecretRef");
  admin.str("name", s.databasus.admin_secret);
  admin.str("emailKey", s.databasus.admin_email_key);
  admin.str("passwordKey", s.databasus.admin_password_key);
  Reader jt = r.sub("jobTemplate");
  jt.str("image", s.job_template.image);
  jt.str("imagePullPolicy", s.job_template.image_pull_policy);
  jt.str("serviceAccountName", s.job_template.service_account);
  if (auto v = jt.get("resources")) s.job_template.resources = *v;
  if (auto v = jt.get("nodeSelector")) s.job_template.node_selector = *v;
  if (auto v = jt.get("tolerations")) s.job_template.tolerations = *v;
  jt.integer("backoffLimit", s.job_template.backoff_limit);
  jt.integer("activeDeadlineSeconds", s.job_template.active_deadline_seconds);
  jt.integer("ttlSecondsAfterFinished", s.job_template.ttl_seconds_after_finished);

  if (const json* ps = r.get("paasState")) {
    Reader st = r.sub("paasState");
    if (ps->is_object()) {
      auto& p = s.paas_state;
      p.enabled = true;
      st.str("claimName", p.claim_name);
      st.str("subPath", p.sub_path);
      if (auto c = st.get("contexts")) {
        if (!c->is_array()) st.fail("spec.paasState.contexts", "a list of context names, or [\"*\"]");
        else
          for (const auto& x : *c)
            if (x.is_string()) p.contexts.push_back(x.get<std::string>());
            else st.fail("spec.paasState.contexts", "a list of context names, or [\"*\"]");
      }
      st.boolean("includeReleases", p.include_releases);
      st.boolean("forensicCache", p.forensic_cache);
      st.str("schedule", p.schedule);
      Reader key = st.sub("keySecretRef");
      key.str("name", p.key_secret);
      key.str("key", p.key_key);
      Reader dest = st.sub("destination");
      dest.str("claimName", p.destination_claim);
      dest.str("path", p.destination_path);
      if (p.key_secret.empty()) p.key_secret = s.storage.encryption_secret;
    }
  }

  Reader hl = r.sub("historyLimits");
  hl.integer("successful", s.history_limits.successful);
  hl.integer("failed", s.history_limits.failed);

  if (problem) return std::unexpected(*problem);
  return s;
}

bool target_always_refused(const std::string& target, const std::string& operator_namespace) {
  return target == "kube-system" || (!operator_namespace.empty() && target == operator_namespace);
}

std::vector<Problem> validate(const BackupPolicySpec& s, const std::string& policy_namespace,
                              const std::string& operator_namespace) {
  std::vector<Problem> out;
  auto add = [&](const char* reason, const std::string& field, const std::string& msg) {
    out.push_back({reason, field, field + ": " + msg});
  };
  if (s.profile != "supabase-self-hosted")
    add("InvalidSpec", "spec.profile", "unsupported profile \"" + s.profile + "\" (supported: supabase-self-hosted)");
  if (s.environment != "production" && s.environment != "staging" && s.environment != "development")
    add("InvalidSpec", "spec.environment", "must be production, staging or development");
  if (s.database.host.empty()) add("InvalidSpec", "spec.database.host", "required");
  if (s.database.port < 1 || s.database.port > 65535) add("InvalidSpec", "spec.database.port", "must be 1-65535");
  const auto& dv = s.database.data_volume;
  const auto& wr = s.database.workload_ref;
  if (s.database.has_data_volume && s.database.has_workload_ref)
    add("InvalidSpec", "spec.database.workloadRef",
        "set either spec.database.dataVolume or spec.database.workloadRef, not both");
  if (!s.database.has_workload_ref && dv.claim_name.empty())
    add("DataVolumeRequired", "spec.database.dataVolume.claimName",
        "required (or spec.database.workloadRef): wal-g backup-push reads the data directory itself, so backup Jobs "
        "mount the database's claim");
  if (s.database.has_data_volume) {
    if (!dv.mount_path.starts_with("/") || dv.mount_path.find("/../") != std::string::npos ||
        dv.mount_path.ends_with("/.."))
      add("InvalidSpec", "spec.database.dataVolume.mountPath", "must be an absolute path (the server's data_directory)");
    if (dv.sub_path.starts_with("/") || dv.sub_path == ".." || dv.sub_path.starts_with("../") ||
        dv.sub_path.find("/../") != std::string::npos || dv.sub_path.ends_with("/.."))
      add("InvalidSpec", "spec.database.dataVolume.subPath", "must be a relative path inside the claim");
    if (s.database.run_as_user < 0)
      add("InvalidSpec", "spec.database.runAsUser",
          "required with dataVolume: the uid PostgreSQL runs as (backup Jobs read its 0700 data directory as that user)");
    if (s.database.run_as_group < 0)
      add("InvalidSpec", "spec.database.runAsGroup", "required with dataVolume: the gid PostgreSQL runs as");
  }
  if (s.database.has_workload_ref) {
    if (wr.kind != "StatefulSet" && wr.kind != "Deployment")
      add("InvalidSpec", "spec.database.workloadRef.kind", "must be StatefulSet or Deployment");
    if (wr.name.empty()) add("InvalidSpec", "spec.database.workloadRef.name", "required: the workload running PostgreSQL");
    if ((s.database.run_as_user < 0) != (s.database.run_as_group < 0))
      add("InvalidSpec", s.database.run_as_user < 0 ? "spec.database.runAsUser" : "spec.database.runAsGroup",
          "runAsUser and runAsGroup go together (the fallback when the pod's securityContext does not say)");
  }
  if (!s.database.container.empty() && !s.database.has_workload_ref)
    add("InvalidSpec", "spec.database.container", "only applies with spec.database.workloadRef");
  if (s.database.wal_wait_seconds < 0 || s.database.wal_wait_seconds > 86400)
    add("InvalidSpec", "spec.database.walWaitSeconds", "must be between 0 and 86400");
  if (s.database.run_as_user == 0)
    add("InvalidSpec", "spec.database.runAsUser", "must not be 0: backup Jobs never run as root");
  if (s.schedule.delta_origin != "LATEST" && s.schedule.delta_origin != "LATEST_FULL")
    add("InvalidSpec", "spec.schedule.deltaOrigin", "must be LATEST or LATEST_FULL");
  if (s.storage.secret.empty()) add("SecretNotFound", "spec.storage.secretRef.name", "required");
  if (s.storage.encryption_secret.empty())
    add("EncryptionRequired", "spec.storage.encryption.secretRef.name",
        "encryption at rest is required: name a Secret holding the WAL-G libsodium key");
  const auto zone = schedule::find_zone(s.schedule.time_zone);
  if (!zone) add("InvalidTimeZone", "spec.schedule.timeZone", zone.error());
  auto check_cron = [&](const std::string& expr, const std::string& field) {
    auto c = schedule::Cron::parse(expr);
    if (!c) {
      add("InvalidSchedule", field, "\"" + expr + "\": " + c.error());
    } else if (zone && !c->next(std::chrono::system_clock::now(), *zone)) {
      add("InvalidSchedule", field, "\"" + expr + "\" never fires");
    }
  };
  check_cron(s.schedule.backup, "spec.schedule.backup");
  check_cron(s.schedule.full_backup, "spec.schedule.fullBackup");
  if (s.verification.enabled) check_cron(s.verification.schedule, "spec.verification.schedule");
  if (!s.offsite.secret.empty()) check_cron(s.offsite.schedule, "spec.offsite.schedule");
  if (s.schedule.starting_deadline_seconds < 0)
    add("InvalidSpec", "spec.schedule.startingDeadlineSeconds", "must not be negative");
  if (s.schedule.concurrency_policy != "Forbid" && s.schedule.concurrency_policy != "Replace")
    add("InvalidSpec", "spec.schedule.concurrencyPolicy", "must be Forbid or Replace");
  if (s.retention.daily < 1) add("InvalidRetention", "spec.retention.daily", "must be at least 1");
  if (s.retention.weekly < 1) add("InvalidRetention", "spec.retention.weekly", "must be at least 1");
  if (s.retention.monthly < 1) add("InvalidRetention", "spec.retention.monthly", "must be at least 1");
  if (s.verification.enabled) {
    if (s.verification.target_namespace.empty())
      add("InvalidTarget", "spec.verification.targetNamespace", "required when verification is enabled");
    else if (s.environment == "production" && s.verification.target_namespace == policy_namespace)
      add("InvalidTarget", "spec.verification.targetNamespace",
          "must not be the policy's own namespace \"" + policy_namespace + "\" for a production policy");
  }
  if (const auto keep = parse_duration(s.verification.keep_failed_for); !keep || keep->count() < 0)
    add("InvalidSpec", "spec.verification.keepFailedFor",
        "\"" + s.verification.keep_failed_for + "\" is not a duration such as 24h");
  if (s.verification.timeout_seconds < 60)
    add("InvalidSpec", "spec.verification.timeoutSeconds", "must be at least 60");
  // The operator's own namespace and kube-system are never a target, even
  // with verification off: drills use the same lists.
  const auto refused = [&](const std::string& ns) {
    return "\"" + ns + "\" is refused: " +
           (ns == "kube-system" ? std::string("kube-system") : "the operator's own namespace") +
           " is never a verification or drill target";
  };
  if (target_always_refused(s.verification.target_namespace, operator_namespace))
    add("TargetNotAllowed", "spec.verification.targetNamespace", refused(s.verification.target_namespace));
  for (size_t i = 0; i < s.verification.allowed_target_namespaces.size(); ++i) {
    const std::string& ns = s.verification.allowed_target_namespaces[i];
    const std::string field = "spec.verification.allowedTargetNamespaces[" + std::to_string(i) + "]";
    if (ns.empty()) add("InvalidSpec", field, "must be a namespace name");
    else if (target_always_refused(ns, operator_namespace)) add("TargetNotAllowed", field, refused(ns));
  }
  for (size_t i = 0; i < s.verification.check_images.size(); ++i)
    if (s.verification.check_images[i].empty())
      add("InvalidSpec", "spec.verification.checkImages[" + std::to_string(i) + "]", "must be an image reference");
  const auto drill = parse_duration(s.drill_interval);
  if (!drill || drill->count() <= 0)
    add("InvalidSpec", "spec.drills.interval", "\"" + s.drill_interval + "\" is not a duration such as 2160h");
  if (s.offsite.immutable_days < 1) add("InvalidSpec", "spec.offsite.immutableDays", "must be at least 1");
  if (s.job_template.backoff_limit < 0) add("InvalidSpec", "spec.jobTemplate.backoffLimit", "must not be negative");
  if (s.job_template.active_deadline_seconds < 1)
    add("InvalidSpec", "spec.jobTemplate.activeDeadlineSeconds", "must be at least 1");
  if (s.history_limits.successful < 0 || s.history_limits.failed < 0)
    add("InvalidSpec", "spec.historyLimits", "limits must not be negative");
  if (const auto& p = s.paas_state; p.enabled) {
    if (p.claim_name.empty()) add("InvalidSpec", "spec.paasState.claimName", "required: the claim holding the state root");
    if (p.sub_path.starts_with("/") || p.sub_path == ".." || p.sub_path.starts_with("../") ||
        p.sub_path.find("/../") != std::string::npos || p.sub_path.ends_with("/.."))
      add("InvalidSpec", "spec.paasState.subPath", "must be a relative path inside the claim");
    if (p.contexts.empty()) add("InvalidSpec", "spec.paasState.contexts", "name at least one context, or [\"*\"] for all");
    for (size_t i = 0; i < p.contexts.size(); ++i) {
      const std::string& c = p.contexts[i];
      const bool ok = (c == "*" && p.contexts.size() == 1) ||
                      (c != "*" && !c.empty() && c.size() <= 63 && c != "." && c != ".." &&
                       std::all_of(c.begin(), c.end(), [](unsigned char ch) {
                         return std::isalnum(ch) || ch == '.' || ch == '_' || ch == '-';
                       }));
      if (!ok)
        add("InvalidSpec", "spec.paasState.contexts[" + std::to_string(i) + "]",
            "\"" + c + "\" is not a context name (letters, digits, '.', '_', '-'), and \"*\" must stand alone");
    }
    check_cron(p.schedule, "spec.paasState.schedule");
    if (p.key_secret.empty())
      add("EncryptionRequired", "spec.paasState.keySecretRef.name", "bundles are encrypted: name a Secret holding the bundle key");
    if (!p.destination_claim.empty() &&
        (p.destination_path.empty() || p.destination_path.starts_with("/") || p.destination_path.find("..") != std::string::npos))
      add("InvalidSpec", "spec.paasState.destination.path", "must be a relative path inside the destination claim");
  }
  if (s.has_addon("databasus") && !image_is_pinned(s.databasus.image))
    add("ImageNotPinned", "spec.databasus.image",
        "\"" + s.databasus.image + "\" names no version: pin a tag other than latest or a digest (default " +
            kDatabasusImage + ")");
  return out;
}

bool image_is_pinned(const std::string& image) {
  if (const auto at = image.find('@'); at != std::string::npos) return image.compare(at + 1, 7, "sha256:") == 0 && image.size() == at + 8 + 64;
  // A tag is after the last ':' that comes after the last '/' (a registry may have a port).
  const auto slash = image.rfind('/');
  const auto colon = image.rfind(':');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) return false;
  const std::string tag = image.substr(colon + 1);
  return !tag.empty() && tag != "latest";
}

std::vector<Problem> check_secrets(const BackupPolicySpec& s, const SecretData& secrets) {
  std::vector<Problem> out;
  auto need = [&](const std::string& secret, const std::string& field,
                  const std::vector<std::string>& keys) -> const std::map<std::string, SecretValue>* {
    if (secret.empty()) return nullptr;
    auto it = secrets.find(secret);
    if (it == secrets.end()) {
      out.push_back({"SecretNotFound", field, field + ": Secret \"" + secret + "\" not found"});
      return nullptr;
    }
    for (const auto& k : keys)
      if (!it->second.count(k) || it->second.at(k).empty())
        out.push_back({"MissingSecretKey", field, field + ": Secret \"" + secret + "\" has no key " + k});
    return &it->second;
  };
  if (auto storage = need(s.storage.secret, "spec.storage.secretRef.name", kRequiredStorageKeys)) {
    auto ep = storage->find("WALG_AWS_ENDPOINT");
    if (ep != storage->end() && !ep->second.empty() && !ep->second.value().starts_with("https://"))
      out.push_back({"InsecureEndpoint", "spec.storage.secretRef.name",
                     "spec.storage.secretRef.name: WALG_AWS_ENDPOINT in Secret \"" + s.storage.secret +
                         "\" must use https:// (encryption in transit)"});
  }
  if (s.storage.encryption_secret.empty())
    out.push_back({"EncryptionRequired", "spec.storage.encryption.secretRef.name",
                   "spec.storage.encryption.secretRef.name: encryption at rest is required"});
  else
    need(s.storage.encryption_secret, "spec.storage.encryption.secretRef.name", {s.storage.encryption_key});
  need(s.database.credentials_secret, "spec.database.credentialsSecretRef.name",
       {s.database.username_key, s.database.password_key});
  if (!s.offsite.secret.empty()) need(s.offsite.secret, "spec.offsite.secretRef.name", kRequiredStorageKeys);
  if (s.paas_state.enabled) need(s.paas_state.key_secret, "spec.paasState.keySecretRef.name", {s.paas_state.key_key});
  if (s.has_addon("databasus"))
    need(s.databasus.admin_secret, "spec.databasus.adminSecretRef.name",
         {s.databasus.admin_email_key, s.databasus.admin_password_key});
  return out;
}

std::map<std::string, std::set<std::string>> used_value_keys(const json& spec) {
  std::map<std::string, std::set<std::string>> out;
  if (!spec.is_object()) return out;
  auto str_at = [](const json& obj, std::initializer_list<const char*> path, const std::string& fallback) {
    const json* at = &obj;
    for (const char* k : path) {
      if (!at->is_object() || !at->contains(k)) return fallback;
      at = &(*at)[k];
    }
    return at->is_string() && !at->get<std::string>().empty() ? at->get<std::string>() : fallback;
  };
  const BackupPolicySpec defaults;
  if (const auto db = str_at(spec, {"database", "credentialsSecretRef", "name"}, ""); !db.empty()) {
    out[db].insert(str_at(spec, {"database", "credentialsSecretRef", "usernameKey"}, defaults.database.username_key));
    out[db].insert(str_at(spec, {"database", "credentialsSecretRef", "passwordKey"}, defaults.database.password_key));
  }
  for (const auto& storage : {str_at(spec, {"storage", "secretRef", "name"}, ""), str_at(spec, {"offsite", "secretRef", "name"}, "")})
    if (!storage.empty()) out[storage].insert("WALG_AWS_ENDPOINT");
  return out;
}

std::vector<std::string> referenced_secrets(const json& spec) {
  std::vector<std::string> names;
  if (!spec.is_object()) return names;
  auto name_at = [&](const json& obj, std::initializer_list<const char*> path) {
    const json* at = &obj;
    for (const char* k : path) {
      if (!at->is_object() || !at->contains(k)) return;
      at = &(*at)[k];
    }
    if (at->is_string() && !at->get<std::string>().empty() &&
        std::find(names.begin(), names.end(), at->get<std::string>()) == names.end())
      names.push_back(at->get<std::string>());
  };
  name_at(spec, {"storage", "secretRef", "name"});
  name_at(spec, {"storage", "encryption", "secretRef", "name"});
  name_at(spec, {"database", "credentialsSecretRef", "name"});
  name_at(spec, {"offsite", "secretRef", "name"});
  name_at(spec, {"paasState", "keySecretRef", "name"});
  name_at(spec, {"databasus", "adminSecretRef", "name"});
  return names;
}

}  // namespace bo::api
