// The scratch instance of a verification or drill (issue 16; POLICY.md §5,
// §9): a throwaway PostgreSQL in the request's non-production target
// namespace, restored from the backup and queried before anything is called
// verified. Pure: the manifests from typed inputs, and the Job's result read
// back into status.
//
// One Job, `<request>-scratch`, beside a claim and a NetworkPolicy of the
// same name. Its init container (the operator's image) copies the operator's
// binary, wal-g and their shared objects into an emptyDir; its one container
// runs the database's own image with that binary as its command (`run-job
// verify`, src/jobs/verify.h): fetch, recover, start the image's postgres
// listening on a Unix socket only, run the checks over it, stop. Nothing
// else can reach the server (no TCP listener, and the NetworkPolicy admits
// no ingress); it never archives (archive_mode=off), so it cannot write to
// production's storage; it reads storage with a Secret the user keeps in
// the target namespace (spec.verification.storageSecretRef), never a copy of
// production's. This is CloudNativePG's pattern (an init container copies
// its instance manager into the PostgreSQL image's pod), with an explicit
// dynamic loader because our binary is not static.
#pragma once
#include <cstdint>
#include <expected>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/backup_policy.h"
#include "api/restore_request.h"

namespace bo::reconcile {

inline constexpr const char* kScratchContainer = "postgres";
inline constexpr const char* kScratchToolsDir = "/tools";
inline constexpr const char* kScratchDataMount = "/var/lib/postgresql/scratch";
inline constexpr const char* kScratchSocketDir = "/run/scratch";
inline constexpr const char* kLabelScratch = "scratch";  // the action label of scratch Jobs

struct ScratchInputs {
  std::string request, request_ns, request_uid;  // the RestoreRequest
  std::string target_ns;
  std::string policy;
  std::string purpose;  // verification | drill
  std::string backup_id, checksum, point_in_time;
  int64_t uncompressed_bytes = 0;  // the backup's, from the catalog (0: unknown)
  api::BackupPolicySpec::Verification verification;
  std::string profile;
  int64_t run_as_user = -1, run_as_group = -1;
  std::string operator_image, database_image;
  std::string image_pull_policy;
  std::vector<std::string> storage_keys;  // names of the verification storage Secret's keys
  std::string encryption_key;             // the decryption key's name in the Secret
  std::vector<api::ValidationCheck> checks;  // the user's SQL checks
  nlohmann::json node_selector, tolerations;
};

struct ScratchObjects {
  nlohmann::json claim, network_policy, job;
};

// The container securityContext Pod Security "restricted" asks for.
[[nodiscard]] nlohmann::json restricted_container_security(bool read_only_root = true);

// The pod of a Job that runs the operator's own binary in the database's
// image: an init container (the operator's image, `run-job install-tools`)
// copies the binary, wal-g and their shared objects into an emptyDir, and the
// one container (the database's image) runs `run-job <action>` through the
// copied loader. A scratch instance and an in-place restore both run so.
struct ToolsPod {
  std::string operator_image, database_image, image_pull_policy;
  std::string action;                             // the run-job action
  std::string container = "postgres";
  int64_t run_as_user = -1, run_as_group = -1;
  // fsGroup makes a fresh claim writable; never on a database's own claim (a
  // kubelet would make its 0700 data directory group-accessible, which
  // PostgreSQL refuses).
  bool fs_group = false;
  nlohmann::json env = nlohmann::json::array();  // the main container's
  nlohmann::json data_source;                    // the "data" volume's source ({"persistentVolumeClaim": …})
  std::string data_mount;                        // where "data" is mounted
  std::string node_name;                         // pinned there when set (a ReadWriteOnce claim's node)
  nlohmann::json node_selector, tolerations;
};
[[nodiscard]] nlohmann::json tools_pod(const ToolsPod& p);

// The labels of a RestoreRequest's Jobs and objects (the controller finds them by these).
[[nodiscard]] nlohmann::json restore_labels(const std::string& policy, const std::string& request,
                                            const std::string& request_ns, const std::string& action);

// An env var from a Secret's key, by reference.
[[nodiscard]] nlohmann::json secret_key_env(const std::string& name, const std::string& secret, const std::string& key,
                                            bool optional = false);

// wal-g's storage settings by reference: each WALG_*/AWS_* key of the
// storage Secret (WAL-G's required ones too, optional where not required),
// and the decryption key from `key_secret` when it names one.
[[nodiscard]] nlohmann::json walg_storage_env(std::vector<std::string> keys, const std::string& storage_secret,
                                              const std::string& key_secret, const std::string& key_name);

[[nodiscard]] std::string scratch_name(const std::string& request);
// The claim's size: `override` when set; else 1.5 × the uncompressed size
// plus 1 GiB for WAL replay, rounded up to whole GiB (at least 2 GiB); 10 GiB
// when the size is unknown.
[[nodiscard]] std::string scratch_claim_size(int64_t uncompressed_bytes, const std::string& override_size);
[[nodiscard]] ScratchObjects build_scratch(const ScratchInputs& in);

// What a built-in check asks (status.validation[].query): the scratch
// command runs it; these words say what it proved.
[[nodiscard]] std::string builtin_check_query(const std::string& name);

// The scratch Job's termination message (src/jobs/verify.h's contract), in
// status form: one entry per check {name, query, passed, durationMs, output}.
struct ScratchResult {
  bool passed = false;      // recovered and every check passed
  bool recovered = false;
  double recovery_seconds = 0;
  std::string system_identifier, replay_lsn;
  std::string error;  // a failure outside the checks (fetch, checksum, recovery)
  nlohmann::json checks = nlohmann::json::array();
  [[nodiscard]] std::string failed_checks() const;  // "a, b"
};
// `builtins`: the built-in checks the result must hold (an in-place
// restore's check Job runs no recovery-target check: it meets a running server).
[[nodiscard]] std::expected<ScratchResult, std::string> parse_scratch_result(
    const std::string& message, const std::vector<api::ValidationCheck>& user_checks,
    const std::vector<std::string>& builtins = {"recovered", "recovery-target", "system-identifier"});

}  // namespace bo::reconcile
