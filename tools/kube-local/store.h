// The object store behind kube-local: what etcd is to kube-apiserver. One
// global, monotonic resourceVersion; compare-and-swap writes; a bounded event
// history that watches resume from (older versions answer 410 Gone); and an
// append-only journal under --data-dir so state survives kill -9.
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace kl {

using json = nlohmann::json;
using ObjPtr = std::shared_ptr<const json>;

enum class EventType { kAdded, kModified, kDeleted };

struct Event {
  uint64_t rv = 0;
  EventType type = EventType::kAdded;
  std::string gr;  // "group/resource", "" group for core
  std::string ns;
  std::string name;
  ObjPtr obj;   // the object as stored after the change (for deletes: its last state)
  ObjPtr prev;  // the object before the change (null for creates)
};

class Store {
 public:
  enum class Outcome { kOk, kNotFound, kExists, kConflict };
  struct Write {
    Outcome outcome = Outcome::kOk;
    ObjPtr obj;  // the stored object on success; the current one on conflict
  };
  struct Poll {
    bool gone = false;
    std::vector<Event> events;
  };

  // `data_dir` empty keeps everything in memory.
  explicit Store(std::string data_dir = "", size_t history_limit = 200000);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  [[nodiscard]] uint64_t current_rv() const;
  [[nodiscard]] ObjPtr get(const std::string& gr, const std::string& ns, const std::string& name) const;
  // Sorted by namespace then name; `ns` empty lists every namespace.
  [[nodiscard]] std::vector<ObjPtr> list(const std::string& gr, const std::string& ns) const;
  // The listing and the version it was taken at, atomically.
  [[nodiscard]] std::pair<std::vector<ObjPtr>, uint64_t> snapshot(const std::string& gr, const std::string& ns) const;
  // The listing as it was at `rv` (a continued list's consistent snapshot), rebuilt
  // from the current state and the event history after it; nullopt once history
  // older than rv+1 is compacted away.
  [[nodiscard]] std::optional<std::vector<ObjPtr>> snapshot_at(const std::string& gr, const std::string& ns,
                                                               uint64_t rv) const;
  [[nodiscard]] std::vector<std::string> resources() const;
  // The objects whose metadata.ownerReferences name `uid`, of any resource
  // and namespace, as (group/resource, object) in list order: what the
  // garbage collector and the Job and StatefulSet controllers look up (the
  // real ones through informer indexes) instead of listing everything.
  [[nodiscard]] std::vector<std::pair<std::string, ObjPtr>> dependents(const std::string& uid) const;

  // All three stamp metadata.resourceVersion. `expected_rv` 0 means unconditional.
  Write create(const std::string& gr, json obj);
  Write update(const std::string& gr, json obj, uint64_t expected_rv);
  Write remove(const std::string& gr, const std::string& ns, const std::string& name, uint64_t expected_rv);

  // Events after `rv`; gone when history older than rv+1 has been compacted away.
  [[nodiscard]] Poll events_since(uint64_t rv) const;
  [[nodiscard]] uint64_t oldest_available_rv() const;
  // Blocks until the store moves past `rv`, the deadline passes or close() is called.
  bool wait_past(uint64_t rv, std::chrono::steady_clock::time_point deadline) const;
  // Drops all history (fault injection; forces 410 Gone on resume).
  void compact();
  void close();
  [[nodiscard]] bool closed() const;

 private:
  void record(EventType type, const std::string& gr, const json& obj, ObjPtr ptr, ObjPtr prev);
  void journal(const json& line);
  // Moves the object at (gr, key) in owned_ from `before`'s owners to `after`'s (either may be null).
  void index_owners(const std::string& gr, const std::string& key, const json* before, const json* after);
  std::vector<ObjPtr> list_locked(const std::string& gr, const std::string& ns) const;
  void load();

  std::string data_dir_;
  size_t history_limit_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  uint64_t rv_ = 0;
  uint64_t compacted_rv_ = 0;  // events with rv <= this are gone
  bool closed_ = false;
  std::map<std::string, std::map<std::string, ObjPtr>> objects_;  // gr -> "ns/name" -> obj
  std::map<std::string, std::set<std::pair<std::string, std::string>>> owned_;  // owner uid -> (gr, "ns/name")
  std::deque<Event> history_;
  std::ofstream journal_;
};

}  // namespace kl
