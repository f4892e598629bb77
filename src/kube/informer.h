// List-then-watch into a thread-safe, indexed cache of one resource type, as
// client-go's reflector + indexer + shared informer. Handlers only enqueue
// work; they see every change (no event is dropped: a broken stream resumes
// from the last resourceVersion, a 410 re-lists and delivers the difference).
#pragma once
#include <atomic>
#include <cstdint>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <shared_mutex>
#include <stop_token>
#include <string>
#include <vector>

#include "kube/client.h"
#include "kube/packing.h"

namespace bo::kube {

using ObjPtr = std::shared_ptr<const json>;

struct InformerHandlers {
  std::function<void(const ObjPtr&)> on_add;
  std::function<void(const ObjPtr& old_obj, const ObjPtr& new_obj)> on_update;
  std::function<void(const ObjPtr&)> on_delete;
};

struct InformerOptions {
  std::string label_selector;
  std::string field_selector;
  std::chrono::seconds resync{0};  // 0: never re-deliver unchanged objects
  long watch_timeout_seconds = 300;
  std::chrono::milliseconds backoff_base{100};
  std::chrono::milliseconds backoff_cap{30000};
  // Applied to each object before caching (drop managedFields and the like to save memory).
  std::function<void(json&)> transform;
  // Keep each object packed (kube/packing.h: MessagePack deflated against
  // objects of its kind, a small fraction of nlohmann::json's in-memory
  // size) and decode it on get/list/by_index. For large caches read a few
  // objects at a time.
  bool compact = false;
  // Metadata only, as controller-runtime's metadata informers: lists and
  // watches ask for PartialObjectMetadata, and whatever else an answer holds
  // is dropped before caching (a server that ignored the Accept header still
  // leaves no data in memory).
  bool metadata_only = false;
};

class Informer {
 public:
  using IndexFn = std::function<std::vector<std::string>(const json&)>;

  Informer(Client& client, Resource resource, std::string ns, InformerOptions opts = {});

  // Both must be called before run().
  void add_handlers(InformerHandlers h);
  void add_index(const std::string& name, IndexFn fn);

  // Blocks until `stop` is requested.
  void run(std::stop_token stop);

  [[nodiscard]] bool synced() const { return synced_.load(); }
  // Waits until the first list has been delivered, or the timeout passes.
  bool wait_synced(std::chrono::milliseconds timeout) const;
  [[nodiscard]] ObjPtr get(const std::string& ns, const std::string& name) const;
  [[nodiscard]] std::vector<ObjPtr> list(const std::string& ns = "") const;
  [[nodiscard]] std::vector<ObjPtr> by_index(const std::string& index, const std::string& value) const;
  // The keys ("ns/name") under an index value, without decoding an object:
  // for handlers that only need to know who, which run on every event.
  [[nodiscard]] std::vector<std::string> keys_by_index(const std::string& index, const std::string& value) const;
  [[nodiscard]] size_t size() const;
  [[nodiscard]] const Resource& resource() const { return resource_; }
  [[nodiscard]] uint64_t relists() const { return relists_.load(); }
  [[nodiscard]] uint64_t watch_restarts() const { return watch_restarts_.load(); }
  [[nodiscard]] std::string last_resource_version() const;

  static std::string key_of(const json& obj);

 private:
  void apply(const WatchEvent& ev);
  // What the cache keeps of an object. Its index values are not kept: they
  // are computed from the object when it is added and again, from the old
  // object that the handlers get anyway, when it is replaced or deleted.
  struct Entry {
    ObjPtr obj;                                             // unless compact
    std::shared_ptr<const std::uint8_t[]> packed;             // compact: packer_'s, one allocation
    std::uint32_t packed_size = 0;
    std::string rv;
  };
  using Node = std::pair<const std::string, Entry>;  // an element of items_: stays put until erased
  struct ByKey {
    bool operator()(const Node* a, const Node* b) const { return a->first < b->first; }
  };
  using IndexValues = std::vector<std::pair<std::string, std::string>>;  // (index, value)
  struct Listed {
    Entry entry;
    IndexValues index;
  };
  [[nodiscard]] Entry make_entry(const ObjPtr& obj);
  [[nodiscard]] IndexValues index_values(const json& obj) const;
  [[nodiscard]] ObjPtr materialize(const Entry& e) const;
  void index_add(const Node& node, const IndexValues& values);
  void index_remove(const Node& node, const IndexValues& values);
  // The object as cached: apiVersion and kind set, transformed.
  [[nodiscard]] ObjPtr prepare(json obj) const;
  void replace(std::map<std::string, Listed> next);
  void resync_loop(std::stop_token stop);
  bool sleep(std::stop_token& stop, std::chrono::milliseconds d);

  Client& client_;
  Resource resource_;
  std::string ns_;
  InformerOptions opts_;
  std::vector<InformerHandlers> handlers_;
  std::map<std::string, IndexFn> index_fns_;
  ObjectPacker packer_;

  mutable std::shared_mutex mu_;
  std::map<std::string, Entry> items_;  // "namespace/name" (or "name"): a namespace is a key range
  // index -> value -> the items under it, by address (no copy of their keys), in key order.
  std::map<std::string, std::map<std::string, std::set<const Node*, ByKey>>> indices_;
  std::string rv_;
  std::atomic<bool> synced_{false};
  std::atomic<uint64_t> relists_{0};
  std::atomic<uint64_t> watch_restarts_{0};
  mutable std::mutex wait_mu_;
  mutable std::condition_variable_any wait_cv_;
};

// Index functions for the common lookups.
std::vector<std::string> index_by_owner_uid(const json& obj);
Informer::IndexFn index_by_label(const std::string& label);

}  // namespace bo::kube
