#!/usr/bin/env bash
# What the router costs per request, in figures that a busy machine does not distort much: CPU
# time per request (from /proc/PID/stat, user + kernel, all threads) and system calls per request
# (strace -c on every router thread), while bench/router_load sends paced POSTs through it to an
# nginx that answers at once (bench/router_common.bash). Several router binaries can be compared
# side by side: their runs alternate, ROUTER_COST_ROUNDS times, and the medians are printed.
#   SEEKSERVE_BUILD_DIR=build bash bench/router_cost.sh
#   ROUTER_COST_BINS="/tmp/seekserve.before build/seekserve" bash bench/router_cost.sh
# ROUTER_COST_RATE (1000 req/s), ROUTER_COST_SECONDS (5 per CPU run, 3 per strace run),
# ROUTER_COST_ROUNDS (3), ROUTER_COST_PATH (/v1/completions; /v1/stream for SSE passthrough),
# ROUTER_COST_CONNECTIONS (16), ROUTER_COST_THREADS (router I/O threads, 1); ROUTER_EXTRA_YAML
# (lines added to every router's config).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SEEKSERVE_BUILD_DIR:-build}
LOAD=$build/bench/router_load
[[ -x "$LOAD" ]] || cmake --build "$build" --target router_load >/dev/null
read -r -a bins <<<"${ROUTER_COST_BINS:-$build/seekserve}"
rate=${ROUTER_COST_RATE:-1000}
seconds=${ROUTER_COST_SECONDS:-5}
rounds=${ROUTER_COST_ROUNDS:-3}
path=${ROUTER_COST_PATH:-/v1/completions}
connections=${ROUTER_COST_CONNECTIONS:-16}
threads=${ROUTER_COST_THREADS:-1}
source bench/router_common.bash
command -v strace >/dev/null || { echo "router_cost: needs strace" >&2; exit 2; }

start_nginx
routers=() router_pids=()
for i in "${!bins[@]}"; do
  start_router "${bins[$i]}" "$threads" "router$i"
  routers+=("$ROUTER") router_pids+=("$ROUTER_PID")
done
stream=0
[[ "$path" == /v1/stream ]] && stream=1
load() {  # load URL SECONDS: prints requests sent
  "$LOAD" --url "$1$path" --rate "$rate" --connections "$connections" --seconds "$2" --warmup 0 \
    --stream "$stream" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["sent"])'
}
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

for round in $(seq 1 "$rounds"); do
  for i in "${!bins[@]}"; do
    pid=${router_pids[$i]}
    t0=$(ticks "$pid")
    n=$(load "${routers[$i]}" "$seconds")
    t1=$(ticks "$pid")
    echo "cpu $i $n $((t1 - t0))" >>"$tmp/results"
    tids=()
    for t in /proc/"$pid"/task/*; do tids+=(-p "${t##*/}"); done
    strace -f -c -o "$tmp/strace.$i.$round" "${tids[@]}" 2>/dev/null &
    spid=$!
    sleep 0.5  # attached
    n=$(load "${routers[$i]}" 3)
    kill -INT "$spid"
    wait "$spid" || true
    echo "sys $i $n $tmp/strace.$i.$round" >>"$tmp/results"
  done
done

echo "router cost per request, $rate req/s (0: closed loop) on $connections connections to $path, $threads I/O thread(s), median of $rounds runs (load: $(cut -d' ' -f1-3 /proc/loadavg))"
/usr/bin/python3 - "$tmp/results" "$hz" "${bins[@]}" <<'PY'
import re, statistics, sys
results, hz, bins = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
cpu = {i: [] for i in range(len(bins))}
sys_total = {i: [] for i in range(len(bins))}
per_call = {i: {} for i in range(len(bins))}
for line in open(results):
    kind, i, n, x = line.split()
    i, n = int(i), int(n)
    if kind == "cpu":
        cpu[i].append(int(x) / hz / n * 1e6)
        continue
    total = 0
    for row in open(x):
        m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?([a-z_0-9]+)\s*$", row)
        if not m:
            continue
        calls, name = int(m.group(1)), m.group(2)
        if name == "total":
            continue
        total += calls
        per_call[i].setdefault(name, []).append(calls / n)
    sys_total[i].append(total / n)
print("| router | CPU µs/request | syscalls/request | per request (median) |")
print("|---|---|---|---|")
for i, b in enumerate(bins):
    calls = sorted(((statistics.median(v), k) for k, v in per_call[i].items()), reverse=True)
    detail = ", ".join(f"{k} {v:.2f}" for v, k in calls if v >= 0.01)
    print(f"| {b} | {statistics.median(cpu[i]):.1f} | {statistics.median(sys_total[i]):.2f} | {detail} |")
PY
