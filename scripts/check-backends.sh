#!/usr/bin/env bash
# Reads the output of a nextest run (scripts/test.sh) and checks that both backends really ran
# the same tests. In every test binary, the scenarios that run on both backends
# (`sqlite::<name>` and `postgres::<name>`) must have passed as the same set of names on each,
# and the backend-specific modules (`sqlite_only`, `postgres_only`) must each have passed at
# least one test. A test that was filtered out, skipped or missing on one backend shows up as a
# difference, listed by name.
#
# Usage: scripts/check-backends.sh NEXTEST_OUTPUT_FILE
set -euo pipefail

log=${1:?usage: scripts/check-backends.sh NEXTEST_OUTPUT_FILE}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Colours, should the output have them, are dropped first.
sed -E 's/\x1b\[[0-9;]*m//g' "$log" >"$work/log"

# `        PASS [   0.201s] (158/331) cashgrid::e2e sqlite::some_scenario` -> `cashgrid::e2e sqlite::some_scenario`
# (LEAK: passed, but left a subprocess's handles open a moment longer.)
sed -nE 's/^[[:space:]]*(PASS|LEAK) \[[^]]*\] (\([^)]*\) )?([^ ]+) ([^ ]+)[[:space:]]*$/\3 \4/p' "$work/log" | sort -u >"$work/passed"

# Guard against a change of nextest's output format: the lines read must be all the passes its
# summary counts.
summary=$(grep -E '^[[:space:]]*Summary \[' "$work/log" | tail -n 1 || true)
counted=$(sed -nE 's/.* tests? run: ([0-9]+) passed.*/\1/p' <<<"$summary")
read_lines=$(wc -l <"$work/passed")
if [ -z "$counted" ] || [ "$counted" -ne "$read_lines" ]; then
  echo "check-backends: read $read_lines passed tests, but nextest's summary says: ${summary:-nothing}" >&2
  exit 1
fi

failed=0
binaries=$(awk '$2 ~ /^(sqlite|postgres)(_only)?::/ {print $1}' "$work/passed" | sort -u)
if [ -z "$binaries" ]; then
  echo "check-backends: no backend test passed at all" >&2
  exit 1
fi
for binary in $binaries; do
  names() { awk -v binary="$binary" -v module="$1" '$1 == binary && index($2, module "::") == 1 {print substr($2, length(module) + 3)}' "$work/passed" | sort; }
  names sqlite >"$work/sqlite"
  names postgres >"$work/postgres"
  only_sqlite=$(comm -23 "$work/sqlite" "$work/postgres")
  only_postgres=$(comm -13 "$work/sqlite" "$work/postgres")
  if [ -n "$only_sqlite" ] || [ -n "$only_postgres" ]; then
    failed=1
    echo "check-backends: $binary: the backends passed different scenarios" >&2
    [ -z "$only_sqlite" ] || sed 's/^/  passed on SQLite only: /' <<<"$only_sqlite" >&2
    [ -z "$only_postgres" ] || sed 's/^/  passed on PostgreSQL only: /' <<<"$only_postgres" >&2
  fi
  for module in sqlite_only postgres_only; do
    if [ -z "$(names "$module")" ]; then
      failed=1
      echo "check-backends: $binary: no test of $module passed" >&2
    fi
  done
  echo "check-backends: $binary: $(comm -12 "$work/sqlite" "$work/postgres" | wc -l) scenarios passed on both backends," \
    "$(names sqlite_only | wc -l) SQLite-only and $(names postgres_only | wc -l) PostgreSQL-only tests passed"
done
exit "$failed"
