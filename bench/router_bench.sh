#!/usr/bin/env bash
# Router overhead against an upstream that answers at once (bench/router_common.bash: Debian's
# nginx returning a fixed completion JSON body and a fixed SSE body). bench/router_load (Asio
# client, kept-alive connections) measures latency per request directly against nginx and
# through `seekserve route`, side by side, at 100 and 1,000 requests/s, then the most requests/s
# through the router.
# Pinning on 2 cores (default): router (1 I/O thread) on CPU 1; nginx and the load client on
# CPU 0. ROUTER_BENCH_PIN=0: nothing pinned and the router gets 2 I/O threads (on a machine shared
# with other work, a pinned process waits behind whatever else runs on its core).
# ROUTER_BENCH_BINS="/tmp/seekserve.before build/seekserve": several routers, each measured right
# after the direct run, in the same order every time (to compare builds side by side).
#   SEEKSERVE_BUILD_DIR=build bash bench/router_bench.sh      (or: make bench)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SEEKSERVE_BUILD_DIR:-build}
LOAD=$build/bench/router_load
[[ -x "$LOAD" ]] || cmake --build "$build" --target router_load >/dev/null
read -r -a bins <<<"${ROUTER_BENCH_BINS:-$build/seekserve}"
SECONDS_PER_RUN=${ROUTER_BENCH_SECONDS:-10}
if [[ ${ROUTER_BENCH_PIN:-1} == 1 ]]; then
  on_client=(taskset -c 0) on_router=(taskset -c 1) router_threads=1
else
  on_client=() on_router=() router_threads=2
fi
source bench/router_common.bash

start_nginx "${on_client[@]}"
routers=()
for i in "${!bins[@]}"; do
  start_router "${bins[$i]}" "$router_threads" "router$i" "${on_router[@]}"
  routers+=("$ROUTER")
done
label() { if ((${#bins[@]} > 1)); then echo "${bins[$1]}"; else echo router; fi; }

run() {  # run URL RATE CONNECTIONS: bodies to /v1/stream ask for "stream": true
  local stream=0
  [[ "$1" == */v1/stream ]] && stream=1
  "${on_client[@]}" "$LOAD" --url "$1" --rate "$2" --connections "$3" --seconds "$SECONDS_PER_RUN" \
    --warmup 1 --stream "$stream"
}
field() { /usr/bin/python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "| body | rate (req/s) | router | direct P50 / P99 (ms) | via router P50 / P99 (ms) | added P50 / P99 (ms) |"
echo "|---|---|---|---|---|---|"
for path in /v1/completions /v1/stream; do
  for rate in 100 1000; do
    d=$(run "$NGINX$path" "$rate" 16)
    for i in "${!bins[@]}"; do
      r=$(run "${routers[$i]}$path" "$rate" 16)
      /usr/bin/python3 - "$path" "$rate" "$(label "$i")" "$d" "$r" <<'PY'
import json, sys
path, rate, name, d, r = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), json.loads(sys.argv[5])
kind = "completion JSON" if path == "/v1/completions" else "SSE"
print(f"| {kind} | {rate} | {name} | {d['p50_ms']:.3f} / {d['p99_ms']:.3f} | {r['p50_ms']:.3f} / {r['p99_ms']:.3f} "
      f"| {r['p50_ms'] - d['p50_ms']:.3f} / {r['p99_ms'] - d['p99_ms']:.3f} |")
PY
    done
  done
done
echo
echo "| closed loop, 64 connections | req/s | P50 (ms) | P99 (ms) |"
echo "|---|---|---|---|"
m=$(run "$NGINX/v1/completions" 0 64)
echo "| direct | $(field "$m" rps) | $(field "$m" p50_ms) | $(field "$m" p99_ms) |"
for i in "${!bins[@]}"; do
  m=$(run "${routers[$i]}/v1/completions" 0 64)
  echo "| $(label "$i") | $(field "$m" rps) | $(field "$m" p50_ms) | $(field "$m" p99_ms) |"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
