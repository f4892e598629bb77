#include "kube-local/schema.h"

#include "kube-local/cel.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <unordered_map>

namespace kl {
namespace {

std::string join(const std::string& path, const std::string& key) { return path.empty() ? key : path + "." + key; }

bool preserves_unknown(const json& schema) {
  return schema.value("x-kubernetes-preserve-unknown-fields", false) ||
         schema.value("x-kubernetes-embedded-resource", false);
}

void prune_at(json& obj, const json& schema, const std::string& path, std::vector<std::string>* unknown,
              bool root) {
  if (!schema.is_object()) return;
  if (obj.is_object()) {
    const bool keep_all = preserves_unknown(schema) && !schema.contains("properties");
    const json* props = schema.contains("properties") ? &schema["properties"] : nullptr;
    const json* addl = schema.contains("additionalProperties") && schema["additionalProperties"].is_object()
                           ? &schema["additionalProperties"]
                           : nullptr;
    for (auto it = obj.begin(); it != obj.end();) {
      const std::string key = it.key();
      if (root && (key == "apiVersion" || key == "kind" || key == "metadata")) {
        ++it;
        continue;
      }
      const json* sub = nullptr;
      if (props && props->contains(key)) sub = &(*props)[key];
      else if (addl) sub = addl;
      if (it.value().is_null() && sub && !sub->value("nullable", false)) {
        it = obj.erase(it);  // null for a non-nullable field is dropped, as the API server does
        continue;
      }
      if (sub) {
        prune_at(it.value(), *sub, join(path, key), unknown, false);
        ++it;
      } else if (keep_all || preserves_unknown(schema)) {
        ++it;
      } else {
        if (unknown) unknown->push_back(join(path, key));
        it = obj.erase(it);
      }
    }
  } else if (obj.is_array() && schema.contains("items")) {
    for (size_t i = 0; i < obj.size(); ++i)
      prune_at(obj[i], schema["items"], path + "[" + std::to_string(i) + "]", unknown, false);
  }
}

void defaults_at(json& obj, const json& schema) {
  if (!schema.is_object()) return;
  if (obj.is_object()) {
    if (auto props = schema.find("properties"); props != schema.end()) {
      for (const auto& [key, sub] : props->items()) {
        if (!obj.contains(key) && sub.contains("default")) obj[key] = sub["default"];
        if (obj.contains(key)) defaults_at(obj[key], sub);
      }
    }
    if (auto addl = schema.find("additionalProperties"); addl != schema.end() && addl->is_object())
      for (auto& [key, value] : obj.items()) defaults_at(value, *addl);
  } else if (obj.is_array() && schema.contains("items")) {
    for (auto& item : obj) defaults_at(item, schema["items"]);
  }
}

std::string type_of(const json& v) {
  if (v.is_null()) return "null";
  if (v.is_boolean()) return "boolean";
  if (v.is_number_integer()) return "integer";
  if (v.is_number()) return "number";
  if (v.is_string()) return "string";
  if (v.is_array()) return "array";
  return "object";
}

std::string quote(const json& v) { return v.dump(); }

bool type_ok(const json& v, const std::string& type) {
  if (type.empty()) return true;
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "number") return v.is_number();
  if (type == "integer")
    return v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
  return true;
}

bool format_ok(const std::string& format, const std::string& s) {
  static const std::regex date_time(
      R"(^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$)");
  static const std::regex byte_re(R"(^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$)");
  static const std::regex date(R"(^\d{4}-\d{2}-\d{2}$)");
  if (format == "date-time") return std::regex_match(s, date_time);
  if (format == "date") return std::regex_match(s, date);
  if (format == "byte") return std::regex_match(s, byte_re);
  return true;
}

// A value as field.Error prints it (%#v): a string quoted, a map of the key fields as
// map[string]interface {}{"k":v} (fmt sorts map keys, as nlohmann's object does).
std::string go_value(const json& v) {
  if (!v.is_object()) return v.dump();
  std::string out = "map[string]interface {}{";
  bool first = true;
  for (const auto& [k, x] : v.items()) {
    out += (first ? "" : ", ") + json(k).dump() + ":" + go_value(x);
    first = false;
  }
  return out + "}";
}

// apiextensions-apiserver/pkg/apiserver/schema/listtype/validation.go
// ValidateListSetsAndMaps: a list-type set holds no element twice, a list-type
// map no two elements with the same key fields; each second appearance is
// field.Duplicate(path[i], value) (the key fields for a map).
void validate_list_type(const json& v, const json& schema, const std::string& path, std::vector<FieldError>& errs) {
  const std::string lt = schema.value("x-kubernetes-list-type", "");
  if (lt != "set" && lt != "map") return;
  std::vector<json> keys;
  for (size_t i = 0; i < v.size(); ++i) {
    if (lt == "set") {
      keys.push_back(v[i]);
      continue;
    }
    if (!v[i].is_object() && !v[i].is_null()) {
      const std::string f = path + "[" + std::to_string(i) + "]";
      errs.push_back({"FieldValueInvalid", f, f + ": Invalid value: " + v[i].dump() +
                                                  ": must be an object for an array of list-type map"});
      return;
    }
    json key = json::object();
    for (const auto& k : schema.value("x-kubernetes-list-map-keys", json::array()))
      if (k.is_string() && v[i].is_object() && v[i].contains(k.get<std::string>()))
        key[k.get<std::string>()] = v[i][k.get<std::string>()];
    keys.push_back(std::move(key));
  }
  std::map<std::string, int> seen;
  for (size_t i = 0; i < keys.size(); ++i)
    if (++seen[keys[i].dump()] == 2) {
      const std::string f = path + "[" + std::to_string(i) + "]";
      errs.push_back({"FieldValueDuplicate", f, f + ": Duplicate value: " + go_value(keys[i])});
    }
}

// A CRD's patterns compiled once: std::regex construction cost more than the
// match. Matching a const std::regex from several threads is safe. Bounded,
// since CRDs come and go.
std::shared_ptr<const std::regex> compiled_pattern(const std::string& pattern) {
  static std::mutex mu;
  static std::unordered_map<std::string, std::shared_ptr<const std::regex>> cache;
  std::lock_guard lock(mu);
  if (auto it = cache.find(pattern); it != cache.end()) return it->second;
  if (cache.size() >= 1024) cache.clear();
  auto re = std::make_shared<const std::regex>(pattern);  // throws std::regex_error as before
  cache.emplace(pattern, re);
  return re;
}

void validate_at(const json& v, const json& schema, const std::string& path, std::vector<FieldError>& errs,
                 bool root) {
  if (!schema.is_object()) return;
  const std::string field = path.empty() ? "<root>" : path;
  if (v.is_null()) {
    if (!schema.value("nullable", false))
      errs.push_back({"FieldValueTypeInvalid", field,
                      field + ": Invalid value: \"null\": " + field + " in body must be of type " +
                          schema.value("type", "object") + ": \"null\""});
    return;
  }
  const bool int_or_string = schema.value("x-kubernetes-int-or-string", false);
  if (int_or_string) {
    if (!v.is_number_integer() && !v.is_string())
      errs.push_back({"FieldValueTypeInvalid", field,
                      field + ": Invalid value: \"" + type_of(v) + "\": " + field +
                          " in body must be of type integer or string: \"" + type_of(v) + "\""});
    // A string still meets the node's value validations (maxLength, pattern), as
    // kube-openapi's validator applies them to whatever type the value has.
    if (!v.is_string()) return;
  }
  const std::string type = schema.value("type", "");
  if (!int_or_string && !type_ok(v, type)) {
    errs.push_back({"FieldValueTypeInvalid", field,
                    field + ": Invalid value: \"" + type_of(v) + "\": " + field + " in body must be of type " +
                        type + ": \"" + type_of(v) + "\""});
    return;
  }
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array()) {
    bool found = false;
    for (const auto& x : *e) found = found || x == v;
    if (!found) {
      std::string supported;
      for (const auto& x : *e) supported += (supported.empty() ? "" : ", ") + quote(x);
      errs.push_back({"FieldValueNotSupported", field,
                      field + ": Unsupported value: " + quote(v) + ": supported values: " + supported});
    }
  }
  if (v.is_number()) {
    const double d = v.get<double>();
    if (schema.contains("minimum")) {
      const double m = schema["minimum"].get<double>();
      const bool excl = schema.value("exclusiveMinimum", false);
      if (excl ? d <= m : d < m)
        errs.push_back({"FieldValueInvalid", field,
                        field + ": Invalid value: " + v.dump() + ": " + field + " in body should be greater than " +
                            (excl ? "" : "or equal to ") + schema["minimum"].dump()});
    }
    if (schema.contains("maximum")) {
      const double m = schema["maximum"].get<double>();
      const bool excl = schema.value("exclusiveMaximum", false);
      if (excl ? d >= m : d > m)
        errs.push_back({"FieldValueInvalid", field,
                        field + ": Invalid value: " + v.dump() + ": " + field + " in body should be less than " +
                            (excl ? "" : "or equal to ") + schema["maximum"].dump()});
    }
  }
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    // kube-openapi's validate.MaxLength/MinLength count characters (utf8.RuneCountInString), not bytes.
    const size_t chars = static_cast<size_t>(
        std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
    if (schema.contains("maxLength") && chars > schema["maxLength"].get<size_t>())
      errs.push_back({"FieldValueTooLong", field,
                      field + ": Too long: may not be more than " + schema["maxLength"].dump() + " bytes"});
    if (schema.contains("minLength") && chars < schema["minLength"].get<size_t>())
      errs.push_back({"FieldValueInvalid", field,
                      field + ": Invalid value: " + quote(v) + ": " + field + " in body should be at least " +
                          schema["minLength"].dump() + " chars long"});
    if (auto p = schema.find("pattern"); p != schema.end() && p->is_string()) {
      try {
        if (!std::regex_search(s, *compiled_pattern(p->get<std::string>())))
          errs.push_back({"FieldValueInvalid", field,
                          field + ": Invalid value: " + quote(v) + ": " + field + " in body should match '" +
                              p->get<std::string>() + "'"});
      } catch (const std::regex_error&) {
        // An unsupported pattern was already reported when the CRD was stored.
      }
    }
    if (auto f = schema.find("format"); f != schema.end() && f->is_string() && !format_ok(*f, s))
      errs.push_back({"FieldValueInvalid", field,
                      field + ": Invalid value: " + quote(v) + ": " + field + " in body must be of type " +
                          f->get<std::string>() + ": " + quote(v)});
  }
  if (v.is_array()) {
    if (schema.contains("maxItems") && v.size() > schema["maxItems"].get<size_t>())
      errs.push_back({"FieldValueTooMany", field,
                      field + ": Too many: " + std::to_string(v.size()) + ": must have at most " +
                          schema["maxItems"].dump() + " items"});
    if (schema.contains("minItems") && v.size() < schema["minItems"].get<size_t>())
      errs.push_back({"FieldValueInvalid", field,
                      field + ": Invalid value: " + std::to_string(v.size()) + ": " + field +
                          " in body should have at least " + schema["minItems"].dump() + " items"});
    if (schema.contains("items"))
      for (size_t i = 0; i < v.size(); ++i)
        validate_at(v[i], schema["items"], path + "[" + std::to_string(i) + "]", errs, false);
    validate_list_type(v, schema, path, errs);
  }
  if (v.is_object()) {
    if (auto req = schema.find("required"); req != schema.end() && req->is_array())
      for (const auto& r : *req) {
        if (r.is_string() && !v.contains(r.get<std::string>())) {
          const std::string f = join(path, r.get<std::string>());
          errs.push_back({"FieldValueRequired", f, f + ": Required value"});
        }
      }
    // By reference: a copy of each object node's properties made every
    // validation cost the size of the whole schema (a third of kube-local's
    // time under status writes).
    static const json kNoProperties = json::object();
    const auto found = schema.find("properties");
    const json& props = found != schema.end() && found->is_object() ? *found : kNoProperties;
    const json* addl = schema.contains("additionalProperties") && schema["additionalProperties"].is_object()
                           ? &schema["additionalProperties"]
                           : nullptr;
    for (const auto& [key, sub] : v.items()) {
      if (root && (key == "apiVersion" || key == "kind" || key == "metadata")) continue;
      if (auto ps = props.find(key); ps != props.end()) validate_at(sub, *ps, join(path, key), errs, false);
      else if (addl) validate_at(sub, *addl, join(path, key), errs, false);
    }
    if (schema.contains("maxProperties") && v.size() > schema["maxProperties"].get<size_t>())
      errs.push_back({"FieldValueTooMany", field,
                      field + ": Too many: " + std::to_string(v.size()) + ": must have at most " +
                          schema["maxProperties"].dump() + " items"});
  }
}

void cel_at(const json& v, const json* old, const json& schema, const std::string& path, std::vector<FieldError>& errs) {
  if (!schema.is_object()) return;
  const std::string field = path.empty() ? "<root>" : path;
  static const json kNone = json::array();
  const auto rules = schema.find("x-kubernetes-validations");
  for (const auto& rule : rules != schema.end() && rules->is_array() ? *rules : kNone) {
    const std::string expr = rule.value("rule", "");
    const bool transition = expr.find("oldSelf") != std::string::npos;
    if (transition && !old) continue;
    std::map<std::string, json> vars{{"self", v}};
    if (old) vars["oldSelf"] = *old;
    auto r = cel::evaluate(expr, vars);
    std::string f = field;
    if (rule.contains("fieldPath") && rule["fieldPath"].is_string()) {
      std::string fp = rule["fieldPath"].get<std::string>();
      f = path + (fp.starts_with(".") ? fp : "." + fp);
    }
    const std::string shown = v.is_object() ? "\"object\"" : v.is_array() ? "\"array\"" : v.dump();
    if (!r) {
      errs.push_back({"FieldValueInvalid", f, f + ": Invalid value: " + shown + ": rule compile/evaluation error: " + r.error()});
    } else if (!r->is_boolean() || !r->get<bool>()) {
      const std::string msg = rule.value("message", "failed rule: " + expr);
      errs.push_back({"FieldValueInvalid", f, f + ": Invalid value: " + shown + ": " + msg});
    }
  }
  if (v.is_object()) {
    static const json kNoProperties = json::object();
    const auto found = schema.find("properties");  // by reference, as in validate_at
    const json& props = found != schema.end() && found->is_object() ? *found : kNoProperties;
    for (const auto& [key, sub] : props.items()) {
      if (!v.contains(key)) continue;
      const json* o = old && old->is_object() && old->contains(key) ? &(*old)[key] : nullptr;
      cel_at(v[key], o, sub, path.empty() ? key : path + "." + key, errs);
    }
    if (auto addl = schema.find("additionalProperties"); addl != schema.end() && addl->is_object())
      for (const auto& [key, val] : v.items()) {
        const json* o = old && old->is_object() && old->contains(key) ? &(*old)[key] : nullptr;
        cel_at(val, o, *addl, path + "[" + key + "]", errs);
      }
  } else if (v.is_array() && schema.contains("items")) {
    for (size_t i = 0; i < v.size(); ++i) cel_at(v[i], nullptr, schema["items"], path + "[" + std::to_string(i) + "]", errs);
  }
}

}  // namespace

std::vector<FieldError> validate_cel(const json& obj, const json* old, const json& schema) {
  std::vector<FieldError> errs;
  cel_at(obj, old, schema, "", errs);
  return errs;
}

void prune(json& obj, const json& schema, std::vector<std::string>* unknown, bool root) {
  prune_at(obj, schema, "", unknown, root);
}

void apply_defaults(json& obj, const json& schema) { defaults_at(obj, schema); }

std::vector<FieldError> validate_schema(const json& obj, const json& schema, bool root) {
  std::vector<FieldError> errs;
  validate_at(obj, schema, "", errs, root);
  return errs;
}

}  // namespace kl
