// Watch-list streaming (KEP-3157) as kube-apiserver serves it, at the HTTP
// level and through the real kubectl the set-up installs (1.35, whose
// WatchListClient feature opens every wait and informer this way). Sources:
// staging/src/k8s.io/apiserver/pkg/storage/cacher (initial events, then the
// BOOKMARK annotated k8s.io/initial-events-end), endpoints/handlers/watch.go
// (the list blueprint), apimachinery/.../internalversion/validation (the 422s).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/encoding.h"
#include "harness.h"

using nlohmann::json;
using testing_support::eventually;
using testing_support::KubeLocal;
using testing_support::write_file;

namespace {

class WatchList : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new KubeLocal(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ns_ = std::string("wl-") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (auto& c : ns_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ns_ = ns_.substr(0, 60);
    ASSERT_EQ(server_->kubectl("create namespace " + ns_).exit_code, 0);
  }
  void configmap(const std::string& name, const std::string& labels = "{}") {
    auto r = server_->kubectl("apply -n " + ns_ + " -f " +
                              write_file(server_->dir() / (ns_ + name + ".yaml"),
                                         "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name +
                                             ", labels: " + labels + "}\ndata: {a: '1'}\n"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  // A watch that the server ends after `timeout_s`; every event it sent.
  std::vector<json> watch(const std::string& query, int timeout_s = 1) {
    std::vector<json> events;
    auto t = server_->transport();
    bo::kube::HttpRequest req{"GET",
                              "/api/v1/namespaces/" + ns_ + "/configmaps?" + query + "&timeoutSeconds=" +
                                  std::to_string(timeout_s),
                              "", "", std::chrono::seconds(timeout_s + 10), ""};
    auto r = t->stream(req, [&](std::string_view line) {
      if (!line.empty()) events.push_back(json::parse(line));
      return true;
    }, nullptr);
    EXPECT_TRUE(r) << r.error().str();
    if (r) {
      EXPECT_EQ(r->status, 200) << r->body;
    }
    return events;
  }
  // A watch whose events go to `on_event` until it returns false (or 20 s pass: the test then fails).
  void watch_until(const std::string& query, const std::function<bool(const json&)>& on_event) {
    bool stopped = false;
    auto t = server_->transport();
    bo::kube::HttpRequest req{"GET", "/api/v1/namespaces/" + ns_ + "/configmaps?" + query + "&timeoutSeconds=20", "",
                              "", std::chrono::seconds(30), ""};
    auto r = t->stream(req, [&](std::string_view line) {
      if (line.empty()) return true;
      stopped = !on_event(json::parse(line));
      return !stopped;
    }, nullptr);
    ASSERT_TRUE(r) << r.error().str();
    EXPECT_TRUE(stopped) << "the watch ended before the expected event";
  }
  bo::kube::HttpResponse get(const std::string& query) {
    auto r = server_->transport()->send({"GET", "/api/v1/namespaces/" + ns_ + "/configmaps?" + query, "", "", {}, ""});
    EXPECT_TRUE(r);
    return r ? *r : bo::kube::HttpResponse{};
  }
  static KubeLocal* server_;
  std::string ns_;
};
KubeLocal* WatchList::server_ = nullptr;

constexpr const char* kWatchList = "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";

TEST_F(WatchList, StreamsTheStateThenABookmarkAnnotatedInitialEventsEnd) {
  configmap("one", "{app: x}");
  configmap("two", "{app: x}");
  const std::string rv = json::parse(get("").body)["metadata"]["resourceVersion"];
  const auto events = watch(kWatchList);
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0]["type"], "ADDED");
  EXPECT_EQ(events[0]["object"]["metadata"]["name"], "one");
  EXPECT_EQ(events[1]["type"], "ADDED");
  EXPECT_EQ(events[1]["object"]["metadata"]["name"], "two");
  const json& bm = events[2];
  ASSERT_EQ(bm["type"], "BOOKMARK") << bm.dump();
  EXPECT_EQ(bm["object"]["kind"], "ConfigMap");
  EXPECT_EQ(bm["object"]["apiVersion"], "v1");
  const json& meta = bm["object"]["metadata"];
  EXPECT_EQ(meta["annotations"]["k8s.io/initial-events-end"], "true");
  EXPECT_GE(std::stoull(meta["resourceVersion"].get<std::string>()), std::stoull(rv));
  // The empty list's blueprint, base64 of the list as the negotiated encoder writes it.
  auto blueprint = bo::base64_decode(meta["annotations"]["k8s.io/initial-events-list-blueprint"].get<std::string>());
  ASSERT_TRUE(blueprint);
  const json list = json::parse(*blueprint);
  EXPECT_EQ(list["kind"], "ConfigMapList");
  EXPECT_EQ(list["apiVersion"], "v1");
  // Nothing but the two objects and the bookmark came before the timeout (no live changes).
  for (size_t i = 3; i < events.size(); ++i) EXPECT_EQ(events[i]["type"], "BOOKMARK") << events[i].dump();
}

TEST_F(WatchList, SelectorsApplyToTheInitialEvents) {
  configmap("keep", "{app: x}");
  configmap("skip", "{app: z}");
  auto names = [](const std::vector<json>& evs) {
    std::vector<std::string> out;
    for (const auto& e : evs)
      if (e["type"] == "ADDED") out.push_back(e["object"]["metadata"]["name"]);
    return out;
  };
  EXPECT_EQ(names(watch(std::string(kWatchList) + "&labelSelector=app%3Dx")), std::vector<std::string>{"keep"});
  EXPECT_EQ(names(watch(std::string(kWatchList) + "&fieldSelector=metadata.name%3Dskip")),
            std::vector<std::string>{"skip"});
}

TEST_F(WatchList, WithoutBookmarksTheInitialEventsHaveNoEndMarker) {
  configmap("one");
  const auto events = watch("watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["type"], "ADDED");
}

TEST_F(WatchList, ALegacyWatchFromNothingGetsTheEndMarkerWhenItAllowsBookmarks) {
  // SetListOptionsDefaults: watch with resourceVersion "" or "0" becomes a watch-list request.
  configmap("one");
  for (const std::string rv : {"", "&resourceVersion=0"}) {
    const auto events = watch("watch=true&allowWatchBookmarks=true" + rv);
    ASSERT_GE(events.size(), 2u) << rv;
    EXPECT_EQ(events[0]["type"], "ADDED");
    EXPECT_EQ(events[1]["type"], "BOOKMARK");
    EXPECT_EQ(events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"], "true");
  }
}

TEST_F(WatchList, SendInitialEventsFalseStartsFromNow) {
  configmap("before");
  std::vector<std::string> added;
  bool created = false;
  // A change made once the watch is open (its first periodic bookmark proves it) arrives; the old state does not.
  watch_until("watch=true&sendInitialEvents=false&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
              [&](const json& e) {
                if (e["type"] == "ADDED") added.push_back(e["object"]["metadata"]["name"]);
                if (e["type"] == "BOOKMARK" && !created) {
                  created = true;
                  configmap("after");
                }
                return added.empty();
              });
  EXPECT_EQ(added, std::vector<std::string>{"after"});
}

TEST_F(WatchList, LiveEventsFollowTheBookmark) {
  configmap("first");
  std::vector<json> events;
  watch_until(kWatchList, [&](const json& e) {
    events.push_back(e);
    if (e["type"] == "BOOKMARK" && e["object"]["metadata"].contains("annotations")) configmap("second");
    return !(e["type"] == "ADDED" && e["object"]["metadata"]["name"] == "second");
  });
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0]["object"]["metadata"]["name"], "first");
  EXPECT_EQ(events[1]["type"], "BOOKMARK");
  EXPECT_EQ(events[2]["type"], "ADDED");
  EXPECT_EQ(events[2]["object"]["metadata"]["name"], "second");
  EXPECT_GT(std::stoull(events[2]["object"]["metadata"]["resourceVersion"].get<std::string>()),
            std::stoull(events[1]["object"]["metadata"]["resourceVersion"].get<std::string>()));
}

struct BadOptions {
  std::string query;
  int code;
  std::string message;
};

TEST_F(WatchList, RefusesTheCombinationsTheApiRefusesWithItsStatus) {
  const std::vector<BadOptions> cases = {
      {"watch=true&sendInitialEvents=true", 422,
       "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires "
       "setting resourceVersionMatch to NotOlderThan"},
      {"watch=true&resourceVersionMatch=NotOlderThan", 422,
       "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden "
       "for watch unless sendInitialEvents is provided"},
      {"watch=true&sendInitialEvents=true&resourceVersionMatch=Exact", 422,
       "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: sendInitialEvents requires "
       "setting resourceVersionMatch to NotOlderThan, resourceVersionMatch: Unsupported value: \"Exact\": supported "
       "values: \"NotOlderThan\"]"},
      {"sendInitialEvents=true", 422,
       "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list"},
      {"resourceVersionMatch=NotOlderThan", 422,
       "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden "
       "unless resourceVersion is provided"},
      {"watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=999999999", 504,
       "Too large resource version: 999999999, current: "},
  };
  for (const auto& c : cases) {
    const auto r = get(c.query);
    EXPECT_EQ(r.status, c.code) << c.query << ": " << r.body;
    const json st = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(st.is_object()) << r.body;
    EXPECT_EQ(st["kind"], "Status");
    EXPECT_EQ(st["status"], "Failure");
    EXPECT_EQ(st["message"].get<std::string>().substr(0, c.message.size()), c.message) << c.query;
    if (c.code == 422) {
      EXPECT_EQ(st["reason"], "Invalid");
      EXPECT_EQ(st["details"]["group"], "meta.k8s.io");
      EXPECT_EQ(st["details"]["kind"], "ListOptions");
      // StatusDetails.name is omitempty (apimachinery/pkg/apis/meta/v1/types.go): no name, no key.
      EXPECT_FALSE(st["details"].contains("name")) << r.body;
      ASSERT_FALSE(st["details"]["causes"].empty());
      EXPECT_EQ(st["details"]["causes"][0]["field"], c.query.starts_with("sendInitialEvents") ? "sendInitialEvents"
                                                                                           : "resourceVersionMatch");
    } else {
      EXPECT_EQ(st["reason"], "Timeout");
    }
  }
}

TEST_F(WatchList, AnySpellingOfTrueMeansWatch) {
  // runtime.Convert_Slice_string_To_bool: only "0" and "false" (any case) are false.
  configmap("one");
  for (const std::string v : {"True", "TRUE", "1", "yes"}) {
    const auto events = watch("watch=" + v);
    ASSERT_FALSE(events.empty()) << v;
    EXPECT_EQ(events[0]["type"], "ADDED") << v;
  }
  for (const std::string v : {"False", "0"}) {
    const auto r = get("watch=" + v);
    EXPECT_EQ(json::parse(r.body)["kind"], "ConfigMapList") << v;
  }
}

}  // namespace
