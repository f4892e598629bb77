#!/usr/bin/env bash
# The main job on the embedded default: builds everything, starts kube-local
# (the local Kubernetes API server), runs two backup-operator replicas with
# leader election against it, applies examples/ with the real kubectl, and
# prints what happened. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target kube-local backup-operator

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export KUBECONFIG="$work/kubeconfig"
k() { kubectl --cache-dir "$work/kubectl-cache" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "kube-local: a local Kubernetes API server over HTTPS"
build/kube-local --port 0 --write-kubeconfig "$KUBECONFIG" --data-dir "$work/state" >"$work/kube-local.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "serving on" "$work/kube-local.log" && break; sleep 0.1; done
cat "$work/kube-local.log"
k version 2>/dev/null | tail -1

step "two backup-operator replicas with leader election"
for i in 1 2; do
  build/backup-operator --leader-elect --leader-election-namespace kube-system --log-format text \
    --metrics-bind-address "127.0.0.1:1808$i" --health-probe-bind-address "127.0.0.1:1809$i" \
    >"$work/operator-$i.log" 2>&1 &
  pids+=($!)
done
k wait --for=jsonpath='{.spec.holderIdentity}' lease/backup-operator.backup.si.dev -n kube-system --timeout=30s \
  >/dev/null 2>&1 || true
k get lease -n kube-system backup-operator.backup.si.dev
for i in 1 2; do
  printf 'replica %s: healthz=%s readyz=%s leader=%s\n' "$i" \
    "$(curl -s "http://127.0.0.1:1809$i/healthz")" "$(curl -s "http://127.0.0.1:1809$i/readyz")" \
    "$(curl -s "http://127.0.0.1:1808$i/metrics" | awk '/^backup_operator_leader /{print $2}')"
done

step "kubectl apply -f examples/"
k apply -f "$root/examples/"
k get namespaces
k get secrets -n supabase

step "leader handover: stop the leader, the standby takes over"
holder=$(k get lease -n kube-system backup-operator.backup.si.dev -o jsonpath='{.spec.holderIdentity}')
leader_pid=${holder##*_}
kill "$leader_pid"
k wait --for=jsonpath='{.spec.holderIdentity}' lease/backup-operator.backup.si.dev -n kube-system --timeout=30s \
  >/dev/null 2>&1 || true
for _ in $(seq 100); do
  now=$(k get lease -n kube-system backup-operator.backup.si.dev -o jsonpath='{.spec.holderIdentity}')
  [ -n "$now" ] && [ "$now" != "$holder" ] && break
  sleep 0.1
done
echo "was: $holder"
echo "now: $now"

step "operator logs"
cat "$work"/operator-*.log
echo
echo "demo finished: kube-local and the operators are stopped, $work removed"
