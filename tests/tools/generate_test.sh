#!/usr/bin/env bash
# generate / logits / perplexity through the real binary, as a user runs them.
set -euo pipefail
bin=${SEEKSERVE_BINARY:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
"$bin" make-model --preset tiny-qwen2 --out "$tmp/m" --seed 5

# Greedy generation is deterministic; the figures line goes to stderr.
a=$("$bin" generate -m "$tmp/m" -p "The capital of France is" -n 12 2> "$tmp/err")
b=$("$bin" generate -m "$tmp/m" -p "The capital of France is" -n 12 2>/dev/null)
[[ -n "$a" && "$a" == "$b" ]] || fail "greedy generation differs between runs: '$a' vs '$b'"
grep -Eq "^prompt: [0-9]+ tokens, [0-9.]+ tok/s \| generation: 12 tokens, [0-9.]+ tok/s \| finish: length$" "$tmp/err" \
  || fail "figures line: $(cat "$tmp/err")"
# Same seed, same sampled text; another seed, other text.
s1=$("$bin" generate -m "$tmp/m" -p "Once upon a time" -n 24 --temp 1.0 --seed 7 2>/dev/null)
s2=$("$bin" generate -m "$tmp/m" -p "Once upon a time" -n 24 --temp 1.0 --seed 7 2>/dev/null)
s3=$("$bin" generate -m "$tmp/m" -p "Once upon a time" -n 24 --temp 1.0 --seed 8 2>/dev/null)
[[ "$s1" == "$s2" ]] || fail "same seed, different text"
[[ "$s1" != "$s3" ]] || fail "different seeds, same text"
# A stop string ends the text before it: take a piece of the greedy output as the stop string.
stop=${a:4:3}
c=$("$bin" generate -m "$tmp/m" -p "The capital of France is" -n 12 --stop "$stop" 2> "$tmp/err")
[[ "$c" == "${a%%"$stop"*}" ]] || fail "stop '$stop': got '$c' from '$a'"
grep -q "finish: stop" "$tmp/err" || fail "stop string: finish reason: $(cat "$tmp/err")"

# logits: [n_tokens, n_vocab] float32 .npy; the prompt form adds BOS.
"$bin" logits -m "$tmp/m" --prompt "Hello world" --out "$tmp/l.npy"
/usr/bin/python3 -c "
import numpy as np, sys
a = np.load('$tmp/l.npy')
assert a.dtype == np.float32 and a.shape == (3, 129280), (a.dtype, a.shape)
assert np.isfinite(a).all()
"
# A BF16 or FP8 KV cache changes the logits a little, not a lot.
"$bin" logits -m "$tmp/m" --prompt "Hello world, this is a longer prompt" --out "$tmp/f32.npy"
"$bin" logits -m "$tmp/m" --prompt "Hello world, this is a longer prompt" --kv-dtype bf16 --out "$tmp/bf16.npy"
"$bin" logits -m "$tmp/m" --prompt "Hello world, this is a longer prompt" --kv-dtype fp8 --out "$tmp/fp8.npy"
/usr/bin/python3 -c "
import numpy as np
a, b, c = (np.load('$tmp/' + n + '.npy') for n in ('f32', 'bf16', 'fp8'))
rb = np.abs(a - b).max() / np.abs(a).max()
rc = np.abs(a - c).max() / np.abs(a).max()
print(f'kv bf16 rel {rb:.2e}, fp8 rel {rc:.2e}')
assert 0 < rb < 2e-2 and 0 < rc < 1.5e-1, (rb, rc)
"
# perplexity, and against itself: KL 0, agreement 100%.
/usr/bin/python3 -c "print(' '.join(['the quick brown fox jumps over the lazy dog'] * 12))" > "$tmp/text.txt"
"$bin" perplexity -m "$tmp/m" -f "$tmp/text.txt" --kl-base "$tmp/m" --ctx 64 > "$tmp/ppl"
grep -Eq "^perplexity: [0-9.]+$" "$tmp/ppl" || fail "perplexity output: $(cat "$tmp/ppl")"
grep -q "mean KL divergence vs base: 0.000000" "$tmp/ppl" || fail "self KL: $(cat "$tmp/ppl")"
grep -q "top-1 agreement vs base: 100.00%" "$tmp/ppl" || fail "self agreement: $(cat "$tmp/ppl")"

expect_exit() {  # CODE MESSAGE-SUBSTRING command...
  local code=$1 msg=$2
  shift 2
  set +e
  err=$("$@" 2>&1 >/dev/null)
  rc=$?
  set -e
  [[ $rc == "$code" ]] || fail "$* exited $rc, want $code ($err)"
  [[ "$err" == *"$msg"* ]] || fail "$*: message '$err' lacks '$msg'"
}
expect_exit 2 "temperature" "$bin" generate -m "$tmp/m" -p "x" --temp 9
expect_exit 2 "outside the vocabulary" "$bin" logits -m "$tmp/m" --tokens 1,999999 --out "$tmp/x.npy"
expect_exit 2 "not a token id" "$bin" logits -m "$tmp/m" --tokens 1,x --out "$tmp/x.npy"
expect_exit 2 "exceed --ctx" "$bin" generate -m "$tmp/m" -p "x" -n 100 --ctx 50
expect_exit 2 "no such model" "$bin" generate -m "$tmp/nothing" -p "x"
expect_exit 2 "--chat-template: unknown chat template" "$bin" generate -m "$tmp/m" -p "x" --chat --chat-template nope
echo "generate_test: all checks passed"
