#!/usr/bin/env bash
# seekserve quantize: every tiny preset to every dtype; the outputs load (inspect + logits) and
# hold the expected type per tensor class; FP8 scale_inv shapes and the FP8 round trip (every
# value within half an E4M3 step of the original, scale = amax/448); GGUF -> HF and back keep
# the values exactly; bad input exits 2 with one line naming the problem.
set -euo pipefail
bin=${SEEKSERVE_BINARY:?}
src=${SEEKSERVE_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3

# Expected types per class, from `inspect`'s tensor table: "name dtype shape bytes".
check_types() {  # MODEL LINEAR_DTYPE
  "$bin" inspect "$1" >"$tmp/inspect.txt"
  $py - "$tmp/inspect.txt" "$2" "$1" <<'PY'
import re, sys
text, want, model = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
table = text.split("tensors (", 1)[1].split("\n\n", 1)[0]  # up to the blank line after it
rows = [l.split() for l in table.splitlines()[2:]]
seen = {}
for name, dtype, *_ in rows:
    base = name.rsplit(".", 2)[-2]  # "q_a_proj", "attn_k_b", "ffn_gate_exps"
    linear = (name.endswith((".weight")) and (base.endswith(("_proj", "_proj_with_mqa")) or
              (base.startswith(("attn_", "ffn_")) and "norm" not in base and base != "ffn_gate_inp")))
    if name.endswith("_scale_inv"):
        assert dtype == "f32", (name, dtype)
        continue
    if linear:
        # Rows not a multiple of 32 (attn_k_b: nope = 16) stay f16 in Q8_0/Q4_0.
        ok = dtype == want or (want in ("q8_0", "q4_0") and dtype == "f16")
        assert ok, f"{model}: {name} is {dtype}, want {want}"
        seen[dtype] = seen.get(dtype, 0) + 1
    else:  # embeddings, lm_head, norms, biases, router: never quantised (f32 source)
        assert dtype == "f32", f"{model}: {name} is {dtype}, want f32 (not quantised)"
assert seen.get(want, 0) > 0, (model, seen)
print(f"{model}: linear {seen}, the rest f32")
PY
}

tokens=$($py -c "print(','.join(str((i * 7919 + 13) % 128000) for i in range(16)))")
for preset in tiny-v3 tiny-v2-lite tiny-qwen2 tiny-llama; do
  m="$tmp/$preset"
  "$bin" make-model --preset "$preset" --out "$m" --dtype f32 --seed 5
  "$bin" quantize "$m" "$m-bf16" --dtype bf16 --quiet
  "$bin" quantize "$m" "$m-fp8" --dtype fp8 --quiet
  "$bin" quantize "$m" "$m-q8_0.gguf" --dtype q8_0 --quiet
  "$bin" quantize "$m" "$m-q4_0.gguf" --dtype q4_0 --quiet
  [[ $preset == tiny-v3 ]] && "$bin" quantize "$m" "$m-bf16.gguf" --dtype bf16 --format gguf --quiet
  check_types "$m-bf16" bf16
  check_types "$m-fp8" fp8
  check_types "$m-q8_0.gguf" q8_0
  check_types "$m-q4_0.gguf" q4_0
  [[ $preset == tiny-v3 ]] && check_types "$m-bf16.gguf" bf16
  # (q8_0 loads below; the quality test runs the engine on every type at length.)
  for out in "$m-bf16" "$m-fp8" "$m-q4_0.gguf"; do
    "$bin" logits -m "$out" --tokens "$tokens" --out "$tmp/l.npy" --threads 2
  done
  # FP8: shapes of scale_inv, scale = amax/448 per block, values within half a step.
  $py - "$m" "$m-fp8" "$src/tests/reference" <<'PY'
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[3])
import safetensors_np as st
fo, fq = st.SafetensorsFile(sys.argv[1] + "/model.safetensors"), st.SafetensorsFile(sys.argv[2] + "/model.safetensors")
orig = {n: fo.get(n) for n in fo.names()}
q = {n: fq.get(n) for n in fq.names()}
cfg = json.load(open(sys.argv[2] + "/config.json"))
assert cfg["quantization_config"]["weight_block_size"] == [128, 128], cfg.get("quantization_config")
n_fp8 = 0
for name, a in orig.items():
    b = q[name]
    if name + "_scale_inv" not in q:
        assert np.array_equal(np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64)), name
        continue
    n_fp8 += 1
    s = np.asarray(q[name + "_scale_inv"], dtype=np.float64)
    rows, cols = a.shape
    assert s.shape == (-(-rows // 128), -(-cols // 128)), (name, s.shape)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)  # the reader applies no scale: raw E4M3 values
    for bi in range(s.shape[0]):
        for bj in range(s.shape[1]):
            blk = a[bi*128:(bi+1)*128, bj*128:(bj+1)*128]
            assert np.isclose(s[bi, bj], np.abs(blk).max() / 448, rtol=1e-6), name
    back = b * np.repeat(np.repeat(s, 128, 0), 128, 1)[:rows, :cols]
    # E4M3: 3 mantissa bits -> |error| <= 2^-4 |x| for normals, 2^-10 * scale below 2^-6 * scale.
    bound = np.abs(a) / 16 + np.repeat(np.repeat(s, 128, 0), 128, 1)[:rows, :cols] * 2.0**-10
    assert (np.abs(back - a) <= bound * (1 + 1e-9)).all(), name
print(f"{sys.argv[2]}: {n_fp8} FP8 weights, scale_inv shapes and round trip within the FP8 step")
PY
  # GGUF -> HF (f32) -> GGUF: the values survive exactly (llama needs its config for rope_freqs).
  cfg=()
  [[ $preset == tiny-llama ]] && cfg=(--config "$m/config.json")
  "$bin" quantize "$m-q8_0.gguf" "$m-q8deq" --dtype f32 --format hf "${cfg[@]}" --quiet
  "$bin" quantize "$m-q8deq" "$m-again.gguf" --dtype q8_0 --quiet
  "$bin" quantize "$m-q8_0.gguf" "$m-gg.gguf" --dtype q8_0 --quiet
  "$bin" logits -m "$m-q8_0.gguf" --tokens "$tokens" --out "$tmp/a.npy" --threads 2
  "$bin" logits -m "$m-again.gguf" --tokens "$tokens" --out "$tmp/b.npy" --threads 2
  "$bin" logits -m "$m-gg.gguf" --tokens "$tokens" --out "$tmp/c.npy" --threads 2
  $py -c "
import numpy as np, sys
a, b, c = (np.load('$tmp/' + f + '.npy') for f in 'abc')
assert np.array_equal(a, b) and np.array_equal(a, c), ('$preset', abs(a - b).max(), abs(a - c).max())
print('$preset: q8_0 -> f32 hf -> q8_0 and q8_0 -> q8_0 give identical logits')"
  rm -rf "$m-bf16" "$m-q4_0.gguf" "$m-bf16.gguf" "$m-q8deq" "$m-again.gguf" "$m-gg.gguf"
done

# Llama's GGUF holds rope_freqs: HF output without --config is refused.
m="$tmp/tiny-llama"
set +e
expect_bad() {  # DESCRIPTION PATTERN ARGS...
  local what=$1 pattern=$2
  shift 2
  "$bin" "$@" >"$tmp/out.txt" 2>"$tmp/err.txt"
  local rc=$?
  if [[ $rc -ne 2 ]]; then
    echo "FAIL: $what: exit $rc, want 2"; cat "$tmp/err.txt"; exit 1
  fi
  if [[ $(wc -l <"$tmp/err.txt") -ne 1 ]] || ! grep -q -- "$pattern" "$tmp/err.txt"; then
    echo "FAIL: $what: want one line matching '$pattern', got:"; cat "$tmp/err.txt"; exit 1
  fi
  echo "ok: $what: $(cat "$tmp/err.txt")"
}
expect_bad "unknown dtype" "--dtype: 'q5_k'" quantize "$m" "$tmp/x" --dtype q5_k
expect_bad "fp8 as gguf" "GGUF has no FP8" quantize "$m" "$tmp/x.gguf" --dtype fp8 --format gguf
expect_bad "q8_0 as hf" "safetensors has no block" quantize "$m" "$tmp/x" --dtype q8_0 --format hf
expect_bad "unknown format" "--format: 'onnx'" quantize "$m" "$tmp/x" --dtype bf16 --format onnx
expect_bad "missing input" "no such model" quantize "$tmp/nope" "$tmp/x" --dtype bf16
expect_bad "llama3 rope_freqs without --config" "pass --config" \
  quantize "$m-q8_0.gguf" "$tmp/x" --dtype f32 --format hf
expect_bad "--config of another shape" "tensor shapes differ" \
  quantize "$m-q8_0.gguf" "$tmp/x" --dtype f32 --format hf --config "$tmp/tiny-qwen2/config.json"
# Hostile inputs: a truncated GGUF, a GGUF whose tensor has the wrong dims, garbage safetensors.
head -c 4000000 "$m-q8_0.gguf" >"$tmp/trunc.gguf"
expect_bad "truncated gguf" "trunc.gguf" quantize "$tmp/trunc.gguf" "$tmp/x.gguf" --dtype q4_0
mkdir "$tmp/garbage"
cp "$m/config.json" "$m/tokenizer.json" "$tmp/garbage/"
printf '\xff\xff\xff\xff\xff\xff\xff\x7f{"a":1}' >"$tmp/garbage/model.safetensors"
expect_bad "garbage safetensors" "model.safetensors" quantize "$tmp/garbage" "$tmp/x" --dtype bf16
cp "$tmp/tiny-v3/model.safetensors" "$tmp/garbage/model.safetensors"
expect_bad "weights of another model" "tensor" quantize "$tmp/garbage" "$tmp/x" --dtype bf16
set -e
[[ ! -e "$tmp/x" && ! -e "$tmp/x.gguf" ]] || { echo "FAIL: a refused run left output"; exit 1; }
echo "quantize_test: ok"
