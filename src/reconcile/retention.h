// Grandfather-father-son retention over full backups (POLICY.md §4: 7 daily,
// 4 weekly, 3 monthly). A pure function of the catalog and the counts.
//
// Like restic's --keep-daily/--keep-weekly/--keep-monthly, a rule keeps the
// newest full backup of each of the N most recent days (ISO weeks, months)
// that have one, in the policy's time zone, so a week of failed backups never
// ages out everything that is left. Deltas live and die with their base (a
// delta whose base the catalog does not know is kept). The newest verified
// backup (and its base) is never expired, whatever its age.
#pragma once
#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace date {
class time_zone;
}

namespace bo::reconcile {

struct RetainedBackup {
  std::string id;
  std::string type;  // full | delta
  std::string base;  // for deltas
  std::chrono::system_clock::time_point completion;
  bool verified = false;
};

struct RetentionCounts {
  int daily = 7, weekly = 4, monthly = 3;
};

struct RetentionDecision {
  std::map<std::string, std::vector<std::string>> kept_for;  // id -> daily/weekly/monthly/verified; deltas: base or unknown-base
  std::vector<std::string> expire;                            // ids to delete, oldest first
};

[[nodiscard]] RetentionDecision apply_retention(const std::vector<RetainedBackup>& catalog, RetentionCounts counts,
                                                const date::time_zone* tz);

}  // namespace bo::reconcile
