#include "kube-local/stateful_set.h"

#include <algorithm>
#include <map>

#include "common/timefmt.h"

namespace kl {

std::optional<int> stateful_ordinal(const std::string& set, const std::string& pod_name) {
  if (!pod_name.starts_with(set + "-")) return std::nullopt;
  const std::string n = pod_name.substr(set.size() + 1);
  if (n.empty() || n.size() > 9 || !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoi(n);
}

bool pod_ready(const json& pod) {
  for (const auto& c : pod.value("status", json::object()).value("conditions", json::array()))
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  return false;
}

bool running_and_ready(const json& pod) {
  return pod.value("status", json::object()).value("phase", "") == "Running" && pod_ready(pod);
}

bool terminating(const json& pod) {
  const json meta = pod.value("metadata", json::object());
  return meta.contains("deletionTimestamp") && !meta["deletionTimestamp"].is_null();
}

StatefulSetPlan plan_stateful_set(const json& set, const std::vector<json>& pods) {
  StatefulSetPlan plan;
  const std::string name = set.value("metadata", json::object()).value("name", "");
  const json spec = set.value("spec", json::object());
  const int replicas = std::max(spec.value("replicas", 1), 0);
  const bool monotonic = spec.value("podManagementPolicy", "OrderedReady") != "Parallel";
  std::map<int, const json*> by_ordinal;
  for (const auto& p : pods)
    if (auto i = stateful_ordinal(name, p.value("metadata", json::object()).value("name", ""))) by_ordinal[*i] = &p;
  auto healthy = [](const json& p) { return running_and_ready(p) && !terminating(p); };

  // processReplica, in ordinal order; in monotonic mode the first thing to wait for ends the pass.
  for (int i = 0; i < replicas; ++i) {
    const auto it = by_ordinal.find(i);
    if (it == by_ordinal.end()) {
      plan.create.push_back(i);
      if (monotonic) return plan;
      continue;
    }
    if (monotonic && (terminating(*it->second) || !running_and_ready(*it->second))) return plan;
  }
  // processCondemned: highest ordinal first. The first unhealthy pod (every replica is healthy
  // by now in monotonic mode) is the lowest-ordinal unhealthy condemned one.
  std::vector<const json*> condemned;
  for (auto it = by_ordinal.rbegin(); it != by_ordinal.rend(); ++it)
    if (it->first >= replicas) condemned.push_back(it->second);
  const json* first_unhealthy = nullptr;
  for (auto it = condemned.rbegin(); it != condemned.rend(); ++it)
    if (!healthy(**it)) {
      first_unhealthy = *it;
      break;
    }
  for (const json* p : condemned) {
    if (terminating(*p)) {
      if (monotonic) return plan;
      continue;
    }
    if (monotonic && !running_and_ready(*p) && p != first_unhealthy) return plan;
    plan.remove.push_back((*p)["metadata"].value("name", ""));
    if (monotonic) return plan;
  }
  return plan;
}

json stateful_set_status(const json& set, const std::vector<json>& pods, std::chrono::system_clock::time_point now) {
  const json spec = set.value("spec", json::object());
  const long long min_ready = spec.value("minReadySeconds", 0);
  long long created = 0, ready = 0, available = 0, current = 0;
  for (const auto& p : pods) {
    const json st = p.value("status", json::object());
    const bool exists = !st.value("phase", "").empty();  // isCreated
    if (exists) ++created;
    if (running_and_ready(p)) {
      ++ready;
      // podutil.IsPodAvailable: Ready for at least minReadySeconds.
      bool avail = min_ready == 0;
      if (!avail)
        for (const auto& c : st.value("conditions", json::array()))
          if (c.value("type", "") == "Ready")
            if (auto t = bo::parse_rfc3339(c.value("lastTransitionTime", "")))
              avail = *t + std::chrono::seconds(min_ready) <= now;
      if (avail) ++available;
    }
    if (exists && !terminating(p)) ++current;
  }
  json status = set.value("status", json::object());
  if (!status.is_object()) status = json::object();
  status["observedGeneration"] = set.value("metadata", json::object()).value("generation", 1);
  status["replicas"] = created;
  status["availableReplicas"] = available;
  for (const auto& [key, n] : {std::pair<const char*, long long>{"readyReplicas", ready}, {"currentReplicas", current},
                               {"updatedReplicas", current}}) {
    if (n == 0) status.erase(key);
    else status[key] = n;
  }
  return status;
}

}  // namespace kl
