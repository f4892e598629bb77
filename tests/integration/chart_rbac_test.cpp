// The chart's RBAC is exactly what the operator uses: the operator runs as
// the chart's service account under its rendered RBAC (kube-local with
// --authorize and --audit-log) through everything it does: scheduled backups
// and their history, retention, offsite copies, daily verifications and their
// history, a drill whose failed validation freezes and then unfreezes its
// target, Databasus exposed and tampered with and removed, leader election.
// Every request it makes must be allowed, and every granted verb must have
// been used.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "chart_operator.h"
#include "harness.h"
#include "reconcile/caches.h"

using namespace bo::kube;
using nlohmann::json;
using testing_support::Child;
using testing_support::eventually;
using testing_support::KubeLocal;

namespace {

std::string rules_file(const std::filesystem::path& dir) {
  const json rules = json::array({
      {{"selector", "backup.si.dev/action=full-backup"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 60},
                    {"message", R"({"backupId":"base_{{pod}}","checksum":"sha256:)" + std::string(64, 'f') +
                                    R"(","type":"full","walArchived":true,"startTime":"{{env:BACKUP_SLOT}}","finishTime":"{{env:BACKUP_SLOT}}","sizeBytes":1})"}}}},
      {{"selector", "backup.si.dev/action=scratch"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 60},
                    {"message", R"({"restored":"{{env:BACKUP_ID}}","recovered":true,"recoverySeconds":1,"checks":[)"
                                R"({"name":"recovered","passed":true},{"name":"recovery-target","passed":true},)"
                                R"({"name":"system-identifier","passed":true}]})"}}}},
      {{"selector", "backup.si.dev/action in (restore,verify)"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 60},
                    {"message", R"({"restored":"{{env:BACKUP_ID}}","checksum":"{{env:BACKUP_CHECKSUM}}"})"}}}},
      {{"selector", "backup.si.dev/check=integrity,backup.si.dev/validation-attempt=1"},
       {"outcome", {{"result", "Failed"}, {"afterSeconds", 60}, {"exitCode", 1}, {"message", "mismatch"}}}},
      {{"selector", "backup.si.dev/action=offsite-copy"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 60},
                    {"message", R"({"copied":"{{env:OFFSITE_BACKUP_ID}}","immutableUntil":"{{now}}"})"}}}},
      {{"selector", "backup.si.dev/action=retain"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 60}, {"message", R"({"deleted":[]})"}}}},
      {{"selector", "backup.si.dev/action=validate"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 60}, {"message", "ok"}}}},
      {{"selector", "backup.si.dev/action=restore-in-place"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 60},
                    {"message", R"({"restored":"{{env:BACKUP_ID}}","checksum":"{{env:BACKUP_CHECKSUM}}","recovered":true,)"
                                R"("recoverySeconds":1,"systemIdentifier":"7","aside":"{{env:ASIDE_PATH}}","checks":[)"
                                R"({"name":"recovered","passed":true},{"name":"recovery-target","passed":true},)"
                                R"({"name":"system-identifier","passed":true}]})"}}}},
      {{"selector", "backup.si.dev/action=check-database"},
       {"outcome", {{"result", "Succeeded"}, {"afterSeconds", 60},
                    {"message", R"({"restored":"{{env:BACKUP_ID}}","recovered":true,"checks":[)"
                                R"({"name":"recovered","passed":true},{"name":"system-identifier","passed":true},)"
                                R"({"name":"writes-released","passed":true}]})"}}}},
  });
  return testing_support::write_file(dir / "rules.json", rules.dump());
}

// (group, resource, verb) the operator was allowed; and anything it was refused.
struct Usage {
  std::set<std::string> used;
  std::vector<std::string> denied;
};

std::string key(const std::string& group, const std::string& resource, const std::string& verb) {
  return group + "|" + resource + "|" + verb;
}

Usage read_audit(const std::filesystem::path& log, const std::string& user) {
  Usage u;
  std::ifstream in(log);
  for (std::string line; std::getline(in, line);) {
    const json e = json::parse(line, nullptr, false);
    if (!e.is_object() || e.value("user", "") != user) continue;
    const std::string k = e.contains("path") ? key("path", e.value("path", ""), e.value("verb", ""))
                                             : key(e.value("group", ""), e.value("resource", ""), e.value("verb", ""));
    if (e.value("allowed", false)) u.used.insert(k);
    else u.denied.push_back(line);
  }
  return u;
}

TEST(ChartRbac, EveryRequestIsAllowedAndEveryGrantIsUsed) {
  const auto dir = testing_support::make_temp_dir("rbac");
  const auto audit = dir / "audit.jsonl";
  KubeLocal server({"--authorize", "--audit-log", audit.string(), "--time-scale", "1800", "--pod-rules", rules_file(dir)});
  ASSERT_EQ(server.kubectl("apply -f " + std::string(SOURCE_DIR) + "/crds/").exit_code, 0);
  const auto chart = testing_support::install_chart(server, dir);
  auto admin = server.client();
  for (const char* ns : {"app", "app-verify", "app-drill"})
    ASSERT_TRUE(admin->create(resources::kNamespaces, "", {{"metadata", {{"name", ns}}}}));
  // Each non-production target holds its own read-only storage Secret (spec.verification.storageSecretRef).
  for (const char* ns : {"app-verify", "app-drill"})
    ASSERT_TRUE(admin->create(resources::kSecrets, ns,
                              {{"metadata", {{"name", "walg-read-only"}}},
                               {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "ro"},
                                               {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY-rbac"}, {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
  ASSERT_TRUE(admin->create(resources::kSecrets, "app",
                            {{"metadata", {{"name", "walg-storage"}}},
                             {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                                             {"WALG_AWS_SECRET_ACCESS_KEY", "CANARY-rbac"}, {"WALG_AWS_ENDPOINT", "https://s3.local"}}}}));
  ASSERT_TRUE(admin->create(resources::kSecrets, "app", {{"metadata", {{"name", "walg-encryption"}}},
                                                         {"stringData", {{"WALG_LIBSODIUM_KEY", "CANARY-rbac"}}}}));
  // Named by no policy: the operator may see that it exists, never its data.
  ASSERT_TRUE(admin->create(resources::kSecrets, "app", {{"metadata", {{"name", "bystander"}}},
                                                         {"stringData", {{"token", "CANARY-bystander"}}}}));
  // The data volume, checked (get) before any backup Job.
  ASSERT_TRUE(admin->create(resources::kPersistentVolumeClaims, "app",
                            {{"metadata", {{"name", "supabase-db-data"}}},
                             {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
  // Policies naming their database by workload (read with get), each restored in place below
  // (scaled through the scale subresource): a StatefulSet, whose pod kube-local's controller
  // makes and deletes, and a Deployment, whose ReplicaSet and pod the test plays.
  auto workload_policy = [&](const std::string& name, const std::string& kind, const std::string& workload) {
    return json{{"metadata", {{"name", name}}},
                {"spec", {{"addons", {"supabase-walg"}},
                          {"suspend", true},
                          {"database", {{"workloadRef", {{"kind", kind}, {"name", workload}}},
                                        {"runAsUser", 101}, {"runAsGroup", 102}, {"host", workload + ".app.svc"}}},
                          {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                       {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                          {"verification", {{"enabled", false}, {"image", "postgres:15"}}}}}};
  };
  ASSERT_TRUE(admin->create(bo::reconcile::kBackupPolicies, "app", workload_policy("by-workload", "StatefulSet", "supabase-db")));
  ASSERT_TRUE(admin->create(bo::reconcile::kBackupPolicies, "app", workload_policy("by-deployment", "Deployment", "supabase-db2")));
  auto database_pod = [](const std::string& app, const std::string& claim) {
    return json{{"metadata", {{"labels", {{"app", app}}}}},
                {"spec", {{"containers", {{{"name", "postgres"}, {"image", "postgres:15"},
                                           {"volumeMounts", {{{"name", "data"}, {"mountPath", "/var/lib/postgresql/data"}}}}}}},
                          {"volumes", {{{"name", "data"}, {"persistentVolumeClaim", {{"claimName", claim}}}}}}}}};
  };
  for (const char* claim : {"supabase-db-pgdata", "supabase-db2-pgdata"})
    ASSERT_TRUE(admin->create(resources::kPersistentVolumeClaims, "app",
                              {{"metadata", {{"name", claim}}},
                               {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "1Gi"}}}}}}}}));
  const Resource sts_res{"apps", "v1", "statefulsets", "StatefulSet", true};
  const Resource rs_res{"apps", "v1", "replicasets", "ReplicaSet", true};
  ASSERT_TRUE(admin->create(sts_res, "app",
                            {{"metadata", {{"name", "supabase-db"}}},
                             {"spec", {{"replicas", 1}, {"serviceName", "supabase-db"},
                                       {"selector", {{"matchLabels", {{"app", "supabase-db"}}}}},
                                       {"template", database_pod("supabase-db", "supabase-db-pgdata")}}}}));
  auto deploy = admin->create(resources::kDeployments, "app",
                              {{"metadata", {{"name", "supabase-db2"}}},
                               {"spec", {{"replicas", 1}, {"selector", {{"matchLabels", {{"app", "supabase-db2"}}}}},
                                         {"template", database_pod("supabase-db2", "supabase-db2-pgdata")}}}});
  ASSERT_TRUE(deploy);
  auto owned_by = [](const json& owner, const char* kind) {
    return json::array({{{"apiVersion", "apps/v1"}, {"kind", kind}, {"name", owner["metadata"]["name"]},
                         {"uid", owner["metadata"]["uid"]}, {"controller", true}}});
  };
  json rs_spec = {{"replicas", 1}, {"selector", {{"matchLabels", {{"app", "supabase-db2"}}}}},
                  {"template", database_pod("supabase-db2", "supabase-db2-pgdata")}};
  auto rs = admin->create(rs_res, "app", {{"metadata", {{"name", "supabase-db2-5d8f9c"}, {"ownerReferences", owned_by(*deploy, "Deployment")}}},
                                          {"spec", rs_spec}});
  ASSERT_TRUE(rs);
  json pod2 = database_pod("supabase-db2", "supabase-db2-pgdata");
  pod2["metadata"]["name"] = "supabase-db2-5d8f9c-x1";
  pod2["metadata"]["ownerReferences"] = owned_by(*rs, "ReplicaSet");
  ASSERT_TRUE(admin->create(resources::kPods, "app", pod2));
  // Their catalogs: one verified backup each (the policies are suspended: nothing else happens to them).
  for (const char* name : {"by-workload", "by-deployment"})
    for (int attempt = 0; attempt < 10; ++attempt) {
      auto p = admin->get(bo::reconcile::kBackupPolicies, "app", name);
      ASSERT_TRUE(p);
      (*p)["status"]["backups"] = {{{"id", "base_W"}, {"checksum", "sha256:" + std::string(64, 'e')}, {"type", "full"},
                                    {"verified", true}, {"startTime", "2026-11-20T02:00:00Z"},
                                    {"completionTime", "2026-11-20T02:05:00Z"}, {"keptFor", json::array()}}};
      if (admin->update_status(bo::reconcile::kBackupPolicies, "app", *p)) break;
    }
  // Every schedule hourly (an hour passes every two seconds), one of each kind kept.
  ASSERT_TRUE(admin->create(bo::reconcile::kBackupPolicies, "app",
                            {{"metadata", {{"name", "db"}}},
                             {"spec", {{"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "supabase-db.app.svc"}}},
                                       {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                                    {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                                       {"schedule", {{"backup", "0 0 1 1 *"}, {"fullBackup", "10 * * * *"}}},
                                       {"retention", {{"daily", 1}, {"weekly", 1}, {"monthly", 1}}},
                                       {"verification", {{"targetNamespace", "app-verify"}, {"schedule", "20 * * * *"},
                                                         {"image", "postgres:15"},
                                                         {"storageSecretRef", {{"name", "walg-read-only"}}},
                                                         {"allowedTargetNamespaces", {"app-drill"}}, {"checkImages", {"busybox"}}}},
                                       {"offsite", {{"secretRef", {{"name", "walg-storage"}}}, {"schedule", "30 * * * *"}}},
                                       {"historyLimits", {{"successful", 1}, {"failed", 1}}}}}}));
  Child op(chart.args({"--time-scale", "1800", "--metrics-secure", "--metrics-bind-address", "127.0.0.1:0"}),
           dir / "operator.log");
  const int metrics_port = testing_support::listening_port(op, "metrics");
  ASSERT_GT(metrics_port, 0) << op.log();
  ASSERT_TRUE(chart.serve_webhook(server, op)) << op.log();
  auto used = [&](const std::string& k) { return read_audit(audit, chart.username).used.count(k) > 0; };
  auto wait_used = [&](const std::string& k) {
    return eventually([&] { return used(k); }, std::chrono::seconds(60));
  };

  // Backups, their history, retention, offsite copies, verifications and their history.
  EXPECT_TRUE(wait_used(key("batch", "jobs", "delete"))) << op.log();
  EXPECT_TRUE(wait_used(key("backup.si.dev", "restorerequests", "delete"))) << op.log();

  // Databasus: exposed by a Service (the Event repeats: patch), tampered with, restored.
  ASSERT_TRUE(eventually([&] { return admin->get(resources::kDeployments, "app", "db-databasus").has_value(); }));
  ASSERT_TRUE(admin->create(resources::kServices, "app", {{"metadata", {{"name", "peek"}}},
                                                          {"spec", {{"selector", {{"backup.si.dev/component", "databasus"}}},
                                                                    {"ports", {{{"port", 80}}}}}}}));
  EXPECT_TRUE(wait_used(key("", "events", "patch")));
  ASSERT_TRUE(admin->remove(resources::kServices, "app", "peek"));
  ASSERT_TRUE(admin->patch(resources::kNetworkPolicies, "app", "db-databasus", PatchType::kMerge,
                           {{"spec", {{"ingress", json::array({json::object()})}}}}));
  EXPECT_TRUE(wait_used(key("networking.k8s.io", "networkpolicies", "update")));
  ASSERT_TRUE(admin->patch(resources::kDeployments, "app", "db-databasus", PatchType::kJson,
                           json::array({{{"op", "add"}, {"path", "/spec/template/spec/hostNetwork"}, {"value", true}}})));
  EXPECT_TRUE(wait_used(key("apps", "deployments", "update")));

  // A restore whose validation fails freezes its target; a passing rerun lifts it.
  const std::string drill = testing_support::write_file(
      dir / "drill.yaml",
      "apiVersion: backup.si.dev/v1alpha1\nkind: RestoreRequest\nmetadata: {name: drill, namespace: app}\n"
      "spec: {policyRef: {name: db}, purpose: restore, targetNamespace: app-drill,"
      " validation: [{name: integrity, image: busybox, command: [check]}]}\n");
  ASSERT_TRUE(eventually([&] {
    auto p = admin->get(bo::reconcile::kBackupPolicies, "app", "db");
    return p && (*p)["status"].contains("lastVerifiedBackup");
  }, std::chrono::seconds(60)));
  // A request is decided on the operator's cache of the policy, which may
  // not hold the verified backup yet when the API already does: a request
  // refused for that (NoVerifiedBackup) is made again, a few times at most.
  auto drill_phase = [&](std::string* reason) {
    auto rr = admin->get(bo::reconcile::kRestoreRequests, "app", "drill");
    if (!rr) return std::string();
    for (const auto& c : (*rr).value("status", json::object()).value("conditions", json::array()))
      if (c.value("type", "") == "Blocked" && reason) *reason = c.value("reason", "");
    return (*rr).value("status", json::object()).value("phase", "");
  };
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto r = server.kubectl("apply -f " + drill);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::string phase, reason;
    ASSERT_TRUE(eventually([&] {
      phase = drill_phase(&reason);
      return !phase.empty() && phase != "Pending";
    }, std::chrono::seconds(60))) << server.kubectl("get rr drill -n app -o yaml").output;
    if (phase != "Blocked" || reason != "NoVerifiedBackup") break;
    ASSERT_EQ(server.kubectl("delete rr -n app drill --wait=true").exit_code, 0);
  }
  EXPECT_TRUE(wait_used(key("admissionregistration.k8s.io", "validatingadmissionpolicybindings", "create")))
      << server.kubectl("get rr drill -n app -o yaml").output;
  ASSERT_EQ(server.kubectl("annotate rr -n app drill backup.si.dev/rerun-validation=1").exit_code, 0);
  EXPECT_TRUE(wait_used(key("admissionregistration.k8s.io", "validatingadmissionpolicybindings", "delete")));
  ASSERT_EQ(server.kubectl("delete rr -n app drill --wait=true").exit_code, 0);

  // In-place restores: freeze, scale to 0, restore, scale back, check, lift.
  auto in_place = [&](const std::string& name, const std::string& policy) {
    const std::string f = testing_support::write_file(
        dir / (name + ".yaml"), "apiVersion: backup.si.dev/v1alpha1\nkind: RestoreRequest\nmetadata: {name: " + name +
                                    ", namespace: app}\nspec: {policyRef: {name: " + policy + "}, backupId: base_W}\n");
    auto r = server.kubectl("apply -f " + f);
    EXPECT_EQ(r.exit_code, 0) << r.output;
  };
  auto rr_phase = [&](const std::string& name) {
    auto rr = admin->get(bo::reconcile::kRestoreRequests, "app", name);
    return rr ? (*rr).value("status", json::object()).value("phase", "") : std::string();
  };
  in_place("in-place-sts", "by-workload");
  EXPECT_TRUE(eventually([&] { return rr_phase("in-place-sts") == "Succeeded"; }, std::chrono::seconds(90)))
      << server.kubectl("get rr in-place-sts -n app -o yaml").output << op.log();
  EXPECT_TRUE(wait_used(key("apps", "statefulsets/scale", "patch")));
  in_place("in-place-deploy", "by-deployment");
  EXPECT_TRUE(wait_used(key("apps", "deployments/scale", "patch")))
      << server.kubectl("get rr in-place-deploy -n app -o yaml").output;
  // Its ReplicaSet would now delete the pod.
  ASSERT_TRUE(admin->remove(resources::kPods, "app", "supabase-db2-5d8f9c-x1"));
  EXPECT_TRUE(eventually([&] { return rr_phase("in-place-deploy") == "Succeeded"; }, std::chrono::seconds(90)))
      << server.kubectl("get rr in-place-deploy -n app -o yaml").output;

  // Secure metrics: only a caller allowed GET /metrics (the chart's metrics-reader role) may scrape.
  ASSERT_TRUE(admin->create(resources::kServiceAccounts, "app", {{"metadata", {{"name", "prometheus"}}}}));
  ASSERT_TRUE(admin->create(resources::kServiceAccounts, "app", {{"metadata", {{"name", "nosy"}}}}));
  const Resource crb{"rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false};
  ASSERT_TRUE(admin->create(crb, "", {{"metadata", {{"name", "prometheus-metrics"}}},
                                      {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "ClusterRole"},
                                                   {"name", "bo-backup-operator-metrics-reader"}}},
                                      {"subjects", {{{"kind", "ServiceAccount"}, {"name", "prometheus"}, {"namespace", "app"}}}}}));
  auto token_of = [&](const std::string& sa) {
    const json tr = json::object();
    auto t = admin->request("POST", resources::kServiceAccounts.path("app", sa, "token"), &tr);
    return t ? (*t)["status"]["token"].get<std::string>() : std::string();
  };
  const std::string url = "https://127.0.0.1:" + std::to_string(metrics_port) + "/metrics";
  auto scrape = [&](const std::string& token) {
    return testing_support::run("curl -sk -o /dev/null -w '%{http_code}' " +
                                (token.empty() ? std::string() : "-H 'Authorization: Bearer " + token + "' ") + url)
        .output;
  };
  EXPECT_EQ(scrape(""), "401");
  EXPECT_EQ(scrape("not-a-token"), "401");
  EXPECT_EQ(scrape(token_of("nosy")), "403");
  EXPECT_EQ(scrape(token_of("prometheus")), "200");
  const std::string body = testing_support::run("curl -sk -H 'Authorization: Bearer " + token_of("prometheus") + "' " + url).output;
  EXPECT_NE(body.find("backup_operator_leader 1"), std::string::npos) << body.substr(0, 400);
  EXPECT_EQ(body.find("CANARY"), std::string::npos);

  // Removing the addon removes Databasus.
  ASSERT_TRUE(admin->patch(bo::reconcile::kBackupPolicies, "app", "db", PatchType::kMerge,
                           {{"spec", {{"addons", {"supabase-walg"}}}}}));
  // (Claims are deleted earlier too: a verification's scratch claim.)
  EXPECT_TRUE(wait_used(key("apps", "deployments", "delete")));
  EXPECT_TRUE(wait_used(key("", "persistentvolumeclaims", "delete")));

  // Now compare with what the chart grants.
  const Usage usage = read_audit(audit, chart.username);
  EXPECT_TRUE(usage.denied.empty()) << "the chart lacks permissions the operator needs:\n"
                                    << [&] {
                                         std::string all;
                                         for (const auto& d : usage.denied) all += d + "\n";
                                         return all;
                                       }();
  std::vector<json> roles;
  for (const auto& [kind, ns, name] : {std::tuple<std::string, std::string, std::string>{"clusterrole", "", "bo-backup-operator"},
                                       {"role", "backup-operator-system", "bo-backup-operator-leader-election"}}) {
    auto got = server.kubectl("get " + kind + " " + name + (ns.empty() ? "" : " -n " + ns) + " -o json");
    ASSERT_EQ(got.exit_code, 0) << got.output;
    roles.push_back(json::parse(got.output));
  }
  std::vector<std::string> unused;
  size_t granted = 0;
  for (const auto& role : roles)
    for (const auto& rule : role["rules"])
      for (const auto& verb : rule["verbs"]) {
        for (const auto& res : rule.value("resources", json::array()))
          for (const auto& group : rule.value("apiGroups", json::array())) {
            ++granted;
            const std::string k = key(group, res, verb);
            if (!usage.used.count(k)) unused.push_back(k);
          }
        for (const auto& path : rule.value("nonResourceURLs", json::array())) {
          ++granted;
          if (!usage.used.count(key("path", path, verb))) unused.push_back(key("path", path, verb));
        }
      }
  EXPECT_GT(granted, 30u);
  EXPECT_TRUE(unused.empty()) << "granted but never used (group|resource|verb):\n" << json(unused).dump(1) << "\nused:\n" << json(usage.used).dump(1);
  EXPECT_EQ(op.log().find("CANARY"), std::string::npos);
  // Secrets: lists and watches as metadata only, and no read of one no policy names.
  {
    std::ifstream in(audit);
    size_t metadata_reads = 0;
    for (std::string line; std::getline(in, line);) {
      const json e = json::parse(line, nullptr, false);
      if (!e.is_object() || e.value("user", "") != chart.username || e.value("resource", "") != "secrets") continue;
      const std::string verb = e.value("verb", "");
      if (verb == "get") {
        EXPECT_NE(e.value("name", ""), "bystander") << line;
      } else {
        EXPECT_EQ(e.value("as", ""), verb == "list" ? "PartialObjectMetadataList" : "PartialObjectMetadata") << line;
        ++metadata_reads;
      }
    }
    EXPECT_GT(metadata_reads, 0u);
  }
  // The operator and kube-local write into `dir` (logs, the audit log) until they stop.
  op.stop(SIGTERM);
  std::error_code ec;
  if (!HasFailure()) std::filesystem::remove_all(dir, ec);
}

}  // namespace
