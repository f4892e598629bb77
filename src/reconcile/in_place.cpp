#include "reconcile/in_place.h"

#include <filesystem>

#include "reconcile/backup_jobs.h"
#include "reconcile/backup_policy_plan.h"
#include "reconcile/data_volume.h"
#include "reconcile/restore_plan.h"
#include "reconcile/scratch.h"

namespace bo::reconcile {
namespace {

using json = nlohmann::json;

json owner_ref(const InPlaceJobInputs& in) {
  return {{"apiVersion", api::kApiVersion}, {"kind", "RestoreRequest"}, {"name", in.request},
          {"uid", in.request_uid},          {"controller", true},       {"blockOwnerDeletion", true}};
}

json job_of(const InPlaceJobInputs& in, const std::string& name, const char* action, json pod, long deadline_seconds) {
  const json labels = restore_labels(in.policy, in.request, in.request_ns, action);
  // No TTL: the finished Job is what the request's status was read from, and
  // the finalizer removes it with the request.
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata", {{"name", name}, {"namespace", in.request_ns}, {"labels", labels},
                        {"ownerReferences", json::array({owner_ref(in)})}}},
          {"spec", {{"backoffLimit", 0},
                    {"activeDeadlineSeconds", std::max<long>(deadline_seconds, 1)},
                    {"template", {{"metadata", {{"labels", labels}}}, {"spec", std::move(pod)}}}}}};
}

json user_checks_env(const std::vector<api::ValidationCheck>& checks) {
  json out = json::array();
  for (const auto& c : checks) {
    json j = {{"name", c.name}, {"sql", c.sql}, {"timeoutSeconds", c.timeout_seconds}};
    if (c.expect) j["expect"] = *c.expect;
    out.push_back(j);
  }
  return out;
}

}  // namespace

bool in_place_request(const api::RestoreRequestSpec& spec, const std::string& request_namespace) {
  return spec.purpose == "restore" && spec.target_volume.claim_name.empty() &&
         (spec.target_namespace.empty() || spec.target_namespace == request_namespace);
}

api::InPlaceRecord InPlaceTarget::to_status() const {
  api::InPlaceRecord r;
  r.workload = api::InPlaceRecord::Workload{kind, name};
  r.claim = claim;
  r.data_path = data_path;
  r.aside_path = aside_path;
  r.run_as_user = run_as_user;
  r.run_as_group = run_as_group;
  r.image = database_image;
  if (!node_name.empty()) r.node_name = node_name;
  return r;
}

std::optional<InPlaceTarget> InPlaceTarget::from_status(const api::InPlaceRecord& s) {
  if (!s.workload) return std::nullopt;
  InPlaceTarget t;
  t.kind = s.workload->kind.value_or("");
  t.name = s.workload->name.value_or("");
  t.claim = s.claim.value_or("");
  t.data_path = s.data_path.value_or("");
  t.aside_path = s.aside_path.value_or("");
  t.run_as_user = s.run_as_user.value_or(-1);
  t.run_as_group = s.run_as_group.value_or(-1);
  t.database_image = s.image.value_or("");
  t.node_name = s.node_name.value_or("");
  if (t.kind.empty() || t.name.empty() || t.claim.empty()) return std::nullopt;
  return t;
}

std::expected<InPlaceTarget, api::Problem> in_place_target(const api::BackupPolicySpec& p, const json& policy_status,
                                                           const std::string& policy_name, const std::string& request) {
  const std::string policy = "BackupPolicy " + policy_name;
  if (!p.database.has_workload_ref || p.database.workload_ref.name.empty())
    return std::unexpected(api::Problem{
        "WorkloadRefRequired", "spec.database.workloadRef",
        policy + ": an in-place restore stops the database by scaling the workload that runs it, so "
                 "spec.database.workloadRef must name it (or restore into another claim with spec.target.dataVolume)"});
  const auto recorded = from_status(policy_status, data_volume_source(p));
  if (!recorded || recorded->claim_name.empty())
    return std::unexpected(api::Problem{
        "DataVolumeUnknown", "spec.database.workloadRef",
        policy + ": where " + p.database.workload_ref.kind + " " + p.database.workload_ref.name +
            " keeps its data is not known yet (status.dataVolume: the workload check has not found its running pod)"});
  InPlaceTarget t;
  t.kind = p.database.workload_ref.kind;
  t.name = p.database.workload_ref.name;
  t.claim = recorded->claim_name;
  t.node_name = recorded->node_name;
  // The data directory relative to the claim's root: the mount's subPath,
  // then the directory below the mount.
  namespace fs = std::filesystem;
  const fs::path mount = fs::path(recorded->mount_path).lexically_normal();
  const fs::path dir = fs::path(recorded->data_directory.empty() ? recorded->mount_path : recorded->data_directory)
                           .lexically_normal();
  const fs::path below = dir.lexically_relative(mount);
  if (below.empty() || *below.begin() == "..")
    return std::unexpected(api::Problem{
        "DataVolumeUnknown", "spec.database.workloadRef",
        policy + ": the data directory " + dir.string() + " is not under the claim's mount " + mount.string()});
  fs::path rel = fs::path(recorded->sub_path) / (below == "." ? fs::path() : below);
  t.data_path = rel.lexically_normal().string();
  if (t.data_path == "." ) t.data_path.clear();
  while (!t.data_path.empty() && t.data_path.back() == '/') t.data_path.pop_back();
  t.aside_path = (t.data_path.empty() ? std::string("backup-operator-aside") : t.data_path) + ".before-" + request;
  t.run_as_user = p.database.run_as_user > 0 ? p.database.run_as_user : recorded->run_as_user;
  t.run_as_group = p.database.run_as_group >= 0 ? p.database.run_as_group : recorded->run_as_group;
  if (t.run_as_user <= 0 || t.run_as_group < 0)
    return std::unexpected(api::Problem{
        "RunAsUserRequired", "spec.database.runAsUser",
        policy + ": the uid/gid PostgreSQL runs as is not known (PostgreSQL refuses root): set "
                 "spec.database.runAsUser and runAsGroup"});
  t.database_image = !p.verification.image.empty() ? p.verification.image : recorded->image;
  if (t.database_image.empty())
    return std::unexpected(api::Problem{
        "VerificationImageRequired", "spec.verification.image",
        policy + ": the database's image is not known: set spec.verification.image (an in-place restore recovers "
                 "the backup with the database's own PostgreSQL)"});
  return t;
}

std::string in_place_restore_job_name(const std::string& request) { return bounded_name(request + "-restore"); }

std::string in_place_check_job_name(const std::string& request, int attempt) {
  return bounded_name(request + (attempt <= 1 ? std::string("-check") : "-check-" + std::to_string(attempt)));
}

json build_in_place_restore_job(const InPlaceJobInputs& in) {
  const auto& s = *in.spec;
  const auto& t = in.target;
  json env = json::array({{{"name", "TOOLS_DIR"}, {"value", kScratchToolsDir}},
                          {{"name", "SCRATCH_SOCKET_DIR"}, {"value", kScratchSocketDir}},
                          {{"name", "RESTORE_VOLUME"}, {"value", kInPlaceVolumeMount}},
                          {{"name", "DATA_PATH"}, {"value", t.data_path}},
                          {{"name", "ASIDE_PATH"}, {"value", t.aside_path}},
                          {{"name", "DISCARD_CURRENT_DATA"}, {"value", in.discard_current_data ? "true" : "false"}},
                          {{"name", "UNCOMPRESSED_BYTES"}, {"value", std::to_string(in.uncompressed_bytes)}},
                          // Production starts refusing writes until the check Job releases them.
                          {{"name", "HOLD_WRITES"}, {"value", "true"}},
                          {{"name", "BACKUP_ID"}, {"value", in.backup_id}},
                          {{"name", "BACKUP_CHECKSUM"}, {"value", in.checksum}},
                          {{"name", "VERIFY_PROFILE"}, {"value", s.profile}},
                          {{"name", "RECOVERY_DEADLINE_SECONDS"}, {"value", std::to_string(s.verification.timeout_seconds)}},
                          // With the uid: the Job's marker on the claim tells this request's
                          // finished restore from a later request of the same name.
                          {{"name", "RESTORE_REQUEST"}, {"value", in.request_ns + "/" + in.request + " " + in.request_uid}}});
  if (!in.point_in_time.empty()) env.push_back({{"name", "POINT_IN_TIME"}, {"value", in.point_in_time}});
  for (auto& e : walg_storage_env(in.storage_keys, s.storage.secret, s.storage.encryption_secret, s.storage.encryption_key))
    env.push_back(std::move(e));
  ToolsPod tp;
  tp.operator_image = in.operator_image;
  tp.database_image = t.database_image;
  tp.image_pull_policy = s.job_template.image_pull_policy;
  tp.action = "restore-in-place";
  tp.container = kInPlaceContainer;
  tp.run_as_user = t.run_as_user;
  tp.run_as_group = t.run_as_group;
  tp.env = std::move(env);
  tp.data_source = {{"persistentVolumeClaim", {{"claimName", t.claim}}}};
  tp.data_mount = kInPlaceVolumeMount;
  tp.node_name = t.node_name;
  tp.node_selector = s.job_template.node_selector;
  tp.tolerations = s.job_template.tolerations;
  return job_of(in, in_place_restore_job_name(in.request), kLabelInPlaceRestore, tools_pod(tp),
                s.verification.timeout_seconds);
}

json build_in_place_check_job(const InPlaceJobInputs& in, int attempt, const std::string& system_identifier) {
  const auto& s = *in.spec;
  const auto& db = s.database;
  json env = json::array({{{"name", "PGHOST"}, {"value", db.host}},
                          {{"name", "PGPORT"}, {"value", std::to_string(db.port)}},
                          {{"name", "PGDATABASE"}, {"value", db.name}},
                          {{"name", "BACKUP_ID"}, {"value", in.backup_id}},
                          {{"name", "BACKUP_CHECKSUM"}, {"value", in.checksum}},
                          {{"name", "EXPECT_SYSTEM_IDENTIFIER"}, {"value", system_identifier}},
                          {{"name", "VERIFY_PROFILE"}, {"value", s.profile}},
                          {{"name", "READY_DEADLINE_SECONDS"}, {"value", std::to_string(s.verification.timeout_seconds)}},
                          {{"name", "RELEASE_WRITES"}, {"value", "true"}},
                          {{"name", "RESTORE_REQUEST"}, {"value", in.request_ns + "/" + in.request}}});
  env.push_back({{"name", "VERIFY_CHECKS"}, {"value", user_checks_env(in.checks).dump()}});
  if (!db.credentials_secret.empty()) {
    env.push_back(secret_key_env("PGUSER", db.credentials_secret, db.username_key));
    env.push_back(secret_key_env("PGPASSWORD", db.credentials_secret, db.password_key));
  }
  json container = {{"name", kCheckContainer},
                    {"image", in.operator_image},
                    {"args", {"run-job", "check-database"}},
                    {"env", env},
                    {"terminationMessagePath", "/dev/termination-log"},
                    {"terminationMessagePolicy", "FallbackToLogsOnError"},
                    {"volumeMounts", {{{"name", "tmp"}, {"mountPath", "/tmp"}}}},
                    {"securityContext", restricted_container_security()}};
  if (!s.job_template.image_pull_policy.empty()) container["imagePullPolicy"] = s.job_template.image_pull_policy;
  json pod = {{"restartPolicy", "Never"},
              {"automountServiceAccountToken", false},
              {"enableServiceLinks", false},
              {"securityContext", {{"runAsNonRoot", true}, {"runAsUser", 65532}, {"runAsGroup", 65532},
                                   {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
              {"containers", {container}},
              {"volumes", {{{"name", "tmp"}, {"emptyDir", json::object()}}}}};
  if (s.job_template.node_selector.is_object() && !s.job_template.node_selector.empty())
    pod["nodeSelector"] = s.job_template.node_selector;
  if (s.job_template.tolerations.is_array() && !s.job_template.tolerations.empty())
    pod["tolerations"] = s.job_template.tolerations;
  return job_of(in, in_place_check_job_name(in.request, attempt), kLabelCheckDatabase, pod,
                s.verification.timeout_seconds + 60);
}

std::string in_place_rollback(const InPlaceTarget& t, int64_t replicas, const std::string& aside_state) {
  const std::string where = t.data_path.empty() ? "the claim's root" : "\"" + t.data_path + "\"";
  std::string out = "to roll back: delete this RestoreRequest (which lifts the freeze), scale " + t.kind + " " + t.name +
                    " to 0, ";
  if (aside_state == "moved")
    out += "on claim " + t.claim + " replace " + where + " by \"" + t.aside_path +
           "\" (the data directory as it was before the restore), ";
  else if (aside_state == "discarded")
    out += "restore another backup (the data directory before the restore was deleted: spec.discardCurrentData), ";
  else
    out += "check claim " + t.claim + " (" + where + "; a copy of the data before the restore is at \"" + t.aside_path +
           "\" if the restore got as far as moving it), ";
  return out + "then scale it back to " + std::to_string(replicas);
}

}  // namespace bo::reconcile
