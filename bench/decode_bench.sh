#!/usr/bin/env bash
# Engine benchmark (docs/BENCHMARKS.md "Engine"): makes the benchmark models, measures the read
# bandwidth in its own process, then runs build/bench/engine_bench on each model: single-stream
# decode against the roofline (and against a streaming read of the same weights right after each
# rep), batched decode at 1/4/16/32 sequences, prefill of 512 tokens and peak RSS.
# Models are cached in $SEEKSERVE_BENCH_MODELS (default ~/.cache/seekserve-bench-models):
# r1-qwen-1.5b in BF16 (make-model), Q8_0 (GGUF) and FP8 (HF folder) from `seekserve quantize`,
# and v2-lite cut to 8 layers, made directly in Q8_0.
#
#   bash bench/decode_bench.sh            # after: cmake --build build --target engine_bench seekserve
#   THREADS=2 REPS=3 WEIGHTS=mmap MODELS="r1-qwen-1.5b-q8_0.gguf" bash bench/decode_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SEEKSERVE_BUILD_DIR:-build}
models=${SEEKSERVE_BENCH_MODELS:-$HOME/.cache/seekserve-bench-models}
threads=${THREADS:-2}
reps=${REPS:-3}
weights=${WEIGHTS:-auto}
cpus=${CPUS:-0-$((threads - 1))}
bin="$build/bench/engine_bench"
seek="$build/seekserve"
mkdir -p "$models"

qwen="$models/r1-qwen-1.5b-bf16.gguf"
[[ -e $qwen ]] || "$seek" make-model --preset r1-qwen-1.5b --format gguf --dtype bf16 --out "$qwen"
[[ -e $models/r1-qwen-1.5b-q8_0.gguf ]] ||
  "$seek" quantize "$qwen" "$models/r1-qwen-1.5b-q8_0.gguf" --dtype q8_0 --quiet
[[ -e $models/r1-qwen-1.5b-fp8 ]] || "$seek" quantize "$qwen" "$models/r1-qwen-1.5b-fp8" --dtype fp8 --quiet
v2="$models/v2-lite-l8-q8_0.gguf"
# Written directly in Q8_0, tensor by tensor (what quantize makes of the bf16 form, ~4.7 GB).
[[ -e $v2 ]] || "$seek" make-model --preset v2-lite --layers 8 --format gguf --dtype q8_0 --out "$v2"

bw=$(taskset -c "$cpus" "$bin" --bandwidth --threads "$threads" | awk '{print $2}')
echo "read bandwidth, $threads threads: $bw GB/s"
for name in ${MODELS:-r1-qwen-1.5b-bf16.gguf r1-qwen-1.5b-q8_0.gguf r1-qwen-1.5b-fp8 v2-lite-l8-q8_0.gguf}; do
  m="$models/$name"
  [[ -e "$m" ]] || continue
  echo "== $name"
  taskset -c "$cpus" "$bin" --model "$m" --threads "$threads" --reps "$reps" --bw "$bw" \
    --weights "$weights" --decode 16 --batches 1,4,16,32 --batch-gen 4 --prefill 512
done
