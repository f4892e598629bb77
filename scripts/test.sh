#!/usr/bin/env bash
# The whole test suite from a fresh clone: installs what is missing, builds
# with warnings on, and runs every unit and integration test under ctest.
#   scripts/test.sh            # RelWithDebInfo build in build/
#   BO_SANITIZE=ON scripts/test.sh   # ASan + UBSan build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# The kubectl and helm set-up pins come first, whatever the machine image carries.
export PATH="${BO_TOOLS_DIR:-$HOME/.cache/backup-operator}/bin:$PATH"
sanitize=${BO_SANITIZE:-OFF}
build_dir=build
[ "$sanitize" = "ON" ] && build_dir=build-asan
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBO_SANITIZE="$sanitize" >/dev/null
cmake --build "$build_dir" -j "$(nproc)"
# The shipped Dockerfile, built with podman, for the image tests (ctest -L image).
scripts/image.sh build
cd "$build_dir"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest -j "$(nproc)" --output-on-failure --timeout 300
