#include "reconcile/retention.h"

#include <date/date.h>
#include <date/iso_week.h>
#include <date/tz.h>

#include <algorithm>
#include <set>

namespace bo::reconcile {

RetentionDecision apply_retention(const std::vector<RetainedBackup>& catalog, RetentionCounts counts,
                                  const date::time_zone* tz) {
  RetentionDecision d;
  std::vector<const RetainedBackup*> fulls;
  for (const auto& b : catalog)
    if (b.type == "full" && b.restorable) fulls.push_back(&b);
  std::sort(fulls.begin(), fulls.end(),
            [](const RetainedBackup* a, const RetainedBackup* b) { return a->completion > b->completion; });

  // One pass per rule, newest first: the first full seen in a new bucket is kept.
  auto keep = [&](const char* rule, int n, auto bucket_of) {
    std::set<long long> seen;
    for (const RetainedBackup* b : fulls) {
      if (static_cast<int>(seen.size()) >= n) break;
      const long long bucket = bucket_of(b->completion);
      if (seen.insert(bucket).second) d.kept_for[b->id].push_back(rule);
    }
  };
  auto local_day = [&](std::chrono::system_clock::time_point t) {
    return date::floor<date::days>(tz->to_local(t));
  };
  keep("daily", counts.daily, [&](auto t) { return static_cast<long long>(local_day(t).time_since_epoch().count()); });
  keep("weekly", counts.weekly, [&](auto t) {
    const iso_week::year_weeknum_weekday w{local_day(t)};
    return static_cast<long long>(int(w.year())) * 100 + static_cast<unsigned>(w.weeknum());
  });
  keep("monthly", counts.monthly, [&](auto t) {
    const date::year_month_day ymd{local_day(t)};
    return static_cast<long long>(int(ymd.year())) * 100 + static_cast<unsigned>(ymd.month());
  });

  std::map<std::string, const RetainedBackup*> by_id;
  for (const auto& b : catalog) by_id[b.id] = &b;
  auto root_of = [](const RetainedBackup& b) { return b.full.empty() ? b.base : b.full; };
  // The newest verified backup survives, whatever its age.
  const RetainedBackup* newest_verified = nullptr;
  for (const auto& b : catalog)
    if (b.verified && (!newest_verified || b.completion > newest_verified->completion)) newest_verified = &b;
  if (newest_verified) {
    auto& why = d.kept_for[newest_verified->id];
    if (std::find(why.begin(), why.end(), "verified") == why.end()) why.push_back("verified");
  }
  // Deltas follow the full at the root of their chain. A delta whose full
  // the catalog does not know (it scrolled out, or predates the operator) is
  // kept: retention never deletes what it cannot reason about.
  for (const auto& b : catalog) {
    if (b.type != "delta" || d.kept_for.count(b.id)) continue;
    const std::string root = root_of(b);
    if (d.kept_for.count(root)) d.kept_for[b.id].push_back("base");
    else if (!by_id.count(root)) d.kept_for[b.id].push_back("unknown-base");
  }
  // A kept delta needs every backup between it and its full: keep the chain.
  std::vector<std::string> kept_ids;
  for (const auto& [id, why] : d.kept_for) kept_ids.push_back(id);
  for (const auto& id : kept_ids) {
    std::set<std::string> seen;
    for (auto it = by_id.find(id); it != by_id.end() && it->second->type == "delta" && seen.insert(it->first).second;) {
      const std::string next = it->second->base;
      it = by_id.find(next);
      if (it != by_id.end() && !d.kept_for.count(next)) d.kept_for[next].push_back("chain");
    }
  }

  std::vector<const RetainedBackup*> expired;
  for (const auto& b : catalog)
    if (!d.kept_for.count(b.id)) expired.push_back(&b);
  std::sort(expired.begin(), expired.end(),
            [](const RetainedBackup* a, const RetainedBackup* b) { return a->completion < b->completion; });
  for (const auto* b : expired) d.expire.push_back(b->id);
  // Only ids that are in the catalog are reported as kept.
  std::erase_if(d.kept_for, [&](const auto& kv) { return !by_id.count(kv.first); });
  return d;
}

}  // namespace bo::reconcile
