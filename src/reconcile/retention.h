// Grandfather-father-son retention over full backups (POLICY.md §4: 7 daily,
// 4 weekly, 3 monthly). A pure function of the catalog and the counts.
//
// Like restic's --keep-daily/--keep-weekly/--keep-monthly, a rule keeps the
// newest full backup of each of the N most recent days (ISO weeks, months)
// that have one, in the policy's time zone, so a week of failed backups never
// ages out everything that is left. Only restorable fulls fill the buckets.
// Deltas live and die with the full at the root of their chain (wal-g's
// DeltaFullName; a delta whose full the catalog does not know is kept), and
// whatever a kept backup needs to be restored, its chain of DeltaFrom bases
// back to the full, is kept too, so a chain is never broken. The newest
// verified backup (and its chain) is never expired, whatever its age.
// wal-g's `delete target` of a full also deletes its deltas: the retain Job
// reports what storage no longer holds, so a cascade is not an error.
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
  std::string base;  // for deltas: DeltaFrom, the backup it applies to
  std::chrono::system_clock::time_point completion;
  bool verified = false;
  std::string full;        // for deltas: DeltaFullName (empty: the base is the full)
  bool restorable = true;  // its WAL was archived
};

struct RetentionCounts {
  int daily = 7, weekly = 4, monthly = 3;
};

struct RetentionDecision {
  std::map<std::string, std::vector<std::string>> kept_for;  // id -> daily/weekly/monthly/verified/chain; deltas: base or unknown-base
  std::vector<std::string> expire;                            // ids to delete, oldest first
};

[[nodiscard]] RetentionDecision apply_retention(const std::vector<RetainedBackup>& catalog, RetentionCounts counts,
                                                const date::time_zone* tz);

}  // namespace bo::reconcile
