#include "kube-local/defaults.h"

namespace kl {
namespace {

void set_if_absent(json& o, const char* key, const json& value) {
  if (!o.contains(key) || o[key].is_null()) o[key] = value;
}

bool empty_string(const json& o, const char* key) {
  return !o.contains(key) || o[key].is_null() || (o[key].is_string() && o[key].get<std::string>().empty());
}

// SetDefaults_Probe, SetDefaults_HTTPGetAction
void default_probe(json& p) {
  if (!p.is_object()) return;
  set_if_absent(p, "timeoutSeconds", 1);
  set_if_absent(p, "periodSeconds", 10);
  set_if_absent(p, "successThreshold", 1);
  set_if_absent(p, "failureThreshold", 3);
  if (p.contains("httpGet") && p["httpGet"].is_object()) {
    if (empty_string(p["httpGet"], "path")) p["httpGet"]["path"] = "/";
    if (empty_string(p["httpGet"], "scheme")) p["httpGet"]["scheme"] = "HTTP";
  }
}

void default_container(json& c) {
  if (!c.is_object()) return;
  if (empty_string(c, "imagePullPolicy")) c["imagePullPolicy"] = default_image_pull_policy(c.value("image", ""));
  if (empty_string(c, "terminationMessagePath")) c["terminationMessagePath"] = "/dev/termination-log";
  if (empty_string(c, "terminationMessagePolicy")) c["terminationMessagePolicy"] = "File";
  if (c.contains("ports") && c["ports"].is_array())
    for (auto& p : c["ports"])
      if (p.is_object() && empty_string(p, "protocol")) p["protocol"] = "TCP";  // SetDefaults_ContainerPort
  for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe"})
    if (c.contains(probe)) default_probe(c[probe]);
  // SetDefaults_ObjectFieldSelector
  if (c.contains("env") && c["env"].is_array())
    for (auto& e : c["env"])
      if (e.is_object() && e.contains("valueFrom") && e["valueFrom"].is_object() && e["valueFrom"].contains("fieldRef") &&
          e["valueFrom"]["fieldRef"].is_object())
        set_if_absent(e["valueFrom"]["fieldRef"], "apiVersion", "v1");
}

void default_volumes(json& spec) {
  if (!spec.contains("volumes") || !spec["volumes"].is_array()) return;
  for (auto& v : spec["volumes"]) {
    if (!v.is_object()) continue;
    // SetDefaults_{Secret,ConfigMap,DownwardAPI,Projected}VolumeSource: 0644.
    for (const char* k : {"secret", "configMap", "downwardAPI", "projected"})
      if (v.contains(k) && v[k].is_object()) set_if_absent(v[k], "defaultMode", 420);
    // SetDefaults_HostPathVolumeSource
    if (v.contains("hostPath") && v["hostPath"].is_object()) set_if_absent(v["hostPath"], "type", "");
  }
}

}  // namespace

std::string default_image_pull_policy(const std::string& image) {
  // parsers.ParseImageName: a reference without tag or digest means ":latest".
  std::string ref = image;
  const auto at = ref.find('@');
  const bool digest = at != std::string::npos;
  if (digest) ref = ref.substr(0, at);
  const auto slash = ref.rfind('/');
  const auto colon = ref.rfind(':');
  std::string tag;
  if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) tag = ref.substr(colon + 1);
  else if (!digest) tag = "latest";
  return tag == "latest" ? "Always" : "IfNotPresent";
}

void default_pod_spec(json& spec, bool pod) {
  if (!spec.is_object()) return;
  if (empty_string(spec, "dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
  if (empty_string(spec, "restartPolicy")) spec["restartPolicy"] = "Always";
  set_if_absent(spec, "securityContext", json::object());
  set_if_absent(spec, "terminationGracePeriodSeconds", 30);
  if (empty_string(spec, "schedulerName")) spec["schedulerName"] = "default-scheduler";
  if (pod) set_if_absent(spec, "enableServiceLinks", true);  // SetDefaults_Pod
  for (const char* list : {"initContainers", "containers", "ephemeralContainers"})
    if (spec.contains(list) && spec[list].is_array())
      for (auto& c : spec[list]) default_container(c);
  default_volumes(spec);
  // Convert_core_PodSpec_To_v1_PodSpec keeps the deprecated serviceAccount
  // equal to serviceAccountName (and reads it when the new name is empty).
  if (empty_string(spec, "serviceAccountName") && !empty_string(spec, "serviceAccount"))
    spec["serviceAccountName"] = spec["serviceAccount"];
  if (!empty_string(spec, "serviceAccountName")) spec["serviceAccount"] = spec["serviceAccountName"];
}

void apply_builtin_defaults(const std::string& gr, json& obj) {
  if (!obj.is_object()) return;
  if (gr == "/pods") {
    if (!obj.contains("spec") || !obj["spec"].is_object()) return;
    default_pod_spec(obj["spec"], true);
    return;
  }
  if (gr == "/services") {
    if (!obj.contains("spec") || !obj["spec"].is_object()) return;
    json& s = obj["spec"];
    if (empty_string(s, "sessionAffinity")) s["sessionAffinity"] = "None";
    if (s["sessionAffinity"] == "None") s.erase("sessionAffinityConfig");
    if (empty_string(s, "type")) s["type"] = "ClusterIP";
    if (s.contains("ports") && s["ports"].is_array())
      for (auto& p : s["ports"]) {
        if (!p.is_object()) continue;
        if (empty_string(p, "protocol")) p["protocol"] = "TCP";
        const json tp = p.value("targetPort", json());
        if (tp.is_null() || tp == 0 || tp == "") p["targetPort"] = p.value("port", 0);
      }
    const std::string type = s["type"].is_string() ? s["type"].get<std::string>() : "";
    if ((type == "NodePort" || type == "LoadBalancer") && empty_string(s, "externalTrafficPolicy"))
      s["externalTrafficPolicy"] = "Cluster";
    if ((type == "NodePort" || type == "LoadBalancer" || type == "ClusterIP")) set_if_absent(s, "internalTrafficPolicy", "Cluster");
    if (type == "LoadBalancer") set_if_absent(s, "allocateLoadBalancerNodePorts", true);
    return;
  }
  const bool workload = gr == "batch/jobs" || gr == "apps/deployments" || gr == "apps/statefulsets" ||
                        gr == "apps/replicasets" || gr == "apps/daemonsets";
  if (!workload || !obj.contains("spec") || !obj["spec"].is_object()) return;
  json& s = obj["spec"];
  if (s.contains("template") && s["template"].is_object() && s["template"].contains("spec"))
    default_pod_spec(s["template"]["spec"], false);
  if (gr == "batch/jobs") {
    if (!s.contains("completions") && !s.contains("parallelism")) {
      s["completions"] = 1;
      s["parallelism"] = 1;
    }
    set_if_absent(s, "parallelism", 1);
    set_if_absent(s, "backoffLimit", s.contains("backoffLimitPerIndex") ? json(2147483647) : json(6));
    // Labels of the pod template become the Job's when it has none.
    const json tl = s.value("template", json::object()).value("metadata", json::object()).value("labels", json());
    json& meta = obj["metadata"];
    if (tl.is_object() && !tl.empty() && (!meta.contains("labels") || meta["labels"].empty())) meta["labels"] = tl;
    set_if_absent(s, "completionMode", "NonIndexed");
    set_if_absent(s, "suspend", false);
    set_if_absent(s, "podReplacementPolicy", s.contains("podFailurePolicy") ? "Failed" : "TerminatingOrFailed");
    set_if_absent(s, "manualSelector", false);
  } else if (gr == "apps/deployments") {
    set_if_absent(s, "replicas", 1);
    if (!s.contains("strategy") || !s["strategy"].is_object()) s["strategy"] = json::object();
    json& st = s["strategy"];
    if (empty_string(st, "type")) st["type"] = "RollingUpdate";
    if (st["type"] == "RollingUpdate") {
      if (!st.contains("rollingUpdate") || !st["rollingUpdate"].is_object()) st["rollingUpdate"] = json::object();
      set_if_absent(st["rollingUpdate"], "maxUnavailable", "25%");
      set_if_absent(st["rollingUpdate"], "maxSurge", "25%");
    }
    set_if_absent(s, "revisionHistoryLimit", 10);
    set_if_absent(s, "progressDeadlineSeconds", 600);
  } else if (gr == "apps/statefulsets" || gr == "apps/replicasets") {
    set_if_absent(s, "replicas", 1);
  }
}

}  // namespace kl
