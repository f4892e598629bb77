// kube-local's container kubelet, without a runtime: the `podman create`
// command a Pod's container becomes (user and groups, runAsNonRoot,
// read-only root, capabilities from containerd's defaults, no-new-privileges,
// seccomp, env with Secret values kept off the argv, volumes, the termination
// message), image names as containerd normalises them, and the volume
// directories made before a container starts (fsGroup ownership).
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "kube-local/container_kubelet.h"

using kl::container_run;
using kl::effective_capabilities;
using kl::ExecOptions;
using kl::ImageInfo;
using kl::normalize_image;
using kl::verify_run_as_non_root;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

json pod(json container, json pod_sc = json::object(), json volumes = json::array(), json init = json::array()) {
  return {{"metadata", {{"name", "p"}, {"namespace", "ns1"}, {"uid", "u1"}}},
          {"spec", {{"containers", {container}}, {"initContainers", init}, {"volumes", volumes}, {"securityContext", pod_sc}}}};
}

ExecOptions opts() {
  ExecOptions o;
  o.runtime = "/usr/bin/podman";
  o.runtime_options = {"--runtime=runc", "--ulimit=nofile=1024:4096"};
  o.volume_root = "/vr";
  return o;
}

kl::SecretReader secrets() {
  return [](const std::string& ns, const std::string& name) -> std::optional<std::map<std::string, std::string>> {
    if (ns == "ns1" && name == "s") return std::map<std::string, std::string>{{"K", "hunter2-secret"}};
    return std::nullopt;
  };
}

bool has(const std::vector<std::string>& argv, const std::string& arg) {
  return std::find(argv.begin(), argv.end(), arg) != argv.end();
}

std::vector<std::string> starting_with(const std::vector<std::string>& argv, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& a : argv)
    if (a.starts_with(prefix)) out.push_back(a);
  return out;
}

}  // namespace

TEST(ContainerKubelet, ImageNamesAreNormalisedAsContainerdDoes) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"debian:12-slim", "docker.io/library/debian:12-slim"},
      {"debian", "docker.io/library/debian:latest"},
      {"bitnami/postgresql:15", "docker.io/bitnami/postgresql:15"},
      {"docker.io/library/debian:12", "docker.io/library/debian:12"},
      {"localhost/backup-operator:dev", "localhost/backup-operator:dev"},
      {"registry.example:5000/team/app", "registry.example:5000/team/app:latest"},
      {"ghcr.io/x/y@sha256:abc", "ghcr.io/x/y@sha256:abc"},
  };
  for (const auto& [in, want] : cases) EXPECT_EQ(normalize_image(in), want) << in;
}

TEST(ContainerKubelet, RunAsNonRootRefusesWhatTheKubeletRefuses) {
  struct Case {
    std::string what;
    json pod_sc, c_sc;
    std::string image_user;
    std::string error;  // "" allowed, else the start of the message
  };
  const json non_root = {{"runAsNonRoot", true}};
  const std::vector<Case> cases = {
      {"not asked for", json::object(), json::object(), "", ""},
      {"asked, runAsUser 1000", non_root, {{"runAsUser", 1000}}, "", ""},
      {"asked, runAsUser 0", non_root, {{"runAsUser", 0}}, "1000", "container's runAsUser breaks non-root policy"},
      {"asked, image without a user", non_root, json::object(), "", "container has runAsNonRoot and image will run as root"},
      {"asked, image user 0", non_root, json::object(), "0", "container has runAsNonRoot and image will run as root"},
      {"asked, image user 0:0", non_root, json::object(), "0:0", "container has runAsNonRoot and image will run as root"},
      {"asked, image user 1000:1000", non_root, json::object(), "1000:1000", ""},
      {"asked, image user by name", non_root, json::object(), "postgres",
       "container has runAsNonRoot and image has non-numeric user (postgres), cannot verify user is non-root"},
      {"asked by the container over the Pod's false", {{"runAsNonRoot", false}}, non_root, "", "container has runAsNonRoot and image will run as root"},
      {"the container's false over the Pod's", non_root, {{"runAsNonRoot", false}}, "", ""},
      {"the Pod's runAsUser 0 under the container's runAsUser", {{"runAsNonRoot", true}, {"runAsUser", 0}},
       {{"runAsUser", 70}}, "", ""},
  };
  for (const auto& c : cases) {
    const json container = {{"name", "db"}, {"image", "img"}, {"securityContext", c.c_sc}};
    const auto err = verify_run_as_non_root(pod(container, c.pod_sc), container, c.image_user);
    if (c.error.empty()) {
      EXPECT_FALSE(err.has_value()) << c.what << ": " << err.value_or("");
    } else {
      ASSERT_TRUE(err.has_value()) << c.what;
      EXPECT_TRUE(err->starts_with(c.error)) << c.what << ": " << *err;
      // The kubelet names the Pod as format.Pod does.
      EXPECT_TRUE(err->ends_with("(pod: \"p_ns1(u1)\", container: db)")) << *err;
    }
  }
}

TEST(ContainerKubelet, CapabilitiesStartFromContainerdsDefaultsThenAddAndDrop) {
  const std::vector<std::string> defaults = {
      "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_MKNOD",
      "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"};
  struct Case {
    std::string what;
    json caps;
    std::vector<std::string> want;
  };
  std::vector<std::string> without_chown = defaults;
  std::erase(without_chown, "CAP_CHOWN");
  std::vector<std::string> plus_admin = defaults;
  plus_admin.push_back("CAP_NET_ADMIN");
  std::sort(plus_admin.begin(), plus_admin.end());
  const std::vector<Case> cases = {
      {"none given", json::object(), defaults},
      {"drop ALL", {{"drop", {"ALL"}}}, {}},
      {"drop ALL, add one back", {{"drop", {"ALL"}}, {"add", {"NET_BIND_SERVICE"}}}, {"CAP_NET_BIND_SERVICE"}},
      {"drop one, lower case", {{"drop", {"chown"}}}, without_chown},
      {"add one", {{"add", {"NET_ADMIN"}}}, plus_admin},
      {"a drop wins over an add of the same", {{"add", {"NET_ADMIN"}}, {"drop", {"NET_ADMIN"}}}, defaults},
  };
  for (const auto& c : cases) EXPECT_EQ(effective_capabilities(c.caps), c.want) << c.what;
  const auto all_but_chown = effective_capabilities({{"add", {"ALL"}}, {"drop", {"CHOWN"}}});
  EXPECT_EQ(all_but_chown.size(), 40u);
  EXPECT_FALSE(std::count(all_but_chown.begin(), all_but_chown.end(), "CAP_CHOWN"));
  EXPECT_TRUE(std::count(all_but_chown.begin(), all_but_chown.end(), "CAP_SYS_ADMIN"));
}

TEST(ContainerKubelet, ARestrictedContainerBecomesThisPodmanCreate) {
  const json c = {
      {"name", "main"},
      {"image", "debian:12-slim"},
      {"command", {"/bin/sh", "-c"}},
      {"args", {"echo hi", 7}},
      {"workingDir", "/work"},
      {"env", {{{"name", "PLAIN"}, {"value", "v"}},
               {{"name", "PASSWORD"}, {"valueFrom", {{"secretKeyRef", {{"name", "s"}, {"key", "K"}}}}}},
               {{"name", "POD"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "metadata.name"}}}}}}}},
      {"volumeMounts", {{{"name", "data"}, {"mountPath", "/data"}, {"subPath", "pg"}},
                        {{"name", "scratch"}, {"mountPath", "/scratch"}},
                        {{"name", "conf"}, {"mountPath", "/conf"}, {"readOnly", true}}}},
      {"terminationMessagePath", "/dev/termination-log"},
      {"securityContext", {{"readOnlyRootFilesystem", true},
                           {"allowPrivilegeEscalation", false},
                           {"runAsNonRoot", true},
                           {"capabilities", {{"drop", {"ALL"}}}},
                           {"seccompProfile", {{"type", "RuntimeDefault"}}}}}};
  const json volumes = {{{"name", "data"}, {"persistentVolumeClaim", {{"claimName", "pgdata"}}}},
                        {{"name", "scratch"}, {"emptyDir", json::object()}},
                        {{"name", "conf"}, {"emptyDir", json::object()}}};
  const json pod_sc = {{"runAsUser", 1000}, {"runAsGroup", 2000}, {"fsGroup", 3000}, {"supplementalGroups", {4000}}};
  const auto run = container_run(pod(c, pod_sc, volumes), "containers", 0, ImageInfo{""}, opts(), "/pods/u1", secrets());
  ASSERT_EQ(run.error, "");
  const std::vector<std::string> want = {
      "/usr/bin/podman", "create", "--replace", "--name=kube-local-u1-main", "--pull=never",
      "--runtime=runc", "--ulimit=nofile=1024:4096",
      "--network=host", "--hostname=p",
      "--label=io.kubernetes.pod.name=p", "--label=io.kubernetes.pod.namespace=ns1",
      "--label=io.kubernetes.pod.uid=u1", "--label=io.kubernetes.container.name=main",
      "--user=1000:2000", "--group-add=3000", "--group-add=4000",
      "--read-only", "--read-only-tmpfs=false",
      "--cap-drop=all",
      "--security-opt=no-new-privileges",
      "--workdir=/work",
      "--env=PLAIN=v", "--env=PASSWORD", "--env=POD=p",
      "--volume=/vr/ns1/pgdata/pg:/data", "--volume=/pods/u1/volumes/scratch:/scratch",
      "--volume=/pods/u1/volumes/conf:/conf:ro",
      "--volume=/pods/u1/termination-log:/dev/termination-log",
      "--entrypoint=[\"/bin/sh\",\"-c\"]",
      "docker.io/library/debian:12-slim", "echo hi", "7"};
  EXPECT_EQ(run.argv, want);
  // The Secret's value is podman's environment only.
  EXPECT_EQ(run.secret_env, (std::map<std::string, std::string>{{"PASSWORD", "hunter2-secret"}}));
  for (const auto& a : run.argv) EXPECT_EQ(a.find("hunter2"), std::string::npos) << a;
  EXPECT_EQ(run.runtime_name, "kube-local-u1-main");
  EXPECT_EQ(run.dir, fs::path("/pods/u1"));
  EXPECT_EQ(run.uid, 1000);
  EXPECT_EQ(run.gid, 2000);
  EXPECT_EQ(run.fs_group, 3000);
  ASSERT_EQ(run.volumes.size(), 3u);
  EXPECT_EQ(run.volumes[0].root, fs::path("/vr/ns1/pgdata"));
  EXPECT_EQ(run.volumes[0].host, fs::path("/vr/ns1/pgdata/pg"));
  EXPECT_TRUE(run.volumes[0].claim);
  EXPECT_FALSE(run.volumes[1].claim);
  EXPECT_TRUE(run.volumes[2].read_only);
}

TEST(ContainerKubelet, DefaultsAreKubernetesNotPodman) {
  // Nothing set: containerd's 14 capabilities (podman would give 11), seccomp unconfined as
  // Kubernetes defaults to, the image's user, no read-only root, privilege escalation allowed.
  const json c = {{"name", "c"}, {"image", "img:1"}};
  const auto run = container_run(pod(c), "containers", 0, ImageInfo{"postgres"}, opts(), "/pods/u1", secrets());
  ASSERT_EQ(run.error, "");
  EXPECT_EQ(starting_with(run.argv, "--cap-add=").size(), 14u);
  EXPECT_TRUE(has(run.argv, "--cap-add=CAP_NET_RAW"));
  EXPECT_TRUE(has(run.argv, "--security-opt=seccomp=unconfined"));
  EXPECT_TRUE(starting_with(run.argv, "--user=").empty());
  EXPECT_FALSE(has(run.argv, "--read-only"));
  EXPECT_FALSE(has(run.argv, "--security-opt=no-new-privileges"));
  EXPECT_TRUE(starting_with(run.argv, "--entrypoint").empty());
  EXPECT_TRUE(has(run.argv, "--volume=/pods/u1/termination-log:/dev/termination-log"));
  EXPECT_EQ(run.argv.back(), "docker.io/library/img:1");
  EXPECT_EQ(run.uid, -1);
}

TEST(ContainerKubelet, UserAndGroupFollowTheKubelet) {
  struct Case {
    std::string what;
    json pod_sc, c_sc;
    std::string image_user;
    std::vector<std::string> want;  // the --user and --group-add arguments
  };
  const std::vector<Case> cases = {
      {"the container's runAsUser over the Pod's", {{"runAsUser", 1}}, {{"runAsUser", 2}}, "", {"--user=2"}},
      {"runAsGroup alone goes with the image's user", {{"runAsGroup", 5}}, json::object(), "70:70", {"--user=70:5"}},
      {"runAsGroup alone, an image without a user", json::object(), {{"runAsGroup", 5}}, "", {"--user=0:5"}},
      {"fsGroup and supplementalGroups", {{"fsGroup", 9}, {"supplementalGroups", {10, 11}}}, json::object(), "",
       {"--group-add=9", "--group-add=10", "--group-add=11"}},
  };
  for (const auto& c : cases) {
    const json container = {{"name", "c"}, {"image", "img"}, {"securityContext", c.c_sc}};
    const auto run = container_run(pod(container, c.pod_sc), "containers", 0, ImageInfo{c.image_user}, opts(), "/p", secrets());
    ASSERT_EQ(run.error, "") << c.what;
    auto got = starting_with(run.argv, "--user=");
    for (const auto& g : starting_with(run.argv, "--group-add=")) got.push_back(g);
    EXPECT_EQ(got, c.want) << c.what;
  }
}

TEST(ContainerKubelet, PrivilegedIsPassedAndInitContainersHaveTheirOwnDirectory) {
  const json init = json::array({{{"name", "setup"}, {"image", "img"}, {"securityContext", {{"privileged", true}}}}});
  const json c = {{"name", "main"}, {"image", "img"}};
  const auto run = container_run(pod(c, json::object(), json::array(), init), "initContainers", 0, ImageInfo{}, opts(),
                                 "/pods/u1", secrets());
  ASSERT_EQ(run.error, "");
  EXPECT_TRUE(has(run.argv, "--privileged"));
  EXPECT_TRUE(starting_with(run.argv, "--cap-").empty());
  EXPECT_EQ(run.runtime_name, "kube-local-u1-setup");
  EXPECT_EQ(run.dir, fs::path("/pods/u1/init-0"));
  EXPECT_TRUE(has(run.argv, "--volume=/pods/u1/init-0/termination-log:/dev/termination-log"));
}

TEST(ContainerKubelet, WhatCannotBeMadeSaysWhyAndMakesNoCommand) {
  struct Case {
    std::string what;
    json c;
    json volumes;
    std::string image_user;
    std::string error;  // a part of the message
  };
  const std::vector<Case> cases = {
      {"runAsNonRoot, image root", {{"securityContext", {{"runAsNonRoot", true}}}}, json::array(), "0", "image will run as root"},
      {"a missing Secret", {{"env", {{{"name", "S"}, {"valueFrom", {{"secretKeyRef", {{"name", "gone"}, {"key", "K"}}}}}}}}},
       json::array(), "", "Secret gone not found"},
      {"a Localhost seccomp profile", {{"securityContext", {{"seccompProfile", {{"type", "Localhost"}, {"localhostProfile", "x.json"}}}}}},
       json::array(), "", "seccompProfile Localhost is not supported"},
      {"a mountPath with ':'", {{"volumeMounts", {{{"name", "v"}, {"mountPath", "/a:b"}}}}},
       {{{"name", "v"}, {"emptyDir", json::object()}}}, "", "cannot mount a path with ':'"},
      {"a Secret volume", {{"volumeMounts", {{{"name", "v"}, {"mountPath", "/s"}}}}},
       {{{"name", "v"}, {"secret", {{"secretName", "s"}}}}}, "", "no such volume (or an unsupported volume type)"},
      {"a subPath leaving its volume", {{"volumeMounts", {{{"name", "v"}, {"mountPath", "/s"}, {"subPath", "../x"}}}}},
       {{{"name", "v"}, {"emptyDir", json::object()}}}, "", "must be relative"},
  };
  for (const auto& c : cases) {
    json container = c.c;
    container["name"] = "c";
    container["image"] = "img";
    const auto run = container_run(pod(container, json::object(), c.volumes), "containers", 0, ImageInfo{c.image_user},
                                   opts(), "/p", secrets());
    EXPECT_NE(run.error.find(c.error), std::string::npos) << c.what << ": " << run.error;
  }
}

TEST(ContainerKubelet, VolumeDirectoriesGetTheFsGroupAsAKubeletGivesThem) {
  const fs::path root = fs::temp_directory_path() / ("container-kubelet-test-" + std::to_string(::getpid()));
  fs::remove_all(root);
  // A claim with a file already in it, an emptyDir made fresh; the group is this process's own
  // (any user may give its files its own group).
  fs::create_directories(root / "vr" / "ns1" / "claim" / "sub");
  std::ofstream(root / "vr" / "ns1" / "claim" / "sub" / "f") << "x";
  ::chmod((root / "vr" / "ns1" / "claim" / "sub" / "f").c_str(), 0600);
  const long long group = static_cast<long long>(::getegid());
  ExecOptions o = opts();
  o.volume_root = root / "vr";
  const json c = {{"name", "c"}, {"image", "img"},
                  {"volumeMounts", {{{"name", "data"}, {"mountPath", "/data"}}, {{"name", "tmp"}, {"mountPath", "/tmp"}}}}};
  const json volumes = {{{"name", "data"}, {"persistentVolumeClaim", {{"claimName", "claim"}}}},
                        {{"name", "tmp"}, {"emptyDir", json::object()}}};
  const auto run = container_run(pod(c, {{"fsGroup", group}}, volumes), "containers", 0, ImageInfo{}, o, root / "pod", secrets());
  ASSERT_EQ(run.error, "");
  std::set<fs::path> owned;
  ASSERT_EQ(kl::prepare_container_dirs(run, owned), "");
  auto mode = [](const fs::path& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return st.st_mode & 07777;
  };
  auto gid = [](const fs::path& p) {
    struct stat st {};
    ::stat(p.c_str(), &st);
    return static_cast<long long>(st.st_gid);
  };
  const fs::path claim = root / "vr" / "ns1" / "claim";
  EXPECT_EQ(mode(claim) & 02770, 02770u);
  EXPECT_EQ(mode(claim / "sub") & 02770, 02770u);
  EXPECT_EQ(mode(claim / "sub" / "f"), 0660u);  // g+rw, no setgid or x on a file
  EXPECT_EQ(gid(claim / "sub" / "f"), group);
  const fs::path empty_dir = root / "pod" / "volumes" / "tmp";
  EXPECT_EQ(mode(empty_dir), 02777u);  // the kubelet's 0777 emptyDir, then setgid
  EXPECT_EQ(gid(empty_dir), group);
  // The container's termination message file: anyone may write it, empty at the start.
  EXPECT_EQ(mode(root / "pod" / "termination-log"), 0666u);
  EXPECT_EQ(fs::file_size(root / "pod" / "termination-log"), 0u);
  EXPECT_EQ(owned, (std::set<fs::path>{claim, empty_dir}));
  fs::remove_all(root);
}

TEST(ContainerKubelet, AFailedContainersMessageMayComeFromTheEndOfItsLog) {
  std::string log;
  for (int i = 1; i <= 100; ++i) log += "line " + std::to_string(i) + "\n";
  std::string last80;
  for (int i = 21; i <= 100; ++i) last80 += "line " + std::to_string(i) + "\n";
  struct Case {
    std::string what, log, want;
  };
  const std::vector<Case> cases = {
      {"empty", "", ""},
      {"a few lines", "a\nb\n", "a\nb\n"},
      {"no final newline", "a\nb", "a\nb"},
      {"the last 80 lines", log, last80},
      {"at most the last 2048 bytes", std::string(3000, 'x'), std::string(2048, 'x')},
  };
  for (const auto& c : cases) EXPECT_EQ(kl::termination_message_from_log(c.log), c.want) << c.what;
  const json c = {{"name", "c"}, {"image", "img"}, {"terminationMessagePolicy", "FallbackToLogsOnError"}};
  EXPECT_TRUE(container_run(pod(c), "containers", 0, ImageInfo{}, opts(), "/p", secrets()).message_from_log);
  EXPECT_FALSE(container_run(pod({{"name", "c"}, {"image", "img"}}), "containers", 0, ImageInfo{}, opts(), "/p", secrets())
                   .message_from_log);
}
