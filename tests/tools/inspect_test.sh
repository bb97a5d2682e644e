#!/usr/bin/env bash
# inspect and make-model through the real binary: what a user types, what they see, exit codes.
set -euo pipefail
bin=${SEEKSERVE_BINARY:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$bin" make-model --preset tiny-v3 --out "$tmp/v3" --dtype bf16
"$bin" make-model --preset tiny-v3 --out "$tmp/v3.gguf" --format gguf --dtype bf16

"$bin" inspect "$tmp/v3" > "$tmp/hf.txt"
grep -q 'architecture *"deepseek_v3"' "$tmp/hf.txt" || fail "inspect text lacks the architecture"
grep -q 'model.layers.2.mlp.experts.15.down_proj.weight *bf16 *\[128, 64\]' "$tmp/hf.txt" || fail "tensor table row"

"$bin" inspect --json "$tmp/v3" > "$tmp/hf.json"
"$bin" inspect --json "$tmp/v3.gguf" > "$tmp/gguf.json"
/usr/bin/python3 - "$tmp/hf.json" "$tmp/gguf.json" <<'PY'
import json, sys
hf, gg = (json.load(open(p)) for p in sys.argv[1:3])
assert hf["format"] == "safetensors" and gg["format"] == "gguf v3", (hf["format"], gg["format"])
for k in ("architecture", "hidden_size", "num_hidden_layers", "q_lora_rank", "kv_lora_rank", "n_routed_experts",
          "n_group", "topk_group", "scoring_func", "num_experts_per_tok"):
    assert hf["config"][k] == gg["config"][k], (k, hf["config"][k], gg["config"][k])
assert hf["config"]["rope_scaling"]["type"] == "yarn"
# Same parameters in both forms (the GGUF one stacks experts and splits kv_b, nothing more).
assert hf["n_params"] == gg["n_params"], (hf["n_params"], gg["n_params"])
assert hf["tokenizer"]["n_tokens"] == 128815 and hf["tokenizer"]["bos"] == "<｜begin▁of▁sentence｜>"
assert gg["tokenizer"]["n_tokens"] == 129280 and gg["tokenizer"]["n_unused"] == 129280 - 128815
names = {t["name"] for t in gg["tensors"]}
for n in ("token_embd.weight", "blk.0.attn_q_a.weight", "blk.1.ffn_gate_exps.weight", "blk.1.exp_probs_b.bias",
          "blk.1.attn_k_b.weight", "blk.1.attn_v_b.weight", "output.weight"):
    assert n in names, n
print("inspect json ok:", hf["n_params"], "parameters")
PY

# Bad input: one line naming the file, exit code 2, never a crash.
head -c 100 "$tmp/v3.gguf" > "$tmp/truncated.gguf"
set +e
"$bin" inspect "$tmp/truncated.gguf" 2> "$tmp/err.txt"; rc=$?
set -e
[[ $rc -eq 2 ]] || fail "truncated gguf: exit $rc, want 2"
[[ $(wc -l < "$tmp/err.txt") -eq 1 ]] || fail "truncated gguf: want one line, got: $(cat "$tmp/err.txt")"
grep -q "truncated.gguf" "$tmp/err.txt" || fail "error does not name the file: $(cat "$tmp/err.txt")"

printf 'not a model' > "$tmp/junk.bin"
set +e
"$bin" inspect "$tmp/junk.bin" 2> "$tmp/err.txt"; rc=$?
"$bin" make-model --preset nope --out "$tmp/x" 2> "$tmp/err2.txt"; rc2=$?
"$bin" inspect 2>/dev/null; rc3=$?
set -e
[[ $rc -eq 2 ]] || fail "junk file: exit $rc, want 2"
[[ $rc2 -eq 2 ]] || fail "unknown preset: exit $rc2, want 2"
grep -q "unknown model preset 'nope'" "$tmp/err2.txt" || fail "unknown preset message: $(cat "$tmp/err2.txt")"
[[ $rc3 -eq 2 ]] || fail "missing argument: exit $rc3, want 2"
echo "inspect_test: all checks passed"
