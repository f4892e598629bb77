// kube/names.h: the one rule for names that become label values or derived
// object names (kept when they fit, else a head and a hash of the whole).
#include "kube/names.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

#include "common/encoding.h"
#include "kube-local/validation.h"

namespace {

using bo::kube::bounded_name;
using bo::kube::label_value;

TEST(Names, ANameThatFitsIsKeptAsItIs) {
  EXPECT_EQ(label_value("nightly"), "nightly");
  EXPECT_EQ(label_value(std::string(63, 'a')), std::string(63, 'a'));
  EXPECT_EQ(label_value(""), "");
  EXPECT_EQ(bounded_name(std::string(253, 'b'), 253), std::string(253, 'b'));
}

TEST(Names, ALongNameIsItsHeadAndTenHexOfItsSha256) {
  const std::string name(64, 'a');
  EXPECT_EQ(label_value(name), std::string(52, 'a') + "-" + bo::sha256_hex(name).substr(0, 10));
  EXPECT_EQ(label_value(name).size(), 63u);
}

TEST(Names, TheSameNameAlwaysGivesTheSameValueAndDistinctNamesDistinctOnes) {
  const std::string head(80, 'x');
  EXPECT_EQ(label_value(head + "-one"), label_value(head + "-one"));
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) seen.insert(label_value(head + "-" + std::to_string(i)));
  EXPECT_EQ(seen.size(), 1000u);  // a common head of 52 characters: only the hash tells them apart
}

TEST(Names, TheHeadNeverEndsInADashOrADotBeforeTheHash) {
  // Character 52 is a '-' or '.': dropped, so no "--" and no ".-" (invalid in a DNS label).
  const std::string dashes = std::string(50, 'a') + "--.-" + std::string(20, 'b');
  const std::string v = label_value(dashes);
  EXPECT_EQ(v.substr(0, 51), std::string(50, 'a') + "-");
  EXPECT_EQ(v.size(), 50u + 1 + 10);
}

// Every value is one the API server accepts where the operator puts it: a
// label value, and a Job name (a DNS subdomain of at most 63 characters).
TEST(Names, EveryBoundedValueIsAValidLabelValueAndJobName) {
  const std::string names[] = {std::string(253, 'r'),
                               "a" + std::string(61, '-') + "b" + std::string(100, 'c'),
                               "db.prod.example." + std::string(60, 'e') + ".restore",
                               "drill-2026-01-01t00-00-00z-" + std::string(200, '7')};
  for (const auto& n : names) {
    const std::string v = label_value(n);
    EXPECT_TRUE(kl::is_valid_label_value(v).empty()) << v;
    EXPECT_TRUE(kl::is_dns1123_subdomain(v).empty()) << v;
    EXPECT_LE(v.size(), 63u);
    const std::string job = bounded_name(n + "-restore");
    EXPECT_TRUE(kl::is_valid_label_value(job).empty()) << job;
    EXPECT_TRUE(kl::is_dns1123_subdomain(job).empty()) << job;
  }
}

TEST(Names, ATinyLimitGivesAPrefixOfTheHash) {
  EXPECT_EQ(bounded_name("abcdefghijklmnop", 8), bo::sha256_hex("abcdefghijklmnop").substr(0, 8));
}

}  // namespace
