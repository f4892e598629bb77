// PaaS-state bundles on real files: the §1/§2 rules, round trips,
// determinism, tampering, refusals, symlinks and traversal, a file changing
// mid-bundle, and restore's atomic, vault-safe writes.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "bundle/bundle.h"
#include "bundle/command.h"
#include "bundle/crypto.h"
#include "bundle/layout.h"
#include "bundle/sigv4.h"
#include "common/encoding.h"

namespace fs = std::filesystem;
using namespace bo::bundle;

namespace {

fs::path temp_dir() {
  std::string t = (fs::temp_directory_path() / "bundle-test-XXXXXX").string();
  if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
  return t;
}

void put(const fs::path& p, const std::string& content) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kKey(32, '\x42');

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = temp_dir();
    root_ = dir_ / "state";
    ctx_ = root_ / "contexts" / "shop";
    put(ctx_ / "config.json", R"({"name":"shop"})");
    put(ctx_ / "targets.json", "[]");
    put(ctx_ / "deployments.json", R"([{"release":"r7"}])");
    put(ctx_ / "webhooks/mappings.json", "{}");
    put(ctx_ / "events/audit.jsonl", "{\"e\":1}\n{\"e\":2}\n");
    put(ctx_ / "releases/r7/release.json", R"({"image":"shop:7"})");
    put(ctx_ / "cache/build.log", "cached");
    put(ctx_ / "vault/secrets.env", "DB_PASSWORD=canary-vault-9f1c\n");
    put(ctx_ / "notes.txt", "not protected");
  }
  void TearDown() override { fs::remove_all(dir_); }

  CreateOptions opts() const {
    CreateOptions o;
    o.state_root = root_;
    o.context = "shop";
    o.id = "shop-t1";
    o.created_at = "2026-11-24T10:00:00Z";
    o.work_dir = dir_;
    return o;
  }
  fs::path out(const std::string& name = "b.bundle") const { return dir_ / name; }

  fs::path dir_, root_, ctx_;
};

std::vector<std::string> relative_files(const fs::path& root) {
  std::vector<std::string> out;
  if (!fs::exists(root)) return out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file()) out.push_back(e.path().lexically_relative(root).generic_string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(BundleLayout, ExclusionsFollowPolicySectionTwo) {
  for (const char* p : {"vault/secrets.env", "releases/vault/x.json", "secrets.env", "releases/r1/.env", "releases/prod.env",
                        "cache/db.dump", "releases/r1/backup.sql", "releases/r1/backup.sql.gz", "cache/core",
                        "cache/core.1234", "cache/debug-dump.txt", "releases/secret-export.json", "releases/secrets.yaml",
                        "releases/tls.key", "releases/cert.pem", "cache/volumes/pg/base", "cache/app.heapdump"})
    EXPECT_TRUE(exclusion_reason(p).has_value()) << p;
  for (const char* p : {"config.json", "events/audit.jsonl", "releases/r1/release.json", "cache/build.log",
                        "webhooks/mappings.json", "releases/r1/secrets-manifest.json"})
    EXPECT_FALSE(exclusion_reason(p).has_value()) << p;
}

TEST(BundleLayout, UnsafePaths) {
  for (const char* p : {"", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\\b"})
    EXPECT_TRUE(unsafe_path_reason(p).has_value()) << p;
  EXPECT_TRUE(unsafe_path_reason(std::string("a\0b", 3)).has_value());
  EXPECT_TRUE(unsafe_path_reason(std::string(1025, 'a')).has_value());
  EXPECT_FALSE(unsafe_path_reason("releases/r1/..meta").has_value());
  EXPECT_FALSE(valid_context_name(".."));
  EXPECT_FALSE(valid_context_name("a/b"));
  EXPECT_TRUE(valid_context_name("shop-prod_1.eu"));
}

TEST(BundleCrypto, KeysParseFromHexAndBase64AndNothingElse) {
  const std::string raw(32, '\x07');
  EXPECT_EQ(parse_key(bo::hex_encode(raw) + "\n").value(), raw);
  EXPECT_EQ(parse_key(bo::base64_encode(raw)).value(), raw);
  EXPECT_FALSE(parse_key("short").has_value());
  EXPECT_FALSE(parse_key(bo::hex_encode(std::string(31, 'x'))).has_value());
  // The error never repeats the input.
  EXPECT_EQ(parse_key("canary-key-text").error().find("canary"), std::string::npos);
}

TEST(BundleSigV4, MatchesTheAwsDocumentationExample) {
  // "GET Object" example from the S3 SigV4 documentation (header-based auth).
  SigV4Request r;
  r.method = "GET";
  r.canonical_uri = "/test.txt";
  r.payload_sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  r.headers = {{"host", "examplebucket.s3.amazonaws.com"},
               {"range", "bytes=0-9"},
               {"x-amz-content-sha256", r.payload_sha256},
               {"x-amz-date", "20130524T000000Z"}};
  SigV4Credentials c{"AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "s3"};
  EXPECT_EQ(sigv4_authorization(r, c, "20130524T000000Z"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(s3_uri_encode("/b/paas state/x~1.bundle", true), "/b/paas%20state/x~1.bundle");
}

TEST_F(BundleTest, RoundTripHoldsExactlyTheProtectedFiles) {
  auto made = create_bundle(opts(), kKey, out());
  ASSERT_TRUE(made.has_value()) << made.error();
  EXPECT_EQ(made->files, 6u);
  EXPECT_EQ(made->missing_optional,
            (std::vector<std::string>{"addons.json", "bluegreen.json", "alerts/policy.json", "events/deployments.jsonl",
                                      "events/alerts.jsonl"}));
  EXPECT_EQ(slurp(out()).find("canary-vault"), std::string::npos);
  EXPECT_EQ(slurp(out()).find("shop:7"), std::string::npos) << "the bundle is encrypted";

  auto checked = verify_bundle(out(), kKey, dir_);
  ASSERT_TRUE(checked.has_value()) << checked.error();
  EXPECT_EQ(checked->sha256, made->sha256);
  EXPECT_EQ(checked->object_sha256, made->object_sha256);
  EXPECT_EQ(checked->files, 6u);

  const fs::path target = dir_ / "restored";
  auto restored = restore_bundle(out(), kKey, {target, "shop-drill", dir_});
  ASSERT_TRUE(restored.has_value()) << restored.error();
  const fs::path got = target / "contexts" / "shop-drill";
  EXPECT_EQ(relative_files(got), (std::vector<std::string>{"config.json", "deployments.json", "events/audit.jsonl",
                                                           "releases/r7/release.json", "targets.json",
                                                           "webhooks/mappings.json"}));
  for (const auto& f : relative_files(got)) EXPECT_EQ(slurp(got / f), slurp(ctx_ / f)) << f;
  struct stat st{};
  ASSERT_EQ(::stat((got / "config.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // No work files are left behind.
  for (const auto& e : fs::directory_iterator(dir_)) EXPECT_FALSE(e.path().filename().string().starts_with(".")) << e.path();
}

TEST_F(BundleTest, TheSameFilesGiveTheSameArchiveAndSha256) {
  auto a = create_bundle(opts(), kKey, out("a.bundle"));
  fs::last_write_time(ctx_ / "config.json", fs::file_time_type::clock::now() - std::chrono::hours(5));
  ::chmod((ctx_ / "targets.json").c_str(), 0600);
  auto o = opts();
  o.created_at = "2026-11-25T10:00:00Z";
  auto b = create_bundle(o, kKey, out("b.bundle"));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->sha256, b->sha256) << "mtime, mode and creation time must not change the archive";
  EXPECT_NE(a->object_sha256, b->object_sha256) << "each encryption uses a fresh nonce";
  put(ctx_ / "targets.json", "[1]");
  auto c = create_bundle(opts(), kKey, out("c.bundle"));
  ASSERT_TRUE(c);
  EXPECT_NE(a->sha256, c->sha256);
}

TEST_F(BundleTest, OptionsAddReleasesAndCacheOnlyWhenAsked) {
  auto o = opts();
  o.include_releases = false;
  ASSERT_TRUE(create_bundle(o, kKey, out()));
  ASSERT_TRUE(restore_bundle(out(), kKey, {dir_ / "r1", "", dir_}));
  EXPECT_FALSE(fs::exists(dir_ / "r1/contexts/shop/releases"));
  EXPECT_FALSE(fs::exists(dir_ / "r1/contexts/shop/cache"));
  o.include_releases = true;
  o.forensic_cache = true;
  ASSERT_TRUE(create_bundle(o, kKey, out()));
  ASSERT_TRUE(restore_bundle(out(), kKey, {dir_ / "r2", "", dir_}));
  EXPECT_EQ(slurp(dir_ / "r2/contexts/shop/cache/build.log"), "cached");
  EXPECT_FALSE(fs::exists(dir_ / "r2/contexts/shop/notes.txt"));
  EXPECT_FALSE(fs::exists(dir_ / "r2/contexts/shop/vault"));
}

TEST_F(BundleTest, EveryFlippedByteFailsVerification) {
  ASSERT_TRUE(create_bundle(opts(), kKey, out()));
  const std::string good = slurp(out());
  ASSERT_GT(good.size(), 200u);
  size_t failed = 0;
  for (size_t i = 0; i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    put(dir_ / "bad.bundle", bad);
    auto r = verify_bundle(dir_ / "bad.bundle", kKey, dir_);
    EXPECT_FALSE(r.has_value()) << "byte " << i << " flipped and verification passed";
    if (!r) ++failed;
  }
  EXPECT_EQ(failed, good.size());
  // Truncation and trailing garbage too.
  put(dir_ / "bad.bundle", good.substr(0, good.size() - 1));
  EXPECT_FALSE(verify_bundle(dir_ / "bad.bundle", kKey, dir_));
  put(dir_ / "bad.bundle", good + "x");
  EXPECT_FALSE(verify_bundle(dir_ / "bad.bundle", kKey, dir_));
}

TEST_F(BundleTest, AnotherKeyIsToldApartFromTampering) {
  ASSERT_TRUE(create_bundle(opts(), kKey, out()));
  auto r = verify_bundle(out(), std::string(32, '\x43'), dir_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("another key"), std::string::npos) << r.error();
  std::string bytes = slurp(out());
  bytes[bytes.size() - 20] ^= 0x10;
  put(out(), bytes);
  r = verify_bundle(out(), kKey, dir_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("authentication failed"), std::string::npos) << r.error();
}

TEST_F(BundleTest, EachExclusionIsRefusedAndNothingIsWritten) {
  struct Case {
    std::string name;
    std::function<void(CreateOptions&)> arrange;
    std::string expect;  // in the message
  };
  const std::vector<Case> cases = {
      {"vault via --include", [](CreateOptions& o) { o.include = {"vault/secrets.env"}; }, "vault/secrets.env: vault/"},
      {"env export in releases", [&](CreateOptions&) { put(ctx_ / "releases/r7/prod.env", "X=1"); }, "releases/r7/prod.env"},
      {"secret export", [&](CreateOptions&) { put(ctx_ / "releases/r7/secrets-export.json", "{}"); }, "plaintext secret export"},
      {"dump file", [&](CreateOptions&) { put(ctx_ / "releases/r7/db.dump", "PGDMP"); }, "releases/r7/db.dump: a dump file"},
      {"dump in a forensic cache", [&](CreateOptions& o) { o.forensic_cache = true; put(ctx_ / "cache/core", "ELF"); }, "cache/core"},
      {"vault dir inside releases", [&](CreateOptions&) { put(ctx_ / "releases/vault/k", "k"); }, "releases/vault/"},
      {"traversal", [](CreateOptions& o) { o.include = {"../other/config.json"}; }, "escapes the context root"},
      {"absolute", [](CreateOptions& o) { o.include = {"/etc/passwd"}; }, "absolute path"},
      {"symlink out of the root",
       [&](CreateOptions&) { fs::create_symlink("/etc/hostname", ctx_ / "releases/r7/host.json"); }, "resolves outside"},
      {"symlink to the vault",
       [&](CreateOptions&) { fs::create_symlink("../../vault/secrets.env", ctx_ / "releases/r7/cfg.json"); },
       "links to vault/secrets.env"},
      {"protected file is a symlink to the vault",
       [&](CreateOptions&) {
         fs::remove(ctx_ / "targets.json");
         fs::create_symlink("vault/secrets.env", ctx_ / "targets.json");
       },
       "targets.json: links to vault/secrets.env"},
      {"symlinked directory",
       [&](CreateOptions&) { fs::create_symlink(dir_, ctx_ / "releases/r8"); }, "symlinked directory is not followed"},
      {"missing required file", [&](CreateOptions&) { fs::remove(ctx_ / "config.json"); }, "config.json: required file is missing"},
      {"missing --include", [](CreateOptions& o) { o.include = {"releases/none.json"}; }, "required file is missing"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    TearDown();
    SetUp();
    auto o = opts();
    c.arrange(o);
    auto r = create_bundle(o, kKey, out());
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.error().find(c.expect), std::string::npos) << r.error();
    EXPECT_EQ(r.error().find("canary-vault"), std::string::npos);
    EXPECT_FALSE(fs::exists(out()));
  }
}

TEST_F(BundleTest, AContextRootThatIsASymlinkIsRefused) {
  fs::create_symlink(ctx_, root_ / "contexts" / "alias");
  auto o = opts();
  o.context = "alias";
  auto r = create_bundle(o, kKey, out());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("is a symlink"), std::string::npos) << r.error();
  o.context = "../state";
  EXPECT_FALSE(create_bundle(o, kKey, out()));
}

TEST_F(BundleTest, AFileChangingDuringBundlingIsDetected) {
  auto o = opts();
  o.after_scan = [&] { put(ctx_ / "events/audit.jsonl", "{\"e\":1}\n{\"e\":2}\n{\"e\":3}\n"); };
  auto r = create_bundle(o, kKey, out());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("events/audit.jsonl: changed while the bundle was being made"), std::string::npos) << r.error();
  EXPECT_FALSE(fs::exists(out()));
  o.after_scan = [&] { put(ctx_ / "config.json", R"({"name":"shoq"})"); };  // same size, other bytes
  r = create_bundle(o, kKey, out());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("config.json: changed"), std::string::npos) << r.error();
}

TEST_F(BundleTest, RestoreNeverWritesThroughASymlinkOrUnderTheVault) {
  ASSERT_TRUE(create_bundle(opts(), kKey, out()));
  const fs::path target = dir_ / "t";
  const fs::path tctx = target / "contexts" / "shop";
  put(tctx / "vault/secrets.env", "KEEP=1\n");
  fs::create_symlink("vault", tctx / "events");  // events/audit.jsonl would land in the vault
  auto r = restore_bundle(out(), kKey, {target, "", dir_});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().find("is a symlink in the target"), std::string::npos) << r.error();
  EXPECT_EQ(relative_files(tctx / "vault"), std::vector<std::string>{"secrets.env"});
  EXPECT_EQ(slurp(tctx / "vault/secrets.env"), "KEEP=1\n");
  EXPECT_FALSE(fs::exists(tctx / "config.json")) << "nothing is renamed into place when any file fails";
  // A context that is a symlink is refused too.
  fs::remove(tctx / "events");
  fs::create_directories(dir_ / "elsewhere");
  fs::create_symlink(dir_ / "elsewhere", target / "contexts" / "alias");
  r = restore_bundle(out(), kKey, {target, "alias", dir_});
  ASSERT_FALSE(r);
  EXPECT_TRUE(fs::is_empty(dir_ / "elsewhere"));
}

TEST_F(BundleTest, RestoreReplacesExistingFilesAndLeavesNoTemporaries) {
  ASSERT_TRUE(create_bundle(opts(), kKey, out()));
  const fs::path tctx = dir_ / "t/contexts/shop";
  put(tctx / "config.json", "old");
  put(tctx / "vault/secrets.env", "KEEP=1\n");
  ASSERT_TRUE(restore_bundle(out(), kKey, {dir_ / "t", "", dir_}));
  EXPECT_EQ(slurp(tctx / "config.json"), R"({"name":"shop"})");
  EXPECT_EQ(slurp(tctx / "vault/secrets.env"), "KEEP=1\n");
  for (const auto& f : relative_files(tctx)) EXPECT_EQ(f.find(".bo-restore"), std::string::npos) << f;
}

TEST_F(BundleTest, ATamperedBundleRestoresNothing) {
  ASSERT_TRUE(create_bundle(opts(), kKey, out()));
  std::string bytes = slurp(out());
  bytes[bytes.size() / 2] ^= 0x01;
  put(out(), bytes);
  EXPECT_FALSE(restore_bundle(out(), kKey, {dir_ / "t", "", dir_}));
  EXPECT_TRUE(relative_files(dir_ / "t").empty());
}

TEST(BundleManifest, TheReaderRefusesEveryMalformedField) {
  Manifest m;
  m.context = "shop";
  m.files = {{"a.json", 3, std::string(64, 'a')}, {"b/c.json", 0, std::string(64, 'b')}};
  const std::string good = manifest_text(m);
  auto parsed = parse_manifest(good);
  ASSERT_TRUE(parsed) << parsed.error();
  EXPECT_EQ(parsed->files, m.files);
  auto with = [&](const std::function<void(nlohmann::json&)>& f) {
    auto j = nlohmann::json::parse(good);
    f(j);
    return parse_manifest(j.dump());
  };
  EXPECT_FALSE(parse_manifest("not json"));
  EXPECT_FALSE(parse_manifest("[]"));
  EXPECT_FALSE(with([](auto& j) { j["format"] = 2; }));
  EXPECT_FALSE(with([](auto& j) { j["context"] = "../x"; }));
  EXPECT_FALSE(with([](auto& j) { j["releases"] = "yes"; }));
  EXPECT_FALSE(with([](auto& j) { j["files"][0]["path"] = "../../etc/passwd"; }));
  EXPECT_FALSE(with([](auto& j) { j["files"][0]["path"] = "vault/secrets.env"; }));
  EXPECT_FALSE(with([](auto& j) { j["files"][0]["size"] = -1; }));
  EXPECT_FALSE(with([](auto& j) { j["files"][0]["sha256"] = "ABC"; }));
  EXPECT_FALSE(with([](auto& j) { j["files"][1]["path"] = "a.json"; }));
  auto r = with([](auto& j) { j["files"][1]["sha256"] = 5; });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "files[1].sha256: must be a string");
}

TEST_F(BundleTest, TheCommandNeedsExactlyOneKeyAndNeverPrintsIt) {
  std::ostringstream out, err;
  CommandArgs a;
  a.command = "create";
  a.state_root = root_.string();
  a.contexts = {"shop"};
  a.store = "dir:" + (dir_ / "store").string();
  EXPECT_EQ(run_bundle_command(a, {}, out, err), 2);
  EXPECT_NE(err.str().find("exactly one of --key-file and --key-env"), std::string::npos);
  a.key_env = "BUNDLE_KEY";
  err.str("");
  EXPECT_EQ(run_bundle_command(a, {{"BUNDLE_KEY", "canary-not-a-key"}}, out, err), 2);
  EXPECT_EQ(err.str().find("canary"), std::string::npos) << err.str();
  const std::map<std::string, std::string> env{{"BUNDLE_KEY", bo::hex_encode(kKey)}, {"TERMINATION_LOG", (dir_ / "term").string()}};
  a.termination_log = true;
  a.id = "t9";
  err.str("");
  ASSERT_EQ(run_bundle_command(a, env, out, err), 0) << err.str();
  EXPECT_TRUE(fs::exists(dir_ / "store/paas-state/shop/shop-t9.bundle"));
  const auto term = nlohmann::json::parse(slurp(dir_ / "term"));
  EXPECT_EQ(term["bundles"][0]["id"], "shop-t9");
  EXPECT_EQ(term["bundles"][0]["files"], 6);
  EXPECT_EQ(out.str().find(bo::hex_encode(kKey)), std::string::npos);
  // verify and restore by store and id
  CommandArgs v;
  v.command = "restore";
  v.key_env = "BUNDLE_KEY";
  v.store = a.store;
  v.contexts = {"shop"};
  v.id = "shop-t9";
  v.state_root = (dir_ / "back").string();
  ASSERT_EQ(run_bundle_command(v, env, out, err), 0) << err.str();
  EXPECT_EQ(slurp(dir_ / "back/contexts/shop/config.json"), R"({"name":"shop"})");
  v.id = "shop-missing";
  EXPECT_EQ(run_bundle_command(v, env, out, err), 1);
}
