#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and runs each for a bounded time.
# A crash, a sanitizer finding or a timeout fails the run, and the input
# that caused it is left in the build folder.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
build=${2:-build-fuzz}

CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDIRINDEX_FUZZ=ON -DDIRINDEX_BUILD_TESTS=OFF -DDIRINDEX_BUILD_BENCHMARKS=OFF
cmake --build "$build" -j2 --target fuzz_all

mkdir -p "$build/corpus"
for target in "$build"/fuzz/*_fuzz; do
  name=$(basename "$target")
  corpus="$build/corpus/$name"
  mkdir -p "$corpus"
  echo "fuzzing $name for ${seconds}s"
  (cd "$build" && "$OLDPWD/$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
     -max_len=4096 -print_final_stats=1 "$OLDPWD/$corpus" 2>&1 | tail -n 4)
  status=${PIPESTATUS[0]}
  if [[ $status -ne 0 ]]; then
    echo "$name failed with status $status"
    exit 1
  fi
done
echo "all fuzz targets ran clean"
