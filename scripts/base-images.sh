#!/usr/bin/env bash
# Makes the Dockerfile's base images, debian:12 and debian:12-slim, in
# podman's local storage when no image registry can be reached: Debian 12
# (bookworm) bootstrapped with mmdebstrap from this machine's own apt sources
# and options, then imported and tagged under the names the Dockerfile uses
# (docker.io/library/debian:12 and :12-slim), so `podman build --pull=never`
# finds them without a registry. Idempotent: an image already present is kept.
#   scripts/base-images.sh            # both, if missing
#   BO_REBUILD_BASE=1 scripts/base-images.sh
# "slim" is what Debian's official slim images are (debuerreotype's
# slimify): minbase without documentation, manuals and translations.
set -euo pipefail

fail() { echo "base-images: $*" >&2; exit 1; }
command -v podman >/dev/null || fail "podman is not installed (scripts/setup.sh installs it)"
command -v mmdebstrap >/dev/null || fail "mmdebstrap is not installed (scripts/setup.sh installs it)"

# The machine's own sources (deb822 first, then the one-line format).
sources=""
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
  [ -s "$f" ] && grep -qE '^(Types:|deb )' "$f" && { sources=$f; break; }
done
[ -n "$sources" ] || fail "no apt sources on this machine to bootstrap Debian 12 from"
aptopts=()
for f in /etc/apt/apt.conf.d/*; do
  [ -f "$f" ] && aptopts+=(--aptopt="$f")
done

slim_excludes=(
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/groff/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
  --dpkgopt='path-exclude=/usr/share/linda/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
)

make_image() {  # tag, extra mmdebstrap options...
  local tag=$1; shift
  if [ -z "${BO_REBUILD_BASE:-}" ] && podman image exists "$tag"; then return 0; fi
  local tmp; tmp=$(mktemp -d)
  echo "base-images: bootstrapping $tag from $sources"
  if ! mmdebstrap --variant=minbase "${aptopts[@]}" "$@" bookworm "$tmp/rootfs.tar" "$sources" >"$tmp/log" 2>&1; then
    cat "$tmp/log" >&2; rm -rf "$tmp"; fail "mmdebstrap of $tag failed (its log is above)"
  fi
  if ! podman import --change 'CMD ["bash"]' "$tmp/rootfs.tar" "$tag" >"$tmp/log" 2>&1; then
    cat "$tmp/log" >&2; rm -rf "$tmp"; fail "podman import of $tag failed (its output is above)"
  fi
  rm -rf "$tmp"
}

make_image docker.io/library/debian:12
make_image docker.io/library/debian:12-slim "${slim_excludes[@]}"
