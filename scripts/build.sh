#!/usr/bin/env bash
# Configures and builds peftcpp into build/ (or build-asan/ with --sanitize).
#   (no flag)   the library, the CLI, the tests and the benchmarks
#   --cli       the library and the peftcpp CLI only (what scripts/run-example.sh needs)
#   --sanitize  everything but the benchmarks, under AddressSanitizer + UBSan, in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
if [ "$mode" = --cli ]; then scripts/install-deps.sh --cli; else scripts/install-deps.sh; fi
dir=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DPEFT_BUILD_TESTS=ON -DPEFT_BUILD_BENCH=ON)
target=()
case "$mode" in
  --sanitize)
    dir=build-asan
    flags=(-DCMAKE_BUILD_TYPE=Debug -DPEFT_SANITIZE=ON -DPEFT_BUILD_TESTS=ON -DPEFT_BUILD_BENCH=OFF) ;;
  --cli)
    # Keep the test/benchmark settings of an existing build tree; build one target.
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
    [ -f build/CMakeCache.txt ] || flags+=(-DPEFT_BUILD_TESTS=OFF -DPEFT_BUILD_BENCH=OFF)
    target=(--target peftcpp) ;;
  "") ;;
  *) echo "usage: scripts/build.sh [--cli|--sanitize]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" "${target[@]}"
