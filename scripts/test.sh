#!/usr/bin/env bash
# Builds peftcpp and runs the whole test suite with ctest.
# --sanitize: the same under AddressSanitizer + UndefinedBehaviorSanitizer (build-asan/).
# --shared: the same against libpeftcpp.so (build-shared/; Install.Consumers then also checks
#           the SONAME and the exported symbols).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh "$@"
dir=build
[ "${1:-}" = "--sanitize" ] && dir=build-asan
[ "${1:-}" = "--shared" ] && dir=build-shared
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)"
