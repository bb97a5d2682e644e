#!/usr/bin/env bash
# Runs every benchmark binary under BUILD/bench (make bench). Figures go to stdout; record them,
# with this command, in docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shopt -s nullglob
for b in "$build"/bench/*; do
  [[ -x "$b" ]] || continue
  echo "== $(basename "$b")"
  "$b"
done
for s in bench/*.sh; do
  echo "== $(basename "$s")"
  SEEKSERVE_BUILD_DIR="$build" bash "$s"
done
