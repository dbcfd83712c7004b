#!/usr/bin/env bash
# The Crypto Capital API against a client written from the seed document alone
# (scripts/ccc_client.py: coincurve for the Bitcoin message signatures, websockets for the
# socket; nothing of cashgrid's): two users authenticate, register, receive a deposit, transfer
# to each other and to an IBAN, replay their history, and check every server signature. CI runs
# it; README.md, "The Crypto Capital WebSocket API", shows the same by hand.
#
#   1. installs the client's PyPI packages (pinned) with pip if they are missing;
#   2. uses the tests' build (target/debug/cashgrid; CHECK_CCC_CASHGRID=path for another);
#   3. starts `cashgrid serve` on an embedded store in a temporary directory (127.0.0.1, port 0)
#      and runs the client against it, bounded by a timeout.
# Everything listens on 127.0.0.1 only; the server and temporary files are removed on exit.
set -euo pipefail

cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/cashgrid.sh
. scripts/lib/cashgrid.sh
COINCURVE_VERSION=21.0.0
WEBSOCKETS_VERSION=17.4
RUN_TIMEOUT=${CHECK_CCC_RUN_TIMEOUT:-120}
START_TIMEOUT=60

log() { echo "check-ccc-client: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-ccc-client.XXXXXX")
SERVER_PID=
cleanup() {
  local rc=$?
  set +e
  [ -n "$SERVER_PID" ] && stop_process "$SERVER_PID"
  if [ "$rc" -ne 0 ] && [ -s "$TMP/cashgrid.log" ]; then
    echo "----- last lines of cashgrid.log -----" >&2
    tail -n 20 "$TMP/cashgrid.log" >&2
  fi
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. the client's packages ----------------------------------------------------------------
installed() { python3 -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || true; }
if [ "$(installed coincurve)" != "$COINCURVE_VERSION" ] || [ "$(installed websockets)" != "$WEBSOCKETS_VERSION" ]; then
  log "installing coincurve $COINCURVE_VERSION and websockets $WEBSOCKETS_VERSION with pip"
  python3 -m pip install --quiet --disable-pip-version-check "coincurve==$COINCURVE_VERSION" \
    "websockets==$WEBSOCKETS_VERSION" >"$TMP/pip.log" 2>&1 || { tail -n 30 "$TMP/pip.log" >&2; die "pip install failed"; }
fi

# --- 2. the binary ------------------------------------------------------------------------------
if [ -n "${CHECK_CCC_CASHGRID:-}" ]; then
  CASHGRID=$CHECK_CCC_CASHGRID
else
  TARGET=$(target_dir .) || die "cargo metadata failed"
  CASHGRID=$TARGET/debug/cashgrid
  [ -x "$CASHGRID" ] || cargo test --workspace --no-run --quiet || die "cargo build failed"
fi
[ -x "$CASHGRID" ] || die "no cashgrid binary at $CASHGRID"

# --- 3. the server and the client ------------------------------------------------------------
DATA=$TMP/data
"$CASHGRID" serve --bind 127.0.0.1:0 --data-dir "$DATA" >"$TMP/cashgrid.out" 2>"$TMP/cashgrid.log" &
SERVER_PID=$!
PORT=$(listening_port "$TMP/cashgrid.out" "$SERVER_PID" "$START_TIMEOUT") || {
  kill -0 "$SERVER_PID" 2>/dev/null || die "cashgrid exited before listening"
  die "cashgrid printed no listening line within ${START_TIMEOUT}s"
}
SIGNER=$(sed -n 's|^cashgrid ccc messages are signed by ||p' "$TMP/cashgrid.out")
[ -n "$SIGNER" ] || die "cashgrid printed no signing address"
timeout "$RUN_TIMEOUT" python3 scripts/ccc_client.py --url "ws://127.0.0.1:$PORT/ccc/v1" --cashgrid "$CASHGRID" \
  --data-dir "$DATA" --server-address "$SIGNER" || die "the client failed"
if grep -q "panicked" "$TMP/cashgrid.log"; then
  die "the server panicked"
fi
log "OK"
