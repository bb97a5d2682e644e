#!/usr/bin/env bash
# The engine against the independent numpy reference (tests/reference/reference_model.py), on
# every tiny preset, in F32, on a 64-token prompt that crosses YaRN's original context (32):
# max|Δ| <= 1e-3 * max|logit|. Then the GGUF form of each model must give the same logits.
set -euo pipefail
bin=${SEEKSERVE_BINARY:?}
src=${SEEKSERVE_SOURCE_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# 64 tokens spread over the vocabulary, fixed.
tokens=$(/usr/bin/python3 -c "print(','.join(str((i * 7919 + 13) % 128000) for i in range(64)))")
for preset in tiny-v3 tiny-v2-lite tiny-qwen2 tiny-llama; do
  "$bin" make-model --preset "$preset" --out "$tmp/$preset" --dtype f32 --seed 3
  "$bin" make-model --preset "$preset" --out "$tmp/$preset.gguf" --format gguf --dtype f32 --seed 3
  "$bin" logits -m "$tmp/$preset" --tokens "$tokens" --out "$tmp/$preset.npy" --threads 2
  "$bin" logits -m "$tmp/$preset.gguf" --tokens "$tokens" --out "$tmp/$preset.gguf.npy" --threads 2
  /usr/bin/python3 "$src/tests/reference/reference_model.py" "$tmp/$preset" --tokens "$tokens" \
    --out "$tmp/$preset.ref.npy" --compare "$tmp/$preset.npy" --tol 1e-3
  /usr/bin/python3 - "$tmp/$preset.npy" "$tmp/$preset.gguf.npy" "$preset" <<'PY'
import sys
import numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.shape == b.shape == (64, a.shape[1]), (a.shape, b.shape)
rel = np.abs(a - b).max() / np.abs(a).max()
print(f"{sys.argv[3]}: GGUF vs HF logits max|d|/max|logit| = {rel:.2e}")
assert rel <= 1e-5, rel
PY
done
echo "logits_reference_test: all presets match"
