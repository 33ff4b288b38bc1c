#!/usr/bin/env bash
# Installs the packages, builds dirindex and serves the given directories
# (default /usr) on 127.0.0.1:8750 with the embedded defaults.
#   scripts/run.sh [DIR...]
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -eq 0 ]]; then scripts/install-deps.sh; else sudo scripts/install-deps.sh; fi
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DDIRINDEX_BUILD_TESTS=OFF -DDIRINDEX_BUILD_BENCHMARKS=OFF
cmake --build build-release -j2 --target dirindex
if [[ $# -eq 0 ]]; then set -- /usr; fi
exec build-release/api/dirindex serve "$@"
