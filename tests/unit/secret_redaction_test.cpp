// What the operator holds of a Secret's values (api::SecretValue over
// common/redaction.h) and how it still redacts them; --watch-namespace parsing.
#include <gtest/gtest.h>

#include "api/backup_policy.h"
#include "common/redaction.h"
#include "reconcile/caches.h"

namespace {

std::string redact(const std::string& text, const std::vector<std::string>& values) {
  std::vector<bo::Fingerprint> fps;
  for (const auto& v : values) fps.push_back(bo::Fingerprint::of(v));
  std::vector<const bo::Fingerprint*> ptrs;
  for (const auto& f : fps) ptrs.push_back(&f);
  return bo::redact_fingerprints(text, ptrs);
}

TEST(Redaction, EveryOccurrenceOfAFingerprintedValueIsReplaced) {
  EXPECT_EQ(redact("key=s3cr3t-value; again s3cr3t-value.", {"s3cr3t-value"}), "key=[redacted]; again [redacted].");
  EXPECT_EQ(redact("s3cr3t-value", {"s3cr3t-value"}), "[redacted]");
  EXPECT_EQ(redact("nothing here", {"s3cr3t-value"}), "nothing here");
}

TEST(Redaction, TheLongerValueWinsWhereOneContainsAnother) {
  EXPECT_EQ(redact("pw=hunter2hunter2", {"hunter2", "hunter2hunter2"}), "pw=[redacted]");
}

TEST(Redaction, ValuesShorterThanTheMinimumAreLeftAlone) {
  EXPECT_EQ(redact("id=abc", {"abc"}), "id=abc");
}

TEST(Redaction, ANearMissIsNotRedacted) {
  EXPECT_EQ(redact("s3cr3t-valuX s3cr3t-valu", {"s3cr3t-value"}), "s3cr3t-valuX s3cr3t-valu");
}

TEST(SecretValue, AFingerprintOnlyValueKnowsItsEmptinessButNotItsPlaintext) {
  const auto v = bo::api::SecretValue::fingerprint_only("s3cr3t");
  EXPECT_FALSE(v.held());
  EXPECT_FALSE(v.empty());
  EXPECT_EQ(v.value(), "");
  EXPECT_TRUE(v.fingerprint().matches("s3cr3t"));
  EXPECT_TRUE(bo::api::SecretValue::fingerprint_only("").empty());
  EXPECT_EQ(bo::api::SecretValue("plain").value(), "plain");
}

TEST(SecretValue, TheOperatorHoldsOnlyTheDatabaseCredentialsAndTheEndpoint) {
  const nlohmann::json spec = {
      {"database", {{"credentialsSecretRef", {{"name", "db"}, {"passwordKey", "pw"}}}}},
      {"storage", {{"secretRef", {{"name", "s3"}}}, {"encryption", {{"secretRef", {{"name", "enc"}}}}}}},
      {"offsite", {{"secretRef", {{"name", "s3-far"}}}}}};
  const auto used = bo::api::used_value_keys(spec);
  EXPECT_EQ(used, (std::map<std::string, std::set<std::string>>{
                      {"db", {"username", "pw"}}, {"s3", {"WALG_AWS_ENDPOINT"}}, {"s3-far", {"WALG_AWS_ENDPOINT"}}}));
}

TEST(WatchNamespaces, RepeatedAndCommaSeparatedValuesMakeOneList) {
  auto ns = bo::reconcile::parse_watch_namespaces({"shop,shop-verify", "billing", " shop ", ""});
  ASSERT_TRUE(ns) << ns.error();
  EXPECT_EQ(*ns, (std::vector<std::string>{"shop", "shop-verify", "billing"}));
  auto all = bo::reconcile::parse_watch_namespaces({""});
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty());
}

TEST(WatchNamespaces, ANameThatIsNotANamespaceIsRefusedByName) {
  auto bad = bo::reconcile::parse_watch_namespaces({"shop,Shop_Verify"});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().find("\"Shop_Verify\""), std::string::npos) << bad.error();
}

}  // namespace
