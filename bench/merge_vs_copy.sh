#!/usr/bin/env bash
# The whole `peftcpp merge` command against `cat` of the same shards (issue 16): generates a
# Llama-shaped BF16 checkpoint with an all-linear r=16 LoRA (F32 factors) once, then times,
# with the page cache warm and the output removed + `sync` before each run:
#   cat      every shard copied with cat into a new folder (userland read + write)
#   merge    peftcpp merge with the default thread count, then --threads 1 and --threads 2
# and prints min and median of RUNS runs each, the ratios to cat, and the merge's peak RSS.
#
#   bench/merge_vs_copy.sh [--runs N] [--build DIR] [--data DIR] [generator options...]
#
# Generator options go to make_llama_checkpoint (--hidden, --intermediate, --layers,
# --vocab, --shards, --rank); the default is issue 16's 0.9 GB shape (hidden 1024,
# intermediate 2816, 34 layers, vocabulary 32000, 4 shards, r = 16). A 7B-shaped layer set:
#   bench/merge_vs_copy.sh --hidden 4096 --intermediate 11008 --layers 4 --shards 2 --rank 64
# Timings on a shared machine are noisy: compare medians, and rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=5
build=build
data=${BENCHDATA:-/tmp/peftcpp-bench}/merge-vs-copy
shape=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    *) shape+=("$1" "$2"); shift 2 ;;
  esac
done
peftcpp=$build/peftcpp
generator=$build/bench/make_llama_checkpoint
[ -x "$peftcpp" ] && [ -x "$generator" ] || {
  echo "build peftcpp and make_llama_checkpoint first: scripts/build.sh" >&2
  exit 2
}
# One folder per shape, generated once.
root=$data/$(echo "default ${shape[*]:-}" | tr -c 'A-Za-z0-9\n' '_')
if [ ! -f "$root/ready" ]; then
  rm -rf "$root"
  "$generator" "$root" "${shape[@]}"
  touch "$root/ready"
fi
out=$root/out
cat "$root"/base/*.safetensors >/dev/null  # warm the page cache
bytes=$(cat "$root"/base/*.safetensors | wc -c)

# Seconds of one run of "$@" after removing the output and syncing.
time_once() {
  rm -rf "$out"
  sync
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

copy_shards() {
  mkdir -p "$out"
  for f in "$root"/base/*.safetensors; do cat "$f" >"$out/$(basename "$f")"; done
}

# "min median" of RUNS runs.
measure() {
  local times=()
  for _ in $(seq "$runs"); do times+=("$(time_once "$@")"); done
  printf '%s\n' "${times[@]}" | sort -g | awk '{ t[NR] = $1 }
    END { m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2; printf "%.3f %.3f\n", t[1], m }'
}

peak_rss_mb() {
  rm -rf "$out"
  /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1 | awk '{ printf "%.0f", $1 / 1024 }'
}

merge=("$peftcpp" --quiet merge --base "$root/base" --adapter "$root/adapter" --out "$out")
printf 'checkpoint: %s (%.2f GB of shards), %s runs each, min / median seconds\n' "$root" \
  "$(echo "$bytes / 1000000000" | bc -l)" "$runs"
read -r cat_min cat_med < <(measure copy_shards)
printf '%-28s %7.3f %7.3f\n' "cat of the shards" "$cat_min" "$cat_med"
for threads in default 1 2; do
  args=("${merge[@]}")
  [ "$threads" = default ] || args+=(--threads "$threads")
  read -r min med < <(measure "${args[@]}")
  printf '%-28s %7.3f %7.3f   %5.2fx cat (median), %5.2fx (min), peak RSS %s MB\n' \
    "peftcpp merge (threads $threads)" "$min" "$med" "$(echo "$med / $cat_med" | bc -l)" \
    "$(echo "$min / $cat_min" | bc -l)" "$(peak_rss_mb "${args[@]}")"
done
rm -rf "$out"
