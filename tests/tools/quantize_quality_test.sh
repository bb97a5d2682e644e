#!/usr/bin/env bash
# Quantised inference, judged as DESIGN "Determinism" asks on random weights:
#  1. Exactness: the engine on FP8 weights matches the float64 numpy reference run on the same FP8
#     folder (which applies weight_scale_inv), max|d| <= 1e-3 * max|logit|, both by default and
#     with SEEKSERVE_EXACT_ACTIVATIONS=1 (FP8 keeps f32 activations either way; the check holds
#     any future fast FP8 arithmetic to the same bound); on Q8_0/Q4_0 GGUF it
#     matches the reference on the F32 HF folder `quantize --dtype f32` dequantises the GGUF into.
#     Q8_0/Q4_0 are compared on the default (SIMD) path with SEEKSERVE_EXACT_ACTIVATIONS=1: weights
#     widened exactly to f32, f32 activations. By default the SIMD paths quantise activations to
#     int8 per 32-block (faster GEMV); that is an engine choice whose error is printed, not
#     asserted (on MoE presets it flips routing), and whose integer arithmetic is tested kernel by
#     kernel against matmul_reference_q8act (tests/kernels/matmul_test.cpp).
#  2. Quality against the F32 model on a fixed text: mean KL, raw top-1 agreement, and top-1
#     agreement on confident positions (F32 top-1 margin > 3 x the standard deviation of that
#     position's logit difference over the vocabulary, `perplexity --margin-factor`); the last
#     must be >= 98% for FP8 and Q8_0 wherever there are at least 20 such positions.
# Set QUANT_TABLE=FILE to get the figures as a Markdown table.
set -euo pipefail
bin=${SEEKSERVE_BINARY:?}
src=${SEEKSERVE_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3
ref="$src/tests/reference/reference_model.py"

# A fixed English-like text of a few hundred tokens (a word list walked by an LCG).
$py - >"$tmp/text.txt" <<'PY'
words = ("the model serves requests from a queue and every step runs one batch of tokens through "
         "attention and experts while the cache keeps keys and values for each sequence so that "
         "decoding is fast and memory stays within the budget the operator chose at start").split()
state, out = 12345, []
for i in range(300):
    state = (state * 1103515245 + 12345) % 2**31
    out.append(words[state % len(words)])
    if i % 17 == 16:
        out[-1] += "."
print(" ".join(out))
PY
tokens=$($py -c "print(','.join(str((i * 7919 + 13) % 128000) for i in range(64)))")

rel_diff() {  # A.npy B.npy -> max|a-b| / max|a|
  $py -c "import numpy as np; a, b = np.load('$1'), np.load('$2'); print(f'{abs(a - b).max() / abs(a).max():.2e}')"
}

table="| preset | dtype | engine vs f64 reference (max abs diff / max abs logit) | mean KL vs F32 | top-1 agreement | confident positions | top-1 agreement there |"$'\n'
table+="|---|---|---|---|---|---|---|"$'\n'
fail=0
for preset in tiny-v3 tiny-v2-lite tiny-qwen2 tiny-llama; do
  m="$tmp/$preset"
  "$bin" make-model --preset "$preset" --out "$m" --dtype f32 --seed 11
  cfg=()
  [[ $preset == tiny-llama ]] && cfg=(--config "$m/config.json")
  for dtype in bf16 fp8 q8_0 q4_0; do
    case $dtype in
      bf16 | fp8) out="$m-$dtype" ;;
      *) out="$m-$dtype.gguf" ;;
    esac
    "$bin" quantize "$m" "$out" --dtype "$dtype" --quiet
    # Exactness.
    exact="-"
    if [[ $dtype == fp8 ]]; then
      $py "$ref" "$out" --tokens "$tokens" --out "$tmp/r.npy"
      "$bin" logits -m "$out" --tokens "$tokens" --out "$tmp/s.npy" --threads 2
      SEEKSERVE_EXACT_ACTIVATIONS=1 "$bin" logits -m "$out" --tokens "$tokens" --out "$tmp/e.npy" \
        --threads 2
      simd=$(rel_diff "$tmp/r.npy" "$tmp/s.npy")
      f32act=$(rel_diff "$tmp/r.npy" "$tmp/e.npy")
      echo "$preset $dtype: default vs reference $simd, f32 activations $f32act"
      for d in "$simd" "$f32act"; do
        $py -c "import sys; sys.exit(0 if float('$d') <= 1e-3 else 1)" ||
          { echo "FAIL: $preset $dtype: $d > 1e-3"; fail=1; }
      done
      exact="$simd (default); $f32act (f32 activations)"
    elif [[ $dtype == q8_0 || $dtype == q4_0 ]]; then
      "$bin" quantize "$out" "$m-$dtype-f32" --dtype f32 --format hf "${cfg[@]}" --quiet
      $py "$ref" "$m-$dtype-f32" --tokens "$tokens" --out "$tmp/r.npy"
      SEEKSERVE_EXACT_ACTIVATIONS=1 "$bin" logits -m "$out" --tokens "$tokens" --out "$tmp/e.npy" \
        --threads 2
      "$bin" logits -m "$out" --tokens "$tokens" --out "$tmp/s.npy" --threads 2
      f32act=$(rel_diff "$tmp/r.npy" "$tmp/e.npy")
      simd=$(rel_diff "$tmp/r.npy" "$tmp/s.npy")
      echo "$preset $dtype: f32 activations vs reference $f32act, int8 activations $simd"
      $py -c "import sys; sys.exit(0 if float('$f32act') <= 1e-3 else 1)" ||
        { echo "FAIL: $preset $dtype: f32 activations $f32act > 1e-3"; fail=1; }
      exact="$f32act (f32 activations); $simd (int8 activations)"
      rm -rf "$m-$dtype-f32"
    fi
    # Quality against F32.
    "$bin" perplexity -m "$out" -f "$tmp/text.txt" --kl-base "$m" --threads 2 >"$tmp/ppl.txt"
    kl=$(sed -n 's/^mean KL divergence vs base: //p' "$tmp/ppl.txt")
    top1=$(sed -n 's/^top-1 agreement vs base: //p' "$tmp/ppl.txt")
    conf=$(sed -n 's/^confident positions .*: \([0-9]* of [0-9]*\)$/\1/p' "$tmp/ppl.txt")
    conf_top1=$(sed -n 's/^top-1 agreement on confident positions: //p' "$tmp/ppl.txt")
    echo "$preset $dtype: KL $kl, top-1 $top1, confident $conf, agreement there $conf_top1"
    table+="| $preset | $dtype | $exact | $kl | $top1 | $conf | $conf_top1 |"$'\n'
    if [[ $dtype == fp8 || $dtype == q8_0 ]]; then
      n_conf=${conf%% *}
      if ((n_conf >= 20)); then
        $py -c "import sys; sys.exit(0 if float('${conf_top1%\%}') >= 98.0 else 1)" ||
          { echo "FAIL: $preset $dtype: confident top-1 agreement $conf_top1 < 98%"; fail=1; }
      else
        echo "$preset $dtype: only $n_conf confident positions: exactness stands in"
      fi
    fi
    [[ $dtype == bf16 || $dtype == fp8 ]] && rm -rf "$out" || rm -f "$out"
  done
  rm -rf "$m"
done
printf '%s' "$table"
[[ -n ${QUANT_TABLE:-} ]] && printf '%s' "$table" >"$QUANT_TABLE"
exit $fail
