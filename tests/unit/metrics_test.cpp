// The operator's metrics: what /metrics shows for the per-policy series, and
// that a deleted policy leaves none behind.
#include <gtest/gtest.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "metrics/metrics.h"
#include "metrics/policy_series.h"

namespace {

// Every per-policy series kind, for two policies in two namespaces, plus a
// condition whose status changed and a Databasus series that was removed.
void fill(bo::metrics::Metrics& m) {
  m.kube_request("GET", 200);
  m.queue_depth("backuppolicy", 3);
  m.queue_add("backuppolicy");
  for (const std::string ns : {"team-a", "team-b"})
    for (const std::string p : {"db", "analytics"}) {
      m.policy_condition(ns, p, "Ready", "False");
      m.policy_condition(ns, p, "Ready", "True");  // replaces the False series
      m.policy_condition(ns, p, "StorageReachable", "True");
      m.policy_condition(ns, p, "BackupHealthy", "Unknown");
      m.backup_interval(ns, p, 3600);
      m.backup_missed(ns, p, 2);
      m.backup_missed(ns, p, 1);
      m.backup_run(ns, p, "backup", "success", 42.5);
      m.backup_run(ns, p, "backup", "success", 0);
      m.backup_run(ns, p, "full-backup", "failure", 0);
      m.backup_last_success(ns, p, "delta", 1767225600);
      m.backup_last_success(ns, p, "full", 1767139200.5);
      m.backup_last_verified(ns, p, 1767000000);
      m.drill_last_success(ns, p, 1766000000);
      m.databasus_exposed(ns, p, true, p == "db");
      m.continuous_archiving(ns, p, p == "db", p == "db" ? std::optional<double>(1767225601.25) : std::nullopt, 3);
      m.restore_recovery(ns, p, "verification", 12.75);
      m.restore_recovery(ns, p, "drill", 30);
    }
  m.databasus_exposed("team-b", "analytics", false, false);  // addon off: its series goes
  m.restore_run("team-a", "verification", "blocked", 0);
}

// The exposition with each family's series sorted: prometheus-cpp kept a
// family's series in a hash map, so their order was never defined; the
// families' order, HELP, TYPE, labels and values are.
std::string normalized(const bo::metrics::Metrics& m) {
  const std::string text = m.text();  // what /metrics serves
  std::string out;
  std::vector<std::string> series;
  auto flush = [&] {
    std::sort(series.begin(), series.end());
    for (const auto& s : series) out += s + "\n";
    series.clear();
  };
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.starts_with("# HELP")) flush();
    if (line.starts_with("#")) out += line + "\n";
    else series.push_back(line);
  }
  flush();
  return out;
}

std::vector<std::string> lines_with(const bo::metrics::Metrics& m, const std::string& needle) {
  const std::string text = m.text();
  std::vector<std::string> out;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.find(needle) != std::string::npos) out.push_back(line);
  return out;
}

// What one prometheus-cpp Registry with every family on it gave for fill()
// (generated from the operator before the per-policy series moved to
// PolicySeries): the dashboards, the alert rules and the tests read these.
const char* const kGolden = R"(# HELP backup_operator_kube_requests_total Requests to the Kubernetes API by verb and HTTP status (0: no answer).
# TYPE backup_operator_kube_requests_total counter
backup_operator_kube_requests_total{code="200",verb="GET"} 1
# HELP workqueue_adds_total Total number of adds handled by workqueue.
# TYPE workqueue_adds_total counter
workqueue_adds_total{name="backuppolicy"} 1
# HELP backup_operator_backup_missed_total Schedule slots that passed without a run.
# TYPE backup_operator_backup_missed_total counter
backup_operator_backup_missed_total{namespace="team-a",policy="analytics"} 3
backup_operator_backup_missed_total{namespace="team-a",policy="db"} 3
backup_operator_backup_missed_total{namespace="team-b",policy="analytics"} 3
backup_operator_backup_missed_total{namespace="team-b",policy="db"} 3
# HELP backup_operator_backup_runs_total Finished runs by action and result.
# TYPE backup_operator_backup_runs_total counter
backup_operator_backup_runs_total{action="backup",namespace="team-a",policy="analytics",result="success"} 2
backup_operator_backup_runs_total{action="backup",namespace="team-a",policy="db",result="success"} 2
backup_operator_backup_runs_total{action="backup",namespace="team-b",policy="analytics",result="success"} 2
backup_operator_backup_runs_total{action="backup",namespace="team-b",policy="db",result="success"} 2
backup_operator_backup_runs_total{action="full-backup",namespace="team-a",policy="analytics",result="failure"} 1
backup_operator_backup_runs_total{action="full-backup",namespace="team-a",policy="db",result="failure"} 1
backup_operator_backup_runs_total{action="full-backup",namespace="team-b",policy="analytics",result="failure"} 1
backup_operator_backup_runs_total{action="full-backup",namespace="team-b",policy="db",result="failure"} 1
# HELP backup_operator_restore_runs_total Finished RestoreRequests by purpose and result (success, failure, blocked).
# TYPE backup_operator_restore_runs_total counter
backup_operator_restore_runs_total{namespace="team-a",purpose="verification",result="blocked"} 1
# HELP backup_operator_leader 1 while this replica holds the leader lease.
# TYPE backup_operator_leader gauge
backup_operator_leader 0
# HELP backup_operator_workqueue_depth Keys waiting in a controller's work queue.
# TYPE backup_operator_workqueue_depth gauge
backup_operator_workqueue_depth{controller="backuppolicy"} 3
# HELP workqueue_depth Current depth of workqueue.
# TYPE workqueue_depth gauge
workqueue_depth{name="backuppolicy"} 3
# HELP backup_operator_backup_last_success_timestamp_seconds Completion time of the newest successful backup, by type.
# TYPE backup_operator_backup_last_success_timestamp_seconds gauge
backup_operator_backup_last_success_timestamp_seconds{namespace="team-a",policy="analytics",type="delta"} 1767225600
backup_operator_backup_last_success_timestamp_seconds{namespace="team-a",policy="analytics",type="full"} 1767139200.5
backup_operator_backup_last_success_timestamp_seconds{namespace="team-a",policy="db",type="delta"} 1767225600
backup_operator_backup_last_success_timestamp_seconds{namespace="team-a",policy="db",type="full"} 1767139200.5
backup_operator_backup_last_success_timestamp_seconds{namespace="team-b",policy="analytics",type="delta"} 1767225600
backup_operator_backup_last_success_timestamp_seconds{namespace="team-b",policy="analytics",type="full"} 1767139200.5
backup_operator_backup_last_success_timestamp_seconds{namespace="team-b",policy="db",type="delta"} 1767225600
backup_operator_backup_last_success_timestamp_seconds{namespace="team-b",policy="db",type="full"} 1767139200.5
# HELP backup_operator_policy_condition 1 for each policy condition's current status.
# TYPE backup_operator_policy_condition gauge
backup_operator_policy_condition{namespace="team-a",policy="analytics",status="True",type="Ready"} 1
backup_operator_policy_condition{namespace="team-a",policy="analytics",status="True",type="StorageReachable"} 1
backup_operator_policy_condition{namespace="team-a",policy="analytics",status="Unknown",type="BackupHealthy"} 1
backup_operator_policy_condition{namespace="team-a",policy="db",status="True",type="Ready"} 1
backup_operator_policy_condition{namespace="team-a",policy="db",status="True",type="StorageReachable"} 1
backup_operator_policy_condition{namespace="team-a",policy="db",status="Unknown",type="BackupHealthy"} 1
backup_operator_policy_condition{namespace="team-b",policy="analytics",status="True",type="Ready"} 1
backup_operator_policy_condition{namespace="team-b",policy="analytics",status="True",type="StorageReachable"} 1
backup_operator_policy_condition{namespace="team-b",policy="analytics",status="Unknown",type="BackupHealthy"} 1
backup_operator_policy_condition{namespace="team-b",policy="db",status="True",type="Ready"} 1
backup_operator_policy_condition{namespace="team-b",policy="db",status="True",type="StorageReachable"} 1
backup_operator_policy_condition{namespace="team-b",policy="db",status="Unknown",type="BackupHealthy"} 1
# HELP backup_operator_backup_interval_seconds Seconds between the policy's scheduled backups (what BackupMissed compares against).
# TYPE backup_operator_backup_interval_seconds gauge
backup_operator_backup_interval_seconds{namespace="team-a",policy="analytics"} 3600
backup_operator_backup_interval_seconds{namespace="team-a",policy="db"} 3600
backup_operator_backup_interval_seconds{namespace="team-b",policy="analytics"} 3600
backup_operator_backup_interval_seconds{namespace="team-b",policy="db"} 3600
# HELP backup_operator_backup_last_verified_timestamp_seconds Completion time of the newest backup a verification restore proved good.
# TYPE backup_operator_backup_last_verified_timestamp_seconds gauge
backup_operator_backup_last_verified_timestamp_seconds{namespace="team-a",policy="analytics"} 1767000000
backup_operator_backup_last_verified_timestamp_seconds{namespace="team-a",policy="db"} 1767000000
backup_operator_backup_last_verified_timestamp_seconds{namespace="team-b",policy="analytics"} 1767000000
backup_operator_backup_last_verified_timestamp_seconds{namespace="team-b",policy="db"} 1767000000
# HELP backup_operator_databasus_exposed 1 while a Service, Ingress, host port or host network reaches the policy's Databasus, or its NetworkPolicy was tampered with.
# TYPE backup_operator_databasus_exposed gauge
backup_operator_databasus_exposed{namespace="team-a",policy="analytics"} 0
backup_operator_databasus_exposed{namespace="team-a",policy="db"} 1
backup_operator_databasus_exposed{namespace="team-b",policy="db"} 1
# HELP backup_operator_drill_last_success_timestamp_seconds Completion time of the newest successful restore drill.
# TYPE backup_operator_drill_last_success_timestamp_seconds gauge
backup_operator_drill_last_success_timestamp_seconds{namespace="team-a",policy="analytics"} 1766000000
backup_operator_drill_last_success_timestamp_seconds{namespace="team-a",policy="db"} 1766000000
backup_operator_drill_last_success_timestamp_seconds{namespace="team-b",policy="analytics"} 1766000000
backup_operator_drill_last_success_timestamp_seconds{namespace="team-b",policy="db"} 1766000000
# HELP backup_operator_wal_last_archived_timestamp_seconds pg_stat_archiver.last_archived_time of the policy's database.
# TYPE backup_operator_wal_last_archived_timestamp_seconds gauge
backup_operator_wal_last_archived_timestamp_seconds{namespace="team-a",policy="db"} 1767225601.25
backup_operator_wal_last_archived_timestamp_seconds{namespace="team-b",policy="db"} 1767225601.25
# HELP backup_operator_wal_archive_failures pg_stat_archiver.failed_count of the policy's database (a counter PostgreSQL resets with pg_stat_reset_shared('archiver'), hence a gauge; not *_count, which Prometheus reserves for histograms and summaries).
# TYPE backup_operator_wal_archive_failures gauge
backup_operator_wal_archive_failures{namespace="team-a",policy="analytics"} 3
backup_operator_wal_archive_failures{namespace="team-a",policy="db"} 3
backup_operator_wal_archive_failures{namespace="team-b",policy="analytics"} 3
backup_operator_wal_archive_failures{namespace="team-b",policy="db"} 3
# HELP backup_operator_continuous_archiving 1 while the policy's ContinuousArchiving condition is True, else 0.
# TYPE backup_operator_continuous_archiving gauge
backup_operator_continuous_archiving{namespace="team-a",policy="analytics"} 0
backup_operator_continuous_archiving{namespace="team-a",policy="db"} 1
backup_operator_continuous_archiving{namespace="team-b",policy="analytics"} 0
backup_operator_continuous_archiving{namespace="team-b",policy="db"} 1
# HELP backup_operator_restore_recovery_seconds The newest measured recovery of a verification or drill: seconds from the scratch server's start to accepting writes (a measured RTO, fetch excluded).
# TYPE backup_operator_restore_recovery_seconds gauge
backup_operator_restore_recovery_seconds{namespace="team-a",policy="analytics",purpose="drill"} 30
backup_operator_restore_recovery_seconds{namespace="team-a",policy="analytics",purpose="verification"} 12.75
backup_operator_restore_recovery_seconds{namespace="team-a",policy="db",purpose="drill"} 30
backup_operator_restore_recovery_seconds{namespace="team-a",policy="db",purpose="verification"} 12.75
backup_operator_restore_recovery_seconds{namespace="team-b",policy="analytics",purpose="drill"} 30
backup_operator_restore_recovery_seconds{namespace="team-b",policy="analytics",purpose="verification"} 12.75
backup_operator_restore_recovery_seconds{namespace="team-b",policy="db",purpose="drill"} 30
backup_operator_restore_recovery_seconds{namespace="team-b",policy="db",purpose="verification"} 12.75
# HELP backup_operator_backup_duration_seconds Duration of successful backups, from the job's result.
# TYPE backup_operator_backup_duration_seconds histogram
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="analytics",le="+Inf"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="analytics",le="10"} 0
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="analytics",le="120"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="analytics",le="1200"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="analytics",le="1800"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="analytics",le="30"} 0
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="analytics",le="300"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="analytics",le="3600"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="analytics",le="60"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="analytics",le="600"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="analytics",le="7200"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="db",le="+Inf"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="db",le="10"} 0
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="db",le="120"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="db",le="1200"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="db",le="1800"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="db",le="30"} 0
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="db",le="300"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="db",le="3600"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="db",le="60"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="db",le="600"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-a",policy="db",le="7200"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="analytics",le="+Inf"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="analytics",le="10"} 0
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="analytics",le="120"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="analytics",le="1200"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="analytics",le="1800"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="analytics",le="30"} 0
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="analytics",le="300"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="analytics",le="3600"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="analytics",le="60"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="analytics",le="600"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="analytics",le="7200"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="db",le="+Inf"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="db",le="10"} 0
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="db",le="120"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="db",le="1200"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="db",le="1800"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="db",le="30"} 0
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="db",le="300"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="db",le="3600"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="db",le="60"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="db",le="600"} 1
backup_operator_backup_duration_seconds_bucket{action="backup",namespace="team-b",policy="db",le="7200"} 1
backup_operator_backup_duration_seconds_count{action="backup",namespace="team-a",policy="analytics"} 1
backup_operator_backup_duration_seconds_count{action="backup",namespace="team-a",policy="db"} 1
backup_operator_backup_duration_seconds_count{action="backup",namespace="team-b",policy="analytics"} 1
backup_operator_backup_duration_seconds_count{action="backup",namespace="team-b",policy="db"} 1
backup_operator_backup_duration_seconds_sum{action="backup",namespace="team-a",policy="analytics"} 42.5
backup_operator_backup_duration_seconds_sum{action="backup",namespace="team-a",policy="db"} 42.5
backup_operator_backup_duration_seconds_sum{action="backup",namespace="team-b",policy="analytics"} 42.5
backup_operator_backup_duration_seconds_sum{action="backup",namespace="team-b",policy="db"} 42.5
)";

TEST(Metrics, PerPolicySeriesExposeExactlyAsOnePrometheusCppRegistryDid) {
  bo::metrics::Metrics m;
  fill(m);
  EXPECT_EQ(normalized(m), kGolden);
}

TEST(Metrics, ForgettingAPolicyRemovesEveryOneOfItsSeriesAndNoOtherPolicys) {
  bo::metrics::Metrics m;
  fill(m);
  const std::string gone = "namespace=\"team-a\",policy=\"db\"";
  const size_t before = m.policy_series();
  ASSERT_FALSE(lines_with(m, gone).empty());
  const auto others = lines_with(m, "namespace=\"team-b\",policy=\"db\"");
  m.forget_policy("team-a", "db");
  EXPECT_EQ(lines_with(m, gone), std::vector<std::string>{}) << "histogram series included";
  EXPECT_EQ(lines_with(m, "namespace=\"team-b\",policy=\"db\""), others);
  EXPECT_LT(m.policy_series(), before);
  // Once every policy is gone, so are the per-policy families (no HELP without a series).
  m.forget_policy("team-a", "analytics");
  m.forget_policy("team-b", "db");
  m.forget_policy("team-b", "analytics");
  EXPECT_EQ(m.policy_series(), 0u);
  EXPECT_EQ(lines_with(m, "policy=\""), std::vector<std::string>{});
  EXPECT_EQ(lines_with(m, "# HELP backup_operator_policy_condition"), std::vector<std::string>{});
  EXPECT_EQ(lines_with(m, "# HELP backup_operator_backup_runs_total"), std::vector<std::string>{});
  // A policy that comes back starts afresh.
  m.backup_missed("team-a", "db", 1);
  EXPECT_EQ(lines_with(m, "backup_operator_backup_missed_total{"),
            std::vector<std::string>{"backup_operator_backup_missed_total{namespace=\"team-a\",policy=\"db\"} 1"});
}

TEST(PolicySeries, AConditionHasOneSeriesThatFollowsItsStatus) {
  bo::metrics::PolicySeries s({{"cond", "h", prometheus::MetricType::Gauge, {"type", "status"}}});
  s.set("ns", "p", 0, {"Ready", "False"}, 1, 1);
  s.set("ns", "p", 0, {"Ready", "True"}, 1, 1);
  s.set("ns", "p", 0, {"Synced", "True"}, 1, 1);
  EXPECT_EQ(s.series(), 2u);
  const auto families = s.Collect();
  ASSERT_EQ(families.size(), 1u);
  ASSERT_EQ(families[0].metric.size(), 2u);
  EXPECT_EQ(families[0].metric[0].label[2].name, "status");
  EXPECT_EQ(families[0].metric[0].label[2].value, "True");
  EXPECT_EQ(families[0].metric[0].label[3].value, "Ready");
  EXPECT_TRUE(s.remove("ns", "p", 0, {"Synced", "True"}));
  EXPECT_FALSE(s.remove("ns", "p", 0, {"Synced", "True"}));
  EXPECT_EQ(s.series(), 1u);
}

// Pieces of a written exposition, and the largest.
struct Pieces {
  std::string text;
  size_t count = 0;
  size_t largest = 0;
  bo::metrics::TextSink sink() {
    return [this](std::string_view p) {
      text.append(p);
      ++count;
      largest = std::max(largest, p.size());
      return true;
    };
  }
};

TEST(Metrics, ServedTextIsWhatTextSerializerWritesForCollect) {
  bo::metrics::Metrics m;
  fill(m);
  // More policies than one slice of a registered family (the per-policy
  // duration histogram) and one piece of a PolicySeries family hold.
  for (int i = 0; i < 600; ++i) {
    const std::string p = "policy-" + std::to_string(i);
    m.backup_run("fleet", p, "backup", i % 3 ? "success" : "failure", i * 1.25);
    m.policy_condition("fleet", p, "Ready", i % 2 ? "True" : "False");
    m.backup_last_success("fleet", p, "full", 1767139200.5 + i / 3.0);
  }
  const std::string expected = prometheus::TextSerializer().Serialize(m.registry()->Collect());
  Pieces pieces;
  ASSERT_TRUE(m.write_text(pieces.sink()));
  EXPECT_EQ(pieces.text, expected);
  EXPECT_EQ(m.text(), expected);
  EXPECT_GT(pieces.count, 10u) << "written a piece at a time";
}

TEST(PolicySeries, WritesEachFamilyInBoundedPiecesExactlyAsTextSerializer) {
  using prometheus::MetricType;
  bo::metrics::PolicySeries s({{"runs_total", "Runs.", MetricType::Counter, {"result", "action"}},
                               {"no_help", "", MetricType::Gauge, {}},
                               {"unused", "Never set.", MetricType::Gauge, {}},
                               {"ts", "A \\ help \"text\".", MetricType::Gauge, {"type"}}});
  const double values[] = {0, 1, 42.5, 1.0 / 3, 1767139200.123, 1e20, 1e-7, -2.5, 31536000, 123456789012345678.0,
                           std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity()};
  for (int i = 0; i < 500; ++i) {
    const std::string ns = i % 7 ? "ns-" + std::to_string(i % 5) : "odd\\\"ns\n";
    const std::string p = "p" + std::to_string(i);
    const double v = values[i % std::size(values)];
    s.add(ns, p, 0, {i % 2 ? "success" : "fail\"ure", "backup"}, v);
    if (i % 3) s.set(ns, p, 1, {}, v);
    s.set(ns, p, 3, {"full"}, v);
    s.set(ns, p, 3, {"delta\\"}, -v);
  }
  const auto collected = s.Collect();
  for (size_t f = 0; f < s.families().size(); ++f) {
    std::string expected;
    for (const auto& fam : collected)
      if (fam.name == s.families()[f].name) expected = prometheus::TextSerializer().Serialize({fam});
    Pieces pieces;
    ASSERT_TRUE(s.write_family(f, pieces.sink(), 1000));
    EXPECT_EQ(pieces.text, expected) << s.families()[f].name;
    if (f == 2) EXPECT_EQ(pieces.count, 0u) << "a family without series writes nothing";
    else EXPECT_GT(pieces.count, 3u);
    EXPECT_LT(pieces.largest, 1000u + 400u) << "a piece is cut after the policy that passes its size";
  }
  // A sink that refuses stops the writing.
  size_t calls = 0;
  EXPECT_FALSE(s.write_family(0, [&](std::string_view) { ++calls; return false; }, 1000));
  EXPECT_EQ(calls, 1u);
}

TEST(PolicySeries, RefusesAFamilyItCannotExpose) {
  EXPECT_THROW(bo::metrics::PolicySeries({{"h", "h", prometheus::MetricType::Histogram, {}}}), std::invalid_argument);
  EXPECT_THROW(bo::metrics::PolicySeries({{"g", "h", prometheus::MetricType::Gauge, {"a", "b", "c"}}}),
               std::invalid_argument);
}

}  // namespace
