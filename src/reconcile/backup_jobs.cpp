#include "reconcile/backup_jobs.h"

#include <date/date.h>
#include <date/tz.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "common/encoding.h"
#include "common/timefmt.h"

namespace bo::reconcile {

std::string action_name(Action a) {
  switch (a) {
    case Action::kBackup: return "backup";
    case Action::kFullBackup: return "full-backup";
    case Action::kVerify: return "verify";
    case Action::kRetain: return "retain";
    case Action::kOffsiteCopy: return "offsite-copy";
    case Action::kRestore: return "restore";
    case Action::kStateBundle: return "state-bundle";
    case Action::kCatalog: return "catalog";
  }
  return "backup";
}

std::string service_name(Action a) {
  return a == Action::kVerify || a == Action::kRestore ? "supabase-walg-restore" : "supabase-walg-backup";
}

namespace {

std::string short_action(Action a) {
  switch (a) {
    case Action::kBackup: return "delta";
    case Action::kFullBackup: return "full";
    case Action::kVerify: return "verify";
    case Action::kRetain: return "retain";
    case Action::kOffsiteCopy: return "offsite";
    case Action::kRestore: return "restore";
    case Action::kStateBundle: return "state";
    case Action::kCatalog: return "catalog";
  }
  return "run";
}

std::string slot_stamp(SysTime t) {
  std::string s = format_rfc3339(t);  // 2026-11-24T10:00:00Z
  std::string out;
  for (char c : s.substr(0, 16))
    if (std::isdigit(static_cast<unsigned char>(c))) out += c;
  return out;  // 202611241000
}

json secret_env(const std::string& name, const std::string& secret, const std::string& key) {
  return {{"name", name}, {"valueFrom", {{"secretKeyRef", {{"name", secret}, {"key", key}}}}}};
}

}  // namespace

std::string bundle_tag(SysTime slot) { return format_compact_utc(slot); }

std::string job_name(const std::string& policy, Action a, SysTime slot, const std::string& context) {
  if (a == Action::kStateBundle && !context.empty() && context != "*") {
    // A context may hold capitals, '_' and '.' (a directory name), which would make the Job's name invalid
    // (a '.' next to a '-'): such a one is named by its hash.
    const bool dns = std::all_of(context.begin(), context.end(), [](unsigned char c) {
      return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
    return bounded_name(policy + "-state-" + (dns ? context : sha256_hex(context).substr(0, 10)) + "-" +
                        slot_stamp(slot));
  }
  const std::string suffix = "-" + short_action(a) + "-" + slot_stamp(slot);
  std::string base = policy;
  if (base.size() + suffix.size() > 63) {
    // Keep names unique when truncating: a short hash of the full policy name.
    const std::string hash = sha256_hex(policy).substr(0, 6);
    base = base.substr(0, 63 - suffix.size() - 7);
    while (!base.empty() && (base.back() == '-' || base.back() == '.')) base.pop_back();
    base += "-" + hash;
  }
  return base + suffix;
}

int delta_max_steps(const schedule::Cron& backup, const schedule::Cron& full, const date::time_zone* tz, SysTime from) {
  constexpr int kCycles = 8, kMaxSteps = 10000;
  auto f = full.next(from, tz);
  if (!f) return 0;
  // The count depends on `from` only through the first full slot after it,
  // and a fleet shares a few schedules: daily deltas with yearly fulls cost
  // ~3 000 Cron::next calls, once per fleet and full cycle instead of once
  // per due Job (at 5 000 policies due at once, most of the planning time).
  using Key = std::tuple<std::string, std::string, const date::time_zone*, SysTime>;
  static std::mutex mu;
  static std::map<Key, int> memo;
  Key key{backup.expression(), full.expression(), tz, *f};
  {
    std::lock_guard lock(mu);
    if (auto it = memo.find(key); it != memo.end()) return it->second;
  }
  int most = 0;
  for (int cycle = 0; f && cycle < kCycles; ++cycle) {
    const auto following = full.next(*f, tz);
    if (!following) break;
    int steps = 0;
    for (auto b = backup.next(*f, tz); b && *b < *following && steps < kMaxSteps; b = backup.next(*b, tz)) ++steps;
    most = std::max(most, steps);
    if (most >= kMaxSteps) break;  // the cap: no cycle can raise it (and minutely deltas would take 80 000 steps)
    f = following;
  }
  std::lock_guard lock(mu);
  if (memo.size() >= 4096) memo.clear();  // bounded: schedules a fleet no longer uses go
  memo.emplace(std::move(key), most);
  return most;
}

SlotPlan plan_slots(const schedule::Cron& cron, const date::time_zone* tz, SysTime since, SysTime now,
                    std::chrono::seconds starting_deadline, int max_slots) {
  SlotPlan p;
  int count = 0;
  auto t = cron.next(since, tz);
  while (t && *t <= now) {
    p.latest = *t;
    ++count;
    if (count >= max_slots) {
      // Too far behind to enumerate: count what was seen and jump to the present.
      break;
    }
    t = cron.next(*t, tz);
  }
  p.next = cron.next(now, tz);
  if (!p.latest) return p;
  if (count >= max_slots) {
    p.missed = count;
    // The most recent slot may still be inside the deadline: look at it directly.
    const auto recent_from = now - starting_deadline - std::chrono::seconds(1);
    auto r = cron.next(recent_from, tz);
    std::optional<SysTime> recent;
    while (r && *r <= now) {
      recent = r;
      r = cron.next(*r, tz);
    }
    if (recent) {
      p.latest = recent;
      p.run = recent;
    }
    return p;
  }
  if (now - *p.latest <= starting_deadline) {
    p.run = p.latest;
    p.missed = count - 1;
  } else {
    p.missed = count;
  }
  return p;
}

json build_job(const JobInputs& in) {
  const auto& meta = in.policy.at("metadata");
  const std::string policy = meta.value("name", "");
  const std::string ns = meta.value("namespace", "");
  const auto& s = in.spec;
  const std::string name = job_name(policy, in.action, in.slot, in.context);
  const std::string expire_ids = join_ids(in.expire);
  json labels = {{"app.kubernetes.io/managed-by", kManagedBy},
                 {"app.kubernetes.io/name", "backup-operator"},
                 {kLabelPolicy, kube::label_value(policy)},
                 {kLabelService, service_name(in.action)},
                 {kLabelAction, action_name(in.action)}};
  const bool state = in.action == Action::kStateBundle;
  if (state) labels[kLabelContext] = in.context == "*" ? "all" : in.context;

  json env = json::array();
  std::vector<std::string> keys = in.storage_keys;
  for (const auto& k : api::kRequiredStorageKeys)
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  const bool needs_storage = !state || s.paas_state.destination_claim.empty();
  const bool pushes = in.action == Action::kBackup || in.action == Action::kFullBackup;
  // Where the data is: the checked volume (workloadRef: read from the database's pod), else the spec's.
  const auto* dv = in.data_volume ? &*in.data_volume : nullptr;
  const std::string& claim_name = dv ? dv->claim_name : s.database.data_volume.claim_name;
  const std::string& mount_path = dv ? dv->mount_path : s.database.data_volume.mount_path;
  const std::string& sub_path = dv ? dv->sub_path : s.database.data_volume.sub_path;
  // The operator sets these itself (from the schedules and the data volume).
  auto derived = [](const std::string& k) { return k == "WALG_DELTA_MAX_STEPS" || k == "WALG_DELTA_ORIGIN"; };
  for (const auto& k : keys)
    if (needs_storage && (k.starts_with("WALG_") || k.starts_with("AWS_")) && !derived(k))
      env.push_back(secret_env(k, s.storage.secret, k));
  if (state) {
    // A state bundle reads files, not the database: the bundle key and
    // (for S3) the storage keys, nothing else.
    env.push_back(secret_env("BUNDLE_KEY", s.paas_state.key_secret, s.paas_state.key_key));
  } else {
    env.push_back(secret_env("WALG_LIBSODIUM_KEY", s.storage.encryption_secret, s.storage.encryption_key));
    env.push_back({{"name", "PGHOST"}, {"value", s.database.host}});
    env.push_back({{"name", "PGPORT"}, {"value", std::to_string(s.database.port)}});
    env.push_back({{"name", "PGDATABASE"}, {"value", s.database.name}});
  }
  if (pushes) {
    // wal-g backup-push PGDATA: the server's own data directory, read from
    // the mounted claim; deltas chain as the schedules imply.
    env.push_back({{"name", "PGDATA"}, {"value", !in.data_directory.empty()                                ? in.data_directory
                                                 : in.data_volume && !in.data_volume->data_directory.empty() ? in.data_volume->data_directory
                                                                                                            : mount_path}});
    env.push_back({{"name", "WALG_DELTA_MAX_STEPS"}, {"value", std::to_string(in.delta_max_steps)}});
    env.push_back({{"name", "WALG_DELTA_ORIGIN"}, {"value", s.schedule.delta_origin}});
    env.push_back({{"name", "BACKUP_WAL_WAIT_SECONDS"}, {"value", std::to_string(s.database.wal_wait_seconds)}});
    if (!in.verified_markers.empty()) {
      std::string markers;
      for (const auto& m : in.verified_markers) markers += (markers.empty() ? "" : ",") + m;
      env.push_back({{"name", kVerifiedMarkersEnv}, {"value", markers}});
    }
  }
  if (!state && !s.database.credentials_secret.empty()) {
    env.push_back(secret_env("PGUSER", s.database.credentials_secret, s.database.username_key));
    env.push_back(secret_env("PGPASSWORD", s.database.credentials_secret, s.database.password_key));
  }
  env.push_back({{"name", "BACKUP_POLICY"}, {"value", policy}});
  env.push_back({{"name", "BACKUP_ACTION"}, {"value", action_name(in.action)}});
  env.push_back({{"name", "BACKUP_SLOT"}, {"value", format_rfc3339(in.slot)}});
  if (in.action == Action::kRetain) {
    env.push_back({{"name", "RETAIN_DAILY"}, {"value", std::to_string(s.retention.daily)}});
    env.push_back({{"name", "RETAIN_WEEKLY"}, {"value", std::to_string(s.retention.weekly)}});
    env.push_back({{"name", "RETAIN_MONTHLY"}, {"value", std::to_string(s.retention.monthly)}});
    env.push_back({{"name", kRetainExpireEnv}, {"value", expire_ids}});
  }
  if (in.action == Action::kOffsiteCopy && !s.offsite.secret.empty()) {
    for (const auto& k : api::kRequiredStorageKeys) env.push_back(secret_env("OFFSITE_" + k, s.offsite.secret, k));
    // What wal-g needs besides, when the offsite Secret has it (path-style endpoints, a private CA, a region).
    for (const char* k : {"AWS_S3_FORCE_PATH_STYLE", "AWS_REGION", "WALG_S3_CA_CERT_FILE"}) {
      json e = secret_env(std::string("OFFSITE_") + k, s.offsite.secret, k);
      e["valueFrom"]["secretKeyRef"]["optional"] = true;
      env.push_back(e);
    }
    env.push_back({{"name", "OFFSITE_IMMUTABLE_DAYS"}, {"value", std::to_string(s.offsite.immutable_days)}});
    env.push_back({{"name", "OFFSITE_BACKUP_ID"}, {"value", in.backup_id}});
  }

  json args = {"run-job", action_name(in.action)};
  json mounts = {{{"name", "tmp"}, {"mountPath", "/tmp"}}};
  json volumes = {{{"name", "tmp"}, {"emptyDir", json::object()}}};
  if (state) {
    const auto& p = s.paas_state;
    const bool to_claim = !p.destination_claim.empty();
    args = {"bundle", "create", "--state-root", kStateMount};
    if (in.context == "*") args.push_back("--all-contexts");
    else args.insert(args.end(), {"--context", in.context});
    args.insert(args.end(), {"--include-releases", p.include_releases ? "true" : "false"});
    if (p.forensic_cache) args.push_back("--forensic-cache");
    args.insert(args.end(), {"--store", to_claim ? std::string("dir:") + kBundleMount + "/" + p.destination_path : "s3",
                             "--key-env", "BUNDLE_KEY", "--tag", bundle_tag(in.slot), "--work-dir", "/tmp",
                             "--termination-log"});
    json state_mount = {{"name", "state"}, {"mountPath", kStateMount}, {"readOnly", true}};
    if (!p.sub_path.empty()) state_mount["subPath"] = p.sub_path;
    mounts.push_back(state_mount);
    volumes.push_back({{"name", "state"}, {"persistentVolumeClaim", {{"claimName", p.claim_name}, {"readOnly", true}}}});
    if (to_claim) {
      mounts.push_back({{"name", "bundles"}, {"mountPath", kBundleMount}});
      volumes.push_back({{"name", "bundles"}, {"persistentVolumeClaim", {{"claimName", p.destination_claim}}}});
    }
  }
  if (pushes) {
    // Read-only, at exactly the server's path; no fsGroup (a kubelet would
    // chown the database's files to it).
    json m = {{"name", kDataVolumeName}, {"mountPath", mount_path}, {"readOnly", true}};
    if (!sub_path.empty()) m["subPath"] = sub_path;
    mounts.push_back(m);
    volumes.push_back({{"name", kDataVolumeName}, {"persistentVolumeClaim", {{"claimName", claim_name}, {"readOnly", true}}}});
  }
  json container = {
      {"name", state ? "state-bundle" : "walg"},
      {"image", s.job_template.image.empty() ? in.default_image : s.job_template.image},
      {"args", args},
      {"env", env},
      {"terminationMessagePath", "/dev/termination-log"},
      {"terminationMessagePolicy", "File"},
      {"volumeMounts", mounts},
      {"securityContext",
       {{"allowPrivilegeEscalation", false},
        {"readOnlyRootFilesystem", true},
        {"runAsNonRoot", true},
        {"capabilities", {{"drop", {"ALL"}}}},
        {"seccompProfile", {{"type", "RuntimeDefault"}}}}}};
  if (!s.job_template.image_pull_policy.empty()) container["imagePullPolicy"] = s.job_template.image_pull_policy;
  if (s.job_template.resources.is_object() && !s.job_template.resources.empty())
    container["resources"] = s.job_template.resources;

  // Pushes run as the database's uid/gid (its files are 0700); the rest as the image's nobody.
  const int64_t db_uid = dv ? dv->run_as_user : s.database.run_as_user;
  const int64_t db_gid = dv ? dv->run_as_group : s.database.run_as_group;
  const int64_t uid = pushes && db_uid > 0 ? db_uid : 65532;
  const int64_t gid = pushes && db_gid >= 0 ? db_gid : 65532;
  json pod_spec = {{"restartPolicy", "Never"},
                   {"automountServiceAccountToken", false},
                   {"securityContext",
                    {{"runAsNonRoot", true},
                     {"runAsUser", uid},
                     {"runAsGroup", gid},
                     {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
                   {"containers", {container}},
                   {"volumes", volumes}};
  if (pushes && dv && !dv->node_name.empty()) {
    // workloadRef: the database pod's own node, by node name (as the DaemonSet
    // controller pins its pods: the kubernetes.io/hostname label need not equal
    // the name). Not a pod affinity to the workload's labels: those match every
    // replica, and each replica of a StatefulSet has its own claim on its own node.
    json term = {{"matchFields", {{{"key", "metadata.name"}, {"operator", "In"}, {"values", {dv->node_name}}}}}};
    pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] =
        json::array({term});
  } else if (pushes && !s.database.pod_labels.empty()) {
    // A ReadWriteOnce claim attaches to one node: run beside the database.
    json term = {{"labelSelector", {{"matchLabels", s.database.pod_labels}}}, {"topologyKey", "kubernetes.io/hostname"}};
    pod_spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] = json::array({term});
  }
  if (!s.job_template.service_account.empty()) pod_spec["serviceAccountName"] = s.job_template.service_account;
  if (s.job_template.node_selector.is_object() && !s.job_template.node_selector.empty())
    pod_spec["nodeSelector"] = s.job_template.node_selector;
  if (s.job_template.tolerations.is_array() && !s.job_template.tolerations.empty())
    pod_spec["tolerations"] = s.job_template.tolerations;

  json job_spec = {{"backoffLimit", s.job_template.backoff_limit},
                   {"activeDeadlineSeconds", s.job_template.active_deadline_seconds},
                   {"ttlSecondsAfterFinished", s.job_template.ttl_seconds_after_finished},
                   {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod_spec}}}};
  // A catalog Job's retry is named after the newest attempt (backup_policy_plan.cpp),
  // so that attempt must stay until the operator removes it (history limits keep the
  // newest): a TTL that deleted every failed attempt would bring back the first name.
  if (in.action == Action::kCatalog) job_spec.erase("ttlSecondsAfterFinished");
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata",
           {{"name", name},
            {"namespace", ns},
            {"labels", labels},
            {"annotations", in.action == Action::kRetain
                                ? json{{kAnnotationSlot, format_rfc3339(in.slot)}, {kAnnotationExpire, expire_ids}}
                                : json{{kAnnotationSlot, format_rfc3339(in.slot)}}},
            {"ownerReferences",
             {{{"apiVersion", api::kApiVersion},
               {"kind", "BackupPolicy"},
               {"name", policy},
               {"uid", meta.value("uid", "")},
               {"controller", true},
               {"blockOwnerDeletion", true}}}}}},
          {"spec", job_spec}};
}

namespace {

json pick(const json& from, std::initializer_list<const char*> keys) {
  json out = json::object();
  if (!from.is_object()) return out;
  for (const char* k : keys)
    if (auto it = from.find(k); it != from.end()) out[k] = *it;
  return out;
}

json slim_meta(const json& m) {
  json out = pick(m, {"name", "namespace", "uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "labels"});
  if (m.contains("annotations")) {
    json a = pick(m["annotations"], {kAnnotationSlot, kAnnotationExpire});
    if (!a.empty()) out["annotations"] = a;
  }
  if (m.contains("ownerReferences")) {
    json refs = json::array();
    for (const auto& r : m["ownerReferences"]) refs.push_back(pick(r, {"uid", "kind", "name"}));
    out["ownerReferences"] = refs;
  }
  return out;
}

}  // namespace

void slim_job(json& job) {
  json out{{"metadata", slim_meta(job.value("metadata", json::object()))}};
  if (job.contains("apiVersion")) out["apiVersion"] = job["apiVersion"];
  if (job.contains("kind")) out["kind"] = job["kind"];
  const json st = job.value("status", json::object());
  json status = pick(st, {"completionTime"});
  if (st.contains("conditions")) {
    json conds = json::array();
    for (const auto& c : st["conditions"])
      conds.push_back(pick(c, {"type", "status", "reason", "message", "lastTransitionTime"}));
    status["conditions"] = conds;
  }
  out["status"] = status;
  job = std::move(out);
}

void slim_pod(json& pod) {
  json out{{"metadata", slim_meta(pod.value("metadata", json::object()))}};
  if (pod.contains("apiVersion")) out["apiVersion"] = pod["apiVersion"];
  if (pod.contains("kind")) out["kind"] = pod["kind"];
  const json st = pod.value("status", json::object());
  json status = pick(st, {"phase"});
  for (const char* list : {"initContainerStatuses", "containerStatuses"}) {
    if (!st.contains(list)) continue;
    json cs = json::array();
    for (const auto& c : st[list]) {
      json e = pick(c, {"name"});
      if (c.contains("state") && c["state"].contains("terminated"))
        e["state"]["terminated"] = pick(c["state"]["terminated"], {"exitCode", "message", "reason"});
      cs.push_back(e);
    }
    status[list] = cs;
  }
  out["status"] = status;
  pod = std::move(out);
}

}  // namespace bo::reconcile
