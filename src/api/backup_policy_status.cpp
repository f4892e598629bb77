#include "api/backup_policy_status.h"

#include "api/status_json.h"

namespace bo::api {
namespace {

using json = nlohmann::json;
using status_json::put;
using status_json::Reader;

RunRecord run_from_json(const json& o) {
  const Reader r(o);
  return {r.text("job"), r.text("action"), r.text("result"), r.text("completionTime"), r.text("message")};
}

json to_json(const RunRecord& v) {
  json o = json::object();
  put(o, "job", v.job);
  put(o, "action", v.action);
  put(o, "result", v.result);
  put(o, "completionTime", v.completion_time);
  put(o, "message", v.message);
  return o;
}

StateBundleRecord bundle_from_json(const json& o) {
  const Reader r(o);
  return {r.text("context"),   r.text("id"),   r.text("sha256"), r.integer("files"),
          r.integer("sizeBytes"), r.text("completionTime"), r.text("job")};
}

json to_json(const StateBundleRecord& v) {
  json o = json::object();
  put(o, "context", v.context);
  put(o, "id", v.id);
  put(o, "sha256", v.sha256);
  put(o, "files", v.files);
  put(o, "sizeBytes", v.size_bytes);
  put(o, "completionTime", v.completion_time);
  put(o, "job", v.job);
  return o;
}

}  // namespace

BackupRecord backup_record_from_json(const json& entry) {
  const Reader r(entry);
  BackupRecord b;
  b.id = r.text("id");
  b.checksum = r.text("checksum");
  b.type = r.text("type");
  b.base = r.text("base");
  b.full = r.text("full");
  b.delta_count = r.integer("deltaCount");
  b.start_lsn = r.text("startLSN");
  b.finish_lsn = r.text("finishLSN");
  b.restorable = r.boolean("restorable");
  b.not_restorable_reason = r.text("notRestorableReason");
  b.start_time = r.text("startTime");
  b.completion_time = r.text("completionTime");
  b.size_bytes = r.integer("sizeBytes");
  b.uncompressed_bytes = r.integer("uncompressedBytes");
  b.verified = r.boolean("verified");
  b.verified_by = r.text("verifiedBy");
  b.verified_marker = r.boolean("verifiedMarker");
  b.kept_for = r.texts("keptFor");
  b.job = r.text("job");
  return b;
}

json to_json(const BackupRecord& b) {
  json o = json::object();
  put(o, "id", b.id);
  put(o, "checksum", b.checksum);
  put(o, "type", b.type);
  put(o, "base", b.base);
  put(o, "full", b.full);
  put(o, "deltaCount", b.delta_count);
  put(o, "startLSN", b.start_lsn);
  put(o, "finishLSN", b.finish_lsn);
  put(o, "restorable", b.restorable);
  put(o, "notRestorableReason", b.not_restorable_reason);
  put(o, "startTime", b.start_time);
  put(o, "completionTime", b.completion_time);
  put(o, "sizeBytes", b.size_bytes);
  put(o, "uncompressedBytes", b.uncompressed_bytes);
  put(o, "verified", b.verified);
  put(o, "verifiedBy", b.verified_by);
  put(o, "verifiedMarker", b.verified_marker);
  if (b.kept_for) o["keptFor"] = *b.kept_for;
  put(o, "job", b.job);
  return o;
}

BackupPolicyStatus backup_policy_status_from_json(const json& status) {
  const Reader r(status);
  BackupPolicyStatus s;
  s.observed_generation = r.integer("observedGeneration");
  s.conditions = status_json::conditions_from_json(r.find("conditions"));
  s.last_schedule_time = r.text("lastScheduleTime");
  s.next_schedule_time = r.text("nextScheduleTime");
  if (const json* o = r.object("schedules")) {
    s.schedules.emplace();
    for (const auto& [action, mark] : o->items())
      if (mark.is_object()) (*s.schedules)[action] = ScheduleMark{Reader(mark).text("lastScheduleTime")};
  }
  if (const json* o = r.object("lastSuccessfulBackup")) {
    const Reader b(*o);
    s.last_successful_backup = BackupRef{b.text("id"), b.text("checksum"), b.text("type"), b.text("completionTime")};
  }
  if (const json* o = r.object("lastVerifiedBackup")) {
    const Reader b(*o);
    s.last_verified_backup = VerifiedBackupRef{b.text("id"),           b.text("checksum"),   b.text("type"),
                                               b.text("completionTime"), b.text("verifiedAt"), b.text("request")};
  }
  if (const json* o = r.object("lastVerification")) {
    const Reader v(*o);
    s.last_verification =
        VerificationOutcome{v.text("request"), v.text("result"), v.text("backupId"), v.text("completionTime"), v.text("message")};
  }
  if (const json* o = r.object("lastDrill")) {
    const Reader d(*o);
    s.last_drill = DrillOutcome{d.text("request"), d.text("backupId"), d.text("completionTime")};
  }
  if (const json* o = r.object("dataVolume")) s.data_volume = *o;
  if (const json* o = r.object("continuousArchiving")) s.continuous_archiving = *o;
  if (const json* o = r.object("lastOffsiteCopy")) {
    const Reader c(*o);
    OffsiteCopyRecord copy{c.text("id"), c.text("completionTime"), c.text("checksum"), c.text("immutableUntil"),
                           c.text("retentionMode"), std::nullopt, c.text("job")};
    if (const json* i = c.object("immutability"))
      copy.immutability = OffsiteCopyRecord::Immutability{Reader(*i).text("reason"), Reader(*i).text("message")};
    s.last_offsite_copy = std::move(copy);
  }
  if (const json* o = r.object("paasState")) s.paas_state = PaasStateStatus{Reader(*o).objects("bundles", bundle_from_json)};
  s.backups = r.objects("backups", backup_record_from_json);
  s.active_jobs = r.texts("activeJobs");
  s.missed_schedules = r.integer("missedSchedules");
  s.recent_runs = r.objects("recentRuns", run_from_json);
  return s;
}

json to_json(const BackupPolicyStatus& s) {
  json o = json::object();
  put(o, "observedGeneration", s.observed_generation);
  put(o, "conditions", s.conditions);
  put(o, "lastScheduleTime", s.last_schedule_time);
  put(o, "nextScheduleTime", s.next_schedule_time);
  if (s.schedules) {
    json m = json::object();
    for (const auto& [action, mark] : *s.schedules) {
      m[action] = json::object();
      put(m[action], "lastScheduleTime", mark.last_schedule_time);
    }
    o["schedules"] = std::move(m);
  }
  if (const auto& b = s.last_successful_backup) {
    json& v = o["lastSuccessfulBackup"] = json::object();
    put(v, "id", b->id);
    put(v, "checksum", b->checksum);
    put(v, "type", b->type);
    put(v, "completionTime", b->completion_time);
  }
  if (const auto& b = s.last_verified_backup) {
    json& v = o["lastVerifiedBackup"] = json::object();
    put(v, "id", b->id);
    put(v, "checksum", b->checksum);
    put(v, "type", b->type);
    put(v, "completionTime", b->completion_time);
    put(v, "verifiedAt", b->verified_at);
    put(v, "request", b->request);
  }
  if (const auto& l = s.last_verification) {
    json& v = o["lastVerification"] = json::object();
    put(v, "request", l->request);
    put(v, "result", l->result);
    put(v, "backupId", l->backup_id);
    put(v, "completionTime", l->completion_time);
    put(v, "message", l->message);
  }
  if (const auto& d = s.last_drill) {
    json& v = o["lastDrill"] = json::object();
    put(v, "request", d->request);
    put(v, "backupId", d->backup_id);
    put(v, "completionTime", d->completion_time);
  }
  put(o, "dataVolume", s.data_volume);
  put(o, "continuousArchiving", s.continuous_archiving);
  if (const auto& c = s.last_offsite_copy) {
    json& v = o["lastOffsiteCopy"] = json::object();
    put(v, "id", c->id);
    put(v, "completionTime", c->completion_time);
    put(v, "checksum", c->checksum);
    put(v, "immutableUntil", c->immutable_until);
    put(v, "retentionMode", c->retention_mode);
    if (c->immutability) {
      json& i = v["immutability"] = json::object();
      put(i, "reason", c->immutability->reason);
      put(i, "message", c->immutability->message);
    }
    put(v, "job", c->job);
  }
  if (s.paas_state) {
    json& p = o["paasState"] = json::object();
    if (s.paas_state->bundles) {
      json list = json::array();
      for (const auto& b : *s.paas_state->bundles) list.push_back(to_json(b));
      p["bundles"] = std::move(list);
    }
  }
  if (s.backups) {
    json list = json::array();
    for (const auto& b : *s.backups) list.push_back(to_json(b));
    o["backups"] = std::move(list);
  }
  put(o, "activeJobs", s.active_jobs);
  put(o, "missedSchedules", s.missed_schedules);
  if (s.recent_runs) {
    json list = json::array();
    for (const auto& r : *s.recent_runs) list.push_back(to_json(r));
    o["recentRuns"] = std::move(list);
  }
  return o;
}

}  // namespace bo::api
