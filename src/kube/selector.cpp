#include "kube/selector.h"

#include <algorithm>
#include <cctype>

namespace bo::kube {
namespace {

bool valid_key_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/';
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool valid_key(const std::string& k) {
  return !k.empty() && k.size() <= 316 && std::all_of(k.begin(), k.end(), valid_key_char);
}

bool valid_value(const std::string& v) {
  return v.size() <= 63 && std::all_of(v.begin(), v.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
         });
}

// Splits on commas that are not inside parentheses.
std::vector<std::string> split_top(const std::string& text, bool* balanced) {
  std::vector<std::string> out;
  std::string cur;
  int depth = 0;
  *balanced = true;
  for (char c : text) {
    if (c == '(') ++depth;
    if (c == ')') --depth;
    if (depth < 0) *balanced = false;
    if (c == ',' && depth == 0) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (depth != 0) *balanced = false;
  out.push_back(cur);
  return out;
}

}  // namespace

std::optional<LabelSelector> LabelSelector::parse(const std::string& text, std::string* error) {
  LabelSelector sel;
  auto fail = [&](const std::string& msg) -> std::optional<LabelSelector> {
    if (error) *error = msg;
    return std::nullopt;
  };
  if (trim(text).empty()) return sel;
  bool balanced = true;
  for (std::string term : split_top(text, &balanced)) {
    if (!balanced) return fail("unbalanced parentheses in label selector \"" + text + "\"");
    term = trim(term);
    if (term.empty()) return fail("empty term in label selector \"" + text + "\"");
    Requirement r;
    if (term[0] == '!') {
      r.key = trim(term.substr(1));
      r.op = Requirement::Op::kDoesNotExist;
    } else if (auto p = term.find("!="); p != std::string::npos) {
      r.key = trim(term.substr(0, p));
      r.op = Requirement::Op::kNotEquals;
      r.values = {trim(term.substr(p + 2))};
    } else if (auto p2 = term.find("=="); p2 != std::string::npos) {
      r.key = trim(term.substr(0, p2));
      r.values = {trim(term.substr(p2 + 2))};
    } else if (auto p3 = term.find('='); p3 != std::string::npos) {
      r.key = trim(term.substr(0, p3));
      r.values = {trim(term.substr(p3 + 1))};
    } else if (auto open = term.find('('); open != std::string::npos) {
      const auto close = term.rfind(')');
      if (close == std::string::npos || close != term.size() - 1)
        return fail("missing ')' in label selector term \"" + term + "\"");
      std::string head = trim(term.substr(0, open));
      const auto sp = head.find_last_of(" \t");
      if (sp == std::string::npos) return fail("expected 'in' or 'notin' in \"" + term + "\"");
      const std::string op = head.substr(sp + 1);
      r.key = trim(head.substr(0, sp));
      if (op == "in") {
        r.op = Requirement::Op::kIn;
      } else if (op == "notin") {
        r.op = Requirement::Op::kNotIn;
      } else {
        return fail("unknown operator \"" + op + "\" in label selector");
      }
      bool ok = true;
      for (auto v : split_top(term.substr(open + 1, close - open - 1), &ok)) r.values.push_back(trim(v));
    } else {
      r.key = term;
      r.op = Requirement::Op::kExists;
    }
    if (!valid_key(r.key)) return fail("invalid label key \"" + r.key + "\"");
    for (const auto& v : r.values)
      if (!valid_value(v)) return fail("invalid label value \"" + v + "\" for key \"" + r.key + "\"");
    sel.reqs_.push_back(std::move(r));
  }
  return sel;
}

std::optional<LabelSelector> LabelSelector::from_json(const nlohmann::json& j, std::string* error) {
  LabelSelector sel;
  if (j.is_null()) return sel;
  if (!j.is_object()) {
    if (error) *error = "selector must be an object";
    return std::nullopt;
  }
  if (auto it = j.find("matchLabels"); it != j.end() && it->is_object()) {
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) {
        if (error) *error = "matchLabels." + k + " must be a string";
        return std::nullopt;
      }
      sel.reqs_.push_back({k, Requirement::Op::kEquals, {v.get<std::string>()}});
    }
  }
  if (auto it = j.find("matchExpressions"); it != j.end() && it->is_array()) {
    for (const auto& e : *it) {
      Requirement r;
      r.key = e.value("key", "");
      const std::string op = e.value("operator", "");
      if (op == "In") r.op = Requirement::Op::kIn;
      else if (op == "NotIn") r.op = Requirement::Op::kNotIn;
      else if (op == "Exists") r.op = Requirement::Op::kExists;
      else if (op == "DoesNotExist") r.op = Requirement::Op::kDoesNotExist;
      else {
        if (error) *error = "unknown matchExpressions operator \"" + op + "\"";
        return std::nullopt;
      }
      if (auto vs = e.find("values"); vs != e.end() && vs->is_array())
        for (const auto& v : *vs)
          if (v.is_string()) r.values.push_back(v.get<std::string>());
      sel.reqs_.push_back(std::move(r));
    }
  }
  return sel;
}

bool LabelSelector::matches(const std::map<std::string, std::string>& labels) const {
  for (const auto& r : reqs_) {
    const auto it = labels.find(r.key);
    const bool has = it != labels.end();
    const auto in_values = [&] {
      return has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
    };
    switch (r.op) {
      case Requirement::Op::kEquals:
      case Requirement::Op::kIn:
        if (!in_values()) return false;
        break;
      case Requirement::Op::kNotEquals:
      case Requirement::Op::kNotIn:
        if (in_values()) return false;
        break;
      case Requirement::Op::kExists:
        if (!has) return false;
        break;
      case Requirement::Op::kDoesNotExist:
        if (has) return false;
        break;
    }
  }
  return true;
}

bool LabelSelector::matches(const nlohmann::json& labels_object) const {
  std::map<std::string, std::string> labels;
  if (labels_object.is_object())
    for (const auto& [k, v] : labels_object.items())
      if (v.is_string()) labels[k] = v.get<std::string>();
  return matches(labels);
}

std::string LabelSelector::to_string() const {
  std::string out;
  for (const auto& r : reqs_) {
    if (!out.empty()) out += ",";
    auto list = [&] {
      std::string s;
      for (const auto& v : r.values) s += (s.empty() ? "" : ",") + v;
      return s;
    };
    switch (r.op) {
      case Requirement::Op::kEquals: out += r.key + "=" + r.values.at(0); break;
      case Requirement::Op::kNotEquals: out += r.key + "!=" + r.values.at(0); break;
      case Requirement::Op::kIn: out += r.key + " in (" + list() + ")"; break;
      case Requirement::Op::kNotIn: out += r.key + " notin (" + list() + ")"; break;
      case Requirement::Op::kExists: out += r.key; break;
      case Requirement::Op::kDoesNotExist: out += "!" + r.key; break;
    }
  }
  return out;
}

std::optional<FieldSelector> FieldSelector::parse(const std::string& text, std::string* error) {
  FieldSelector sel;
  if (trim(text).empty()) return sel;
  bool balanced = true;
  for (std::string term : split_top(text, &balanced)) {
    term = trim(term);
    Term t;
    size_t p = term.find("!=");
    size_t len = 2;
    if (p != std::string::npos) {
      t.negated = true;
    } else if ((p = term.find("==")) == std::string::npos) {
      p = term.find('=');
      len = 1;
    }
    if (p == std::string::npos || p == 0) {
      if (error) *error = "invalid field selector term \"" + term + "\": expected field=value";
      return std::nullopt;
    }
    t.field = trim(term.substr(0, p));
    t.value = trim(term.substr(p + len));
    sel.terms_.push_back(std::move(t));
  }
  return sel;
}

}  // namespace bo::kube
