#include "reconcile/continuous_archiving.h"

#include "common/timefmt.h"
#include "reconcile/conditions.h"

namespace bo::reconcile {

ArchiveConnection archive_connection(const api::BackupPolicySpec& spec, const api::SecretData& secrets) {
  const auto& db = spec.database;
  if (db.credentials_secret.empty())
    return {std::nullopt,
            "spec.database.credentialsSecretRef.name is not set: the operator reads archive_mode, archive_command "
            "and pg_stat_archiver with the database's credentials"};
  auto s = secrets.find(db.credentials_secret);
  if (s == secrets.end())
    return {std::nullopt, "Secret " + db.credentials_secret + " (spec.database.credentialsSecretRef.name) does not exist"};
  auto user = s->second.find(db.username_key);
  auto password = s->second.find(db.password_key);
  if (user == s->second.end() || user->second.empty())
    return {std::nullopt, "Secret " + db.credentials_secret + " has no key '" + db.username_key +
                              "' (spec.database.credentialsSecretRef.usernameKey)"};
  if (password == s->second.end())
    return {std::nullopt, "Secret " + db.credentials_secret + " has no key '" + db.password_key +
                              "' (spec.database.credentialsSecretRef.passwordKey)"};
  postgres::ConnectionParams p;
  p.host = db.host;
  p.port = db.port;
  p.dbname = db.name;
  p.user = user->second.value();
  p.password = password->second.value();
  return {std::move(p), ""};
}

void apply_continuous_archiving(nlohmann::json& status, nlohmann::json& conditions, const api::BackupPolicySpec& spec,
                                const api::SecretData& secrets,
                                const std::optional<postgres::ArchiveObservation>& observation, int64_t generation,
                                SysTime now) {
  auto cond = [&](const std::string& st, const std::string& reason, const std::string& message) {
    set_condition(conditions, postgres::kConditionType, st, reason, message, generation, now);
  };
  const ArchiveConnection conn = archive_connection(spec, secrets);
  if (!conn.params) {
    cond("False", "NoCredentials", conn.problem);
    status.erase("continuousArchiving");
    return;
  }
  if (!observation) {
    cond("Unknown", "ProbePending",
         "the first archiving probe of " + spec.database.host + ":" + std::to_string(spec.database.port) +
             " has not finished yet");
    return;
  }
  const postgres::ArchivingCondition c = postgres::evaluate_archiving(*observation);
  cond(c.status, c.reason, c.message);
  if (!observation->error.empty()) return;  // what was last read stays; the condition says why it is not current
  const auto& o = *observation;
  nlohmann::json ca = {{"archiveMode", o.archive_mode},
                       {"archiveCommand", postgres::redact_command(o.archive_command)},
                       {"dataDirectory", o.data_directory},
                       {"failedCount", o.failed_count},
                       {"observedAt", format_rfc3339(o.observed_at)}};
  if (!o.last_archived_wal.empty()) ca["lastArchivedWAL"] = o.last_archived_wal;
  if (o.last_archived_time) ca["lastArchivedTime"] = format_rfc3339(*o.last_archived_time);
  if (!o.last_failed_wal.empty()) ca["lastFailedWAL"] = o.last_failed_wal;
  if (o.last_failed_time) ca["lastFailedTime"] = format_rfc3339(*o.last_failed_time);
  status["continuousArchiving"] = std::move(ca);
}

}  // namespace bo::reconcile
