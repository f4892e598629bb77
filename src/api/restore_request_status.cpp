#include "api/restore_request_status.h"

#include "api/status_json.h"

namespace bo::api {
namespace {

using json = nlohmann::json;
using status_json::put;
using status_json::Reader;

ScratchRecord scratch_from_json(const json& o) {
  const Reader r(o);
  return {r.text("namespace"), r.text("name"), r.text("image"), r.text("size"), r.text("keepUntil"), r.boolean("removed")};
}

json to_json(const ScratchRecord& s) {
  json o = json::object();
  put(o, "namespace", s.ns);
  put(o, "name", s.name);
  put(o, "image", s.image);
  put(o, "size", s.size);
  put(o, "keepUntil", s.keep_until);
  put(o, "removed", s.removed);
  return o;
}

InPlaceRecord in_place_from_json(const json& o) {
  const Reader r(o);
  InPlaceRecord ip;
  if (const json* w = r.object("workload")) ip.workload = InPlaceRecord::Workload{Reader(*w).text("kind"), Reader(*w).text("name")};
  ip.claim = r.text("claim");
  ip.data_path = r.text("dataPath");
  ip.aside_path = r.text("asidePath");
  ip.aside = r.text("aside");
  ip.run_as_user = r.integer("runAsUser");
  ip.run_as_group = r.integer("runAsGroup");
  ip.image = r.text("image");
  ip.node_name = r.text("nodeName");
  ip.step = r.text("step");
  ip.replicas = r.integer("replicas");
  ip.discard_current_data = r.boolean("discardCurrentData");
  ip.discarded = r.boolean("discarded");
  ip.scaled_down = r.boolean("scaledDown");
  ip.system_identifier = r.text("systemIdentifier");
  return ip;
}

json to_json(const InPlaceRecord& ip) {
  json o = json::object();
  if (ip.workload) {
    json& w = o["workload"] = json::object();
    put(w, "kind", ip.workload->kind);
    put(w, "name", ip.workload->name);
  }
  put(o, "claim", ip.claim);
  put(o, "dataPath", ip.data_path);
  put(o, "asidePath", ip.aside_path);
  put(o, "aside", ip.aside);
  put(o, "runAsUser", ip.run_as_user);
  put(o, "runAsGroup", ip.run_as_group);
  put(o, "image", ip.image);
  put(o, "nodeName", ip.node_name);
  put(o, "step", ip.step);
  put(o, "replicas", ip.replicas);
  put(o, "discardCurrentData", ip.discard_current_data);
  put(o, "discarded", ip.discarded);
  put(o, "scaledDown", ip.scaled_down);
  put(o, "systemIdentifier", ip.system_identifier);
  return o;
}

json to_json(const CheckResult& c) {
  json o = json::object();
  put(o, "name", c.name);
  put(o, "query", c.query);
  put(o, "expect", c.expect);
  put(o, "passed", c.passed);
  put(o, "exitCode", c.exit_code);
  put(o, "durationMs", c.duration_ms);
  put(o, "output", c.output);
  put(o, "job", c.job);
  put(o, "stage", c.stage);
  put(o, "attempt", c.attempt);
  return o;
}

}  // namespace

RequesterRecord requester_record_from_json(const json& who) {
  const Reader r(who);
  RequesterRecord out{r.text("username"), r.text("uid"), r.texts("groups"), std::nullopt};
  if (const json* extra = r.object("extra")) {
    out.extra.emplace();
    for (const auto& [key, values] : extra->items())
      if (auto v = Reader::texts_of(values)) (*out.extra)[key] = std::move(*v);
  }
  return out;
}

AccessRecord access_record_from_json(const json& access) {
  const Reader r(access);
  return {r.text("user"), r.text("verb"), r.text("resource"), r.text("namespace"), r.boolean("allowed"), r.text("reason")};
}

CheckResult check_result_from_json(const json& check) {
  const Reader r(check);
  return {r.text("name"),     r.text("query"),  r.text("expect"), r.boolean("passed"), r.integer("exitCode"),
          r.number("durationMs"), r.text("output"), r.text("job"),    r.text("stage"),     r.integer("attempt")};
}

RestoreRequestStatus restore_request_status_from_json(const json& status) {
  const Reader r(status);
  RestoreRequestStatus s;
  s.observed_generation = r.integer("observedGeneration");
  s.phase = r.text("phase");
  s.message = r.text("message");
  s.purpose = r.text("purpose");
  s.target_namespace = r.text("targetNamespace");
  s.start_time = r.text("startTime");
  s.completion_time = r.text("completionTime");
  s.restored_time = r.text("restoredTime");
  s.job_name = r.text("jobName");
  s.conditions = status_json::conditions_from_json(r.find("conditions"));
  if (const json* o = r.object("requestedBy")) s.requested_by = requester_record_from_json(*o);
  if (const json* o = r.object("access")) s.access = access_record_from_json(*o);
  if (const json* o = r.object("backup")) s.backup = RestoredBackupRef{Reader(*o).text("id"), Reader(*o).text("checksum")};
  if (const json* o = r.object("scratch")) s.scratch = scratch_from_json(*o);
  if (const json* o = r.object("inPlace")) s.in_place = in_place_from_json(*o);
  if (const json* o = r.object("recovery")) {
    const Reader v(*o);
    s.recovery = RecoveryRecord{v.boolean("recovered"), v.number("seconds"), v.text("systemIdentifier"), v.text("replayLSN")};
  }
  s.validation = r.objects("validation", check_result_from_json);
  s.validation_attempt = r.integer("validationAttempt");
  s.validation_rerun = r.text("validationRerun");
  return s;
}

json to_json(const RestoreRequestStatus& s) {
  json o = json::object();
  put(o, "observedGeneration", s.observed_generation);
  put(o, "phase", s.phase);
  put(o, "message", s.message);
  put(o, "purpose", s.purpose);
  put(o, "targetNamespace", s.target_namespace);
  put(o, "startTime", s.start_time);
  put(o, "completionTime", s.completion_time);
  put(o, "restoredTime", s.restored_time);
  put(o, "jobName", s.job_name);
  put(o, "conditions", s.conditions);
  if (const auto& who = s.requested_by) {
    json& v = o["requestedBy"] = json::object();
    put(v, "username", who->username);
    put(v, "uid", who->uid);
    put(v, "groups", who->groups);
    put(v, "extra", who->extra);
  }
  if (const auto& a = s.access) {
    json& v = o["access"] = json::object();
    put(v, "user", a->user);
    put(v, "verb", a->verb);
    put(v, "resource", a->resource);
    put(v, "namespace", a->ns);
    put(v, "allowed", a->allowed);
    put(v, "reason", a->reason);
  }
  if (const auto& b = s.backup) {
    json& v = o["backup"] = json::object();
    put(v, "id", b->id);
    put(v, "checksum", b->checksum);
  }
  if (s.scratch) o["scratch"] = to_json(*s.scratch);
  if (s.in_place) o["inPlace"] = to_json(*s.in_place);
  if (const auto& r = s.recovery) {
    json& v = o["recovery"] = json::object();
    put(v, "recovered", r->recovered);
    put(v, "seconds", r->seconds);
    put(v, "systemIdentifier", r->system_identifier);
    put(v, "replayLSN", r->replay_lsn);
  }
  if (s.validation) {
    json list = json::array();
    for (const auto& c : *s.validation) list.push_back(to_json(c));
    o["validation"] = std::move(list);
  }
  put(o, "validationAttempt", s.validation_attempt);
  put(o, "validationRerun", s.validation_rerun);
  return o;
}

}  // namespace bo::api
