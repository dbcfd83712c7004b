#!/usr/bin/env bash
# Benchmark of the Crypto Capital WebSocket API: internal transfers between users over
# WebSockets (`ccc-load`), on PostgreSQL, with the server, PostgreSQL and the load generator on
# the same cores. Sweeps the number of users (sockets) in a closed loop for the peak, then runs
# at 80 % of the peak's rate with the knee's users for the latency, and records the CPU seconds
# the server and PostgreSQL spent per transfer.
#
#   load-tests/ccc-bench.sh [OUT_DIR]
#
# Knobs: CCC_BENCH_USERS ("32 64 128 256"), CCC_BENCH_SECONDS (15), CCC_BENCH_SERVER_ARGS
# ("--workers 1 --arbiters 1"), BENCH_PG (postgres://postgres@127.0.0.1:5432). Loopback only.
set -euo pipefail

cd "$(dirname "$0")/.."
OUT=${1:-target/bench/ccc-$(date -u +%Y%m%dT%H%M%SZ)}
USERS_SWEEP=${CCC_BENCH_USERS:-32 64 128 256}
SECONDS_RUN=${CCC_BENCH_SECONDS:-15}
read -r -a SERVER_ARGS <<<"${CCC_BENCH_SERVER_ARGS:---workers 1 --arbiters 1}"
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
DB=ccc_bench_$$
mkdir -p "$OUT/data"
SERVER=
cleanup() {
  [ -n "$SERVER" ] && { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; }
  dropdb --if-exists --force -h 127.0.0.1 -U postgres "$DB" 2>/dev/null || true
  rm -rf "$OUT/data"
}
trap cleanup EXIT

cargo build --release --quiet --bin cashgrid
(cd load-tests && cargo build --release --quiet --bin ccc-load)
BIN=target/release
createdb -h 127.0.0.1 -U postgres "$DB"
STORE=(--data-dir "$OUT/data" --database-url "$PG/$DB")
"$BIN/cashgrid" serve --bind 127.0.0.1:0 "${STORE[@]}" "${SERVER_ARGS[@]}" >"$OUT/server.out" 2>"$OUT/server.log" &
SERVER=$!
PORT=
for _ in $(seq 1 120); do
  PORT=$(sed -n 's|^cashgrid listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$OUT/server.out" || true)
  [ -n "$PORT" ] && break
  sleep 0.5
done
[ -n "$PORT" ] || { echo "ccc-bench: the server did not start" >&2; exit 1; }
"$BIN/cashgrid" customer create --email ops@example.com "${STORE[@]}" >/dev/null 2>&1
"$BIN/cashgrid" access create --customer ops@example.com --scope ledger-operator "${STORE[@]}" >"$OUT/creds.json" 2>/dev/null
KEY=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['apikey'])" "$OUT/creds.json")
SECRET=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['apisecret'])" "$OUT/creds.json")

# CPU seconds (user + system) of the server and of every PostgreSQL process.
ticks=$(getconf CLK_TCK)
cpu_of() { awk -v t="$ticks" '{ s += $14 + $15 } END { printf "%.3f", s / t }' "$@" 2>/dev/null || echo 0; }
server_cpu() { cpu_of "/proc/$SERVER/stat"; }
pg_cpu() { cpu_of $(for pid in $(pgrep -x postgres); do echo "/proc/$pid/stat"; done); }

run() {  # run NAME [ccc-load args...]
  local name=$1
  shift
  local s0 p0
  s0=$(server_cpu); p0=$(pg_cpu)
  timeout $((SECONDS_RUN + 300)) "$BIN/ccc-load" --host "http://127.0.0.1:$PORT" --apikey "$KEY" --apisecret "$SECRET" \
    --seconds "$SECONDS_RUN" --summary "$OUT/$name.json" "$@" >/dev/null 2>"$OUT/$name.log"
  python3 - "$OUT/$name.json" "$s0" "$(server_cpu)" "$p0" "$(pg_cpu)" <<'PY'
import json, sys
path, s0, s1, p0, p1 = sys.argv[1], *map(float, sys.argv[2:])
summary = json.load(open(path))
transfers = max(summary["transfers"], 1)
summary["server_cpu_ms_per_transfer"] = round((s1 - s0) * 1000 / transfers, 3)
summary["pg_cpu_ms_per_transfer"] = round((p1 - p0) * 1000 / transfers, 3)
json.dump(summary, open(path, "w"))
print(f'{summary["scenario"]}: {summary["users"]} users, {summary["per_second"]:.0f} transfers/s, '
      f'p50 {summary["p50_us"]/1000:.1f} ms, p99 {summary["p99_us"]/1000:.1f} ms, CPU ms per transfer: '
      f'server {summary["server_cpu_ms_per_transfer"]}, PostgreSQL {summary["pg_cpu_ms_per_transfer"]}, '
      f'failures {summary["failures"]}')
PY
}

best=0; knee=
for users in $USERS_SWEEP; do
  echo -n "ccc-bench: " >&2; run "sweep-u$users" --users "$users" >&2
  rate=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['per_second']))" "$OUT/sweep-u$users.json")
  if [ "$rate" -gt "$best" ]; then best=$rate; fi
done
# The knee: the fewest users that reached 97 % of the peak.
for users in $USERS_SWEEP; do
  rate=$(python3 -c "import json,sys; print(int(json.load(open(sys.argv[1]))['per_second']))" "$OUT/sweep-u$users.json")
  if [ $((rate * 100)) -ge $((best * 97)) ]; then knee=$users; break; fi
done
target=$((best * 80 / 100))
echo -n "ccc-bench: at 80 % ($target/s): " >&2
run p80 --users "$knee" --rate "$target" >&2
echo "ccc-bench: peak $best transfers/s; results in $OUT" >&2
