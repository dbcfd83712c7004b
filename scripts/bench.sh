#!/usr/bin/env bash
# One benchmark run on this machine, every phase bounded (see docs/PERFORMANCE.md):
#   1. the HTTP ceiling: a trivial actix-web JSON handler under the same goose load generator;
#   2. the PostgreSQL ceiling: batched inserts of token-shaped rows (256 per transaction);
#   3. cashgrid on PostgreSQL and on SQLite (fresh database / data directory each): durable
#      lifecycles (create + claim + confirm) at peak (closed loop), then throttled to 80 % of
#      that peak for per-step p50/p99;
#   4. a report with cashgrid's figures as ratios of the ceilings measured in this same run.
# Everything listens on 127.0.0.1 only. Output: target/bench/<UTC time>/ (goose HTML reports,
# JSON summaries, server logs, /metrics scrapes) and the report on stdout (also report.md).
#
# Knobs (environment): BENCH_USERS (64), BENCH_PEAK_SECONDS (30), BENCH_PHASE_SECONDS (20),
# BENCH_PG_SECONDS (10 per insert mode), BENCH_KEY_BITS (1024), BENCH_BACKENDS ("postgres sqlite"),
# BENCH_PG (postgres://postgres@127.0.0.1:5432), BENCH_OUT (output directory).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
USERS=${BENCH_USERS:-64}
PEAK_SECONDS=${BENCH_PEAK_SECONDS:-30}
PHASE_SECONDS=${BENCH_PHASE_SECONDS:-20}
PG_SECONDS=${BENCH_PG_SECONDS:-10}
KEY_BITS=${BENCH_KEY_BITS:-1024}
BACKENDS=${BENCH_BACKENDS:-postgres sqlite}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
OUT=${BENCH_OUT:-$ROOT/target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
# Seconds to wait for a server's listening line, and for goose beyond its run time.
START_TIMEOUT=60
GOOSE_GRACE=60

BIN=$ROOT/target/release
CASHGRID=$BIN/cashgrid
LOAD=$BIN/cashgrid-load
RUN_ID=bench_$$_$(date +%s)

log() { echo "bench: $*" >&2; }

# --- cleanup: only what this script started or created -----------------------------------
PIDS=()
DATABASES=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for db in "${DATABASES[@]}"; do
    dropdb --if-exists --force -h 127.0.0.1 -U postgres "$db" 2>/dev/null || true
  done
}
trap cleanup EXIT

stop() {
  local pid=$1
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local kept=()
  for p in "${PIDS[@]}"; do [ "$p" != "$pid" ] && kept+=("$p"); done
  PIDS=("${kept[@]+"${kept[@]}"}")
}

# wait_for_url FILE: print the first http://ADDR the server wrote to FILE.
wait_for_url() {
  local url
  for _ in $(seq 1 $((START_TIMEOUT * 2))); do
    url=$(grep -o 'http://[0-9.]*:[0-9]*' "$1" 2>/dev/null | head -n 1 || true)
    if [ -n "$url" ]; then
      echo "$url"
      return 0
    fi
    sleep 0.5
  done
  log "no listening line in $1 after ${START_TIMEOUT}s"
  return 1
}

# CPU seconds (user + system) of one process, from /proc.
cpu_of() {
  awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0
}
# CPU seconds of all PostgreSQL server processes.
cpu_of_postgres() {
  local total=0 pid
  for pid in $(pgrep -x postgres || true); do
    total=$(awk -v a="$total" -v b="$(cpu_of "$pid")" 'BEGIN { print a + b }')
  done
  echo "$total"
}
# Busy CPU seconds of the whole machine, from /proc/stat.
cpu_of_machine() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { print ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}

# run_goose NAME HOST SCENARIO SECONDS [extra goose flags...]: one bounded goose run; writes
# NAME.json (summary) and NAME.html (goose report); prints goose's CPU seconds to NAME.cpu.
run_goose() {
  local name=$1 host=$2 scenario=$3 seconds=$4
  shift 4
  log "goose: $scenario on $host, $USERS users, ${seconds}s ($name)"
  ( CASHGRID_LOAD_SUMMARY=$name.json timeout $((seconds + GOOSE_GRACE)) "$LOAD" \
      --host "$host" --scenarios "$scenario" --users "$USERS" --increase-rate "$USERS" --no-telnet \
      --run-time "${seconds}s" --report-file "$name.html" --no-print-metrics "$@" \
      >"$name.goose.log" 2>&1
    # Children's user and system CPU seconds (bash's `times`, second line).
    times | tail -n 1 | awk '{ gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }' >"$name.cpu" )
}

field() { # field FILE KEY: a top-level number from a summary
  grep -o "\"$2\": [0-9.e+-]*" "$1" | head -n 1 | awk '{ print $2 }'
}

# --- build ---------------------------------------------------------------------------------
log "building (release)"
cargo build --release --quiet --bin cashgrid
(cd load-tests && cargo build --release --quiet --bins)
scripts/ensure-postgres.sh
mkdir -p "$OUT"
log "output in $OUT"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- actors http src Cargo.toml 2>/dev/null || echo " (server tree has uncommitted changes)")"
  echo "cores: $(nproc)"
  echo "cpu: $(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "postgres: $(psql -h 127.0.0.1 -U postgres -Atc 'select version()' | cut -d' ' -f1-2)"
  echo "users: $USERS; peak ${PEAK_SECONDS}s; 80% phase ${PHASE_SECONDS}s; phone keys ${KEY_BITS}-bit"
  echo "machine load before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/meta.txt"

# --- 1. HTTP ceiling -------------------------------------------------------------------------
"$BIN/ceiling-server" --bind 127.0.0.1:0 >"$OUT/ceiling-server.log" 2>&1 &
PIDS+=($!)
CEILING_PID=$!
CEILING_URL=$(wait_for_url "$OUT/ceiling-server.log")
run_goose "$OUT/ceiling-http" "$CEILING_URL" ceilingjson "$PHASE_SECONDS"
stop "$CEILING_PID"

# --- 2. PostgreSQL ceiling -------------------------------------------------------------------
CEILING_DB=${RUN_ID}_ceiling
createdb -h 127.0.0.1 -U postgres "$CEILING_DB"
DATABASES+=("$CEILING_DB")
log "pg-ceiling: ${PG_SECONDS}s per mode"
timeout $((2 * PG_SECONDS + GOOSE_GRACE)) "$BIN/pg-ceiling" --database-url "$PG/$CEILING_DB" \
  --seconds "$PG_SECONDS" --batch 256 >"$OUT/ceiling-pg.jsonl"
dropdb --if-exists --force -h 127.0.0.1 -U postgres "$CEILING_DB"

# --- 3. cashgrid -------------------------------------------------------------------------------
for backend in $BACKENDS; do
  dir=$OUT/$backend
  mkdir -p "$dir/data"
  store_args=(--data-dir "$dir/data")
  if [ "$backend" = postgres ]; then
    db=${RUN_ID}_cashgrid
    createdb -h 127.0.0.1 -U postgres "$db"
    DATABASES+=("$db")
    store_args+=(--database-url "$PG/$db")
  fi
  "$CASHGRID" "${store_args[@]}" serve --bind 127.0.0.1:0 >"$dir/server.out" 2>"$dir/server.log" &
  PIDS+=($!)
  server=$!
  url=$(wait_for_url "$dir/server.out")
  log "cashgrid on $backend at $url"
  timeout 120 "$BIN/setup" --host "$url" "${store_args[@]}" --cashgrid "$CASHGRID" \
    --phones 64 --atms "$USERS" --key-bits "$KEY_BITS" --out "$dir/fixture.json" 2>"$dir/setup.log"
  export CASHGRID_LOAD_FIXTURE=$dir/fixture.json

  curl -s "$url/metrics" >"$dir/metrics-0.txt"
  cpu_server=$(cpu_of "$server"); cpu_pg=$(cpu_of_postgres); cpu_all=$(cpu_of_machine)
  run_goose "$dir/peak" "$url" atmlifecycle "$PEAK_SECONDS"
  {
    echo "cashgrid $(awk -v a="$(cpu_of "$server")" -v b="$cpu_server" 'BEGIN { print a - b }')"
    echo "postgres $(awk -v a="$(cpu_of_postgres)" -v b="$cpu_pg" 'BEGIN { print a - b }')"
    echo "goose $(cat "$dir/peak.cpu")"
    echo "machine-total $(awk -v a="$(cpu_of_machine)" -v b="$cpu_all" 'BEGIN { print a - b }')"
  } >"$dir/cpu-peak.txt"
  curl -s "$url/metrics" >"$dir/metrics-1.txt"

  peak_rps=$(field "$dir/peak.json" http_per_second)
  throttle=$(awk -v r="$peak_rps" 'BEGIN { t = int(0.8 * r); print (t < 1 ? 1 : t) }')
  run_goose "$dir/p80" "$url" atmlifecycle "$PHASE_SECONDS" --throttle-requests "$throttle"
  curl -s "$url/metrics" >"$dir/metrics-2.txt"

  stop "$server"
  unset CASHGRID_LOAD_FIXTURE
  if [ "$backend" = postgres ]; then
    dropdb --if-exists --force -h 127.0.0.1 -U postgres "$db"
  fi
  rm -rf "$dir/data"
done

# --- 4. report ---------------------------------------------------------------------------------
{
  echo "# cashgrid benchmark"
  echo
  sed 's/^/- /' "$OUT/meta.txt"
  echo "- load generator, cashgrid and PostgreSQL share the same $(nproc) cores"
  echo
  "$BIN/bench-report" "$OUT"
} | tee "$OUT/report.md"
log "reports: $OUT (report.md, *.html)"
