// The background worker that ArchiveProber and DataVolumeResolver share:
// order, de-duplication, timers, pacing and a prompt stop. Every wait has a
// deadline; nothing sleeps to synchronise.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/background_worker.h"

using bo::BackgroundWorker;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

namespace {

// What the worker handed over, when, and a gate that holds the key "block"
// in work() until opened (to keep keys queued behind it).
struct Recorder {
  void work(const std::string& key) {
    std::unique_lock lock(mu);
    started.push_back(key);
    cv.notify_all();
    if (key == "block") cv.wait(lock, [&] { return open; });
    keys.push_back(key);
    times.push_back(Steady::now());
    cv.notify_all();
  }
  void due(const std::string& key) {
    std::lock_guard lock(mu);
    dues.push_back(key);
    cv.notify_all();
  }
  void release() {
    std::lock_guard lock(mu);
    open = true;
    cv.notify_all();
  }
  bool wait_keys(size_t n, std::chrono::milliseconds deadline = 10s) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, deadline, [&] { return keys.size() >= n; });
  }
  bool wait_started(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 10s, [&] { return started.size() >= n; });
  }
  bool wait_dues(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 10s, [&] { return dues.size() >= n; });
  }
  std::vector<std::string> worked() {
    std::lock_guard lock(mu);
    return keys;
  }
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  std::vector<std::string> started, keys, dues;
  std::vector<Steady::time_point> times;
};

TEST(BackgroundWorker, WorksThroughKeysInTheOrderQueued) {
  Recorder r;
  BackgroundWorker w([&](const std::string& k) { r.work(k); }, [&](const std::string& k) { r.due(k); });
  for (const char* k : {"c", "a", "b"}) EXPECT_TRUE(w.enqueue(k));
  ASSERT_TRUE(r.wait_keys(3));
  EXPECT_EQ(r.worked(), (std::vector<std::string>{"c", "a", "b"}));
}

TEST(BackgroundWorker, HoldsAQueuedKeyOnceAndCancelTakesItOut) {
  Recorder r;
  BackgroundWorker w([&](const std::string& k) { r.work(k); }, [&](const std::string& k) { r.due(k); });
  ASSERT_TRUE(w.enqueue("block"));
  ASSERT_TRUE(r.wait_started(1));
  // "block" is being worked on, no longer queued: it may be queued again, once.
  EXPECT_TRUE(w.enqueue("block"));
  EXPECT_TRUE(w.enqueue("a"));
  EXPECT_FALSE(w.enqueue("a"));
  EXPECT_FALSE(w.enqueue("block"));
  EXPECT_TRUE(w.enqueue("b"));
  EXPECT_TRUE(w.enqueue("c"));
  w.cancel("b");
  w.cancel("never-queued");  // harmless
  r.release();
  ASSERT_TRUE(r.wait_keys(4));
  EXPECT_EQ(r.worked(), (std::vector<std::string>{"block", "block", "a", "c"}));
  EXPECT_TRUE(w.enqueue("b")) << "cancelled: queued again like any other key";
  ASSERT_TRUE(r.wait_keys(5));
  EXPECT_EQ(r.worked().back(), "b");
}

TEST(BackgroundWorker, TimersCallDueAndACallbackMayQueueItsKeyAgain) {
  Recorder r;
  BackgroundWorker* self = nullptr;
  BackgroundWorker w([&](const std::string& k) { r.work(k); },
                     [&](const std::string& k) {
                       r.due(k);
                       EXPECT_TRUE(self->enqueue(k));  // as DataVolumeResolver re-checks a due key
                     });
  self = &w;
  w.schedule_at("later", Steady::now() + 50ms);
  w.schedule_at("past", Steady::now() - 1s);
  w.schedule_at("never", Steady::now() + 1h);
  ASSERT_TRUE(r.wait_dues(2));
  ASSERT_TRUE(r.wait_keys(2));
  {
    std::lock_guard lock(r.mu);
    EXPECT_EQ(r.dues, (std::vector<std::string>{"past", "later"}));
    EXPECT_EQ(r.keys, (std::vector<std::string>{"past", "later"}));
  }
}

TEST(BackgroundWorker, PacesKeysAfterTheBurst) {
  Recorder r;
  // 10 a second, a burst of 10: the bucket holds 10 keys at the most, then
  // one more each tenth of a second, so the k-th key (from 0) starts no
  // sooner than (k - 9) tenths after the first. A slow machine only starts
  // them later; the 1 ms allows for rounding.
  BackgroundWorker w([&](const std::string& k) { r.work(k); }, [&](const std::string& k) { r.due(k); }, 10);
  const auto begin = Steady::now();
  for (int i = 0; i < 14; ++i) ASSERT_TRUE(w.enqueue("k" + std::to_string(i)));
  ASSERT_TRUE(r.wait_keys(14));
  std::lock_guard lock(r.mu);
  for (size_t k = 10; k < r.times.size(); ++k)
    EXPECT_GE(r.times[k] - begin, static_cast<int>(k - 9) * 100ms - 1ms) << "key " << k << " started too soon";
}

// A key's first look is what a policy waits on (its data volume before its
// first backup): it goes ahead of the paced queue and takes no token, so ten
// thousand new policies are not checked five a second. Repeats keep the pace.
TEST(BackgroundWorker, FirstLooksSkipThePaceAndGoAheadOfRepeats) {
  Recorder r;
  // One key per thousand seconds: after the burst's one token, a paced key waits.
  BackgroundWorker w([&](const std::string& k) { r.work(k); }, [&](const std::string& k) { r.due(k); }, 0.001);
  ASSERT_TRUE(w.enqueue("block"));  // the only token; holds the worker until released
  ASSERT_TRUE(r.wait_started(1));
  ASSERT_TRUE(w.enqueue("repeat"));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(w.enqueue("first" + std::to_string(i), BackgroundWorker::Lane::kFirst));
  // A paced key asked for again as a first look moves ahead.
  ASSERT_TRUE(w.enqueue("late"));
  EXPECT_FALSE(w.enqueue("late", BackgroundWorker::Lane::kFirst)) << "queued already: moved, not added";
  r.release();
  ASSERT_TRUE(r.wait_keys(7));
  EXPECT_EQ(r.worked(), (std::vector<std::string>{"block", "first0", "first1", "first2", "first3", "first4", "late"}));
  // "repeat" waits for a token (a thousand seconds away); a stop does not wait for it.
  w.stop();
  EXPECT_EQ(r.worked().size(), 7u);
}

TEST(BackgroundWorker, StopsPromptlyWhileIdle) {
  Recorder r;
  BackgroundWorker w([&](const std::string& k) { r.work(k); }, [&](const std::string& k) { r.due(k); });
  w.schedule_at("a", Steady::now() + 1h);  // the thread waits for this timer
  const auto begin = Steady::now();
  w.stop();
  EXPECT_LT(Steady::now() - begin, 2s);
  EXPECT_TRUE(w.stopping());
  EXPECT_FALSE(w.enqueue("b")) << "stopped: nothing is queued";
  w.stop();  // idempotent
  std::lock_guard lock(r.mu);
  EXPECT_TRUE(r.keys.empty());
  EXPECT_TRUE(r.dues.empty());
}

TEST(BackgroundWorker, StopsPromptlyWhilePaced) {
  Recorder r;
  // One key every 10 s: the second waits for its turn when stop() is called.
  BackgroundWorker w([&](const std::string& k) { r.work(k); }, [&](const std::string& k) { r.due(k); }, 0.1);
  ASSERT_TRUE(w.enqueue("first"));
  ASSERT_TRUE(w.enqueue("second"));
  ASSERT_TRUE(r.wait_keys(1));
  const auto begin = Steady::now();
  w.stop();
  EXPECT_LT(Steady::now() - begin, 2s);
  EXPECT_EQ(r.worked(), std::vector<std::string>{"first"});
}

TEST(BackgroundWorker, StopWaitsForTheKeyUnderWay) {
  Recorder r;
  auto w = std::make_unique<BackgroundWorker>([&](const std::string& k) { r.work(k); },
                                              [&](const std::string& k) { r.due(k); });
  ASSERT_TRUE(w->enqueue("block"));
  ASSERT_TRUE(w->enqueue("after"));
  ASSERT_TRUE(r.wait_started(1));
  std::mutex mu;
  std::condition_variable cv;
  bool stopped = false;
  std::thread stopper([&] {
    w->stop();
    std::lock_guard lock(mu);
    stopped = true;
    cv.notify_all();
  });
  {
    std::unique_lock lock(mu);
    EXPECT_FALSE(cv.wait_for(lock, 100ms, [&] { return stopped; })) << "stop() returned while work() ran";
  }
  r.release();
  stopper.join();
  EXPECT_TRUE(stopped);
  // "block" finished; "after", queued behind it, never started.
  EXPECT_EQ(r.worked(), std::vector<std::string>{"block"});
  w.reset();  // the destructor's second stop is harmless
}

}  // namespace
