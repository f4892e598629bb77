#!/usr/bin/env bash
# Builds the shipped Dockerfile, unchanged, with podman, as the image the
# image tests run (ctest -L image): localhost/backup-operator:test, carrying
# the wal-g stand-in in wal-g's place (the real wal-g cannot be downloaded
# here) through the Dockerfile's WALG_FILE build argument; its label says so.
#   scripts/image.sh [BUILD_DIR]     # the stand-in comes from BUILD_DIR (default build/)
# Prints how long the build took and the image's size. Podman's options for
# these machines: runc (crun fails on hybrid cgroups), explicit ulimits (the
# defaults are refused), the host's network for apt-get inside the build.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
image=${BO_TEST_IMAGE:-localhost/backup-operator:test}

fail() { echo "image: $*" >&2; exit 1; }
scripts/base-images.sh

# The stand-in, built without sanitizers (the image has no sanitizer runtime).
if [ ! -x "$build_dir/tools/walg-standin/wal-g" ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build_dir" --target walg-standin -j "$(nproc)" >/dev/null || fail "building the wal-g stand-in in $build_dir failed"
fi
if grep -q __asan_init "$build_dir/tools/walg-standin/wal-g"; then
  fail "$build_dir/tools/walg-standin/wal-g is built with sanitizers; pass a build directory without them"
fi
mkdir -p dist
install -m 0755 -s "$build_dir/tools/walg-standin/wal-g" dist/wal-g-standin  # stripped, as a release binary is

start=$SECONDS
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "image: building $image from the Dockerfile with podman"
if ! podman --runtime runc build --pull=never --network host \
      --ulimit nofile=1024:4096 --ulimit nproc=4096:4096 \
      --build-arg WALG_FILE=dist/wal-g-standin \
      --build-arg "WALG_LABEL=backup-operator's wal-g stand-in (tools/walg-standin), not wal-g: for tests only" \
      -t "$image" . >"$log" 2>&1; then
  tail -n 60 "$log" >&2
  fail "podman build failed (the last 60 lines of its output are above)"
fi
size=$(podman image inspect "$image" --format '{{.Size}}')
echo "image: $image built in $((SECONDS - start)) s, $((size / 1000000)) MB"
