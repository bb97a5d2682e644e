#!/usr/bin/env bash
# Starts `seekserve serve` on free ports with a tiny model and drives it with the official
# OpenAI npm client (tests/server/openai_client.test.mjs), checks /metrics with promtool, and
# checks that SIGTERM drains and exits 0. The servers are always killed (tests/lib/common.sh).
source "$(dirname "$0")/../lib/common.sh"
SRC=${SEEKSERVE_SOURCE_DIR:?}
tmp=$TEST_TMP

"$BIN" make-model --preset tiny-v3 --out "$tmp/tiny-v3" >/dev/null

# start NAME ARGS...: a tiny-v3 server (tests/lib/common.sh start_serve); sets URL and PID.
start() {
  local name=$1
  shift
  start_serve "$name" "$tmp/tiny-v3" --threads 1 --kv-blocks 512 "$@"
}

start main --api-key test-key --max-num-seqs 32 --max-queue 64
MAIN_URL=$URL MAIN_PID=$PID
printf '# key [priority MIN:MAX] [admin]\nplain-key\nvip-key -1000:100\nops-key admin\n' >"$tmp/keys"
start small --max-num-seqs 1 --max-queue 3 --scheduling-policy priority --api-key-file "$tmp/keys"
SMALL_URL=$URL

# The ready-to-paste curl line works.
grep -q "curl $MAIN_URL/v1/chat/completions" "$tmp/main.out"

status=0
SEEKSERVE_URL=$MAIN_URL SEEKSERVE_SMALL_URL=$SMALL_URL \
  NODE_PATH="$SRC/node_modules" node --test "$SRC/tests/server/openai_client.test.mjs" || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- main server log (tail)"; tail -40 "$tmp/main.log"
  echo "--- small server log (tail)"; tail -40 "$tmp/small.log"
  exit $status
fi

# Half-closed clients get their whole reply; reset and closed ones are cancelled (plain sockets).
/usr/bin/python3 "$SRC/tests/server/half_close.py" "$MAIN_URL" test-key tiny-v3 || {
  echo "--- main server log (tail)"; tail -40 "$tmp/main.log"; exit 1; }

# Prometheus' own checker accepts the exposition.
curl -sf "$MAIN_URL/metrics" >"$tmp/metrics.txt"
promtool check metrics <"$tmp/metrics.txt"
for name in seekserve_time_to_first_token_seconds_bucket seekserve_inter_token_latency_seconds_bucket \
  seekserve_e2e_request_latency_seconds_bucket seekserve_request_queue_time_seconds_bucket \
  seekserve_num_requests_running seekserve_num_requests_waiting seekserve_kv_cache_usage_ratio \
  seekserve_engine_busy_ratio 'seekserve_requests_total{code="200"}' \
  seekserve_prompt_tokens_total \
  seekserve_generation_tokens_total seekserve_preemptions_total \
  seekserve_prefix_cache_queries_total seekserve_prefix_cache_hits_total; do
  grep -qF "$name" "$tmp/metrics.txt" || { echo "missing metric $name"; exit 1; }
done
grep -qF 'seekserve_requests_total{code="429"}' <(curl -sf "$SMALL_URL/metrics")
# Request ids are on the log lines about the request.
grep -q '\[my-id-42\] /v1/completions accepted' "$tmp/main.log"
grep -q '\[my-id-42\] finished' "$tmp/main.log"

# SIGTERM drains: a request in flight completes, /health goes 503, the process exits 0.
curl -sf -H 'Authorization: Bearer test-key' -H 'Content-Type: application/json' \
  -d '{"model":"tiny-v3","prompt":"drain","max_tokens":200,"ignore_eos":true}' \
  "$MAIN_URL/v1/completions" >"$tmp/inflight.json" &
curl_pid=$!
for _ in $(seq 1 100); do
  curl -sf "$MAIN_URL/metrics" | grep -q '^seekserve_num_requests_running 1$' && break
  sleep 0.05
done
kill -TERM "$MAIN_PID"
sleep 0.2
[[ $(curl -s -o /dev/null -w '%{http_code}' "$MAIN_URL/health") == 503 ]]
wait "$curl_pid"
grep -q '"completion_tokens":200' "$tmp/inflight.json"
rc=0
wait "$MAIN_PID" || rc=$?
[[ $rc -eq 0 ]] || { echo "serve exited $rc after SIGTERM"; tail -20 "$tmp/main.log"; exit 1; }
grep -q "draining" "$tmp/main.log"
echo "serve_test: ok"
