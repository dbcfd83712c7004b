#!/usr/bin/env bash
# Runs every test of cashgrid on both backends (embedded SQLite and PostgreSQL).
# Sets up what a fresh machine lacks: cargo-nextest, a PostgreSQL at 127.0.0.1:5432, and an
# MQTT broker (Mosquitto) at 127.0.0.1:1883 for the MQTT push tests.
# PostgreSQL tests fail (never pass without running) when the database cannot be reached.
# CASHGRID_SKIP_POSTGRES=1, set by hand, leaves them out with a nextest filter (the profile
# `without-postgres` in .config/nextest.toml), so nextest counts them as skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

export CASHGRID_TEST_DATABASE_URL="${CASHGRID_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "test.sh: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi

profile=()
if [ "${CASHGRID_SKIP_POSTGRES:-0}" = "1" ]; then
  echo "test.sh: CASHGRID_SKIP_POSTGRES=1: the PostgreSQL tests are left out (shown as skipped)" >&2
  profile=(--profile without-postgres)
else
  scripts/ensure-postgres.sh
fi

scripts/ensure-mosquitto.sh

exec cargo nextest run --workspace --no-fail-fast ${profile[@]+"${profile[@]}"} "$@"
