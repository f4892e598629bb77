// Kubernetes label and field selectors: parsing the string forms the API
// accepts (`a=b,c!=d,e in (x,y),!f`) and matching them against objects.
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bo::kube {

struct Requirement {
  enum class Op { kEquals, kNotEquals, kIn, kNotIn, kExists, kDoesNotExist };
  std::string key;
  Op op = Op::kEquals;
  std::vector<std::string> values;
};

class LabelSelector {
 public:
  // nullopt with `error` set when the text is not a valid selector.
  static std::optional<LabelSelector> parse(const std::string& text, std::string* error = nullptr);
  // From a metav1.LabelSelector object ({matchLabels, matchExpressions}).
  static std::optional<LabelSelector> from_json(const nlohmann::json& sel, std::string* error = nullptr);

  [[nodiscard]] bool matches(const std::map<std::string, std::string>& labels) const;
  [[nodiscard]] bool matches(const nlohmann::json& labels_object) const;
  [[nodiscard]] bool empty() const { return reqs_.empty(); }
  [[nodiscard]] const std::vector<Requirement>& requirements() const { return reqs_; }
  [[nodiscard]] std::string to_string() const;

 private:
  std::vector<Requirement> reqs_;
};

// Field selectors support only =, == and != (as the API server does).
class FieldSelector {
 public:
  static std::optional<FieldSelector> parse(const std::string& text, std::string* error = nullptr);
  struct Term {
    std::string field;
    std::string value;
    bool negated = false;
  };
  [[nodiscard]] const std::vector<Term>& terms() const { return terms_; }
  // `lookup` returns the field's value for the object, nullopt when unknown.
  template <class Lookup>
  [[nodiscard]] bool matches(Lookup&& lookup) const {
    for (const auto& t : terms_) {
      auto v = lookup(t.field);
      const std::string value = v ? *v : std::string();
      if ((value == t.value) == t.negated) return false;
    }
    return true;
  }

 private:
  std::vector<Term> terms_;
};

}  // namespace bo::kube
