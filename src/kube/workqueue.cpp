#include "kube/workqueue.h"

#include <algorithm>
#include <cmath>

namespace bo::kube {

WorkQueue::WorkQueue(WorkQueueOptions opts)
    : opts_(opts), bucket_tokens_(opts.overall_burst), bucket_last_(Clock::now()) {}

void WorkQueue::add_locked(const std::string& key) {
  if (shutdown_ || dirty_.count(key)) return;
  dirty_.insert(key);
  if (observer_.on_add) observer_.on_add();
  // A key being processed waits in dirty_ and is queued again by done().
  if (processing_.count(key)) return;
  queue_.push_back(key);
  cv_.notify_one();
}

void WorkQueue::add(const std::string& key) {
  std::lock_guard lock(mu_);
  add_locked(key);
}

void WorkQueue::add_after(const std::string& key, std::chrono::milliseconds delay) {
  std::lock_guard lock(mu_);
  if (shutdown_) return;
  if (delay.count() <= 0) {
    add_locked(key);
    return;
  }
  const auto at = Clock::now() + delay;
  // Keep only the earliest pending time per key.
  if (auto it = delayed_at_.find(key); it != delayed_at_.end()) {
    if (it->second <= at) return;
    auto range = delayed_.equal_range(it->second);
    for (auto d = range.first; d != range.second; ++d)
      if (d->second == key) {
        delayed_.erase(d);
        break;
      }
  }
  delayed_at_[key] = at;
  delayed_.emplace(at, key);
  cv_.notify_one();
}

std::chrono::milliseconds WorkQueue::add_rate_limited(const std::string& key) {
  std::chrono::milliseconds delay;
  {
    std::lock_guard lock(mu_);
    const int n = failures_[key]++;
    const double item = std::min<double>(static_cast<double>(opts_.item_cap.count()),
                                         opts_.item_base.count() * std::pow(2.0, std::min(n, 40)));
    // Overall bucket: each retry takes a token; an empty bucket delays.
    const auto now = Clock::now();
    bucket_tokens_ = std::min<double>(opts_.overall_burst,
                                      bucket_tokens_ + std::chrono::duration<double>(now - bucket_last_).count() *
                                                           opts_.overall_qps);
    bucket_last_ = now;
    bucket_tokens_ -= 1;
    const double bucket = bucket_tokens_ >= 0 ? 0 : (-bucket_tokens_ / opts_.overall_qps) * 1000.0;
    delay = std::chrono::milliseconds(static_cast<long long>(std::max(item, bucket)));
    if (observer_.on_retry) observer_.on_retry();
  }
  add_after(key, delay);
  return delay;
}

void WorkQueue::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  failures_.erase(key);
}

int WorkQueue::retries(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

void WorkQueue::promote_due_locked(Clock::time_point now) {
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    const std::string key = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    delayed_at_.erase(key);
    add_locked(key);
  }
}

std::optional<std::string> WorkQueue::get() {
  std::unique_lock lock(mu_);
  while (true) {
    promote_due_locked(Clock::now());
    if (!queue_.empty()) {
      std::string key = std::move(queue_.front());
      queue_.pop_front();
      dirty_.erase(key);
      processing_.insert(key);
      return key;
    }
    if (shutdown_) return std::nullopt;
    ++blocked_getters_;
    if (delayed_.empty()) {
      cv_.wait(lock);
    } else {
      // A copy: the node may be erased by add_after() while this thread waits.
      const Clock::time_point until = delayed_.begin()->first;
      cv_.wait_until(lock, until);
    }
    --blocked_getters_;
  }
}

void WorkQueue::done(const std::string& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (dirty_.count(key)) {
    queue_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::shutdown() {
  std::lock_guard lock(mu_);
  shutdown_ = true;
  delayed_.clear();
  delayed_at_.clear();
  cv_.notify_all();
}

bool WorkQueue::shutting_down() const {
  std::lock_guard lock(mu_);
  return shutdown_;
}

size_t WorkQueue::depth() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

bool WorkQueue::has_ready() const {
  std::lock_guard lock(mu_);
  return !queue_.empty() || (!delayed_.empty() && delayed_.begin()->first <= Clock::now());
}

size_t WorkQueue::blocked_getters() const {
  std::lock_guard lock(mu_);
  return blocked_getters_;
}

size_t WorkQueue::waiting() const {
  std::lock_guard lock(mu_);
  return delayed_.size();
}

}  // namespace bo::kube
