#include "kube-local/store.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <utility>
#include <stdexcept>

namespace kl {
namespace {

std::string key_of(const std::string& ns, const std::string& name) { return ns + "/" + name; }

std::string meta_str(const json& obj, const char* field) {
  const auto& m = obj.at("metadata");
  auto it = m.find(field);
  return it != m.end() && it->is_string() ? it->get<std::string>() : std::string();
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

Store::Store(std::string data_dir, size_t history_limit)
    : data_dir_(std::move(data_dir)), history_limit_(history_limit) {
  if (!data_dir_.empty()) load();
}

Store::~Store() { close(); }

void Store::load() {
  namespace fs = std::filesystem;
  fs::create_directories(data_dir_);
  const std::string path = data_dir_ + "/state.jsonl";
  {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
      json rec = json::parse(line, nullptr, /*allow_exceptions=*/false);
      // A torn last line (kill -9 mid-write) is discarded; earlier lines were complete.
      if (rec.is_discarded() || !rec.is_object()) break;
      const uint64_t rv = rec.value("rv", uint64_t{0});
      rv_ = std::max(rv_, rv);
      const std::string gr = rec.value("gr", "");
      const std::string key = key_of(rec.value("ns", ""), rec.value("name", ""));
      if (rec.value("op", "") == "del") {
        objects_[gr].erase(key);
      } else if (rec.contains("obj")) {
        objects_[gr][key] = std::make_shared<const json>(rec["obj"]);
      }
    }
  }
  compacted_rv_ = rv_;
  for (const auto& [gr, objs] : objects_)
    for (const auto& [key, obj] : objs) index_owners(gr, key, nullptr, obj.get());
  // Rewrite a compact snapshot atomically, then append from there.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << json{{"rv", rv_}, {"op", "mark"}}.dump() << "\n";
    for (const auto& [gr, objs] : objects_)
      for (const auto& [key, obj] : objs) {
        const auto slash = key.find('/');
        out << json{{"rv", rv_}, {"op", "put"}, {"gr", gr}, {"ns", key.substr(0, slash)},
                    {"name", key.substr(slash + 1)}, {"obj", *obj}}
                   .dump()
            << "\n";
      }
    out.flush();
    if (!out) throw std::runtime_error("cannot write " + tmp);
  }
  fsync_path(tmp);
  fs::rename(tmp, path);
  fsync_path(data_dir_);
  journal_.open(path, std::ios::app);
  if (!journal_) throw std::runtime_error("cannot open journal " + path);
}

void Store::journal(const json& line) {
  if (!journal_.is_open()) return;
  // One write per mutation, flushed: the page cache survives kill -9 of this process.
  journal_ << line.dump() << '\n';
  journal_.flush();
}

uint64_t Store::current_rv() const {
  std::lock_guard lock(mu_);
  return rv_;
}

ObjPtr Store::get(const std::string& gr, const std::string& ns, const std::string& name) const {
  std::lock_guard lock(mu_);
  auto g = objects_.find(gr);
  if (g == objects_.end()) return nullptr;
  auto it = g->second.find(key_of(ns, name));
  return it == g->second.end() ? nullptr : it->second;
}

std::pair<std::vector<ObjPtr>, uint64_t> Store::snapshot(const std::string& gr, const std::string& ns) const {
  std::lock_guard lock(mu_);
  return {list_locked(gr, ns), rv_};
}

std::optional<std::vector<ObjPtr>> Store::snapshot_at(const std::string& gr, const std::string& ns,
                                                      uint64_t rv) const {
  std::lock_guard lock(mu_);
  if (rv < compacted_rv_ || rv > rv_) return std::nullopt;
  std::map<std::string, ObjPtr> state;
  if (auto g = objects_.find(gr); g != objects_.end()) state = g->second;
  // Undo every change after rv, newest first.
  for (auto it = history_.rbegin(); it != history_.rend() && it->rv > rv; ++it) {
    if (it->gr != gr) continue;
    const std::string key = key_of(it->ns, it->name);
    if (it->type == EventType::kAdded) state.erase(key);
    else if (it->prev) state[key] = it->prev;
  }
  std::vector<ObjPtr> out;
  const std::string prefix = ns + "/";
  for (const auto& [k, v] : state)
    if (ns.empty() || k.starts_with(prefix)) out.push_back(v);
  return out;
}

std::vector<ObjPtr> Store::list(const std::string& gr, const std::string& ns) const {
  std::lock_guard lock(mu_);
  return list_locked(gr, ns);
}

std::vector<ObjPtr> Store::list_locked(const std::string& gr, const std::string& ns) const {
  std::vector<ObjPtr> out;
  auto g = objects_.find(gr);
  if (g == objects_.end()) return out;
  if (ns.empty()) {
    out.reserve(g->second.size());
    for (const auto& [k, v] : g->second) out.push_back(v);
  } else {
    const std::string prefix = ns + "/";
    for (auto it = g->second.lower_bound(prefix); it != g->second.end() && it->first.starts_with(prefix); ++it)
      out.push_back(it->second);
  }
  return out;
}

std::vector<std::string> Store::resources() const {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  for (const auto& [gr, objs] : objects_)
    if (!objs.empty()) out.push_back(gr);
  return out;
}

std::vector<std::pair<std::string, ObjPtr>> Store::dependents(const std::string& uid) const {
  std::lock_guard lock(mu_);
  std::vector<std::pair<std::string, ObjPtr>> out;
  auto it = owned_.find(uid);
  if (it == owned_.end()) return out;
  for (const auto& [gr, key] : it->second)
    if (auto g = objects_.find(gr); g != objects_.end())
      if (auto o = g->second.find(key); o != g->second.end()) out.emplace_back(gr, o->second);
  return out;
}

namespace {
std::vector<std::string> owner_uids(const json* obj) {
  std::vector<std::string> out;
  if (!obj || !obj->is_object()) return out;
  auto m = obj->find("metadata");
  if (m == obj->end() || !m->is_object()) return out;
  auto refs = m->find("ownerReferences");
  if (refs == m->end() || !refs->is_array()) return out;
  for (const auto& r : *refs)
    if (r.is_object() && r.contains("uid") && r["uid"].is_string()) out.push_back(r["uid"].get<std::string>());
  return out;
}
}  // namespace

void Store::index_owners(const std::string& gr, const std::string& key, const json* before, const json* after) {
  for (const auto& uid : owner_uids(before))
    if (auto it = owned_.find(uid); it != owned_.end()) {
      it->second.erase({gr, key});
      if (it->second.empty()) owned_.erase(it);
    }
  for (const auto& uid : owner_uids(after)) owned_[uid].emplace(gr, key);
}

void Store::record(EventType type, const std::string& gr, const json& obj, ObjPtr ptr, ObjPtr prev) {
  Event ev{rv_, type, gr, meta_str(obj, "namespace"), meta_str(obj, "name"), std::move(ptr), std::move(prev)};
  index_owners(gr, key_of(ev.ns, ev.name), ev.prev.get(), type == EventType::kDeleted ? nullptr : ev.obj.get());
  journal(type == EventType::kDeleted
              ? json{{"rv", rv_}, {"op", "del"}, {"gr", gr}, {"ns", ev.ns}, {"name", ev.name}}
              : json{{"rv", rv_}, {"op", "put"}, {"gr", gr}, {"ns", ev.ns}, {"name", ev.name}, {"obj", obj}});
  history_.push_back(std::move(ev));
  while (history_.size() > history_limit_) {
    compacted_rv_ = history_.front().rv;
    history_.pop_front();
  }
  cv_.notify_all();
}

Store::Write Store::create(const std::string& gr, json obj) {
  std::lock_guard lock(mu_);
  auto& objs = objects_[gr];
  const std::string key = key_of(meta_str(obj, "namespace"), meta_str(obj, "name"));
  if (auto it = objs.find(key); it != objs.end()) return {Outcome::kExists, it->second};
  ++rv_;
  obj["metadata"]["resourceVersion"] = std::to_string(rv_);
  auto ptr = std::make_shared<const json>(std::move(obj));
  objs[key] = ptr;
  record(EventType::kAdded, gr, *ptr, ptr, nullptr);
  return {Outcome::kOk, ptr};
}

Store::Write Store::update(const std::string& gr, json obj, uint64_t expected_rv) {
  std::lock_guard lock(mu_);
  auto& objs = objects_[gr];
  const std::string key = key_of(meta_str(obj, "namespace"), meta_str(obj, "name"));
  auto it = objs.find(key);
  if (it == objs.end()) return {Outcome::kNotFound, nullptr};
  if (expected_rv != 0 && std::to_string(expected_rv) != meta_str(*it->second, "resourceVersion"))
    return {Outcome::kConflict, it->second};
  ++rv_;
  obj["metadata"]["resourceVersion"] = std::to_string(rv_);
  auto ptr = std::make_shared<const json>(std::move(obj));
  ObjPtr prev = std::exchange(it->second, ptr);
  record(EventType::kModified, gr, *ptr, ptr, std::move(prev));
  return {Outcome::kOk, ptr};
}

Store::Write Store::remove(const std::string& gr, const std::string& ns, const std::string& name,
                           uint64_t expected_rv) {
  std::lock_guard lock(mu_);
  auto& objs = objects_[gr];
  auto it = objs.find(key_of(ns, name));
  if (it == objs.end()) return {Outcome::kNotFound, nullptr};
  if (expected_rv != 0 && std::to_string(expected_rv) != meta_str(*it->second, "resourceVersion"))
    return {Outcome::kConflict, it->second};
  ++rv_;
  // A delete event carries the object's last state with the deletion's version.
  json last = *it->second;
  last["metadata"]["resourceVersion"] = std::to_string(rv_);
  auto ptr = std::make_shared<const json>(std::move(last));
  ObjPtr prev = it->second;
  objs.erase(it);
  record(EventType::kDeleted, gr, *ptr, ptr, std::move(prev));
  return {Outcome::kOk, ptr};
}

Store::Poll Store::events_since(uint64_t rv) const {
  std::lock_guard lock(mu_);
  Poll p;
  if (rv < compacted_rv_) {
    p.gone = true;
    return p;
  }
  // History is ordered by rv; binary search for the first event after rv.
  auto it = std::upper_bound(history_.begin(), history_.end(), rv,
                             [](uint64_t v, const Event& e) { return v < e.rv; });
  p.events.assign(it, history_.end());
  return p;
}

uint64_t Store::oldest_available_rv() const {
  std::lock_guard lock(mu_);
  return compacted_rv_;
}

bool Store::wait_past(uint64_t rv, std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock lock(mu_);
  return cv_.wait_until(lock, deadline, [&] { return closed_ || rv_ > rv; }) && !closed_;
}

void Store::compact() {
  std::lock_guard lock(mu_);
  history_.clear();
  compacted_rv_ = rv_;
  cv_.notify_all();
}

void Store::close() {
  std::lock_guard lock(mu_);
  closed_ = true;
  cv_.notify_all();
}

bool Store::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

}  // namespace kl
