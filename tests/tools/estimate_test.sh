#!/usr/bin/env bash
# estimate through the real binary: the published shapes, --json, bad input (exit 2 naming the
# field), the estimate against the measured peak RSS of the engine on the tiny presets, and
# `estimate --serve` against a tiny model's `seekserve serve` under a short full load.
source "$(dirname "$0")/../lib/common.sh"
bin=$BIN
tmp=$TEST_TMP

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
expect_bad "--http-threads" tiny-v3 --serve --http-threads -1
expect_bad "--max-queue" tiny-v3 --serve --max-queue -5
printf '{"architectures": ["LlamaForCausalLM"], ' > "$tmp/config.json"
expect_bad "config.json" "$tmp/config.json"

# Estimate vs measured: `generate` (prompt of P tokens, 100 new ones, --ctx 256, two threads) under
# a poller of /proc/PID/smaps_rollup. The estimate counts every weight resident; these models fit
# in memory, so the engine reads their weights into a private copy (README "Where the weights
# live"): every weight is resident and anonymous. Checks:
#   the anonymous memory (weights, KV, activations, tokenizer, heap) within ±10% of the
#   estimate's total less its code pages (binary and libraries, file-backed);
#   the peak RSS within ±10% of the estimate.
prompt="The quick brown fox jumps over the lazy dog. In the beginning was the word, and the word was with the model."
cat > "$tmp/poll.py" <<'PY'
import json, re, subprocess, sys, time
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
best = {"Rss": 0, "Anonymous": 0}
while p.poll() is None:
    try:
        d = {k: int(v) * 1024 for k, v in re.findall(r"^(\w+):\s+(\d+) kB", open(f"/proc/{p.pid}/smaps_rollup").read(), re.M)}
        for k in best: best[k] = max(best[k], d[k])
    except (OSError, KeyError):
        pass
    time.sleep(0.005)
assert p.returncode == 0, p.returncode
print(json.dumps(best))
PY
for model in tiny-v3:f32 tiny-v3:bf16 tiny-v3:gguf tiny-v2-lite:bf16 tiny-qwen2:f32 tiny-qwen2:bf16 tiny-llama:bf16; do
  preset=${model%%:*} form=${model##*:}
  if [[ $form == gguf ]]; then
    path="$tmp/$preset.gguf"
    "$bin" make-model --preset "$preset" --out "$path" --format gguf --dtype bf16 > /dev/null
  else
    path="$tmp/$preset-$form"
    "$bin" make-model --preset "$preset" --out "$path" --dtype "$form" > /dev/null
  fi
  n=$("$bin" tokenize -m "$path" "$prompt" | wc -w)
  /usr/bin/python3 "$tmp/poll.py" "$bin" generate -m "$path" --ctx 256 -t 2 -p "$prompt" -n 100 \
    --ignore-eos > "$tmp/measured.json"
  "$bin" estimate "$path" --ctx 256 --step-tokens "$n" --threads 2 --json > "$tmp/estimate.json"
  /usr/bin/python3 - "$model" "$tmp/measured.json" "$tmp/estimate.json" <<'PY' || fail "$model: estimate vs measured"
import json, sys
m, e = json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
mib = 2**20
anon_est = e["anonymous_bytes"]  # all but the code pages (binary, libraries: file-backed)
lo, hi = 0.9 * e["total_bytes"], 1.1 * e["total_bytes"]
print(f"{sys.argv[1]:18s} peak RSS {m['Rss'] / mib:6.1f} MiB (estimate {e['total_bytes'] / mib:6.1f}, "
      f"ratio {e['total_bytes'] / m['Rss']:.3f}); anonymous "
      f"{m['Anonymous'] / mib:5.1f} MiB (estimate {anon_est / mib:5.1f}, ratio {anon_est / m['Anonymous']:.3f})")
assert abs(anon_est / m["Anonymous"] - 1) <= 0.10, "anonymous memory off by more than 10%"
assert lo <= m["Rss"] <= hi, f"peak RSS outside [{lo / mib:.1f}, {hi / mib:.1f}] MiB"
PY
done
# Estimate --serve vs a loaded server (bench/serve_memory_bench.sh, smaller): 8 sequences × 64
# tokens of KV cache, all of them filled by `seekserve bench` (8 clients, 56-token prompts, 8
# output tokens); the server's VmHWM within ±10% of `estimate --serve` for the same settings.
model="$tmp/tiny-qwen2-serve.gguf"
"$bin" make-model --preset tiny-qwen2 --format gguf --dtype bf16 --out "$model" >/dev/null
start_serve memory "$model" --threads 1 --max-num-seqs 8 --kv-blocks 32 \
  --max-num-batched-tokens 256 --log-level warn
"$bin" bench --url "$URL" -m "$model" -c 8 -n 16 --warmup 0 --input-len 56 --output-len 8 \
  --progress none --timeout 600 --json "$tmp/load.json" >/dev/null
hwm_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$PID/status")
"$bin" estimate "$model" --serve --batch 8 --ctx 64 --step-tokens 256 --threads 1 --json \
  >"$tmp/serve-estimate.json"
$PY - "$hwm_kib" "$tmp/serve-estimate.json" "$tmp/load.json" <<'PY' || fail "serve: estimate vs measured"
import json, sys
hwm, e, load = int(sys.argv[1]) * 1024, json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
assert load["completed"] == 16, load["completed"]
assert e["serve"]["http_threads"] == 2, e["serve"]
ratio = e["total_bytes"] / hwm
print(f"serve tiny-qwen2 bf16 gguf, 8 x 64: peak RSS {hwm / 2**20:.1f} MiB, estimate --serve "
      f"{e['total_bytes'] / 2**20:.1f} MiB, ratio {ratio:.3f}")
assert 0.9 <= ratio <= 1.1, f"ratio {ratio:.3f} outside ±10%"
PY
echo "estimate_test: all checks passed"
