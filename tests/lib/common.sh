# Helpers for the script tests that start real processes (a library, not a test: ctest runs
# tests/**/*_test.sh only). Source it first thing:
#
#   source "$(dirname "$0")/../lib/common.sh"
#
# It sets `set -euo pipefail`, BIN (the built seekserve, from $SEEKSERVE_BINARY), PY (Debian's
# python3), TEST_TMP (a fresh folder) and an EXIT trap that kills every process registered with
# track_pid (and their children: a router's supervised replicas) and removes TEST_TMP.
set -euo pipefail
BIN=${SEEKSERVE_BINARY:?SEEKSERVE_BINARY must name the built seekserve binary}
PY=/usr/bin/python3
TEST_TMP=$(mktemp -d)
TEST_PIDS=()

test_cleanup() {
  local p
  for p in "${TEST_PIDS[@]}"; do
    pkill -9 -P "$p" 2>/dev/null || true
    { kill -9 "$p" && wait "$p"; } 2>/dev/null || true
  done
  rm -rf "$TEST_TMP"
}
trap test_cleanup EXIT

# track_pid PID: killed (-9) when the test exits, however it exits.
track_pid() { TEST_PIDS+=("$1"); }

# fail MESSAGE: one line on stderr, exit 1.
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# free_port: a TCP port on 127.0.0.1 nobody listens on (for tests that need a refused port).
free_port() {
  $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_serve NAME MODEL [SERVE ARGS...]: starts `seekserve serve --model MODEL --port 0 ARGS`
# with stdout in $TEST_TMP/NAME.out and the log in $TEST_TMP/NAME.log, and waits (up to 120 s,
# for a loaded machine) for the "serving … at URL" line. Sets URL and PID. A server that dies or
# never prints its URL fails the test with its log.
start_serve() {
  local name=$1 model=$2
  shift 2
  "$BIN" serve --model "$model" --port 0 "$@" >"$TEST_TMP/$name.out" 2>"$TEST_TMP/$name.log" &
  PID=$!
  track_pid "$PID"
  local _
  for _ in $(seq 1 1200); do
    URL=$(sed -n 's/.* at \(http:[^ ]*\)$/\1/p' "$TEST_TMP/$name.out" | head -1)
    [[ -n "$URL" ]] && return 0
    if ! kill -0 "$PID" 2>/dev/null; then
      cat "$TEST_TMP/$name.log" >&2
      fail "server $name died before it listened"
    fi
    sleep 0.1
  done
  cat "$TEST_TMP/$name.log" >&2
  fail "server $name did not print its URL within 120 s"
}

# wait_for_file FILE [SECONDS]: waits until FILE is non-empty (default 30 s).
wait_for_file() {
  local file=$1 limit=${2:-30} _
  for _ in $(seq 1 $((limit * 10))); do
    [[ -s "$file" ]] && return 0
    sleep 0.1
  done
  fail "$file stayed empty for $limit s"
}

# wait_for SECONDS COMMAND...: runs COMMAND every 0.25 s until it succeeds (status 0) or SECONDS
# pass (status 1).
wait_for() {
  local limit=$1 _
  shift
  for _ in $(seq 1 $((limit * 4))); do
    "$@" && return 0
    sleep 0.25
  done
  return 1
}

# start_router NAME YAML: writes YAML to $TEST_TMP/NAME.yaml, starts `seekserve route` on it with
# stdout in NAME.out and the log in NAME.log, and waits (up to 60 s) for its "routing at URL"
# line. Sets RURL and RPID. The YAML should say `port: 0`.
start_router() {
  local name=$1 _
  printf '%s\n' "$2" >"$TEST_TMP/$name.yaml"
  "$BIN" route --config "$TEST_TMP/$name.yaml" >"$TEST_TMP/$name.out" 2>"$TEST_TMP/$name.log" &
  RPID=$!
  track_pid "$RPID"
  for _ in $(seq 1 600); do
    # NAME.out may not exist yet when first read: the background shell opens it.
    RURL=$(sed -n 's/.*routing at \(http:[^ ]*\) .*/\1/p' "$TEST_TMP/$name.out" 2>/dev/null | head -1 || true)
    [[ -n "$RURL" ]] && return 0
    kill -0 "$RPID" 2>/dev/null || fail "router $name died: $(tail -5 "$TEST_TMP/$name.log")"
    sleep 0.1
  done
  fail "router $name did not print its URL within 60 s"
}
