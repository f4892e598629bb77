// kube-local's process kubelet: how a Pod's first container becomes a local
// process (env from Secrets, claims and emptyDirs as directories, mount
// paths rewritten once), and what makes it refuse to start.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "kube-local/exec_kubelet.h"

using kl::ExecOptions;
using kl::prepare_process;
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
