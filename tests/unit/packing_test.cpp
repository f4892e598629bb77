// Packed informer objects (kube/packing.h): every object comes back as it
// went in, objects of one kind pack to a fraction of their MessagePack, a
// new shape teaches the dictionary without making older objects unreadable,
// and bytes it did not write are refused, never crash.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kube/packing.h"

namespace {

using json = nlohmann::json;
using bo::kube::ObjectPacker;

// A BackupPolicy as the operator caches it after its first status write.
json policy(int i) {
  json conditions = json::array();
  for (const char* type : {"BackupHealthy", "SecretsResolved", "DataVolumeResolved", "Ready", "ContinuousArchiving",
                           "Verified", "OffsiteCopyCurrent", "DrillCurrent", "Reconciling", "Stalled"})
    conditions.push_back({{"type", type},
                          {"status", i % 3 ? "True" : "False"},
                          {"reason", std::string(type) + "Reason"},
                          {"message", std::string("the message of ") + type + " as every policy has it"},
                          {"lastTransitionTime", "2026-12-04T23:04:" + std::to_string(10 + i % 50) + "Z"},
                          {"observedGeneration", 1}});
  const std::string name = "db-" + std::to_string(i);
  return {{"apiVersion", "backup.si.dev/v1alpha1"},
          {"kind", "BackupPolicy"},
          {"metadata",
           {{"name", name}, {"namespace", "bench"}, {"uid", "158ab017-6697-4f91-96ca-" + std::to_string(100000 + i)},
            {"resourceVersion", std::to_string(70000 + i)}, {"generation", 1}}},
          {"spec",
           {{"schedule", {{"backup", "0 * * * *"}, {"fullBackup", "0 0 * * 0"}, {"timeZone", "UTC"}}},
            {"storage", {{"secretRef", {{"name", name + "-storage"}}}}},
            {"retention", {{"daily", 7}, {"weekly", 4}, {"monthly", 3}}}}},
          {"status", {{"conditions", conditions}, {"observedGeneration", 1}, {"nextScheduleTime", "2027-01-01T00:00:00Z"}}}};
}

json job(int i) {
  return {{"metadata",
           {{"name", "db-" + std::to_string(i) + "-delta-202601010000"},
            {"labels", {{"app.kubernetes.io/managed-by", "backup-operator"}, {"backup.si.dev/policy", "db-" + std::to_string(i)}}}}},
          {"status", {{"active", 1}, {"startTime", "2026-12-04T19:20:29Z"}}}};
}

TEST(ObjectPacker, ObjectsOfOneKindPackToAFractionOfTheirMessagePack) {
  ObjectPacker p;
  size_t raw = 0, packed = 0;
  std::vector<std::vector<std::uint8_t>> kept;
  for (int i = 0; i < 1000; ++i) {
    const json obj = policy(i);
    raw += json::to_msgpack(obj).size();
    kept.push_back(p.pack(obj));
    packed += kept.back().size();
  }
  std::printf("1000 policies: MessagePack %zu B, packed %zu B\n", raw, packed);
  EXPECT_LT(packed * 5, raw);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(p.unpack(kept[i]), policy(i)) << i;
}

TEST(ObjectPacker, ANewShapeIsLearnedAndOlderObjectsStayReadable) {
  ObjectPacker p;
  std::vector<std::vector<std::uint8_t>> jobs, policies;
  for (int i = 0; i < 50; ++i) jobs.push_back(p.pack(job(i)));
  const size_t before = p.dictionaries();
  for (int i = 0; i < 50; ++i) policies.push_back(p.pack(policy(i)));
  EXPECT_GT(p.dictionaries(), before) << "policies taught the dictionary";
  EXPECT_LE(p.dictionaries(), ObjectPacker::kMaxDictionaries);
  EXPECT_LT(policies.back().size() * 4, json::to_msgpack(policy(49)).size());
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(p.unpack(jobs[i]), job(i));
    EXPECT_EQ(p.unpack(policies[i]), policy(i));
  }
}

TEST(ObjectPacker, RandomObjectsComeBackAsTheyWentIn) {
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::printf("ObjectPacker.RandomObjectsComeBackAsTheyWentIn seed %u\n", seed);
  auto word = [&](size_t n) {
    std::string s;
    for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>('a' + rng() % 26));
    return s;
  };
  ObjectPacker p;
  std::vector<std::pair<json, std::vector<std::uint8_t>>> kept;
  for (int i = 0; i < 400; ++i) {
    json obj = json::object();
    const int fields = static_cast<int>(rng() % 40);
    for (int f = 0; f < fields; ++f) {
      switch (rng() % 5) {
        case 0: obj[word(1 + rng() % 12)] = word(rng() % 200); break;
        case 1: obj[word(1 + rng() % 12)] = static_cast<int64_t>(rng()) - (1LL << 31); break;
        case 2: obj[word(1 + rng() % 12)] = static_cast<double>(rng()) / 7.0; break;
        case 3: obj[word(1 + rng() % 12)] = json::array({word(5), rng() % 2 == 0, nullptr}); break;
        default: obj[word(1 + rng() % 12)] = policy(static_cast<int>(rng() % 100))["status"]; break;
      }
    }
    kept.emplace_back(obj, p.pack(obj));
  }
  for (const auto& [obj, bytes] : kept) ASSERT_EQ(p.unpack(bytes), obj);
}

TEST(ObjectPacker, ReadsWhileItPacksFromOtherThreads) {
  ObjectPacker p;
  std::vector<std::vector<std::uint8_t>> first;
  for (int i = 0; i < 200; ++i) first.push_back(p.pack(policy(i)));
  std::vector<std::jthread> readers;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 3; ++t)
    readers.emplace_back([&] {
      for (int round = 0; round < 5; ++round)
        for (int i = 0; i < 200; ++i)
          if (p.unpack(first[i]) != policy(i)) ++wrong;
    });
  for (int i = 0; i < 300; ++i) (void)p.pack(i % 2 ? job(i) : policy(i));
  readers.clear();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(ObjectPacker, RefusesBytesItDidNotWrite) {
  ObjectPacker p;
  const auto good = p.pack(policy(1));
  ASSERT_GT(good[0], 0) << "deflated";
  EXPECT_THROW((void)p.unpack({}), std::runtime_error);
  auto unknown = good;
  unknown[0] = 200;
  EXPECT_THROW((void)p.unpack(unknown), std::runtime_error);
  EXPECT_THROW((void)p.unpack(std::span(good).first(3)), std::runtime_error);
  auto truncated = good;
  truncated.resize(truncated.size() / 2);
  EXPECT_THROW((void)p.unpack(truncated), std::runtime_error);
  auto bigger = good;
  bigger[1] ^= 0x40;  // claims another size
  EXPECT_THROW((void)p.unpack(bigger), std::runtime_error);
  EXPECT_ANY_THROW((void)p.unpack(std::vector<std::uint8_t>{0, 0xc1}));  // MessagePack's never-used byte
}

}  // namespace
