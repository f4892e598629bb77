#include "common/background_worker.h"

#include <algorithm>
#include <optional>
#include <vector>

namespace bo {

BackgroundWorker::BackgroundWorker(KeyFn work, KeyFn due, double per_second)
    : work_(std::move(work)),
      due_(std::move(due)),
      per_second_(per_second),
      burst_(std::max(1, static_cast<int>(per_second))),
      tokens_(burst_),
      refilled_(std::chrono::steady_clock::now()) {
  thread_ = std::thread([this] { run(); });
}

BackgroundWorker::~BackgroundWorker() { stop(); }

bool BackgroundWorker::enqueue(const std::string& key, Lane lane) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    if (!queued_.insert(key).second) {
      // Queued already: a first look moves it ahead of the paced queue.
      if (lane == Lane::kFirst && std::find(first_.begin(), first_.end(), key) == first_.end()) {
        queue_.erase(std::remove(queue_.begin(), queue_.end(), key), queue_.end());
        first_.push_back(key);
      }
      return false;
    }
    (lane == Lane::kFirst ? first_ : queue_).push_back(key);
  }
  cv_.notify_one();
  return true;
}

void BackgroundWorker::schedule_at(const std::string& key, TimePoint at) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    timers_.emplace(at, key);
  }
  cv_.notify_one();
}

void BackgroundWorker::cancel(const std::string& key) {
  std::lock_guard lock(mu_);
  if (queued_.erase(key)) {
    queue_.erase(std::remove(queue_.begin(), queue_.end(), key), queue_.end());
    first_.erase(std::remove(first_.begin(), first_.end(), key), first_.end());
  }
}

bool BackgroundWorker::stopping() const {
  std::lock_guard lock(mu_);
  return stopping_;
}

void BackgroundWorker::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
    first_.clear();
    queued_.clear();
    timers_.clear();
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

BackgroundWorker::TimePoint BackgroundWorker::next_start(TimePoint now) {
  if (per_second_ <= 0) return now;
  tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - refilled_).count() * per_second_);
  refilled_ = now;
  if (tokens_ >= 1) return now;
  return now + std::chrono::ceil<std::chrono::steady_clock::duration>(
                   std::chrono::duration<double>((1 - tokens_) / per_second_));
}

void BackgroundWorker::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    const auto now = std::chrono::steady_clock::now();
    // Timers first: a due key may queue itself again before the queue is read.
    std::vector<std::string> due;
    while (!timers_.empty() && timers_.begin()->first <= now) {
      due.push_back(timers_.begin()->second);
      timers_.erase(timers_.begin());
    }
    if (!due.empty()) {
      lock.unlock();
      for (const auto& k : due) due_(k);
      lock.lock();
      continue;
    }
    if (!first_.empty()) {
      const std::string key = first_.front();
      first_.pop_front();
      queued_.erase(key);
      lock.unlock();
      work_(key);
      lock.lock();
      continue;
    }
    std::optional<TimePoint> wake_at;
    if (!timers_.empty()) wake_at = timers_.begin()->first;
    if (!queue_.empty()) {
      const TimePoint start = next_start(now);
      if (start <= now) {
        if (per_second_ > 0) tokens_ -= 1;
        const std::string key = queue_.front();
        queue_.pop_front();
        queued_.erase(key);
        lock.unlock();
        work_(key);
        lock.lock();
        continue;
      }
      wake_at = wake_at ? std::min(*wake_at, start) : start;
    }
    if (wake_at) cv_.wait_until(lock, *wake_at);
    else cv_.wait(lock);
  }
}

}  // namespace bo
