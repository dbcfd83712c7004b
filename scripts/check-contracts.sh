#!/usr/bin/env bash
# Contract check: schemathesis (PyPI) against every OpenAPI document cashgrid publishes, with
# `--error-status 4xx`: every answer must be documented (status, content type, body schema)
# and none may be a server error. CI runs it; see README.md, "API documents".
#
#   1. installs schemathesis $SCHEMATHESIS_VERSION with pip if it is missing;
#   2. builds cashgrid as the tests do (`cargo test --workspace --no-run`, the dev profile);
#   3. starts it on an embedded store in a temporary directory (127.0.0.1, port 0), creates a
#      customer with token-api, cash-api, clearing-api, ledger-api and ledger-operator
#      credentials and an admin user with the CLI, logs the admin in (POST
#      /dnapi/admin/v1/auth) for a JWT, and opens and funds two ledger accounts;
#   4. checks that /dnapi/docs.json is /openapi/dncash.json, then runs `schemathesis run` once
#      per API group of the dncash document (each with its credentials), twice against the
#      ledger document (a customer's and an operator's credentials) and once against the
#      Crypto Capital operator document (an operator's credentials) and once against the
#      system document, with the checks below, bounded by --max-examples and a timeout;
#   5. fails on any finding, on a run that times out, and on a panic in the server's log.
# Everything listens on 127.0.0.1 only; the server and temporary files are removed on exit.
#
# Knobs (environment):
#   CHECK_CONTRACTS_MAX_EXAMPLES=50   test cases per operation in the fuzzing phase
#   CHECK_CONTRACTS_RUN_TIMEOUT=120   seconds one schemathesis run may take
#   CHECK_CONTRACTS_SEED=N            reproduce a run (schemathesis prints the seed it used)
#   CHECK_CONTRACTS_ONLY=a,b          only these runs (token-api, cash-api, mobile-api,
#                                     clearing-api, admin-api, admin-api-braked, ledger-api,
#                                     ledger-operator, ccc-operator, system)
#   CHECK_CONTRACTS_DATABASE_URL=URL  an empty PostgreSQL database instead of the embedded store
#   CHECK_CONTRACTS_KEEP=1            keep the temporary directory (server log, reports)
#   CHECK_CONTRACTS_SKIP_BUILD=1      use the built binary as it is (while iterating locally)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/lib/cashgrid.sh
. scripts/lib/cashgrid.sh
SCHEMATHESIS_VERSION=4.32.5
MAX_EXAMPLES=${CHECK_CONTRACTS_MAX_EXAMPLES:-50}
RUN_TIMEOUT=${CHECK_CONTRACTS_RUN_TIMEOUT:-120}
START_TIMEOUT=60
# "0 server errors and 0 schema violations": no 5xx; every status, content type and body as
# documented for the operation.
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

log() { echo "check-contracts: $*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[ "$MAX_EXAMPLES" -ge 1 ] 2>/dev/null || die "CHECK_CONTRACTS_MAX_EXAMPLES must be a number >= 1"
[ "$RUN_TIMEOUT" -ge 10 ] 2>/dev/null || die "CHECK_CONTRACTS_RUN_TIMEOUT must be a number >= 10"

# --- cleanup: only what this script started or created ------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/check-contracts.XXXXXX")
SERVER_PID=
cleanup() {
  local rc=$?
  set +e
  [ -n "$SERVER_PID" ] && stop_process "$SERVER_PID"
  if [ "$rc" -ne 0 ] && [ -s "$TMP/cashgrid.log" ]; then
    echo "----- last lines of cashgrid.log -----" >&2
    tail -n 20 "$TMP/cashgrid.log" >&2
  fi
  if [ "${CHECK_CONTRACTS_KEEP:-0}" = "1" ]; then
    log "kept $TMP"
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

STARTED=$(date +%s)

# --- 1. schemathesis from PyPI ----------------------------------------------------------------
# Run as `python3 -m schemathesis.cli`: the interpreter pip installed into, whatever PATH (or a
# pyenv shim not yet rehashed) says.
SCHEMATHESIS=(python3 -m schemathesis.cli)
installed=$(python3 -c 'import schemathesis; print(schemathesis.__version__)' 2>/dev/null || true)
if [ "$installed" != "$SCHEMATHESIS_VERSION" ]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION with pip (found: ${installed:-none})"
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    >"$TMP/pip.log" 2>&1 || { tail -n 30 "$TMP/pip.log" >&2; die "pip install schemathesis failed"; }
fi
"${SCHEMATHESIS[@]}" --version >/dev/null 2>&1 || die "schemathesis does not run after the install"
log "$("${SCHEMATHESIS[@]}" --version)"

# --- 2. build (the tests' profile: no second compilation in CI) ------------------------------
if [ "${CHECK_CONTRACTS_SKIP_BUILD:-0}" = "1" ]; then
  log "CHECK_CONTRACTS_SKIP_BUILD=1: using the built binary as it is"
else
  # Exactly the build the test suite makes (scripts/test.sh: nextest builds with `cargo test
  # --no-run`), whose dev-profile binary the e2e tests run: after the tests, nothing compiles.
  # A plain `cargo build --bin cashgrid` would unify features without the dev-dependencies and
  # rebuild a dozen crates (and the next test run would rebuild them back).
  log "cargo test --workspace --no-run (the tests' build, with target/debug/cashgrid)"
  cargo test --workspace --no-run --quiet || die "cargo build failed"
fi
TARGET=$(target_dir "$ROOT") || die "cargo metadata failed"
CASHGRID=$TARGET/debug/cashgrid
[ -x "$CASHGRID" ] || die "no cashgrid binary at $CASHGRID"

# --- 3. a server with credentials ---------------------------------------------------------------
DATA=$TMP/data
STORE_ARGS=(--data-dir "$DATA")
[ -n "${CHECK_CONTRACTS_DATABASE_URL:-}" ] && STORE_ARGS+=(--database-url "$CHECK_CONTRACTS_DATABASE_URL")
# A trigger's long poll is held 2 s instead of 120 s, so that polls answer (204) within a test
# case's request timeout.
"$CASHGRID" serve --bind 127.0.0.1:0 "${STORE_ARGS[@]}" --error-status 4xx --trigger-wait-ms 2000 \
  >"$TMP/cashgrid.out" 2>"$TMP/cashgrid.log" &
SERVER_PID=$!
PORT=$(listening_port "$TMP/cashgrid.out" "$SERVER_PID" "$START_TIMEOUT") || {
  kill -0 "$SERVER_PID" 2>/dev/null || die "cashgrid exited before listening"
  die "cashgrid printed no listening line within ${START_TIMEOUT}s"
}
BASE=http://127.0.0.1:$PORT
log "cashgrid listening on $BASE (pid $SERVER_PID)"

cli() { "$CASHGRID" "$@" "${STORE_ARGS[@]}"; }
cli customer create --email contracts@example.com --name "Contract check" >/dev/null
for scope in token-api cash-api clearing-api ledger-api ledger-operator; do
  cli access create --customer contracts@example.com --scope "$scope" >"$TMP/$scope.json"
done
ADMIN_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
CASHGRID_USER_PASSWORD=$ADMIN_PASSWORD cli user create --email admin@example.com --admin >/dev/null
python3 - "$BASE" "$ADMIN_PASSWORD" >"$TMP/jwt" <<'EOF' || die "the admin login failed"
import json, sys, urllib.request
base, password = sys.argv[1:]
body = json.dumps({"user": "admin@example.com", "password": password}).encode()
request = urllib.request.Request(f"{base}/dnapi/admin/v1/auth", body, {"Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(request, timeout=30))
if "token" not in answer:
    sys.exit(f"login answered {answer}")
print(answer["token"])
EOF
credential() {  # credential SCOPE FIELD
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$TMP/$1.json" "$2"
}
api_key_headers() {  # api_key_headers SCOPE -> the schemathesis -H arguments
  API_HEADERS=(-H "DN-API-KEY: $(credential "$1" apikey)" -H "DN-API-SECRET: $(credential "$1" apisecret)")
}

# A phone and an ATM of the customer's, for scripts/contracts/hooks.py to put into generated
# requests (random uuids would only meet "not found").
register_device() {  # register_device SCOPE API BODY -> the new device's uuid
  curl -fsS "$BASE/dnapi/$2/v1/devices" -H "DN-API-KEY: $(credential "$1" apikey)" \
    -H "DN-API-SECRET: $(credential "$1" apisecret)" -H 'Content-Type: application/json' -d "$3" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["uuid"])'
}
PUBKEY=$(python3 -c 'import json, sys; print(json.dumps(open(sys.argv[1]).read()))' \
  "$ROOT/tests/fixtures/keys/phone_a_1024.spki.pub.pem")
export CHECK_CONTRACTS_PHONE CHECK_CONTRACTS_ATM SCHEMATHESIS_HOOKS=$ROOT/scripts/contracts/hooks.py
CHECK_CONTRACTS_PHONE=$(register_device token-api token "{\"refname\":\"phone\",\"pubkey\":$PUBKEY}") ||
  die "registering the phone failed"
CHECK_CONTRACTS_ATM=$(register_device cash-api cash '{"refname":"atm"}') || die "registering the ATM failed"

# Two funded ledger accounts of the customer's, for the hooks to put into transfers and paths.
ledger_post() {  # ledger_post SCOPE PATH BODY -> the answer
  curl -fsS "$BASE/ledger/v1$2" -H "DN-API-KEY: $(credential "$1" apikey)" \
    -H "DN-API-SECRET: $(credential "$1" apisecret)" -H 'Content-Type: application/json' -d "$3"
}
json_id() { python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'; }
LEDGER_RAIL=$(ledger_post ledger-operator /accounts \
  '{"currency":"EUR","kind":"external_rail","flags":{"debits_must_not_exceed_credits":false}}' | json_id) ||
  die "opening the ledger rail failed"
LEDGER_A=$(ledger_post ledger-api /accounts '{"currency":"EUR"}' | json_id) || die "opening ledger account A failed"
LEDGER_B=$(ledger_post ledger-api /accounts '{"currency":"EUR"}' | json_id) || die "opening ledger account B failed"
ledger_post ledger-operator /transfers \
  "{\"debit_account_id\":\"$LEDGER_RAIL\",\"credit_account_id\":\"$LEDGER_A\",\"amount\":100000000}" >/dev/null ||
  die "funding ledger account A failed"
export CHECK_CONTRACTS_LEDGER_ACCOUNTS="$LEDGER_A,$LEDGER_B"

# --- 4. the documents, then schemathesis per group ----------------------------------------------
curl -fsS "$BASE/openapi/dncash.json" -o "$TMP/dncash.json" || die "GET /openapi/dncash.json failed"
curl -fsS "$BASE/dnapi/docs.json" -o "$TMP/docs.json" || die "GET /dnapi/docs.json failed"
cmp -s "$TMP/dncash.json" "$TMP/docs.json" || die "/dnapi/docs.json differs from /openapi/dncash.json"

SEED_ARGS=()
[ -n "${CHECK_CONTRACTS_SEED:-}" ] && SEED_ARGS=(--seed "$CHECK_CONTRACTS_SEED")
FAILED_RUNS=()
run_schemathesis() {  # run_schemathesis NAME DOCUMENT [schemathesis arguments...]
  local name=$1 document=$2
  shift 2
  if [ -n "${CHECK_CONTRACTS_ONLY:-}" ] && [[ ",$CHECK_CONTRACTS_ONLY," != *",$name,"* ]]; then
    return 0
  fi
  log "schemathesis: $name ($document)"
  local rc=0
  # From the temporary directory: schemathesis keeps its example database in the working one.
  # One worker: schemathesis' threads trip CPython 3.11's `ast.parse` ("AST constructor
  # recursion depth mismatch"), and the server shares the machine anyway.
  (cd "$TMP" && timeout -k 10 "$RUN_TIMEOUT" "${SCHEMATHESIS[@]}" run "$BASE$document" --url "$BASE" \
    --checks "$CHECKS" --max-examples "$MAX_EXAMPLES" --workers 1 --request-timeout 30 \
    --no-color "${SEED_ARGS[@]}" "$@") >"$TMP/$name.txt" 2>&1 || rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    tail -n 40 "$TMP/$name.txt" >&2
    log "$name: no result within ${RUN_TIMEOUT}s"
    FAILED_RUNS+=("$name (timeout)")
  elif [ "$rc" -ne 0 ]; then
    cat "$TMP/$name.txt" >&2
    FAILED_RUNS+=("$name")
  else
    grep -E '^(API Operations|Test Phases|Test cases|Seed):?|passed|No issues found' "$TMP/$name.txt" | tail -n 6 >&2 || true
  fi
}

api_key_headers token-api
run_schemathesis token-api /openapi/dncash.json --include-path-regex '^/dnapi/token/' "${API_HEADERS[@]}"
api_key_headers cash-api
run_schemathesis cash-api /openapi/dncash.json --include-path-regex '^/dnapi/cash/' "${API_HEADERS[@]}"
run_schemathesis mobile-api /openapi/dncash.json --include-path-regex '^/dnapi/mobile/'
api_key_headers clearing-api
run_schemathesis clearing-api /openapi/dncash.json --include-path-regex '^/dnapi/clearing/' "${API_HEADERS[@]}"
# The login brake answers the n-th wrong password in a row for one e-mail address after
# 2^(n-1)-1 s, by design: `POST /auth` (keyed by the body's `user`) and `PUT /access/{id}` (keyed
# by the session's own address). Generated cases repeat values, so these two run apart, with
# random data only and few cases, which keeps the delays within the request timeout.
BRAKED='^(POST /dnapi/admin/v1/auth|PUT /dnapi/admin/v1/access/\{id\})$'
SESSION_HEADER=(-H "Authorization: Bearer $(cat "$TMP/jwt")")
run_schemathesis admin-api /openapi/dncash.json --include-path-regex '^/dnapi/admin/' \
  --exclude-name-regex "$BRAKED" "${SESSION_HEADER[@]}"
run_schemathesis admin-api-braked /openapi/dncash.json --include-name-regex "$BRAKED" \
  --phases fuzzing --max-examples 4 "${SESSION_HEADER[@]}"
api_key_headers ledger-api
run_schemathesis ledger-api /openapi/ledger.json "${API_HEADERS[@]}"
api_key_headers ledger-operator
run_schemathesis ledger-operator /openapi/ledger.json "${API_HEADERS[@]}"
run_schemathesis ccc-operator /openapi/ccc.json "${API_HEADERS[@]}"
run_schemathesis system /openapi/system.json

# --- 5. verdict -----------------------------------------------------------------------------------
kill -0 "$SERVER_PID" 2>/dev/null || die "cashgrid died during the check"
if grep -n 'panicked' "$TMP/cashgrid.log" >&2; then
  FAILED_RUNS+=("server log: panic")
fi
log "took $(( $(date +%s) - STARTED ))s"
if [ "${#FAILED_RUNS[@]}" -gt 0 ]; then
  die "findings in: ${FAILED_RUNS[*]}"
fi
log "OK: every document's operations answered as documented, without server errors"
