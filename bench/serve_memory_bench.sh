#!/usr/bin/env bash
# `seekserve estimate` against a server under full load (docs/BENCHMARKS.md "Estimate vs a
# loaded server"): for each model, `seekserve serve` with BATCH sequences × CTX tokens of KV cache
# (--max-num-seqs BATCH, --kv-blocks BATCH·CTX/16, --max-num-batched-tokens STEP) is driven by
# `seekserve bench` with BATCH clients whose prompts fill the context (CTX − OUTPUT prompt tokens,
# OUTPUT generated), 2·BATCH requests; then the server's peak resident memory (VmHWM of
# /proc/PID/status) is set beside `seekserve estimate MODEL --serve --batch BATCH --ctx CTX
# --step-tokens STEP --threads THREADS` (--serve: the server's HTTP threads, requests in flight
# and runtime on top of the engine). r1-qwen-1.5b-bf16.gguf is measured too when it is in the
# models folder (it is made on the way to the q8_0 file).
#
#   bash bench/serve_memory_bench.sh        # after make build
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SEEKSERVE_BUILD_DIR:-build}
seek="$build/seekserve"
models=${SEEKSERVE_BENCH_MODELS:-/tmp/seekserve-bench-models}
batch=${BATCH:-16}
ctx=${CTX:-128}
output=${OUTPUT:-16}
step=${STEP:-512}
threads=${THREADS:-1}
tmp=$(mktemp -d)
server_pid=
cleanup() {
  [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
mkdir -p "$models"

[[ -e "$models/tiny-v3-f32.gguf" ]] ||
  "$seek" make-model --preset tiny-v3 --format gguf --out "$models/tiny-v3-f32.gguf" >/dev/null
[[ -e "$models/tiny-qwen2-bf16.gguf" ]] ||
  "$seek" make-model --preset tiny-qwen2 --format gguf --dtype bf16 --out "$models/tiny-qwen2-bf16.gguf" >/dev/null
q8="$models/r1-qwen-1.5b-q8_0.gguf"
if [[ ! -e "$q8" ]]; then
  bf16="$models/r1-qwen-1.5b-bf16.gguf"
  [[ -e "$bf16" ]] || "$seek" make-model --preset r1-qwen-1.5b --format gguf --dtype bf16 --out "$bf16"
  "$seek" quantize "$bf16" "$q8" --dtype q8_0 --quiet
fi

uptime
printf '%-28s %12s %12s %8s\n' model "peak RSS" estimate ratio
set -- "$models/tiny-v3-f32.gguf" "$models/tiny-qwen2-bf16.gguf" "$q8"
[[ -e "$models/r1-qwen-1.5b-bf16.gguf" ]] && set -- "$@" "$models/r1-qwen-1.5b-bf16.gguf"
for model in "$@"; do
  "$seek" serve --model "$model" --port 0 --threads "$threads" --max-num-seqs "$batch" \
    --kv-blocks $((batch * ctx / 16)) --max-num-batched-tokens "$step" --log-level warn \
    >"$tmp/serve.out" 2>"$tmp/serve.log" &
  server_pid=$!
  url=
  for _ in $(seq 1 1200); do
    url=$(sed -n 's/.* at \(http:[^ ]*\)$/\1/p' "$tmp/serve.out" | head -1)
    [[ -n "$url" ]] && break
    sleep 0.1
  done
  [[ -n "$url" ]] || { echo "server did not start"; cat "$tmp/serve.log"; exit 1; }
  "$seek" bench --url "$url" -m "$model" -c "$batch" -n $((2 * batch)) --warmup 0 \
    --input-len $((ctx - output)) --output-len "$output" --progress none --timeout 3600 \
    --json "$tmp/bench.json" >/dev/null
  hwm_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$server_pid/status")
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
  est=$("$seek" estimate "$model" --serve --batch "$batch" --ctx "$ctx" --step-tokens "$step" \
    --threads "$threads" --json)
  /usr/bin/python3 - "$(basename "$model")" "$hwm_kib" "$est" "$tmp/bench.json" <<'EOF'
import json, sys
name, hwm_kib, est, bench = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), json.load(open(sys.argv[4]))
assert bench['completed'] > 0, bench
total = est['total_bytes']
measured = hwm_kib * 1024
print(f"{name:<28} {measured / 2**20:>9.1f} MiB {total / 2**20:>9.1f} MiB {total / measured:>8.2f}")
EOF
done
echo "(batch $batch × ctx $ctx, step $step tokens, $threads thread(s); estimate / measured)"
