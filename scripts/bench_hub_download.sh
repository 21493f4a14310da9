#!/usr/bin/env bash
# Downloading one large file from a local Hub stand-in (build/bench/hub_bench_server):
# `peftcpp download` (HEAD, GET, sha256 while writing, rename, symlink) against
# `curl -o` of the same URL followed by `sha256sum`, alternately, in one run.
#   scripts/bench_hub_download.sh [SIZE_MB (default 2048)] [ROUNDS (default 1)]
set -euo pipefail
cd "$(dirname "$0")/.."
size_mb=${1:-2048}
rounds=${2:-1}
server=build/bench/hub_bench_server
peftcpp=build/peftcpp
[ -x "$server" ] && [ -x "$peftcpp" ] || { echo "build first: cmake --build build --target hub_bench_server peftcpp" >&2; exit 2; }
work=$(mktemp -d)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
head -c "$((size_mb * 1024 * 1024))" /dev/urandom >"$work/big.bin"
sha=$(sha256sum "$work/big.bin" | cut -d' ' -f1)
commit=$(printf '%040d' 1)
"$server" "$work/big.bin" "$sha" org/big "$commit" >"$work/port" &
server_pid=$!
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
url="http://localhost:$port/lfs/$sha"
now() { date +%s.%N; }
for round in $(seq "$rounds"); do
  rm -rf "$work/cache" "$work/curl.bin"
  t0=$(now)
  curl -s -o "$work/curl.bin" "$url"
  got=$(sha256sum "$work/curl.bin" | cut -d' ' -f1)
  t1=$(now)
  [ "$got" = "$sha" ] || { echo "curl: wrong sha256" >&2; exit 1; }
  rm -f "$work/curl.bin"
  path=$(HF_ENDPOINT="http://127.0.0.1:$port" HF_HUB_CACHE="$work/cache" HF_TOKEN= \
    "$peftcpp" download org/big big.bin --quiet)
  t2=$(now)
  cmp -s "$path" "$work/big.bin" || { echo "peftcpp: wrong bytes" >&2; exit 1; }
  awk -v a="$t0" -v b="$t1" -v c="$t2" -v mb="$size_mb" -v r="$round" 'BEGIN {
    curl = b - a; ours = c - b;
    printf "round %d, %d MiB: curl -o + sha256sum %.2f s, peftcpp download %.2f s, ratio %.3f\n",
      r, mb, curl, ours, ours / curl }'
done
