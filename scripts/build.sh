#!/usr/bin/env bash
# Configures and builds peftcpp into build/ (or build-asan/ with --sanitize).
#   (no flag)   the library, the CLI, the tests and the benchmarks
#   --cli       the library and the peftcpp CLI only (what scripts/run-example.sh needs)
#   --sanitize  everything but the benchmarks, under AddressSanitizer + UBSan, in build-asan/
#   --shared    the library as libpeftcpp.so (BUILD_SHARED_LIBS=ON), the CLI and the tests, in
#               build-shared/
# With ccache installed it is used, with paths relative to the repository, so build/ and
# build-shared/ (which compile the same objects) share its cache.
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
  --shared)
    dir=build-shared
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_SHARED_LIBS=ON -DPEFT_BUILD_TESTS=ON -DPEFT_BUILD_BENCH=OFF) ;;
  --cli)
    # Keep the test/benchmark settings of an existing build tree; build one target.
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
    [ -f build/CMakeCache.txt ] || flags+=(-DPEFT_BUILD_TESTS=OFF -DPEFT_BUILD_BENCH=OFF)
    target=(--target peftcpp) ;;
  "") ;;
  *) echo "usage: scripts/build.sh [--cli|--sanitize|--shared]" >&2; exit 2 ;;
esac
if command -v ccache >/dev/null; then
  flags+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)" "${target[@]}"
