#!/usr/bin/env bash
# The whole `peftcpp merge` command against `cat` of the same shards (issue 16): generates a
# Llama-shaped BF16 checkpoint with an all-linear r=16 LoRA (F32 factors) once, then times,
# with the page cache warm and the output removed + `sync` before each run:
#   cat      every shard copied with cat into a new folder (GNU cat 9 uses copy_file_range:
#            the kernel copies, no userland buffer)
#   dd       the same with dd bs=1M (userland read + write)
#   merge    peftcpp merge with the default thread count, then --threads 1 and --threads 2
# and prints wall min / median and cpu (user + sys) median of RUNS runs each, the ratios to
# cat and dd, and the merge's peak RSS.
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

# "wall cpu" seconds of one run of "$@" (cpu = user + sys) after removing the output and
# syncing.
time_once() {
  rm -rf "$out"
  sync
  /usr/bin/time -o "$data/.time" -f '%e %U %S' bash -c '"$@"' run "$@" >/dev/null
  awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$data/.time"
}

# cat of every shard into a new folder (GNU cat 9 copies with copy_file_range, in the
# kernel), and dd with 1 MiB blocks (userland read + write of the same bytes).
export root out
copy_shards() {
  mkdir -p "$out"
  for f in "$root"/base/*.safetensors; do cat "$f" >"$out/$(basename "$f")"; done
}
dd_shards() {
  mkdir -p "$out"
  for f in "$root"/base/*.safetensors; do
    dd if="$f" of="$out/$(basename "$f")" bs=1M status=none
  done
}

median() { sort -g | awk '{ t[NR] = $1 } END { printf "%.3f", (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2 }'; }

export -f copy_shards dd_shards

# "min median cpu-median" of RUNS runs.
measure() {
  local lines=()
  for _ in $(seq "$runs"); do lines+=("$(time_once "$@")"); done
  local wall cpu
  wall=$(printf '%s\n' "${lines[@]}" | cut -d' ' -f1)
  cpu=$(printf '%s\n' "${lines[@]}" | cut -d' ' -f2)
  echo "$(echo "$wall" | sort -g | head -1) $(echo "$wall" | median) $(echo "$cpu" | median)"
}

peak_rss_mb() {
  rm -rf "$out"
  /usr/bin/time -o "$data/.time" -f '%M' "$@" >/dev/null 2>&1
  awk '{ printf "%.0f", $1 / 1024 }' "$data/.time"
}

merge=("$peftcpp" --quiet merge --base "$root/base" --adapter "$root/adapter" --out "$out")
printf 'checkpoint: %s (%.2f GB of shards), %s runs each; seconds: wall min, wall median, cpu median\n' \
  "$root" "$(echo "$bytes / 1000000000" | bc -l)" "$runs"
read -r cat_min cat_med cat_cpu < <(measure copy_shards)
printf '%-30s %7.3f %7.3f %6.2f\n' "cat of the shards" "$cat_min" "$cat_med" "$cat_cpu"
read -r dd_min dd_med dd_cpu < <(measure dd_shards)
printf '%-30s %7.3f %7.3f %6.2f\n' "dd bs=1M of the shards" "$dd_min" "$dd_med" "$dd_cpu"
for threads in default 1 2; do
  args=("${merge[@]}")
  [ "$threads" = default ] || args+=(--threads "$threads")
  read -r min med cpu < <(measure "${args[@]}")
  printf '%-30s %7.3f %7.3f %6.2f   %5.2fx cat, %5.2fx dd (medians); peak RSS %s MB\n' \
    "peftcpp merge (threads $threads)" "$min" "$med" "$cpu" "$(echo "$med / $cat_med" | bc -l)" \
    "$(echo "$med / $dd_med" | bc -l)" "$(peak_rss_mb "${args[@]}")"
done
rm -rf "$out" "$data/.time"
