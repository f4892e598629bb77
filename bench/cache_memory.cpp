// Memory per cached object in the informer's store: what 10 000 policies and
// 30 000 Jobs would cost. Builds N Job objects as the operator creates them
// (plus the status and server-set metadata they carry in the cache), stores
// them the way Informer does (shared_ptr<const json> in a map keyed by
// namespace/name) and reports heap bytes per object from mallinfo2.
#include <malloc.h>

#include <cstdio>
#include <map>
#include <memory>
#include <string>

#include "common/timefmt.h"
#include "reconcile/backup_jobs.h"

using nlohmann::json;

namespace {

json cached_job(int i) {
  bo::reconcile::JobInputs in;
  in.policy = {{"metadata", {{"name", "policy-" + std::to_string(i % 10000)}, {"namespace", "tenant-" + std::to_string(i % 97)},
                             {"uid", "0b7c6a9e-3f1d-4c2a-9e8b-" + std::to_string(100000000000 + i)}}}};
  in.spec.database.host = "db.tenant.svc";
  in.spec.storage.secret = "walg-storage";
  in.spec.storage.encryption_secret = "walg-encryption";
  in.spec.database.credentials_secret = "supabase-db";
  in.action = bo::reconcile::Action::kBackup;
  in.slot = std::chrono::system_clock::now() + std::chrono::hours(i);
  in.storage_keys = {"WALG_S3_PREFIX", "WALG_AWS_ACCESS_KEY_ID", "WALG_AWS_SECRET_ACCESS_KEY", "WALG_AWS_ENDPOINT"};
  json job = bo::reconcile::build_job(in);
  auto& m = job["metadata"];
  m["uid"] = "5d1c0b8e-6a2f-4b7d-8c3e-" + std::to_string(200000000000 + i);
  m["resourceVersion"] = std::to_string(1000000 + i);
  m["creationTimestamp"] = bo::format_rfc3339(in.slot);
  m["generation"] = 1;
  job["status"] = {{"startTime", m["creationTimestamp"]}, {"completionTime", m["creationTimestamp"]}, {"succeeded", 1},
                   {"conditions", {{{"type", "Complete"}, {"status", "True"}, {"lastTransitionTime", m["creationTimestamp"]}}}}};
  return job;
}

size_t heap() { return mallinfo2().uordblks; }

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 30000;
  const bool full = argc > 2 && std::string(argv[2]) == "--full";
  const size_t before = heap();
  std::map<std::string, std::shared_ptr<const json>> store;
  for (int i = 0; i < n; ++i) {
    json j = cached_job(i);
    if (!full) bo::reconcile::slim_job(j);
    std::string key = j["metadata"]["namespace"].get<std::string>() + "/" + j["metadata"]["name"].get<std::string>();
    store.emplace(std::move(key), std::make_shared<const json>(std::move(j)));
  }
  const size_t after = heap();
  const double per = static_cast<double>(after - before) / n;
  const size_t json_bytes = store.begin()->second->dump().size();
  std::printf("{\"cached\": \"%s\", \"objects\": %d, \"heapBytesPerObject\": %.0f, \"jsonBytesPerObject\": %zu, \"totalMiB\": %.1f}\n", full ? "full" : "slim", n, per,
              json_bytes, static_cast<double>(after - before) / (1024.0 * 1024.0));
  return 0;
}
