#!/usr/bin/env bash
# One benchmark run on this machine, every phase bounded (see docs/PERFORMANCE.md):
#   1. the HTTP ceiling: a trivial actix-web JSON handler under the same goose load generator;
#   2. the PostgreSQL ceiling: batched inserts of token-shaped rows (256 per transaction);
#   3. cashgrid on PostgreSQL and on SQLite (fresh database / data directory each): durable
#      lifecycles (create + claim + confirm) in closed loop at several user counts; the best
#      is the peak; then a run throttled to 80 % of that peak for per-step p50/p99, with the
#      fewest users that reached 97 % of the peak (the knee of the sweep);
#   4. the ledger on the same server (BENCH_PHASES): single transfers between random accounts,
#      transfers that all touch one hot account, and batches of 1,000 among 1,000 accounts, each
#      swept for its peak, then run at 80 % of it for p50/p99;
#   5. a report with cashgrid's figures as ratios of the ceilings measured in this same run.
# Everything listens on 127.0.0.1 only. Output: target/bench/<UTC time>/ (goose HTML reports,
# JSON summaries, server logs, /metrics scrapes) and the report on stdout (also report.md).
#
# The HTTP ceiling gets the same user sweep, and its best is the ceiling. Before it starts, the
# run waits (at most BENCH_QUIET_WAIT seconds) for other work on the machine to calm down, and
# it records how much CPU other processes took during every measured phase.
#
# Knobs (environment): BENCH_USERS_SWEEP ("32 64 128 256"), BENCH_PEAK_SECONDS (15 per user
# count), BENCH_PHASE_SECONDS (20, the 80 % run), BENCH_CEILING_SECONDS (10 per user count),
# BENCH_PG_SECONDS (10 per insert mode), BENCH_KEY_BITS (1024), BENCH_BACKENDS
# ("postgres sqlite"), BENCH_QUIET_WAIT (120), BENCH_PG (postgres://postgres@127.0.0.1:5432),
# BENCH_OUT (output directory), BENCH_CASHGRID (a cashgrid binary to measure instead of building
# the work tree's, e.g. one built from a given commit; BENCH_CASHGRID_LABEL describes it),
# BENCH_SERVER_ARGS ("--workers 1 --arbiters 1": cashgrid's threads; on 2 cores shared with goose
# and PostgreSQL, one HTTP worker and one actor thread beat one of each per core, see
# docs/PERFORMANCE.md; "" measures the defaults), BENCH_PHASES ("lifecycle ledger": which
# cashgrid phases run; add "ccc" for the Crypto Capital WebSockets), BENCH_LEDGER_ACCOUNTS (1000), BENCH_BATCH_USERS_SWEEP ("2 4 8 16": users of
# the batch scenario, each sending 1,000 transfers a request).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
USERS_SWEEP=${BENCH_USERS_SWEEP:-32 64 128 256}
PEAK_SECONDS=${BENCH_PEAK_SECONDS:-15}
PHASE_SECONDS=${BENCH_PHASE_SECONDS:-20}
CEILING_SECONDS=${BENCH_CEILING_SECONDS:-10}
QUIET_WAIT=${BENCH_QUIET_WAIT:-120}
PG_SECONDS=${BENCH_PG_SECONDS:-10}
KEY_BITS=${BENCH_KEY_BITS:-1024}
BACKENDS=${BENCH_BACKENDS:-postgres sqlite}
PHASES=${BENCH_PHASES:-lifecycle ledger}
LEDGER_ACCOUNTS=${BENCH_LEDGER_ACCOUNTS:-1000}
BATCH_USERS_SWEEP=${BENCH_BATCH_USERS_SWEEP:-2 4 8 16}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
read -r -a SERVER_ARGS <<<"${BENCH_SERVER_ARGS---workers 1 --arbiters 1}"
OUT=${BENCH_OUT:-$ROOT/target/bench/$(date -u +%Y%m%dT%H%M%SZ)}
# Seconds to wait for a server's listening line, and for goose beyond its run time.
START_TIMEOUT=60
GOOSE_GRACE=60

BIN=$ROOT/target/release
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
# CPU seconds of PostgreSQL's background processes and of the backends connected to database
# $BENCH_DB (other databases' backends, e.g. other people's tests, are not counted).
BENCH_DB=
cpu_of_postgres() {
  local total=0 pid
  for pid in $(psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT pid FROM pg_stat_activity \
      WHERE backend_type <> 'client backend' OR datname = '${BENCH_DB:-none}'" 2>/dev/null || true); do
    total=$(awk -v a="$total" -v b="$(cpu_of "$pid")" 'BEGIN { print a + b }')
  done
  echo "$total"
}
# Busy CPU seconds of the whole machine, from /proc/stat.
cpu_of_machine() {
  awk -v hz="$(getconf CLK_TCK)" '/^cpu / { print ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat
}

# run_goose NAME HOST SCENARIO USERS SECONDS [extra goose flags...]: one bounded goose run;
# writes NAME.json (summary), NAME.html (goose report) and NAME.cpu (goose's CPU seconds).
run_goose() {
  local name=$1 host=$2 scenario=$3 users=$4 seconds=$5
  shift 5
  log "goose: $scenario on $host, $users users, ${seconds}s ($(basename "$name"))"
  ( CASHGRID_LOAD_SUMMARY=$name.json timeout $((seconds + GOOSE_GRACE)) "$LOAD" \
      --host "$host" --scenarios "$scenario" --users "$users" --increase-rate "$users" --no-telnet \
      --run-time "${seconds}s" --report-file "$name.html" --no-print-metrics "$@" \
      >"$name.goose.log" 2>&1
    # This subshell's children's user and system CPU seconds: bash's `times`, second line
    # (`times` must not run in a pipeline, whose subshell has no children).
    times >"$name.times"
    tail -n 1 "$name.times" | awk '{ gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }' >"$name.cpu" )
}

field() { # field FILE KEY: a top-level number from a summary
  grep -o "\"$2\": [0-9.e+-]*" "$1" | head -n 1 | awk '{ print $2 }'
}

# measured NAME SERVER_PID COMMAND...: run COMMAND and write NAME.cpu-all: CPU seconds the
# server, PostgreSQL, goose, the whole machine and everything else used meanwhile.
measured() {
  local name=$1 server=$2
  shift 2
  local s0 p0 m0 s1 p1 m1 goose t0 t1
  s0=$(cpu_of "$server"); p0=$(cpu_of_postgres); m0=$(cpu_of_machine); t0=$(date +%s.%N)
  "$@"
  s1=$(cpu_of "$server"); p1=$(cpu_of_postgres); m1=$(cpu_of_machine); t1=$(date +%s.%N)
  goose=$(cat "$name.cpu" 2>/dev/null || echo 0)
  awk -v s="$(awk -v a="$s1" -v b="$s0" 'BEGIN { print a - b }')" \
      -v p="$(awk -v a="$p1" -v b="$p0" 'BEGIN { print a - b }')" \
      -v m="$(awk -v a="$m1" -v b="$m0" 'BEGIN { print a - b }')" -v g="$goose" \
      -v w="$(awk -v a="$t1" -v b="$t0" 'BEGIN { print a - b }')" 'BEGIN {
        printf "server %.2f\npostgres %.2f\ngoose %.2f\nothers %.2f\nmachine %.2f\nwall %.2f\n", s, p, g, m - s - p - g, m, w
      }' >"$name.cpu-all"
}

# best_of PREFIX USERS...: the user count whose PREFIX-u<N>.json has the most requests/s.
best_of() {
  local prefix=$1 best= best_rps=0 users rps
  shift
  for users in "$@"; do
    rps=$(field "$prefix-u$users.json" http_per_second 2>/dev/null || echo 0)
    if awk -v a="${rps:-0}" -v b="$best_rps" 'BEGIN { exit !(a > b) }'; then
      best=$users
      best_rps=$rps
    fi
  done
  echo "$best"
}

# knee_of PREFIX USERS...: the fewest users whose run reached 97 % of the best requests/s. The
# 80 % run uses that many: beyond the knee, more users only lengthen the queues, and a throttled
# run with them would measure those queues rather than the server.
knee_of() {
  local prefix=$1 best_rps=0 users rps
  shift
  for users in "$@"; do
    rps=$(field "$prefix-u$users.json" http_per_second 2>/dev/null || echo 0)
    if awk -v a="${rps:-0}" -v b="$best_rps" 'BEGIN { exit !(a > b) }'; then best_rps=$rps; fi
  done
  for users in "$@"; do
    rps=$(field "$prefix-u$users.json" http_per_second 2>/dev/null || echo 0)
    if awk -v a="${rps:-0}" -v b="$best_rps" 'BEGIN { exit !(a >= 0.97 * b) }'; then
      echo "$users"
      return 0
    fi
  done
}

# Wait (bounded) until the machine is quiet: under a quarter of a core busy over 3 seconds.
wait_for_quiet() {
  local waited=0 m0 m1 busy
  while :; do
    m0=$(cpu_of_machine); sleep 3; m1=$(cpu_of_machine)
    busy=$(awk -v a="$m1" -v b="$m0" 'BEGIN { printf "%.2f", (a - b) / 3 }')
    if awk -v b="$busy" 'BEGIN { exit !(b < 0.25) }' || [ "$waited" -ge "$QUIET_WAIT" ]; then
      echo "$busy"
      return 0
    fi
    log "machine busy ($busy cores in use by other work); waiting (${waited}s of ${QUIET_WAIT}s)"
    sleep 10
    waited=$((waited + 13))
  done
}

# --- build ---------------------------------------------------------------------------------
log "building (release)"
if [ -z "${BENCH_CASHGRID:-}" ]; then
  cargo build --release --quiet --bin cashgrid
fi
(cd load-tests && cargo build --release --quiet --bins)
scripts/ensure-postgres.sh
mkdir -p "$OUT/bin"
# A private copy of the server: other builds may replace target/release/cashgrid meanwhile.
cp "${BENCH_CASHGRID:-$BIN/cashgrid}" "$OUT/bin/cashgrid"
CASHGRID=$OUT/bin/cashgrid
log "output in $OUT"
quiet=$(wait_for_quiet)
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  if [ -n "${BENCH_CASHGRID:-}" ]; then
    echo "server: given binary $BENCH_CASHGRID${BENCH_CASHGRID_LABEL:+ ($BENCH_CASHGRID_LABEL)}"
  else
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- actors http src Cargo.toml 2>/dev/null || echo " (server tree has uncommitted changes)")"
  fi
  echo "cores: $(nproc)"
  echo "cpu: $(grep -m 1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "postgres: $(psql -h 127.0.0.1 -U postgres -Atc 'select version()' | cut -d' ' -f1-2)"
  echo "server flags: ${SERVER_ARGS[*]:-(defaults)}; environment: $(env | grep -E '^CASHGRID_' | sort | tr '\n' ' ')"
  echo "users swept: $USERS_SWEEP; ${PEAK_SECONDS}s per user count; 80% run ${PHASE_SECONDS}s; phone keys ${KEY_BITS}-bit"
  echo "other work on the machine just before the run: $quiet cores busy (load average $(cut -d' ' -f1-3 /proc/loadavg))"
} >"$OUT/meta.txt"

# --- 1. HTTP ceiling -------------------------------------------------------------------------
"$BIN/ceiling-server" --bind 127.0.0.1:0 >"$OUT/ceiling-server.log" 2>&1 &
PIDS+=($!)
CEILING_PID=$!
CEILING_URL=$(wait_for_url "$OUT/ceiling-server.log")
for users in $USERS_SWEEP; do
  measured "$OUT/ceiling-http-u$users" "$CEILING_PID" \
    run_goose "$OUT/ceiling-http-u$users" "$CEILING_URL" ceilingjson "$users" "$CEILING_SECONDS"
done
best=$(best_of "$OUT/ceiling-http" $USERS_SWEEP)
cp "$OUT/ceiling-http-u$best.json" "$OUT/ceiling-http.json"
cp "$OUT/ceiling-http-u$best.cpu-all" "$OUT/ceiling-http.cpu-all"
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
    BENCH_DB=$db
    store_args+=(--database-url "$PG/$db")
  fi
  "$CASHGRID" "${store_args[@]}" serve --bind 127.0.0.1:0 "${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"}" \
    >"$dir/server.out" 2>"$dir/server.log" &
  PIDS+=($!)
  server=$!
  url=$(wait_for_url "$dir/server.out")
  log "cashgrid on $backend at $url"
  timeout 300 "$BIN/setup" --host "$url" "${store_args[@]}" --cashgrid "$CASHGRID" \
    --phones 64 --atms 256 --key-bits "$KEY_BITS" --ledger-accounts "$LEDGER_ACCOUNTS" \
    --out "$dir/fixture.json" 2>"$dir/setup.log"
  export CASHGRID_LOAD_FIXTURE=$dir/fixture.json

  if [[ " $PHASES " == *" ledger "* ]]; then
    # The ledger: each scenario swept for its peak, then at 80 % of it with the knee's users.
    for scenario in ledgertransfers ledgerhotaccount ledgerbatch; do
      sweep=$USERS_SWEEP
      # A batch request carries 1,000 transfers: a few users keep the server busy.
      [ "$scenario" = ledgerbatch ] && sweep=$BATCH_USERS_SWEEP
      for users in $sweep; do
        measured "$dir/$scenario-u$users" "$server" \
          run_goose "$dir/$scenario-u$users" "$url" "$scenario" "$users" "$PEAK_SECONDS"
      done
      best=$(best_of "$dir/$scenario" $sweep)
      cp "$dir/$scenario-u$best.json" "$dir/$scenario-peak.json"
      cp "$dir/$scenario-u$best.cpu-all" "$dir/$scenario-peak.cpu-all"
      peak_rps=$(field "$dir/$scenario-peak.json" http_per_second)
      throttle=$(awk -v r="$peak_rps" 'BEGIN { t = int(0.8 * r); print (t < 1 ? 1 : t) }')
      measured "$dir/$scenario-p80" "$server" \
        run_goose "$dir/$scenario-p80" "$url" "$scenario" "$(knee_of "$dir/$scenario" $sweep)" \
          "$PHASE_SECONDS" --throttle-requests "$throttle"
    done
    curl -s "$url/metrics" >"$dir/metrics-ledger.txt"
  fi

  if [[ " $PHASES " == *" lifecycle "* ]]; then
    for users in $USERS_SWEEP; do
      curl -s "$url/metrics" >"$dir/metrics-u$users-before.txt"
      measured "$dir/peak-u$users" "$server" \
        run_goose "$dir/peak-u$users" "$url" atmlifecycle "$users" "$PEAK_SECONDS"
      curl -s "$url/metrics" >"$dir/metrics-u$users-after.txt"
    done
    best=$(best_of "$dir/peak" $USERS_SWEEP)
    cp "$dir/peak-u$best.json" "$dir/peak.json"
    cp "$dir/peak-u$best.cpu-all" "$dir/cpu-peak.txt"
    cp "$dir/metrics-u$best-before.txt" "$dir/metrics-0.txt"
    cp "$dir/metrics-u$best-after.txt" "$dir/metrics-1.txt"

    peak_rps=$(field "$dir/peak.json" http_per_second)
    throttle=$(awk -v r="$peak_rps" 'BEGIN { t = int(0.8 * r); print (t < 1 ? 1 : t) }')
    measured "$dir/p80" "$server" \
      run_goose "$dir/p80" "$url" atmlifecycle "$(knee_of "$dir/peak" $USERS_SWEEP)" "$PHASE_SECONDS" \
        --throttle-requests "$throttle"
    cp "$dir/p80.cpu-all" "$dir/cpu-p80.txt"
    curl -s "$url/metrics" >"$dir/metrics-2.txt"
  fi

  stop "$server"
  unset CASHGRID_LOAD_FIXTURE
  if [ "$backend" = postgres ]; then
    dropdb --if-exists --force -h 127.0.0.1 -U postgres "$db"
    BENCH_DB=
  fi
  rm -rf "$dir/data"
done

# The Crypto Capital WebSocket API: internal transfers between users over WebSockets, on
# PostgreSQL, on a server of its own (load-tests/ccc-bench.sh).
if [[ " $PHASES " == *" ccc "* ]]; then
  log "ccc: internal transfers over WebSockets (load-tests/ccc-bench.sh)"
  CCC_BENCH_SERVER_ARGS="${SERVER_ARGS[*]}" BENCH_PG=$PG "$ROOT/load-tests/ccc-bench.sh" "$OUT/ccc" ||
    log "ccc: the WebSocket benchmark failed (see $OUT/ccc)"
fi

# --- 4. report ---------------------------------------------------------------------------------
{
  echo "# cashgrid benchmark"
  echo
  sed 's/^/- /' "$OUT/meta.txt"
  echo "- load generator, cashgrid and PostgreSQL share the same $(nproc) cores"
  echo
  if [[ " $PHASES " == *" lifecycle "* ]]; then
    "$BIN/bench-report" "$OUT"
  fi
  if [[ " $PHASES " == *" ledger "* ]]; then
    python3 "$ROOT/scripts/bench/ledger_report.py" "$OUT" $BACKENDS
  fi
  if [[ " $PHASES " == *" ccc "* ]]; then
    python3 "$ROOT/scripts/bench/ccc_report.py" "$OUT"
  fi
} | tee "$OUT/report.md"
rm -f "$OUT/bin/cashgrid"
log "reports: $OUT (report.md, *.html)"
