// How the image tests call podman on these machines (as scripts/image.sh
// does): runc, because crun fails on hybrid cgroups, and explicit ulimits,
// because the defaults are refused; nothing is ever pulled.
#pragma once
#include <string>

namespace testing_support {

inline const std::string kPodman = "podman --runtime runc";
inline const std::string kPodmanUlimits = "--ulimit nofile=1024:4096 --ulimit nproc=4096:4096";
// `podman build` of a local context, on the host's network (apt-get inside a build).
inline const std::string kPodmanBuild = kPodman + " build --pull=never --network host " + kPodmanUlimits;
// `podman run` of a local image, removed after, on the host's network (kube-local, PostgreSQL on loopback).
inline const std::string kPodmanRun = kPodman + " run --rm --pull=never --network host " + kPodmanUlimits;

}  // namespace testing_support
