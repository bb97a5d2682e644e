#!/usr/bin/env bash
# The load generator's own ceiling (docs/BENCHMARKS.md "Load generator"): `seekserve bench` on
# one core against nginx on the other, which answers every POST /v1/completions at once with a
# canned OpenAI stream (two text chunks, usage, [DONE]). Whatever rate this reaches, bench can
# drive a server or router at; the router target is 5,000 req/s.
#
#   bash bench/loadgen_bench.sh       # after make build
#   N=50000 RATE=5000 bash bench/loadgen_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SEEKSERVE_BUILD_DIR:-build}
seek="$build/seekserve"
n=${N:-30000}
rate=${RATE:-3000}
conc=${CONCURRENCY:-64}
bench_cpu=${BENCH_CPU:-0}
nginx_cpu=${NGINX_CPU:-1}
tmp=$(mktemp -d)
nginx_pid=
cleanup() {
  [[ -n "$nginx_pid" ]] && kill "$nginx_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$tmp/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path $tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port backlog=4096;
    location /v1/completions {
      default_type text/event-stream;
      return 200 'data: {"choices":[{"index":0,"text":"a"}]}\n\ndata: {"choices":[{"index":0,"text":"b"}]}\n\ndata: {"choices":[],"usage":{"prompt_tokens":8,"completion_tokens":2}}\n\ndata: [DONE]\n\n';
    }
  }
}
EOF
taskset -c "$nginx_cpu" nginx -c "$tmp/nginx.conf" -p "$tmp" &
nginx_pid=$!
for _ in $(seq 1 50); do
  curl -sf -X POST "http://127.0.0.1:$port/v1/completions" >/dev/null 2>&1 && break
  sleep 0.1
done

run() {  # label, bench args...
  local label=$1
  shift
  /usr/bin/time -f "%U %S %e" -o "$tmp/time" taskset -c "$bench_cpu" "$seek" bench \
    --url "http://127.0.0.1:$port" --model canned --input-len 8 --output-len 2 --warmup 0 \
    --progress none --json "$tmp/out.json" --max-failure-ratio 1 "$@" >/dev/null
  read -r user sys wall <"$tmp/time"
  /usr/bin/python3 - "$tmp/out.json" "$label" "$user" "$sys" "$wall" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
user, sys_, wall = map(float, sys.argv[3:6])
print(f"{sys.argv[2]:<34} {r['completed']:>7} ok {r['failed']:>4} failed  "
      f"{r['request_throughput']:>8.0f} req/s  e2e p50 {r['e2e_ms']['median']:.2f} ms "
      f"p99 {r['e2e_ms']['p99']:.2f} ms  bench CPU {100 * (user + sys_) / wall:.0f}% of one core")
for k, v in r["failures"].items(): print(f"    {v} x {k}")
PY
}
echo "nginx (canned stream) on CPU $nginx_cpu, seekserve bench on CPU $bench_cpu"
run "closed loop, concurrency $conc" -c "$conc" -n "$n"
run "open loop, Poisson $rate/s, 4 s" --rate "$rate" --duration 4
