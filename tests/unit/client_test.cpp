// The REST client, informer and controller runner over a scripted fake
// transport: error mapping, retries, paging restarts, watch decoding.
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>

#include "kube/client.h"
#include "kube/controller.h"
#include "kube/informer.h"

using namespace bo::kube;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

// Answers requests from a script; records what was asked.
class FakeTransport : public Transport {
 public:
  struct Answer {
    int status = 200;
    std::string body = "{}";
    std::map<std::string, std::string> headers;
    std::vector<std::string> lines;  // for stream()
    bool no_answer = false;
  };
  std::function<Answer(const HttpRequest&)> script;
  std::vector<HttpRequest> seen;
  std::mutex mu;

  Result<HttpResponse> send(const HttpRequest& req) override { return answer(req, nullptr); }
  Result<HttpResponse> stream(const HttpRequest& req, const std::function<bool(std::string_view)>& on_line,
                              Canceller*) override {
    return answer(req, &on_line);
  }

 private:
  Result<HttpResponse> answer(const HttpRequest& req, const std::function<bool(std::string_view)>* on_line) {
    Answer a;
    {
      std::lock_guard lock(mu);
      seen.push_back(req);
      a = script(req);
    }
    if (a.no_answer) return fail(0, "TransportError", "connection refused");
    if (on_line && a.status == 200) {
      for (const auto& l : a.lines)
        if (!(*on_line)(l)) break;
      return HttpResponse{200, {}, ""};
    }
    return HttpResponse{a.status, a.headers, a.body};
  }
};

std::string status_body(int code, const std::string& reason, const std::string& msg) {
  return json{{"kind", "Status"}, {"apiVersion", "v1"}, {"status", "Failure"}, {"reason", reason}, {"message", msg}, {"code", code}}
      .dump();
}

struct ErrorCase {
  int code;
  const char* reason;
  bool retryable;
};

class ClientErrors : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(ClientErrors, MapStatusAndRetryOnlyWhatIsRetryable) {
  auto t = std::make_unique<FakeTransport>();
  auto* fake = t.get();
  const auto c = GetParam();
  fake->script = [&](const HttpRequest&) { return FakeTransport::Answer{c.code, status_body(c.code, c.reason, "why"), {}, {}, false}; };
  Client client(std::move(t), 0, 1, {3, 1ms, 2ms});
  auto r = client.get(resources::kSecrets, "ns", "x");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, c.code);
  EXPECT_EQ(r.error().reason, c.reason);
  EXPECT_EQ(r.error().message, "why");
  EXPECT_EQ(fake->seen.size(), c.retryable ? 3u : 1u);
}

INSTANTIATE_TEST_SUITE_P(Table, ClientErrors,
                         ::testing::Values(ErrorCase{400, "BadRequest", false}, ErrorCase{403, "Forbidden", false},
                                           ErrorCase{404, "NotFound", false}, ErrorCase{409, "Conflict", false},
                                           ErrorCase{410, "Expired", false}, ErrorCase{422, "Invalid", false},
                                           ErrorCase{429, "TooManyRequests", true},
                                           ErrorCase{500, "InternalError", true},
                                           ErrorCase{503, "ServiceUnavailable", true}));

TEST(Client, RetryAfterIsHonouredAndSuccessEndsRetries) {
  auto t = std::make_unique<FakeTransport>();
  auto* fake = t.get();
  int calls = 0;
  fake->script = [&](const HttpRequest&) {
    if (++calls == 1) return FakeTransport::Answer{429, status_body(429, "TooManyRequests", "slow down"), {{"retry-after", "1"}}, {}, false};
    return FakeTransport::Answer{200, R"({"metadata":{"name":"x"}})", {}, {}, false};
  };
  Client client(std::move(t), 0, 1, {5, 1ms, 2ms});
  const auto start = std::chrono::steady_clock::now();
  auto r = client.get(resources::kSecrets, "ns", "x");
  ASSERT_TRUE(r);
  EXPECT_EQ(calls, 2);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 950ms);  // waited for Retry-After, not the 1 ms backoff
}

TEST(Client, TransportErrorsAreRetriedButTlsErrorsAreNot) {
  auto t = std::make_unique<FakeTransport>();
  auto* fake = t.get();
  fake->script = [](const HttpRequest&) { return FakeTransport::Answer{0, "", {}, {}, true}; };
  Client client(std::move(t), 0, 1, {4, 1ms, 2ms});
  EXPECT_FALSE(client.get(resources::kSecrets, "ns", "x"));
  EXPECT_EQ(fake->seen.size(), 4u);
  Error tls{0, "TLSError", "bad certificate", {}};
  EXPECT_FALSE(tls.retryable());
}

TEST(Client, ListAllFollowsContinueAndRestartsOnExpiredToken) {
  auto t = std::make_unique<FakeTransport>();
  auto* fake = t.get();
  int pages = 0;
  fake->script = [&](const HttpRequest& req) {
    ++pages;
    const bool continued = req.path.find("continue=") != std::string::npos;
    if (pages == 2) return FakeTransport::Answer{410, status_body(410, "Expired", "continue too old"), {}, {}, false};
    json body{{"kind", "SecretList"}, {"metadata", {{"resourceVersion", "7"}}}, {"items", json::array({{{"metadata", {{"name", continued ? "b" : "a"}}}}})}};
    if (!continued) body["metadata"]["continue"] = "tok";
    return FakeTransport::Answer{200, body.dump(), {}, {}, false};
  };
  Client client(std::move(t), 0, 1, {1, 1ms, 1ms});
  auto r = client.list_all(resources::kSecrets, "ns", {"a=b", "", 1, "", ""});
  ASSERT_TRUE(r) << r.error().str();
  ASSERT_EQ((*r)["items"].size(), 2u);
  EXPECT_EQ((*r)["items"][0]["metadata"]["name"], "a");
  EXPECT_EQ((*r)["items"][1]["metadata"]["name"], "b");
  EXPECT_EQ(pages, 4);  // a, expired continue, then a fresh a, b
  EXPECT_NE(fake->seen[0].path.find("labelSelector=a%3Db"), std::string::npos) << fake->seen[0].path;
}

TEST(Client, ListEachHandsOverEachItemWhateverTheKeyOrder) {
  // A page is decoded item by item (so 500 Jobs never sit decoded at once):
  // what reaches on_item must still be each whole item, nested lists and
  // keys named "items" included, and the metadata may come after the items.
  auto t = std::make_unique<FakeTransport>();
  t->script = [](const HttpRequest&) {
    return FakeTransport::Answer{
        200,
        R"({"items":[{"metadata":{"name":"a"},"spec":{"items":[{"k":1}],"x":[1,2]}},"odd",{"metadata":{"name":"b"}}],)"
        R"("kind":"JobList","metadata":{"items":"not these","resourceVersion":"42"}})",
        {}, {}, false};
  };
  Client client(std::move(t), 0, 1);
  std::vector<json> got;
  auto rv = client.list_each(resources::kJobs, "ns", {}, [&](json& it) { got.push_back(std::move(it)); }, {});
  ASSERT_TRUE(rv) << rv.error().str();
  EXPECT_EQ(*rv, "42");
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0], json::parse(R"({"metadata":{"name":"a"},"spec":{"items":[{"k":1}],"x":[1,2]}})"));
  EXPECT_EQ(got[1], "odd");
  EXPECT_EQ(got[2]["metadata"]["name"], "b");
}

TEST(Client, ListEachRefusesATruncatedPage) {
  auto t = std::make_unique<FakeTransport>();
  t->script = [](const HttpRequest&) {
    return FakeTransport::Answer{200, R"({"metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"a"}},{"meta)",
                                 {}, {}, false};
  };
  Client client(std::move(t), 0, 1);
  auto rv = client.list_each(resources::kJobs, "ns", {}, [](json&) {}, {});
  ASSERT_FALSE(rv);
  EXPECT_EQ(rv.error().reason, "InvalidResponse");
}

TEST(Client, WatchDecodesEventsAndTurnsAnErrorEventInto410) {
  auto t = std::make_unique<FakeTransport>();
  auto* fake = t.get();
  fake->script = [](const HttpRequest&) {
    FakeTransport::Answer a;
    a.lines = {R"({"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}})",
               R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"6"}}})",
               R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version"}})"};
    return a;
  };
  Client client(std::move(t), 0, 1);
  std::vector<WatchEvent::Type> types;
  auto r = client.watch(resources::kSecrets, "ns", {"", "", "4", 30, true}, [&](const WatchEvent& e) {
    types.push_back(e.type);
    return true;
  });
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().gone());
  EXPECT_EQ(types, (std::vector<WatchEvent::Type>{WatchEvent::Type::kAdded, WatchEvent::Type::kBookmark}));
  EXPECT_NE(fake->seen[0].path.find("allowWatchBookmarks=true"), std::string::npos);
  EXPECT_NE(fake->seen[0].path.find("resourceVersion=4"), std::string::npos);
}

TEST(Client, UndecodableWatchLineIsAnErrorNotASilentDrop) {
  auto t = std::make_unique<FakeTransport>();
  t->script = [](const HttpRequest&) {
    FakeTransport::Answer a;
    a.lines = {"{not json"};
    return a;
  };
  Client client(std::move(t), 0, 1);
  auto r = client.watch(resources::kSecrets, "ns", {}, [](const WatchEvent&) { return true; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().reason, "InvalidResponse");
}

TEST(Informer, ResyncRedeliversUnchangedObjects) {
  auto t = std::make_unique<FakeTransport>();
  t->script = [](const HttpRequest& req) {
    if (req.path.find("watch=true") != std::string::npos) {
      std::this_thread::sleep_for(20ms);  // an idle watch that the server closes
      return FakeTransport::Answer{};
    }
    return FakeTransport::Answer{200, R"({"metadata":{"resourceVersion":"3"},"items":[{"metadata":{"name":"a","namespace":"n","resourceVersion":"3"}}]})", {}, {}, false};
  };
  Client client(std::move(t), 0, 1);
  InformerOptions opts;
  opts.resync = std::chrono::seconds(1);
  Informer inf(client, resources::kSecrets, "", opts);
  std::atomic<int> adds{0}, updates{0};
  inf.add_handlers({[&](const ObjPtr&) { ++adds; }, [&](const ObjPtr&, const ObjPtr&) { ++updates; }, nullptr});
  std::jthread run([&](std::stop_token st) { inf.run(st); });
  ASSERT_TRUE(inf.wait_synced(5s));
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (updates.load() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(adds.load(), 1);
  EXPECT_GE(updates.load(), 1);
}

// keys_by_index answers who is under an index value from the index alone:
// the same keys as by_index, for compact (MessagePack) caches too, where
// by_index decodes every object it returns.
TEST(Informer, KeysByIndexNameWhatByIndexReturnsWithoutDecoding) {
  for (const bool compact : {false, true}) {
    auto t = std::make_unique<FakeTransport>();
    t->script = [](const HttpRequest& req) {
      if (req.path.find("watch=true") != std::string::npos) {
        std::this_thread::sleep_for(20ms);
        return FakeTransport::Answer{};
      }
      return FakeTransport::Answer{200, R"({"metadata":{"resourceVersion":"3"},"items":[
        {"metadata":{"name":"a","namespace":"n","resourceVersion":"1","labels":{"s":"shared"}}},
        {"metadata":{"name":"b","namespace":"n","resourceVersion":"2","labels":{"s":"shared"}}},
        {"metadata":{"name":"c","namespace":"m","resourceVersion":"3","labels":{"s":"own"}}}]})", {}, {}, false};
    };
    Client client(std::move(t), 0, 1);
    InformerOptions opts;
    opts.compact = compact;
    Informer inf(client, resources::kSecrets, "", opts);
    inf.add_index("s", index_by_label("s"));
    std::jthread run([&](std::stop_token st) { inf.run(st); });
    ASSERT_TRUE(inf.wait_synced(5s));
    EXPECT_EQ(inf.keys_by_index("s", "shared"), (std::vector<std::string>{"n/a", "n/b"})) << "compact " << compact;
    EXPECT_EQ(inf.keys_by_index("s", "own"), (std::vector<std::string>{"m/c"}));
    EXPECT_TRUE(inf.keys_by_index("s", "none").empty());
    EXPECT_TRUE(inf.keys_by_index("no-such-index", "shared").empty());
    std::vector<std::string> from_objects;
    for (const auto& o : inf.by_index("s", "shared")) from_objects.push_back(Informer::key_of(*o));
    EXPECT_EQ(from_objects, inf.keys_by_index("s", "shared"));
  }
}

// The cache keeps no index values and no namespace index: a namespace is a
// run of sorted "namespace/name" keys (its neighbours "a-b", "a0" and "ab"
// sort on either side of "a/"), and an object's index values are recomputed
// from the old object when a watch event replaces or deletes it.
TEST(Informer, ListsANamespaceAndReindexesFromTheOldObject) {
  for (const bool compact : {false, true}) {
    auto t = std::make_unique<FakeTransport>();
    auto watches = std::make_shared<std::atomic<int>>(0);
    t->script = [watches](const HttpRequest& req) {
      if (req.path.find("watch=true") != std::string::npos) {
        if ((*watches)++ == 0) {
          FakeTransport::Answer a;
          a.lines = {
              R"({"type":"MODIFIED","object":{"metadata":{"name":"x","namespace":"a","resourceVersion":"6","labels":{"s":"moved"}}}})",
              R"({"type":"DELETED","object":{"metadata":{"name":"y","namespace":"a","resourceVersion":"7","labels":{"s":"shared"}}}})",
              R"({"type":"ADDED","object":{"metadata":{"name":"u","namespace":"a","resourceVersion":"8","labels":{"s":"shared"}}}})"};
          return a;
        }
        std::this_thread::sleep_for(20ms);
        return FakeTransport::Answer{};
      }
      return FakeTransport::Answer{200, R"({"metadata":{"resourceVersion":"5"},"items":[
        {"metadata":{"name":"x","namespace":"a","resourceVersion":"1","labels":{"s":"shared"}}},
        {"metadata":{"name":"y","namespace":"a","resourceVersion":"2","labels":{"s":"shared"}}},
        {"metadata":{"name":"z","namespace":"a-b","resourceVersion":"3","labels":{"s":"shared"}}},
        {"metadata":{"name":"w","namespace":"ab","resourceVersion":"4"}},
        {"metadata":{"name":"v","namespace":"a0","resourceVersion":"5"}}]})", {}, {}, false};
    };
    Client client(std::move(t), 0, 1);
    InformerOptions opts;
    opts.compact = compact;
    Informer inf(client, resources::kSecrets, "", opts);
    inf.add_index("s", index_by_label("s"));
    std::jthread run([&](std::stop_token st) { inf.run(st); });
    ASSERT_TRUE(inf.wait_synced(5s));
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (inf.get("a", "u") == nullptr && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    ASSERT_NE(inf.get("a", "u"), nullptr) << "compact " << compact;
    auto names = [&](const std::string& ns) {
      std::vector<std::string> out;
      for (const auto& o : inf.list(ns)) out.push_back((*o)["metadata"]["name"]);
      return out;
    };
    EXPECT_EQ(names("a"), (std::vector<std::string>{"u", "x"})) << "compact " << compact;
    EXPECT_EQ(names("a-b"), (std::vector<std::string>{"z"}));
    EXPECT_EQ(names("ab"), (std::vector<std::string>{"w"}));
    EXPECT_EQ(names("a0"), (std::vector<std::string>{"v"}));
    EXPECT_TRUE(names("b").empty());
    EXPECT_EQ(names("").size(), 5u);
    EXPECT_EQ(inf.keys_by_index("s", "moved"), (std::vector<std::string>{"a/x"})) << "compact " << compact;
    EXPECT_EQ(inf.keys_by_index("s", "shared"), (std::vector<std::string>{"a-b/z", "a/u"})) << "compact " << compact;
  }
}

TEST(ControllerRunner, ErrorsAndExceptionsRequeueSuccessForgets) {
  std::atomic<int> calls{0};
  std::atomic<bool> done{false};
  Controller c("t", [&](const std::string&) -> ReconcileResult {
    const int n = ++calls;
    if (n == 1) return ReconcileResult::failed("first try fails");
    if (n == 2) throw std::runtime_error("second try throws");
    done = true;
    return ReconcileResult::done();
  }, 1, nullptr);
  c.start();
  c.queue().add("ns/a");
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!done && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
  c.stop();
  EXPECT_TRUE(done.load());
  EXPECT_EQ(calls.load(), 3);
  EXPECT_EQ(c.queue().retries("ns/a"), 0);  // forgotten after success
}

}  // namespace
