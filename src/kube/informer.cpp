#include "kube/informer.h"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace bo::kube {

std::string Informer::key_of(const json& obj) {
  const auto& m = obj.at("metadata");
  const std::string ns = m.value("namespace", "");
  return ns.empty() ? m.value("name", "") : ns + "/" + m.value("name", "");
}

std::vector<std::string> index_by_namespace(const json& obj) { return {obj["metadata"].value("namespace", "")}; }

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
  index_fns_["namespace"] = index_by_namespace;
}

void Informer::add_handlers(InformerHandlers h) { handlers_.push_back(std::move(h)); }
void Informer::add_index(const std::string& name, IndexFn fn) { index_fns_[name] = std::move(fn); }

bool Informer::wait_synced(std::chrono::milliseconds timeout) const {
  std::unique_lock lock(wait_mu_);
  return wait_cv_.wait_for(lock, timeout, [&] { return synced_.load(); });
}

ObjPtr Informer::get(const std::string& ns, const std::string& name) const {
  std::shared_lock lock(mu_);
  auto it = items_.find(ns.empty() ? name : ns + "/" + name);
  return it == items_.end() ? nullptr : it->second;
}

std::vector<ObjPtr> Informer::list(const std::string& ns) const {
  std::shared_lock lock(mu_);
  std::vector<ObjPtr> out;
  if (ns.empty()) {
    out.reserve(items_.size());
    for (const auto& [k, v] : items_) out.push_back(v);
    return out;
  }
  auto idx = indices_.find("namespace");
  if (idx == indices_.end()) return out;
  auto keys = idx->second.find(ns);
  if (keys == idx->second.end()) return out;
  for (const auto& k : keys->second) out.push_back(items_.at(k));
  return out;
}

std::vector<ObjPtr> Informer::by_index(const std::string& index, const std::string& value) const {
  std::shared_lock lock(mu_);
  std::vector<ObjPtr> out;
  auto idx = indices_.find(index);
  if (idx == indices_.end()) return out;
  auto keys = idx->second.find(value);
  if (keys == idx->second.end()) return out;
  for (const auto& k : keys->second) out.push_back(items_.at(k));
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

void Informer::index_add(const std::string& key, const json& obj) {
  for (const auto& [name, fn] : index_fns_)
    for (const auto& v : fn(obj)) indices_[name][v].insert(key);
}

void Informer::index_remove(const std::string& key, const json& obj) {
  for (const auto& [name, fn] : index_fns_)
    for (const auto& v : fn(obj)) {
      auto& bucket = indices_[name];
      auto it = bucket.find(v);
      if (it == bucket.end()) continue;
      it->second.erase(key);
      if (it->second.empty()) bucket.erase(it);
    }
}

void Informer::replace(const json& items) {
  struct Change {
    ObjPtr old_obj, new_obj;
  };
  std::vector<Change> changes;
  {
    std::unique_lock lock(mu_);
    std::map<std::string, ObjPtr> next;
    for (const auto& raw : items) {
      if (!raw.is_object() || !raw.contains("metadata") || !raw["metadata"].is_object()) continue;
      json obj = raw;
      obj["apiVersion"] = resource_.api_version();
      obj["kind"] = resource_.kind;
      if (opts_.transform) opts_.transform(obj);
      std::string key = key_of(obj);
      next[std::move(key)] = std::make_shared<const json>(std::move(obj));
    }
    for (const auto& [k, old_obj] : items_)
      if (!next.count(k)) changes.push_back({old_obj, nullptr});
    for (const auto& [k, obj] : next) {
      auto it = items_.find(k);
      ObjPtr old_obj = it == items_.end() ? nullptr : it->second;
      if (old_obj && (*old_obj)["metadata"].value("resourceVersion", "") == (*obj)["metadata"].value("resourceVersion", ""))
        continue;
      changes.push_back({old_obj, obj});
    }
    indices_.clear();
    items_ = std::move(next);
    for (const auto& [k, obj] : items_) index_add(k, *obj);
  }
  for (const auto& c : changes)
    for (const auto& h : handlers_) {
      if (!c.new_obj) {
        if (h.on_delete) h.on_delete(c.old_obj);
      } else if (!c.old_obj) {
        if (h.on_add) h.on_add(c.new_obj);
      } else if (h.on_update) {
        h.on_update(c.old_obj, c.new_obj);
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
  obj["apiVersion"] = resource_.api_version();
  obj["kind"] = resource_.kind;
  if (opts_.transform) opts_.transform(obj);
  const std::string key = key_of(obj);
  auto ptr = std::make_shared<const json>(std::move(obj));
  ObjPtr old_obj;
  {
    std::unique_lock lock(mu_);
    if (!rv.empty()) rv_ = rv;
    auto it = items_.find(key);
    if (it != items_.end()) {
      old_obj = it->second;
      index_remove(key, *old_obj);
    }
    if (ev.type == WatchEvent::Type::kDeleted) {
      if (it != items_.end()) items_.erase(it);
    } else {
      items_[key] = ptr;
      index_add(key, *ptr);
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
    ListOptions lo{opts_.label_selector, opts_.field_selector, 500, "", ""};
    auto listed = client_.list_all(resource_, ns_, lo);
    if (!listed) {
      if (!sleep(stop, backoff)) break;
      grow();
      continue;
    }
    ++relists_;
    replace((*listed)["items"]);
    {
      std::unique_lock lock(mu_);
      rv_ = (*listed)["metadata"].value("resourceVersion", "");
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
                      true};
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
