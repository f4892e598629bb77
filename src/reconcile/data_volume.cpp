#include "reconcile/data_volume.h"

#include <algorithm>
#include <cctype>
#include <climits>

namespace bo::reconcile {
namespace {

using json = nlohmann::json;

constexpr const char* kWorkloadField = "spec.database.workloadRef";

std::string strip_slash(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

// Whether mount path `m` is `dir` or one of its parents.
bool holds(const std::string& m, const std::string& dir) {
  const std::string a = strip_slash(m), b = strip_slash(dir);
  if (!a.starts_with("/")) return false;
  return a == b || a == "/" || b.starts_with(a + "/");
}

const json& field_or_empty(const json& obj, const char* key) {
  static const json kEmpty = json::object();
  if (!obj.is_object()) return kEmpty;
  auto it = obj.find(key);
  return it == obj.end() || !it->is_object() ? kEmpty : *it;
}

// A member that is an array, by reference (pointers into it stay valid), or an empty one.
const json& array_or_empty(const json& obj, const char* key) {
  static const json kEmpty = json::array();
  if (!obj.is_object()) return kEmpty;
  auto it = obj.find(key);
  return it == obj.end() || !it->is_array() ? kEmpty : *it;
}

std::optional<int64_t> int_at(const json& obj, const char* key) {
  if (!obj.is_object()) return std::nullopt;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_integer()) return std::nullopt;
  return it->get<int64_t>();
}

bool ready(const json& pod) {
  const json& st = field_or_empty(pod, "status");
  if (st.value("phase", "") != "Running") return false;
  if (field_or_empty(pod, "metadata").contains("deletionTimestamp")) return false;
  if (field_or_empty(pod, "spec").value("nodeName", "").empty()) return false;
  for (const auto& c : st.value("conditions", json::array()))
    if (c.is_object() && c.value("type", "") == "Ready") return c.value("status", "") == "True";
  return false;
}

bool owned_by(const json& pod, const std::string& kind, const std::string& name) {
  for (const auto& r : field_or_empty(pod, "metadata").value("ownerReferences", json::array())) {
    if (!r.is_object() || !r.value("controller", false)) continue;
    const std::string k = r.value("kind", ""), n = r.value("name", "");
    if (kind == "StatefulSet" && k == "StatefulSet" && n == name) return true;
    // Deployment -> ReplicaSet <deployment>-<pod-template-hash> -> Pod.
    if (kind == "Deployment" && k == "ReplicaSet" && n.size() > name.size() + 1 && n.starts_with(name + "-") &&
        n.find('-', name.size() + 1) == std::string::npos)
      return true;
  }
  return false;
}

// A StatefulSet pod's ordinal: the label kubelet-era controllers set
// (apps.kubernetes.io/pod-index), else the name's numeric suffix.
long ordinal(const json& pod, const std::string& sts) {
  const json& meta = field_or_empty(pod, "metadata");
  const std::string idx = field_or_empty(meta, "labels").value("apps.kubernetes.io/pod-index", "");
  std::string digits = idx;
  if (digits.empty()) {
    const std::string n = meta.value("name", "");
    if (n.size() > sts.size() + 1 && n.starts_with(sts + "-")) digits = n.substr(sts.size() + 1);
  }
  if (digits.empty() || digits.size() > 9 ||
      !std::all_of(digits.begin(), digits.end(), [](unsigned char c) { return std::isdigit(c); }))
    return LONG_MAX;
  return std::stol(digits);
}

}  // namespace

std::optional<DataVolumeRequest> data_volume_request(const api::BackupPolicySpec& spec, const std::string& ns,
                                                     const std::string& data_directory) {
  const auto& db = spec.database;
  DataVolumeRequest r;
  r.ns = ns;
  r.run_as_user = db.run_as_user;
  r.run_as_group = db.run_as_group;
  if (db.has_workload_ref) {
    if (db.workload_ref.name.empty() || (db.workload_ref.kind != "StatefulSet" && db.workload_ref.kind != "Deployment"))
      return std::nullopt;
    r.kind = db.workload_ref.kind;
    r.name = db.workload_ref.name;
    r.container = db.container;
    r.data_directory = data_directory;
    return r;
  }
  if (db.data_volume.claim_name.empty()) return std::nullopt;
  r.claim_name = db.data_volume.claim_name;
  r.mount_path = db.data_volume.mount_path;
  r.sub_path = db.data_volume.sub_path;
  return r;
}

DataVolumeCheck check_failed(const std::string& reason, const std::string& field, const std::string& message) {
  DataVolumeCheck c;
  c.resolved = false;
  c.reason = reason;
  c.field = field;
  c.message = field + ": " + message;
  return c;
}

const json* pick_pod(const std::string& kind, const std::string& name, const std::vector<json>& pods) {
  const json* best = nullptr;
  auto key = [&](const json& p) {
    const json& meta = field_or_empty(p, "metadata");
    return std::make_tuple(kind == "StatefulSet" ? ordinal(p, name) : 0L, meta.value("creationTimestamp", ""),
                           meta.value("name", ""));
  };
  for (const auto& p : pods) {
    if (!p.is_object() || !ready(p) || !owned_by(p, kind, name)) continue;
    if (!best || key(p) < key(*best)) best = &p;
  }
  return best;
}

std::expected<ResolvedDataVolume, api::Problem> resolve_pod_volume(const json& pod, const std::string& data_directory,
                                                                   const std::string& container, int64_t fallback_uid,
                                                                   int64_t fallback_gid) {
  auto problem = [](const std::string& reason, const std::string& field, const std::string& msg) {
    return std::unexpected(api::Problem{reason, field, field + ": " + msg});
  };
  const json& spec = field_or_empty(pod, "spec");
  const std::string pod_name = field_or_empty(pod, "metadata").value("name", "");
  const std::string target = data_directory.empty() ? kDefaultDataDirectory : data_directory;
  const json& containers = array_or_empty(spec, "containers");
  const json* chosen = nullptr;
  const json* mount = nullptr;
  bool container_seen = false;
  for (const auto& c : containers) {
    if (!c.is_object()) continue;
    if (!container.empty() && c.value("name", "") != container) continue;
    container_seen = true;
    for (const auto& m : array_or_empty(c, "volumeMounts")) {
      if (!m.is_object() || !holds(m.value("mountPath", ""), target)) continue;
      if (!mount || strip_slash(m.value("mountPath", "")).size() > strip_slash(mount->value("mountPath", "")).size()) {
        mount = &m;
        chosen = &c;
      }
    }
  }
  if (!container.empty() && !container_seen)
    return problem("DataVolumeNotFound", "spec.database.container",
                   "pod " + pod_name + " has no container named \"" + container + "\"");
  if (!mount)
    return problem("DataVolumeNotFound", kWorkloadField,
                   "no container of pod " + pod_name + " mounts a volume at the data directory " + target +
                       (data_directory.empty() ? " (PostgreSQL's default; the server's own is not known yet)" : ""));
  const std::string volume_name = mount->value("name", "");
  const json* volume = nullptr;
  for (const auto& v : array_or_empty(spec, "volumes"))
    if (v.is_object() && v.value("name", "") == volume_name) volume = &v;
  const json& pvc = volume ? field_or_empty(*volume, "persistentVolumeClaim") : field_or_empty(json(), "");
  const std::string claim = pvc.value("claimName", "");
  if (claim.empty())
    return problem("DataVolumeNotFound", kWorkloadField,
                   "the volume " + volume_name + " mounted at " + mount->value("mountPath", "") + " in pod " + pod_name +
                       " is not a PersistentVolumeClaim: a backup Job cannot mount it");
  if (mount->contains("subPathExpr"))
    return problem("DataVolumeNotFound", kWorkloadField,
                   "the data directory's mount in pod " + pod_name + " uses subPathExpr, which backup Jobs cannot repeat");
  ResolvedDataVolume out;
  out.claim_name = claim;
  out.mount_path = strip_slash(mount->value("mountPath", ""));
  out.sub_path = mount->value("subPath", "");
  out.node_name = spec.value("nodeName", "");
  out.pod = pod_name;
  out.data_directory = target;
  out.image = chosen->value("image", "");
  const json& pod_sc = field_or_empty(spec, "securityContext");
  const json& c_sc = field_or_empty(*chosen, "securityContext");
  const auto uid = int_at(c_sc, "runAsUser") ? int_at(c_sc, "runAsUser") : int_at(pod_sc, "runAsUser");
  const auto gid = int_at(c_sc, "runAsGroup") ? int_at(c_sc, "runAsGroup") : int_at(pod_sc, "runAsGroup");
  if (uid && *uid > 0) {
    out.run_as_user = *uid;
    // Without runAsGroup the image's passwd entry decides: only the spec can say.
    out.run_as_group = gid ? *gid : fallback_gid;
    if (out.run_as_group < 0)
      return problem("RunAsUserRequired", "spec.database.runAsGroup",
                     "container " + chosen->value("name", "") + " of pod " + pod_name + " runs as uid " +
                         std::to_string(*uid) + " but sets no runAsGroup: set the gid PostgreSQL runs as");
  } else if (fallback_uid > 0 && fallback_gid >= 0) {
    out.run_as_user = fallback_uid;
    out.run_as_group = fallback_gid;
  } else {
    return problem("RunAsUserRequired", "spec.database.runAsUser",
                   "container " + chosen->value("name", "") + " of pod " + pod_name +
                       " sets no non-root runAsUser (the image chooses its user, which cannot be known from here): "
                       "set spec.database.runAsUser and runAsGroup to the uid/gid PostgreSQL runs as");
  }
  return out;
}

std::optional<api::Problem> check_claim(const json& pvc, const std::string& field) {
  const std::string name = field_or_empty(pvc, "metadata").value("name", "");
  for (const auto& m : field_or_empty(pvc, "spec").value("accessModes", json::array()))
    if (m == "ReadWriteOncePod")
      return api::Problem{"DataVolumeReadWriteOncePod", field,
                          field + ": claim " + name +
                              " is ReadWriteOncePod: only one pod can ever use it, so a backup Job can never mount "
                              "it, not even read-only, while the database runs; use ReadWriteOnce (backup Jobs run "
                              "on the database's node)"};
  return std::nullopt;
}

}  // namespace bo::reconcile

namespace bo::reconcile {

std::string data_volume_source(const api::BackupPolicySpec& spec) {
  const auto& db = spec.database;
  const std::string user = " as " + std::to_string(db.run_as_user) + ":" + std::to_string(db.run_as_group);
  if (db.has_workload_ref)
    return db.workload_ref.kind + "/" + db.workload_ref.name + (db.container.empty() ? "" : " container " + db.container) +
           user;
  return "claim " + db.data_volume.claim_name + " at " + db.data_volume.mount_path +
         (db.data_volume.sub_path.empty() ? "" : " subPath " + db.data_volume.sub_path) + user;
}

nlohmann::json to_status(const ResolvedDataVolume& v, const std::string& source) {
  nlohmann::json j = {{"source", source},         {"claimName", v.claim_name},   {"mountPath", v.mount_path},
                      {"runAsUser", v.run_as_user}, {"runAsGroup", v.run_as_group}};
  if (!v.sub_path.empty()) j["subPath"] = v.sub_path;
  if (!v.node_name.empty()) j["nodeName"] = v.node_name;
  if (!v.pod.empty()) j["pod"] = v.pod;
  if (!v.data_directory.empty()) j["dataDirectory"] = v.data_directory;
  if (!v.image.empty()) j["image"] = v.image;
  return j;
}

std::optional<ResolvedDataVolume> from_status(const nlohmann::json& status, const std::string& source) {
  if (!status.is_object()) return std::nullopt;
  const auto it = status.find("dataVolume");
  if (it == status.end() || !it->is_object()) return std::nullopt;
  const nlohmann::json& j = *it;
  auto text = [&](const char* k) {
    const auto f = j.find(k);
    return f != j.end() && f->is_string() ? f->get<std::string>() : std::string();
  };
  auto number = [&](const char* k) -> int64_t {
    const auto f = j.find(k);
    return f != j.end() && f->is_number_integer() ? f->get<int64_t>() : -1;
  };
  if (text("source") != source) return std::nullopt;
  ResolvedDataVolume v;
  v.claim_name = text("claimName");
  v.mount_path = text("mountPath");
  v.sub_path = text("subPath");
  v.run_as_user = number("runAsUser");
  v.run_as_group = number("runAsGroup");
  v.node_name = text("nodeName");
  v.pod = text("pod");
  v.data_directory = text("dataDirectory");
  v.image = text("image");
  if (v.claim_name.empty() || !v.mount_path.starts_with("/") || v.run_as_user <= 0 || v.run_as_group < 0)
    return std::nullopt;
  return v;
}

}  // namespace bo::reconcile
