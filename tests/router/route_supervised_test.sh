#!/usr/bin/env bash
# `seekserve route` over supervised `seekserve serve` replicas (tiny demo model), real processes
# on loopback:
#   1. the newer config fields refuse bad values: one line naming the field, exit 2;
#   2. prefix_affinity with the replicas' own tokenizer (the model folder): prompts sharing their
#      first 8 tokens land on one replica however they go on; different leading tokens use both;
#   3. a replica that hangs while its process lives (SIGSTOP: it accepts connections and answers
#      nothing) under steady load (openai client, no client retries): the router's health check
#      marks it unhealthy, the supervisor kills it (SIGTERM, then SIGKILL after replace_grace,
#      since a frozen process cannot act on SIGTERM) and starts a fresh process that is readmitted
#      and serves; zero failed client requests; counted in /metrics, logged with the reason.
# Every process is killed on exit (trap).
source "$(dirname "$0")/../lib/common.sh"
SRC=${SEEKSERVE_SOURCE_DIR:?}
tmp=$TEST_TMP
fail() {
  echo "route_supervised_test: FAIL: $*"
  for f in "$tmp"/*.log; do echo "--- $f"; tail -25 "$f"; done
  exit 1
}

"$BIN" make-model --preset tiny-v3 --out "$tmp/tiny-v3" >/dev/null
SERVE="$BIN serve --model $tmp/tiny-v3 --host 127.0.0.1 --port {port} --threads 1 --kv-blocks 256"

# --- 1. bad values of the newer fields ---------------------------------------------------------
bad() {  # bad FIELD YAML
  local rc=0
  printf 'port: 0\n%s\n' "$2" >"$tmp/bad.yaml"
  "$BIN" route --config "$tmp/bad.yaml" >/dev/null 2>"$tmp/bad.err" || rc=$?
  [[ $rc -eq 2 ]] || fail "bad config ($1): exit $rc, want 2: $(cat "$tmp/bad.err")"
  [[ $(wc -l <"$tmp/bad.err") -eq 1 ]] || fail "bad config ($1): not one line: $(cat "$tmp/bad.err")"
  grep -qF "$1" "$tmp/bad.err" || fail "bad config: '$1' not named: $(cat "$tmp/bad.err")"
}
bad replicas.replace_unhealthy_after "replicas: {command: \"$SERVE\", replace_unhealthy_after: -1s}"
bad replicas.replace_grace "replicas: {command: \"$SERVE\", replace_grace: 0s}"
bad scaling_policy.admin_api_key_file "backends: [http://127.0.0.1:9]
scaling_policy:
  admin_api_key_file: $tmp/no-such.key
  scaling_rules: [{metric: request_queue_length, threshold: 50, action: scale_batch}]"
bad prefix_affinity.prefix_tokens "backends: [http://127.0.0.1:9]
prefix_affinity: {prefix_tokens: 8}"
bad prefix_affinity.tokenizer "backends: [http://127.0.0.1:9]
policy: prefix_affinity
prefix_affinity: {tokenizer: $tmp/no-such-model}"
echo "route_supervised_test: bad configs ok"

# --- the router and its two replicas -------------------------------------------------------------
base=$((36000 + ($$ % 100) * 100))
cat >"$tmp/sup.yaml" <<EOF
port: 0
threads: 2
policy: prefix_affinity
prefix_affinity: {tokenizer: $tmp/tiny-v3, prefix_tokens: 8}
# Generous: on a loaded machine a healthy replica must not look hung (3 checks of 2 s in a row).
health_check: {interval: 500ms, timeout: 2s, unhealthy_threshold: 3, healthy_threshold: 1}
replicas:
  command: "$SERVE"
  min: 2
  max: 2
  port_range: $base-$((base + 99))
  replace_unhealthy_after: 3s
  replace_grace: 2s
  log_dir: $tmp
EOF
start_router sup "$(cat "$tmp/sup.yaml")"
metric() { curl -sf "$RURL/metrics" | awk -v n="$1" '$1 == n { print $2 }'; }
metric_is() { [[ "$(metric "$1")" == "$2" ]]; }
ready_is() { metric_is 'seekserve_router_supervised_replicas{state="ready"}' "$1"; }
healthy_is() { metric_is seekserve_router_healthy_replicas "$1"; }
wait_for 120 ready_is 2 || fail "the two replicas did not become ready"
wait_for 60 healthy_is 2 || fail "the two replicas are not healthy in the pool"

# --- 2. token-prefix affinity ----------------------------------------------------------------------
backend_of() {  # the replica that answered PROMPT (X-Seekserve-Backend)
  curl -sf -D - -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"model\":\"tiny-v3\",\"prompt\":\"$1\",\"max_tokens\":2}" "$RURL/v1/completions" |
    tr -d '\r' | sed -n 's/^[Xx]-[Ss]eekserve-[Bb]ackend: //p'
}
# Nine words, at least 8 tokens; what follows differs from the first character on.
shared="The quick brown fox jumps over the lazy dog"
first=""
for i in 1 2 3 4 5 6 7 8; do
  be=$(backend_of "$shared $i$i$i and question $RANDOM")
  [[ -n "$be" ]] || fail "no X-Seekserve-Backend header"
  [[ -z "$first" ]] && first=$be
  [[ "$be" == "$first" ]] || fail "prompts sharing 8 leading tokens went to $first and $be"
done
declare -A homes
for w in alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima; do
  be=$(backend_of "$w team asks about the quarterly invoice of the office: $RANDOM")
  [[ "$(backend_of "$w team asks about the quarterly invoice of the office: again")" == "$be" ]] || fail "prefix '$w' not sticky"
  homes[$be]=1
done
[[ ${#homes[@]} -eq 2 ]] || fail "twelve leading-token prefixes all on one replica"
echo "route_supervised_test: token prefix affinity ok"

# --- 3. a hung replica is replaced under load ------------------------------------------------------
before=$(pgrep -P "$RPID" -f "seekserve serve" | sort | tr '\n' ' ')
[[ $(wc -w <<<"$before") -eq 2 ]] || fail "want two replica processes under the router: $before"
ROUTER_URL=$RURL CONCURRENCY=4 STOP_FILE="$tmp/stop" NODE_PATH="$SRC/node_modules" \
  node "$SRC/tests/router/load.mjs" >"$tmp/load.json" &
load_pid=$!
track_pid "$load_pid"
sleep 2
frozen=$(awk '{ print $1 }' <<<"$before")
kill -STOP "$frozen"
wait_for 120 metric_is 'seekserve_router_replica_replacements_total{reason="health_check"}' 1 ||
  fail "the frozen replica was not replaced"
wait_for 60 bash -c "! kill -0 $frozen 2>/dev/null" || fail "the frozen replica $frozen still exists"
wait_for 120 ready_is 2 || fail "the replacement did not become ready"
wait_for 60 healthy_is 2 || fail "the replacement is not healthy in the pool"
after=$(pgrep -P "$RPID" -f "seekserve serve" | sort | tr '\n' ' ')
[[ $(wc -w <<<"$after") -eq 2 ]] || fail "want two replica processes after the replacement: $after"
fresh=""
for p in $after; do [[ " $before " == *" $p "* ]] || fresh=$p; done
[[ -n "$fresh" ]] || fail "no new replica process: before '$before', after '$after'"
# The fresh replica serves: its own request counter moves under the load.
fresh_port=$(tr '\0' ' ' <"/proc/$fresh/cmdline" | sed -n 's/.*--port \([0-9]*\).*/\1/p')
served() {
  local v
  v=$(curl -sf "http://127.0.0.1:$fresh_port/metrics" | sed -n 's/^seekserve_requests_total{code="200"} //p')
  (( ${v:-0} > 0 ))
}
wait_for 120 served || fail "the replacement (port $fresh_port) served no request"
touch "$tmp/stop"
wait "$load_pid" || fail "load client failed"
cat "$tmp/load.json"
/usr/bin/python3 - "$tmp/load.json" <<'PY' || fail "client-visible failures"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["failed"] == 0, r
assert r["ok"] >= 20, r
PY
metric_is seekserve_router_replica_restarts_total 1 || fail "restarts_total is not 1"
grep -q "health check failing for .* (process alive): replacing it" "$tmp/sup.log" ||
  fail "the replacement's reason is not logged"
grep -q "still running 2s after SIGTERM: SIGKILL" "$tmp/sup.log" || fail "no SIGKILL after the grace"
curl -sf "$RURL/metrics" | promtool check metrics || fail "promtool rejects the router's /metrics"
echo "route_supervised_test: frozen replica $(awk '{ print $1 }' <<<"$before") replaced by $fresh, $(cat "$tmp/load.json")"

kill -TERM "$RPID"
wait "$RPID" || fail "router exited $? after SIGTERM"
for c in $after; do
  wait_for 30 bash -c "! kill -0 $c 2>/dev/null" || fail "replica $c outlived the router"
done
echo "route_supervised_test: ok"
