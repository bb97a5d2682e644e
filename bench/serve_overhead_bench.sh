#!/usr/bin/env bash
# Serving overhead: with the engine idle, how much a 1-token /v1/completions round trip adds over
# the model's forward pass. The server runs on one core, the client on the other (taskset); the
# forward time comes from the server's own seekserve_engine_forward_seconds_total, so the
# difference is HTTP, JSON, tokenization, queueing, scheduling, sampling and the hand-offs
# between threads. Then as many GET /health round trips on the same connection: the HTTP floor.
# Then the same completions from `seekserve bench` (a C++ client with less overhead than Node).
# Usage: bench/serve_overhead_bench.sh [BUILD_DIR] [N]
set -euo pipefail
BUILD=${1:-${SEEKSERVE_BUILD_DIR:-build}}
N=${2:-300}
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$BUILD/seekserve
tmp=$(mktemp -d)
pid=
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$BIN" make-model --preset tiny-v3 --out "$tmp/tiny-v3" >/dev/null
cpus=$(nproc)
pin_server=() pin_client=()
if [[ $cpus -ge 2 && -z "${NO_PIN:-}" ]]; then pin_server=(taskset -c 1) pin_client=(taskset -c 0); fi
"${pin_server[@]}" "$BIN" serve --model "$tmp/tiny-v3" --port 0 --threads 1 --kv-blocks 256 \
  --log-level warn >"$tmp/out" 2>"$tmp/log" &
pid=$!
for _ in $(seq 1 300); do
  url=$(sed -n 's/.* at \(http:[^ ]*\)$/\1/p' "$tmp/out" | head -1)
  [[ -n "$url" ]] && break
  sleep 0.1
done
[[ -n "$url" ]] || { cat "$tmp/log"; exit 1; }
echo "serve_overhead: tiny-v3, 1 model thread, $N sequential 1-token completions (after 30 warm-up), Node client then seekserve bench"
"${pin_client[@]}" node "$SRC/bench/serve_overhead_client.mjs" "$url" "$N" 30 "$pid"
# The same requests from seekserve's own load generator (C++, Asio: a lean client, so the round
# trip is the server's and the kernel's): mean e2e latency minus the mean forward pass.
metric() { curl -s "$url/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
f0=$(metric seekserve_engine_forward_seconds_total)
n0=$(metric 'seekserve_requests_total{code="200"}')
"${pin_client[@]}" "$BIN" bench --url "$url" --no-stream -c 1 -n "$N" --warmup 30 --input-len 5 \
  --output-len 1 --temperature 0 -m "$tmp/tiny-v3" --progress none --json "$tmp/bench.json" \
  >/dev/null
f1=$(metric seekserve_engine_forward_seconds_total)
n1=$(metric 'seekserve_requests_total{code="200"}')
/usr/bin/python3 - "$tmp/bench.json" "$f0" "$f1" "$n0" "$n1" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
f0, f1, n0, n1 = (float(x) for x in sys.argv[2:6])
forward = (f1 - f0) * 1e3 / (n1 - n0)  # warm-up requests ran forwards too
e2e = b["e2e_ms"]
print(json.dumps({"client": "seekserve bench", "n": e2e["n"], "rtt_mean_ms": e2e["mean"],
                  "rtt_p50_ms": e2e["p50"], "forward_mean_ms": forward,
                  "overhead_mean_ms": e2e["mean"] - forward}))
PY
