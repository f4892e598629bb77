#!/usr/bin/env bash
# The main job on the embedded default: builds everything, starts kube-local
# (the local Kubernetes API server), runs two backup-operator replicas with
# leader election against it, applies examples/ with the real kubectl, and
# prints what happened. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/setup.sh
# The kubectl and helm set-up pins come first, whatever the machine image carries.
export PATH="${BO_TOOLS_DIR:-$HOME/.cache/backup-operator}/bin:$PATH"
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
# Waits (at most 60 s) until the policy's status list at jsonpath $1 has $2 entries.
wait_for_entries() {
  for _ in $(seq 600); do
    n=$(k get backuppolicy supabase -n supabase -o jsonpath="{range $1[*]}x{end}" 2>/dev/null | wc -c)
    [ "$n" -ge "$2" ] && return 0
    sleep 0.1
  done
}

step "kube-local: a local Kubernetes API server over HTTPS"
# --time-scale: simulated pods (examples/kube-local/pod-rules.json stands in for
# wal-g) finish 1800x faster, matching the operators' clock below.
build/kube-local --port 0 --write-kubeconfig "$KUBECONFIG" --data-dir "$work/state" --time-scale 1800 \
  --pod-rules "$root/examples/kube-local/pod-rules.json" \
  --exec-image "si-dev/backup-operator:0.1.0=$root/build/backup-operator" --volume-root "$work/volumes" \
  >"$work/kube-local.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q "serving on" "$work/kube-local.log" && break; sleep 0.1; done
cat "$work/kube-local.log"
k version 2>/dev/null | tail -1

step "the identity webhook's configuration (the operators fill in its caBundle)"
k apply -f "$root/examples/kube-local/webhook.yaml"

step "two backup-operator replicas with leader election"
anchor=$(date -u +%Y-%m-%dT%H:%M:%SZ)  # one scaled clock for both replicas
for i in 1 2; do
  # --time-scale 1800: an hour of schedule passes every two seconds, so the demo sees many slots.
  # Both serve the RestoreRequest webhook (admission does not wait for a leader), with one
  # certificate they share through a Secret in kube-system.
  build/backup-operator --leader-elect --leader-election-namespace kube-system --log-format text --time-scale 1800 --time-scale-anchor "$anchor" \
    --metrics-bind-address "127.0.0.1:1808$i" --health-probe-bind-address "127.0.0.1:1809$i" \
    --operator-namespace kube-system --webhook-bind-address "127.0.0.1:1844$i" --webhook-host 127.0.0.1 \
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

step "kubectl apply -f crds/ -f examples/"
k apply -f "$root/crds/"
k wait --for=condition=Established crd/backuppolicies.backup.si.dev --timeout=30s
ctx="$work/volumes/supabase/paas-state/state/contexts/shop"
mkdir -p "$ctx/events" "$ctx/releases/r42" "$ctx/vault" "$work/volumes/supabase/paas-bundles"
echo '{"context":"shop","app":"supabase"}' >"$ctx/config.json"
echo '[{"name":"prod","host":"shop.example"}]' >"$ctx/targets.json"
echo '{"type":"deploy","release":"r42"}' >"$ctx/events/audit.jsonl"
echo '{"release":"r42","image":"shop:42"}' >"$ctx/releases/r42/release.json"
echo 'STRIPE_KEY=demo-CANARY-7f3a' >"$ctx/vault/secrets.env"
k apply -f "$root/examples/"
k get secrets -n supabase

step "the policy becomes Ready (valid, Secrets resolved, schedules armed)"
k wait --for=condition=Ready backuppolicy/supabase -n supabase --timeout=60s
k get backuppolicy -n supabase

step "Jobs appear at their slots (each real second is 30 minutes of schedule)"
# Wait (bounded) until six backups are in the catalog; finished Jobs beyond
# historyLimits (3) are deleted as they go.
wait_for_entries .status.backups 6
k get jobs -n supabase -L backup.si.dev/action
k get backuppolicy -n supabase -o wide

step "the catalog, from the Jobs' results"
k get backuppolicy supabase -n supabase -o jsonpath='{range .status.backups[*]}{.id}{"\t"}{.type}{"\t"}{.checksum}{"\n"}{end}' | sed -n 1,8p
echo "lastSuccessfulBackup: $(k get backuppolicy supabase -n supabase -o jsonpath='{.status.lastSuccessfulBackup.id}')"

step "conditions"
k get backuppolicy supabase -n supabase \
  -o jsonpath='{range .status.conditions[*]}{.type}{"="}{.status}{" ("}{.reason}{"): "}{.message}{"\n"}{end}'

step "daily verification: a RestoreRequest restores the newest full backup into supabase-verify"
# At most a simulated day (about 50 s) until the 04:00 verification slot has a full backup to verify.
k wait --for=condition=Verified backuppolicy/supabase -n supabase --timeout=120s
k get restorerequests -n supabase
echo "lastVerifiedBackup: $(k get backuppolicy supabase -n supabase -o jsonpath='{.status.lastVerifiedBackup.id} {.status.lastVerifiedBackup.checksum} (by {.status.lastVerifiedBackup.request})')"

step "a restore drill, and a restore the policy refuses"
k apply -f "$root/examples/restore/"
k wait --for=jsonpath='{.status.phase}'=Succeeded restorerequest/drill-2026-q4 -n supabase --timeout=60s
k wait --for=jsonpath='{.status.phase}'=Blocked restorerequest/restore-unknown -n supabase --timeout=60s
k get restorerequests -n supabase
echo "drill-2026-q4 requested by: $(k get rr drill-2026-q4 -n supabase -o jsonpath='{.metadata.annotations.backup\.si\.dev/requested-by}')"
k get rr drill-2026-q4 -n supabase \
  -o jsonpath='{range .status.validation[*]}  check {.name}: passed={.passed} exit={.exitCode} output={.output}{"\n"}{end}'
k get rr restore-unknown -n supabase -o jsonpath='restore-unknown: {.status.message}{"\n"}'
k wait --for=condition=DrillCurrent backuppolicy/supabase -n supabase --timeout=30s

step "conditions, now with Verified and DrillCurrent"
k get backuppolicy supabase -n supabase \
  -o jsonpath='{range .status.conditions[*]}{.type}{"="}{.status}{" ("}{.reason}{"): "}{.message}{"\n"}{end}'

step "Databasus: a Deployment and a deny-all NetworkPolicy, never a Service (kubectl port-forward only)"
k get deployments,networkpolicies,persistentvolumeclaims -n supabase -l backup.si.dev/component=databasus
echo "Services in supabase: $(k get services -n supabase -o name | wc -l)"

step "PaaS-state bundles: state-bundle Jobs run the real binary (kube-local's process kubelet) over the claim"
wait_for_entries .status.paasState.bundles 1
k get backuppolicy supabase -n supabase \
  -o jsonpath='{range .status.paasState.bundles[*]}{.context}{"\t"}{.id}{"\t"}{.files} files{"\t"}sha256 {.sha256}{"\n"}{end}' | sed -n 1,3p
# (No `ls | head` here: with pipefail, ls killed by SIGPIPE would end the demo.)
bundles=("$work"/volumes/supabase/paas-bundles/paas-state/paas-state/shop/*.bundle)
bundle=${bundles[0]}
echo "stored: ${bundle#$work/}"
BUNDLE_KEY=$(k get secret walg-encryption -n supabase -o jsonpath='{.data.BUNDLE_KEY}' | base64 -d) \
  build/backup-operator bundle restore --file "$bundle" --key-env BUNDLE_KEY --state-root "$work/restored" --to-context shop-drill
echo "restored files: $(cd "$work/restored/contexts/shop-drill" && find . -type f | sort | tr '\n' ' ')"
echo "vault/ restored: $([ -e "$work/restored/contexts/shop-drill/vault" ] && echo yes || echo no)"

step "events"
k get events -n supabase --sort-by=.lastTimestamp | tail -12

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
