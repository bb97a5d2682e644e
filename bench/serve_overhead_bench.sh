#!/usr/bin/env bash
# Serving overhead: with the engine idle, how much a 1-token /v1/completions round trip adds over
# the model's forward pass. The server runs on one core, the client on the other (taskset); the
# forward time comes from the server's own seekserve_engine_forward_seconds_total, so the
# difference is HTTP, JSON, tokenization, queueing, scheduling, sampling and the hand-offs
# between threads. Then as many GET /health round trips on the same connection: the HTTP floor.
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
echo "serve_overhead: tiny-v3, 1 model thread, $N sequential 1-token completions (after 30 warm-up)"
"${pin_client[@]}" node "$SRC/bench/serve_overhead_client.mjs" "$url" "$N" 30 "$pid"
