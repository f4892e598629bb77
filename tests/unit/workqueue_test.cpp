#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "kube/workqueue.h"

using bo::kube::WorkQueue;
using namespace std::chrono_literals;

namespace {

TEST(WorkQueue, DeduplicatesQueuedKeys) {
  WorkQueue q;
  q.add("a");
  q.add("a");
  q.add("b");
  EXPECT_EQ(q.depth(), 2u);
  EXPECT_EQ(*q.get(), "a");
  EXPECT_EQ(*q.get(), "b");
}

TEST(WorkQueue, KeyAddedWhileProcessingIsRequeuedOnlyAfterDone) {
  WorkQueue q;
  q.add("a");
  auto k = q.get();
  q.add("a");  // arrives while a worker holds "a"
  EXPECT_EQ(q.depth(), 0u);  // not handed to a second worker
  q.done(*k);
  EXPECT_EQ(q.depth(), 1u);
  EXPECT_EQ(*q.get(), "a");
}

TEST(WorkQueue, NeverHandsOneKeyToTwoWorkers) {
  WorkQueue q;
  std::atomic<int> in_flight{0}, overlaps{0}, processed{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 4; ++w)
    workers.emplace_back([&] {
      while (auto k = q.get()) {
        if (++in_flight > 1) ++overlaps;
        std::this_thread::sleep_for(200us);
        --in_flight;
        ++processed;
        q.done(*k);
      }
    });
  for (int i = 0; i < 500; ++i) q.add("same");
  // Drained: nothing queued and every worker back in get() (a deadline, not a sleep).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((q.depth() > 0 || q.blocked_getters() < 4) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  EXPECT_EQ(q.depth(), 0u);
  q.shutdown();
  for (auto& t : workers) t.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_GE(processed.load(), 1);
}

TEST(WorkQueue, DelayedAddKeepsTheEarliestTime) {
  WorkQueue q;
  q.add_after("a", 10h);
  q.add_after("a", 1ms);
  EXPECT_EQ(q.waiting(), 1u);
  EXPECT_EQ(*q.get(), "a");
}

TEST(WorkQueue, RateLimitedDelayDoublesPerItemAndForgetResets) {
  WorkQueue q;
  EXPECT_EQ(q.add_rate_limited("a"), 5ms);
  EXPECT_EQ(q.add_rate_limited("a"), 10ms);
  EXPECT_EQ(q.add_rate_limited("a"), 20ms);
  EXPECT_EQ(q.retries("a"), 3);
  q.forget("a");
  EXPECT_EQ(q.retries("a"), 0);
  EXPECT_EQ(q.add_rate_limited("a"), 5ms);
}

TEST(WorkQueue, PerItemBackoffIsCapped) {
  WorkQueue q;
  std::chrono::milliseconds last{0};
  for (int i = 0; i < 40; ++i) last = q.add_rate_limited("a");
  EXPECT_EQ(last, 1000s);
}

TEST(WorkQueue, OverallBucketDelaysBurstsBeyondItsSize) {
  bo::kube::WorkQueueOptions o;
  o.overall_burst = 3;
  o.overall_qps = 10;
  WorkQueue q(o);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(q.add_rate_limited("k" + std::to_string(i)), 5ms);
  // The fourth distinct key finds the bucket empty: about 100 ms at 10 qps.
  EXPECT_GE(q.add_rate_limited("k3"), 90ms);
}

TEST(WorkQueue, ShutdownWakesBlockedGetters) {
  WorkQueue q;
  std::thread t([&] { EXPECT_FALSE(q.get().has_value()); });
  // Shut down only once the getter is really blocked (a deadline, not a sleep).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (q.blocked_getters() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(q.blocked_getters(), 1u);
  q.shutdown();
  t.join();
  q.add("late");
  EXPECT_EQ(q.depth(), 0u);
}

}  // namespace

namespace {

// Regression (found by ASan): get() waited on a reference to a delayed
// entry's time that add_after() could erase meanwhile.
TEST(WorkQueue, RescheduledDelayedKeyWhileAWorkerWaitsIsSafe) {
  WorkQueue q;
  q.add_after("k", 50ms);
  std::thread worker([&] {
    auto k = q.get();
    EXPECT_TRUE(k.has_value());
    if (k) q.done(*k);
  });
  // Once the worker is blocked in get() on k's time (a deadline, not a sleep)...
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (q.blocked_getters() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_EQ(q.blocked_getters(), 1u);
  q.add_after("k", 1ms);  // ...replace the entry it is waiting on
  worker.join();
}

}  // namespace

// has_ready: a key a worker could take now, queued or delayed and due (a due
// delayed key is promoted only when a worker asks, so depth() misses it);
// not a key due later, nor one only being worked on.
TEST(WorkQueue, HasReadyCountsQueuedAndDueDelayedKeysOnly) {
  bo::kube::WorkQueue q;
  q.add_after("later", std::chrono::hours(1));
  EXPECT_FALSE(q.has_ready());
  q.add("now");
  EXPECT_TRUE(q.has_ready());
  ASSERT_EQ(q.get(), "now");
  EXPECT_FALSE(q.has_ready()) << "the key being worked on is not waiting";
  q.done("now");
  q.add_after("soon", std::chrono::milliseconds(20));
  EXPECT_EQ(q.depth(), 0u);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!q.has_ready() && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  EXPECT_TRUE(q.has_ready());
  EXPECT_EQ(q.depth(), 0u) << "due, but not yet promoted";
  ASSERT_EQ(q.get(), "soon");
  q.done("soon");
  EXPECT_FALSE(q.has_ready());
}
