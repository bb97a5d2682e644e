#!/usr/bin/env bash
# Engine benchmark (docs/BENCHMARKS.md "Engine"): makes the benchmark models, measures the read
# bandwidth in its own process, then runs build/bench/engine_bench on each model: single-stream
# decode against the roofline, batched decode at 1/4/16/32 sequences, prefill of 512 tokens and
# peak RSS. Models are cached in $SEEKSERVE_BENCH_MODELS (default /tmp/seekserve-bench-models).
#
#   bash bench/decode_bench.sh            # after: cmake --build build --target engine_bench
#   THREADS=2 REPS=3 bash bench/decode_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SEEKSERVE_BUILD_DIR:-build}
models=${SEEKSERVE_BENCH_MODELS:-/tmp/seekserve-bench-models}
threads=${THREADS:-2}
reps=${REPS:-3}
cpus=${CPUS:-0-$((threads - 1))}
bin="$build/bench/engine_bench"
seek="$build/seekserve"
mkdir -p "$models"

make_model() {  # preset format dtype out [extra args]
  local out=$4
  [[ -e "$out" ]] || "$seek" make-model --preset "$1" --format "$2" --dtype "$3" --out "$out" "${@:5}"
}
make_model r1-qwen-1.5b gguf bf16 "$models/r1-qwen-1.5b-bf16.gguf"
make_model v2-lite gguf bf16 "$models/v2-lite-l8-bf16.gguf" --layers 8
# Q8_0 and FP8 files come from `seekserve quantize` once it exists.
if "$seek" quantize --help >/dev/null 2>&1; then
  for t in q8_0 fp8; do
    [[ -e "$models/r1-qwen-1.5b-$t.gguf" ]] ||
      "$seek" quantize "$models/r1-qwen-1.5b-bf16.gguf" "$models/r1-qwen-1.5b-$t.gguf" --type "$t" ||
      echo "(quantize to $t failed: skipped)"
  done
else
  echo "(seekserve quantize is not built: Q8_0 and FP8 figures skipped)"
fi

bw=$(taskset -c "$cpus" "$bin" --bandwidth --threads "$threads" | awk '{print $2}')
echo "read bandwidth, $threads threads: $bw GB/s"
for m in "$models"/r1-qwen-1.5b-*.gguf "$models"/v2-lite-l8-bf16.gguf; do
  [[ -e "$m" ]] || continue
  echo "== $(basename "$m")"
  taskset -c "$cpus" "$bin" --model "$m" --threads "$threads" --reps "$reps" --bw "$bw" \
    --decode 16 --batches 1,4,16,32 --batch-gen 4 --prefill 512
done
