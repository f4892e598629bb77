// Section of plan_restore: the freeze of the target namespace follows the
// MutationsBlocked condition. While it is True, a ValidatingAdmissionPolicy
// and its binding let only the operator change Deployments, StatefulSets
// (and their scale), Secrets and ConfigMaps there; when it is not, they go.
#include "kube/names.h"
#include "reconcile/restore_plan_parts.h"

namespace bo::reconcile::restore_plan {
namespace {

using json = nlohmann::json;

// Why the namespace is frozen and how it thaws, as the API server's refusal says.
std::string frozen_message(const RestorePlanning& p, const std::string& backup_id) {
  if (p.status.in_place)
    return "namespace " + p.target + " is frozen: RestoreRequest " + p.rr_ref +
           " restores the database in place (backup " + backup_id +
           "); changes resume when its checks have passed (kubectl describe restorerequest -n " + p.ns + " " +
           p.name + ")";
  return "namespace " + p.target + " is frozen: validation of RestoreRequest " + p.rr_ref + " (backup " + backup_id +
         ") failed; rerun it with kubectl annotate restorerequest -n " + p.ns + " " + p.name + " " +
         kAnnotationRerun + "=$(date +%s)";
}

}  // namespace

void follow_freeze(RestorePlanning& p) {
  const auto& in = p.in;
  auto& plan = p.plan;
  const std::string backup_id = p.status.backup ? p.status.backup->id.value_or("") : "";
  const auto* frozen = find_condition(p.conditions, "MutationsBlocked");
  if (frozen && frozen->value("status", "") == "True") {
    if (in.freeze_present) return;
    plan.freeze = RestorePlan::Freeze::kApply;
    const std::string fname = freeze_name(p.ns, p.name);
    const json labels = {{"app.kubernetes.io/managed-by", kManagedBy},
                         {kLabelRestoreRequest, kube::label_value(p.name)},
                         {kLabelRestoreNamespace, p.ns}};
    plan.freeze_policy = {
        {"apiVersion", "admissionregistration.k8s.io/v1"},
        {"kind", "ValidatingAdmissionPolicy"},
        {"metadata", {{"name", fname}, {"labels", labels}}},
        {"spec",
         {{"failurePolicy", "Fail"},
          {"matchConstraints",
           {{"resourceRules", {{{"operations", {"CREATE", "UPDATE", "DELETE"}},
                                {"apiGroups", {"", "apps"}},
                                {"apiVersions", {"*"}},
                                {"resources", {"deployments", "deployments/scale", "statefulsets",
                                               "statefulsets/scale", "secrets", "configmaps"}}}}}}},
          {"validations",
           {{{"expression", "request.userInfo.username == '" + in.operator_username + "'"},
             {"reason", "Forbidden"},
             {"message", frozen_message(p, backup_id)}}}}}}};
    plan.freeze_binding = {
        {"apiVersion", "admissionregistration.k8s.io/v1"},
        {"kind", "ValidatingAdmissionPolicyBinding"},
        {"metadata", {{"name", fname}, {"labels", labels}}},
        {"spec", {{"policyName", fname},
                  {"validationActions", {"Deny"}},
                  {"matchResources", {{"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", p.target}}}}}}}}}};
    p.event("Warning", "MutationsBlocked", "froze namespace " + p.target + " (" + fname + ")");
  } else if (in.freeze_present) {
    plan.freeze = RestorePlan::Freeze::kLift;
    p.event("Normal", "MutationsUnblocked", "lifted the freeze of namespace " + p.target);
  }
}

}  // namespace bo::reconcile::restore_plan
