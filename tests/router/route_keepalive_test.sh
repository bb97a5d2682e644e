#!/usr/bin/env bash
# The router's kept-alive connections to a real `seekserve serve` replica: after a burst of
# concurrent requests the router keeps at most backend_keepalive.max_idle of them (a backend that
# gives each connection a thread would otherwise have none left for a direct GET /health), and
# closes them after backend_keepalive.idle_timeout. A connection the replica closed on its own (its
# 5 s keep-alive timeout) is replaced without the client noticing and without counting as a
# failure or a retry. A router with busy_poll serves requests and stops spinning once idle. Every process is killed on exit (trap).
source "$(dirname "$0")/../lib/common.sh"
tmp=$TEST_TMP

"$BIN" make-model --preset tiny-v3 --out "$tmp/tiny-v3" >/dev/null
start_serve serve "$tmp/tiny-v3" --threads 1 --max-num-seqs 4 --http-threads 4
SURL=$URL
SPORT=${SURL##*:}

# router NAME YAML_BODY: a router in front of the replica alone, once it saw it healthy.
router() {
  start_router "$1" "$(printf 'port: 0\nthreads: 1\nbackends: [%s]\nhealth_check: {interval: 60s}\n%s' \
    "$SURL" "$2")"
  wait_for 10 curl -sf --max-time 5 "$RURL/health" -o /dev/null ||
    fail "router $1 never saw the replica healthy"
}
# Connections open to the replica's port (the router's; this script holds none between calls).
to_replica() { ss -Htn state established "( dport = :$SPORT )" | wc -l; }
complete() {  # complete URL MAX_TOKENS
  curl -sf --max-time 120 -H 'Content-Type: application/json' \
    -d "{\"model\":\"tiny-v3\",\"prompt\":\"Once upon a time\",\"max_tokens\":$2}" \
    "$1/v1/completions" -o /dev/null
}
metric() {  # metric URL NAME_WITH_LABELS: its value, 0 when absent
  local v
  v=$(curl -sf --max-time 10 "$1/metrics" | grep -v "^#" | grep -F "$2 " | awk '{print $2}' | head -1)
  echo "${v:-0}"
}

# --- a burst of 4 concurrent requests, then the idle connections the router keeps -----------
router capped 'backend_keepalive: {max_idle: 2, idle_timeout: 2s}'
CAPPED=$RURL
burst=()
for i in 1 2 3 4; do
  complete "$CAPPED" 16 &
  burst+=($!)
done
for p in "${burst[@]}"; do wait "$p" || fail "a burst request failed"; done
held=$(to_replica)
echo "after the burst the router holds $held connections to the replica"
((held <= 2)) || fail "router holds $held idle connections to the replica, max_idle is 2"
# The replica answers its own health check at once.
curl -sf --max-time 3 "$SURL/health" >/dev/null || fail "the replica's /health did not answer"
closed=0
for _ in $(seq 1 100); do
  if (($(to_replica) == 0)); then
    closed=1
    break
  fi
  sleep 0.1
done
((closed)) || fail "idle connections still open 10 s after a 2 s idle_timeout: $(to_replica)"
echo "idle connections closed after idle_timeout"

# --- a connection the replica closed while idle is replaced ---------------------------------
router lasting 'backend_keepalive: {max_idle: 4, idle_timeout: 60s}'
LASTING=$RURL
complete "$LASTING" 2 || fail "first request through the lasting router failed"
((1 == $(to_replica))) || fail "want the one kept-alive connection, see $(to_replica)"
sleep 6.5  # the replica's keep-alive timeout (5 s) closes it
for i in 1 2 3; do complete "$LASTING" 2 || fail "request $i after the replica closed its end failed"; done
backend="seekserve_router_backend_requests_total{backend=\"$SURL\",outcome=\"failed\"}"
[[ $(metric "$LASTING" "$backend") == 0 ]] || fail "a replaced connection counted as a failure"
[[ $(metric "$LASTING" seekserve_router_retries_total) == 0 ]] || fail "it counted as a retry"
[[ $(metric "$LASTING" 'seekserve_router_requests_total{code="200"}') == 4 ]] ||
  fail "want 4 replies with 200"

# --- busy_poll: requests still flow, and once idle past the spin window the thread sleeps --
router spinning 'busy_poll: 20ms'
SPINNING=$RURL
SPIN_PID=$RPID
for i in 1 2 3; do complete "$SPINNING" 4 || fail "request $i through the busy-polling router failed"; done
sleep 1
ticks() { awk '{print $14 + $15}' "/proc/$SPIN_PID/stat"; }
t0=$(ticks)
sleep 2
t1=$(ticks)
echo "busy-polling router, idle: $((t1 - t0)) CPU ticks in 2 s"
# Spinning all along would be ~200 ticks (100 per second); a sleeping thread wakes twice a second.
((t1 - t0 < 40)) || fail "an idle busy-polling router kept spinning: $((t1 - t0)) ticks in 2 s"
echo "route_keepalive_test: OK"
