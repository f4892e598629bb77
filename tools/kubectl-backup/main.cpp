// kubectl-backup: `kubectl backup …` for BackupPolicies and RestoreRequests,
// as `kubectl cnpg` is for CloudNativePG. kubectl runs any executable named
// kubectl-<name> on the PATH as `kubectl <name>` and passes it the rest of the
// command line (kubectl's "Extend kubectl with plugins"); its own global flags
// do not reach a plugin, so this one reads $KUBECONFIG (or ~/.kube/config, or
// the in-cluster service account) and takes -n/--namespace and --context
// itself. What it prints and creates is decided in src/cli/plugin.cpp.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <thread>

#include "cli/plugin.h"
#include "common/duration.h"
#include "kube/client.h"
#include "kube/config.h"
#include "reconcile/backup_jobs.h"
#include "reconcile/restore_plan.h"

namespace {

using json = nlohmann::json;
using bo::kube::Resource;

const Resource kPolicies{"backup.si.dev", "v1alpha1", "backuppolicies", "BackupPolicy", true};
const Resource kRequests{"backup.si.dev", "v1alpha1", "restorerequests", "RestoreRequest", true};

[[noreturn]] void die(const std::string& message) {
  std::cerr << "error: " << message << "\n";
  std::exit(1);
}

bo::SysTime now() { return std::chrono::system_clock::now(); }

// Prints the request's phase and message each time they change, until it ends
// or `timeout` passes; exit status 0 only when it Succeeded.
int follow(bo::kube::Client& client, const std::string& ns, const std::string& name, std::chrono::seconds timeout) {
  std::string last;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto rr = client.get(kRequests, ns, name);
    if (!rr) die("get restorerequest " + ns + "/" + name + ": " + rr.error().str());
    const auto p = bo::cli::progress(*rr, last);
    if (!p.line.empty()) {
      std::cout << "restorerequest/" << name << ": " << p.line << std::endl;
      last = p.line;
    }
    if (p.ended) return p.succeeded ? 0 : 1;
    if (std::chrono::steady_clock::now() > deadline) {
      std::cerr << "error: restorerequest/" << name << " had not ended after " << timeout.count()
                << " s; it goes on (kubectl get rr " << name << " -n " << ns << ")\n";
      return 2;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));  // a poll interval for a human, not a test
  }
}

int create_and_follow(bo::kube::Client& client, const std::string& ns, const json& request, bool wait,
                      std::chrono::seconds timeout) {
  const std::string name = request["metadata"]["name"];
  auto made = client.create(kRequests, ns, request);
  if (!made) die("create restorerequest " + ns + "/" + name + ": " + made.error().str());
  std::cout << "restorerequest/" << name << " created (" << request["spec"].value("purpose", "restore") << " of backup "
            << request["spec"].value("backupId", "latest") << " into namespace "
            << request["spec"].value("targetNamespace", "") << ")" << std::endl;
  return wait ? follow(client, ns, name, timeout) : 0;
}

// The logs of every pod of a Job (a run of a policy), or of every Job of a RestoreRequest.
int logs(bo::kube::Client& client, bo::kube::Transport& transport, const std::string& ns, const std::string& name) {
  std::vector<std::string> jobs;
  if (client.get(bo::kube::resources::kJobs, ns, name)) {
    jobs.push_back(name);
  } else if (client.get(kRequests, ns, name)) {
    auto l = client.list(bo::kube::resources::kJobs, "",
                         {std::string(bo::reconcile::kLabelRestoreRequest) + "=" + name, "", 0, "", ""});
    if (!l) die("list the Jobs of restorerequest " + name + ": " + l.error().str());
    for (const auto& j : (*l)["items"]) jobs.push_back(j["metadata"]["namespace"].get<std::string>() + "/" +
                                                       j["metadata"]["name"].get<std::string>());
    if (jobs.empty()) die("restorerequest " + ns + "/" + name + " has no Job (any more)");
  } else {
    die("no Job and no RestoreRequest named " + name + " in namespace " + ns);
  }
  for (const auto& job : jobs) {
    const auto slash = job.find('/');
    const std::string jns = slash == std::string::npos ? ns : job.substr(0, slash);
    const std::string jname = slash == std::string::npos ? job : job.substr(slash + 1);
    auto pods = client.list(bo::kube::resources::kPods, jns, {"batch.kubernetes.io/job-name=" + jname, "", 0, "", ""});
    if (!pods) die("list the pods of job " + jname + ": " + pods.error().str());
    if ((*pods)["items"].empty()) std::cout << "== job/" << jname << ": no pod (any more)\n";
    for (const auto& pod : (*pods)["items"]) {
      const std::string pname = pod["metadata"]["name"];
      for (const auto& c : pod["spec"].value("containers", json::array())) {
        const std::string cname = c.value("name", "");
        auto r = transport.send({"GET", bo::kube::resources::kPods.path(jns, pname, "log") + "?container=" + cname, "",
                                 "", std::chrono::milliseconds(0), "text/plain"});
        if (!r) die("logs of pod " + pname + ": " + r.error().str());
        std::cout << "== job/" << jname << " pod/" << pname << " container/" << cname << "\n";
        if (r->status != 200) {
          std::cout << "(no log: HTTP " << r->status << ")\n";
          continue;
        }
        std::cout << r->body << (r->body.empty() || r->body.back() == '\n' ? "" : "\n");
      }
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kubectl backup: BackupPolicies and RestoreRequests of backup-operator"};
  app.name("kubectl backup");
  app.require_subcommand(1);
  app.fallthrough();  // -n and the rest also after the subcommand, as kubectl users type them
  std::string ns, context, kubeconfig;
  bool all = false;
  app.add_option("-n,--namespace", ns, "the namespace (default: the kubeconfig context's)");
  app.add_option("--context", context, "the kubeconfig context to use");
  app.add_option("--kubeconfig", kubeconfig, "the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)");

  auto* status = app.add_subcommand("status", "a line per BackupPolicy: last backup, archiving, last verified, next slot, conditions not True");
  status->add_flag("-A,--all-namespaces", all, "every namespace");

  std::string policy;
  auto* list = app.add_subcommand("list", "the catalog of a BackupPolicy (status.backups)");
  list->add_option("policy", policy, "the BackupPolicy")->required();

  bool no_wait = false;
  std::string timeout_text = "30m";
  auto* verify = app.add_subcommand("verify", "verify the newest full backup now, then follow it to its outcome");
  verify->add_option("policy", policy, "the BackupPolicy")->required();
  std::string when = "now";
  verify->add_option("when", when, "now (the only choice: scheduled verifications come from spec.verification.schedule)")
      ->check(CLI::IsMember({"now", "NOW"}));
  verify->add_flag("--no-wait", no_wait, "create the RestoreRequest and return");
  verify->add_option("--timeout", timeout_text, "how long to follow it [30m]");

  bo::cli::RestoreOptions ro;
  bool latest = false, drill = false;
  auto* restore = app.add_subcommand("restore", "restore a backup (the newest verified one, or --id) into --to, then follow it");
  restore->add_option("policy", policy, "the BackupPolicy")->required();
  auto* latest_opt = restore->add_flag("--latest", latest, "the newest verified backup");
  auto* id_opt = restore->add_option("--id", ro.backup_id, "a backup id from the catalog (kubectl backup list)");
  latest_opt->excludes(id_opt);
  restore->add_option("--to", ro.to, "the target namespace")->required();
  restore->add_option("--point-in-time", ro.point_in_time, "recover up to this RFC 3339 time by WAL replay");
  restore->add_flag("--drill", drill, "a drill: restore into a scratch PostgreSQL in --to and check it there");
  restore->add_option("--name", ro.name, "the RestoreRequest's name (default: <policy>-restore-<time>)");
  restore->add_flag("--no-wait", no_wait, "create the RestoreRequest and return");
  restore->add_option("--timeout", timeout_text, "how long to follow it [30m]");

  std::string run;
  auto* logs_cmd = app.add_subcommand("logs", "the logs of a run (a Job's name, as in status.recentRuns) or of a RestoreRequest's Jobs");
  logs_cmd->add_option("name", run, "a Job or a RestoreRequest")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    die(e.what());  // one line, as a bad flag of backup-operator
  }
  if (restore->parsed() && !latest && id_opt->count() == 0) die("restore: one of --latest or --id is required");
  const auto timeout = bo::parse_duration(timeout_text);
  if (!timeout) die("--timeout: \"" + timeout_text + "\" is not a duration (for example 30m)");

  auto cfg = bo::kube::load_default_config(kubeconfig, context);
  if (!cfg) die(cfg.error().message);
  if (ns.empty()) ns = cfg->default_namespace.empty() ? "default" : cfg->default_namespace;
  cfg->user_agent = "kubectl-backup";
  auto transport = bo::kube::make_cpprest_transport(*cfg);
  if (!transport) die(transport.error().message);
  auto logs_transport = bo::kube::make_cpprest_transport(*cfg);
  if (!logs_transport) die(logs_transport.error().message);
  bo::kube::Client client(std::move(*transport), 50, 100);
  const auto wait_for = std::chrono::duration_cast<std::chrono::seconds>(*timeout);

  if (status->parsed()) {
    auto l = client.list(kPolicies, all ? "" : ns);
    if (!l) die("list backuppolicies: " + l.error().str());
    if ((*l)["items"].empty()) {
      std::cout << "No BackupPolicy found" << (all ? "" : " in namespace " + ns) << ".\n";
      return 0;
    }
    std::cout << bo::cli::status_table(*l, now(), all);
    return 0;
  }
  if (logs_cmd->parsed()) return logs(client, **logs_transport, ns, run);
  auto p = client.get(kPolicies, ns, policy);
  if (list->parsed()) {
    if (!p) die("get backuppolicy " + ns + "/" + policy + ": " + p.error().str());
    std::cout << bo::cli::catalog_table(*p, now());
    return 0;
  }
  if (verify->parsed()) {
    if (!p) die("get backuppolicy " + ns + "/" + policy + ": " + p.error().str());
    auto rr = bo::cli::verification_request(*p, now());
    if (!rr) die(rr.error());
    return create_and_follow(client, ns, *rr, !no_wait, wait_for);
  }
  // restore
  if (!p) die("get backuppolicy " + ns + "/" + policy + ": " + p.error().str());
  if (latest) ro.backup_id = "latest";
  if (drill) ro.purpose = "drill";
  auto rr = bo::cli::restore_request(*p, ro, now());
  if (!rr) die(rr.error());
  return create_and_follow(client, ns, *rr, !no_wait, wait_for);
}
