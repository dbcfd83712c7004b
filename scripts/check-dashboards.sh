#!/usr/bin/env bash
# Automated check of the Grafana dashboards in grafana/dashboards against a real Prometheus
# scraping a real cashgrid under load. CI runs it; see grafana/README.md.
#
#   1. installs Prometheus from Debian's packages if it is missing (apt-get; needs root);
#   2. builds cashgrid (cargo build --release) and, for the goose load, load-tests/;
#   3. starts two cashgrid nodes on one fresh SQLite data directory (the second one makes the
#      version fence conflict), creates credentials with the CLI, and starts Prometheus on a
#      free loopback port with grafana/prometheus.yml (targets replaced, 1 s scrapes);
#   4. drives bounded load that reaches every panel (with goose, also load-tests' ccc-load on
#      the Crypto Capital WebSockets): goose's mixed ATM day, hot-token and ledger
#      day scenarios (load-tests/) plus scripts/dashboards/load.py, which adds the mistakes (wrong
#      codes, double claims, unknown devices and tokens, unmatched paths), alternating updates
#      across the two nodes (fence conflicts) and a held SQLite write lock (failed commits,
#      actor restarts, 503s, overload rejections);
#   5. runs scripts/dashboards/check.py: every panel target of every dashboard, with its
#      variables substituted, must be a valid query with data; prints panel -> series count.
# Everything listens on 127.0.0.1 only; processes and temporary files are removed on exit.
#
# Knobs (environment):
#   CHECK_DASHBOARDS_LOAD=goose|python  goose (default) runs load-tests' cashgrid-load beside
#                                        load.py; python runs load.py alone (no goose build)
#   CHECK_DASHBOARDS_LOAD_SECONDS=30     length of the load (the fault phase needs >= 25)
#   CHECK_DASHBOARDS_USERS=8             goose users
#   CHECK_DASHBOARDS_STRICT=1            also fail on PENDING panels (metrics not exported yet)
#   CHECK_DASHBOARDS_KEEP=1              keep the temporary directory (logs, data) for a look
#   CHECK_DASHBOARDS_SKIP_BUILD=1        use target/release as it is (while iterating locally)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
LOAD=${CHECK_DASHBOARDS_LOAD:-goose}
LOAD_SECONDS=${CHECK_DASHBOARDS_LOAD_SECONDS:-30}
USERS=${CHECK_DASHBOARDS_USERS:-8}
START_TIMEOUT=60      # seconds for a server's listening line or Prometheus' readiness
SCRAPE_INTERVAL=1s

log() { echo "check-dashboards: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# target_dir DIR: the target directory cargo uses when run in DIR (load-tests/.cargo/config.toml
# points its own at ../target, but cargo reads that file only when run inside load-tests/);
# listening_port.
# shellcheck source=scripts/lib/cashgrid.sh
. scripts/lib/cashgrid.sh

case "$LOAD" in goose|python) ;; *) die "CHECK_DASHBOARDS_LOAD must be goose or python, not '$LOAD'" ;; esac
[ "$LOAD_SECONDS" -ge 25 ] 2>/dev/null || die "CHECK_DASHBOARDS_LOAD_SECONDS must be a number >= 25"

# --- cleanup: only what this script started or created ------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-dashboards.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  set +e
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  if [ "$rc" -ne 0 ]; then
    for f in "$TMP"/*.log; do
      [ -s "$f" ] || continue
      echo "----- last lines of $(basename "$f") -----" >&2
      tail -n 15 "$f" >&2
    done
  fi
  if [ "${CHECK_DASHBOARDS_KEEP:-0}" = "1" ]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. Prometheus from Debian's packages ----------------------------------------------------
if ! command -v prometheus >/dev/null 2>&1; then
  log "installing Prometheus from Debian's packages"
  SUDO=
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >"$TMP/apt.log" 2>&1 || { cat "$TMP/apt.log" >&2; die "apt-get update failed"; }
  # Captured first: under pipefail, `grep -q` closing the pipe early would fail the pipeline.
  policy=$(apt-cache policy prometheus 2>&1 || true)
  grep -q 'Candidate: [0-9]' <<<"$policy" || die "apt-cache policy prometheus shows no candidate: $policy"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus \
    >>"$TMP/apt.log" 2>&1 || { tail -n 30 "$TMP/apt.log" >&2; die "apt-get install prometheus failed"; }
fi
command -v prometheus >/dev/null 2>&1 || die "prometheus is not on PATH after the install"
log "$(prometheus --version 2>&1 | head -n 1)"

# --- 2. build ----------------------------------------------------------------------------------
if [ "${CHECK_DASHBOARDS_SKIP_BUILD:-0}" = "1" ]; then
  log "CHECK_DASHBOARDS_SKIP_BUILD=1: using the built binaries as they are"
else
  log "cargo build --release"
  cargo build --release || die "cargo build --release failed"
  if [ "$LOAD" = goose ]; then
    [ -f load-tests/Cargo.toml ] || die "load-tests/ is missing; run with CHECK_DASHBOARDS_LOAD=python"
    log "cargo build --release (load-tests: cashgrid-load, setup, ccc-load)"
    (cd load-tests && cargo build --release --bin cashgrid-load --bin setup --bin ccc-load) ||
      die "building load-tests failed; CHECK_DASHBOARDS_LOAD=python runs without goose"
  fi
fi
CASHGRID=$(target_dir "$ROOT")/release/cashgrid || die "cargo metadata failed"
[ -x "$CASHGRID" ] || die "no cashgrid binary at $CASHGRID"
if [ "$LOAD" = goose ]; then
  GOOSE_BIN=$(target_dir "$ROOT/load-tests")/release || die "cargo metadata failed in load-tests/"
  GOOSE=$GOOSE_BIN/cashgrid-load
  SETUP=$GOOSE_BIN/setup
  [ -x "$GOOSE" ] && [ -x "$SETUP" ] || die "no cashgrid-load or setup binary in $GOOSE_BIN"
fi
CHECK_STARTED=$(date +%s)

# --- 3. cashgrid: two nodes on one data directory ---------------------------------------------
DATA=$TMP/data
cat >"$TMP/cashgrid.toml" <<'EOF'
# scripts/check-dashboards.sh: requests that wait longer than 1 s for an actor are answered
# 503, so that the held write lock of the fault phase produces overload rejections.
send_timeout_ms = 1000
error_status = "original"
EOF

STARTED_PORT=
start_cashgrid() {
  local name=$1
  : >"$TMP/$name.out"
  "$CASHGRID" --config "$TMP/cashgrid.toml" serve --bind 127.0.0.1:0 --data-dir "$DATA" \
    >"$TMP/$name.out" 2>"$TMP/$name.log" &
  local pid=$!
  PIDS+=("$pid")
  STARTED_PORT=$(listening_port "$TMP/$name.out" "$pid" "$START_TIMEOUT") || {
    kill -0 "$pid" 2>/dev/null || die "$name exited before listening"
    die "$name printed no listening line within ${START_TIMEOUT}s"
  }
  log "$name: cashgrid listening on 127.0.0.1:$STARTED_PORT (pid $pid)"
}
start_cashgrid node-a
PORT_A=$STARTED_PORT
start_cashgrid node-b
PORT_B=$STARTED_PORT

# Credentials with the CLI, on the same data directory while the servers run.
"$CASHGRID" customer create --data-dir "$DATA" --email dashboards@example.com --name "Dashboard check" >/dev/null
"$CASHGRID" access create --data-dir "$DATA" --customer dashboards@example.com --scope token-api >"$TMP/token-api.json"
"$CASHGRID" access create --data-dir "$DATA" --customer dashboards@example.com --scope cash-api >"$TMP/cash-api.json"
python3 - "$TMP" <<'EOF'
import json, sys
tmp = sys.argv[1]
creds = {"token": json.load(open(f"{tmp}/token-api.json")), "cash": json.load(open(f"{tmp}/cash-api.json"))}
for scope in creds.values():
    assert scope.get("apikey") and scope.get("apisecret"), scope
json.dump(creds, open(f"{tmp}/creds.json", "w"))
EOF

# --- Prometheus on a free loopback port, configured from grafana/prometheus.yml -----------------
python3 - "$ROOT/grafana/prometheus.yml" "$TMP/prometheus.yml" "$SCRAPE_INTERVAL" \
  "127.0.0.1:$PORT_A" "127.0.0.1:$PORT_B" <<'EOF'
import re, sys
source, target, interval, *targets = sys.argv[1:]
text = open(source).read()
lines, replaced = [], False
for line in text.splitlines():
    m = re.match(r"^(\s*)- 127\.0\.0\.1:\d+\s*$", line)
    if m:
        if not replaced:
            lines.extend(f"{m.group(1)}- {t}" for t in targets)
            replaced = True
        continue
    lines.append(line)
if not replaced:
    sys.exit("grafana/prometheus.yml: no '- 127.0.0.1:PORT' target line to replace")
text = "\n".join(lines) + "\n"
for key in ("scrape_interval", "scrape_timeout", "evaluation_interval"):
    text, n = re.subn(rf"^(\s*{key}:\s*)\S+", rf"\g<1>{interval}", text, flags=re.M)
open(target, "w").write(text)
EOF
if command -v promtool >/dev/null 2>&1; then
  promtool check config "$TMP/prometheus.yml" >"$TMP/promtool.log" 2>&1 ||
    { cat "$TMP/promtool.log" >&2; die "promtool rejects the configuration made from grafana/prometheus.yml"; }
fi

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
PROM_PORT=
for attempt in 1 2 3; do
  port=$(free_port)
  rm -rf "$TMP/prometheus"
  prometheus --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prometheus" \
    --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=1h --log.level=warn \
    >"$TMP/prometheus.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  deadline=$((SECONDS + START_TIMEOUT))
  while [ $SECONDS -lt $deadline ] && kill -0 "$pid" 2>/dev/null; do
    if curl -fsS "http://127.0.0.1:$port/-/ready" >/dev/null 2>&1; then PROM_PORT=$port; break; fi
    sleep 0.2
  done
  [ -n "$PROM_PORT" ] && break
  log "Prometheus did not come up on 127.0.0.1:$port (attempt $attempt)"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
[ -n "$PROM_PORT" ] || die "Prometheus did not start"
PROM=http://127.0.0.1:$PROM_PORT
log "Prometheus ready on $PROM"

prom_value() {  # prom_value EXPR -> the first sample's value, or nothing
  curl -fsS "$PROM/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
    python3 -c 'import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
deadline=$((SECONDS + 30))
until [ "$(prom_value 'sum(up{job="cashgrid"})')" = "2" ]; do
  [ $SECONDS -lt $deadline ] || die "Prometheus does not see both cashgrid targets up"
  sleep 0.5
done
log "Prometheus scrapes both nodes"

# --- 4. load -------------------------------------------------------------------------------------
LOAD_PIDS=()
if [ "$LOAD" = goose ]; then
  "$SETUP" --host "http://127.0.0.1:$PORT_A" --data-dir "$DATA" --cashgrid "$CASHGRID" \
    --phones 16 --atms 16 --key-bits 1024 --ledger-accounts 50 --out "$TMP/load-fixture.json" >"$TMP/setup.log" 2>&1 ||
    die "load-tests setup failed (see setup.log)"
  log "goose: mixed_atm_day + hot_token_contention + atm_trigger + ledger_day, $USERS users, ${LOAD_SECONDS}s"
  CASHGRID_LOAD_FIXTURE="$TMP/load-fixture.json" timeout -k 5 $((LOAD_SECONDS + 60)) \
    "$GOOSE" --host "http://127.0.0.1:$PORT_A" --scenarios mixedatmday,hottokencontention,atmtrigger,ledgerday \
    --users "$USERS" --increase-rate "$USERS" --run-time "${LOAD_SECONDS}s" --no-telnet \
    >"$TMP/goose.log" 2>&1 &
  LOAD_PIDS+=($!)
  PIDS+=($!)
  # The Crypto Capital API: users on WebSockets transferring to each other (ccc-load funds them
  # through the operator API with the fixture's ledger-operator credential).
  read -r CCC_KEY CCC_SECRET < <(python3 -c 'import json, sys; o = json.load(open(sys.argv[1]))["ledger"]["operator"]; print(o["apikey"], o["apisecret"])' "$TMP/load-fixture.json")
  timeout -k 5 $((LOAD_SECONDS + 60)) "$GOOSE_BIN/ccc-load" --host "http://127.0.0.1:$PORT_A" --apikey "$CCC_KEY" \
    --apisecret "$CCC_SECRET" --users 4 --seconds "$LOAD_SECONDS" --rate 20 >"$TMP/ccc-load.log" 2>&1 &
  LOAD_PIDS+=($!)
  PIDS+=($!)
  LOAD_WORKERS=1     # goose carries the volume; load.py adds mistakes, fence and fault
else
  log "python load (scripts/dashboards/load.py), ${LOAD_SECONDS}s"
  LOAD_WORKERS=6
fi
timeout -k 5 $((LOAD_SECONDS + 90)) python3 scripts/dashboards/load.py --port "$PORT_A" --node-b "$PORT_B" \
  --creds "$TMP/creds.json" --sqlite "$DATA/cashgrid.db" --duration "$LOAD_SECONDS" \
  --workers "$LOAD_WORKERS" 2>"$TMP/load.log" &
LOAD_PIDS+=($!)
PIDS+=($!)
load_failed=0
for pid in "${LOAD_PIDS[@]}"; do
  wait "$pid" || load_failed=1
done
grep -E '^load: [0-9]+ requests' "$TMP/load.log" >&2 || true
if [ "$LOAD" = goose ]; then
  grep -E 'hot_token_contention:' "$TMP/goose.log" >&2 || true
fi
[ "$load_failed" -eq 0 ] || die "the load driver failed (see load.log$([ "$LOAD" = goose ] && echo ", goose.log, ccc-load.log"))"
for pid in "${PIDS[@]:0:2}"; do
  kill -0 "$pid" 2>/dev/null || die "a cashgrid node died under load (see node-a.log, node-b.log)"
done

# Let Prometheus take a few more scrapes, then evaluate every panel at one instant.
sleep 3
log "checking every panel query against $PROM"
python3 scripts/dashboards/check.py --prometheus "$PROM" --metrics-doc docs/METRICS.md \
  --pending scripts/dashboards/pending-metrics.json --time "$(date +%s)" \
  --rate-interval 30s --interval 15s --range 5m grafana/dashboards/*.json ||
  die "dashboard queries (see the table above)"
log "OK: every dashboard query has data ($(( $(date +%s) - CHECK_STARTED ))s after the build)"
