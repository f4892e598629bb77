// kube-local's pure workload logic: the scale subresource's Scale
// (storage.go scaleFrom*, ValidateScale, printScale, LabelSelectorAsSelector),
// a Pod's graceful deletion (rest.BeforeDelete with the pod strategy's
// CheckGracefulDelete, the kubelet's grace period), the StatefulSet
// controller's plan and status counts, and tcpSocket readiness probes.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/timefmt.h"
#include "kube-local/pod_deletion.h"
#include "kube-local/probe.h"
#include "kube-local/scale.h"
#include "kube-local/stateful_set.h"

using nlohmann::json;

namespace {

using Clock = std::chrono::system_clock;

json stateful_set(int replicas, json extra_spec = json::object()) {
  json set{{"metadata", {{"name", "db"}, {"namespace", "prod"}, {"uid", "set-uid"}, {"resourceVersion", "41"},
                         {"creationTimestamp", "2026-01-02T03:04:05Z"}, {"generation", 3}}},
           {"spec", {{"replicas", replicas}, {"selector", {{"matchLabels", {{"app", "db"}}}}}}},
           {"status", {{"replicas", 1}}}};
  set["spec"].merge_patch(extra_spec);
  return set;
}

// ---- the Scale ------------------------------------------------------------------------

TEST(Scale, AStatefulSetShowsItsReplicasSelectorAndIdentity) {
  const auto scale = kl::scale_of(stateful_set(2));
  ASSERT_TRUE(scale) << scale.error();
  EXPECT_EQ(*scale, json::parse(R"({
    "kind": "Scale", "apiVersion": "autoscaling/v1",
    "metadata": {"name": "db", "namespace": "prod", "uid": "set-uid", "resourceVersion": "41",
                 "creationTimestamp": "2026-01-02T03:04:05Z"},
    "spec": {"replicas": 2}, "status": {"replicas": 1, "selector": "app=db"}})"));
}

TEST(Scale, ZeroReplicasAreLeftOutAsAutoscalingV1OmitsThem) {
  json set = stateful_set(0);
  set.erase("status");
  const auto scale = kl::scale_of(set);
  ASSERT_TRUE(scale);
  EXPECT_EQ((*scale)["spec"], json::object());
  EXPECT_EQ((*scale)["status"], json::parse(R"({"replicas": 0, "selector": "app=db"})"));
}

TEST(Scale, SelectorsPrintAsLabelSelectorAsSelectorWritesThem) {
  struct Case {
    const char* what;
    json selector;
    std::string text;
  };
  const std::vector<Case> cases = {
      {"no selector", nullptr, ""},
      {"an empty selector", json::object(), ""},
      {"labels in key order", {{"matchLabels", {{"tier", "db"}, {"app", "supabase"}}}}, "app=supabase,tier=db"},
      {"expressions sorted with the labels, values sorted",
       {{"matchLabels", {{"b", "1"}}},
        {"matchExpressions",
         {{{"key", "c"}, {"operator", "In"}, {"values", {"y", "x"}}},
          {{"key", "a"}, {"operator", "NotIn"}, {"values", {"q"}}},
          {{"key", "d"}, {"operator", "Exists"}},
          {{"key", "e"}, {"operator", "DoesNotExist"}}}}},
       "a notin (q),b=1,c in (x,y),d,!e"},
  };
  for (const auto& c : cases) EXPECT_EQ(kl::selector_string(c.selector), c.text) << c.what;
}

TEST(Scale, ACustomResourceUsesItsCrdsPaths) {
  const json crd = json::parse(R"({"spec": {"versions": [
      {"name": "v1", "subresources": {"scale": {"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.ready",
                                                "labelSelectorPath": ".status.selector"}}},
      {"name": "v2", "subresources": {"status": {}}}]}})");
  const auto paths = kl::crd_scale_paths(crd, "v1");
  ASSERT_TRUE(paths);
  EXPECT_FALSE(kl::crd_scale_paths(crd, "v2"));
  EXPECT_FALSE(kl::crd_scale_paths(crd, "v3"));
  json cr{{"metadata", {{"name", "c"}}}, {"spec", {{"size", 3}}}, {"status", {{"ready", 2}, {"selector", "x=y"}}}};
  const auto scale = kl::scale_of(cr, *paths);
  ASSERT_TRUE(scale);
  EXPECT_EQ((*scale)["spec"]["replicas"], 3);
  EXPECT_EQ((*scale)["status"], json::parse(R"({"replicas": 2, "selector": "x=y"})"));
  // Writing through the Scale sets the CRD's path, creating what is missing.
  EXPECT_EQ(kl::with_replicas(cr, 5, *paths)["spec"]["size"], 5);
  EXPECT_EQ(kl::with_replicas(json{{"metadata", json::object()}}, 1, *paths)["spec"]["size"], 1);
  // ScaleREST.Get: a missing spec replicas field is an error, not 0.
  cr["spec"].erase("size");
  const auto missing = kl::scale_of(cr, *paths);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error(), "the spec replicas field \".spec.size\" does not exist");
}

TEST(Scale, ValidationAndDecodingRefuseWhatTheApiServerRefuses) {
  struct Case {
    const char* what;
    json scale;
    std::optional<long long> replicas;  // nullopt: a decode error
    std::string invalid;                // ValidateScale's message, empty when valid
  };
  const std::vector<Case> cases = {
      {"three", {{"spec", {{"replicas", 3}}}}, 3, ""},
      {"absent is zero (omitempty int32)", {{"spec", json::object()}}, 0, ""},
      {"no spec at all", json::object(), 0, ""},
      {"negative", {{"spec", {{"replicas", -1}}}}, -1, "spec.replicas: Invalid value: -1: must be greater than or equal to 0"},
      {"a string", {{"spec", {{"replicas", "3"}}}}, std::nullopt, ""},
      {"a fraction", {{"spec", {{"replicas", 1.5}}}}, std::nullopt, ""},
      {"beyond int32", {{"spec", {{"replicas", 4294967296LL}}}}, std::nullopt, ""},
  };
  for (const auto& c : cases) {
    const auto r = kl::scale_replicas(c.scale);
    ASSERT_EQ(r.has_value(), c.replicas.has_value()) << c.what;
    if (!r) {
      EXPECT_NE(r.error().find("spec.replicas of type int32"), std::string::npos) << c.what << ": " << r.error();
      continue;
    }
    EXPECT_EQ(*r, *c.replicas) << c.what;
    const auto errs = kl::validate_scale(c.scale);
    if (c.invalid.empty()) {
      EXPECT_TRUE(errs.empty()) << c.what;
    } else {
      ASSERT_EQ(errs.size(), 1u) << c.what;
      EXPECT_EQ(errs[0].field, "spec.replicas");
      EXPECT_EQ(errs[0].message, c.invalid);
    }
  }
}

TEST(Scale, TheTableHasPrintScalesColumns) {
  const auto scale = kl::scale_of(stateful_set(2));
  ASSERT_TRUE(scale);
  const auto now = *bo::parse_rfc3339("2026-01-02T03:06:05Z");
  const json table = kl::scale_table(*scale, now, "");
  std::vector<std::string> names;
  for (const auto& c : table["columnDefinitions"]) names.push_back(c["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"Name", "Desired", "Available", "Age"}));
  ASSERT_EQ(table["rows"].size(), 1u);
  EXPECT_EQ(table["rows"][0]["cells"], json::parse(R"(["db", 2, 1, "2m"])"));
  EXPECT_EQ(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
  EXPECT_FALSE(kl::scale_table(*scale, now, "None")["rows"][0].contains("object"));
}

// ---- graceful deletion of Pods ------------------------------------------------------------

json running_pod() {
  return {{"metadata", {{"name", "p"}, {"uid", "u"}}},
          {"spec", {{"nodeName", "kube-local-node"}, {"terminationGracePeriodSeconds", 30}}},
          {"status", {{"phase", "Running"}}}};
}

TEST(PodDeletion, FollowsCheckGracefulDeleteAndBeforeDelete) {
  const auto now = *bo::parse_rfc3339("2026-03-04T05:06:00Z");
  using K = kl::PodDeletion::Kind;
  struct Case {
    const char* what;
    json pod;
    json options;
    bool running;
    K kind;
    long long grace;
    std::string timestamp;
  };
  json unscheduled = running_pod();
  unscheduled["spec"].erase("nodeName");
  json succeeded = running_pod();
  succeeded["status"]["phase"] = "Succeeded";
  json failed = running_pod();
  failed["status"]["phase"] = "Failed";
  json no_default = running_pod();
  no_default["spec"].erase("terminationGracePeriodSeconds");
  json deleting = running_pod();
  deleting["metadata"]["deletionTimestamp"] = "2026-03-04T05:06:30Z";  // 30 s from 05:06:00
  deleting["metadata"]["deletionGracePeriodSeconds"] = 30;
  json finalizing = running_pod();
  finalizing["metadata"]["deletionTimestamp"] = "2026-03-04T05:06:00Z";
  finalizing["metadata"]["deletionGracePeriodSeconds"] = 0;
  const std::vector<Case> cases = {
      {"the pod's own grace period", running_pod(), json::object(), true, K::kGraceful, 30, "2026-03-04T05:06:30Z"},
      {"the request's grace period", running_pod(), {{"gracePeriodSeconds", 5}}, true, K::kGraceful, 5, "2026-03-04T05:06:05Z"},
      {"a null grace period is none", running_pod(), {{"gracePeriodSeconds", nullptr}}, true, K::kGraceful, 30,
       "2026-03-04T05:06:30Z"},
      {"grace 0 deletes now", running_pod(), {{"gracePeriodSeconds", 0}}, true, K::kGraceful, 0, "2026-03-04T05:06:00Z"},
      {"a negative grace is 1 s", running_pod(), {{"gracePeriodSeconds", -7}}, true, K::kGraceful, 1, "2026-03-04T05:06:01Z"},
      {"a pod on no node goes now", unscheduled, json::object(), true, K::kGraceful, 0, "2026-03-04T05:06:00Z"},
      {"a Succeeded pod goes now", succeeded, json::object(), true, K::kGraceful, 0, "2026-03-04T05:06:00Z"},
      {"a Failed pod goes now", failed, {{"gracePeriodSeconds", 10}}, true, K::kGraceful, 0, "2026-03-04T05:06:00Z"},
      {"without a default the pod goes now", no_default, json::object(), true, K::kGraceful, 0, "2026-03-04T05:06:00Z"},
      {"a pod with no process goes now (kube-local)", running_pod(), json::object(), false, K::kGraceful, 0,
       "2026-03-04T05:06:00Z"},
      {"a second delete without grace changes nothing", deleting, json::object(), true, K::kPending, 30, ""},
      {"a longer grace changes nothing", deleting, {{"gracePeriodSeconds", 60}}, true, K::kPending, 30, ""},
      {"an equal grace changes nothing", deleting, {{"gracePeriodSeconds", 30}}, true, K::kPending, 30, ""},
      {"a shorter grace moves the deletion time", deleting, {{"gracePeriodSeconds", 10}}, true, K::kGraceful, 10,
       "2026-03-04T05:06:10Z"},
      {"the kubelet's grace 0 ends it", deleting, {{"gracePeriodSeconds", 0}}, true, K::kGraceful, 0,
       "2026-03-04T05:06:00Z"},
      {"a deletion left at grace 0 is finished", finalizing, json::object(), true, K::kNotGraceful, 0, ""},
  };
  for (const auto& c : cases) {
    const auto d = kl::plan_pod_deletion(c.pod, c.options, c.running, now);
    EXPECT_EQ(d.kind, c.kind) << c.what;
    if (d.kind != K::kNotGraceful) {
      EXPECT_EQ(d.grace, c.grace) << c.what;
    }
    EXPECT_EQ(d.deletion_timestamp, c.timestamp) << c.what;
  }
}

TEST(PodDeletion, TheKubeletWaitsTheDeletionGraceAtLeastTwoSeconds) {
  json pod = running_pod();
  EXPECT_EQ(kl::kubelet_grace_seconds(pod), 30);
  pod["metadata"]["deletionGracePeriodSeconds"] = 7;
  EXPECT_EQ(kl::kubelet_grace_seconds(pod), 7);
  pod["metadata"]["deletionGracePeriodSeconds"] = 0;  // forced: still the minimum shutdown window
  EXPECT_EQ(kl::kubelet_grace_seconds(pod), 2);
  pod["metadata"].erase("deletionGracePeriodSeconds");
  pod["spec"].erase("terminationGracePeriodSeconds");
  EXPECT_EQ(kl::kubelet_grace_seconds(pod), 30);
}

// ---- the StatefulSet controller -----------------------------------------------------------

json set_pod(int ordinal, const std::string& phase = "Running", bool ready = true, bool deleting = false) {
  json p{{"metadata", {{"name", "db-" + std::to_string(ordinal)}}}, {"status", json::object()}};
  if (!phase.empty()) p["status"]["phase"] = phase;
  p["status"]["conditions"] = json::array(
      {{{"type", "Ready"}, {"status", ready ? "True" : "False"}, {"lastTransitionTime", "2026-01-01T00:00:00Z"}}});
  if (deleting) p["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:30Z";
  return p;
}

TEST(StatefulSetController, OrdinalsComeFromTheSetsName) {
  EXPECT_EQ(kl::stateful_ordinal("db", "db-0"), 0);
  EXPECT_EQ(kl::stateful_ordinal("db", "db-12"), 12);
  EXPECT_EQ(kl::stateful_ordinal("db", "db-x"), std::nullopt);
  EXPECT_EQ(kl::stateful_ordinal("db", "db-"), std::nullopt);
  EXPECT_EQ(kl::stateful_ordinal("db", "dbx-0"), std::nullopt);
  EXPECT_EQ(kl::stateful_ordinal("db", "db-1234567890"), std::nullopt);
}

TEST(StatefulSetController, PlansOneStepAtATimeAndNeverRemakesAPodThatIsStillTerminating) {
  struct Case {
    const char* what;
    json set;
    std::vector<json> pods;
    std::vector<int> create;
    std::vector<std::string> remove;
  };
  const json parallel = {{"podManagementPolicy", "Parallel"}};
  const std::vector<Case> cases = {
      {"the first pod", stateful_set(1), {}, {0}, {}},
      {"one at a time", stateful_set(3), {}, {0}, {}},
      {"the next once the last is Running and Ready", stateful_set(3), {set_pod(0)}, {1}, {}},
      {"not while the last is not Ready", stateful_set(3), {set_pod(0, "Running", false)}, {}, {}},
      {"not while the last is Pending", stateful_set(3), {set_pod(0, "Pending", false)}, {}, {}},
      {"not while the last has no status", stateful_set(3), {set_pod(0, "", false)}, {}, {}},
      {"nothing when all are there", stateful_set(2), {set_pod(0), set_pod(1)}, {}, {}},
      {"pod 0 is not made again while the old one terminates", stateful_set(1), {set_pod(0, "Running", true, true)}, {}, {}},
      {"scaled to 0: the pod is deleted", stateful_set(0), {set_pod(0)}, {}, {"db-0"}},
      {"scaled to 0: a terminating pod is waited for", stateful_set(0), {set_pod(0, "Running", true, true)}, {}, {}},
      {"scaled down: the highest ordinal first", stateful_set(1), {set_pod(0), set_pod(1), set_pod(2)}, {}, {"db-2"}},
      {"scaled down: the next only once the last is gone", stateful_set(1),
       {set_pod(0), set_pod(1), set_pod(2, "Running", true, true)}, {}, {}},
      {"scaled down: an unhealthy higher pod waits for the first unhealthy one", stateful_set(0),
       {set_pod(0, "Running", false), set_pod(1, "Running", false)}, {}, {}},
      {"scaled down: a healthy highest pod goes though a lower one is unhealthy", stateful_set(0), {set_pod(0, "Running", false), set_pod(1)}, {},
       {"db-1"}},
      {"scaled down only once the remaining replicas are healthy", stateful_set(1),
       {set_pod(0, "Running", false), set_pod(1)}, {}, {}},
      {"Parallel makes all at once", stateful_set(3, parallel), {}, {0, 1, 2}, {}},
      {"Parallel makes the missing around a terminating one", stateful_set(3, parallel),
       {set_pod(1, "Running", true, true)}, {0, 2}, {}},
      {"Parallel deletes all condemned at once", stateful_set(0, parallel),
       {set_pod(0), set_pod(1, "Running", true, true), set_pod(2, "Pending", false)}, {}, {"db-2", "db-0"}},
      {"pods of other names are not the set's ordinals", stateful_set(1), {json{{"metadata", {{"name", "other-0"}}}}}, {0}, {}},
  };
  for (const auto& c : cases) {
    const auto plan = kl::plan_stateful_set(c.set, c.pods);
    EXPECT_EQ(plan.create, c.create) << c.what;
    EXPECT_EQ(plan.remove, c.remove) << c.what;
  }
}

TEST(StatefulSetController, StatusCountsTheSetsPods) {
  const auto now = *bo::parse_rfc3339("2026-01-01T00:01:00Z");
  json set = stateful_set(3);
  set["status"]["conditions"] = json::array({{{"type", "Kept"}}});
  const json st = kl::stateful_set_status(set, {set_pod(0), set_pod(1, "Running", false), set_pod(2, "", false)}, now);
  EXPECT_EQ(st["replicas"], 2);  // a pod without a phase is not created yet
  EXPECT_EQ(st["readyReplicas"], 1);
  EXPECT_EQ(st["availableReplicas"], 1);
  EXPECT_EQ(st["currentReplicas"], 2);
  EXPECT_EQ(st["updatedReplicas"], 2);
  EXPECT_EQ(st["observedGeneration"], 3);
  EXPECT_EQ(st["conditions"], set["status"]["conditions"]);
  // Terminating pods count as replicas (and as ready while Ready) but not as current.
  const json terminating = kl::stateful_set_status(set, {set_pod(0, "Running", true, true)}, now);
  EXPECT_EQ(terminating["replicas"], 1);
  EXPECT_EQ(terminating["readyReplicas"], 1);
  EXPECT_FALSE(terminating.contains("currentReplicas"));
  // No pods: zeros, the omitempty ones left out; availableReplicas always written.
  const json none = kl::stateful_set_status(stateful_set(0), {}, now);
  EXPECT_EQ(none["replicas"], 0);
  EXPECT_EQ(none["availableReplicas"], 0);
  EXPECT_FALSE(none.contains("readyReplicas"));
  EXPECT_FALSE(none.contains("currentReplicas"));
  EXPECT_FALSE(none.contains("updatedReplicas"));
  // minReadySeconds: ready since 00:00:00, available only 90 s later.
  json slow = stateful_set(1, {{"minReadySeconds", 90}});
  EXPECT_EQ(kl::stateful_set_status(slow, {set_pod(0)}, now)["availableReplicas"], 0);
  EXPECT_EQ(kl::stateful_set_status(slow, {set_pod(0)}, now + std::chrono::seconds(30))["availableReplicas"], 1);
}

// ---- readiness probes ---------------------------------------------------------------------

TEST(ReadinessProbe, ATcpSocketProbeWithTheApisDefaults) {
  struct Case {
    const char* what;
    json container;
    int port;  // 0: no probe kube-local runs
  };
  const json ports = {{{"name", "pg"}, {"containerPort", 5432}}};
  const std::vector<Case> cases = {
      {"a numeric port", {{"readinessProbe", {{"tcpSocket", {{"port", 5432}}}}}}, 5432},
      {"a named port", {{"ports", ports}, {"readinessProbe", {{"tcpSocket", {{"port", "pg"}}}}}}, 5432},
      {"a number as a string", {{"readinessProbe", {{"tcpSocket", {{"port", "6543"}}}}}}, 6543},
      {"an unknown port name", {{"ports", ports}, {"readinessProbe", {{"tcpSocket", {{"port", "http"}}}}}}, 0},
      {"out of range", {{"readinessProbe", {{"tcpSocket", {{"port", 70000}}}}}}, 0},
      {"an exec probe is not run", {{"readinessProbe", {{"exec", {{"command", {"pg_isready"}}}}}}}, 0},
      {"no probe", json::object(), 0},
  };
  for (const auto& c : cases) {
    const auto p = kl::tcp_readiness_probe(c.container);
    EXPECT_EQ(p ? p->port : 0, c.port) << c.what;
  }
  const auto p = kl::tcp_readiness_probe(cases[0].container);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->initial_delay_seconds, 0);
  EXPECT_EQ(p->period_seconds, 10);
  EXPECT_EQ(p->timeout_seconds, 1);
  EXPECT_EQ(p->success_threshold, 1);
  EXPECT_EQ(p->failure_threshold, 3);
  const auto tuned = kl::tcp_readiness_probe(
      {{"readinessProbe", {{"tcpSocket", {{"port", 1}}}, {"initialDelaySeconds", 2}, {"periodSeconds", 1},
                           {"timeoutSeconds", 3}, {"successThreshold", 2}, {"failureThreshold", 1}}}});
  ASSERT_TRUE(tuned);
  EXPECT_EQ(tuned->initial_delay_seconds, 2);
  EXPECT_EQ(tuned->period_seconds, 1);
  EXPECT_EQ(tuned->timeout_seconds, 3);
  EXPECT_EQ(tuned->success_threshold, 2);
  EXPECT_EQ(tuned->failure_threshold, 1);
}

TEST(ReadinessProbe, ReadinessFollowsTheThresholdsOfResultsInARow) {
  kl::TcpProbe probe;
  probe.success_threshold = 2;
  probe.failure_threshold = 3;
  kl::ProbeState s;  // a readiness probe starts as failed: not ready
  std::string trace;
  for (bool result : {true, false, true, true, false, false, true, false, false, false}) {
    s = kl::after_probe(s, result, probe);
    trace += s.ready ? "R" : "-";
  }
  // Ready after two successes in a row; unready only after three failures in a row.
  EXPECT_EQ(trace, "---RRRRRR-");
}

TEST(ReadinessProbe, ConnectsToTheLoopbackPort) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const int port = ntohs(a.sin_port);
  // Bound but not listening: refused.
  EXPECT_FALSE(kl::tcp_connects(port, std::chrono::milliseconds(500)));
  ASSERT_EQ(::listen(fd, 1), 0);
  EXPECT_TRUE(kl::tcp_connects(port, std::chrono::milliseconds(500)));
  ::close(fd);
}

}  // namespace
