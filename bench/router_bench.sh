#!/usr/bin/env bash
# Router overhead against an upstream that answers at once: Debian's nginx (one worker, started
# here as a non-daemon on a free port with a temporary config) returns a fixed completion JSON
# body and a fixed SSE body. bench/router_load (Asio client, kept-alive connections) measures
# latency per request directly against nginx and through `seekserve route`, side by side, at 100
# and 1,000 requests/s, then the most requests/s through the router.
# Pinning on 2 cores (default): router (1 I/O thread) on CPU 1; nginx and the load client on
# CPU 0. ROUTER_BENCH_PIN=0: nothing pinned and the router gets 2 I/O threads (on a machine shared
# with other work, a pinned process waits behind whatever else runs on its core).
#   SEEKSERVE_BUILD_DIR=build bash bench/router_bench.sh      (or: make bench)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SEEKSERVE_BUILD_DIR:-build}
BIN=$build/seekserve
LOAD=$build/bench/router_load
[[ -x "$LOAD" ]] || cmake --build "$build" --target router_load >/dev/null
SECONDS_PER_RUN=${ROUTER_BENCH_SECONDS:-10}
if [[ ${ROUTER_BENCH_PIN:-1} == 1 ]]; then
  on_client=(taskset -c 0) on_router=(taskset -c 1) router_threads=1
else
  on_client=() on_router=() router_threads=2
fi
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.2
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

NGINX_PORT=$(free_port)
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx;
  proxy_temp_path $tmp/nginx;
  fastcgi_temp_path $tmp/nginx;
  uwsgi_temp_path $tmp/nginx;
  scgi_temp_path $tmp/nginx;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location = /health { return 200 '{"status":"ok"}'; }
    location = /v1/completions {
      default_type application/json;
      return 200 '{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":" Hello! How can I help you today?","finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":3,"completion_tokens":9,"total_tokens":12}}';
    }
    location = /v1/stream {
      default_type text/event-stream;
      return 200 'data: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" Hello"}]}\n\ndata: {"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":"!","finish_reason":"stop"}]}\n\ndata: [DONE]\n\n';
    }
  }
}
CONF
"${on_client[@]}" nginx -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/nginx/error.log" &
pids+=($!)
printf 'port: 0\nthreads: %s\nlog_level: warn\nbackends: [http://127.0.0.1:%s]\n' "$router_threads" \
  "$NGINX_PORT" >"$tmp/router.yaml"
"${on_router[@]}" "$BIN" route --config "$tmp/router.yaml" >"$tmp/router.out" 2>"$tmp/router.log" &
pids+=($!)
for _ in $(seq 1 100); do
  ROUTER=$(sed -n 's/.*routing at \(http:[^ ]*\) .*/\1/p' "$tmp/router.out" | head -1)
  [[ -n "$ROUTER" ]] && break
  sleep 0.1
done
[[ -n "$ROUTER" ]] || { cat "$tmp/router.log"; echo "router did not start"; exit 1; }
NGINX=http://127.0.0.1:$NGINX_PORT

run() {  # run URL RATE CONNECTIONS: bodies to /v1/stream ask for "stream": true
  local stream=0
  [[ "$1" == */v1/stream ]] && stream=1
  "${on_client[@]}" "$LOAD" --url "$1" --rate "$2" --connections "$3" --seconds "$SECONDS_PER_RUN" \
    --warmup 1 --stream "$stream"
}
field() { /usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

echo "| body | rate (req/s) | direct P50 / P99 (ms) | via router P50 / P99 (ms) | added P50 / P99 (ms) |"
echo "|---|---|---|---|---|"
for path in /v1/completions /v1/stream; do
  for rate in 100 1000; do
    d=$(run "$NGINX$path" "$rate" 16)
    r=$(run "$ROUTER$path" "$rate" 16)
    /usr/bin/python3 - "$path" "$rate" "$d" "$r" <<'PY'
import json, sys
path, rate, d, r = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
kind = "completion JSON" if path == "/v1/completions" else "SSE"
print(f"| {kind} | {rate} | {d['p50_ms']:.3f} / {d['p99_ms']:.3f} | {r['p50_ms']:.3f} / {r['p99_ms']:.3f} "
      f"| {r['p50_ms'] - d['p50_ms']:.3f} / {r['p99_ms'] - d['p99_ms']:.3f} |")
PY
  done
done
echo
echo "| closed loop, 64 connections | req/s | P50 (ms) | P99 (ms) |"
echo "|---|---|---|---|"
for target in "direct $NGINX" "router $ROUTER"; do
  set -- $target
  m=$(run "$2/v1/completions" 0 64)
  echo "| $1 | $(field "$m" rps) | $(field "$m" p50_ms) | $(field "$m" p99_ms) |"
done
