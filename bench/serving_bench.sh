#!/usr/bin/env bash
# Serving speed (docs/BENCHMARKS.md "Serving"): the same load against two configurations of
# `seekserve serve` on r1-qwen-1.5b, one after the other, measured by `seekserve bench`:
#   naive  BF16 weights, --max-num-seqs 1 (one sequence at a time), FCFS, prefix cache off
#   tuned  Q8_0 weights, continuous batching (--max-num-seqs 32), prefix cache on
# Load: CLIENTS concurrent clients (closed loop), N requests, INPUT prompt tokens (token-exact:
# a PREFIX-token shared system part and a distinct suffix per request), 32 output tokens
# (ignore_eos). Server and load generator are pinned to separate cores (DESIGN "Benchmarks on
# 2 vCPUs"); prints QPS and P99 e2e of both arms and their ratios (targets: >= 5x, >= 4x).
# Models are made once into $SEEKSERVE_BENCH_MODELS (default /tmp/seekserve-bench-models).
#
#   bash bench/serving_bench.sh                     # after make build
#   N=16 CLIENTS=16 bash bench/serving_bench.sh     # shorter
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SEEKSERVE_BUILD_DIR:-build}
seek="$build/seekserve"
models=${SEEKSERVE_BENCH_MODELS:-/tmp/seekserve-bench-models}
n=${N:-32}
clients=${CLIENTS:-16}
input=${INPUT:-64}
prefix=${PREFIX:-32}
output=${OUTPUT:-32}
threads=${THREADS:-1}
server_cpus=${SERVER_CPUS:-1}
bench_cpus=${BENCH_CPUS:-0}
out_dir=${OUT_DIR:-$(mktemp -d)}
mkdir -p "$models" "$out_dir"

bf16="$models/r1-qwen-1.5b-bf16.gguf"
q8="$models/r1-qwen-1.5b-q8_0.gguf"
[[ -e "$bf16" ]] || "$seek" make-model --preset r1-qwen-1.5b --format gguf --dtype bf16 --out "$bf16"
[[ -e "$q8" ]] || "$seek" quantize "$bf16" "$q8" --dtype q8_0 --quiet

server_pid=
cleanup() { [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

# arm NAME MODEL SERVE_ARGS...: serves MODEL, runs the load, stops the server.
arm() {
  local name=$1 model=$2
  shift 2
  taskset -c "$server_cpus" "$seek" serve --model "$model" --port 0 --threads "$threads" \
    --max-queue 256 --request-timeout 3600 --log-level warn "$@" \
    >"$out_dir/$name.serve.out" 2>"$out_dir/$name.serve.log" &
  server_pid=$!
  local url=
  for _ in $(seq 1 1200); do
    url=$(sed -n 's/.* at \(http:[^ ]*\)$/\1/p' "$out_dir/$name.serve.out" | head -1)
    [[ -n "$url" ]] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$out_dir/$name.serve.log"; exit 1; }
    sleep 0.1
  done
  [[ -n "$url" ]] || { echo "$name: server did not start"; exit 1; }
  echo "== $name: serve $(basename "$model") $*"
  taskset -c "$bench_cpus" "$seek" bench --url "$url" -m "$model" --endpoint completions \
    -c "$clients" -n "$n" --warmup 1 --input-len "$input" --output-len "$output" \
    --prefix-groups 1 --prefix-len "$prefix" --timeout 3600 --progress lines \
    --json "$out_dir/$name.json" | tee "$out_dir/$name.txt"
  kill -TERM "$server_pid"
  wait "$server_pid" || true
  server_pid=
}

arm naive "$bf16" --max-num-seqs 1 --scheduling-policy fcfs --prefix-cache false
arm tuned "$q8" --max-num-seqs 32 --prefix-cache true

/usr/bin/python3 - "$out_dir/naive.json" "$out_dir/tuned.json" <<'EOF'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
print(f"{'':8}{'QPS':>9}{'P99 e2e ms':>12}{'P50 e2e ms':>12}{'P99 TTFT ms':>13}{'out tok/s':>11}")
for name, r in (('naive', a), ('tuned', b)):
    print(f"{name:8}{r['request_throughput']:>9.3f}{r['e2e_ms']['p99']:>12.0f}"
          f"{r['e2e_ms']['median']:>12.0f}{r['ttft_ms']['p99']:>13.0f}{r['output_token_throughput']:>11.1f}")
qps = b['request_throughput'] / a['request_throughput']
p99 = a['e2e_ms']['p99'] / b['e2e_ms']['p99']
print(f"QPS ratio tuned/naive: {qps:.2f}x (target >= 5x: {'met' if qps >= 5 else 'NOT met'})")
print(f"P99 e2e ratio naive/tuned: {p99:.2f}x (target >= 4x: {'met' if p99 >= 4 else 'NOT met'})")
EOF
echo "(per-arm tables and JSON in $out_dir)"
