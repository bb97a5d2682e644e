#!/usr/bin/env bash
# `seekserve route` over three real `seekserve serve` replicas (tiny demo model) on loopback:
# each policy's distribution (counted by the replicas' own seekserve_requests_total), that
# least_connections and prefix_affinity's load bound steer away from a replica frozen with
# SIGSTOP, streaming equal to direct (openai client), a client disconnect freeing the replica's
# sequence, bad configurations (exit 2, field named), /metrics through promtool, and last the
# fault test: one replica killed under steady load, zero failed client requests, the dead one
# ejected. Every process is killed on exit (trap).
source "$(dirname "$0")/../lib/common.sh"
SRC=${SEEKSERVE_SOURCE_DIR:?}
tmp=$TEST_TMP
fail() { echo "route_test: FAIL: $*"; for f in "$tmp"/*.log; do echo "--- $f"; tail -15 "$f"; done; exit 1; }

"$BIN" make-model --preset tiny-v3 --out "$tmp/tiny-v3" >/dev/null
# The disconnect check below needs a stream that is still running when the test looks, on any
# machine: tiny-v3 decodes a token in well under a millisecond, so its 512-position context is
# raised to the KV cache's 4,096 tokens (the replicas' --kv-blocks 256 x 16) for a 4,000-token stream.
/usr/bin/python3 - "$tmp/tiny-v3/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["max_position_embeddings"] = 4096
json.dump(c, open(sys.argv[1], "w"))
PY

# start_replica NAME: sets URL and PID.
start_replica() { start_serve "$1" "$tmp/tiny-v3" --threads 1 --kv-blocks 256 --max-num-seqs 8; }
start_replica r1; U1=$URL P1=$PID
start_replica r2; U2=$URL P2=$PID
start_replica r3; U3=$URL P3=$PID
URLS=("$U1" "$U2" "$U3")

# router NAME YAML_BODY: start_router with port 0 and two I/O threads; sets RURL, RPID.
router() {
  start_router "$1" "port: 0
threads: 2
$2"
}
stop_router() {
  kill -TERM "$RPID"
  local rc=0
  wait "$RPID" || rc=$?
  [[ $rc -eq 0 ]] || fail "router exited $rc after SIGTERM"
}

backends_yaml() {  # the three replicas as a YAML list
  echo "backends:"
  for u in "${URLS[@]}"; do echo "  - $u"; done
}

ok_count() {  # 200 replies a replica has sent so far
  local v
  v=$(curl -sf --max-time 20 "$1/metrics" | sed -n 's/^seekserve_requests_total{code="200"} //p')
  echo "${v:-0}"
}
counts() { echo "$(ok_count "$U1") $(ok_count "$U2") $(ok_count "$U3")"; }
delta() {  # delta "BEFORE" "AFTER" -> "d1 d2 d3"
  local -a a=($1) b=($2)
  echo "$((b[0] - a[0])) $((b[1] - a[1])) $((b[2] - a[2]))"
}
complete() {  # complete PROMPT [curl args...]: one short completion through the router
  local prompt=$1
  shift
  curl -sf -H 'Content-Type: application/json' "$@" \
    -d "{\"model\":\"tiny-v3\",\"prompt\":\"$prompt\",\"max_tokens\":2}" "$RURL/v1/completions"
}
backend_of() {  # the replica that answered PROMPT (X-Seekserve-Backend)
  complete "$1" -D - -o /dev/null | tr -d '\r' | sed -n 's/^[Xx]-[Ss]eekserve-[Bb]ackend: //p'
}
FAST_HEALTH='health_check: {interval: 500ms, timeout: 1s, unhealthy_threshold: 2}'
SLOW_HEALTH='health_check: {interval: 60s, timeout: 2s}'

# --- round_robin: 30 requests, 10 each ---------------------------------------------------------
router rr "policy: round_robin
$(backends_yaml)
$FAST_HEALTH"
before=$(counts)
for i in $(seq 1 30); do complete "rr $i" >/dev/null || fail "round_robin request $i"; done
d=$(delta "$before" "$(counts)")
[[ "$d" == "10 10 10" ]] || fail "round_robin distributed $d, want 10 10 10"
echo "round_robin: $d"

# The openai client through the router (streaming equals direct, request ids, errors).
ROUTER_URL=$RURL REPLICA_URL=$U1 NODE_PATH="$SRC/node_modules" \
  node --test "$SRC/tests/router/route_client.test.mjs" || fail "openai client tests"

# Prometheus' own checker accepts the router's exposition.
curl -sf "$RURL/metrics" >"$tmp/metrics.txt"
promtool check metrics <"$tmp/metrics.txt" || fail "promtool check metrics"
for name in seekserve_router_requests_total seekserve_router_retries_total \
  seekserve_router_backend_in_flight seekserve_router_backend_latency_seconds_bucket \
  seekserve_router_backend_requests_total seekserve_router_backend_ejections_total \
  seekserve_router_replicas seekserve_router_healthy_replicas; do
  grep -qF "$name" "$tmp/metrics.txt" || fail "missing metric $name"
done
grep -q '^seekserve_router_healthy_replicas 3$' "$tmp/metrics.txt" || fail "3 healthy replicas"
[[ $(curl -s -o /dev/null -w '%{http_code}' "$RURL/health") == 200 ]] || fail "router /health"

# Client disconnect mid-stream: the replica's sequence is freed (running -> 0) long before the
# 4000 tokens it was asked for could be generated (long enough that it is still running when the
# test looks, however fast the machine).
gen_before=$(curl -sf "$U1/metrics" | sed -n 's/^seekserve_generation_tokens_total //p')
gen_before=${gen_before:-0}
stop_router
router disconnect "backends: [$U1]
$FAST_HEALTH"
curl -sN -H 'Content-Type: application/json' -d '{"model":"tiny-v3","prompt":"go on","max_tokens":4000,"ignore_eos":true,"stream":true}' \
  "$RURL/v1/completions" >"$tmp/stream.txt" &
curl_pid=$!
for _ in $(seq 1 200); do grep -q '^data: ' "$tmp/stream.txt" && break; sleep 0.05; done
grep -q '^data: ' "$tmp/stream.txt" || fail "no streamed data"
running=0
for _ in $(seq 1 100); do  # a scrape can wait behind the replica's busy HTTP threads: poll
  if curl -sf -m 2 "$U1/metrics" | grep -q '^seekserve_num_requests_running 1$'; then running=1; break; fi
  sleep 0.05
done
[[ $running == 1 ]] || fail "stream not running: $(curl -s -m 2 "$U1/metrics" | grep -E '^seekserve_num_requests_(running|waiting) ')"
kill "$curl_pid"
wait "$curl_pid" 2>/dev/null || true
freed=0
for _ in $(seq 1 200); do
  if curl -sf "$U1/metrics" | grep -q '^seekserve_num_requests_running 0$'; then freed=1; break; fi
  sleep 0.05
done
[[ $freed == 1 ]] || fail "replica still running the stream after the client left"
gen_after=$(curl -sf "$U1/metrics" | sed -n 's/^seekserve_generation_tokens_total //p')
(( gen_after - gen_before < 4000 )) || fail "the stream ran to its end ($((gen_after - gen_before)) tokens)"
counted=0
for _ in $(seq 1 100); do
  if curl -sf "$RURL/metrics" | grep -q '^seekserve_router_client_disconnects_total 1$'; then counted=1; break; fi
  sleep 0.05
done
[[ $counted == 1 ]] || fail "disconnect not counted: $(curl -sf "$RURL/metrics" | grep disconnects_total)"
echo "disconnect: freed after $((gen_after - gen_before)) tokens"
stop_router

# --- weighted 1:2:3: 60 requests, 10/20/30 -----------------------------------------------------
router weighted "policy: weighted
backends:
  - {url: $U1, weight: 1}
  - {url: $U2, weight: 2}
  - {url: $U3, weight: 3}
$FAST_HEALTH"
before=$(counts)
for i in $(seq 1 60); do complete "w $i" >/dev/null || fail "weighted request $i"; done
d=$(delta "$before" "$(counts)")
[[ "$d" == "10 20 30" ]] || fail "weighted distributed $d, want 10 20 30"
echo "weighted: $d"
stop_router

# --- power_of_two: 60 sequential requests on idle replicas spread over all three -----------------
router p2c "policy: power_of_two
$(backends_yaml)
$FAST_HEALTH"
before=$(counts)
for i in $(seq 1 60); do complete "p $i" >/dev/null || fail "power_of_two request $i"; done
read -r a b c <<<"$(delta "$before" "$(counts)")"
(( a + b + c == 60 && a >= 5 && b >= 5 && c >= 5 )) || fail "power_of_two distributed $a $b $c"
echo "power_of_two: $a $b $c"
stop_router

# --- least_connections: sequential requests share evenly; a frozen replica gets no more --------
router lc "policy: least_connections
$(backends_yaml)
$SLOW_HEALTH"
before=$(counts)
for i in $(seq 1 30); do complete "lc $i" >/dev/null || fail "least_connections request $i"; done
d=$(delta "$before" "$(counts)")
[[ "$d" == "10 10 10" ]] || fail "least_connections (idle) distributed $d, want 10 10 10"
# Freeze r3 (SIGSTOP: it accepts connections but answers nothing, like a stalled replica), then
# 13 requests, 3 at a time: the one that lands on r3 hangs there, and with one request in flight
# r3 is never again the least loaded, so the other 12 go to r1 and r2.
before=$(counts)
kill -STOP "$P3"
seq 1 13 | xargs -P 3 -I{} curl -sf -o /dev/null -H 'Content-Type: application/json' \
  -d '{"model":"tiny-v3","prompt":"slow {}","max_tokens":2}' "$RURL/v1/completions" &
xargs_pid=$!
read -r b1 b2 _ <<<"$before"
for _ in $(seq 1 600); do  # r3 cannot answer /metrics while frozen: count r1 and r2 only
  (( $(ok_count "$U1") - b1 + $(ok_count "$U2") - b2 >= 12 )) && break
  sleep 0.1
done
kill -CONT "$P3"
wait "$xargs_pid" || fail "a request failed while r3 was frozen"
read -r a b c <<<"$(delta "$before" "$(counts)")"
(( a + b == 12 && c == 1 )) || fail "least_connections with r3 frozen: $a $b $c, want r3 = 1"
echo "least_connections: idle 10 10 10, r3 frozen: $a $b $c"
stop_router

# --- prefix_affinity: a prefix sticks to one replica; a frozen home spills over ----------------
router pa "policy: prefix_affinity
prefix_affinity: {prefix_chars: 32}
$(backends_yaml)
$SLOW_HEALTH"
declare -A home
for p in alpha bravo charlie delta echo foxtrot; do
  first=""
  for i in 1 2 3 4; do
    be=$(backend_of "shared-prefix-$p-padding-to-32-chars then request $i")
    [[ -n "$be" ]] || fail "no backend header"
    [[ -z "$first" ]] && first=$be
    [[ "$be" == "$first" ]] || fail "prefix $p went to $first and then $be"
  done
  home[$p]=$first
done
distinct=$(printf '%s\n' "${home[@]}" | sort -u | wc -l)
(( distinct >= 2 )) || fail "six prefixes all on one replica"
echo "prefix_affinity: six prefixes on $distinct replicas, each sticky"
# Bounded load: freeze alpha's home; one alpha request hangs there, and the next alpha requests
# go elsewhere instead of queueing behind it.
hp=$P1; [[ "${home[alpha]}" == "$U2" ]] && hp=$P2; [[ "${home[alpha]}" == "$U3" ]] && hp=$P3
kill -STOP "$hp"
complete "shared-prefix-alpha-padding-to-32-chars hung" >/dev/null &
hung=$!
sleep 0.5
for i in 1 2 3; do
  be=$(backend_of "shared-prefix-alpha-padding-to-32-chars spill $i")
  [[ -n "$be" && "$be" != "${home[alpha]}" ]] || fail "alpha request $i went to its frozen home"
done
kill -CONT "$hp"
wait "$hung" || fail "the request held by the frozen replica failed"
echo "prefix_affinity: load bound spilled alpha off its frozen home"
stop_router

# --- bad configurations: exit 2, one line naming the field -------------------------------------
bad() {  # bad FIELD YAML
  printf '%s\n' "$2" >"$tmp/bad.yaml"
  local rc=0
  "$BIN" route --config "$tmp/bad.yaml" --port 0 >/dev/null 2>"$tmp/bad.err" || rc=$?
  [[ $rc -eq 2 ]] || fail "bad config ($1) exited $rc, want 2: $(cat "$tmp/bad.err")"
  [[ $(wc -l <"$tmp/bad.err") -eq 1 ]] || fail "bad config ($1): not one line: $(cat "$tmp/bad.err")"
  grep -qF "$1" "$tmp/bad.err" || fail "bad config error does not name $1: $(cat "$tmp/bad.err")"
}
bad policy "policy: fastest
backends: [$U1]"
bad health_check.unhealthy_threshold "backends: [$U1]
health_check: {unhealthy_threshold: -3}"
bad health_check.interval "backends: [$U1]
health_check: {interval: -1s}"
bad 'backends[1].weight' "backends: [$U1, {url: $U2, weight: -1}]"
bad 'backends[0].url' "backends: ['http://127.0.0.1:70000']"
bad 'backends[0].url' "backends: ['ftp://127.0.0.1:8000']"
bad 'backends[0].url' "backends: ['http://no-such-host.invalid:8000']"
bad 'malformed YAML' "backends: [$U1"
bad 'polcy' "polcy: round_robin
backends: [$U1]"
bad backends "policy: round_robin"
# A backend that does not answer at start is not a config error: it is unhealthy until it does.
port_nobody_uses=$(free_port)
router unreachable "backends: [$U1, 'http://127.0.0.1:$port_nobody_uses']
$FAST_HEALTH"
grep -q '2 backends (1 healthy)' "$tmp/unreachable.out" || fail "unreachable backend at start"
complete "still served" >/dev/null || fail "request with one backend down at start"
stop_router
echo "bad configs: exit 2 with the field named"

# --- fault: kill one of three replicas under steady load -> no client sees a failure ----------
router fault "policy: round_robin
$(backends_yaml)
$FAST_HEALTH
ejection: {consecutive_failures: 2, base_time: 30s}"
ROUTER_URL=$RURL CONCURRENCY=4 STOP_FILE="$tmp/stop" NODE_PATH="$SRC/node_modules" \
  node "$SRC/tests/router/load.mjs" >"$tmp/load.json" &
load_pid=$!
sleep 2
kill -9 "$P2"
sleep 4
touch "$tmp/stop"
wait "$load_pid" || fail "load client failed"
cat "$tmp/load.json"
/usr/bin/python3 - "$tmp/load.json" <<'PY' || fail "client-visible failures"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["failed"] == 0, r
assert r["ok"] >= 20, r
PY
curl -sf "$RURL/metrics" >"$tmp/fault_metrics.txt"
grep -qF "seekserve_router_backend_healthy{backend=\"$U2\"} 0" "$tmp/fault_metrics.txt" ||
  fail "killed replica not marked unhealthy"
ej=$(sed -n "s|^seekserve_router_backend_ejections_total{backend=\"$U2\"} ||p" "$tmp/fault_metrics.txt")
(( ej >= 1 )) || fail "killed replica never ejected"
retries=$(sed -n 's/^seekserve_router_retries_total //p' "$tmp/fault_metrics.txt")
echo "fault: $(cat "$tmp/load.json"), ejections $ej, retries $retries"
stop_router
echo "route_test: ok"
