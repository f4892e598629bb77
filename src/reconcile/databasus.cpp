#include "reconcile/databasus.h"

#include <algorithm>

#include "kube/names.h"
#include "reconcile/conditions.h"

namespace bo::reconcile {
namespace {

using json = nlohmann::json;

std::string name_of(const json& o) { return o.at("metadata").value("name", ""); }

json owner(const json& policy) {
  const json& m = policy.at("metadata");
  return json::array({{{"apiVersion", api::kApiVersion}, {"kind", "BackupPolicy"}, {"name", m.value("name", "")},
                       {"uid", m.value("uid", "")}, {"controller", true}, {"blockOwnerDeletion", true}}});
}

json env_secret(const std::string& name, const std::string& secret, const std::string& key) {
  return {{"name", name}, {"valueFrom", {{"secretKeyRef", {{"name", secret}, {"key", key}}}}}};
}

bool is_empty_container(const json& j) { return j.is_null() || ((j.is_array() || j.is_object()) && j.empty()); }

// Does a Service's selector pick the Databasus pods?
bool selects(const json& service, const json& pod_labels) {
  const json spec = service.value("spec", json::object());
  if (!spec.is_object() || spec.value("type", "ClusterIP") == "ExternalName") return false;
  const json sel = spec.value("selector", json::object());
  if (!sel.is_object() || sel.empty()) return false;
  for (const auto& [k, v] : sel.items())
    if (!pod_labels.contains(k) || pod_labels[k] != v) return false;
  return true;
}

// The Service names an Ingress routes to (default backend and every path).
std::vector<std::string> ingress_services(const json& ingress) {
  std::vector<std::string> out;
  const json spec = ingress.value("spec", json::object());
  if (!spec.is_object()) return out;
  auto add = [&](const json& backend) {
    if (!backend.is_object()) return;
    const json svc = backend.value("service", json::object());
    if (svc.is_object() && svc.contains("name") && svc["name"].is_string()) out.push_back(svc["name"]);
  };
  add(spec.value("defaultBackend", json()));
  for (const auto& rule : spec.value("rules", json::array())) {
    const json paths = rule.value("http", json::object()).value("paths", json::array());
    for (const auto& p : paths) add(p.value("backend", json()));
  }
  return out;
}

// hostNetwork, hostPID, hostIPC or a hostPort in a pod template.
std::vector<std::string> host_exposure(const json& deployment) {
  std::vector<std::string> out;
  const json pod = deployment.value("spec", json::object()).value("template", json::object()).value("spec", json::object());
  if (!pod.is_object()) return out;
  for (const char* f : {"hostNetwork", "hostPID", "hostIPC"})
    if (pod.value(f, false)) out.push_back(std::string("spec.template.spec.") + f + " is true");
  for (const char* list : {"containers", "initContainers"})
    for (const auto& c : pod.value(list, json::array()))
      for (const auto& port : c.value("ports", json::array()))
        if (port.value("hostPort", 0) != 0)
          out.push_back("container " + c.value("name", "?") + " has hostPort " + std::to_string(port.value("hostPort", 0)));
  return out;
}

}  // namespace

json databasus_pod_labels(const std::string& policy) {
  return {{"app.kubernetes.io/name", "databasus"},
          {"app.kubernetes.io/instance", kube::label_value(policy)},
          {"app.kubernetes.io/managed-by", kManagedBy},
          {kLabelPolicy, kube::label_value(policy)},
          {kLabelComponent, "databasus"}};
}

bool contains(const json& actual, const json& desired) {
  if (desired.is_object()) {
    if (actual.is_null()) return desired.empty();
    if (!actual.is_object()) return false;
    for (const auto& [k, v] : desired.items()) {
      auto it = actual.find(k);
      if (it == actual.end()) {
        if (!is_empty_container(v)) return false;
        continue;
      }
      if (!contains(*it, v)) return false;
    }
    return true;
  }
  if (desired.is_array()) {
    if (actual.is_null()) return desired.empty();
    if (!actual.is_array() || actual.size() != desired.size()) return false;
    for (size_t i = 0; i < desired.size(); ++i)
      if (!contains(actual[i], desired[i])) return false;
    return true;
  }
  return actual == desired;
}

DatabasusObjects build_databasus(const json& policy, const api::BackupPolicySpec& spec, const std::string& operator_image) {
  const std::string pname = name_of(policy);
  const std::string ns = policy.at("metadata").value("namespace", "");
  const std::string name = bounded_name(pname + "-databasus");
  const std::string claim = bounded_name(pname + "-databasus-data");
  const json labels = databasus_pod_labels(pname);
  const json selector = {{kLabelPolicy, kube::label_value(pname)}, {kLabelComponent, "databasus"}};
  // Databasus as its authors run it on a hardened cluster (deploy/helm/README.md,
  // "Pod Security / Hardening", and the note by podSecurityContext in values.yaml):
  // its entrypoint starts as root to remap the `databasus` account (999:999 unless
  // the volume says otherwise), attempt a chown of its volume and initdb its
  // PostgreSQL, then drops to that account with gosu, which needs SETUID and
  // SETGID. So no runAsNonRoot, no runAsUser, and those two capabilities back:
  // the one pod of a policy that meets Pod Security "baseline", not "restricted".
  // /tmp and /var/run are emptyDirs under the read-only root.
  const json databasus_security = {{"allowPrivilegeEscalation", false},
                                   {"readOnlyRootFilesystem", true},
                                   {"capabilities", {{"drop", {"ALL"}}, {"add", {"SETUID", "SETGID"}}}},
                                   {"seccompProfile", {{"type", "RuntimeDefault"}}}};
  // The metadata sidecar is the operator's own binary: "restricted", as every Job.
  const json sidecar_security = {{"allowPrivilegeEscalation", false},
                                 {"readOnlyRootFilesystem", true},
                                 {"runAsNonRoot", true},
                                 {"runAsUser", 65532},
                                 {"runAsGroup", 65532},
                                 {"capabilities", {{"drop", {"ALL"}}}},
                                 {"seccompProfile", {{"type", "RuntimeDefault"}}}};
  // Probes as upstream's chart has them: the dependency-free /api/v1/system/version,
  // so a degraded but serving instance is neither restarted nor unready.
  auto version_probe = [](int initial_delay, int period, int timeout) {
    return json{{"httpGet", {{"path", kDatabasusVersionPath}, {"port", "http"}}},
                {"initialDelaySeconds", initial_delay},
                {"periodSeconds", period},
                {"timeoutSeconds", timeout},
                {"failureThreshold", 3}};
  };
  json databasus = {{"name", "databasus"},
                    {"image", spec.databasus.image},
                    {"ports", {{{"name", "http"}, {"containerPort", kDatabasusPort}, {"protocol", "TCP"}}}},
                    {"volumeMounts", {{{"name", "data"}, {"mountPath", "/databasus-data"}},
                                      {{"name", "tmp"}, {"mountPath", "/tmp"}},
                                      {{"name", "var-run"}, {"mountPath", "/var/run"}}}},
                    {"readinessProbe", version_probe(10, 5, 3)},
                    {"livenessProbe", version_probe(30, 10, 5)},
                    // Upstream's defaults (values.yaml: 1Gi and 500m, requests equal to limits).
                    {"resources", {{"requests", {{"memory", "1Gi"}, {"cpu", "500m"}}},
                                   {"limits", {{"memory", "1Gi"}, {"cpu", "500m"}}}}},
                    {"securityContext", databasus_security}};
  if (spec.databasus.resources.is_object() && !spec.databasus.resources.empty())
    databasus["resources"] = spec.databasus.resources;
  // The sidecar keeps Databasus pointed at the policy's database and catalog;
  // credentials reach it by reference only.
  json env = json::array({{{"name", "BACKUP_POLICY"}, {"value", ns + "/" + pname}},
                          {{"name", "PGHOST"}, {"value", spec.database.host}},
                          {{"name", "PGPORT"}, {"value", std::to_string(spec.database.port)}},
                          {{"name", "PGDATABASE"}, {"value", spec.database.name}},
                          {{"name", "DATABASUS_URL"}, {"value", "http://127.0.0.1:" + std::to_string(kDatabasusPort)}},
                          {{"name", "METADATA_DIR"}, {"value", "/databasus-data/backup-operator"}}});
  if (!spec.database.credentials_secret.empty()) {
    env.push_back(env_secret("PGUSER", spec.database.credentials_secret, spec.database.username_key));
    env.push_back(env_secret("PGPASSWORD", spec.database.credentials_secret, spec.database.password_key));
  }
  if (!spec.databasus.admin_secret.empty()) {
    // With an administrator, the sidecar registers the database in Databasus (on 127.0.0.1).
    env.push_back(env_secret("DATABASUS_ADMIN_EMAIL", spec.databasus.admin_secret, spec.databasus.admin_email_key));
    env.push_back(env_secret("DATABASUS_ADMIN_PASSWORD", spec.databasus.admin_secret, spec.databasus.admin_password_key));
  }
  json sidecar = {{"name", "metadata"},
                  {"image", spec.job_template.image.empty() ? operator_image : spec.job_template.image},
                  {"args", {"run-job", "databasus-metadata"}},
                  {"env", env},
                  {"volumeMounts", {{{"name", "data"}, {"mountPath", "/databasus-data"}}}},
                  {"securityContext", sidecar_security}};
  json pod = {{"automountServiceAccountToken", false},
              {"enableServiceLinks", false},
              {"hostNetwork", false},
              // fsGroup: the account's fallback group owns the fresh volume, so both
              // Databasus (after gosu) and the sidecar (a supplementary group) write it.
              {"securityContext", {{"fsGroup", kDatabasusGid}, {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
              {"containers", {databasus, sidecar}},
              {"volumes", {{{"name", "data"}, {"persistentVolumeClaim", {{"claimName", claim}}}},
                           {{"name", "tmp"}, {"emptyDir", json::object()}},
                           {{"name", "var-run"}, {"emptyDir", json::object()}}}}};
  DatabasusObjects o;
  o.deployment = {{"apiVersion", "apps/v1"},
                  {"kind", "Deployment"},
                  {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}, {"ownerReferences", owner(policy)}}},
                  {"spec", {{"replicas", 1},
                            {"strategy", {{"type", "Recreate"}}},  // one writer of the state volume
                            {"selector", {{"matchLabels", selector}}},
                            {"template", {{"metadata", {{"labels", labels}}}, {"spec", pod}}}}}};
  // Deny all ingress; egress to the database port and to DNS only. kubectl
  // port-forward reaches the pod through the kubelet, which this does not block.
  o.network_policy = {
      {"apiVersion", "networking.k8s.io/v1"},
      {"kind", "NetworkPolicy"},
      {"metadata", {{"name", name}, {"namespace", ns}, {"labels", labels}, {"ownerReferences", owner(policy)}}},
      {"spec", {{"podSelector", {{"matchLabels", selector}}},
                {"policyTypes", {"Ingress", "Egress"}},
                {"ingress", json::array()},
                {"egress", {{{"ports", {{{"protocol", "TCP"}, {"port", spec.database.port}}}}},
                            {{"to", {{{"namespaceSelector", {{"matchLabels", {{"kubernetes.io/metadata.name", "kube-system"}}}}}}}},
                             {"ports", {{{"protocol", "UDP"}, {"port", 53}}, {{"protocol", "TCP"}, {"port", 53}}}}}}}}}};
  json pvc_spec = {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", spec.databasus.storage_size}}}}}};
  if (!spec.databasus.storage_class.empty()) pvc_spec["storageClassName"] = spec.databasus.storage_class;
  o.pvc = {{"apiVersion", "v1"},
           {"kind", "PersistentVolumeClaim"},
           {"metadata", {{"name", claim}, {"namespace", ns}, {"labels", labels}, {"ownerReferences", owner(policy)}}},
           {"spec", pvc_spec}};
  return o;
}

DatabasusPlan plan_databasus(const DatabasusInputs& in) {
  DatabasusPlan plan;
  plan.enabled = in.spec.has_addon("databasus");
  if (!plan.enabled) {
    // Removing the addon removes it all (the claim too: its state belongs to this addon).
    if (in.deployment.is_object()) plan.remove.emplace_back("Deployment", name_of(in.deployment));
    if (in.network_policy.is_object()) plan.remove.emplace_back("NetworkPolicy", name_of(in.network_policy));
    if (in.pvc.is_object()) plan.remove.emplace_back("PersistentVolumeClaim", name_of(in.pvc));
    return plan;
  }
  const auto desired = build_databasus(in.policy, in.spec, in.operator_image);
  const json pod_labels = databasus_pod_labels(name_of(in.policy));

  // The state claim: created once; its spec is immutable, so only its absence matters.
  if (!in.pvc.is_object()) plan.apply.push_back(desired.pvc);

  if (!in.network_policy.is_object()) {
    plan.exposures.push_back("NetworkPolicy " + name_of(desired.network_policy) + " was missing (restored)");
    plan.apply.push_back(desired.network_policy);
  } else if (!contains(in.network_policy, {{"spec", desired.network_policy["spec"]}})) {
    plan.exposures.push_back("NetworkPolicy " + name_of(desired.network_policy) + " was changed (restored)");
    plan.apply.push_back(desired.network_policy);
  }

  if (!in.deployment.is_object()) {
    plan.apply.push_back(desired.deployment);
  } else {
    const auto host = host_exposure(in.deployment);
    for (const auto& h : host) plan.exposures.push_back("Deployment " + name_of(in.deployment) + ": " + h + " (restored)");
    if (!host.empty() || !contains(in.deployment, {{"spec", desired.deployment["spec"]}})) plan.apply.push_back(desired.deployment);
    const json st = in.deployment.value("status", json::object());
    const int ready = st.is_object() ? st.value("readyReplicas", 0) : 0;
    plan.ready = ready >= 1;
    plan.ready_message = ready >= 1 ? "Deployment " + name_of(in.deployment) + " has " + std::to_string(ready) + " ready replica(s)"
                                    : "Deployment " + name_of(in.deployment) + " has no ready replica yet";
  }

  // Anything that reaches the pods from outside them.
  std::vector<std::string> exposing_services;
  for (const auto& svc : in.services)
    if (selects(svc, pod_labels)) {
      exposing_services.push_back(name_of(svc));
      plan.exposures.push_back("Service " + name_of(svc) + " selects the Databasus pods");
    }
  for (const auto& ing : in.ingresses)
    for (const auto& target : ingress_services(ing))
      if (std::find(exposing_services.begin(), exposing_services.end(), target) != exposing_services.end())
        plan.exposures.push_back("Ingress " + name_of(ing) + " routes to Service " + target);
  return plan;
}

std::vector<EventSpec> databasus_conditions(const DatabasusPlan& plan, json& conditions, int64_t generation, SysTime now) {
  std::vector<EventSpec> events;
  if (!plan.enabled) {
    json kept = json::array();
    for (const auto& c : conditions)
      if (c.value("type", "") != "DatabasusPrivate" && c.value("type", "") != "DatabasusReady") kept.push_back(c);
    conditions = kept;
    return events;
  }
  if (!plan.exposures.empty()) {
    std::string msg;
    for (const auto& e : plan.exposures) msg += (msg.empty() ? "" : "; ") + e;
    // Every look that finds it exposed says so again; the recorder counts repeats on one Event.
    events.push_back({"Warning", "DatabasusExposed", msg});
    set_condition(conditions, "DatabasusPrivate", "False", "Exposed", msg, generation, now);
  } else {
    set_condition(conditions, "DatabasusPrivate", "True", "Private",
                  "no Service, Ingress, host port or host network reaches Databasus; its NetworkPolicy denies all ingress",
                  generation, now);
  }
  if (!plan.ready)
    set_condition(conditions, "DatabasusReady", "False", "Creating", "the Databasus Deployment is being created", generation, now);
  else
    set_condition(conditions, "DatabasusReady", *plan.ready ? "True" : "False", *plan.ready ? "Ready" : "NotReady",
                  plan.ready_message, generation, now);
  return events;
}

}  // namespace bo::reconcile
