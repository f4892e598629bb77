#include "metrics/policy_series.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <utility>

namespace bo::metrics {
namespace {

std::string key_of(std::string_view ns, std::string_view policy) {
  std::string k;
  k.reserve(ns.size() + 1 + policy.size());
  k.append(ns).append("/").append(policy);
  return k;
}

}  // namespace

void append_value(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "Nan";
  } else if (std::isinf(v)) {
    out += v < 0 ? "-Inf" : "+Inf";
  } else {
    char buf[32];  // "%.16g" is at most 24 characters
    const int n = std::snprintf(buf, sizeof buf, "%.16g", v);
    out.append(buf, static_cast<size_t>(n));
  }
}

void append_label_value(std::string& out, std::string_view v) {
  for (const char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
}

PolicySeries::PolicySeries(std::vector<FamilyInfo> families) : families_(std::move(families)) {
  for (const auto& f : families_) {
    if (f.extra_labels.size() > 2 || (f.type != prometheus::MetricType::Counter && f.type != prometheus::MetricType::Gauge))
      throw std::invalid_argument("PolicySeries: " + f.name + ": a counter or gauge with at most two further labels");
    std::vector<std::string_view> names = {"namespace", "policy"};
    names.insert(names.end(), f.extra_labels.begin(), f.extra_labels.end());
    std::vector<std::uint8_t> order(names.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<std::uint8_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](auto a, auto b) { return names[a] < names[b]; });
    label_order_.push_back(std::move(order));
  }
}

const std::string* PolicySeries::intern(std::string_view s) {
  auto it = strings_.find(s);
  if (it == strings_.end()) it = strings_.emplace(s).first;
  return &*it;
}

PolicySeries::Series* PolicySeries::find(std::vector<Series>& v, size_t family,
                                         std::initializer_list<std::string_view> extra, size_t identity) {
  const size_t n = std::min(identity, extra.size());
  for (auto& s : v) {
    if (s.family != family) continue;
    size_t i = 0;
    for (auto e = extra.begin(); i < n; ++i, ++e)
      if (*s.extra[i] != *e) break;
    if (i == n) return &s;
  }
  return nullptr;
}

PolicySeries::Series& PolicySeries::upsert(std::string_view ns, std::string_view policy, size_t family,
                                           std::initializer_list<std::string_view> extra, size_t identity, bool* added) {
  if (family >= families_.size() || extra.size() != families_[family].extra_labels.size())
    throw std::invalid_argument("PolicySeries: wrong family or label count");
  const std::string key = key_of(ns, policy);
  auto it = policies_.find(key);
  if (it == policies_.end()) it = policies_.emplace(key, std::vector<Series>{}).first;
  auto& v = it->second;
  Series* s = find(v, family, extra, identity);
  *added = s == nullptr;
  if (!s) {
    v.push_back({static_cast<std::uint16_t>(family), {nullptr, nullptr}, 0});
    s = &v.back();
  }
  size_t i = 0;
  for (auto e : extra) s->extra[i++] = intern(e);
  return *s;
}

void PolicySeries::set(std::string_view ns, std::string_view policy, size_t family,
                       std::initializer_list<std::string_view> extra, double value, size_t identity) {
  std::lock_guard lock(mu_);
  bool added = false;
  upsert(ns, policy, family, extra, identity, &added).value = value;
}

void PolicySeries::add(std::string_view ns, std::string_view policy, size_t family,
                       std::initializer_list<std::string_view> extra, double delta) {
  std::lock_guard lock(mu_);
  bool added = false;
  upsert(ns, policy, family, extra, kAllLabels, &added).value += delta;
}

bool PolicySeries::remove(std::string_view ns, std::string_view policy, size_t family,
                          std::initializer_list<std::string_view> extra) {
  std::lock_guard lock(mu_);
  auto it = policies_.find(key_of(ns, policy));
  if (it == policies_.end()) return false;
  auto& v = it->second;
  Series* s = find(v, family, extra, kAllLabels);
  if (!s) return false;
  v.erase(v.begin() + (s - v.data()));
  if (v.empty()) policies_.erase(it);
  return true;
}

void PolicySeries::remove_policy(std::string_view ns, std::string_view policy) {
  std::lock_guard lock(mu_);
  if (auto it = policies_.find(key_of(ns, policy)); it != policies_.end()) policies_.erase(it);
}

size_t PolicySeries::series() const {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [k, v] : policies_) n += v.size();
  return n;
}

std::vector<prometheus::MetricFamily> PolicySeries::Collect() const {
  std::vector<prometheus::MetricFamily> out(families_.size());
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, v] : policies_) {
      const auto slash = key.find('/');  // neither a namespace nor a policy name holds one
      const std::string_view ns = std::string_view(key).substr(0, slash);
      const std::string_view policy = std::string_view(key).substr(slash + 1);
      for (const auto& s : v) {
        const auto& info = families_[s.family];
        prometheus::ClientMetric m;
        m.label.reserve(2 + info.extra_labels.size());
        m.label.push_back({"namespace", std::string(ns)});
        m.label.push_back({"policy", std::string(policy)});
        for (size_t i = 0; i < info.extra_labels.size(); ++i) m.label.push_back({info.extra_labels[i], *s.extra[i]});
        // prometheus-cpp's Labels are a std::map: by name.
        std::sort(m.label.begin(), m.label.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
        if (info.type == prometheus::MetricType::Counter) m.counter.value = s.value;
        else m.gauge.value = s.value;
        out[s.family].metric.push_back(std::move(m));
      }
    }
  }
  std::vector<prometheus::MetricFamily> families;
  for (size_t f = 0; f < families_.size(); ++f) {
    if (out[f].metric.empty()) continue;
    out[f].name = families_[f].name;
    out[f].help = families_[f].help;
    out[f].type = families_[f].type;
    families.push_back(std::move(out[f]));
  }
  return families;
}

bool PolicySeries::write_family(size_t family, const TextSink& sink, size_t piece) const {
  const auto& info = families_.at(family);
  const auto& order = label_order_[family];
  std::string out;
  out.reserve(piece + 1024);
  std::string last;  // the key of the last policy written: the next piece starts after it
  bool started = false, header = false;
  while (true) {
    bool done = false;
    {
      std::lock_guard lock(mu_);
      auto it = started ? policies_.upper_bound(last) : policies_.begin();
      for (; it != policies_.end() && out.size() < piece; ++it) {
        const std::string_view key = it->first;
        const auto slash = key.find('/');  // neither a namespace nor a policy name holds one
        const std::string_view labels[2] = {key.substr(0, slash), key.substr(slash + 1)};
        for (const auto& s : it->second) {
          if (s.family != family) continue;
          if (!header) {
            if (!info.help.empty()) out.append("# HELP ").append(info.name).append(" ").append(info.help).append("\n");
            out.append("# TYPE ").append(info.name).append(
                info.type == prometheus::MetricType::Counter ? " counter\n" : " gauge\n");
            header = true;
          }
          out.append(info.name).append("{");
          for (size_t i = 0; i < order.size(); ++i) {
            const auto l = order[i];
            if (i > 0) out += ',';
            out.append(l < 2 ? std::string_view(l == 0 ? "namespace" : "policy") : info.extra_labels[l - 2]).append("=\"");
            append_label_value(out, l < 2 ? labels[l] : std::string_view(*s.extra[l - 2]));
            out += '"';
          }
          out.append("} ");
          append_value(out, s.value);
          out += '\n';
        }
        last.assign(key);
        started = true;
      }
      done = it == policies_.end();
    }
    if (!out.empty() && !sink(out)) return false;
    out.clear();
    if (done) return true;
  }
}

}  // namespace bo::metrics
