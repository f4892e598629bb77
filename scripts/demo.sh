#!/usr/bin/env bash
# The main job on the embedded default: builds everything, starts kube-local
# (the local Kubernetes API server), a real PostgreSQL 15 as the example
# database (archiving its WAL through the wal-g stand-in into s3rver over
# TLS), runs two backup-operator replicas with leader election against it,
# applies examples/ with the real kubectl, lets the operator's own Jobs back
# the database up, restores one backup and queries it, and prints what
# happened. Leaves nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/setup.sh
# The kubectl and helm set-up pins come first, whatever the machine image carries.
tools="${BO_TOOLS_DIR:-$HOME/.cache/backup-operator}"
export PATH="$tools/bin:$PATH"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target kube-local backup-operator walg-standin
walg_dir="$root/build/tools/walg-standin"  # holds the stand-in as `wal-g`
pgbin=/usr/lib/postgresql/15/bin
s3rver_bin="$tools/s3rver/node_modules/.bin/s3rver"

work=$(mktemp -d)
# PostgreSQL and the Jobs run as nobody when this runs as root: they must reach into $work.
chmod 0711 "$work"
pids=()     # s3rver, kube-local
op_pids=()  # the operator replicas
pg_dirs=()
cleanup() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then  # what the processes said, before it goes with $work
    for f in "$work"/*.log "$work"/volumes/supabase/*.log; do
      [ -f "$f" ] && { echo "--- last lines of ${f#$work/}"; tail -n 15 "$f"; }
    done
  fi
  # The operators first (no new Jobs), then the Jobs that run let finish (at
  # most 30 s): a killed run-job would leave its wal-g running on its own.
  for p in "${op_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -s "$KUBECONFIG" ]; then
    for _ in $(seq 150); do
      k get pods -n supabase -l 'backup.si.dev/action in (backup,full-backup,retain,restore,verify,state-bundle)' \
        -o jsonpath='{range .items[*]}{.status.phase}{"\n"}{end}' 2>/dev/null | grep -x Running >/dev/null || break
      sleep 0.2
    done
  fi
  # PostgreSQL next (its archiver calls wal-g against s3rver), then kube-local and s3rver.
  for d in "${pg_dirs[@]}"; do
    [ -f "$d/postmaster.pid" ] && as_pg "$pgbin/pg_ctl" -D "$d" stop -m immediate -w >/dev/null 2>&1 || true
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export KUBECONFIG="$work/kubeconfig"
k() { kubectl --cache-dir "$work/kubectl-cache" "$@"; }
step() { printf '\n\033[1m== %s\033[0m (at %d s)\n' "$*" "$SECONDS"; }
# Waits (at most 60 s) until the policy's status list at jsonpath $1 has $2 entries.
wait_for_entries() {
  for _ in $(seq 600); do
    n=$(k get backuppolicy supabase -n supabase -o jsonpath="{range $1[*]}x{end}" 2>/dev/null | wc -c)
    [ "$n" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "demo: timed out after 60 s waiting for $2 entries in $1" >&2
  return 1
}
# A loopback port nothing listens on (the server that binds it fails loudly if one raced in).
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}

# PostgreSQL refuses to run as root: as root (CI machines) it runs as nobody,
# like tests/support/postgres.cpp; so do the backup Jobs, which read its files.
if [ "$(id -u)" -eq 0 ]; then
  as_pg() { runuser -u nobody -- "$@"; }
  pg_uid=65534 pg_gid=65534
else
  as_pg() { "$@"; }
  pg_uid=$(id -u) pg_gid=$(id -g)
fi
psql_at() { "$pgbin/psql" "host=127.0.0.1 port=$1 user=postgres dbname=postgres" -XAtqc "$2"; }
db() { psql_at "$db_port" "$1"; }
# Waits (at most $2 s) until the shell condition $1 holds; fails naming it otherwise.
wait_until() {
  local end=$((SECONDS + $2))
  until eval "$1"; do
    [ "$SECONDS" -lt "$end" ] || { echo "timed out after $2 s waiting for: $1" >&2; return 1; }
    sleep 0.2
  done
}

step "what is real here, and what is simulated"
echo "real: PostgreSQL 15, s3rver (S3 over TLS), kubectl, the operator, and its backup, full-backup, retain, catalog and restore-demo restore Jobs (backup-operator run-job)"
echo "simulated: wal-g, by tools/walg-standin (wal-g itself cannot be had here; the stand-in does what wal-g's docs and source say)"
echo "simulated: the API server, by kube-local (no cluster needed); its Pods run as local processes or per examples/kube-local/pod-rules.json"
echo "real: verifications and drills restore into a scratch PostgreSQL (Debian's postgres 15 standing in for the supabase/postgres image) and query it; image checks of restores into a running target are simulated by pod rules"
echo "simulated: offsite copies, by a pod rule (a real one needs a second store whose S3 Object Lock is read back; s3rver does not implement Object Lock)"
echo "simulated: Databasus, whose Deployment's pod is a kube-local status only (no container engine here)"

step "s3rver: the S3 store for WAL-G, over TLS (the storage Secret asks for https://)"
mkdir -p "$work/s3/data"
# EC keys: generated in milliseconds where RSA takes seconds on a busy 2-core machine.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=demo-ca -keyout "$work/s3/ca.key" -out "$work/s3/ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 -keyout "$work/s3/s3.key" -out "$work/s3/s3.csr" 2>/dev/null
openssl x509 -req -in "$work/s3/s3.csr" -CA "$work/s3/ca.crt" -CAkey "$work/s3/ca.key" -CAcreateserial -days 1 \
  -extfile <(printf 'subjectAltName=IP:127.0.0.1\n') -out "$work/s3/s3.crt" 2>/dev/null
chmod 0755 "$work/s3"; chmod 0644 "$work/s3/ca.crt"
s3_port=$(free_port)
"$s3rver_bin" -d "$work/s3/data" -a 127.0.0.1 -p "$s3_port" --key "$work/s3/s3.key" --cert "$work/s3/s3.crt" \
  --configure-bucket backups >"$work/s3rver.log" 2>&1 &
pids+=($!)
echo "s3rver starts on https://127.0.0.1:$s3_port with bucket backups"

step "the example database: a real PostgreSQL 15 archiving its WAL with 'wal-g wal-push %p'"
# examples/ stay valid for a real cluster; the demo applies a copy with the
# local values (shown as a diff below) instead of baking them into examples/:
# s3rver's endpoint, CA and access key id (it knows only S3RVER), lz4 (the
# only compression the wal-g stand-in has), and the database's port, data
# directory and uid.
cp -r "$root/examples" "$work/examples"
data="$work/volumes/supabase/supabase-db-data"  # the policy's claim supabase-db-data in kube-local's --volume-root
db_port=$(free_port)
sed -i -e "s|WALG_AWS_ENDPOINT: .*|WALG_AWS_ENDPOINT: https://127.0.0.1:$s3_port|" \
  -e 's|WALG_AWS_ACCESS_KEY_ID: .*|WALG_AWS_ACCESS_KEY_ID: S3RVER|' \
  -e 's|WALG_COMPRESSION_METHOD: brotli|WALG_COMPRESSION_METHOD: lz4  # the wal-g stand-in implements lz4 only|' \
  -e "/WALG_COMPRESSION_METHOD/a\\  WALG_S3_CA_CERT_FILE: $work/s3/ca.crt\\n  AWS_S3_FORCE_PATH_STYLE: \"true\"" \
  "$work/examples/10-secrets.yaml"
sed -i -e "s|host: supabase-db.supabase.svc|host: 127.0.0.1\\n    port: $db_port|" \
  -e "s|mountPath: /var/lib/postgresql/data|mountPath: $data|" \
  -e "s|runAsUser: 101|runAsUser: $pg_uid|" -e "s|runAsGroup: 102|runAsGroup: $pg_gid|" \
  "$work/examples/20-backuppolicy.yaml"
for f in 10-secrets.yaml 20-backuppolicy.yaml; do
  diff -U0 --label "examples/$f" --label "examples/$f (as the demo applies it)" "$root/examples/$f" "$work/examples/$f" |
    sed "s|$work|\$work|g" || true
done
# What wal-g in the database's pod reads: the same storage and encryption
# Secrets as the Jobs (wal-g spells the S3 keys AWS_*), in the server's
# environment only, never in its settings or on a command line.
secret_value() { awk -v k="$1:" '$1 == k { print $2; exit }' "$work/examples/10-secrets.yaml"; }
pg_env=(PATH="$walg_dir:$PATH"
  WALG_S3_PREFIX="$(secret_value WALG_S3_PREFIX)" AWS_ACCESS_KEY_ID="$(secret_value WALG_AWS_ACCESS_KEY_ID)"
  AWS_SECRET_ACCESS_KEY="$(secret_value WALG_AWS_SECRET_ACCESS_KEY)" AWS_ENDPOINT="$(secret_value WALG_AWS_ENDPOINT)"
  WALG_S3_CA_CERT_FILE="$work/s3/ca.crt" AWS_S3_FORCE_PATH_STYLE=true WALG_COMPRESSION_METHOD=lz4
  WALG_LIBSODIUM_KEY="$(secret_value WALG_LIBSODIUM_KEY)")
pg_start() {  # data dir, port, extra postgres options
  mkdir -p "$work/pg-run"; chown "$pg_uid:$pg_gid" "$work/pg-run"
  pg_dirs+=("$1")
  touch "$1.log"; chown "$pg_uid:$pg_gid" "$1.log"
  ( export "${pg_env[@]}"
    as_pg "$pgbin/pg_ctl" -D "$1" -l "$1.log" -w -t 60 start \
      -o "-c port=$2 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$work/pg-run -c fsync=off ${3:-}" >/dev/null ) ||
    { cat "$1.log"; return 1; }
}
mkdir -p "$data"; chown "$pg_uid:$pg_gid" "$data"; chmod 0700 "$data"
as_pg "$pgbin/initdb" -D "$data" -U postgres -E UTF8 --locale=C --auth=trust --no-sync >"$work/initdb.log" 2>&1 ||
  { cat "$work/initdb.log"; exit 1; }
# As on a real server (docs/backuppolicy.md): archiving on, through wal-g.
printf "archive_mode = on\narchive_command = 'wal-g wal-push %%p'\n" >>"$data/postgresql.conf"
# (s3rver started meanwhile: node takes seconds to come up.)
wait_until 'curl -s -o /dev/null --cacert "$work/s3/ca.crt" "https://127.0.0.1:$s3_port/"' 30
pg_start "$data" "$db_port"
db "SELECT version()"
# Supabase's own schemas, much reduced (the supabase-self-hosted profile's built-in check reads them).
db "CREATE SCHEMA auth; CREATE TABLE auth.users (id uuid PRIMARY KEY, email text); CREATE SCHEMA storage; CREATE TABLE storage.buckets (id text PRIMARY KEY, name text); CREATE TABLE storage.objects (id uuid PRIMARY KEY, bucket_id text, name text)"
db "INSERT INTO auth.users VALUES (gen_random_uuid(), 'ada@example.org'); INSERT INTO storage.buckets VALUES ('avatars', 'avatars')"
db "CREATE TABLE orders (id serial PRIMARY KEY, batch int NOT NULL, at timestamptz DEFAULT now())"
db "INSERT INTO orders (batch) SELECT 1 FROM generate_series(1, 100)"
after_batch1=$(db 'SELECT pg_current_wal_lsn()')
echo "table orders: batch 1, $(db 'SELECT count(*) FROM orders') rows committed; data directory \$work/volumes/supabase/supabase-db-data"

step "kube-local: a local Kubernetes API server over HTTPS"
# --pod-rules: backup, full-backup, retain and catalog Jobs (and the restore Job of
# RestoreRequest restore-demo) run the real `backup-operator run-job` with the
# wal-g stand-in first on their PATH (--exec-path); the other pods are
# simulated by examples/kube-local/pod-rules.json and finish 1800x faster
# (--time-scale), matching the operators' clock below.
build/kube-local --port 0 --write-kubeconfig "$KUBECONFIG" --data-dir "$work/state" --time-scale 1800 \
  --pod-rules "$root/examples/kube-local/pod-rules.json" \
  --exec-image "si-dev/backup-operator:0.1.0=$root/build/backup-operator" --volume-root "$work/volumes" \
  --exec-image-path "supabase/postgres:15.8.1.060=$pgbin" \
  --exec-path "$walg_dir" \
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
  # --archive-probe-interval 2: read the database's archiving state every 2 s (default 30 s), at the demo's pace.
  build/backup-operator --leader-elect --leader-election-namespace kube-system --log-format text --time-scale 1800 --time-scale-anchor "$anchor" \
    --archive-probe-interval 2 \
    --metrics-bind-address "127.0.0.1:1808$i" --health-probe-bind-address "127.0.0.1:1809$i" \
    --operator-namespace kube-system --webhook-bind-address "127.0.0.1:1844$i" --webhook-host 127.0.0.1 \
    >"$work/operator-$i.log" 2>&1 &
  op_pids+=($!)
done
# (kubectl wait gives up at once on an object that does not exist yet: wait for the Lease to have a holder.)
wait_until 'k get lease -n kube-system backup-operator.backup.si.dev -o jsonpath={.spec.holderIdentity} 2>/dev/null | grep -q .' 30
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
# (Not paas-bundles: kube-local creates a fresh claim for the Job's user, as a provisioner would.)
mkdir -p "$ctx/events" "$ctx/releases/r42" "$ctx/vault"
echo '{"context":"shop","app":"supabase"}' >"$ctx/config.json"
echo '[{"name":"prod","host":"shop.example"}]' >"$ctx/targets.json"
echo '{"type":"deploy","release":"r42"}' >"$ctx/events/audit.jsonl"
echo '{"release":"r42","image":"shop:42"}' >"$ctx/releases/r42/release.json"
echo 'STRIPE_KEY=demo-CANARY-7f3a' >"$ctx/vault/secrets.env"
k apply -f "$work/examples/"
k get secrets -n supabase

step "the policy becomes Ready (valid, Secrets resolved, schedules armed)"
k wait --for=condition=Ready backuppolicy/supabase -n supabase --timeout=60s
k get backuppolicy -n supabase

step "real backups: the operator's Jobs run \`run-job\` -> wal-g backup-push on the database's data directory"
policy() { k get backuppolicy supabase -n supabase -o jsonpath="$1"; }
newest() { policy '{.status.backups[0].id}'; }
# True when the catalog holds a restorable backup that started at or after WAL position $1,
# i.e. one taken after what was committed before $1; prints the oldest such id (and type with $2).
backup_since() {
  local id lsn ok type
  while IFS=$'\t' read -r id lsn ok type; do
    [ "$ok" = true ] && [ -n "$lsn" ] && [ "$(db "SELECT '$lsn'::pg_lsn >= '$1'::pg_lsn")" = t ] && { echo "$id${2:+ ($type)}"; return 0; }
  done < <(policy '{range .status.backups[*]}{.id}{"\t"}{.startLSN}{"\t"}{.restorable}{"\t"}{.type}{"\n"}{end}' | tac)
  return 1
}
# Waits (at most 60 s) for such a backup, showing the Jobs if none comes.
wait_backup_since() {
  since=$1  # (wait_until evaluates its condition with its own positional parameters)
  wait_until 'backup_since "$since" >/dev/null' 60 || { k get jobs,pods -n supabase -o wide; exit 1; }
  echo "  backup $(backup_since "$since" with-type) started at or after WAL position $since"
}
# The first push has no base to chain on, so wal-g takes a full backup (WALG_DELTA_MAX_STEPS' fall-back).
wait_backup_since "$after_batch1"
db "INSERT INTO orders (batch) SELECT 2 FROM generate_series(1, 50)"
echo "batch 2: $(db 'SELECT count(*) FROM orders') rows committed"
wait_backup_since "$(db 'SELECT pg_current_wal_lsn()')"
db "INSERT INTO orders (batch) SELECT 3 FROM generate_series(1, 25)"
committed=$(db 'SELECT count(*) FROM orders')
# Every row committed so far reaches the store: switch WAL segments and wait for the archiver.
last_wal=$(db "SELECT pg_walfile_name(pg_switch_wal())")
archived_upto() { [ "$(db "SELECT coalesce(last_archived_wal, '') >= '$1' FROM pg_stat_archiver")" = t ]; }
wait_until 'archived_upto "$last_wal"' 30
after_batch3=$(db 'SELECT pg_current_wal_lsn()')
echo "batch 3: $committed rows committed, WAL archived up to segment $last_wal"
wait_backup_since "$after_batch3"
k get jobs -n supabase -L backup.si.dev/action
k get backuppolicy -n supabase -o wide

step "the catalog, from wal-g's sentinels (newest first)"
{
  printf 'ID\tTYPE\tBASE\tRESTORABLE\tSTART LSN\tFINISH LSN\n'
  policy '{range .status.backups[*]}{.id}{"\t"}{.type}{"\t"}{.base}{"\t"}{.restorable}{"\t"}{.startLSN}{"\t"}{.finishLSN}{"\n"}{end}' | sed -n 1,8p
} | awk -F'\t' '{ printf "%-57s %-5s %-57s %-10s %-10s %s\n", $1, $2, $3, $4, $5, $6 }'
echo "lastSuccessfulBackup: $(policy '{.status.lastSuccessfulBackup.id}')"
k wait --for=condition=ContinuousArchiving backuppolicy/supabase -n supabase --timeout=30s >/dev/null
echo "archive_command: $(policy '{.status.continuousArchiving.archiveCommand}'), last archived: $(policy '{.status.continuousArchiving.lastArchivedWAL}')"
k get backuppolicy supabase -n supabase \
  -o jsonpath='{range .status.conditions[?(@.type=="ContinuousArchiving")]}{.type}{"="}{.status}{" ("}{.reason}{"): "}{.message}{"\n"}{end}'

step "conditions"
k get backuppolicy supabase -n supabase \
  -o jsonpath='{range .status.conditions[*]}{.type}{"="}{.status}{" ("}{.reason}{"): "}{.message}{"\n"}{end}'

step "a real verification: RestoreRequest restore-demo restores a backup taken after batch 3 into a scratch PostgreSQL and queries it"
# A restorable backup taken after batch 3 was archived.
backup=$(backup_since "$after_batch3")
echo "verifying $backup ($(policy "{.status.backups[?(@.id==\"$backup\")].type}"), base $(policy "{.status.backups[?(@.id==\"$backup\")].base}"))"
# purpose verification: a backup not yet verified may be restored only to be
# verified, into a scratch instance in a non-production namespace: one Job in
# supabase-verify whose init container copies the operator's tools into the
# database's image (here Debian's PostgreSQL 15 binaries, mapped to
# supabase/postgres by kube-local), fetches, recovers, and runs the checks
# over the server's Unix socket.
k apply -f - <<EOF
apiVersion: backup.si.dev/v1alpha1
kind: RestoreRequest
metadata:
  name: restore-demo
  namespace: supabase
spec:
  policyRef: {name: supabase}
  backupId: $backup
  purpose: verification
  targetNamespace: supabase-verify
  validation:
  - {name: orders, sql: "select count(*) from orders", expect: "$committed"}
EOF
phase=
for _ in $(seq 1200); do
  phase=$(k get rr restore-demo -n supabase -o jsonpath='{.status.phase}' 2>/dev/null || true)
  case "$phase" in Succeeded|Failed|Blocked) break ;; esac
  sleep 0.1
done
k get rr restore-demo -n supabase -o jsonpath='{.status.phase}: {.status.message}{"\n"}'
k get rr restore-demo -n supabase \
  -o jsonpath='{range .status.validation[*]}  check {.name}: passed={.passed} output={.output}{"\n"}{end}'
echo "recovered in $(k get rr restore-demo -n supabase -o jsonpath='{.status.recovery.seconds}') s (a measured RTO, fetch excluded)"
if [ "$phase" != Succeeded ]; then
  k get rr,jobs,pods -n supabase-verify -o wide; k get rr restore-demo -n supabase -o yaml
  echo "the verification did not pass" >&2
  exit 1
fi
got=$(k get rr restore-demo -n supabase -o jsonpath='{.status.validation[?(@.name=="orders")].output}')
echo "rows committed before the backup's WAL: $committed; rows in the restored database: $got"
[ "$got" = "$committed" ] || { echo "MISMATCH: the restored database does not hold every committed row" >&2; exit 1; }
# The request goes, as the daily verification below uses the same target.
k delete restorerequest restore-demo -n supabase --timeout=60s

step "daily verification: a RestoreRequest restores the newest full backup into a scratch PostgreSQL in supabase-verify and queries it"
# At most a simulated day (about 50 s) until the 04:00 verification slot has a full backup to verify.
k wait --for=condition=Verified backuppolicy/supabase -n supabase --timeout=120s
k get restorerequests -n supabase
echo "lastVerifiedBackup: $(k get backuppolicy supabase -n supabase -o jsonpath='{.status.lastVerifiedBackup.id} {.status.lastVerifiedBackup.checksum} (by {.status.lastVerifiedBackup.request})')"

step "a restore drill (a scratch instance with SQL checks), and a restore the policy refuses"
# (examples/restore/in-place.yaml restores a database its policy names by
# spec.database.workloadRef; the demo's PostgreSQL runs beside kube-local, not
# in it, so that one is shown end to end by RealBackups.InPlaceRestore… in ctest.)
k apply -f "$root/examples/restore/drill.yaml" -f "$root/examples/restore/refused.yaml"
k wait --for=jsonpath='{.status.phase}'=Succeeded restorerequest/drill-2026-q4 -n supabase --timeout=60s
k wait --for=jsonpath='{.status.phase}'=Blocked restorerequest/restore-unknown -n supabase --timeout=60s
k get restorerequests -n supabase
echo "drill-2026-q4 requested by: $(k get rr drill-2026-q4 -n supabase -o jsonpath='{.metadata.annotations.backup\.si\.dev/requested-by}')"
k get rr drill-2026-q4 -n supabase \
  -o jsonpath='{range .status.validation[*]}  check {.name}: passed={.passed} output={.output}{"\n"}{end}'
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
