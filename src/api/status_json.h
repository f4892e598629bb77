// Reading and writing a typed status (backup_policy_status.h,
// restore_request_status.h) as the API server stores it: a field of the
// wrong type reads as absent, a list entry of the wrong type is dropped, and
// an absent field is not written. Shared by the status types of both kinds.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bo::api::status_json {

class Reader {
 public:
  explicit Reader(const nlohmann::json& o) : o_(o) {}
  [[nodiscard]] const nlohmann::json* find(const char* key) const {
    if (!o_.is_object()) return nullptr;
    const auto it = o_.find(key);
    return it == o_.end() ? nullptr : &*it;
  }
  [[nodiscard]] std::optional<std::string> text(const char* key) const {
    const nlohmann::json* v = find(key);
    return v && v->is_string() ? std::optional(v->get<std::string>()) : std::nullopt;
  }
  [[nodiscard]] std::optional<int64_t> integer(const char* key) const {
    const nlohmann::json* v = find(key);
    return v && v->is_number_integer() ? std::optional(v->get<int64_t>()) : std::nullopt;
  }
  // A schema `number`: an integer or a float.
  [[nodiscard]] std::optional<double> number(const char* key) const {
    const nlohmann::json* v = find(key);
    return v && v->is_number() ? std::optional(v->get<double>()) : std::nullopt;
  }
  [[nodiscard]] std::optional<bool> boolean(const char* key) const {
    const nlohmann::json* v = find(key);
    return v && v->is_boolean() ? std::optional(v->get<bool>()) : std::nullopt;
  }
  [[nodiscard]] const nlohmann::json* object(const char* key) const {
    const nlohmann::json* v = find(key);
    return v && v->is_object() ? v : nullptr;
  }
  // A list of objects, each read by `read`; entries that are not objects are dropped.
  template <class F>
  [[nodiscard]] auto objects(const char* key, F read) const
      -> std::optional<std::vector<decltype(read(nlohmann::json()))>> {
    const nlohmann::json* v = find(key);
    if (!v || !v->is_array()) return std::nullopt;
    std::vector<decltype(read(nlohmann::json()))> out;
    for (const auto& e : *v)
      if (e.is_object()) out.push_back(read(e));
    return out;
  }
  [[nodiscard]] std::optional<std::vector<std::string>> texts(const char* key) const {
    const nlohmann::json* v = find(key);
    return v ? texts_of(*v) : std::nullopt;
  }
  // A list of strings; entries that are not strings are dropped.
  [[nodiscard]] static std::optional<std::vector<std::string>> texts_of(const nlohmann::json& v) {
    if (!v.is_array()) return std::nullopt;
    std::vector<std::string> out;
    for (const auto& e : v)
      if (e.is_string()) out.push_back(e.get<std::string>());
    return out;
  }

 private:
  const nlohmann::json& o_;
};

template <class T>
void put(nlohmann::json& o, const char* key, const std::optional<T>& v) {
  if (v) o[key] = *v;
}

// metav1.Conditions with their known fields of the right type (the helpers in
// reconcile/conditions.h read them with defaults, which throw on a wrong
// type); entries that are not objects are dropped. None when `v` is not a list.
[[nodiscard]] std::optional<nlohmann::json> conditions_from_json(const nlohmann::json* v);

}  // namespace bo::api::status_json
