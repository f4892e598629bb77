// Leader election in controller-runtime's order (issue 18 item 3): the old
// leader's writes stop before a new leader can exist, however stuck its
// renewals are, and on shutdown the work stops before the Lease is released.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <mutex>

#include "common/clock.h"
#include "common/encoding.h"
#include "chart_operator.h"
#include "harness.h"
#include "kube/leader.h"

using namespace bo::kube;
using nlohmann::json;
using testing_support::eventually;
using testing_support::KubeLocal;

namespace {

// A transport that can be made to hang, as a partitioned or overloaded API
// server does: a request sent while hanging never returns until released.
class HangingTransport final : public Transport {
 public:
  explicit HangingTransport(std::unique_ptr<Transport> inner) : inner_(std::move(inner)) {}
  Result<HttpResponse> send(const HttpRequest& req) override {
    wait_while_hanging();
    return inner_->send(req);
  }
  Result<HttpResponse> stream(const HttpRequest& req, const std::function<bool(std::string_view)>& on_line,
                              Canceller* cancel) override {
    wait_while_hanging();
    return inner_->stream(req, on_line, cancel);
  }
  void hang(bool on) {
    {
      std::lock_guard lock(mu_);
      hanging_ = on;
    }
    cv_.notify_all();
  }

 private:
  void wait_while_hanging() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !hanging_; });
  }
  std::unique_ptr<Transport> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool hanging_ = false;
};

// Runs `f` when it goes out of scope: a failed assertion must not leave a thread waiting forever.
struct AtExit {
  std::function<void()> f;
  ~AtExit() { f(); }
};

uint64_t rv_of(const json& obj) { return std::stoull(obj["metadata"].value("resourceVersion", "0")); }

class LeaderFencing : public ::testing::Test {
 protected:
  void SetUp() override {
    admin_ = server_.client();
    ns_ = "t" + bo::hex_encode(bo::random_bytes(4));
    ASSERT_TRUE(admin_->create(resources::kNamespaces, "", {{"metadata", {{"name", ns_}}}}));
  }
  LeaderElectionConfig config(const std::string& identity) const {
    return {ns_, "lock", identity, std::chrono::milliseconds(2000), std::chrono::milliseconds(1000),
            std::chrono::milliseconds(100), true};
  }
  KubeLocal server_;
  std::unique_ptr<Client> admin_;
  std::string ns_;
  bo::RealClock clock_;
};

TEST_F(LeaderFencing, NoWriteByTheOldLeaderReachesTheServerAfterTheNewOneAcquired) {
  auto inner = server_.transport();
  auto hanging = std::make_unique<HangingTransport>(std::move(inner));
  HangingTransport& lease_link = *hanging;
  LeaderElector a(std::make_unique<Client>(std::move(hanging), 0, 1, RetryPolicy{1, {}, {}}), config("a"), clock_);
  const AtExit unhang{[&] { lease_link.hang(false); }};  // before A goes: its abandoned attempt must return
  LeaderElector b(server_.client({1}), config("b"), clock_);
  // A's controllers: a writer as busy as can be, on a client fenced by A's election, never told to stop.
  auto work = server_.client({1});
  work->set_write_gate(a.write_gate());
  ASSERT_TRUE(admin_->create(resources::kConfigMaps, ns_,
                             {{"metadata", {{"name", "work"}}}, {"data", {{"writer", "none"}, {"n", "0"}}}}));
  std::atomic<bool> a_stopped{false};
  std::jthread ta([&](std::stop_token st) { a.run(st, [] {}, [&] { a_stopped = true; }); });
  ASSERT_TRUE(eventually([&] { return a.is_leader(); }));

  std::mutex mu;
  std::vector<uint64_t> a_write_rvs;  // what the server stored from A's writer
  std::atomic<int> refused{0}, written{0};
  std::jthread writer([&](std::stop_token st) {
    for (int n = 1; !st.stop_requested(); ++n) {
      auto r = work->patch(resources::kConfigMaps, ns_, "work", PatchType::kMerge,
                           {{"data", {{"writer", "a"}, {"n", std::to_string(n)}}}});
      if (r) {
        std::lock_guard lock(mu);
        a_write_rvs.push_back(rv_of(*r));
        ++written;
      } else if (r.error().reason == "NotLeader") {
        ++refused;
        std::this_thread::yield();
      }
    }
  });
  // The server's own record of every write to the object, from before A's renewals hang.
  std::vector<std::pair<uint64_t, std::string>> stored;  // rv, writer
  Canceller cancel_watch;
  std::jthread watch_cm([&] {
    (void)admin_->watch(resources::kConfigMaps, ns_, {"", "metadata.name=work", "0", 60, false},
                        [&](const WatchEvent& ev) {
                          std::lock_guard lock(mu);
                          stored.emplace_back(rv_of(ev.object), ev.object["data"].value("writer", ""));
                          return true;
                        },
                        &cancel_watch);
  });
  const AtExit end_watch{[&] { cancel_watch.cancel(); }};  // destroyed before watch_cm joins
  ASSERT_TRUE(eventually([&] { return written.load() >= 20; }));

  // A's renewals now hang forever; B starts campaigning.
  lease_link.hang(true);
  std::jthread tb([&](std::stop_token st) { b.run(st, [] {}, [] {}); });
  ASSERT_TRUE(eventually([&] { return b.is_leader(); }, std::chrono::seconds(30)));
  // The elector gave A's leadership up, although its renewal never returned.
  ASSERT_TRUE(eventually([&] { return a_stopped.load(); }, std::chrono::seconds(10)));
  EXPECT_FALSE(a.is_leader());
  auto lease = admin_->get(resources::kLeases, ns_, "lock");
  ASSERT_TRUE(lease);
  ASSERT_EQ((*lease)["spec"].value("holderIdentity", ""), "b");
  // The first resourceVersion of the Lease held by b is at most this one.
  const uint64_t b_acquired = rv_of(*lease);
  // A's writer keeps trying for a good while after B holds the Lease.
  const int refused_then = refused.load();
  ASSERT_TRUE(eventually([&] { return refused.load() >= refused_then + 200; }));
  writer.request_stop();
  writer.join();
  // A marker write by the admin, so the watch has seen everything before it.
  auto marker = admin_->patch(resources::kConfigMaps, ns_, "work", PatchType::kMerge, {{"data", {{"writer", "admin"}}}});
  ASSERT_TRUE(marker);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(mu);
    return !stored.empty() && stored.back().first >= rv_of(*marker);
  }));
  cancel_watch.cancel();
  watch_cm.join();

  std::lock_guard lock(mu);
  ASSERT_FALSE(a_write_rvs.empty());
  EXPECT_LT(*std::max_element(a_write_rvs.begin(), a_write_rvs.end()), b_acquired);
  size_t from_a = 0;
  for (const auto& [rv, who] : stored) {
    if (who != "a") continue;
    ++from_a;
    EXPECT_LT(rv, b_acquired) << "A's write at resourceVersion " << rv << " reached the server after b acquired";
  }
  EXPECT_GT(from_a, 0u);
  std::cout << "A: " << a_write_rvs.size() << " writes stored, " << refused.load()
            << " refused before sending; b acquired by resourceVersion " << b_acquired << std::endl;
}

TEST_F(LeaderFencing, OnShutdownTheWorkStopsBeforeTheLeaseIsReleased) {
  LeaderElector e(server_.client({1}), config("e"), clock_);
  auto work = server_.client({1});
  work->set_write_gate(e.write_gate());
  ASSERT_TRUE(admin_->create(resources::kConfigMaps, ns_, {{"metadata", {{"name", "last"}}}, {"data", {{"k", "v"}}}}));
  std::optional<Result<json>> last_write;
  std::jthread t([&](std::stop_token st) {
    e.run(st, [] {},
          [&] {
            // A controller's last status write while it stops: the Lease must still be ours.
            last_write = work->patch(resources::kConfigMaps, ns_, "last", PatchType::kMerge,
                                     {{"data", {{"k", "written while stopping"}}}});
          });
  });
  ASSERT_TRUE(eventually([&] { return e.is_leader(); }));
  t.request_stop();
  t.join();
  ASSERT_TRUE(last_write.has_value());
  ASSERT_TRUE(*last_write) << last_write->error().str();
  auto lease = admin_->get(resources::kLeases, ns_, "lock");
  ASSERT_TRUE(lease);
  EXPECT_EQ((*lease)["spec"].value("holderIdentity", "x"), "");  // released
  EXPECT_GT(rv_of(*lease), rv_of(**last_write)) << "the Lease was released before the work had stopped";
  // After the release, the fence is shut: nothing more from this replica.
  auto after = work->patch(resources::kConfigMaps, ns_, "last", PatchType::kMerge, {{"data", {{"k", "late"}}}});
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().reason, "NotLeader");
}

// The binary, as the chart runs it: on SIGTERM its controllers stop first,
// and the Lease's release is the last write the API server sees from it.
TEST(LeaderShutdown, TheOperatorStopsItsControllersThenReleasesTheLeaseAsItsLastWrite) {
  const auto dir = testing_support::make_temp_dir("leader-shutdown");
  const auto audit = dir / "audit.jsonl";
  KubeLocal server({"--authorize", "--audit-log", audit.string()});
  const auto chart = testing_support::install_crds_and_chart(server, dir);
  testing_support::Child op(chart.args({"--metrics-bind-address", "0"}), dir / "op.log");
  ASSERT_TRUE(eventually([&] { return op.log().find("\"msg\":\"controllers started\"") != std::string::npos; },
                         std::chrono::seconds(30)))
      << op.log();
  op.stop(SIGTERM);
  const std::string log = op.log();
  const auto stopped = log.find("\"msg\":\"controllers stopped\""), released = log.find("\"msg\":\"lease released\"");
  ASSERT_NE(stopped, std::string::npos) << log;
  ASSERT_NE(released, std::string::npos) << log;
  EXPECT_LT(stopped, released) << log;
  std::ifstream in(audit);
  json last_write;
  for (std::string line; std::getline(in, line);) {
    const json entry = json::parse(line, nullptr, false);
    if (!entry.is_object() || entry.value("user", "") != chart.username) continue;
    const std::string verb = entry.value("verb", "");
    if (verb == "create" || verb == "update" || verb == "patch" || verb == "delete" || verb == "deletecollection")
      last_write = entry;
  }
  ASSERT_TRUE(last_write.is_object());
  EXPECT_EQ(last_write.value("verb", ""), "update") << last_write.dump();
  EXPECT_EQ(last_write.value("resource", ""), "leases") << last_write.dump();
  std::filesystem::remove_all(dir);
}

}  // namespace
