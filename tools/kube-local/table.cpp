#include "kube-local/table.h"

#include "common/timefmt.h"

namespace kl {
namespace {

struct Step {
  enum class Kind { kField, kIndex, kAll, kFilter };
  Step(Kind k, std::string n) : kind(k), name(std::move(n)) {}
  Kind kind;
  std::string name;
  long index = 0;
  std::string filter_path;  // relative to @
  std::string filter_value;
  bool filter_negated = false;
};

std::vector<Step> parse_path(const std::string& p) {
  std::vector<Step> steps;
  size_t i = 0;
  if (!p.empty() && p[0] == '{') i = 1;  // tolerate {.a.b}
  auto end = p.size();
  if (end > 0 && p[end - 1] == '}') --end;
  while (i < end) {
    if (p[i] == '.') {
      ++i;
      size_t j = i;
      while (j < end && p[j] != '.' && p[j] != '[') ++j;
      if (j > i) steps.push_back({Step::Kind::kField, p.substr(i, j - i)});
      i = j;
    } else if (p[i] == '[') {
      const size_t close = p.find(']', i);
      if (close == std::string::npos) break;
      std::string in = p.substr(i + 1, close - i - 1);
      // A filter may contain ']' inside quotes; find the matching ")]".
      if (in.starts_with("?(")) {
        const size_t fclose = p.find(")]", i);
        if (fclose == std::string::npos) break;
        in = p.substr(i + 3, fclose - i - 3);  // @.type=="Ready"
        Step s{Step::Kind::kFilter, ""};
        size_t op = in.find("==");
        if (op == std::string::npos) {
          op = in.find("!=");
          s.filter_negated = true;
        }
        if (op != std::string::npos) {
          s.filter_path = in.substr(0, op);
          if (s.filter_path.starts_with("@")) s.filter_path = s.filter_path.substr(1);
          std::string v = in.substr(op + 2);
          if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'')) v = v.substr(1, v.size() - 2);
          s.filter_value = v;
        }
        steps.push_back(s);
        i = fclose + 2;
        continue;
      }
      if (in == "*") {
        steps.push_back({Step::Kind::kAll, ""});
      } else if (!in.empty() && (in.front() == '\'' || in.front() == '"')) {
        steps.push_back({Step::Kind::kField, in.substr(1, in.size() - 2)});
      } else {
        Step s{Step::Kind::kIndex, ""};
        try {
          s.index = std::stol(in);
        } catch (...) {
          break;
        }
        steps.push_back(s);
      }
      i = close + 1;
    } else {
      size_t j = i;
      while (j < end && p[j] != '.' && p[j] != '[') ++j;
      steps.push_back({Step::Kind::kField, p.substr(i, j - i)});
      i = j;
    }
  }
  return steps;
}

std::string scalar_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

}  // namespace

std::vector<json> eval_jsonpath(const json& obj, const std::string& path) {
  std::vector<json> cur{obj};
  for (const auto& step : parse_path(path)) {
    std::vector<json> next;
    for (const auto& v : cur) {
      switch (step.kind) {
        case Step::Kind::kField:
          if (v.is_object() && v.contains(step.name)) next.push_back(v[step.name]);
          break;
        case Step::Kind::kIndex:
          if (v.is_array()) {
            const long n = static_cast<long>(v.size());
            const long idx = step.index < 0 ? n + step.index : step.index;
            if (idx >= 0 && idx < n) next.push_back(v[static_cast<size_t>(idx)]);
          }
          break;
        case Step::Kind::kAll:
          if (v.is_array() || v.is_object())
            for (const auto& e : v) next.push_back(e);
          break;
        case Step::Kind::kFilter:
          if (v.is_array())
            for (const auto& e : v) {
              const auto got = eval_jsonpath(e, step.filter_path);
              const bool eq = !got.empty() && scalar_text(got[0]) == step.filter_value;
              if (eq != step.filter_negated) next.push_back(e);
            }
          break;
      }
    }
    cur = std::move(next);
  }
  return cur;
}

namespace {

struct Column {
  std::string name, type, format, description, json_path;
  int priority = 0;
};

std::string age_of(const json& obj, std::chrono::system_clock::time_point now) {
  const auto ts = obj["metadata"].value("creationTimestamp", "");
  const auto t = bo::parse_rfc3339(ts);
  if (!t) return "<unknown>";
  return bo::human_duration(std::chrono::duration_cast<std::chrono::seconds>(now - *t));
}

std::string cell_text(const json& v, const std::string& type, std::chrono::system_clock::time_point now) {
  if (type == "date" && v.is_string()) {
    if (auto t = bo::parse_rfc3339(v.get<std::string>()))
      return bo::human_duration(std::chrono::duration_cast<std::chrono::seconds>(now - *t));
  }
  return scalar_text(v);
}

std::string condition_status(const json& obj, const std::string& type) {
  for (const auto& c : obj.value("status", json::object()).value("conditions", json::array()))
    if (c.value("type", "") == type) return c.value("status", "");
  return "";
}

// Columns for the built-in kinds, following kube-apiserver's printers closely
// enough for `kubectl get` to read naturally.
std::vector<std::pair<Column, std::function<json(const json&)>>> builtin_columns(
    const ResourceType& t, std::chrono::system_clock::time_point now) {
  using Fn = std::function<json(const json&)>;
  std::vector<std::pair<Column, Fn>> cols;
  auto col = [&](std::string name, Fn fn, std::string type = "string") {
    cols.push_back({Column{std::move(name), std::move(type), "", "", ""}, std::move(fn)});
  };
  col("Name", [](const json& o) { return o["metadata"].value("name", ""); });
  const auto& k = t.kind;
  if (t.group.empty() && k == "Namespace") {
    col("Status", [](const json& o) { return o.value("status", json::object()).value("phase", "Active"); });
  } else if (t.group.empty() && k == "Secret") {
    col("Type", [](const json& o) { return o.value("type", "Opaque"); });
    col("Data", [](const json& o) { return o.value("data", json::object()).size(); }, "integer");
  } else if (t.group.empty() && k == "ConfigMap") {
    col("Data", [](const json& o) { return o.value("data", json::object()).size() + o.value("binaryData", json::object()).size(); }, "integer");
  } else if (t.group.empty() && k == "Pod") {
    col("Ready", [](const json& o) {
      const auto cs = o.value("status", json::object()).value("containerStatuses", json::array());
      size_t ready = 0;
      for (const auto& c : cs) ready += c.value("ready", false) ? 1 : 0;
      const size_t total = o.value("spec", json::object()).value("containers", json::array()).size();
      return std::to_string(ready) + "/" + std::to_string(total);
    });
    col("Status", [](const json& o) {
      // printPod: a Pod being deleted that has not terminated shows as Terminating.
      const std::string phase = o.value("status", json::object()).value("phase", "Pending");
      const bool deleting = o["metadata"].contains("deletionTimestamp") && !o["metadata"]["deletionTimestamp"].is_null();
      return deleting && phase != "Succeeded" && phase != "Failed" ? std::string("Terminating") : phase;
    });
    col("Restarts", [](const json&) { return 0; }, "integer");
  } else if (t.group == "batch" && k == "Job") {
    col("Status", [](const json& o) {
      if (condition_status(o, "Complete") == "True") return std::string("Complete");
      if (condition_status(o, "Failed") == "True") return std::string("Failed");
      if (o.value("spec", json::object()).value("suspend", false)) return std::string("Suspended");
      return std::string("Running");
    });
    col("Completions", [](const json& o) {
      const auto st = o.value("status", json::object());
      return std::to_string(st.value("succeeded", 0)) + "/" +
             std::to_string(o.value("spec", json::object()).value("completions", 1));
    });
    col("Duration", [now](const json& o) {
      const auto st = o.value("status", json::object());
      const auto start = bo::parse_rfc3339(st.value("startTime", ""));
      if (!start) return std::string();
      const auto end = bo::parse_rfc3339(st.value("completionTime", "")).value_or(now);
      return bo::human_duration(std::chrono::duration_cast<std::chrono::seconds>(end - *start));
    });
  } else if (t.group == "apps") {
    col("Ready", [](const json& o) {
      const auto st = o.value("status", json::object());
      return std::to_string(st.value("readyReplicas", 0)) + "/" +
             std::to_string(o.value("spec", json::object()).value("replicas", 1));
    });
  } else if (t.group.empty() && k == "Service") {
    col("Type", [](const json& o) { return o.value("spec", json::object()).value("type", "ClusterIP"); });
    col("Cluster-IP", [](const json& o) { return o.value("spec", json::object()).value("clusterIP", "<none>"); });
  } else if (k == "Event") {
    col("Type", [](const json& o) { return o.value("type", ""); });
    col("Reason", [](const json& o) { return o.value("reason", ""); });
    col("Message", [](const json& o) { return o.value("message", o.value("note", "")); });
  } else if (t.group == "coordination.k8s.io") {
    col("Holder", [](const json& o) { return o.value("spec", json::object()).value("holderIdentity", ""); });
  } else if (t.group == "apiextensions.k8s.io") {
    cols.push_back({Column{"Created At", "date", "", "", ""},
                    [](const json& o) { return o["metadata"].value("creationTimestamp", ""); }});
    return cols;
  }
  col("Age", [now](const json& o) { return age_of(o, now); });
  return cols;
}

}  // namespace

json to_table(const ResourceType& type, const std::vector<ObjPtr>& objects, std::chrono::system_clock::time_point now,
              const std::string& include_object, const json& list_metadata) {
  json defs = json::array();
  json rows = json::array();
  // includeObject: None (no object), Metadata (the default), or Object (all of it: kubectl --sort-by needs it).
  auto partial = [&](const json& o) {
    if (include_object == "Object") return o;
    return json{{"kind", "PartialObjectMetadata"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", o["metadata"]}};
  };
  if (type.custom) {
    defs.push_back({{"name", "Name"}, {"type", "string"}, {"format", "name"}, {"description", "Name"}, {"priority", 0}});
    json cols = type.printer_columns;
    if (cols.empty())
      cols = json::array({{{"name", "Age"}, {"type", "date"}, {"jsonPath", ".metadata.creationTimestamp"}}});
    for (const auto& c : cols)
      defs.push_back({{"name", c.value("name", "")}, {"type", c.value("type", "string")},
                      {"format", c.value("format", "")}, {"description", c.value("description", "")},
                      {"priority", c.value("priority", 0)}});
    for (const auto& p : objects) {
      json cells = json::array({(*p)["metadata"].value("name", "")});
      for (const auto& c : cols) {
        const auto got = eval_jsonpath(*p, c.value("jsonPath", ""));
        if (got.empty()) {
          cells.push_back(nullptr);
        } else {
          cells.push_back(cell_text(got[0], c.value("type", "string"), now));
        }
      }
      json row{{"cells", cells}};
      if (include_object != "None") row["object"] = partial(*p);
      rows.push_back(std::move(row));
    }
  } else {
    const auto cols = builtin_columns(type, now);
    for (const auto& [c, fn] : cols)
      defs.push_back({{"name", c.name}, {"type", c.type}, {"format", c.name == "Name" ? "name" : ""},
                      {"description", c.name}, {"priority", 0}});
    for (const auto& p : objects) {
      json cells = json::array();
      for (const auto& [c, fn] : cols) cells.push_back(fn(*p));
      json row{{"cells", cells}};
      if (include_object != "None") row["object"] = partial(*p);
      rows.push_back(std::move(row));
    }
  }
  return json{{"kind", "Table"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", list_metadata},
              {"columnDefinitions", defs}, {"rows", rows}};
}

}  // namespace kl
