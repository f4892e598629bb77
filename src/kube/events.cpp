#include "kube/events.h"

#include "common/encoding.h"
#include "common/timefmt.h"

namespace bo::kube {

EventRecorder::EventRecorder(Client& client, const Clock& clock, EventRecorderOptions opts)
    : client_(client), clock_(clock), opts_(std::move(opts)) {
  thread_ = std::thread([this] { run(); });
}

EventRecorder::~EventRecorder() { stop(); }

void EventRecorder::stop() {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void EventRecorder::record(const json& object, const std::string& type, const std::string& reason,
                           const std::string& message) {
  const json& meta = object.value("metadata", json::object());
  Pending p{{{"apiVersion", object.value("apiVersion", "")},
             {"kind", object.value("kind", "")},
             {"name", meta.value("name", "")},
             {"namespace", meta.value("namespace", "")},
             {"uid", meta.value("uid", "")},
             {"resourceVersion", meta.value("resourceVersion", "")}},
            meta.value("namespace", "default"),
            type,
            reason,
            message.substr(0, 1024),
            clock_.now()};
  if (p.ns.empty()) p.ns = "default";
  {
    std::lock_guard lock(mu_);
    // Token bucket per involved object.
    auto& [tokens, last] = buckets_.try_emplace(p.involved.value("uid", p.involved.value("name", "")),
                                                static_cast<double>(opts_.burst), p.at)
                               .first->second;
    tokens = std::min<double>(opts_.burst, tokens + std::chrono::duration<double>(p.at - last).count() /
                                                        static_cast<double>(opts_.refill.count()));
    last = p.at;
    if (tokens < 1 || queue_.size() >= opts_.max_queue) {
      ++dropped_;
      return;
    }
    tokens -= 1;
    queue_.push_back(std::move(p));
  }
  cv_.notify_one();
}

void EventRecorder::flush() {
  std::unique_lock lock(mu_);
  idle_cv_.wait(lock, [&] { return (queue_.empty() && !busy_) || stop_; });
}

void EventRecorder::run() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (queue_.empty() && stop_) break;
    Pending p = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    post(p);
    lock.lock();
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
  idle_cv_.notify_all();
}

void EventRecorder::post(const Pending& p) {
  const std::string key = p.involved.value("uid", "") + "\x1f" + p.type + "\x1f" + p.reason + "\x1f" + p.message;
  const std::string ts = format_rfc3339(p.at);
  auto it = seen_.find(key);
  if (it != seen_.end() && p.at - it->second.last < opts_.aggregation_window) {
    Seen& s = it->second;
    ++s.count;
    s.last = p.at;
    auto r = client_.patch(resources::kEvents, p.ns, s.name, PatchType::kMerge,
                           json{{"count", s.count}, {"lastTimestamp", ts}});
    if (r) {
      ++posted_;
      return;
    }
    if (!r.error().not_found()) {
      ++dropped_;
      return;
    }
    seen_.erase(it);  // the Event expired server-side: create a fresh one
  }
  const std::string name = p.involved.value("name", "event") + "." + hex_encode(random_bytes(8));
  json ev{{"apiVersion", "v1"},
          {"kind", "Event"},
          {"metadata", {{"name", name}, {"namespace", p.ns}}},
          {"involvedObject", p.involved},
          {"type", p.type},
          {"reason", p.reason},
          {"message", p.message},
          {"count", 1},
          {"firstTimestamp", ts},
          {"lastTimestamp", ts},
          {"source", {{"component", opts_.component}}},
          {"reportingComponent", opts_.component},
          {"reportingInstance", opts_.instance}};
  if (client_.create(resources::kEvents, p.ns, ev)) {
    seen_[key] = Seen{name, 1, p.at, p.at};
    ++posted_;
    if (seen_.size() > 4096) seen_.erase(seen_.begin());  // bounded cache
  } else {
    ++dropped_;
  }
}

}  // namespace bo::kube
