# Shell helpers the check scripts share (source it): where cargo builds, a started cashgrid's
# port, and stopping a process that may not stop by itself.

# target_dir DIR: the target directory of the cargo workspace at DIR.
target_dir() {
  (cd "$1" && cargo metadata --format-version 1 --no-deps) |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# listening_port OUT PID TIMEOUT: wait (at most TIMEOUT seconds) for the line "cashgrid
# listening on http://127.0.0.1:PORT" in the file OUT of the server PID, and print PORT. Fails
# (status 1) when the server exits first or the time is up.
listening_port() {
  local out=$1 pid=$2 deadline=$((SECONDS + $3)) port
  while [ $SECONDS -lt $deadline ]; do
    port=$(sed -n 's|^cashgrid listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$|\1|p' "$out" 2>/dev/null || true)
    if [ -n "$port" ]; then
      echo "$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# stop_process PID: SIGTERM, up to 5 s to end, then SIGKILL; reaped either way.
stop_process() {
  local pid=$1
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
