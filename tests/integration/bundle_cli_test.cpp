// `backup-operator bundle` as a user and the state-bundle Job run it: the
// real binary, real files, and an S3-compatible server (s3rver) beside a
// directory target; memory stays bounded for files far larger than it.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "harness.h"

using namespace testing_support;

namespace {

const std::string kSecret = "canary-s3-secret-5d2a";
const std::string kKeyHex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

struct Measured {
  int exit_code = -1;
  long max_rss_kib = 0;
  std::string output;
};

// Runs the binary with `env` added, capturing output and its peak RSS (wait4).
Measured run_measured(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
                      const fs::path& log) {
  Measured m;
  const pid_t pid = fork();
  if (pid == 0) {
    FILE* f = fopen(log.c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<std::string> copy = args;
    std::vector<char*> argv;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int st = 0;
  rusage ru{};
  wait4(pid, &st, 0, &ru);
  m.exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  m.max_rss_kib = ru.ru_maxrss;
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  m.output = ss.str();
  return m;
}

class BundleCli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("bundle-cli");
    ctx_ = dir_ / "state/contexts/shop";
    fs::create_directories(ctx_ / "events");
    fs::create_directories(ctx_ / "releases/r3");
    fs::create_directories(ctx_ / "vault");
    write_file(ctx_ / "config.json", R"({"context":"shop"})");
    write_file(ctx_ / "deployments.json", R"([{"release":"r3"}])");
    write_file(ctx_ / "events/audit.jsonl", "{\"restore\":false}\n");
    write_file(ctx_ / "releases/r3/release.json", R"({"image":"shop:3"})");
    write_file(ctx_ / "vault/secrets.env", "STRIPE_KEY=" + kSecret + "\n");
  }
  void TearDown() override {
    s3_.reset();
    fs::remove_all(dir_);
  }

  void start_s3() {
    const std::string bin = S3RVER_BIN;
    ASSERT_FALSE(bin.empty() || bin.ends_with("NOTFOUND"))
        << "s3rver is not installed; scripts/setup.sh installs it (npm package s3rver)";
    fs::create_directories(dir_ / "s3");
    s3_ = std::make_unique<Child>(std::vector<std::string>{bin, "-d", (dir_ / "s3").string(), "-a", "127.0.0.1", "-p", "0",
                                                           "--configure-bucket", "backups"},
                                  dir_ / "s3.log");
    port_ = testing_support::port_after(*s3_, "S3rver listening on 127.0.0.1:");
    ASSERT_GT(port_, 0) << s3_->log();
    ASSERT_TRUE(eventually([&] { return run("curl -s -o /dev/null http://127.0.0.1:" + std::to_string(port_) + "/").exit_code == 0; }))
        << s3_->log();
  }

  std::map<std::string, std::string> s3_env(const std::string& access = "S3RVER") const {
    return {{"WALG_S3_PREFIX", "s3://backups/supabase/shop"},
            {"WALG_AWS_ACCESS_KEY_ID", access},
            {"WALG_AWS_SECRET_ACCESS_KEY", kSecret},
            {"WALG_AWS_ENDPOINT", "http://127.0.0.1:" + std::to_string(port_)},
            {"BUNDLE_KEY", kKeyHex}};
  }

  Measured bundle(std::vector<std::string> args, const std::map<std::string, std::string>& env) {
    args.insert(args.begin(), {OPERATOR_BIN, "bundle"});
    return run_measured(args, env, dir_ / ("run" + std::to_string(runs_++) + ".log"));
  }

  fs::path dir_, ctx_;
  int port_ = 0;
  int runs_ = 0;
  std::unique_ptr<Child> s3_;
};

nlohmann::json last_json_line(const std::string& out) {
  std::istringstream in(out);
  std::string line, last;
  while (std::getline(in, line))
    if (line.starts_with("{")) last = line;
  return nlohmann::json::parse(last, nullptr, false);
}

}  // namespace

TEST_F(BundleCli, RoundTripThroughS3NextToTheWalgBackups) {
  start_s3();
  const auto env = s3_env();
  auto made = bundle({"create", "--state-root", (dir_ / "state").string(), "--context", "shop", "--store", "s3",
                      "--key-env", "BUNDLE_KEY", "--tag", "20261124T101500Z", "--work-dir", dir_.string()},
                     env);
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const auto info = last_json_line(made.output);
  EXPECT_EQ(info["location"], "s3://backups/supabase/shop/paas-state/shop/shop-20261124T101500Z.bundle");
  EXPECT_EQ(info["files"], 4);
  // The object really is in the bucket, next to where WAL-G writes.
  EXPECT_TRUE(fs::exists(dir_ / "s3/backups/supabase/shop/paas-state/shop/shop-20261124T101500Z.bundle._S3rver_object"));

  auto checked = bundle({"verify", "--store", "s3", "--context", "shop", "--id", "shop-20261124T101500Z", "--key-env",
                         "BUNDLE_KEY", "--work-dir", dir_.string()},
                        env);
  ASSERT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_EQ(last_json_line(checked.output)["sha256"], info["sha256"]);

  auto restored = bundle({"restore", "--store", "s3", "--context", "shop", "--id", "shop-20261124T101500Z", "--key-env",
                          "BUNDLE_KEY", "--state-root", (dir_ / "restored").string(), "--work-dir", dir_.string()},
                         env);
  ASSERT_EQ(restored.exit_code, 0) << restored.output;
  std::ifstream in(dir_ / "restored/contexts/shop/releases/r3/release.json");
  std::string got((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(got, R"({"image":"shop:3"})");
  EXPECT_FALSE(fs::exists(dir_ / "restored/contexts/shop/vault"));

  for (const auto& m : {made, checked, restored}) {
    EXPECT_EQ(m.output.find(kSecret), std::string::npos);
    EXPECT_EQ(m.output.find(kKeyHex), std::string::npos);
  }
}

TEST_F(BundleCli, StorageErrorsAreOneLineWithoutSecrets) {
  start_s3();
  auto bad = bundle({"create", "--state-root", (dir_ / "state").string(), "--context", "shop", "--store", "s3", "--key-env",
                     "BUNDLE_KEY", "--work-dir", dir_.string()},
                    s3_env("NOT-A-KEY"));
  EXPECT_EQ(bad.exit_code, 1);
  // The first request is the HEAD that keeps a bundle from replacing another: a status, no body to name the code.
  EXPECT_NE(bad.output.find("HTTP 403"), std::string::npos) << bad.output;
  EXPECT_EQ(std::count(bad.output.begin(), bad.output.end(), '\n'), 1) << bad.output;
  EXPECT_EQ(bad.output.find(kSecret), std::string::npos);
  auto missing = bundle({"verify", "--store", "s3", "--context", "shop", "--id", "shop-nope", "--key-env", "BUNDLE_KEY",
                         "--work-dir", dir_.string()},
                        s3_env());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.output.find("HTTP 404 NoSuchKey"), std::string::npos) << missing.output;
  auto env = s3_env();
  env["WALG_S3_PREFIX"] = "gs://nope";
  auto prefix = bundle({"verify", "--store", "s3", "--context", "shop", "--id", "x", "--key-env", "BUNDLE_KEY"}, env);
  EXPECT_EQ(prefix.exit_code, 2);
  EXPECT_NE(prefix.output.find("WALG_S3_PREFIX: must be s3://"), std::string::npos) << prefix.output;
}

TEST_F(BundleCli, RefusalsExitNonZeroAndNameThePath) {
  const std::map<std::string, std::string> env{{"BUNDLE_KEY", kKeyHex}};
  auto r = bundle({"create", "--state-root", (dir_ / "state").string(), "--context", "shop", "--store",
                   "dir:" + (dir_ / "out").string(), "--key-env", "BUNDLE_KEY", "--include", "vault/secrets.env"},
                  env);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("vault/secrets.env: vault/ holds the context's secrets"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find(kSecret), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "out"));
  r = bundle({"create", "--state-root", (dir_ / "state").string(), "--context", "shop"}, env);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--store is required"), std::string::npos) << r.output;
  r = bundle({"verify", "--file", (dir_ / "none.bundle").string(), "--key-env", "BUNDLE_KEY"}, env);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("cannot open"), std::string::npos) << r.output;
}

TEST_F(BundleCli, LargeFilesAreStreamedInBoundedMemory) {
  const std::map<std::string, std::string> env{{"BUNDLE_KEY", kKeyHex}};
  const std::string store = "dir:" + (dir_ / "out").string();
  // The same command on the small context first: the process's own footprint
  // (much larger under AddressSanitizer), against which growth is measured.
  auto small = bundle({"create", "--state-root", (dir_ / "state").string(), "--context", "shop", "--store", store,
                       "--key-env", "BUNDLE_KEY", "--tag", "small", "--work-dir", dir_.string()},
                      env);
  ASSERT_EQ(small.exit_code, 0) << small.output;
  // 192 MiB of release metadata (sparse on disk, read in full): peak RSS must not grow with it.
  const fs::path big = ctx_ / "releases/r3/layers.json";
  { std::ofstream(big) << ""; }
  fs::resize_file(big, 192ull << 20);
  auto made = bundle({"create", "--state-root", (dir_ / "state").string(), "--context", "shop", "--store", store,
                      "--key-env", "BUNDLE_KEY", "--tag", "big", "--work-dir", dir_.string()},
                     env);
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const uint64_t bytes = last_json_line(made.output)["bytes"].get<uint64_t>();
  EXPECT_GT(bytes, 192ull << 20);
  EXPECT_LT(bytes, (192ull << 20) + 1024);
  auto restored = bundle({"restore", "--store", store, "--context", "shop", "--id", "shop-big", "--key-env", "BUNDLE_KEY",
                          "--state-root", (dir_ / "restored").string(), "--work-dir", dir_.string()},
                         env);
  ASSERT_EQ(restored.exit_code, 0) << restored.output;
  EXPECT_EQ(fs::file_size(dir_ / "restored/contexts/shop/releases/r3/layers.json"), 192ull << 20);
  std::cout << "peak RSS: small bundle " << small.max_rss_kib << " KiB\n";
  for (const auto& m : {made, restored}) {
    EXPECT_LT(m.max_rss_kib, small.max_rss_kib + 32 * 1024)
        << "peak RSS " << m.max_rss_kib << " KiB against " << small.max_rss_kib << " KiB for the small bundle";
    std::cout << "peak RSS: 192 MiB file " << m.max_rss_kib << " KiB\n";
  }
}

namespace {

// POLICY §8: backup artifacts stay outside git workspaces. A store or a work
// directory inside a git work tree (a `.git` directory, or the `.git` file of
// a worktree or submodule, at or above it) is refused in one line naming it,
// and nothing is written there.
TEST_F(BundleCli, StoresAndWorkDirectoriesInsideAGitWorkTreeAreRefused) {
  const fs::path repo = dir_ / "ops-repo";
  fs::create_directories(repo / ".git");
  const fs::path worktree = dir_ / "ops-worktree";
  fs::create_directories(worktree / "deep");
  write_file(worktree / ".git", "gitdir: " + (repo / ".git/worktrees/w").string() + "\n");
  const std::map<std::string, std::string> env = {{"BUNDLE_KEY", kKeyHex}};
  const std::string state = (dir_ / "state").string();
  for (const fs::path& inside : {repo / "bundles", worktree / "deep"}) {
    auto r = bundle({"create", "--state-root", state, "--context", "shop", "--store", "dir:" + inside.string(), "--key-env",
                     "BUNDLE_KEY", "--work-dir", dir_.string()},
                    env);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
    EXPECT_NE(r.output.find("is inside the git work tree " + inside.parent_path().string()), std::string::npos) << r.output;
    r = bundle({"create", "--state-root", state, "--context", "shop", "--store", "dir:" + (dir_ / "out").string(),
                "--key-env", "BUNDLE_KEY", "--work-dir", inside.string()},
               env);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("--work-dir " + inside.string() + " is inside the git work tree"), std::string::npos) << r.output;
  }
  EXPECT_FALSE(fs::exists(repo / "bundles"));
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// Two bundles of one context with the same tag (by default the same second)
// have the same id: the second is refused, the first stays as it was.
TEST_F(BundleCli, ABundleIsNeverReplacedByAnotherWithTheSameId) {
  const std::map<std::string, std::string> env = {{"BUNDLE_KEY", kKeyHex}};
  const std::vector<std::string> args = {"create", "--state-root", (dir_ / "state").string(), "--context", "shop",
                                         "--store", "dir:" + (dir_ / "out").string(), "--key-env", "BUNDLE_KEY",
                                         "--tag", "20261202T101500Z", "--work-dir", dir_.string()};
  auto first = bundle(args, env);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const fs::path stored = dir_ / "out/paas-state/shop/shop-20261202T101500Z.bundle";
  const std::string before = run("sha256sum " + stored.string()).output;
  write_file(ctx_ / "config.json", R"({"context":"shop","changed":true})");
  auto second = bundle(args, env);
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_NE(second.output.find(stored.string() + " already exists: a stored object is never replaced"), std::string::npos)
      << second.output;
  EXPECT_EQ(run("sha256sum " + stored.string()).output, before);
  EXPECT_FALSE(fs::exists(stored.string() + ".partial"));
  // Through S3 too (asked first there; see Store::put_new).
  start_s3();
  auto s3_args = args;
  s3_args[6] = "s3";
  auto s3_env_ = s3_env();
  ASSERT_EQ(bundle(s3_args, s3_env_).exit_code, 0);
  auto again = bundle(s3_args, s3_env_);
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_NE(again.output.find("already exists"), std::string::npos) << again.output;
}

}  // namespace
