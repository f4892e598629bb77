// The Kubernetes client against a real HTTPS API server (kube-local).
#include <gtest/gtest.h>

#include <atomic>
#include <set>

#include "common/clock.h"
#include "common/encoding.h"
#include "harness.h"
#include "kube-local/certs.h"
#include "kube/informer.h"
#include "common/timefmt.h"
#include "kube/events.h"
#include "kube/leader.h"

using namespace bo::kube;
using testing_support::eventually;
using testing_support::KubeLocal;
using nlohmann::json;

namespace {

json configmap(const std::string& name, const std::string& value = "v") {
  return {{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}, {"data", {{"k", value}}}};
}

class KubeClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new KubeLocal(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    client_ = server_->client();
    ns_ = "t" + bo::hex_encode(bo::random_bytes(4));
    ASSERT_TRUE(client_->create(resources::kNamespaces, "", {{"metadata", {{"name", ns_}}}}));
  }
  static KubeLocal* server_;
  std::unique_ptr<Client> client_;
  std::string ns_;
};
KubeLocal* KubeClientTest::server_ = nullptr;

TEST_F(KubeClientTest, ListPagingReturnsEveryItemExactlyOnce) {
  for (int i = 0; i < 23; ++i) ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, configmap("cm-" + std::to_string(i))));
  auto first = client_->list(resources::kConfigMaps, ns_, {"", "", 7, "", ""});
  ASSERT_TRUE(first) << first.error().str();
  EXPECT_EQ((*first)["items"].size(), 7u);
  EXPECT_FALSE((*first)["metadata"].value("continue", "").empty());
  EXPECT_EQ((*first)["metadata"].value("remainingItemCount", 0), 16);

  auto all = client_->list_all(resources::kConfigMaps, ns_, {"", "", 7, "", ""});
  ASSERT_TRUE(all) << all.error().str();
  std::set<std::string> names;
  for (const auto& it : (*all)["items"]) names.insert(it["metadata"]["name"].get<std::string>());
  EXPECT_EQ((*all)["items"].size(), 23u);
  EXPECT_EQ(names.size(), 23u);
}

TEST_F(KubeClientTest, LabelSelectorFiltersList) {
  json a = configmap("a");
  a["metadata"]["labels"] = {{"tier", "db"}};
  json b = configmap("b");
  b["metadata"]["labels"] = {{"tier", "web"}};
  ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, a));
  ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, b));
  auto l = client_->list(resources::kConfigMaps, ns_, {"tier in (db)", "", 0, "", ""});
  ASSERT_TRUE(l);
  ASSERT_EQ((*l)["items"].size(), 1u);
  EXPECT_EQ((*l)["items"][0]["metadata"]["name"], "a");
  auto bad = client_->list(resources::kConfigMaps, ns_, {"tier in (db", "", 0, "", ""});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 400);
}

TEST_F(KubeClientTest, WatchResumesFromResourceVersionWithoutLossOrRepeat) {
  auto first = client_->create(resources::kConfigMaps, ns_, configmap("w0"));
  ASSERT_TRUE(first);
  const std::string rv = (*first)["metadata"]["resourceVersion"];
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, configmap("w" + std::to_string(i))));
  ASSERT_TRUE(client_->remove(resources::kConfigMaps, ns_, "w1"));
  std::vector<std::pair<WatchEvent::Type, std::string>> seen;
  auto r = client_->watch(resources::kConfigMaps, ns_, {"", "", rv, 5, true}, [&](const WatchEvent& ev) {
    if (ev.type != WatchEvent::Type::kBookmark) seen.push_back({ev.type, ev.object["metadata"]["name"]});
    return seen.size() < 4;
  });
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0], std::make_pair(WatchEvent::Type::kAdded, std::string("w1")));
  EXPECT_EQ(seen[1], std::make_pair(WatchEvent::Type::kAdded, std::string("w2")));
  EXPECT_EQ(seen[2], std::make_pair(WatchEvent::Type::kAdded, std::string("w3")));
  EXPECT_EQ(seen[3], std::make_pair(WatchEvent::Type::kDeleted, std::string("w1")));
}

TEST_F(KubeClientTest, WatchFromCompactedVersionReturnsGone) {
  auto obj = client_->create(resources::kConfigMaps, ns_, configmap("old"));
  ASSERT_TRUE(obj);
  const std::string rv = (*obj)["metadata"]["resourceVersion"];
  ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, configmap("newer")));
  server_->admin("/kube-local/compact");
  auto r = client_->watch(resources::kConfigMaps, ns_, {"", "", rv, 5, true}, [](const WatchEvent&) { return true; });
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().gone()) << r.error().str();
}

TEST_F(KubeClientTest, InformerRelistsAfter410AndMissesNothing) {
  Informer inf(*client_, resources::kConfigMaps, ns_, {});
  std::atomic<int> adds{0}, deletes{0};
  inf.add_handlers({[&](const ObjPtr&) { ++adds; }, nullptr, [&](const ObjPtr&) { ++deletes; }});
  ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, configmap("before")));
  std::jthread runner([&](std::stop_token st) { inf.run(st); });
  ASSERT_TRUE(inf.wait_synced(std::chrono::seconds(20)));
  EXPECT_EQ(adds.load(), 1);
  // Cut the informer off (watches fail), change things, lose the history,
  // then let it back in: its resume must answer 410 and it must re-list.
  const auto relists_before = inf.relists();
  server_->admin("/kube-local/faults", {{"failWatches", true}});
  server_->admin("/kube-local/drop-watches");
  ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, configmap("during")));
  ASSERT_TRUE(client_->remove(resources::kConfigMaps, ns_, "before"));
  server_->admin("/kube-local/compact");
  server_->admin("/kube-local/faults", {{"failWatches", false}});
  ASSERT_TRUE(eventually([&] { return inf.get(ns_, "during") != nullptr && inf.get(ns_, "before") == nullptr; }));
  EXPECT_GT(inf.relists(), relists_before);
  EXPECT_EQ(adds.load(), 2);
  EXPECT_EQ(deletes.load(), 1);
}

TEST_F(KubeClientTest, InformerIndexesByOwnerAndLabel) {
  Informer inf(*client_, resources::kConfigMaps, ns_, {});
  inf.add_index("owner", index_by_owner_uid);
  inf.add_index("app", index_by_label("app"));
  auto parent = client_->create(resources::kConfigMaps, ns_, configmap("p"));
  ASSERT_TRUE(parent);
  const std::string uid = (*parent)["metadata"]["uid"];
  json owned = configmap("owned");
  owned["metadata"]["labels"] = {{"app", "x"}};
  owned["metadata"]["ownerReferences"] = json::array({{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "p"}, {"uid", uid}}});
  ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, owned));
  std::jthread runner([&](std::stop_token st) { inf.run(st); });
  ASSERT_TRUE(inf.wait_synced(std::chrono::seconds(20)));
  ASSERT_TRUE(eventually([&] { return inf.by_index("app", "x").size() == 1; }));
  EXPECT_EQ(inf.by_index("owner", uid).size(), 1u);
  EXPECT_EQ(inf.list(ns_).size(), 2u);
}

TEST_F(KubeClientTest, StaleUpdateIsAConflictAndRereadSucceeds) {
  auto created = client_->create(resources::kConfigMaps, ns_, configmap("c"));
  ASSERT_TRUE(created);
  json first = *created, second = *created;
  first["data"]["k"] = "one";
  ASSERT_TRUE(client_->update(resources::kConfigMaps, ns_, first));
  second["data"]["k"] = "two";
  auto stale = client_->update(resources::kConfigMaps, ns_, second);
  ASSERT_FALSE(stale);
  EXPECT_TRUE(stale.error().conflict());
  EXPECT_EQ(stale.error().reason, "Conflict");
  auto fresh = client_->get(resources::kConfigMaps, ns_, "c");
  ASSERT_TRUE(fresh);
  (*fresh)["data"]["k"] = "two";
  auto ok = client_->update(resources::kConfigMaps, ns_, *fresh);
  ASSERT_TRUE(ok);
  EXPECT_EQ((*ok)["data"]["k"], "two");
}

TEST_F(KubeClientTest, TypedErrorsCarryTheApiStatus) {
  auto missing = client_->get(resources::kConfigMaps, ns_, "nope");
  ASSERT_FALSE(missing);
  EXPECT_TRUE(missing.error().not_found());
  EXPECT_NE(missing.error().message.find("\"nope\" not found"), std::string::npos);
  ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, configmap("dup")));
  auto dup = client_->create(resources::kConfigMaps, ns_, configmap("dup"));
  ASSERT_FALSE(dup);
  EXPECT_TRUE(dup.error().already_exists());
  auto invalid = client_->create(resources::kConfigMaps, ns_, configmap("Not_Valid"));
  ASSERT_FALSE(invalid);
  EXPECT_EQ(invalid.error().status, 422);
  EXPECT_NE(invalid.error().message.find("metadata.name"), std::string::npos);
}

TEST_F(KubeClientTest, PatchesMergeJsonAndStrategic) {
  ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, configmap("p")));
  auto m = client_->patch(resources::kConfigMaps, ns_, "p", PatchType::kMerge, {{"data", {{"a", "1"}}}});
  ASSERT_TRUE(m);
  EXPECT_EQ((*m)["data"], json({{"k", "v"}, {"a", "1"}}));
  auto j = client_->patch(resources::kConfigMaps, ns_, "p", PatchType::kJson,
                          json::array({{{"op", "remove"}, {"path", "/data/k"}}}));
  ASSERT_TRUE(j);
  EXPECT_EQ((*j)["data"], json({{"a", "1"}}));
  auto bad = client_->patch(resources::kConfigMaps, ns_, "p", PatchType::kJson,
                            json::array({{{"op", "remove"}, {"path", "/data/absent"}}}));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().status, 422);
}

TEST_F(KubeClientTest, DeletePreconditionsAndPropagation) {
  auto owner = client_->create(resources::kConfigMaps, ns_, configmap("owner"));
  ASSERT_TRUE(owner);
  json dep = configmap("dependent");
  dep["metadata"]["ownerReferences"] = json::array({{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "owner"},
                                                     {"uid", (*owner)["metadata"]["uid"]}}});
  ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, dep));
  auto wrong = client_->remove(resources::kConfigMaps, ns_, "owner", {"", "not-the-uid", ""});
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().status, 409);
  ASSERT_TRUE(client_->remove(resources::kConfigMaps, ns_, "owner", {"Background", (*owner)["metadata"]["uid"], ""}));
  EXPECT_TRUE(eventually([&] { return client_->get(resources::kConfigMaps, ns_, "dependent").error().not_found(); }));
}

TEST_F(KubeClientTest, OrphanPropagationKeepsDependents) {
  auto owner = client_->create(resources::kConfigMaps, ns_, configmap("owner2"));
  ASSERT_TRUE(owner);
  json dep = configmap("kept");
  dep["metadata"]["ownerReferences"] = json::array({{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"name", "owner2"},
                                                     {"uid", (*owner)["metadata"]["uid"]}}});
  ASSERT_TRUE(client_->create(resources::kConfigMaps, ns_, dep));
  ASSERT_TRUE(client_->remove(resources::kConfigMaps, ns_, "owner2", {"Orphan", "", ""}));
  ASSERT_TRUE(eventually([&] { return client_->get(resources::kConfigMaps, ns_, "owner2").error().not_found(); }));
  auto kept = client_->get(resources::kConfigMaps, ns_, "kept");
  ASSERT_TRUE(kept);
  EXPECT_FALSE((*kept)["metadata"].contains("ownerReferences"));
}

TEST_F(KubeClientTest, RetriesHonourRetryAfterOn429And503) {
  std::atomic<int> attempts{0};
  auto c = server_->client({3, std::chrono::milliseconds(10), std::chrono::milliseconds(50)});
  c->set_observer([&](const std::string&, int code) {
    if (code == 429) ++attempts;
  });
  server_->admin("/kube-local/faults", {{"errorRate", 1.0}, {"errorCode", 429}, {"retryAfterSeconds", 1}});
  const auto start = std::chrono::steady_clock::now();
  auto r = c->get(resources::kConfigMaps, ns_, "x");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  server_->admin("/kube-local/faults", {{"errorRate", 0.0}});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 429);
  EXPECT_EQ(attempts.load(), 3);
  // Two waits of at least the server's Retry-After (1 s), never the 10-50 ms backoff.
  EXPECT_GE(elapsed, std::chrono::milliseconds(1900));
}

TEST_F(KubeClientTest, RetriesRideOutAShareOf5xx) {
  auto c = server_->client({8, std::chrono::milliseconds(5), std::chrono::milliseconds(20)});
  server_->admin("/kube-local/faults", {{"errorRate", 0.3}, {"errorCode", 500}, {"retryAfterSeconds", 0}});
  int ok = 0;
  for (int i = 0; i < 20; ++i) ok += c->create(resources::kConfigMaps, ns_, configmap("r" + std::to_string(i))) ? 1 : 0;
  server_->admin("/kube-local/faults", {{"errorRate", 0.0}});
  EXPECT_EQ(ok, 20);
}

TEST_F(KubeClientTest, RateLimiterBoundsRequestRate) {
  auto t = make_cpprest_transport(server_->config());
  ASSERT_TRUE(t);
  Client limited(std::move(*t), 20, 1);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 11; ++i) ASSERT_TRUE(limited.get(resources::kNamespaces, "", ns_));
  // 11 requests at 20 qps with burst 1 need at least 10 intervals of 50 ms.
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(480));
}

TEST_F(KubeClientTest, WrongCertificateAuthorityFailsClosed) {
  auto cfg = server_->config();
  cfg.ca_pem = kl::generate_tls("someone-else").ca.cert;
  auto t = make_cpprest_transport(cfg);
  ASSERT_TRUE(t);
  Client c(std::move(*t), 0, 1, {1});
  auto r = c.get(resources::kNamespaces, "", "default");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 0);
  EXPECT_EQ(r.error().reason, "TLSError") << r.error().str();
}

TEST_F(KubeClientTest, UnreachableServerIsATransportError) {
  auto cfg = server_->config();
  cfg.server = "https://127.0.0.1:1";
  cfg.request_timeout = std::chrono::seconds(5);
  auto t = make_cpprest_transport(cfg);
  ASSERT_TRUE(t);
  Client c(std::move(*t), 0, 1, {1});
  auto r = c.get(resources::kNamespaces, "", "default");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 0);
  EXPECT_NE(r.error().message.find("127.0.0.1:1"), std::string::npos) << r.error().str();
}

TEST_F(KubeClientTest, RotatedServiceAccountTokenIsReread) {
  ASSERT_TRUE(client_->create(resources::kServiceAccounts, ns_, {{"metadata", {{"name", "op"}}}}));
  auto mint = [&] {
    auto tr = client_->request("POST", resources::kServiceAccounts.path(ns_, "op", "token"), nullptr);
    return tr ? (*tr)["status"]["token"].get<std::string>() : std::string();
  };
  const std::string first = mint();
  ASSERT_FALSE(first.empty());
  const auto token_file = testing_support::write_file(server_->dir() / ("token-" + ns_), first);
  auto cfg = server_->config();
  cfg.token.clear();
  cfg.token_file = token_file;
  auto t = make_cpprest_transport(cfg);
  ASSERT_TRUE(t);
  Client sa(std::move(*t), 0, 1, {1});
  ASSERT_TRUE(sa.get(resources::kNamespaces, "", ns_));
  // Re-create the account: the old token dies; the kubelet would write a new one.
  ASSERT_TRUE(client_->remove(resources::kServiceAccounts, ns_, "op"));
  ASSERT_TRUE(client_->create(resources::kServiceAccounts, ns_, {{"metadata", {{"name", "op"}}}}));
  const std::string second = mint();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // mtime granularity: a distinct file version
  testing_support::write_file(token_file, second);
  auto after = sa.get(resources::kNamespaces, "", ns_);
  EXPECT_TRUE(after) << after.error().str();
}

TEST_F(KubeClientTest, LeaderHandoverOnReleaseAndOnExpiry) {
  bo::RealClock clock;
  auto ca = server_->client();
  LeaderElectionConfig base{ns_, "lock", "", std::chrono::milliseconds(2000), std::chrono::milliseconds(1500),
                            std::chrono::milliseconds(200), true};
  auto cfg_a = base, cfg_b = base;
  cfg_a.identity = "a";
  cfg_b.identity = "b";
  LeaderElector a(server_->client(), cfg_a, clock), b(server_->client(), cfg_b, clock);
  std::atomic<bool> both{false};
  std::jthread ta([&](std::stop_token st) { a.run(st, [] {}, [] {}); });
  ASSERT_TRUE(eventually([&] { return a.is_leader(); }));
  std::jthread tb([&](std::stop_token st) { b.run(st, [] {}, [] {}); });
  std::jthread watcher([&](std::stop_token st) {
    while (!st.stop_requested()) {
      if (a.is_leader() && b.is_leader()) both = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_FALSE(b.is_leader());
  ta.request_stop();  // releases the lease
  ta.join();
  ASSERT_TRUE(eventually([&] { return b.is_leader(); }, std::chrono::seconds(5)));
  auto lease = ca->get(resources::kLeases, ns_, "lock");
  ASSERT_TRUE(lease);
  EXPECT_EQ((*lease)["spec"]["holderIdentity"], "b");
  EXPECT_EQ((*lease)["spec"]["leaseTransitions"], 0);  // released, not taken over
  // A holder that dies without releasing: a newcomer waits out the lease, then takes over.
  tb.request_stop();
  tb.join();
  auto cfg_c = base;
  cfg_c.identity = "c";
  LeaderElector c(server_->client(), cfg_c, clock);
  // b released on stop above (release_on_cancel true); hold the lease for a dead "d" instead.
  auto l = ca->get(resources::kLeases, ns_, "lock");
  ASSERT_TRUE(l);
  (*l)["spec"]["holderIdentity"] = "d";
  (*l)["spec"]["leaseDurationSeconds"] = 2;
  ASSERT_TRUE(ca->update(resources::kLeases, ns_, *l));
  const auto start = std::chrono::steady_clock::now();
  std::jthread tc([&](std::stop_token st) { c.run(st, [] {}, [] {}); });
  ASSERT_TRUE(eventually([&] { return c.is_leader(); }, std::chrono::seconds(10)));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1900));
  auto taken = ca->get(resources::kLeases, ns_, "lock");
  EXPECT_EQ((*taken)["spec"]["leaseTransitions"], 1);
  tc.request_stop();
  watcher.request_stop();
  EXPECT_FALSE(both.load());
}

}  // namespace

namespace {

TEST_F(KubeClientTest, EventRecorderAggregatesRepeatsAndThrottlesAHotLoop) {
  bo::RealClock clock;
  EventRecorderOptions opts;
  opts.burst = 5;
  EventRecorder rec(*client_, clock, opts);
  auto owner = client_->create(resources::kConfigMaps, ns_, configmap("noisy"));
  ASSERT_TRUE(owner);
  for (int i = 0; i < 3; ++i) rec.record(*owner, "Warning", "Flapping", "the same thing again");
  rec.flush();
  auto evs = client_->list(resources::kEvents, ns_, {"", "involvedObject.name=noisy", 0, "", ""});
  ASSERT_TRUE(evs);
  ASSERT_EQ((*evs)["items"].size(), 1u);  // one Event, counted
  EXPECT_EQ((*evs)["items"][0]["count"], 3);
  EXPECT_EQ((*evs)["items"][0]["involvedObject"]["uid"], (*owner)["metadata"]["uid"]);
  for (int i = 0; i < 50; ++i) rec.record(*owner, "Normal", "Loop", "message " + std::to_string(i));
  rec.flush();
  evs = client_->list(resources::kEvents, ns_, {"", "involvedObject.name=noisy", 0, "", ""});
  EXPECT_LE((*evs)["items"].size(), 6u);  // the burst, not fifty
  EXPECT_GE(rec.dropped(), 45u);
}

TEST_F(KubeClientTest, LosingTheLeaseStopsLeadershipWithinTheRenewDeadline) {
  bo::RealClock clock;
  LeaderElector e(server_->client({1}), {ns_, "lost", "me", std::chrono::milliseconds(2000), std::chrono::milliseconds(800),
                       std::chrono::milliseconds(100), true},
                  clock);
  std::atomic<bool> stopped{false};
  // The thread's own stop token: a failed assertion stops the elector instead of hanging the test.
  std::jthread t([&](std::stop_token st) { e.run(st, [] {}, [&] { stopped = true; }); });
  ASSERT_TRUE(eventually([&] { return e.is_leader(); }));
  // Someone else takes the lease (as after a partition): our renewals now conflict.
  // (It renews every 100 ms, so our read-modify-write may meet a 409: read again.)
  ASSERT_TRUE(eventually([&] {
    auto lease = client_->get(resources::kLeases, ns_, "lost");
    if (!lease) return false;
    (*lease)["spec"]["holderIdentity"] = "usurper";
    (*lease)["spec"]["renewTime"] = bo::format_rfc3339_micro(std::chrono::system_clock::now());
    return client_->update(resources::kLeases, ns_, *lease).has_value();
  }));
  ASSERT_TRUE(eventually([&] { return stopped.load(); }, std::chrono::seconds(5)));
  EXPECT_FALSE(e.is_leader());
  t.join();
}

}  // namespace

namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ClientCertificates, AuthenticateAsTheirSubjectAndForeignOnesAreRefused) {
  const auto data = testing_support::make_temp_dir("kl-certs");
  KubeLocal server({}, data);
  const kl::Pem ca{slurp(data / "ca.crt"), slurp(data / "ca.key")};
  const kl::Pem alice = kl::issue_certificate(ca, "alice", "", 30, {"team-a"});
  auto cfg = server.config();
  cfg.token.clear();
  cfg.client_cert_pem = alice.cert;
  cfg.client_key_pem = alice.key;
  auto t = make_cpprest_transport(cfg);
  ASSERT_TRUE(t);
  Client c(std::move(*t), 0, 1, {1});
  const json review{{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "SelfSubjectReview"}};
  auto who = c.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", &review);
  ASSERT_TRUE(who) << who.error().str();
  EXPECT_EQ((*who)["status"]["userInfo"]["username"], "alice");
  EXPECT_EQ((*who)["status"]["userInfo"]["groups"][0], "team-a");
  // A certificate from another CA fails the handshake: never anonymous access.
  const auto other = kl::generate_tls("elsewhere");
  const kl::Pem mallory = kl::issue_certificate(other.ca, "mallory", "", 30, {"system:masters"});
  cfg.client_cert_pem = mallory.cert;
  cfg.client_key_pem = mallory.key;
  auto t2 = make_cpprest_transport(cfg);
  Client m(std::move(*t2), 0, 1, {1});
  auto denied = m.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", &review);
  ASSERT_FALSE(denied);
  EXPECT_NE(denied.error().status, 201);
  std::filesystem::remove_all(data);
}

}  // namespace
