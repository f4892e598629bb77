// bench_operator: the operator against kube-local at scale (not part of ctest).
//
//   build/bench_operator [--jobs-per-policy K] [--latency-policies M] [N ...]
//   (defaults: K = 3, M = 1000, N = 100 1000 10000)
//
// For each N: starts kube-local, creates N BackupPolicies (one namespace, shared
// Secrets, schedules that do not fall due, the databasus addon off) and K
// suspended Jobs owned by each (so the 10 000 run caches 30 000 Jobs), starts
// the operator, and reports as JSON lines and a table:
//   - seconds from operator start until every policy is Ready;
//   - API requests per policy during that initial sync, by verb;
//   - API writes during an idle hour (10 s at --time-scale 360);
//   - the operator's peak RSS and CPU seconds.
// Then M policies whose backups fall due at the same minute (real time, no
// scaling): the delay from the slot to each Job's arrival on a watch, p50,
// p99 and max.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <algorithm>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/listener_port.h"
#include "../tests/integration/harness.h"  // KubeLocal, Child: the tests' process helpers
#include "kube/client.h"
#include "common/timefmt.h"
#include "kube/informer.h"
#include "reconcile/caches.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string http_get(const std::string& url) {
  std::string out;
  if (FILE* p = popen(("curl -sf " + url).c_str(), "r")) {
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
  }
  return out;
}

// backup_operator_kube_requests_total by verb.
std::map<std::string, double> requests_by_verb(const std::string& metrics) {
  std::map<std::string, double> out;
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with("backup_operator_kube_requests_total{")) continue;
    const auto v = line.find("verb=\"");
    if (v == std::string::npos) continue;
    const std::string verb = line.substr(v + 6, line.find('"', v + 6) - v - 6);
    out[verb] += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return out;
}

// Peak resident set (KiB) and CPU seconds of a process.
std::pair<long, double> usage(pid_t pid) {
  long hwm = 0;
  std::istringstream st(slurp("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(st, line);)
    if (line.starts_with("VmHWM:")) hwm = std::stol(line.substr(6));
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream fields(stat.substr(stat.rfind(')') + 2));
  std::vector<std::string> f;
  for (std::string x; fields >> x;) f.push_back(x);
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double cpu = f.size() > 12 ? (std::stod(f[11]) + std::stod(f[12])) / ticks : 0;
  return {hwm, cpu};
}

void create_owned_jobs(bo::kube::Client& client, const std::vector<std::pair<std::string, std::string>>& owners, int per) {
  for (const auto& [name, uid] : owners)
    for (int k = 0; k < per; ++k) {
      const json labels = {{"app.kubernetes.io/managed-by", "backup-operator"}, {"backup.si.dev/policy", name},
                           {"backup.si.dev/action", "backup"}, {"backup.si.dev/service", "supabase-walg-backup"}};
      json job = {{"metadata", {{"name", name + "-delta-20260101000" + std::to_string(k)},
                                {"labels", labels},
                                {"annotations", {{"backup.si.dev/scheduled-at", "2026-01-01T00:0" + std::to_string(k) + ":00Z"}}},
                                {"ownerReferences", {{{"apiVersion", "backup.si.dev/v1alpha1"}, {"kind", "BackupPolicy"},
                                                      {"name", name}, {"uid", uid}, {"controller", true}}}}}},
                  {"spec", {{"suspend", true},
                            {"template", {{"metadata", {{"labels", labels}}},
                                          {"spec", {{"restartPolicy", "Never"},
                                                    {"containers", {{{"name", "walg"}, {"image", "si-dev/backup-operator:0.1.0"},
                                                                     {"args", {"run-job", "backup"}}}}}}}}}}}};
      if (!client.create(bo::kube::resources::kJobs, "bench", job)) throw std::runtime_error("create job");
    }
}

// The CRDs, namespace "bench" and its two Secrets.
void prepare_server(testing_support::KubeLocal& server, bo::kube::Client& client) {
  if (server.kubectl("apply -f " + std::string(SOURCE_DIR) + "/crds/").exit_code != 0)
    throw std::runtime_error("kubectl apply crds");
  (void)client.create(bo::kube::resources::kNamespaces, "", {{"metadata", {{"name", "bench"}}}});
  (void)client.create(bo::kube::resources::kSecrets, "bench",
                      {{"metadata", {{"name", "walg-storage"}}},
                       {"stringData", {{"WALG_S3_PREFIX", "s3://b/p"}, {"WALG_AWS_ACCESS_KEY_ID", "id"},
                                       {"WALG_AWS_SECRET_ACCESS_KEY", "s"}, {"WALG_AWS_ENDPOINT", "https://s3"}}}});
  (void)client.create(bo::kube::resources::kSecrets, "bench",
                      {{"metadata", {{"name", "walg-encryption"}}}, {"stringData", {{"WALG_LIBSODIUM_KEY", "k"}}}});
}

// Policy db-<i> with the given delta schedule (full backups yearly, no verification, no Databasus).
json bench_policy(int i, const std::string& backup_schedule) {
  return {{"metadata", {{"name", "db-" + std::to_string(i)}}},
          {"spec", {{"addons", {"supabase-walg"}},
                    {"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "db"}}},
                    {"storage", {{"secretRef", {{"name", "walg-storage"}}},
                                 {"encryption", {{"secretRef", {{"name", "walg-encryption"}}}}}}},
                    {"schedule", {{"backup", backup_schedule}, {"fullBackup", "0 0 1 1 *"}}},
                    {"verification", {{"enabled", false}}}}}};
}

// Polls until all n policies in "bench" are Ready; false at the deadline.
bool wait_all_ready(bo::kube::Client& client, int n, std::chrono::seconds deadline) {
  const auto end = Clock::now() + deadline;
  while (Clock::now() < end) {
    auto l = client.list(bo::reconcile::kBackupPolicies, "bench");
    int ready = 0;
    if (l)
      for (const auto& p : (*l)["items"])
        for (const auto& c : p.value("status", json::object()).value("conditions", json::array()))
          if (c.value("type", "") == "Ready" && c.value("status", "") == "True") ++ready;
    if (ready == n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

json run(int n, int jobs_per_policy, const fs::path& build) {
  testing_support::KubeLocal server;
  auto client_owner = server.client();
  bo::kube::Client& client = *client_owner;
  prepare_server(server, client);
  const auto create_start = Clock::now();
  std::vector<std::pair<std::string, std::string>> owners;
  for (int i = 0; i < n; ++i) {
    auto made = client.create(bo::reconcile::kBackupPolicies, "bench", bench_policy(i, "0 0 1 1 *"));
    if (!made) throw std::runtime_error("create policy");
    owners.emplace_back((*made)["metadata"]["name"], (*made)["metadata"]["uid"]);
  }
  {
    // Four writers: 30 000 Jobs take a while through one connection.
    std::vector<std::jthread> writers;
    const size_t parts = 4;
    for (size_t w = 0; w < parts; ++w)
      writers.emplace_back([&, w] {
        auto c = server.client();
        std::vector<std::pair<std::string, std::string>> mine;
        for (size_t i = w; i < owners.size(); i += parts) mine.push_back(owners[i]);
        create_owned_jobs(*c, mine, jobs_per_policy);
      });
  }
  const double create_s = std::chrono::duration<double>(Clock::now() - create_start).count();

  const int metrics_port = bo::kernel_free_port("127.0.0.1");  // the operator logs its port only at info
  const auto start = Clock::now();
  std::vector<std::string> argv = {(build / "backup-operator").string(), "--kubeconfig", server.kubeconfig().string(),
                                   "--metrics-bind-address", "127.0.0.1:" + std::to_string(metrics_port),
                                   "--health-probe-bind-address", "0", "--webhook-bind-address", "0", "--time-scale", "360",
                                   "--kube-api-qps", "5000", "--kube-api-burst", "5000", "--log-level", "warn"};
  // BENCH_OPERATOR_WRAPPER (e.g. /usr/bin/heaptrack): run the operator under a profiler.
  if (const char* w = std::getenv("BENCH_OPERATOR_WRAPPER"); w && *w) argv.insert(argv.begin(), w);
  testing_support::Child op(argv, server.dir() / "operator.log");
  double ready_s = -1;
  if (wait_all_ready(client, n, std::chrono::seconds(600)))
    ready_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the last status writes land in the metrics
  const auto sync = requests_by_verb(http_get("http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"));
  // An idle hour of schedule: 10 s at --time-scale 360, with nothing due.
  std::this_thread::sleep_for(std::chrono::seconds(10));
  const auto idle_end = requests_by_verb(http_get("http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"));
  const auto [rss_kib, cpu_s] = usage(op.pid());
  op.stop(SIGTERM);

  json sync_per_policy = json::object(), idle = json::object();
  double idle_writes = 0;
  for (const auto& [verb, count] : sync) sync_per_policy[verb] = count / n;
  for (const auto& [verb, count] : idle_end) {
    const double d = count - (sync.count(verb) ? sync.at(verb) : 0);
    idle[verb] = d;
    if (verb != "GET" && verb != "LIST" && verb != "WATCH") idle_writes += d;
  }
  return {{"policies", n},
          {"jobs", n * jobs_per_policy},
          {"create_seconds", create_s},
          {"ready_seconds", ready_s},
          {"sync_requests_per_policy", sync_per_policy},
          {"idle_hour_requests", idle},
          {"idle_hour_writes", idle_writes},
          {"peak_rss_mib", rss_kib / 1024.0},
          {"cpu_seconds", cpu_s}};
}

// M policies due at the same minute: slot -> Job arrival on a watch.
json run_latency(int n, const fs::path& build) {
  testing_support::KubeLocal server;
  auto client = server.client();
  prepare_server(server, *client);
  for (int i = 0; i < n; ++i)
    if (!client->create(bo::reconcile::kBackupPolicies, "bench", bench_policy(i, "* * * * *")))
      throw std::runtime_error("create policy");
  // Every Job's arrival, by its slot.
  std::mutex mu;
  std::map<std::string, std::vector<std::chrono::system_clock::time_point>> arrivals;
  bo::kube::Informer jobs(*client, bo::kube::resources::kJobs, "bench");
  jobs.add_handlers({[&](const bo::kube::ObjPtr& j) {
                       const auto now = std::chrono::system_clock::now();
                       std::lock_guard lock(mu);
                       arrivals[(*j)["metadata"].value("annotations", json::object()).value("backup.si.dev/scheduled-at", "")]
                           .push_back(now);
                     },
                     nullptr, nullptr});
  std::jthread watcher([&](std::stop_token st) { jobs.run(st); });
  if (!jobs.wait_synced(std::chrono::seconds(30))) throw std::runtime_error("job watch");

  testing_support::Child op({(build / "backup-operator").string(), "--kubeconfig", server.kubeconfig().string(),
                             "--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--webhook-bind-address", "0",
                             "--kube-api-qps", "5000", "--kube-api-burst", "5000", "--log-level", "warn"},
                            server.dir() / "operator.log");
  // Wait until all are Ready, then measure the first slot that starts after that.
  if (!wait_all_ready(*client, n, std::chrono::seconds(300))) throw std::runtime_error("policies did not become Ready");
  const auto slot = std::chrono::ceil<std::chrono::minutes>(std::chrono::system_clock::now());
  const std::string slot_text = bo::format_rfc3339(slot);
  const auto wait_until = std::chrono::system_clock::now() + (slot - std::chrono::system_clock::now()) + std::chrono::seconds(30);
  while (std::chrono::system_clock::now() < wait_until) {
    {
      std::lock_guard lock(mu);
      if (arrivals[slot_text].size() >= static_cast<size_t>(n)) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::vector<double> ms;
  {
    std::lock_guard lock(mu);
    for (const auto& t : arrivals[slot_text]) ms.push_back(std::chrono::duration<double, std::milli>(t - slot).count());
  }
  op.stop(SIGTERM);
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double q) { return ms.empty() ? -1.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))]; };
  return {{"due_policies", n}, {"jobs_created", ms.size()}, {"slot", slot_text},
          {"p50_ms", pct(0.50)}, {"p99_ms", pct(0.99)}, {"max_ms", ms.empty() ? -1.0 : ms.back()}};
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes;
  int jobs_per_policy = 3, latency_policies = 1000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--jobs-per-policy" || a == "--latency-policies") && i + 1 < argc) {
      (a == "--jobs-per-policy" ? jobs_per_policy : latency_policies) = std::atoi(argv[++i]);
      continue;
    }
    sizes.push_back(std::atoi(a.c_str()));
  }
  if (sizes.empty()) sizes = {100, 1000, 10000};
  if (jobs_per_policy < 0 || latency_policies < 0) {
    std::cerr << "bench_operator: --jobs-per-policy and --latency-policies take a number >= 0\n";
    return 2;
  }
  const fs::path build = fs::absolute(argv[0]).parent_path();
  std::vector<json> results;
  for (int n : sizes) {
    if (n <= 0) {
      std::cerr << "bench_operator: sizes must be positive numbers of policies\n";
      return 2;
    }
    results.push_back(run(n, jobs_per_policy, build));
    std::cout << results.back().dump() << std::endl;
  }
  json latency;
  if (latency_policies > 0) {
    latency = run_latency(latency_policies, build);
    std::cout << latency.dump() << std::endl;
  }
  std::printf("\n| policies | Jobs cached | Ready after | requests/policy in sync | writes in an idle hour | peak RSS | CPU |\n");
  std::printf("| ---: | ---: | ---: | --- | ---: | ---: | ---: |\n");
  for (const auto& r : results) {
    std::string per;
    for (const auto& [verb, v] : r["sync_requests_per_policy"].items()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%s %.2f", per.empty() ? "" : ", ", verb.c_str(), v.get<double>());
      per += buf;
    }
    std::printf("| %d | %d | %.2f s | %s | %.0f | %.1f MiB | %.2f s |\n", r["policies"].get<int>(), r["jobs"].get<int>(),
                r["ready_seconds"].get<double>(),
                per.c_str(), r["idle_hour_writes"].get<double>(), r["peak_rss_mib"].get<double>(),
                r["cpu_seconds"].get<double>());
  }
  if (!latency.is_null())
    std::printf("\n%d policies due at %s: %zu Jobs; slot to Job p50 %.0f ms, p99 %.0f ms, max %.0f ms\n",
                latency["due_policies"].get<int>(), latency["slot"].get<std::string>().c_str(),
                latency["jobs_created"].get<size_t>(), latency["p50_ms"].get<double>(), latency["p99_ms"].get<double>(),
                latency["max_ms"].get<double>());
  return 0;
}
