// bench_operator: the operator against kube-local at scale (not part of ctest).
//
//   build/bench_operator [--jobs-per-policy K] [--secrets-per-policy S] [--latency-policies M]
//                        [--latency-lead-minutes L] [N ...]
//   (defaults: K = 3, S = 2, M = 5000, L = 4, N = 100 1000 10000)
//
// For each N: starts kube-local, creates N BackupPolicies (one namespace,
// schedules that do not fall due, the databasus addon off), S Secrets per
// policy (with S >= 2 each policy names its own two, db-<i>-storage and
// db-<i>-encryption, as real policies do; with S < 2 all share walg-storage and
// walg-encryption) and K suspended Jobs owned by each (so the 10 000 run caches
// 30 000 Jobs and 20 000 Secrets), starts the operator, and reports as JSON
// lines and a table:
//   - seconds from operator start until every policy is Ready;
//   - API requests per policy during that initial sync, by verb;
//   - API writes during an idle hour (10 s at --time-scale 360);
//   - the operator's peak RSS and CPU seconds.
// Then M policies whose backups fall due at the same minute (real time, no
// scaling; daily at a minute L minutes ahead, so all are Ready before it):
// the delay from the slot to each Job's arrival on a watch, p50, p99 and max.
//
// Each figure comes with a ceiling measured in the same run, on the same
// kube-local, by a minimal client doing the same API work at the operator's
// concurrency (kWorkers writers sharing one client with the operator's QPS
// settings), and the ratio of the two:
//   - Ready: list the policies, the operator's Jobs and the Secrets' metadata
//     (what the operator's informers list), then per policy a GET of its
//     claim and one status PUT carrying the status the operator wrote;
//   - slot to Job: M creates of the Job the operator created, all started at
//     one instant, each timed to its arrival on the same watch.
// A ratio near 1 means kube-local, not the operator, is the limit.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <functional>
#include <set>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "common/listener_port.h"
#include "../tests/integration/harness.h"  // KubeLocal, Child: the tests' process helpers
#include "api/backup_policy.h"
#include "kube/client.h"
#include "common/timefmt.h"
#include "kube/informer.h"
#include "reconcile/caches.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// The operator's settings for every run, and the ceiling's.
constexpr int kWorkers = 4;  // --max-concurrent-reconciles (the default)
constexpr int kQps = 5000, kBurst = 5000;

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

// The CRDs, namespace "bench", its two Secrets and the database's claim.
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
  // A backup Job mounts the data volume; a policy whose claim is missing is not Ready (DataVolumeNotFound).
  if (!client.create(bo::kube::resources::kPersistentVolumeClaims, "bench",
                     {{"metadata", {{"name", "supabase-db-data"}}},
                      {"spec", {{"accessModes", {"ReadWriteOnce"}}, {"resources", {{"requests", {{"storage", "10Gi"}}}}}}}}))
    throw std::runtime_error("create claim");
}

// S Secrets for each of n policies in "bench": db-<i>-storage and db-<i>-encryption
// (what policy db-<i> names), then db-<i>-other-<k> for the rest, as a cluster
// holds Secrets no policy names. Four writers, like the Jobs.
void create_policy_secrets(testing_support::KubeLocal& server, int n, int per) {
  std::vector<std::jthread> writers;
  const int parts = 4;
  for (int w = 0; w < parts; ++w)
    writers.emplace_back([&, w] {
      auto c = server.client();
      for (int i = w; i < n; i += parts)
        for (int k = 0; k < per; ++k) {
          const std::string db = "db-" + std::to_string(i);
          // The shared Secrets' keys (prepare_server), with the policy's own prefix and credentials.
          json data = k == 0   ? json{{"WALG_S3_PREFIX", "s3://b/" + db}, {"WALG_AWS_ACCESS_KEY_ID", "id-" + db},
                                    {"WALG_AWS_SECRET_ACCESS_KEY", "s-" + db}, {"WALG_AWS_ENDPOINT", "https://s3"}}
                      : k == 1 ? json{{"WALG_LIBSODIUM_KEY", "k-" + db}}
                               : json{{"password", "other-" + db + "-" + std::to_string(k)}};
          const std::string name = db + (k == 0 ? "-storage" : k == 1 ? "-encryption" : "-other-" + std::to_string(k));
          if (!c->create(bo::kube::resources::kSecrets, "bench", {{"metadata", {{"name", name}}}, {"stringData", data}}))
            throw std::runtime_error("create secret");
        }
    });
}

// Policy db-<i> with the given delta schedule (full backups yearly, no verification, no Databasus),
// naming its own Secrets (db-<i>-storage, db-<i>-encryption) or the shared ones.
json bench_policy(int i, const std::string& backup_schedule, bool own_secrets = false) {
  const std::string db = "db-" + std::to_string(i);
  const std::string storage = own_secrets ? db + "-storage" : "walg-storage";
  const std::string encryption = own_secrets ? db + "-encryption" : "walg-encryption";
  return {{"metadata", {{"name", db}}},
          {"spec", {{"addons", {"supabase-walg"}},
                    {"database", {{"dataVolume", {{"claimName", "supabase-db-data"}}}, {"runAsUser", 101}, {"runAsGroup", 102}, {"host", "db"}}},
                    {"storage", {{"secretRef", {{"name", storage}}},
                                 {"encryption", {{"secretRef", {{"name", encryption}}}}}}},
                    {"schedule", {{"backup", backup_schedule}, {"fullBackup", "0 0 1 1 *"}}},
                    {"verification", {{"enabled", false}}}}}};
}

// Counts Ready policies in "bench" from a watch (polling lists of 10 000
// policies would load the server the operator is measured against).
class ReadyWatch {
 public:
  explicit ReadyWatch(bo::kube::Client& client) : informer_(client, bo::reconcile::kBackupPolicies, "bench") {
    auto seen = [this](const bo::kube::ObjPtr& p) {
      const bool ready = is_ready(*p);
      std::lock_guard lock(mu_);
      const std::string name = (*p)["metadata"].value("name", "");
      if (ready) ready_.insert(name); else ready_.erase(name);
      cv_.notify_all();
    };
    informer_.add_handlers({seen, [seen](const bo::kube::ObjPtr&, const bo::kube::ObjPtr& p) { seen(p); }, nullptr});
    thread_ = std::jthread([this](std::stop_token st) { informer_.run(st); });
  }
  // Until n are Ready; false at the deadline.
  bool wait(size_t n, std::chrono::seconds deadline) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, deadline, [&] { return ready_.size() >= n; });
  }

 private:
  static bool is_ready(const json& p) {
    for (const auto& c : p.value("status", json::object()).value("conditions", json::array()))
      if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
    return false;
  }
  bo::kube::Informer informer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> ready_;
  std::jthread thread_;
};

bo::kube::ListOptions pages_of_500() {
  bo::kube::ListOptions o;
  o.limit = 500;
  return o;
}

// A client as the operator's: its own connection, the operator's QPS and burst.
std::unique_ptr<bo::kube::Client> operator_like_client(const testing_support::KubeLocal& server) {
  return std::make_unique<bo::kube::Client>(server.transport(), kQps, kBurst);
}

// Runs f(i) for i in [0, n) on kWorkers threads; seconds taken.
double in_parallel(size_t n, const std::function<void(size_t)>& f) {
  const auto start = Clock::now();
  std::atomic<size_t> next{0};
  {
    std::vector<std::jthread> workers;
    for (int w = 0; w < kWorkers; ++w)
      workers.emplace_back([&] {
        for (size_t i; (i = next++) < n;) f(i);
      });
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The ceiling for Ready: what the operator's informers list, then per policy
// a GET of its claim (the data volume check), a GET of each Secret it names
// (the operator reads those it needs, not their metadata alone), and one
// status PUT with the status it wrote (one condition message changed, so
// each PUT is a real write of the same size). Seconds.
double ready_ceiling(const testing_support::KubeLocal& server) {
  auto client = operator_like_client(server);
  const auto start = Clock::now();
  auto policies = client->list_all(bo::reconcile::kBackupPolicies, "bench", pages_of_500());
  bo::kube::ListOptions by_label;  // the operator's informers read pages of 500
  by_label.label_selector = "app.kubernetes.io/managed-by=backup-operator";  // caches.cpp's kManagedSelector
  by_label.limit = 500;
  bo::kube::ListOptions metadata;
  metadata.metadata_only = true;
  metadata.limit = 500;
  if (!policies || !client->list_all(bo::kube::resources::kJobs, "bench", by_label) ||
      !client->list_all(bo::kube::resources::kSecrets, "bench", metadata))
    throw std::runtime_error("ceiling: list");
  const json& items = (*policies)["items"];
  std::atomic<int> failed{0};
  in_parallel(items.size(), [&](size_t i) {
    // The operator reads each policy's data volume (its claim) before it is Ready.
    if (!client->get(bo::kube::resources::kPersistentVolumeClaims, "bench", "supabase-db-data")) ++failed;
    for (const auto& secret : bo::api::referenced_secrets(items[i].value("spec", json::object())))
      if (!client->get(bo::kube::resources::kSecrets, "bench", secret)) ++failed;
    json p = items[i];
    for (auto& c : p["status"]["conditions"])
      if (c.value("type", "") == "Ready") c["message"] = c.value("message", "") + ".";
    if (!client->update_status(bo::reconcile::kBackupPolicies, "bench", p)) ++failed;
  });
  if (failed) throw std::runtime_error("ceiling: " + std::to_string(failed.load()) + " reads or status writes failed");
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// BENCH_OPERATOR_LOG_LEVEL [warn]; with BENCH_LOG_DIR set, each operator log is copied there.
std::string log_level() {
  const char* l = std::getenv("BENCH_OPERATOR_LOG_LEVEL");
  return l && *l ? l : "warn";
}
void keep_log(const testing_support::KubeLocal& server, const std::string& name) {
  if (const char* d = std::getenv("BENCH_LOG_DIR"); d && *d) {
    std::error_code ec;
    fs::copy_file(server.dir() / "operator.log", fs::path(d) / name, fs::copy_options::overwrite_existing, ec);
  }
}

// The operator's command line: its QPS settings and worker count are the ceiling's.
std::vector<std::string> operator_argv(const fs::path& build, const testing_support::KubeLocal& server, int metrics_port,
                                       std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {(build / "backup-operator").string(), "--kubeconfig", server.kubeconfig().string(),
                                   "--metrics-bind-address", "127.0.0.1:" + std::to_string(metrics_port),
                                   "--health-probe-bind-address", "0", "--webhook-bind-address", "0",
                                   "--kube-api-qps", std::to_string(kQps), "--kube-api-burst", std::to_string(kBurst),
                                   "--max-concurrent-reconciles", std::to_string(kWorkers), "--log-level", log_level()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  // BENCH_OPERATOR_WRAPPER (e.g. /usr/bin/heaptrack): run the operator under a profiler.
  if (const char* w = std::getenv("BENCH_OPERATOR_WRAPPER"); w && *w) argv.insert(argv.begin(), w);
  return argv;
}

// Creates policies db-0..db-(n-1) as an operator restart finds them: their
// catalog already read back from storage (status.schedules.catalog), so no
// catalog Job runs (kube-local's pods write no catalog result, and a policy
// whose catalog cannot be read retries it for an hour). Name and uid of each.
std::vector<std::pair<std::string, std::string>> create_policies(bo::kube::Client& client, int n,
                                                                  const std::string& backup_schedule,
                                                                  bool own_secrets = false) {
  std::vector<std::pair<std::string, std::string>> owners;
  const json synced = {{"schedules", {{"catalog", {{"lastScheduleTime", "2026-01-01T00:00:00Z"}}}}}};
  for (int i = 0; i < n; ++i) {
    auto made = client.create(bo::reconcile::kBackupPolicies, "bench", bench_policy(i, backup_schedule, own_secrets));
    if (!made) throw std::runtime_error("create policy: " + made.error().str());
    (*made)["status"] = synced;
    if (auto st = client.update_status(bo::reconcile::kBackupPolicies, "bench", *made); !st)
      throw std::runtime_error("policy status: " + st.error().str());
    owners.emplace_back((*made)["metadata"]["name"], (*made)["metadata"]["uid"]);
  }
  return owners;
}

json run(int n, int jobs_per_policy, int secrets_per_policy, const fs::path& build) {
  testing_support::KubeLocal server;
  auto client_owner = server.client();
  bo::kube::Client& client = *client_owner;
  prepare_server(server, client);
  const auto create_start = Clock::now();
  create_policy_secrets(server, n, secrets_per_policy);
  const auto owners = create_policies(client, n, "0 0 1 1 *", secrets_per_policy >= 2);
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
  ReadyWatch ready(client);
  const auto start = Clock::now();
  testing_support::Child op(operator_argv(build, server, metrics_port, {"--time-scale", "360"}),
                            server.dir() / "operator.log");
  double ready_s = -1;
  if (ready.wait(static_cast<size_t>(n), std::chrono::seconds(600)))
    ready_s = std::chrono::duration<double>(Clock::now() - start).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the last status writes land in the metrics
  const auto sync = requests_by_verb(http_get("http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"));
  // An idle hour of schedule: 10 s at --time-scale 360, with nothing due.
  std::this_thread::sleep_for(std::chrono::seconds(10));
  const auto idle_end = requests_by_verb(http_get("http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"));
  const auto [rss_kib, cpu_s] = usage(op.pid());
  op.stop(SIGTERM);
  keep_log(server, "operator-" + std::to_string(n) + ".log");
  const double ceiling_s = ready_ceiling(server);

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
          {"secrets", n * secrets_per_policy},
          {"create_seconds", create_s},
          {"ready_seconds", ready_s},
          {"ready_ceiling_seconds", ceiling_s},
          {"ready_ratio", ready_s / ceiling_s},
          {"workers", kWorkers},
          {"qps", kQps},
          {"burst", kBurst},
          {"sync_requests_per_policy", sync_per_policy},
          {"idle_hour_requests", idle},
          {"idle_hour_writes", idle_writes},
          {"peak_rss_mib", rss_kib / 1024.0},
          {"cpu_seconds", cpu_s}};
}

// Percentiles of a sample, in milliseconds.
json percentiles(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double q) { return ms.empty() ? -1.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))]; };
  return {{"count", ms.size()}, {"p50_ms", pct(0.50)}, {"p99_ms", pct(0.99)}, {"max_ms", ms.empty() ? -1.0 : ms.back()}};
}

// Jobs arriving on a watch of "bench", by their scheduled-at annotation.
class Arrivals {
 public:
  explicit Arrivals(bo::kube::Client& client) : informer_(client, bo::kube::resources::kJobs, "bench") {
    informer_.add_handlers({[this](const bo::kube::ObjPtr& j) {
                              const auto now = std::chrono::system_clock::now();
                              const auto key = (*j)["metadata"].value("annotations", json::object()).value("backup.si.dev/scheduled-at", "");
                              std::lock_guard lock(mu_);
                              by_slot_[key].push_back(now);
                              cv_.notify_all();
                            },
                            nullptr, nullptr});
    thread_ = std::jthread([this](std::stop_token st) { informer_.run(st); });
    if (!informer_.wait_synced(std::chrono::seconds(30))) throw std::runtime_error("job watch");
  }
  // Milliseconds from `from` to each arrival under `key`, once n arrived or at the deadline.
  std::vector<double> wait(const std::string& key, size_t n, std::chrono::system_clock::time_point from,
                           std::chrono::system_clock::time_point deadline) {
    std::unique_lock lock(mu_);
    cv_.wait_until(lock, deadline, [&] { return by_slot_[key].size() >= n; });
    std::vector<double> ms;
    for (const auto& t : by_slot_[key]) ms.push_back(std::chrono::duration<double, std::milli>(t - from).count());
    return ms;
  }

 private:
  bo::kube::Informer informer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::vector<std::chrono::system_clock::time_point>> by_slot_;
  std::jthread thread_;
};

// The operator's schedule skew histogram (count, and the bucket bound under
// which 99% fall) from its /metrics.
json skew_metric(const std::string& metrics) {
  std::vector<std::pair<double, double>> buckets;  // (le, cumulative count)
  double count = 0;
  std::istringstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("backup_operator_schedule_skew_seconds_count")) count += std::stod(line.substr(line.rfind(' ') + 1));
    if (!line.starts_with("backup_operator_schedule_skew_seconds_bucket{") || line.find("action=\"backup\"") == std::string::npos)
      continue;
    const auto le = line.find("le=\"");
    const std::string bound = line.substr(le + 4, line.find('"', le + 4) - le - 4);
    buckets.emplace_back(bound == "+Inf" ? INFINITY : std::stod(bound), std::stod(line.substr(line.rfind(' ') + 1)));
  }
  std::sort(buckets.begin(), buckets.end());
  double p99_le = -1;
  for (const auto& [le, c] : buckets)
    if (!buckets.empty() && c >= 0.99 * buckets.back().second) {
      p99_le = le;
      break;
    }
  return {{"count", count}, {"p99_bucket_le_s", std::isinf(p99_le) ? json("+Inf") : json(p99_le)}};
}

// M policies due at the same minute: slot -> Job arrival on a watch; then the
// ceiling: M creates of the operator's Job, started at one instant.
json run_latency(int n, int lead_minutes, const fs::path& build) {
  testing_support::KubeLocal server;
  auto client = server.client();
  prepare_server(server, *client);
  // One slot, daily at a minute far enough ahead that every policy is Ready
  // before it: a minutely schedule would have the first slots' Jobs still
  // running at the measured one (concurrencyPolicy Forbid skips it) once a
  // large fleet takes minutes to become Ready.
  const auto slot = std::chrono::ceil<std::chrono::minutes>(std::chrono::system_clock::now() + std::chrono::minutes(lead_minutes));
  const std::string slot_text = bo::format_rfc3339(slot);  // YYYY-MM-DDTHH:MM:00Z
  (void)create_policies(*client, n, slot_text.substr(14, 2) + " " + slot_text.substr(11, 2) + " * * *");
  Arrivals arrivals(*client);
  ReadyWatch ready(*client);
  const int metrics_port = bo::kernel_free_port("127.0.0.1");
  testing_support::Child op(operator_argv(build, server, metrics_port), server.dir() / "operator.log");
  if (!ready.wait(static_cast<size_t>(n), std::chrono::seconds(600))) throw std::runtime_error("policies did not become Ready");
  if (std::chrono::system_clock::now() >= slot)
    throw std::runtime_error("the policies became Ready after the slot " + slot_text +
                             ": rerun with a larger --latency-lead-minutes");
  const json op_ms = percentiles(arrivals.wait(slot_text, static_cast<size_t>(n), slot, slot + std::chrono::seconds(120)));
  const json skew = skew_metric(http_get("http://127.0.0.1:" + std::to_string(metrics_port) + "/metrics"));
  op.stop(SIGTERM);
  keep_log(server, "operator-latency-" + std::to_string(n) + ".log");

  // The ceiling: the Jobs the operator created at the slot, created again
  // under new names by kWorkers writers, timed from one start to their arrival.
  auto jobs = client->list_all(bo::kube::resources::kJobs, "bench", pages_of_500());
  if (!jobs) throw std::runtime_error("list jobs");
  std::vector<json> copies;
  for (const auto& j : (*jobs)["items"]) {
    if (j["metadata"].value("annotations", json::object()).value("backup.si.dev/scheduled-at", "") != slot_text) continue;
    json c = {{"apiVersion", "batch/v1"}, {"kind", "Job"}, {"metadata", j["metadata"]}, {"spec", j["spec"]}};
    for (const char* f : {"uid", "resourceVersion", "creationTimestamp", "managedFields", "generation"}) c["metadata"].erase(f);
    c["metadata"]["name"] = j["metadata"].value("name", "") + "-c";
    c["metadata"]["annotations"]["backup.si.dev/scheduled-at"] = "ceiling";
    c["spec"].erase("selector");  // defaulted from the template's controller-uid label on create
    if (c["spec"].contains("template") && c["spec"]["template"].contains("metadata"))
      for (const char* l : {"controller-uid", "batch.kubernetes.io/controller-uid", "job-name", "batch.kubernetes.io/job-name"})
        c["spec"]["template"]["metadata"]["labels"].erase(l);
    copies.push_back(std::move(c));
  }
  auto writer = operator_like_client(server);
  const auto t0 = std::chrono::system_clock::now();
  std::atomic<int> failed{0};
  in_parallel(copies.size(), [&](size_t i) {
    if (!writer->create(bo::kube::resources::kJobs, "bench", copies[i])) ++failed;
  });
  if (failed) throw std::runtime_error("ceiling: " + std::to_string(failed.load()) + " Job creates failed");
  const json ceiling_ms = percentiles(arrivals.wait("ceiling", copies.size(), t0, t0 + std::chrono::seconds(120)));
  auto ratio = [&](const char* k) { return op_ms[k].get<double>() / std::max(1.0, ceiling_ms[k].get<double>()); };
  return {{"due_policies", n},         {"slot", slot_text},          {"operator", op_ms},
          {"ceiling", ceiling_ms},     {"p50_ratio", ratio("p50_ms")}, {"p99_ratio", ratio("p99_ms")},
          {"max_ratio", ratio("max_ms")}, {"skew_metric", skew},      {"workers", kWorkers},
          {"qps", kQps},               {"burst", kBurst}};
}

}  // namespace

int main(int argc, char** argv) {
  // CLI11, as the operator's own flags: a bad value is a one-line error and a non-zero exit.
  CLI::App app{"bench_operator: the operator against kube-local at scale, each figure beside a ceiling"};
  std::vector<int> sizes;
  int jobs_per_policy = 3, latency_policies = 5000, secrets_per_policy = 2, lead_minutes = 4;
  app.add_option("--jobs-per-policy", jobs_per_policy, "suspended Jobs owned by each policy")
      ->check(CLI::Range(0, 1000000))->capture_default_str();
  app.add_option("--secrets-per-policy", secrets_per_policy, "Secrets per policy (>= 2: each policy names its own two)")
      ->check(CLI::Range(0, 1000000))->capture_default_str();
  app.add_option("--latency-policies", latency_policies, "policies due at the same minute (0: skip)")
      ->check(CLI::Range(0, 1000000))->capture_default_str();
  app.add_option("--latency-lead-minutes", lead_minutes, "minutes from creation to the measured slot")
      ->check(CLI::Range(1, 1440))->capture_default_str();
  app.add_option("sizes", sizes, "numbers of policies [100 1000 10000]")->check(CLI::Range(1, 1000000));
  CLI11_PARSE(app, argc, argv);
  if (sizes.empty()) sizes = {100, 1000, 10000};
  const fs::path build = fs::absolute(argv[0]).parent_path();
  std::vector<json> results;
  for (int n : sizes) {
    results.push_back(run(n, jobs_per_policy, secrets_per_policy, build));
    std::cout << results.back().dump() << std::endl;
  }
  json latency;
  if (latency_policies > 0) {
    latency = run_latency(latency_policies, lead_minutes, build);
    std::cout << latency.dump() << std::endl;
  }
  std::printf("\nOperator: %d workers, --kube-api-qps %d, --kube-api-burst %d; the ceiling is a minimal client with the same\n",
              kWorkers, kQps, kBurst);
  std::printf("\n| policies | Jobs | Secrets | Ready after | ceiling | ratio | requests/policy in sync | writes in an idle hour | peak RSS | CPU |\n");
  std::printf("| ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |\n");
  for (const auto& r : results) {
    std::string per;
    for (const auto& [verb, v] : r["sync_requests_per_policy"].items()) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%s%s %.2f", per.empty() ? "" : ", ", verb.c_str(), v.get<double>());
      per += buf;
    }
    std::printf("| %d | %d | %d | %.2f s | %.2f s | %.2fx | %s | %.0f | %.1f MiB | %.2f s |\n", r["policies"].get<int>(),
                r["jobs"].get<int>(), r["secrets"].get<int>(), r["ready_seconds"].get<double>(), r["ready_ceiling_seconds"].get<double>(),
                r["ready_ratio"].get<double>(), per.c_str(), r["idle_hour_writes"].get<double>(),
                r["peak_rss_mib"].get<double>(), r["cpu_seconds"].get<double>());
  }
  if (!latency.is_null()) {
    const json& o = latency["operator"];
    const json& c = latency["ceiling"];
    std::printf("\n%d policies due at %s: %d Jobs\n\n", latency["due_policies"].get<int>(),
                latency["slot"].get<std::string>().c_str(), o["count"].get<int>());
    std::printf("| slot to Job | operator | ceiling | ratio |\n| --- | ---: | ---: | ---: |\n");
    for (const char* k : {"p50", "p99", "max"}) {
      const std::string ms = std::string(k) + "_ms";
      std::printf("| %s | %.0f ms | %.0f ms | %.2fx |\n", k, o[ms].get<double>(), c[ms].get<double>(),
                  latency[std::string(k) + "_ratio"].get<double>());
    }
  }
  return 0;
}
