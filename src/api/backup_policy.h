// BackupPolicy (backup.si.dev/v1alpha1): the typed spec, read from the
// object the API server stored (defaults applied there, and again here so a
// spec written without the CRD's defaults reads the same), and its
// validation into machine-readable reasons that name the field.
#pragma once
#include <chrono>
#include <expected>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/redaction.h"

namespace bo::api {

using json = nlohmann::json;

inline constexpr const char* kGroup = "backup.si.dev";
inline constexpr const char* kVersion = "v1alpha1";
inline constexpr const char* kApiVersion = "backup.si.dev/v1alpha1";

// WAL-G keys every storage Secret must hold (POLICY.md §3).
// The Databasus release the operator runs by default. By version: the tag, which
// public deployments pin (databasus/databasus:v3.51.0, amd64 and arm64).
inline constexpr const char* kDatabasusImage = "databasus/databasus:v3.51.0";

// True when an image reference names a version or a digest: a digest
// (@sha256:...) or a tag other than "latest" after the last path component.
[[nodiscard]] bool image_is_pinned(const std::string& image);

inline const std::vector<std::string> kRequiredStorageKeys = {"WALG_S3_PREFIX", "WALG_AWS_ACCESS_KEY_ID",
                                                              "WALG_AWS_SECRET_ACCESS_KEY", "WALG_AWS_ENDPOINT"};

struct BackupPolicySpec {
  std::string profile = "supabase-self-hosted";
  std::string environment = "production";
  std::vector<std::string> addons = {"supabase-walg", "databasus"};
  bool suspend = false;

  struct Database {
    std::string host;
    int port = 5432;
    std::string name = "postgres";
    std::string credentials_secret;  // empty: none
    std::string username_key = "username";
    std::string password_key = "password";
    // Where the server keeps its data: backup Jobs mount this claim read-only
    // at mount_path, which must be the server's data_directory (or hold it),
    // because wal-g backup-push reads the files itself (a claim is per node:
    // Jobs are placed beside the database's pod, see pod_labels).
    struct DataVolume {
      std::string claim_name;  // empty: not configured (Ready=False)
      std::string mount_path = "/var/lib/postgresql/data";
      std::string sub_path;
    } data_volume;
    bool has_data_volume = false;  // spec.database.dataVolume is present
    // Or: the StatefulSet/Deployment running the database (same namespace).
    // The operator finds its running pod, the claim and mount of the data
    // directory, the uid/gid and the node from it (reconcile/data_volume.h).
    struct WorkloadRef {
      std::string kind;  // StatefulSet | Deployment
      std::string name;  // empty: no workloadRef
    } workload_ref;
    bool has_workload_ref = false;  // spec.database.workloadRef is present
    // With workloadRef: the PostgreSQL container's name (empty: the one
    // whose mount holds the data directory).
    std::string container;
    // The uid/gid PostgreSQL runs as: Jobs run as them to read its 0700 files.
    // Required with dataVolume; with workloadRef only when the pod's
    // securityContext does not say.
    int64_t run_as_user = -1, run_as_group = -1;  // -1: not set
    // Labels of the database's pods: Jobs get a required pod affinity to them
    // on kubernetes.io/hostname (a ReadWriteOnce claim attaches to one node).
    std::map<std::string, std::string> pod_labels;
    // How long a backup Job waits for the WAL up to its finish LSN to reach
    // storage (archiving is asynchronous) before recording the backup as not
    // restorable.
    long wal_wait_seconds = 300;
  } database;

  struct Storage {
    std::string secret;
    std::string encryption_secret;
    std::string encryption_key = "WALG_LIBSODIUM_KEY";
  } storage;

  struct Schedule {
    std::string backup = "0 * * * *";
    std::string full_backup = "0 2 * * *";
    std::string time_zone = "UTC";
    long starting_deadline_seconds = 900;
    std::string concurrency_policy = "Forbid";
    // wal-g's WALG_DELTA_ORIGIN: LATEST chains each delta on the previous
    // backup, LATEST_FULL bases every delta on the newest full.
    std::string delta_origin = "LATEST";
  } schedule;

  struct Retention {
    int daily = 7, weekly = 4, monthly = 3;
  } retention;

  // Verifications and drills restore into a scratch PostgreSQL in a
  // non-production namespace and query it (reconcile/scratch.h).
  struct Verification {
    bool enabled = true;
    std::string schedule = "0 4 * * *";
    std::string target_namespace;
    // The scratch instance runs this image (the database's own; empty: the
    // image of the database workload's container, when known).
    std::string image;
    // A Secret in the target namespace with the storage settings (the keys of
    // spec.storage.secretRef, read-only credentials recommended) and the
    // decryption key: production Secrets are never copied there.
    std::string storage_secret;
    std::string storage_class;  // empty: the cluster's default
    std::string storage_size;   // empty: from the backup's uncompressed size
    std::string keep_failed_for = "24h";  // a failed instance's claim and Job stay this long
    long timeout_seconds = 7200;          // fetch, recovery and checks together
    // SQL checks every scheduled verification runs (RestoreRequest
    // spec.validation items: name, sql, expect, timeoutSeconds).
    json checks = json::array();
    // Where verifications and drills may restore besides target_namespace
    // (anyone who may create a RestoreRequest otherwise picks the namespace
    // the operator runs Jobs in and may freeze).
    std::vector<std::string> allowed_target_namespaces;
    // The images a RestoreRequest's spec.validation[].image may name, compared
    // as written (no registry or tag defaulting): empty allows none.
    std::vector<std::string> check_images;
  } verification;

  struct Offsite {
    std::string secret;  // empty: no offsite copy configured
    std::string schedule = "30 4 * * *";
    int immutable_days = 30;
  } offsite;

  std::string drill_interval = "2160h";

  struct JobTemplate {
    std::string image;
    std::string image_pull_policy;
    json resources;
    std::string service_account;
    json node_selector;
    json tolerations;
    int backoff_limit = 2;
    long active_deadline_seconds = 3600;
    long ttl_seconds_after_finished = 86400;
  } job_template;

  // Databasus, the operators' private window on backups (the databasus addon).
  struct Databasus {
    // Pinned, as a Databasus chart user pins image.tag or image.digest (its
    // chart: deploy/helm/values.yaml); the validation refuses :latest and no tag.
    std::string image = std::string(kDatabasusImage);
    std::string storage_size = "1Gi";
    std::string storage_class;  // empty: the cluster's default
    json resources;
    // A Databasus administrator (email and password keys): the sidecar signs in
    // with it to register the policy's database. Empty: no registration.
    std::string admin_secret;
    std::string admin_email_key = "email";
    std::string admin_password_key = "password";
  } databasus;

  // PaaS-state bundles (POLICY.md §1–§2): the state root on a claim, bundled
  // per context on a schedule, encrypted under a key from a Secret, stored
  // next to the WAL-G backups (or on another claim).
  struct PaasState {
    bool enabled = false;  // spec.paasState is present
    std::string claim_name;
    std::string sub_path;
    std::vector<std::string> contexts;  // names, or {"*"}: every context
    bool include_releases = true;
    bool forensic_cache = false;
    std::string schedule = "15 * * * *";
    std::string key_secret;  // default: the storage encryption Secret
    std::string key_key = "BUNDLE_KEY";
    std::string destination_claim;  // empty: S3, beside the WAL-G backups
    std::string destination_path = "paas-state";
    [[nodiscard]] bool all_contexts() const { return contexts.size() == 1 && contexts[0] == "*"; }
  } paas_state;

  struct HistoryLimits {
    int successful = 3, failed = 3;
  } history_limits;

  [[nodiscard]] bool has_addon(const std::string& a) const;
};

// A reason a policy cannot be acted on: `reason` is the condition reason
// (InvalidSchedule, InvalidTimeZone, SecretNotFound, ...), `field` the spec
// path it concerns.
struct Problem {
  std::string reason;
  std::string field;
  std::string message;
};

// Reads spec; the Problem names the first field of the wrong shape (reason InvalidSpec).
[[nodiscard]] std::expected<BackupPolicySpec, Problem> parse_backup_policy_spec(const json& spec);

// Namespaces no verification, drill or restore may target, whatever a policy
// lists: kube-system, and the operator's own (empty: unknown, only kube-system).
[[nodiscard]] bool target_always_refused(const std::string& target_namespace, const std::string& operator_namespace);

// Checks what the schema cannot: cron syntax and reachability, the time zone,
// the verification targets (never kube-system or `operator_namespace`), the
// drill interval. Empty when valid.
[[nodiscard]] std::vector<Problem> validate(const BackupPolicySpec& spec, const std::string& policy_namespace,
                                            const std::string& operator_namespace = "");

// One value of a Secret as the operator holds it. Every value is known by
// whether it is empty (MissingSecretKey) and by its Fingerprint (redaction of
// Job output); the plaintext is kept only where the operator itself uses it
// (used_value_keys below). A value built from a string holds it (plans and
// tests build them so).
class SecretValue {
 public:
  SecretValue() = default;
  SecretValue(std::string value)
      : fingerprint_(Fingerprint::of(value)), value_(std::make_shared<const std::string>(std::move(value))) {}
  SecretValue(const char* value) : SecretValue(std::string(value)) {}
  // Known only by its emptiness and fingerprint.
  [[nodiscard]] static SecretValue fingerprint_only(std::string_view value) {
    SecretValue v;
    v.fingerprint_ = Fingerprint::of(value);
    return v;
  }
  [[nodiscard]] bool empty() const { return fingerprint_.size() == 0; }
  [[nodiscard]] bool held() const { return value_ != nullptr; }
  // The plaintext, or "" when it is not held.
  [[nodiscard]] const std::string& value() const {
    static const std::string kNone;
    return value_ ? *value_ : kNone;
  }
  [[nodiscard]] const Fingerprint& fingerprint() const { return fingerprint_; }

 private:
  // 56 bytes: a 10 000-policy fleet holds 50 000 of them. Copies (each
  // reconcile's SecretData) share the one plaintext rather than copy it.
  Fingerprint fingerprint_;
  std::shared_ptr<const std::string> value_;
};

// The Secret contents the policy depends on, by name; values are consulted
// for presence, the endpoint scheme and the archiving probe's credentials
// only, never copied or reported.
using SecretData = std::map<std::string, std::map<std::string, SecretValue>>;  // name -> key -> value

// Which values of which Secrets (name -> keys) the operator reads itself: the
// database credentials (the WAL archiving probe connects with them) and
// WALG_AWS_ENDPOINT of the storage and offsite Secrets (its scheme must be
// https). Every other value is only hidden from output, so only fingerprinted.
[[nodiscard]] std::map<std::string, std::set<std::string>> used_value_keys(const json& spec);

// SecretNotFound / MissingSecretKey / EncryptionRequired / InsecureEndpoint. Empty when all resolve.
[[nodiscard]] std::vector<Problem> check_secrets(const BackupPolicySpec& spec, const SecretData& secrets);

// The names of the Secrets a spec refers to (storage, encryption, database
// credentials, offsite), read from the raw spec so an invalid one still says.
[[nodiscard]] std::vector<std::string> referenced_secrets(const json& spec);

}  // namespace bo::api
