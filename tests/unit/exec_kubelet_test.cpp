// kube-local's process kubelet: how a Pod's init containers and first
// container become local processes (env from Secrets, claims and emptyDirs as
// directories shared by the Pod's containers, mount paths rewritten once, a
// command from a volume, the image's own PATH), which Pods it runs, and what
// makes a container refuse to start.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "kube-local/exec_kubelet.h"

using kl::ExecOptions;
using kl::prepare_container;
using kl::prepare_init_containers;
using kl::prepare_process;
using kl::volume_command;
using nlohmann::json;

namespace {

json pod(json container, json volumes = json::array()) {
  return {{"metadata", {{"name", "p"}, {"namespace", "ns1"}, {"uid", "u"}}},
          {"spec", {{"containers", {container}}, {"volumes", volumes}}}};
}

ExecOptions opts() {
  ExecOptions o;
  o.images = {{"img:1", "/usr/bin/prog"}};
  o.volume_root = "/tmp/volume-root";
  return o;
}

kl::SecretReader secrets() {
  return [](const std::string& ns, const std::string& name) -> std::optional<std::map<std::string, std::string>> {
    if (ns == "ns1" && name == "s") return std::map<std::string, std::string>{{"K", "secret-value"}};
    return std::nullopt;
  };
}

}  // namespace

TEST(ExecKubelet, MountPathsAreRewrittenOnceAndEnvResolved) {
  const json c = {{"name", "c"},
                  {"image", "img:1"},
                  {"args", {"--root", "/state", "--store=dir:/bundles/x", "--work", "/tmp", "/statefile", "x/state"}},
                  {"env", {{{"name", "A"}, {"value", "/tmp/a"}},
                           {{"name", "S"}, {"valueFrom", {{"secretKeyRef", {{"name", "s"}, {"key", "K"}}}}}},
                           {{"name", "O"}, {"valueFrom", {{"secretKeyRef", {{"name", "none"}, {"key", "K"}, {"optional", true}}}}}},
                           {{"name", "N"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.namespace"}}}}}}}},
                  {"volumeMounts", {{{"name", "state"}, {"mountPath", "/state"}, {"subPath", "root"}},
                                    {{"name", "out"}, {"mountPath", "/bundles"}},
                                    {{"name", "tmp"}, {"mountPath", "/tmp"}}}}};
  const json volumes = {{{"name", "state"}, {"persistentVolumeClaim", {{"claimName", "claim-a"}}}},
                        {{"name", "out"}, {"persistentVolumeClaim", {{"claimName", "claim-b"}}}},
                        {{"name", "tmp"}, {"emptyDir", json::object()}}};
  const auto p = prepare_process(pod(c, volumes), opts(), "/tmp/pods/p", secrets());
  ASSERT_EQ(p.error, "");
  EXPECT_EQ(p.program, "/usr/bin/prog");
  // The volume root itself lives under /tmp: a rewritten path is not rewritten again.
  EXPECT_EQ(p.args, (std::vector<std::string>{"--root", "/tmp/volume-root/ns1/claim-a/root", "--store=dir:/tmp/volume-root/ns1/claim-b/x",
                                              "--work", "/tmp/pods/p/volumes/tmp", "/statefile", "x/state"}));
  EXPECT_EQ(p.env.at("A"), "/tmp/pods/p/volumes/tmp/a");
  EXPECT_EQ(p.env.at("S"), "secret-value");
  EXPECT_FALSE(p.env.count("O"));
  EXPECT_EQ(p.env.at("N"), "ns1");
  EXPECT_EQ(p.env.at("TERMINATION_LOG"), "/tmp/pods/p/termination-log");
}

TEST(ExecKubelet, WhatCannotStartSaysWhy) {
  json c = {{"name", "c"}, {"image", "other"}};
  EXPECT_NE(prepare_process(pod(c), opts(), "/tmp/p", secrets()).error.find("not mapped"), std::string::npos);
  c["image"] = "img:1";
  c["env"] = {{{"name", "S"}, {"valueFrom", {{"secretKeyRef", {{"name", "s"}, {"key", "missing"}}}}}}};
  EXPECT_NE(prepare_process(pod(c), opts(), "/tmp/p", secrets()).error.find("key missing not found in Secret s"), std::string::npos);
  c["env"] = {{{"name", "S"}, {"valueFrom", {{"secretKeyRef", {{"name", "gone"}, {"key", "K"}}}}}}};
  EXPECT_NE(prepare_process(pod(c), opts(), "/tmp/p", secrets()).error.find("Secret gone not found"), std::string::npos);
  c.erase("env");
  c["volumeMounts"] = {{{"name", "nope"}, {"mountPath", "/x"}}};
  EXPECT_NE(prepare_process(pod(c), opts(), "/tmp/p", secrets()).error.find("no such volume"), std::string::npos);
  c["volumeMounts"] = {{{"name", "v"}, {"mountPath", "/x"}, {"subPath", "../../etc"}}};
  EXPECT_NE(prepare_process(pod(c, {{{"name", "v"}, {"persistentVolumeClaim", {{"claimName", "c"}}}}}), opts(), "/tmp/p",
                            secrets()).error.find("must be relative"), std::string::npos);
}

TEST(ExecKubelet, RunsAsThePodsUserAndGivesItAFreshClaim) {
  if (geteuid() != 0) GTEST_SKIP() << "only root can run a Pod as another user";
  char tmpl[] = "/tmp/exec-kubelet-uid-XXXXXX";
  ASSERT_TRUE(mkdtemp(tmpl));
  ExecOptions o;
  o.images = {{"img:1", "/usr/bin/id"}};
  o.volume_root = std::string(tmpl) + "/volumes";
  const json c = {{"name", "c"}, {"image", "img:1"}, {"args", {"-u"}},
                  {"volumeMounts", {{{"name", "data"}, {"mountPath", "/data"}}}}};
  json p = pod(c, {{{"name", "data"}, {"persistentVolumeClaim", {{"claimName", "fresh"}}}}});
  p["spec"]["securityContext"] = {{"runAsUser", 65534}, {"runAsGroup", 65534}, {"fsGroup", 65534}};
  const auto prepared = prepare_process(p, o, std::string(tmpl) + "/pod", secrets());
  ASSERT_EQ(prepared.error, "");
  EXPECT_EQ(prepared.uid, 65534);
  EXPECT_EQ(prepared.gid, 65534);
  struct stat st {};
  ASSERT_EQ(::stat((o.volume_root / "ns1" / "fresh").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  // The container's own securityContext wins over the Pod's.
  p["spec"]["containers"][0]["securityContext"] = {{"runAsUser", 1234}};
  EXPECT_EQ(prepare_process(p, o, std::string(tmpl) + "/pod", secrets()).uid, 1234);
  std::filesystem::remove_all(tmpl);
}

namespace {

json with_mounts(json command, json mounts) {
  return {{"name", "c"}, {"image", "img:1"}, {"command", std::move(command)}, {"volumeMounts", std::move(mounts)}};
}

}  // namespace

// command[0] lies on a volume when, as the container's filesystem resolves it, it is a file
// strictly below one of the container's mountPaths (the deepest wins).
TEST(ExecKubelet, ACommandLiesOnAVolumeOnlyBelowAMountPath) {
  const json tools = {{"name", "tools"}, {"mountPath", "/tools"}};
  const json bin = {{"name", "bin"}, {"mountPath", "/tools/bin"}};
  struct Case {
    const char* what;
    json container;
    std::optional<size_t> mount;
    std::string rest;
  };
  const std::vector<Case> cases = {
      {"a file below the mount", with_mounts({"/tools/ld.so", "--library-path", "/tools/lib"}, {tools}), 0, "ld.so"},
      {"the deepest mount wins", with_mounts({"/tools/bin/wal-g"}, {tools, bin}), 1, "wal-g"},
      {"a trailing slash on the mountPath", with_mounts({"/tools/ld.so"}, {{{"name", "t"}, {"mountPath", "/tools/"}}}), 0, "ld.so"},
      {"a path normalized first", with_mounts({"/tools//bin/./x"}, {tools}), 0, "bin/x"},
      {"the mount point itself is no file", with_mounts({"/tools"}, {tools}), std::nullopt, ""},
      {"a sibling sharing the prefix", with_mounts({"/toolsx/ld.so"}, {tools}), std::nullopt, ""},
      {"dot-dot leaves the volume", with_mounts({"/tools/../bin/sh"}, {tools}), std::nullopt, ""},
      {"a relative command is looked up on PATH", with_mounts({"tools/ld.so"}, {tools}), std::nullopt, ""},
      {"no command: the image's entrypoint", with_mounts(json::array(), {tools}), std::nullopt, ""},
      {"no mounts", with_mounts({"/tools/ld.so"}, json::array()), std::nullopt, ""},
  };
  for (const auto& c : cases) {
    const auto got = volume_command(c.container);
    ASSERT_EQ(got.has_value(), c.mount.has_value()) << c.what;
    if (!got) continue;
    EXPECT_EQ(got->mount, *c.mount) << c.what;
    EXPECT_EQ(got->rest, c.rest) << c.what;
  }
}

// What runs and with which PATH: a command from a volume wins over the image's mapped program;
// otherwise the mapped program stands for command[0]; an image known only by its PATH runs a
// command from a volume or from its own directories (APathOnlyImagesCommandIsFoundOnItsPath).
TEST(ExecKubelet, TheProgramIsTheVolumeFileOrTheImagesMappedProgram) {
  ExecOptions o = opts();
  o.images["tools:1"] = "/usr/bin/tools";
  o.image_paths["db:15"] = {"/usr/lib/postgresql/15/bin", "/opt/db/bin"};
  o.image_paths["tools:1"] = {"/opt/tools/bin"};
  o.path = {"/opt/global/bin"};
  const json volumes = {{{"name", "tools"}, {"emptyDir", json::object()}}};
  const json mount = {{{"name", "tools"}, {"mountPath", "/tools"}}};
  struct Case {
    const char* what;
    std::string image;
    json command;
    std::string program;  // empty: refused
    std::vector<std::string> args;
    std::string path;
  };
  const std::string host = "/tmp/pods/p/volumes/tools";
  const std::vector<Case> cases = {
      {"a volume command in a PATH-only image", "db:15", {"/tools/ld.so", "--library-path", "/tools/lib", "/tools/bin/op", "verify"},
       host + "/ld.so", {"--library-path", host + "/lib", host + "/bin/op", "verify"},
       "/usr/lib/postgresql/15/bin:/opt/db/bin:/opt/global/bin:/usr/local/bin:/usr/bin:/bin"},
      {"a volume command wins over the mapped program", "tools:1", {"/tools/run", "x"}, host + "/run", {"x"},
       "/opt/tools/bin:/opt/global/bin:/usr/local/bin:/usr/bin:/bin"},
      {"the mapped program stands for command[0]", "tools:1", {"tools", "run-job", "install-tools"}, "/usr/bin/tools",
       {"run-job", "install-tools"}, "/opt/tools/bin:/opt/global/bin:/usr/local/bin:/usr/bin:/bin"},
      {"no command: the mapped program", "img:1", json::array(), "/usr/bin/prog", {}, "/opt/global/bin:/usr/local/bin:/usr/bin:/bin"},
      {"a volume command in an image mapped nowhere", "elsewhere:2", {"/tools/run"}, host + "/run", {},
       "/opt/global/bin:/usr/local/bin:/usr/bin:/bin"},
      {"a PATH-only image needs a command", "db:15", json::array(), "", {}, ""},
      {"an unmapped image without a volume command", "elsewhere:2", {"/bin/true"}, "", {}, ""},
  };
  for (const auto& c : cases) {
    json container = {{"name", "c"}, {"image", c.image}, {"command", c.command}, {"volumeMounts", mount}};
    const auto p = prepare_process(pod(container, volumes), o, "/tmp/pods/p", secrets());
    if (c.program.empty()) {
      EXPECT_NE(p.error.find("is not mapped with --exec-image"), std::string::npos) << c.what << ": " << p.error;
      continue;
    }
    ASSERT_EQ(p.error, "") << c.what;
    EXPECT_EQ(p.program, c.program) << c.what;
    EXPECT_EQ(p.args, c.args) << c.what;
    EXPECT_EQ(p.env.at("PATH"), c.path) << c.what;
  }
  // The refusal of a PATH-only image without a command says what is missing.
  json db = {{"name", "c"}, {"image", "db:15"}};
  EXPECT_NE(prepare_process(pod(db), o, "/tmp/pods/p", secrets()).error.find("only with --exec-image-path"), std::string::npos);
  // The container's own PATH still wins, as an env entry does in a real container.
  db["command"] = {"/tools/x"};
  db["volumeMounts"] = mount;
  db["env"] = {{{"name", "PATH"}, {"value", "/mine"}}};
  EXPECT_EQ(prepare_process(pod(db, volumes), o, "/tmp/pods/p", secrets()).env.at("PATH"), "/mine");
}

// Init containers are prepared like containers, in order, each with its own image mapping, env,
// identity and termination message, and the same volume directories as every other container.
TEST(ExecKubelet, InitContainersShareThePodsVolumesAndKeepTheirOwnMessages) {
  ExecOptions o = opts();
  o.images["tools:1"] = "/usr/bin/tools";
  o.image_paths["db:15"] = {"/usr/lib/postgresql/15/bin"};
  json p = pod({{"name", "postgres"}, {"image", "db:15"}, {"command", {"/opt/tools/ld.so", "/opt/tools/bin/op"}},
                {"volumeMounts", {{{"name", "tools"}, {"mountPath", "/opt/tools"}},
                                  {{"name", "data"}, {"mountPath", "/data"}, {"subPath", "pgdata"}}}}},
               {{{"name", "tools"}, {"emptyDir", json::object()}},
                {{"name", "data"}, {"persistentVolumeClaim", {{"claimName", "claim-a"}}}}});
  p["spec"]["initContainers"] = {
      {{"name", "tools"}, {"image", "tools:1"}, {"args", {"run-job", "install-tools"}},
       {"env", {{{"name", "TOOLS_DIR"}, {"value", "/tools"}}}},
       {"volumeMounts", {{{"name", "tools"}, {"mountPath", "/tools"}}}}},
      {{"name", "check"}, {"image", "img:1"}, {"args", {"/data/x"}},
       {"env", {{{"name", "S"}, {"valueFrom", {{"secretKeyRef", {{"name", "s"}, {"key", "K"}}}}}}}},
       {"volumeMounts", {{{"name", "data"}, {"mountPath", "/data"}}}}}};
  const auto init = prepare_init_containers(p, o, "/tmp/pods/p", secrets());
  const auto main = prepare_process(p, o, "/tmp/pods/p", secrets());
  ASSERT_EQ(init.size(), 2u);
  ASSERT_EQ(init[0].error, "");
  ASSERT_EQ(init[1].error, "");
  ASSERT_EQ(main.error, "");
  EXPECT_EQ(init[0].name, "tools");
  EXPECT_EQ(init[0].program, "/usr/bin/tools");
  EXPECT_EQ(init[0].args, (std::vector<std::string>{"run-job", "install-tools"}));
  // The emptyDir an init container fills is the directory the main container runs its command from.
  EXPECT_EQ(init[0].env.at("TOOLS_DIR"), "/tmp/pods/p/volumes/tools");
  EXPECT_EQ(main.program, "/tmp/pods/p/volumes/tools/ld.so");
  EXPECT_EQ(main.args, (std::vector<std::string>{"/tmp/pods/p/volumes/tools/bin/op"}));
  // A claim without subPath in one container, with one in another: the same directory below.
  EXPECT_EQ(init[1].args, (std::vector<std::string>{"/tmp/volume-root/ns1/claim-a/x"}));
  EXPECT_EQ(init[1].env.at("S"), "secret-value");
  EXPECT_FALSE(main.env.count("S"));  // env is each container's own
  // Each container's termination message is its own file; the first container keeps the Pod's.
  EXPECT_EQ(init[0].env.at("TERMINATION_LOG"), "/tmp/pods/p/init-0/termination-log");
  EXPECT_EQ(init[1].env.at("TERMINATION_LOG"), "/tmp/pods/p/init-1/termination-log");
  EXPECT_EQ(main.env.at("TERMINATION_LOG"), "/tmp/pods/p/termination-log");
  EXPECT_EQ(init[0].env.at("HOME"), main.env.at("HOME"));
  // What cannot start says why, per init container.
  p["spec"]["initContainers"][1]["image"] = "unmapped";
  p["spec"]["initContainers"][0]["env"] = {{{"name", "S"}, {"valueFrom", {{"secretKeyRef", {{"name", "gone"}, {"key", "K"}}}}}}};
  const auto refused = prepare_init_containers(p, o, "/tmp/pods/p", secrets());
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_NE(refused[0].error.find("Secret gone not found"), std::string::npos) << refused[0].error;
  EXPECT_NE(refused[1].error.find("image unmapped is not mapped"), std::string::npos) << refused[1].error;
  EXPECT_NE(prepare_container(p, "initContainers", 2, o, "/tmp/pods/p", secrets()).error, "");
  EXPECT_TRUE(prepare_init_containers(pod({{"name", "c"}, {"image", "img:1"}}), o, "/tmp/p", secrets()).empty());
}

TEST(ExecKubelet, InitContainersRunAsTheirOwnUser) {
  if (geteuid() != 0) GTEST_SKIP() << "only root can run a Pod as another user";
  json p = pod({{"name", "main"}, {"image", "img:1"}});
  p["spec"]["securityContext"] = {{"runAsUser", 65534}, {"runAsGroup", 65534}, {"fsGroup", 70}};
  p["spec"]["initContainers"] = {{{"name", "a"}, {"image", "img:1"}},
                                 {{"name", "b"}, {"image", "img:1"}, {"securityContext", {{"runAsUser", 1234}}}}};
  const auto init = prepare_init_containers(p, opts(), "/tmp/p", secrets());
  ASSERT_EQ(init.size(), 2u);
  EXPECT_EQ(init[0].uid, 65534);
  EXPECT_EQ(init[0].fs_group, 70);
  EXPECT_EQ(init[1].uid, 1234);
  EXPECT_EQ(init[1].gid, 65534);  // runAsGroup from the Pod
}

// Which Pods the process kubelet runs: every init container's and the first container's image
// mapped (a program or a PATH), or the container's command on one of its volumes.
TEST(ExecKubelet, HandlesPodsWhoseContainersItCanRun) {
  ExecOptions o = opts();
  o.image_paths["db:15"] = {"/usr/lib/postgresql/15/bin"};
  const kl::ExecKubelet kubelet(o);
  const json mounted = {{"name", "c"}, {"image", "nowhere"}, {"command", {"/tools/run"}},
                        {"volumeMounts", {{{"name", "tools"}, {"mountPath", "/tools"}}}}};
  struct Case {
    const char* what;
    json init;
    json main;
    bool handled;
  };
  const std::vector<Case> cases = {
      {"a mapped image", json::array(), {{"name", "c"}, {"image", "img:1"}}, true},
      {"an unmapped image", json::array(), {{"name", "c"}, {"image", "nowhere"}}, false},
      {"a PATH-only image", json::array(), {{"name", "c"}, {"image", "db:15"}}, true},
      {"an unmapped image running a file on its volume", json::array(), mounted, true},
      {"mapped init containers", json::array({{{"name", "i"}, {"image", "img:1"}}, {{"name", "j"}, {"image", "db:15"}}}),
       {{"name", "c"}, {"image", "img:1"}}, true},
      {"one unmapped init container", json::array({{{"name", "i"}, {"image", "img:1"}}, {{"name", "j"}, {"image", "nowhere"}}}),
       {{"name", "c"}, {"image", "img:1"}}, false},
      {"an init container running a file on its volume", json::array({mounted}), {{"name", "c"}, {"image", "img:1"}}, true},
  };
  for (const auto& c : cases) {
    json p = pod(c.main);
    p["spec"]["initContainers"] = c.init;
    EXPECT_EQ(kubelet.handles(p), c.handled) << c.what;
  }
  json none = pod({{"name", "c"}, {"image", "img:1"}});
  none["spec"]["containers"] = json::array();
  EXPECT_FALSE(kubelet.handles(none));
}

// An image mapped by its directories alone (--exec-image-path supabase/postgres:15=/usr/lib/postgresql/15/bin)
// runs command[0] as a runtime finds it: a bare name on the container's PATH (the image's directories
// first), an absolute path inside one of the image's directories; anything else is left for exec to
// refuse (StartError), as a runtime's exec would.
TEST(ExecKubelet, APathOnlyImagesCommandIsFoundOnItsPath) {
  const auto root = std::filesystem::temp_directory_path() / ("exec-image-" + std::to_string(::getpid()));
  std::filesystem::create_directories(root / "bin");
  std::filesystem::create_directories(root / "later");
  for (const auto& f : {root / "bin" / "postgres", root / "later" / "postgres", root / "later" / "pg_ctl"}) {
    std::ofstream(f) << "#!/bin/sh\n";
    ::chmod(f.c_str(), 0755);
  }
  std::ofstream(root / "bin" / "notes") << "not a program\n";
  ExecOptions o = opts();
  o.image_paths["pg:15"] = {(root / "bin").string(), (root / "later").string()};
  const json volumes = {{{"name", "data"}, {"emptyDir", json::object()}}};
  struct Case {
    const char* what;
    json container;
    std::string program;
    std::vector<std::string> args;
  };
  const std::vector<Case> cases = {
      {"the first directory on PATH wins",
       {{"command", {"postgres", "-D", "/data/pgdata"}}, {"volumeMounts", {{{"name", "data"}, {"mountPath", "/data"}}}}},
       (root / "bin" / "postgres").string(), {"-D", "/tmp/pods/p/volumes/data/pgdata"}},
      {"a later directory", {{"command", {"pg_ctl", "stop"}}}, (root / "later" / "pg_ctl").string(), {"stop"}},
      {"a system program further down PATH", {{"command", {"sh", "-c", "true"}}}, "", {"-c", "true"}},
      {"a file that is not executable is passed over", {{"command", {"notes"}}}, "notes", {}},
      {"an absolute path in the image's directories", {{"command", {(root / "later" / "postgres").string()}}},
       (root / "later" / "postgres").string(), {}},
      {"an absolute path elsewhere stays for exec to refuse", {{"command", {"/opt/nowhere/postgres"}}}, "/opt/nowhere/postgres", {}},
      {"a name found nowhere stays for exec to refuse", {{"command", {"no-such-program"}}}, "no-such-program", {}},
      {"the container's own PATH is the one searched",
       {{"command", {"postgres"}}, {"env", {{{"name", "PATH"}, {"value", (root / "later").string()}}}}},
       (root / "later" / "postgres").string(), {}},
  };
  for (const auto& c : cases) {
    json container = c.container;
    container["name"] = "c";
    container["image"] = "pg:15";
    const auto p = prepare_process(pod(container, volumes), o, "/tmp/pods/p", secrets());
    ASSERT_EQ(p.error, "") << c.what;
    if (c.program.empty()) {
      EXPECT_TRUE(p.program.ends_with("/sh")) << c.what << ": " << p.program;  // /usr/bin/sh or /bin/sh
    } else {
      EXPECT_EQ(p.program, c.program) << c.what;
    }
    EXPECT_EQ(p.args, c.args) << c.what;
  }
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
}
