#!/usr/bin/env bash
# estimate through the real binary: the published shapes, --json, bad input (exit 2 naming the
# field), and the estimate against the measured peak RSS of the engine on the tiny presets.
set -euo pipefail
bin=${SEEKSERVE_BINARY:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" estimate deepseek-v3 --dtype fp8 --kv-dtype bf16 --batch 64 --ctx 2048 --gpus 8x141GiB \
  --json > "$tmp/v3.json"
"$bin" estimate deepseek-v3 --dtype fp8 --kv-dtype bf16 --batch 64 --ctx 2048 --gpus 8x141GiB \
  > "$tmp/v3.txt"
grep -q "rule of thumb" "$tmp/v3.txt" || fail "text output lacks the rule of thumb"
grep -q "routed_experts" "$tmp/v3.txt" || fail "text output lacks the weight classes"
/usr/bin/python3 - "$tmp/v3.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))
assert e["params"] == 671026419200, e["params"]
assert e["kv_cache"]["bytes_per_token"] == 61 * 576 * 2
assert e["kv_cache"]["bytes"] == 64 * 2048 * 61 * 576 * 2
classes = {w["class"]: w for w in e["weights"]}
for c in ("embeddings", "attention", "dense_mlp", "routed_experts", "shared_experts", "router",
          "norms", "lm_head"):
    assert c in classes, c
assert "fp8" not in classes["embeddings"]["bytes_by_dtype"]
assert classes["routed_experts"]["scale_bytes"] > 0
assert e["memory"]["bytes"] == 8 * 141 * 2**30 and e["memory"]["fits"]
r = e["rule_of_thumb"]
assert abs(r["total_gb"] - (671.026 * 2 + 64 * 2048 * 0.5)) < 0.1, r
total = e["weight_bytes"] + e["kv_cache"]["bytes"] + e["activations"]["peak"] + e["overhead"]["total"]
assert total == e["total_bytes"], (total, e["total_bytes"])
print(f"deepseek-v3 fp8, 64 x 2048: estimate {e['total_bytes'] / 1e9:.1f} GB, rule {r['total_gb']:.0f} GB "
      f"(seq in thousands: {r['total_gb_seq_in_thousands']:.0f} GB)")
PY

# Bad input: exit 2, one line naming the field.
expect_bad() {  # expect_bad WORD ARGS...
  local word=$1; shift
  set +e
  "$bin" estimate "$@" > /dev/null 2> "$tmp/err.txt"; local rc=$?
  set -e
  [[ $rc -eq 2 ]] || fail "estimate $*: exit $rc, want 2"
  grep -q -- "$word" "$tmp/err.txt" || fail "estimate $*: error does not name $word: $(cat "$tmp/err.txt")"
}
expect_bad "deepseek-v9" deepseek-v9
expect_bad "--batch" tiny-v3 --batch -1
expect_bad "--ctx" tiny-v3 --ctx 0
expect_bad "--memory" tiny-v3 --memory lots
expect_bad "--gpus" tiny-v3 --gpus 80GiB
expect_bad "--dtype" tiny-v3 --dtype q9
expect_bad "--kv-dtype" tiny-v3 --kv-dtype q8_0
printf '{"architectures": ["LlamaForCausalLM"], ' > "$tmp/config.json"
expect_bad "config.json" "$tmp/config.json"

# Estimate vs measured: the engine's peak RSS (logits over a 64-token prompt, --ctx 256, two
# threads) against the estimate for the same step, within ±10%.
tokens=$(seq -s, 1 64)
for preset in tiny-v3 tiny-v2-lite tiny-qwen2 tiny-llama; do
  for dtype in f32 bf16; do
    model="$tmp/$preset-$dtype"
    "$bin" make-model --preset "$preset" --out "$model" --dtype "$dtype" > /dev/null
    measured=$(/usr/bin/python3 - "$bin" "$model" "$tokens" "$tmp/l.npy" <<'PY'
import resource, subprocess, sys
b, m, t, out = sys.argv[1:5]
subprocess.run([b, "logits", "-m", m, "--ctx", "256", "-t", "2", "--tokens", t, "--out", out],
               check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
PY
)
    estimated=$("$bin" estimate "$model" --ctx 256 --step-tokens 64 --all-logits --threads 2 --json |
                /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["total_bytes"])')
    /usr/bin/python3 - "$preset" "$dtype" "$measured" "$estimated" <<'PY' || fail "$preset $dtype: estimate off by more than 10%"
import sys
p, d, m, e = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
print(f"{p:13s} {d:4s} measured {m / 2**20:7.1f} MiB  estimated {e / 2**20:7.1f} MiB  ratio {e / m:.3f}")
sys.exit(0 if abs(e / m - 1) <= 0.10 else 1)
PY
  done
done
echo "estimate_test: all checks passed"
