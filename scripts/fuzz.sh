#!/usr/bin/env bash
# Builds every libFuzzer target (fuzz/*_fuzz.cpp) with clang-16 under ASan+UBSan and runs each
# for SECONDS seconds on its seed corpus (fuzz/corpus/<target>/). Any crash, leak, or sanitizer
# report fails the run. Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
build=${FUZZ_DIR:-build-fuzz}
shopt -s nullglob
targets=(fuzz/*_fuzz.cpp)
((${#targets[@]})) || exit 0

mkdir -p "$build"
if ! { cmake -S . -B "$build" -G Ninja -DSEEKSERVE_FUZZ=ON -DSEEKSERVE_TESTS=OFF \
         -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-16 &&
       cmake --build "$build" -j "$(nproc)"; } >"$build/build.log" 2>&1; then
  echo "fuzz: building the fuzz targets FAILED (log: $build/build.log)"
  grep -E "error|FAILED" "$build/build.log" | head -n 20
  exit 1
fi

for src in "${targets[@]}"; do
  name=$(basename "$src" .cpp)
  work="$build/corpus/$name"
  mkdir -p "$work"
  seeds="fuzz/corpus/$name"
  mkdir -p "$seeds"
  log="$build/$name.log"
  if ! "$build/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=0 -artifact_prefix="$build/$name-" "$work" "$seeds" >"$log" 2>&1; then
    echo "fuzz: $name FAILED (log: $log)"
    tail -n 40 "$log"
    exit 1
  fi
  runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -n 1 || true)
  echo "fuzz: $name ok (${runs:-done} in ${seconds}s)"
done
