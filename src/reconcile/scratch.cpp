#include "reconcile/scratch.h"

#include <algorithm>
#include <cmath>

#include "kube/names.h"
#include "reconcile/backup_jobs.h"
#include "reconcile/restore_plan.h"

namespace bo::reconcile {
namespace {

using json = nlohmann::json;

constexpr int64_t kGiB = int64_t{1} << 30;

// Built-in checks the scratch command always runs, and what each proves.
struct Builtin {
  const char* name;
  const char* query;
};
constexpr Builtin kBuiltins[] = {
    {"recovered", "SELECT NOT pg_is_in_recovery(); then a write (CREATE TEMP TABLE): recovery ended and the server accepts writes"},
    {"recovery-target",
     "pg_last_wal_replay_lsn() >= the stop sentinel's FinishLSN (to the backup's end), or recovery stopped at "
     "pointInTime"},
    {"system-identifier", "SELECT system_identifier FROM pg_control_system() = the stop sentinel's SystemIdentifier"},
    {"supabase-schemas", "schemas auth and storage exist; SELECT count(*) FROM auth.users, storage.buckets, storage.objects"},
    {"writes-released",
     "after every other check passed: ALTER SYSTEM RESET default_transaction_read_only; SELECT pg_reload_conf() "
     "(the in-place restore held writes until then)"},
};

}  // namespace

json secret_key_env(const std::string& name, const std::string& secret, const std::string& key, bool optional) {
  json ref = {{"name", secret}, {"key", key}};
  if (optional) ref["optional"] = true;
  return {{"name", name}, {"valueFrom", {{"secretKeyRef", ref}}}};
}

json restricted_container_security(bool read_only_root) {
  return {{"allowPrivilegeEscalation", false},
          {"readOnlyRootFilesystem", read_only_root},
          {"runAsNonRoot", true},
          {"capabilities", {{"drop", {"ALL"}}}},
          {"seccompProfile", {{"type", "RuntimeDefault"}}}};
}

std::string scratch_name(const std::string& request) { return bounded_name(request + "-scratch"); }

std::string scratch_claim_size(int64_t uncompressed_bytes, const std::string& override_size) {
  if (!override_size.empty()) return override_size;
  if (uncompressed_bytes <= 0) return "10Gi";
  const double want = static_cast<double>(uncompressed_bytes) * 1.5 + static_cast<double>(kGiB);
  const auto gib = std::max<int64_t>(2, static_cast<int64_t>(std::ceil(want / static_cast<double>(kGiB))));
  return std::to_string(gib) + "Gi";
}

std::string builtin_check_query(const std::string& name) {
  for (const auto& b : kBuiltins)
    if (name == b.name) return b.query;
  return "";
}

json walg_storage_env(std::vector<std::string> keys, const std::string& storage_secret, const std::string& key_secret,
                      const std::string& key_name) {
  for (const auto& k : api::kRequiredStorageKeys)
    if (std::find(keys.begin(), keys.end(), k) == keys.end()) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  const auto& required = api::kRequiredStorageKeys;
  json env = json::array();
  for (const auto& k : keys) {
    if (!(k.starts_with("WALG_") || k.starts_with("AWS_")) || k == "WALG_DELTA_MAX_STEPS" || k == "WALG_DELTA_ORIGIN" ||
        k == "WALG_LIBSODIUM_KEY")
      continue;
    env.push_back(secret_key_env(k, storage_secret, k, std::find(required.begin(), required.end(), k) == required.end()));
  }
  if (!key_secret.empty() && !key_name.empty()) env.push_back(secret_key_env("WALG_LIBSODIUM_KEY", key_secret, key_name, false));
  return env;
}

json tools_pod(const ToolsPod& p) {
  const std::string tools = kScratchToolsDir;
  json init = {{"name", "tools"},
               {"image", p.operator_image},
               {"args", {"run-job", "install-tools"}},
               {"env", {{{"name", "TOOLS_DIR"}, {"value", tools}}}},
               {"terminationMessagePath", "/dev/termination-log"},
               {"terminationMessagePolicy", "FallbackToLogsOnError"},
               {"volumeMounts", {{{"name", "tools"}, {"mountPath", tools}}}},
               {"securityContext", restricted_container_security(true)}};
  json container = {{"name", p.container},
                    {"image", p.database_image},
                    {"command", {tools + "/ld.so", "--library-path", tools + "/lib", tools + "/bin/backup-operator",
                                 "run-job", p.action}},
                    {"env", p.env},
                    {"terminationMessagePath", "/dev/termination-log"},
                    {"terminationMessagePolicy", "FallbackToLogsOnError"},
                    {"volumeMounts", {{{"name", "tools"}, {"mountPath", tools}, {"readOnly", true}},
                                      {{"name", "run"}, {"mountPath", kScratchSocketDir}},
                                      {{"name", "data"}, {"mountPath", p.data_mount}}}},
                    {"securityContext", restricted_container_security(true)}};
  if (!p.image_pull_policy.empty()) {
    init["imagePullPolicy"] = p.image_pull_policy;
    container["imagePullPolicy"] = p.image_pull_policy;
  }
  json security = {{"runAsNonRoot", true},
                   {"runAsUser", p.run_as_user},
                   {"runAsGroup", p.run_as_group},
                   {"seccompProfile", {{"type", "RuntimeDefault"}}}};
  if (p.fs_group) {
    security["fsGroup"] = p.run_as_group;
    security["fsGroupChangePolicy"] = "OnRootMismatch";
  }
  json data = p.data_source;
  data["name"] = "data";
  json pod = {{"restartPolicy", "Never"},
              {"automountServiceAccountToken", false},
              {"enableServiceLinks", false},
              {"securityContext", security},
              {"initContainers", {init}},
              {"containers", {container}},
              {"volumes", {{{"name", "tools"}, {"emptyDir", json::object()}},
                           {{"name", "run"}, {"emptyDir", {{"medium", "Memory"}, {"sizeLimit", "64Mi"}}}},
                           data}}};
  if (!p.node_name.empty()) {
    // As backup Jobs are pinned: by node name (the claim is attached there).
    json term = {{"matchFields", {{{"key", "metadata.name"}, {"operator", "In"}, {"values", {p.node_name}}}}}};
    pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] =
        json::array({term});
  }
  if (p.node_selector.is_object() && !p.node_selector.empty()) pod["nodeSelector"] = p.node_selector;
  if (p.tolerations.is_array() && !p.tolerations.empty()) pod["tolerations"] = p.tolerations;
  return pod;
}

json restore_labels(const std::string& policy, const std::string& request, const std::string& request_ns,
                    const std::string& action) {
  return {{"app.kubernetes.io/managed-by", kManagedBy},
          {"app.kubernetes.io/name", "backup-operator"},
          {kLabelPolicy, kube::label_value(policy)},
          {kLabelService, "supabase-walg-restore"},
          {kLabelAction, action},
          {kLabelRestoreRequest, kube::label_value(request)},
          {kLabelRestoreNamespace, request_ns}};
}

ScratchObjects build_scratch(const ScratchInputs& in) {
  const std::string name = scratch_name(in.request);
  const json labels = restore_labels(in.policy, in.request, in.request_ns, kLabelScratch);
  auto meta = [&] { return json{{"name", name}, {"namespace", in.target_ns}, {"labels", labels}}; };
  ScratchObjects out;

  json claim_spec = {{"accessModes", {"ReadWriteOnce"}},
                     {"resources", {{"requests", {{"storage", scratch_claim_size(in.uncompressed_bytes,
                                                                                 in.verification.storage_size)}}}}}};
  if (!in.verification.storage_class.empty()) claim_spec["storageClassName"] = in.verification.storage_class;
  out.claim = {{"apiVersion", "v1"}, {"kind", "PersistentVolumeClaim"}, {"metadata", meta()}, {"spec", claim_spec}};

  // No ingress at all: the checks run inside the pod, over the Unix socket.
  out.network_policy = {{"apiVersion", "networking.k8s.io/v1"},
                        {"kind", "NetworkPolicy"},
                        {"metadata", meta()},
                        {"spec", {{"podSelector", {{"matchLabels", labels}}},
                                  {"policyTypes", {"Ingress"}},
                                  {"ingress", json::array()}}}};

  const std::string tools = kScratchToolsDir;
  json env = json::array({{{"name", "TOOLS_DIR"}, {"value", tools}},
                          {{"name", "PGDATA"}, {"value", std::string(kScratchDataMount) + "/pgdata"}},
                          {{"name", "SCRATCH_SOCKET_DIR"}, {"value", kScratchSocketDir}},
                          {{"name", "BACKUP_ID"}, {"value", in.backup_id}},
                          {{"name", "BACKUP_CHECKSUM"}, {"value", in.checksum}},
                          {{"name", "VERIFY_PROFILE"}, {"value", in.profile}},
                          {{"name", "RECOVERY_DEADLINE_SECONDS"}, {"value", std::to_string(in.verification.timeout_seconds)}},
                          {{"name", "RESTORE_REQUEST"}, {"value", in.request_ns + "/" + in.request}},
                          {{"name", "TARGET_NAMESPACE"}, {"value", in.target_ns}}});
  if (!in.point_in_time.empty()) env.push_back({{"name", "POINT_IN_TIME"}, {"value", in.point_in_time}});
  json checks = json::array();
  for (const auto& c : in.checks) {
    json j = {{"name", c.name}, {"sql", c.sql}, {"timeoutSeconds", c.timeout_seconds}};
    if (c.expect) j["expect"] = *c.expect;
    checks.push_back(j);
  }
  env.push_back({{"name", "VERIFY_CHECKS"}, {"value", checks.dump()}});
  // Storage, by reference to the target namespace's own Secret: the WAL-G keys
  // it has (WAL-G's required ones must be there too).
  for (auto& e : walg_storage_env(in.storage_keys, in.verification.storage_secret,
                                  in.encryption_key.empty() ? "" : in.verification.storage_secret, in.encryption_key))
    env.push_back(std::move(e));
  ToolsPod tp;
  tp.operator_image = in.operator_image;
  tp.database_image = in.database_image;
  tp.image_pull_policy = in.image_pull_policy;
  tp.action = "verify";
  tp.container = kScratchContainer;
  tp.run_as_user = in.run_as_user;
  tp.run_as_group = in.run_as_group;
  tp.fs_group = true;  // a fresh claim
  tp.env = env;
  tp.data_source = {{"persistentVolumeClaim", {{"claimName", name}}}};
  tp.data_mount = kScratchDataMount;
  tp.node_selector = in.node_selector;
  tp.tolerations = in.tolerations;
  const json pod = tools_pod(tp);
  out.job = {{"apiVersion", "batch/v1"},
             {"kind", "Job"},
             {"metadata", meta()},
             {"spec", {{"backoffLimit", 0},
                       {"activeDeadlineSeconds", in.verification.timeout_seconds},
                       {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod}}}}}};
  return out;
}

std::string ScratchResult::failed_checks() const {
  std::string out;
  for (const auto& c : checks)
    if (!c.value("passed", false)) out += (out.empty() ? "" : ", ") + c.value("name", std::string("?"));
  return out;
}

std::expected<ScratchResult, std::string> parse_scratch_result(const std::string& message,
                                                                const std::vector<api::ValidationCheck>& user_checks,
                                                                const std::vector<std::string>& builtins) {
  const json t = json::parse(message, nullptr, false);
  if (!t.is_object()) return std::unexpected("the scratch Job's result is not a JSON object");
  ScratchResult r;
  auto text = [&](const char* k) {
    const auto it = t.find(k);
    return it != t.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  r.error = text("error");
  r.system_identifier = text("systemIdentifier");
  r.replay_lsn = text("replayLsn");
  if (auto it = t.find("recovered"); it != t.end() && it->is_boolean()) r.recovered = it->get<bool>();
  if (auto it = t.find("recoverySeconds"); it != t.end() && it->is_number()) r.recovery_seconds = it->get<double>();
  const json reported = t.value("checks", json::array());
  if (!reported.is_array()) return std::unexpected("the scratch Job's result.checks is not a list");
  auto user_sql = [&](const std::string& name) -> const api::ValidationCheck* {
    for (const auto& c : user_checks)
      if (c.name == name) return &c;
    return nullptr;
  };
  bool all = true;
  std::vector<std::string> seen;
  for (const auto& c : reported) {
    if (!c.is_object() || !c.contains("name") || !c["name"].is_string()) continue;
    const std::string name = c["name"].get<std::string>();
    const bool passed = c.value("passed", false) == true;
    const auto* user = user_sql(name);
    json entry = {{"name", name},
                  {"query", user ? user->sql : builtin_check_query(name)},
                  {"passed", passed},
                  {"durationMs", c.contains("ms") && c["ms"].is_number() ? c["ms"].get<double>() : 0.0},
                  {"output", c.contains("output") && c["output"].is_string() ? c["output"].get<std::string>() : ""}};
    if (user && user->expect) entry["expect"] = *user->expect;
    r.checks.push_back(entry);
    seen.push_back(name);
    all = all && passed;
  }
  // What the result must hold: the always-run built-ins and every user check.
  std::vector<std::string> required = builtins;
  for (const auto& c : user_checks) required.push_back(c.name);
  if (r.error.empty())
    for (const auto& name : required)
      if (std::find(seen.begin(), seen.end(), name) == seen.end()) {
        const auto* user = user_sql(name);
        r.checks.push_back({{"name", name},
                            {"query", user ? user->sql : builtin_check_query(name)},
                            {"passed", false},
                            {"durationMs", 0.0},
                            {"output", "not reported by the scratch instance"}});
        all = false;
      }
  r.passed = r.error.empty() && r.recovered && all && !r.checks.empty();
  return r;
}

}  // namespace bo::reconcile
