#!/usr/bin/env bash
# Runs clang-tidy with the repository's .clang-tidy over every source file.
#   scripts/tidy.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}

if [[ ! -f "$build/compile_commands.json" ]]; then
  cmake -S . -B "$build" -G Ninja
fi
mapfile -t sources < <(git ls-files 'index/*.cc' 'scan/*.cc' 'net/*.cc' 'api/*.cc')
clang-tidy -p "$build" --quiet "${sources[@]}"
