#include "kube/informer.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

namespace bo::kube {

std::string Informer::key_of(const json& obj) {
  const auto& m = obj.at("metadata");
  const std::string ns = m.value("namespace", "");
  return ns.empty() ? m.value("name", "") : ns + "/" + m.value("name", "");
}

std::vector<std::string> index_by_owner_uid(const json& obj) {
  std::vector<std::string> out;
  for (const auto& r : obj["metadata"].value("ownerReferences", json::array())) out.push_back(r.value("uid", ""));
  return out;
}

Informer::IndexFn index_by_label(const std::string& label) {
  return [label](const json& obj) -> std::vector<std::string> {
    const auto labels = obj["metadata"].value("labels", json::object());
    if (auto it = labels.find(label); it != labels.end() && it->is_string()) return {it->get<std::string>()};
    return {};
  };
}

Informer::Informer(Client& client, Resource resource, std::string ns, InformerOptions opts)
    : client_(client), resource_(std::move(resource)), ns_(std::move(ns)), opts_(std::move(opts)) {
}

void Informer::add_handlers(InformerHandlers h) { handlers_.push_back(std::move(h)); }
void Informer::add_index(const std::string& name, IndexFn fn) { index_fns_[name] = std::move(fn); }

bool Informer::wait_synced(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(wait_mu_);
  return wait_cv_.wait_for(lock, timeout, [&] { return synced_.load(); });
}

Informer::IndexValues Informer::index_values(const json& obj) const {
  IndexValues out;
  for (const auto& [name, fn] : index_fns_)
    for (auto& v : fn(obj)) out.emplace_back(name, std::move(v));
  return out;
}

Informer::Entry Informer::make_entry(const ObjPtr& obj) {
  Entry e;
  e.rv = (*obj)["metadata"].value("resourceVersion", "");
  if (opts_.compact) {
    const std::vector<std::uint8_t> bytes = packer_.pack(*obj);
    auto blob = std::make_shared_for_overwrite<std::uint8_t[]>(bytes.size());
    std::copy(bytes.begin(), bytes.end(), blob.get());
    e.packed = std::move(blob);
    e.packed_size = static_cast<std::uint32_t>(bytes.size());
  } else {
    e.obj = obj;
  }
  return e;
}

ObjPtr Informer::materialize(const Entry& e) const {
  if (e.obj) return e.obj;
  return std::make_shared<const json>(packer_.unpack({e.packed.get(), e.packed_size}));
}

ObjPtr Informer::get(const std::string& ns, const std::string& name) const {
  std::shared_lock lock(mu_);
  auto it = items_.find(ns.empty() ? name : ns + "/" + name);
  return it == items_.end() ? nullptr : materialize(it->second);
}

std::vector<ObjPtr> Informer::list(const std::string& ns) const {
  std::shared_lock lock(mu_);
  std::vector<ObjPtr> out;
  if (ns.empty()) {
    out.reserve(items_.size());
    for (const auto& [k, v] : items_) out.push_back(materialize(v));
    return out;
  }
  // Keys are "namespace/name", sorted: the namespace's run of them ends
  // before "namespace0" ('0' follows '/').
  for (auto it = items_.lower_bound(ns + "/"), end = items_.lower_bound(ns + "0"); it != end; ++it)
    out.push_back(materialize(it->second));
  return out;
}

std::vector<ObjPtr> Informer::by_index(const std::string& index, const std::string& value) const {
  std::shared_lock lock(mu_);
  std::vector<ObjPtr> out;
  auto idx = indices_.find(index);
  if (idx == indices_.end()) return out;
  auto keys = idx->second.find(value);
  if (keys == idx->second.end()) return out;
  for (const Node* n : keys->second) out.push_back(materialize(n->second));
  return out;
}

std::vector<std::string> Informer::keys_by_index(const std::string& index, const std::string& value) const {
  std::shared_lock lock(mu_);
  auto idx = indices_.find(index);
  if (idx == indices_.end()) return {};
  auto keys = idx->second.find(value);
  if (keys == idx->second.end()) return {};
  std::vector<std::string> out;
  out.reserve(keys->second.size());
  for (const Node* n : keys->second) out.push_back(n->first);
  return out;
}

size_t Informer::size() const {
  std::shared_lock lock(mu_);
  return items_.size();
}

std::string Informer::last_resource_version() const {
  std::shared_lock lock(mu_);
  return rv_;
}

void Informer::index_add(const Node& node, const IndexValues& values) {
  for (const auto& [name, v] : values) indices_[name][v].insert(&node);
}

void Informer::index_remove(const Node& node, const IndexValues& values) {
  for (const auto& [name, v] : values) {
    auto& bucket = indices_[name];
    auto it = bucket.find(v);
    if (it == bucket.end()) continue;
    it->second.erase(&node);
    if (it->second.empty()) bucket.erase(it);
  }
}

ObjPtr Informer::prepare(json obj) const {
  if (opts_.metadata_only) obj = json{{"metadata", std::move(obj["metadata"])}};
  obj["apiVersion"] = opts_.metadata_only ? std::string("meta.k8s.io/v1") : resource_.api_version();
  obj["kind"] = opts_.metadata_only ? std::string("PartialObjectMetadata") : resource_.kind;
  if (opts_.transform) opts_.transform(obj);
  return std::make_shared<const json>(std::move(obj));
}

void Informer::replace(std::map<std::string, Listed> next) {
  // Handlers get objects decoded one at a time after the lock is released,
  // so a relist of a compact cache never holds every object decoded at once.
  struct Change {
    std::optional<Entry> old_entry, new_entry;
  };
  std::vector<Change> changes;
  {
    std::unique_lock lock(mu_);
    for (const auto& [k, e] : items_)
      if (!next.count(k)) changes.push_back({e, std::nullopt});
    for (const auto& [k, l] : next) {
      auto it = items_.find(k);
      if (it != items_.end() && it->second.rv == l.entry.rv) continue;
      changes.push_back({it == items_.end() ? std::nullopt : std::optional<Entry>(it->second), l.entry});
    }
    indices_.clear();
    items_.clear();
    for (auto& [k, l] : next) index_add(*items_.emplace_hint(items_.end(), k, std::move(l.entry)), l.index);
  }
  next.clear();  // the index values listed: not kept
  for (const auto& c : changes) {
    const ObjPtr old_obj = c.old_entry ? materialize(*c.old_entry) : nullptr;
    const ObjPtr new_obj = c.new_entry ? materialize(*c.new_entry) : nullptr;
    for (const auto& h : handlers_) {
      if (!new_obj) {
        if (h.on_delete) h.on_delete(old_obj);
      } else if (!old_obj) {
        if (h.on_add) h.on_add(new_obj);
      } else if (h.on_update) {
        h.on_update(old_obj, new_obj);
      }
    }
  }
}

void Informer::apply(const WatchEvent& ev) {
  json obj = ev.object;
  if (!obj.contains("metadata") || !obj["metadata"].is_object()) return;
  const std::string rv = obj["metadata"].value("resourceVersion", "");
  if (ev.type == WatchEvent::Type::kBookmark) {
    std::unique_lock lock(mu_);
    if (!rv.empty()) rv_ = rv;
    return;
  }
  auto ptr = prepare(std::move(obj));
  const std::string key = key_of(*ptr);
  const bool deleted = ev.type == WatchEvent::Type::kDeleted;
  Entry entry = deleted ? Entry{} : make_entry(ptr);
  const IndexValues new_index = deleted ? IndexValues{} : index_values(*ptr);
  ObjPtr old_obj;
  {
    std::unique_lock lock(mu_);
    if (!rv.empty()) rv_ = rv;
    auto it = items_.find(key);
    if (it != items_.end()) {
      old_obj = materialize(it->second);
      index_remove(*it, index_values(*old_obj));
    }
    if (deleted) {
      if (it != items_.end()) items_.erase(it);
    } else {
      if (it == items_.end()) it = items_.emplace(key, Entry{}).first;
      it->second = std::move(entry);
      index_add(*it, new_index);
    }
  }
  for (const auto& h : handlers_) {
    if (ev.type == WatchEvent::Type::kDeleted) {
      if (h.on_delete) h.on_delete(old_obj ? old_obj : ptr);
    } else if (old_obj) {
      if (h.on_update) h.on_update(old_obj, ptr);
    } else if (h.on_add) {
      h.on_add(ptr);
    }
  }
}

bool Informer::sleep(std::stop_token& stop, std::chrono::milliseconds d) {
  std::mutex m;
  std::condition_variable_any cv;
  std::unique_lock lock(m);
  cv.wait_for(lock, stop, d, [] { return false; });
  return !stop.stop_requested();
}

void Informer::resync_loop(std::stop_token stop) {
  while (sleep(stop, std::chrono::duration_cast<std::chrono::milliseconds>(opts_.resync))) {
    for (const auto& obj : list())
      for (const auto& h : handlers_)
        if (h.on_update) h.on_update(obj, obj);
  }
}

void Informer::run(std::stop_token stop) {
  std::jthread resync;
  if (opts_.resync.count() > 0) resync = std::jthread([this, stop](std::stop_token) { resync_loop(stop); });
  auto backoff = opts_.backoff_base;
  auto grow = [&] { backoff = std::min(opts_.backoff_cap, backoff * 2); };
  while (!stop.stop_requested()) {
    ListOptions lo{opts_.label_selector, opts_.field_selector, 500, "", "", opts_.metadata_only};
    // Page by page into entries (compact ones are packed as they arrive).
    std::map<std::string, Listed> next;
    auto listed = client_.list_each(
        resource_, ns_, lo,
        [&](json& raw) {
          if (!raw.is_object() || !raw.contains("metadata") || !raw["metadata"].is_object()) return;
          auto ptr = prepare(std::move(raw));
          next.insert_or_assign(key_of(*ptr), Listed{make_entry(ptr), index_values(*ptr)});
        },
        [&] { next.clear(); });
    if (!listed) {
      if (!sleep(stop, backoff)) break;
      grow();
      continue;
    }
    ++relists_;
    replace(std::move(next));
    {
      std::unique_lock lock(mu_);
      rv_ = *listed;
    }
    {
      std::lock_guard lock(wait_mu_);
      synced_ = true;
    }
    wait_cv_.notify_all();
    backoff = opts_.backoff_base;
    // Watch from the list's version until the history is gone (410).
    while (!stop.stop_requested()) {
      Canceller cancel;
      std::stop_callback on_stop(stop, [&] { cancel.cancel(); });
      WatchOptions wo{opts_.label_selector, opts_.field_selector, last_resource_version(), opts_.watch_timeout_seconds,
                      true, opts_.metadata_only};
      auto r = client_.watch(resource_, ns_, wo, [&](const WatchEvent& ev) {
        apply(ev);
        return !stop.stop_requested();
      }, &cancel);
      if (stop.stop_requested()) break;
      ++watch_restarts_;
      if (r) {
        backoff = opts_.backoff_base;
        continue;  // the server closed the stream (timeout): resume
      }
      if (r.error().gone()) break;  // re-list
      if (!sleep(stop, backoff)) break;
      grow();
    }
  }
}

}  // namespace bo::kube
