#!/usr/bin/env bash
# Where does the time go at peak? Runs cashgrid (fresh store) under a goose scenario
# (PROFILE_SCENARIO: atmlifecycle by default; ledgerbatch, ledgertransfers … for the ledger,
# after setting up PROFILE_LEDGER_ACCOUNTS accounts) and, in the middle of the run, samples
# every CPU with `perf record -e cpu-clock` (software
# clock: works in VMs without hardware counters) and PostgreSQL's wait events. Bounded: the
# goose run takes PROFILE_SECONDS (25), perf samples PROFILE_SAMPLE_SECONDS (12) of it.
#
#   load-tests/profile.sh postgres|sqlite [OUT_DIR]
#
# Output: perf.data, perf-by-process.txt (CPU share per process), perf-cashgrid.txt (hottest
# symbols inside cashgrid), perf-postgres.txt, perf-cashgrid-callers.txt (inclusive time per
# function, from the DWARF call graphs in perf-dwarf.data), perf-cashgrid-summary.txt (the
# share of cashgrid's CPU spent under a few named parts), pg-waits.txt (PostgreSQL only:
# what its backends wait on), the goose summary and the server's /metrics. Needs `perf` (Debian: linux-perf) and a release build
# (scripts/bench.sh builds everything; PROFILE_CASHGRID=path profiles a given binary;
# PROFILE_SERVER_ARGS, like BENCH_SERVER_ARGS, sets cashgrid's threads). Loopback only.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
BACKEND=${1:?usage: load-tests/profile.sh postgres|sqlite [OUT_DIR]}
OUT=${2:-$ROOT/target/profile/$BACKEND-$(date -u +%Y%m%dT%H%M%SZ)}
USERS=${PROFILE_USERS:-64}
SCENARIO=${PROFILE_SCENARIO:-atmlifecycle}
read -r -a SERVER_ARGS <<<"${PROFILE_SERVER_ARGS---workers 1 --arbiters 1}"
SECONDS_RUN=${PROFILE_SECONDS:-30}
SECONDS_SAMPLE=${PROFILE_SAMPLE_SECONDS:-8}
SECONDS_DWARF=${PROFILE_DWARF_SECONDS:-8}
PG=${BENCH_PG:-postgres://postgres@127.0.0.1:5432}
BIN=$ROOT/target/release
sampler=
DB=profile_$$_$(date +%s)

mkdir -p "$OUT/data"
# A private copy: other builds may replace target/release/cashgrid while we sample it.
cp "${PROFILE_CASHGRID:-$BIN/cashgrid}" "$OUT/cashgrid"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  [ "$BACKEND" = postgres ] && dropdb --if-exists --force -h 127.0.0.1 -U postgres "$DB" 2>/dev/null || true
  rm -rf "$OUT/data"
}
trap cleanup EXIT

store_args=(--data-dir "$OUT/data")
if [ "$BACKEND" = postgres ]; then
  createdb -h 127.0.0.1 -U postgres "$DB"
  store_args+=(--database-url "$PG/$DB")
fi
"$OUT/cashgrid" "${store_args[@]}" serve --bind 127.0.0.1:0 "${SERVER_ARGS[@]+"${SERVER_ARGS[@]}"}" \
  >"$OUT/server.out" 2>"$OUT/server.log" &
PIDS+=($!)
server=$!
url=
for _ in $(seq 1 120); do
  url=$(grep -o 'http://[0-9.]*:[0-9]*' "$OUT/server.out" 2>/dev/null | head -n 1 || true)
  [ -n "$url" ] && break
  sleep 0.5
done
[ -n "$url" ] || { echo "profile: server did not start" >&2; exit 1; }
timeout 120 "$BIN/setup" --host "$url" "${store_args[@]}" --cashgrid "$OUT/cashgrid" --atms "$USERS" \
  --ledger-accounts "${PROFILE_LEDGER_ACCOUNTS:-1000}" --out "$OUT/fixture.json" 2>"$OUT/setup.log"

CASHGRID_LOAD_FIXTURE=$OUT/fixture.json CASHGRID_LOAD_SUMMARY=$OUT/peak.json \
  timeout $((SECONDS_RUN + 60)) "$BIN/cashgrid-load" --host "$url" --scenarios "$SCENARIO" \
  --users "$USERS" --increase-rate "$USERS" --no-telnet --run-time "${SECONDS_RUN}s" \
  --no-print-metrics >"$OUT/goose.log" 2>&1 &
PIDS+=($!)
goose=$!
sleep 5

if [ "$BACKEND" = postgres ]; then
  # What PostgreSQL's backends of this database are doing, 10 times a second, from one psql.
  ( for _ in $(seq 1 $((SECONDS_SAMPLE * 10))); do
      echo "SELECT coalesce(wait_event_type, 'CPU') || ' ' || coalesce(wait_event, state) FROM pg_stat_activity \
        WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend';"
      echo "SELECT pg_sleep(0.1);"
    done | psql -h 127.0.0.1 -U postgres -d "$DB" -At 2>/dev/null | grep -v '^$' \
      | sort | uniq -c | sort -rn >"$OUT/pg-waits.txt" ) &
  sampler=$!
fi
ps -T -o spid=,comm= -p "$server" >"$OUT/server-threads.txt"
perf record -a -e cpu-clock -F 499 -o "$OUT/perf.data" -- sleep "$SECONDS_SAMPLE" 2>"$OUT/perf-record.log"
perf record -p "$server" -e cpu-clock -F 299 --call-graph dwarf,16384 -o "$OUT/perf-dwarf.data" \
  -- sleep "$SECONDS_DWARF" 2>>"$OUT/perf-record.log"
wait "$goose" || true
curl -s "$url/metrics" >"$OUT/metrics.txt"
[ -n "${sampler:-}" ] && wait "$sampler"

perf report -i "$OUT/perf.data" --stdio --no-children --sort comm,pid 2>/dev/null >"$OUT/perf-by-process.txt"
# cashgrid's threads are named after actix (actix-rt|system, actix-server …); select by pid.
perf report -i "$OUT/perf.data" --stdio --no-children --pid "$server" --sort dso,symbol \
  --percentage relative --percent-limit 0.5 2>/dev/null | sed -E 's/([[:space:]]+-)*[[:space:]]*$//' \
  >"$OUT/perf-cashgrid.txt"
perf report -i "$OUT/perf.data" --stdio --no-children --comm postgres --sort symbol \
  --percentage relative --percent-limit 0.5 2>/dev/null | sed -E 's/([[:space:]]+-)*[[:space:]]*$//' \
  >"$OUT/perf-postgres.txt"
perf report -i "$OUT/perf-dwarf.data" --stdio --children --sort symbol -g none --percent-limit 2 \
  2>/dev/null | sed -E 's/([[:space:]]+-)*[[:space:]]*$//' >"$OUT/perf-cashgrid-callers.txt"
# Inclusive share of cashgrid's CPU under each named part, summed over its threads. Each part
# is one function (matched as a fixed string), so nested parts are not counted twice in a line.
perf report -i "$OUT/perf-dwarf.data" --stdio --children --sort pid,symbol -g none 2>/dev/null \
  | sed -E 's/([[:space:]]+-)*[[:space:]]*$//' >"$OUT/perf-cashgrid-by-thread.txt"
part() { # part NAME SYMBOL: print the summed inclusive share of lines ending in SYMBOL
  local share
  share=$( { grep -F -e "] $2" "$OUT/perf-cashgrid-by-thread.txt" || true; } | awk -v s="$2" '
    substr($0, length($0) - length(s) + 1) == s { sub(/%/, "", $1); total += $1 } END { printf "%.1f", total }')
  printf "%6s%%  %s\n" "$share" "$1"
}
{
  part "HTTP connections (actix-http dispatcher: parsing, middleware, handlers, writing)" \
    "<actix_http::h1::dispatcher::Dispatcher<T,S,B,X,U> as core::future::future::Future>::poll"
  part "  RSA encryption of the secure code (create_token)" "cashgrid_actors::crypto::encrypt_code"
  part "  PostgresStore::load_token (token actor activation on claim)" \
    "<cashgrid_actors::store::postgres::PostgresStore as cashgrid_actors::store::Store>::load_token::{{closure}}"
  part "  PostgresStore::load_param" \
    "<cashgrid_actors::store::postgres::PostgresStore as cashgrid_actors::store::Store>::load_param::{{closure}}"
  part "writer task (group commit)" "cashgrid_actors::writer::run::{{closure}}"
  part "  PostgresStore::commit" \
    "<cashgrid_actors::store::postgres::PostgresStore as cashgrid_actors::store::Store>::commit::{{closure}}"
  part "  SqliteStore::commit" \
    "<cashgrid_actors::store::sqlite::SqliteStore as cashgrid_actors::store::Store>::commit::{{closure}}"
  part "  SqliteStore::load_token" \
    "<cashgrid_actors::store::sqlite::SqliteStore as cashgrid_actors::store::Store>::load_token::{{closure}}"
  part "SQLite engine (sqlite3_step, in blocking threads)" "sqlite3_step"
  part "tokio-postgres connection tasks (socket I/O with PostgreSQL)" \
    "<tokio_postgres::connection::Connection<S,T> as core::future::future::Future>::poll"
  part "system calls (kernel, all threads)" "do_syscall_64"
} >"$OUT/perf-cashgrid-summary.txt"
echo "profile: $OUT" >&2
