// backup-operator: flags, wiring and signals. The library under src/ does the work.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cpprest/http_listener.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stop_token>
#include <thread>

#include "bo/version.h"
#include "common/clock.h"
#include "common/duration.h"
#include "common/listener_port.h"
#include "common/log.h"
#include "common/timefmt.h"
#include "kube/client.h"
#include "kube/config.h"
#include "kube/events.h"
#include "bundle/command.h"
#include "jobs/run_job.h"
#include "kube/leader.h"
#include "reconcile/backup_policy_controller.h"
#include "reconcile/restore_controller.h"
#include "common/serving_cert.h"
#include "metrics/plain_server.h"
#include "metrics/secure_server.h"
#include "webhook/server.h"
#include "metrics/metrics.h"

namespace {

using json = nlohmann::json;

struct Flags {
  std::string kubeconfig;
  std::string context;
  std::vector<std::string> watch_namespace;  // as given: repeatable, each maybe a comma list
  std::string metrics_bind = ":8080";
  std::string probe_bind = ":8081";
  bool leader_elect = false;
  std::string leader_namespace;
  std::string leader_id = "backup-operator.backup.si.dev";
  std::string lease_duration = "15s", renew_deadline = "10s", retry_period = "2s";
  double qps = 20;
  int burst = 30;
  int max_concurrent_reconciles = 4;
  int archive_probe_interval = 30;  // seconds
  std::string log_level = "info";
  std::string log_format = "json";
  double time_scale = 1;
  std::string time_scale_anchor;
  bool allow_demo_clock = false;
  std::string operator_namespace;
  std::string webhook_bind = ":9443";
  std::string webhook_cert_dir;
  std::string webhook_secret = "backup-operator-webhook-tls";
  std::string webhook_configuration = "backup-operator";
  std::vector<std::string> webhook_hosts;
  std::string job_image;
  bool metrics_secure = false;
  std::string metrics_cert_dir;
};

// ":8081" -> "0.0.0.0:8081"; "0" disables.
std::optional<std::string> bind_address(const std::string& flag) {
  if (flag == "0") return std::nullopt;
  const auto colon = flag.rfind(':');
  std::string host = colon == std::string::npos ? "" : flag.substr(0, colon);
  if (host.empty()) host = "0.0.0.0";
  return host + ":" + flag.substr(colon + 1);
}

// The address a listener actually bound (`bind` may ask for port 0: any free
// port), for whoever started the operator and must find it (tests pass :0).
void log_listening(const std::string& listener, const std::string& bind, int port, bool tls) {
  bo::log::info("listening", {{"listener", listener}, {"address", bo::with_port(bind, port)}, {"tls", tls}});
}

// Why this process looks like it runs in a Kubernetes pod ("" when it does not):
// the environment a kubelet gives every container, or a mounted service-account token.
std::string cluster_evidence() {
  if (const char* host = std::getenv("KUBERNETES_SERVICE_HOST"); host && *host) return "KUBERNETES_SERVICE_HOST is set";
  constexpr const char* kToken = "/var/run/secrets/kubernetes.io/serviceaccount/token";
  std::error_code ec;
  if (std::filesystem::exists(kToken, ec)) return std::string("a service-account token is mounted at ") + kToken;
  return "";
}

[[noreturn]] void die(const std::string& msg, int code = 1) {
  std::cerr << "backup-operator: " << msg << std::endl;
  std::_Exit(code);
}

std::string identity() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(host) + "_" + std::to_string(getpid());
}

}  // namespace

int main(int argc, char** argv) {
  // Two malloc arenas instead of eight per core: cpprestsdk's thread pool
  // otherwise spreads short-lived JSON over many arenas that never shrink
  // (peak RSS -20 % at 10 000 policies). MALLOC_ARENA_MAX still overrides.
  if (!std::getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
  Flags f;
  CLI::App app{"backup-operator: trustworthy backups for self-hosted Supabase on Kubernetes"};
  app.set_version_flag("--version", std::string("backup-operator ") + bo::kVersion);
  app.add_option("--kubeconfig", f.kubeconfig, "kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)");
  app.add_option("--context", f.context, "kubeconfig context (default: current-context)");
  app.add_option("--watch-namespace", f.watch_namespace,
                 "only these namespaces (repeatable, or a comma-separated list; empty: all). Verification, drill "
                 "and restore targets must be among them: their Jobs are watched there")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--metrics-bind-address", f.metrics_bind, "metrics endpoint address, 0 disables")->capture_default_str();
  app.add_option("--health-probe-bind-address", f.probe_bind, "/healthz and /readyz address, 0 disables")
      ->capture_default_str();
  app.add_flag("--leader-elect", f.leader_elect, "elect a leader among replicas with a Lease");
  app.add_option("--leader-election-namespace", f.leader_namespace, "namespace of the Lease (default: kubeconfig's)");
  app.add_option("--leader-election-id", f.leader_id, "name of the Lease")->capture_default_str();
  app.add_option("--leader-elect-lease-duration", f.lease_duration, "lease duration")->capture_default_str();
  app.add_option("--leader-elect-renew-deadline", f.renew_deadline, "give up leadership after failing to renew this long")
      ->capture_default_str();
  app.add_option("--leader-elect-retry-period", f.retry_period, "time between acquire/renew attempts")
      ->capture_default_str();
  app.add_option("--kube-api-qps", f.qps, "client-side rate limit")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--kube-api-burst", f.burst, "client-side burst")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--log-level", f.log_level, "debug|info|warn|error")
      ->check(CLI::IsMember({"debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--time-scale", f.time_scale,
                 "run the schedule clock N times faster than real time (demos and tests only)")
      ->check(CLI::Range(1.0, 1e6))
      ->capture_default_str();
  app.add_option("--time-scale-anchor", f.time_scale_anchor,
                 "RFC 3339 instant where scaled and real time agree (default: start-up); give replicas the same one");
  app.add_flag("--allow-demo-clock", f.allow_demo_clock,
               "accept --time-scale/--time-scale-anchor inside a cluster (a demo cluster only: every schedule then runs "
               "faster than real time)");
  app.add_option("--log-format", f.log_format, "json|text")->check(CLI::IsMember({"json", "text"}))->capture_default_str();
  app.add_option("--operator-namespace", f.operator_namespace,
                 "namespace the operator runs in (default: $POD_NAMESPACE, else the kubeconfig's)");
  app.add_option("--webhook-bind-address", f.webhook_bind, "admission webhook (HTTPS) address, 0 disables")
      ->capture_default_str();
  app.add_option("--webhook-cert-dir", f.webhook_cert_dir,
                 "directory with tls.crt and tls.key for the webhook (default: generate into --webhook-secret)");
  app.add_option("--webhook-secret", f.webhook_secret, "Secret (in the operator namespace) for a generated certificate")
      ->capture_default_str();
  app.add_option("--webhook-configuration", f.webhook_configuration,
                 "MutatingWebhookConfiguration whose caBundle the operator keeps current (empty: leave alone)")
      ->capture_default_str();
  app.add_option("--webhook-host", f.webhook_hosts,
                 "DNS name or IP the generated certificate covers (repeatable; default: "
                 "backup-operator-webhook.<namespace>.svc)");
  app.add_flag("--metrics-secure", f.metrics_secure,
               "serve /metrics over HTTPS to callers whose bearer token passes a TokenReview and a "
               "SubjectAccessReview for GET /metrics");
  app.add_option("--metrics-cert-dir", f.metrics_cert_dir,
                 "tls.crt and tls.key for --metrics-secure (default: a self-signed certificate made at start)");
  app.add_option("--max-concurrent-reconciles", f.max_concurrent_reconciles,
                 "workers per controller (BackupPolicy, RestoreRequest); one key is never reconciled twice at once")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--archive-probe-interval", f.archive_probe_interval,
                 "seconds between two probes of a policy's database for its WAL archiving state (ContinuousArchiving)")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  app.add_option("--job-image", f.job_image,
                 "image of backup, restore and Databasus-sidecar containers when a policy's jobTemplate.image is empty "
                 "(default: " + std::string(bo::reconcile::kDefaultImage) + ")");
  std::string job_action;
  auto* run_job = app.add_subcommand("run-job", "run one backup action inside a Job (drives wal-g)");
  run_job->add_option("action", job_action, "backup | full-backup | retain | catalog | offsite-copy | restore | validate-database-answers | databasus-metadata | install-tools | verify | restore-in-place | check-database")->required();
  bo::bundle::CommandArgs bundle_args;
  auto* bundle = app.add_subcommand("bundle", "make, check or restore a PaaS-state bundle (encrypted, verifiable, never a secret)");
  bundle->require_subcommand(1);
  auto key_options = [&](CLI::App* c) {
    c->add_option("--key-file", bundle_args.key_file, "file holding the 32-byte key (64 hex digits or base64)");
    c->add_option("--key-env", bundle_args.key_env, "environment variable holding the key (in Jobs: from a Secret)");
    c->add_option("--work-dir", bundle_args.work_dir, "where the plaintext archive is kept while working (default: $TMPDIR or /tmp)");
    c->add_flag("--termination-log", bundle_args.termination_log, "also write the result to $TERMINATION_LOG (default /dev/termination-log)");
  };
  auto* bcreate = bundle->add_subcommand("create", "bundle the protected files of one or more contexts (POLICY §1) and store them");
  bcreate->add_option("--state-root", bundle_args.state_root, "the PaaS state root (holds contexts/<context>/)")->required();
  bcreate->add_option("--context", bundle_args.contexts, "a context to bundle (repeatable)");
  bcreate->add_flag("--all-contexts", bundle_args.all_contexts, "bundle every context under <state-root>/contexts");
  bcreate->add_option("--include-releases", bundle_args.include_releases, "include releases/ metadata (true|false)")->capture_default_str();
  bcreate->add_flag("--forensic-cache", bundle_args.forensic_cache, "include cache/ (a forensic bundle)");
  bcreate->add_option("--include", bundle_args.include, "one more file, relative to the context root (repeatable)");
  bcreate->add_option("--store", bundle_args.store, "dir:<path>, or s3 (next to the WAL-G backups, from WALG_* variables)")->required();
  bcreate->add_option("--tag", bundle_args.id, "the bundle id is <context>-<tag> (default: the UTC time, yyyymmddThhmmssZ)");
  key_options(bcreate);
  auto* bverify = bundle->add_subcommand("verify", "check a bundle's authentication tag, manifest and every file's sha256");
  auto* brestore = bundle->add_subcommand("restore", "verify a bundle, then write its files atomically into a state root (never under vault/)");
  for (auto* c : {bverify, brestore}) {
    c->add_option("--file", bundle_args.file, "a bundle file");
    c->add_option("--store", bundle_args.store, "dir:<path> or s3, with --context and --id");
    c->add_option("--context", bundle_args.contexts, "the bundle's context");
    c->add_option("--id", bundle_args.id, "the bundle id (as create printed it)");
    key_options(c);
  }
  brestore->add_option("--state-root", bundle_args.state_root, "the state root to restore into")->required();
  brestore->add_option("--to-context", bundle_args.to_context, "restore into this context instead of the bundle's own");

  try {
    // "--flag=" means an empty value; CLI11 would take the next argument
    // instead, so split it into "--flag" and "".
    std::vector<std::string> args;
    for (int i = argc - 1; i >= 1; --i) {  // CLI11 takes the arguments in reverse
      std::string a = argv[i];
      if (a.starts_with("--") && a.size() > 3 && a.back() == '=' && a.find('=') == a.size() - 1) {
        args.push_back("");
        a.pop_back();
      }
      args.push_back(a);
    }
    app.parse(args);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line, as operators' users expect: what is wrong, and where to look.
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    die(what + " (see --help)", 2);
  }
  if (run_job->parsed()) return bo::jobs::run_job(job_action, bo::jobs::current_environment(), std::cerr);
  if (bundle->parsed()) {
    bundle_args.command = bcreate->parsed() ? "create" : bverify->parsed() ? "verify" : "restore";
    return bo::bundle::run_bundle_command(bundle_args, bo::jobs::current_environment(), std::cout, std::cerr);
  }
  const auto lease_duration = bo::parse_duration(f.lease_duration);
  const auto renew_deadline = bo::parse_duration(f.renew_deadline);
  const auto retry_period = bo::parse_duration(f.retry_period);
  if (!lease_duration || lease_duration->count() <= 0)
    die("--leader-elect-lease-duration: invalid duration \"" + f.lease_duration + "\"", 2);
  if (!renew_deadline || renew_deadline->count() <= 0)
    die("--leader-elect-renew-deadline: invalid duration \"" + f.renew_deadline + "\"", 2);
  if (!retry_period || retry_period->count() <= 0)
    die("--leader-elect-retry-period: invalid duration \"" + f.retry_period + "\"", 2);
  if (*renew_deadline >= *lease_duration) die("--leader-elect-renew-deadline must be shorter than the lease duration", 2);
  // A scaled clock makes every schedule, retention and verification deadline
  // wrong by its factor: for demos and tests on a workstation, never by
  // accident in a cluster.
  if ((f.time_scale != 1 || !f.time_scale_anchor.empty()) && !f.allow_demo_clock) {
    if (const std::string where = cluster_evidence(); !where.empty())
      die("--time-scale and --time-scale-anchor are for demos and tests and are refused in a cluster (" + where +
              "); pass --allow-demo-clock to run a demo cluster so",
          2);
  }
  const auto watch_namespaces = bo::reconcile::parse_watch_namespaces(f.watch_namespace);
  if (!watch_namespaces) die("--watch-namespace: " + watch_namespaces.error(), 2);
  std::string watched_list;
  for (const auto& ns : *watch_namespaces) watched_list += (watched_list.empty() ? "" : ",") + ns;
  bo::log::init(f.log_format, f.log_level);

  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  auto cfg = bo::kube::load_default_config(f.kubeconfig, f.context);
  if (!cfg) die(cfg.error().message);
  cfg->qps = f.qps;
  cfg->burst = f.burst;
  auto transport = bo::kube::make_cpprest_transport(*cfg);
  if (!transport) die(transport.error().message);
  bo::metrics::Metrics metrics;
  // Three clients, each with its own limiter: `client` for start-up and what
  // every replica does (the webhook's certificate, metrics reviews);
  // `work_client` for the controllers, whose writes leader election fences;
  // the elector's own (below), so renewals never queue behind reconciles.
  bo::kube::Client client(std::move(*transport), f.qps, f.burst);
  client.set_observer([&](const std::string& verb, int code) { metrics.kube_request(verb, code); });
  auto work_transport = bo::kube::make_cpprest_transport(*cfg);
  if (!work_transport) die(work_transport.error().message);
  bo::kube::Client work_client(std::move(*work_transport), f.qps, f.burst);
  work_client.set_observer([&](const std::string& verb, int code) { metrics.kube_request(verb, code); });

  // Fail fast, in one line, when the API server cannot be reached or trusted.
  auto version = client.request("GET", "/version");
  if (!version) {
    const auto& e = version.error();
    die("cannot reach the Kubernetes API at " + cfg->server + ": " +
        (e.reason == "TLSError" ? "TLS verification failed (wrong certificate-authority?): " : "") + e.message);
  }

  std::atomic<bool> ready{false};
  std::unique_ptr<web::http::experimental::listener::http_listener> probes;
  if (auto addr = bind_address(f.probe_bind)) {
    auto bound = bo::open_listener(*addr, [&](const std::string& host_port) {
      auto l = std::make_unique<web::http::experimental::listener::http_listener>("http://" + host_port);
      l->support(web::http::methods::GET, [&](web::http::http_request req) {
        const auto path = req.relative_uri().path();
        if (path == "/healthz") req.reply(web::http::status_codes::OK, "ok");
        else if (path == "/readyz") req.reply(ready ? web::http::status_codes::OK : web::http::status_codes::ServiceUnavailable,
                                              ready ? "ok" : "not ready");
        else req.reply(web::http::status_codes::NotFound, "not found");
      });
      return l;
    });
    if (!bound) die("--health-probe-bind-address " + f.probe_bind + ": " + bound.error());
    probes = std::move(bound->listener);
    log_listening("health-probe", *addr, bound->port, false);
  }
  std::unique_ptr<bo::metrics::PlainServer> plain_metrics;
  std::unique_ptr<bo::metrics::SecureServer> secure_metrics;
  std::unique_ptr<bo::CertWatcher> metrics_certs, webhook_certs;  // reload rotated files (cert-manager)
  if (auto addr = bind_address(f.metrics_bind); addr && f.metrics_secure) {
    std::shared_ptr<const bo::ServingCertificate> serving;
    if (!f.metrics_cert_dir.empty()) {
      auto watcher = bo::CertWatcher::start(f.metrics_cert_dir);
      if (!watcher) die("--metrics-cert-dir " + f.metrics_cert_dir + ": " + watcher.error());
      metrics_certs = std::move(*watcher);
      serving = metrics_certs->certificate();
    } else {
      const auto tls = bo::generate_tls("backup-operator-metrics", "127.0.0.1,localhost");
      auto made = bo::ServingCertificate::make({tls.server.cert + tls.ca.cert, tls.server.key});
      if (!made) die("metrics certificate: " + made.error());
      serving = std::move(*made);
    }
    secure_metrics = std::make_unique<bo::metrics::SecureServer>(
        [&metrics](const bo::metrics::TextSink& sink) { return metrics.write_text(sink); },
        bo::metrics::kube_authorizer(client));
    if (auto started = secure_metrics->start(*addr, serving); !started)
      die("--metrics-bind-address " + f.metrics_bind + ": " + started.error());
    log_listening("metrics", *addr, secure_metrics->port(), true);
  } else if (addr) {
    plain_metrics = std::make_unique<bo::metrics::PlainServer>(
        [&metrics](const bo::metrics::TextSink& sink) { return metrics.write_text(sink); });
    if (auto started = plain_metrics->start(*addr); !started)
      die("--metrics-bind-address " + f.metrics_bind + ": " + started.error());
    log_listening("metrics", *addr, plain_metrics->port(), false);
  }
  if (f.operator_namespace.empty()) {
    const char* pod_ns = std::getenv("POD_NAMESPACE");
    f.operator_namespace = pod_ns && *pod_ns ? pod_ns : cfg->default_namespace;
  }
  // Who the operator is: the one identity a frozen namespace still accepts.
  std::string operator_username;
  {
    const json review{{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "SelfSubjectReview"}};
    auto who = client.create(bo::kube::resources::kSelfSubjectReviews, "", review);
    if (who) operator_username = (*who).value("status", json::object()).value("userInfo", json::object()).value("username", "");
    if (operator_username.empty())
      bo::log::warn("cannot learn the operator's own identity (SelfSubjectReview); a frozen namespace will accept no one",
                    {{"error", who ? std::string("no username") : who.error().str()}});
  }
  // The identity webhook runs on every replica: admission must not wait for a leader.
  bo::webhook::Server webhook;
  std::jthread webhook_renewal;  // generate mode: re-checks the Secret, re-issuing the leaf before it expires
  if (auto addr = bind_address(f.webhook_bind)) {
    std::shared_ptr<bo::ServingCertificate> serving;
    if (!f.webhook_cert_dir.empty()) {
      auto watcher = bo::CertWatcher::start(f.webhook_cert_dir);
      if (!watcher) die("--webhook-cert-dir " + f.webhook_cert_dir + ": " + watcher.error());
      webhook_certs = std::move(*watcher);
      serving = webhook_certs->certificate();
    } else {
      if (f.webhook_hosts.empty())
        f.webhook_hosts = {"backup-operator-webhook." + f.operator_namespace + ".svc",
                           "backup-operator-webhook." + f.operator_namespace + ".svc.cluster.local"};
      const bo::webhook::CertOptions cert_opts{f.operator_namespace, f.webhook_secret, f.webhook_hosts,
                                               f.webhook_configuration};
      bo::RealClock wall;
      auto cert = bo::webhook::ensure_certificate(client, cert_opts, wall);
      if (!cert) die("webhook certificate: " + cert.error());
      auto made = bo::ServingCertificate::make(cert->serving);
      if (!made) die("webhook certificate: " + made.error());
      serving = std::move(*made);
      if (!f.webhook_configuration.empty()) {
        auto patched = bo::webhook::patch_ca_bundle(client, f.webhook_configuration, cert->ca_cert);
        if (!patched) die("webhook caBundle: " + patched.error());
        if (!*patched)
          bo::log::warn("MutatingWebhookConfiguration not found; RestoreRequests will lack the requested-by identity",
                        {{"configuration", f.webhook_configuration}});
      }
      // Every replica, hourly: whichever replica re-issues the leaf first
      // stores it; the others serve it from their next look. The CA (and so
      // the caBundle) stays, so a replica a look behind is still trusted.
      webhook_renewal = std::jthread([&client, serving, cert_opts](std::stop_token st) {
        bo::RealClock wall;
        std::mutex m;
        std::condition_variable_any cv;
        while (true) {
          {
            std::unique_lock lock(m);
            if (cv.wait_for(lock, st, std::chrono::hours(1), [] { return false; }) || st.stop_requested()) return;
          }
          auto cert = bo::webhook::ensure_certificate(client, cert_opts, wall);
          if (!cert) {
            bo::log::warn("webhook certificate: renewal check failed; serving the current one", {{"error", cert.error()}});
            continue;
          }
          if (auto taken = serving->replace(cert->serving); taken && *taken)
            bo::log::info("webhook serving certificate replaced", {{"serial", bo::certificate_serial(cert->serving.cert)}});
          if (!cert_opts.mutating_configuration.empty())
            if (auto patched = bo::webhook::patch_ca_bundle(client, cert_opts.mutating_configuration, cert->ca_cert); !patched)
              bo::log::warn("webhook caBundle: update failed", {{"error", patched.error()}});
        }
      });
    }
    if (auto started = webhook.start(*addr, serving); !started)
      die("--webhook-bind-address " + f.webhook_bind + ": " + started.error());
    log_listening("webhook", *addr, webhook.port(), true);
  }
  bo::log::info("backup-operator starting", {{"version", bo::kVersion},
                                              {"server", cfg->server},
                                              {"apiVersion", (*version).value("gitVersion", "")},
                                              {"watchNamespace", watched_list},
                                              {"leaderElect", f.leader_elect},
                                              {"identity", operator_username}});

  std::stop_source stop;
  std::jthread signals([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    bo::log::info("signal received, shutting down", {{"signal", sig}});
    stop.request_stop();
  });

  std::unique_ptr<bo::Clock> clock_owner;
  if (f.time_scale > 1) {
    auto anchor = f.time_scale_anchor.empty() ? std::optional(std::chrono::system_clock::now())
                                              : bo::parse_rfc3339(f.time_scale_anchor);
    if (!anchor) die("--time-scale-anchor: not an RFC 3339 time: \"" + f.time_scale_anchor + "\"", 2);
    clock_owner = std::make_unique<bo::ScaledClock>(f.time_scale, *anchor);
  }
  else clock_owner = std::make_unique<bo::RealClock>();
  const bo::Clock& clock = *clock_owner;
  bo::RealClock real_clock;  // leader election always runs on real time
  // The elector exists before anything writes through work_client, so the gate is in place from the first write.
  std::unique_ptr<bo::kube::LeaderElector> elector;
  const std::string lease_ns = f.leader_namespace.empty() ? cfg->default_namespace : f.leader_namespace;
  if (f.leader_elect) {
    // The elector's own client, as controller-runtime gives leader election
    // its own rest config: its own limiter, each request bounded by the renew
    // deadline, and no retries inside an attempt (the renew loop retries
    // every retry period until the deadline).
    bo::kube::RestConfig lease_cfg = *cfg;
    lease_cfg.request_timeout = *renew_deadline;
    lease_cfg.connect_timeout = std::min(lease_cfg.connect_timeout, *renew_deadline);
    auto lease_transport = bo::kube::make_cpprest_transport(lease_cfg);
    if (!lease_transport) die(lease_transport.error().message);
    auto lease_client = std::make_unique<bo::kube::Client>(std::move(*lease_transport), f.qps, f.burst,
                                                           bo::kube::RetryPolicy{1, {}, {}});
    lease_client->set_observer([&](const std::string& verb, int code) { metrics.kube_request(verb, code); });
    elector = std::make_unique<bo::kube::LeaderElector>(
        std::move(lease_client),
        bo::kube::LeaderElectionConfig{lease_ns, f.leader_id, identity(), *lease_duration, *renew_deadline,
                                       *retry_period, true},
        real_clock);
    work_client.set_write_gate(elector->write_gate());
  }
  bo::kube::EventRecorder recorder(work_client, clock, {"backup-operator", identity()});
  std::unique_ptr<bo::reconcile::Caches> caches;
  std::unique_ptr<bo::reconcile::BackupPolicyController> policies;
  std::unique_ptr<bo::reconcile::RestoreController> restores;
  // Start and stop come from two threads (the elector's, and this one on a
  // signal): one at a time, and never a start after a stop.
  std::mutex controllers_mu;
  bool controllers_stopped = false;
  auto start_controllers = [&] {
    std::lock_guard lock(controllers_mu);
    if (controllers_stopped) return;
    caches = std::make_unique<bo::reconcile::Caches>(work_client, *watch_namespaces);
    bo::reconcile::BackupPolicyControllerOptions policy_opts{watched_list, f.max_concurrent_reconciles, f.job_image,
                                                             std::chrono::seconds(f.archive_probe_interval), {}};
    policy_opts.operator_namespace = f.operator_namespace;
    policy_opts.catalog_sync = true;  // status.backups is rebuilt from storage when status lost it
    policies = std::make_unique<bo::reconcile::BackupPolicyController>(work_client, *caches, clock, recorder, metrics,
                                                                       std::move(policy_opts));
    restores = std::make_unique<bo::reconcile::RestoreController>(
        work_client, *caches, clock, recorder, metrics, bo::reconcile::RestoreControllerOptions{f.max_concurrent_reconciles, f.job_image, operator_username,
                                                                         f.operator_namespace});
    caches->start();
    policies->start();
    restores->start();
    ready = true;
    bo::log::info("controllers started");
  };
  // Workers joined, queued Events posted: nothing of the controllers writes after this returns.
  auto stop_controllers = [&] {
    std::lock_guard lock(controllers_mu);
    if (controllers_stopped) return;
    controllers_stopped = true;
    if (policies) policies->stop();
    if (restores) restores->stop();
    if (caches) caches->stop();
    recorder.flush();
    bo::log::info("controllers stopped");
  };
  std::mutex wait_mu;
  std::condition_variable_any wait_cv;
  auto wait_for_stop = [&] {
    std::unique_lock lock(wait_mu);
    wait_cv.wait(lock, stop.get_token(), [] { return false; });
  };
  if (elector) {
    bo::log::info("waiting for leadership", {{"lease", lease_ns + "/" + f.leader_id}});
    ready = true;  // a standby replica is healthy and ready; it just does not reconcile
    std::atomic<bool> lost{false};
    std::jthread election([&](std::stop_token st) {
      elector->run(
          st,
          [&] {
            metrics.set_leader(true);
            bo::log::info("became leader", {{"lease", lease_ns + "/" + f.leader_id}});
            start_controllers();
          },
          [&] {
            // Lost: the fence has closed already; stop the workers before anything else.
            // Shutting down: the controllers stopped before the elector was told to stop.
            stop_controllers();
            metrics.set_leader(false);
          });
      if (!st.stop_requested()) {
        lost = true;
        stop.request_stop();
      }
    });
    wait_for_stop();
    if (lost) {
      // As controller-runtime: a replica that lost its lease stops at once;
      // its successor reconciles from the cluster's state.
      bo::log::error("leader election lost");
      std::_Exit(1);
    }
    // controller-runtime's order: stop the controllers while the lease is
    // still renewed, then end the election, which releases the Lease last.
    stop_controllers();
    election.request_stop();
    election.join();
  } else {
    start_controllers();
    wait_for_stop();
    stop_controllers();
  }
  webhook_renewal = {};
  webhook.stop();
  if (probes) probes->close().wait();
  bo::log::info("backup-operator stopped");
  std::_Exit(0);
}
