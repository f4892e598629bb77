// Sections of plan_backup_policy over the RestoreRequests naming the policy:
// what finished verifications and drills established, the daily
// verification (a RestoreRequest restoring the newest full backup into the
// target namespace), and the finished verifications beyond the history limits.
#include <algorithm>

#include "common/timefmt.h"
#include "kube/names.h"
#include "reconcile/policy_plan_parts.h"

namespace bo::reconcile::policy_plan {
namespace {

using json = nlohmann::json;

void record_verification(PolicyPlanning& p, const ObservedRestore& r, const std::string& done_at) {
  auto& status = p.status;
  const std::string last_at = status.last_verification ? status.last_verification->completion_time.value_or("") : "";
  const std::string last_request = status.last_verification ? status.last_verification->request.value_or("") : "";
  if (last_at < done_at || (last_at == done_at && last_request != r.name)) {
    status.last_verification =
        api::VerificationOutcome{r.name, r.phase == "Succeeded" ? "Succeeded" : "Failed", r.backup_id, done_at, std::nullopt};
    if (r.phase != "Succeeded") status.last_verification->message = r.message.substr(0, 512);
  }
  if (r.phase != "Succeeded") return;
  for (auto& e : p.catalog()) {
    if (e.id.value_or("") != r.backup_id || e.checksum.value_or("") != r.checksum) continue;
    if (!e.verified.value_or(false)) {
      e.verified = true;
      e.verified_by = r.name;
      p.plan.events.push_back(
          {"Normal", "BackupVerified", "backup " + r.backup_id + " restored and validated by RestoreRequest " + r.name});
    }
    const std::string verified_at = status.last_verified_backup ? status.last_verified_backup->verified_at.value_or("") : "";
    if (verified_at < done_at)
      status.last_verified_backup = api::VerifiedBackupRef{r.backup_id,  r.checksum, e.type.value_or("full"),
                                                           e.completion_time.value_or(""), done_at, r.name};
  }
}

json verification_request(const PolicyPlanning& p, const std::string& name, SysTime slot, const api::BackupRecord& full) {
  const std::string policy = p.name;
  return {{"apiVersion", api::kApiVersion},
          {"kind", "RestoreRequest"},
          {"metadata",
           {{"name", name},
            {"namespace", p.ns},
            {"labels", {{"app.kubernetes.io/managed-by", kManagedBy}, {kLabelPolicy, kube::label_value(policy)},
                        {kLabelAction, "verify"}}},
            {"annotations", {{kAnnotationSlot, format_rfc3339(slot)}}},
            {"ownerReferences", {{{"apiVersion", api::kApiVersion}, {"kind", "BackupPolicy"},
                                  {"name", policy}, {"uid", p.meta.value("uid", "")},
                                  {"controller", true}, {"blockOwnerDeletion", true}}}}}},
          {"spec", {{"policyRef", {{"name", policy}}},
                    {"backupId", full.id.value_or("")},
                    {"checksum", full.checksum.value_or("")},
                    {"purpose", "verification"},
                    {"targetNamespace", p.spec.verification.target_namespace},
                    {"validation", p.spec.verification.checks}}}};
}

}  // namespace

bool is_final(const std::string& phase) { return phase == "Succeeded" || phase == "Failed" || phase == "Blocked"; }

// Verifications (created by the policy) mark backups verified; drills keep DrillCurrent.
void record_restore_outcomes(PolicyPlanning& p) {
  for (const auto& r : p.in.restores) {
    if (!is_final(r.phase) || !r.completion) continue;
    const std::string done_at = format_rfc3339(*r.completion);
    if (r.purpose == "verification" && r.owned) {
      record_verification(p, r, done_at);
    } else if (r.purpose == "drill" && r.phase == "Succeeded") {
      if ((p.status.last_drill ? p.status.last_drill->completion_time.value_or("") : "") < done_at)
        p.status.last_drill = api::DrillOutcome{r.name, r.backup_id, done_at};
    }
  }
}

// Daily, a RestoreRequest restores the newest full backup into the target.
void schedule_verification(PolicyPlanning& p) {
  const auto& v = p.spec.verification;
  if (!v.enabled || v.target_namespace.empty()) return;
  const auto cron = *schedule::Cron::parse(v.schedule);
  const auto since = parse_rfc3339(p.last_slot("verify")).value_or(p.created);
  const auto slots =
      plan_slots(cron, p.tz, since, p.in.now, std::chrono::seconds(p.spec.schedule.starting_deadline_seconds));
  if (slots.next && (!p.next_any || *slots.next < *p.next_any)) p.next_any = slots.next;
  if (slots.latest) p.schedules()["verify"].last_schedule_time = format_rfc3339(*slots.latest);
  if (!slots.run || p.spec.suspend) return;
  const bool verifying = std::any_of(p.in.restores.begin(), p.in.restores.end(), [&](const ObservedRestore& r) {
    return r.owned && r.purpose == "verification" && !is_final(r.phase);
  });
  const std::string name = job_name(p.name, Action::kVerify, *slots.run);
  const bool exists =
      std::any_of(p.in.restores.begin(), p.in.restores.end(), [&](const ObservedRestore& r) { return r.name == name; });
  const api::BackupRecord* full = newest_full(p.catalog());
  if (exists) return;
  if (!full) {
    p.plan.events.push_back(
        {"Warning", "NoBackupToVerify", "the " + format_rfc3339(*slots.run) + " verification slot found no full backup"});
  } else if (verifying) {
    p.plan.events.push_back({"Normal", "SkippedConcurrent", "skipped the " + format_rfc3339(*slots.run) +
                                                                " verification slot: a verification is still running"});
  } else {
    p.plan.create_restores.push_back(verification_request(p, name, *slots.run, *full));
    p.plan.events.push_back({"Normal", "VerificationScheduled", "created RestoreRequest " + name + " to verify backup " +
                                                                    full->id.value_or("") + " in namespace " +
                                                                    v.target_namespace});
  }
}

// Finished verifications beyond the history limits go, oldest first.
void prune_verifications(PolicyPlanning& p) {
  std::vector<const ObservedRestore*> done;
  for (const auto& r : p.in.restores)
    if (r.owned && r.purpose == "verification" && is_final(r.phase) && r.completion) done.push_back(&r);
  std::sort(done.begin(), done.end(),
            [](const ObservedRestore* a, const ObservedRestore* b) { return *a->completion > *b->completion; });
  int ok = 0, bad = 0;
  for (const ObservedRestore* r : done) {
    const bool good = r->phase == "Succeeded";
    if (++(good ? ok : bad) > (good ? p.spec.history_limits.successful : p.spec.history_limits.failed))
      p.plan.remove_restores.push_back(r->name);
  }
}

}  // namespace bo::reconcile::policy_plan
