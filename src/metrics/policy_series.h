// The per-policy gauges and counters (labels namespace and policy, and up to
// two more), held compactly and turned into MetricFamilies only on Collect().
//
// prometheus-cpp keeps each series as its own object: a std::map of its
// labels, a node in its family's hash map and the metric with its mutex,
// measured at about 340 bytes with two labels and 600 with four. At 10 000
// policies and ten series each that was the largest item in the operator's
// heap. Here a series is 32 bytes in its policy's vector: the family's index,
// its further label values (interned: condition types, statuses, actions,
// results and purposes are a small fixed set the operator itself writes) and
// the value. Namespace and policy are the map key, once per policy.
//
// The exposition is what prometheus-cpp's Family gives for the same series:
// labels sorted by name, a family without series left out (no HELP or TYPE).
// Series are in namespace/policy order, then in the order they were added.
#pragma once
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace bo::metrics {

// Receives the text exposition a piece at a time; false: stop (the reader went away).
using TextSink = std::function<bool(std::string_view)>;
// Writes an exposition to its sink (Metrics::write_text); false when the sink refused a piece.
using TextWriter = std::function<bool(const TextSink&)>;

// Appends `v` as prometheus::TextSerializer writes a sample value ("%.16g",
// Nan, +Inf, -Inf) and a label value (\\, \" and \n escaped).
void append_value(std::string& out, double v);
void append_label_value(std::string& out, std::string_view v);

class PolicySeries final : public prometheus::Collectable {
 public:
  struct FamilyInfo {
    std::string name;
    std::string help;
    prometheus::MetricType type;  // Counter or Gauge
    std::vector<std::string> extra_labels;  // besides namespace and policy; at most two
  };
  // The families are fixed here; `family` below is an index into them.
  explicit PolicySeries(std::vector<FamilyInfo> families);

  // Sets series (ns, policy, extra...) to `value`, adding it if new. The first
  // `identity` extra values name the series: one that matches them but not
  // the rest is replaced (a condition's series when its status changes).
  void set(std::string_view ns, std::string_view policy, size_t family, std::initializer_list<std::string_view> extra,
           double value, size_t identity = kAllLabels);
  // Adds `delta` to the series (a counter), starting it at 0.
  void add(std::string_view ns, std::string_view policy, size_t family, std::initializer_list<std::string_view> extra,
           double delta);
  // Removes one series; false when there was none.
  bool remove(std::string_view ns, std::string_view policy, size_t family, std::initializer_list<std::string_view> extra);
  // Removes every series of the policy.
  void remove_policy(std::string_view ns, std::string_view policy);
  [[nodiscard]] size_t series() const;

  std::vector<prometheus::MetricFamily> Collect() const override;

  // One family's exposition, byte for byte what TextSerializer writes for
  // Collect()'s (nothing for a family without series), handed to `sink` in
  // pieces of about `piece` bytes. The lock is held only while a piece is
  // written, never while `sink` runs, so a slow scrape stalls no writer,
  // and a scrape of any size costs one piece of memory. False when `sink`
  // returned false.
  bool write_family(size_t family, const TextSink& sink, size_t piece = 64 * 1024) const;
  [[nodiscard]] const std::vector<FamilyInfo>& families() const { return families_; }

  static constexpr size_t kAllLabels = SIZE_MAX;

 private:
  struct Series {
    std::uint16_t family;
    const std::string* extra[2];
    double value;
  };
  const std::string* intern(std::string_view s);  // mu_ held
  // The policy's series matching the first `identity` extra values, or nullptr; mu_ held.
  Series* find(std::vector<Series>& v, size_t family, std::initializer_list<std::string_view> extra, size_t identity);
  Series& upsert(std::string_view ns, std::string_view policy, size_t family,
                 std::initializer_list<std::string_view> extra, size_t identity, bool* added);  // mu_ held

  std::vector<FamilyInfo> families_;
  // Per family, its labels sorted by name (as Collect() orders them): 0
  // namespace, 1 policy, 2 and 3 the extra labels.
  std::vector<std::vector<std::uint8_t>> label_order_;
  mutable std::mutex mu_;
  std::set<std::string, std::less<>> strings_;
  std::map<std::string, std::vector<Series>, std::less<>> policies_;  // "namespace/policy"
};

}  // namespace bo::metrics
