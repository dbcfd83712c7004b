#!/usr/bin/env bash
# Runs every test of cashgrid on both backends (embedded SQLite and PostgreSQL).
# Sets up what a fresh machine lacks: cargo-nextest, a PostgreSQL at 127.0.0.1:5432, and an
# MQTT broker (Mosquitto) at 127.0.0.1:1883 for the MQTT push tests.
# PostgreSQL tests fail (never skip) when the database cannot be reached, unless
# CASHGRID_SKIP_POSTGRES=1 is set by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

export CASHGRID_TEST_DATABASE_URL="${CASHGRID_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "test.sh: installing cargo-nextest" >&2
  cargo install cargo-nextest --locked
fi

if [ "${CASHGRID_SKIP_POSTGRES:-0}" != "1" ]; then
  scripts/ensure-postgres.sh
fi

scripts/ensure-mosquitto.sh

exec cargo nextest run --workspace --no-fail-fast "$@"
