#include "kube-local/yaml_json.h"

#include <cerrno>
#include <cstdlib>
#include <regex>
#include <set>

#include <yaml-cpp/yaml.h>

namespace kl {
namespace {

using nlohmann::json;

json scalar(const YAML::Node& n) {
  const std::string& v = n.Scalar();
  if (n.Tag() != "?") return v;  // quoted, or explicitly tagged: a string
  static const std::set<std::string> kTrue = {"y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
  static const std::set<std::string> kFalse = {"n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
  if (kTrue.count(v)) return true;
  if (kFalse.count(v)) return false;
  if (v.empty() || v == "~" || v == "null" || v == "Null" || v == "NULL") return nullptr;
  // resolve.go: strconv.ParseInt(plain, 0, 64) (0x, 0o, 0b, a leading 0 for octal, _ between digits), then ParseFloat.
  std::string digits;
  for (char c : v)
    if (c != '_') digits += c;
  errno = 0;
  char* end = nullptr;
  const long long i = std::strtoll(digits.c_str(), &end, 0);
  if (!digits.empty() && *end == '\0' && errno == 0 && digits.find_first_of(".eE") == std::string::npos) return i;
  static const std::regex kFloat(R"([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?)");
  if (std::regex_match(v, kFloat)) return std::strtod(v.c_str(), nullptr);
  return v;
}

json convert(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar:
      return scalar(n);
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& item : n) a.push_back(convert(item));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : n) {
        if (!kv.first.IsScalar()) throw std::runtime_error("map keys must be scalars");
        // sigs.k8s.io/yaml: a key that resolves to a bool or number is written as its JSON text (on: -> "true").
        const json key = scalar(kv.first);
        o[key.is_string() ? key.get<std::string>() : key.dump()] = convert(kv.second);
      }
      return o;
    }
    default:
      return nullptr;
  }
}

}  // namespace

std::optional<nlohmann::json> yaml_to_json(const std::string& text, std::string* error) {
  try {
    return convert(YAML::Load(text));
  } catch (const std::exception& e) {
    if (error) *error = e.what();
    return std::nullopt;
  }
}

}  // namespace kl
