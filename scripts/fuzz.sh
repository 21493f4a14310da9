#!/usr/bin/env bash
# Runs a libFuzzer target for a given time: scripts/fuzz.sh TARGET SECONDS
#   TARGET: safetensors | zip | pickle | config | adapter_folder | gguf | hub_protocol | all
# Builds build-fuzz/ with clang on first use, regenerates the seed corpora from the
# fixtures (scripts/make_fuzz_corpus.py), and keeps the growing corpus of each target in
# build-fuzz/corpus/TARGET. Crashes, hangs and leaks land in build-fuzz/artifacts/TARGET/;
# one line per run (executions, coverage) is appended to build-fuzz/fuzz-stats.tsv.
# One fuzzer runs at a time, under nice. Exits non-zero when a target found something.
# Environment: FUZZ_BUILD_JOBS (default 2), FUZZ_EXTRA_ARGS (more libFuzzer flags).
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(safetensors zip pickle config adapter_folder gguf hub_protocol)
if [ $# -ne 2 ] || ! [[ "$2" =~ ^[0-9]+$ ]]; then
  echo "usage: $0 {$(IFS='|'; echo "${targets[*]}")|all} SECONDS" >&2
  exit 2
fi
if [ "$1" = all ]; then
  selected=("${targets[@]}")
else
  [[ " ${targets[*]} " == *" $1 "* ]] || { echo "unknown target '$1'" >&2; exit 2; }
  selected=("$1")
fi
seconds=$2

if ! command -v clang++ >/dev/null; then
  echo "fuzzing needs clang with libFuzzer: apt-get install clang libclang-rt-14-dev" >&2
  exit 2
fi
dir=build-fuzz
if [ ! -f "$dir/CMakeCache.txt" ]; then
  cmake -S . -B "$dir" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPEFT_BUILD_FUZZ=ON -DPEFT_BUILD_TESTS=OFF -DPEFT_BUILD_BENCH=OFF >/dev/null
fi
nice cmake --build "$dir" -j "${FUZZ_BUILD_JOBS:-2}" --target "${selected[@]/#/fuzz_}" >/dev/null
rm -rf "$dir/seeds"
if command -v python3 >/dev/null; then
  python3 scripts/make_fuzz_corpus.py "$dir/seeds" >/dev/null
else
  # Without python3: the fixtures as they are (no data.pkl extraction, no packed folders).
  echo "python3 not found: seeding from the raw fixtures only" >&2
  mkdir -p "$dir"/seeds/{safetensors,zip,pickle,config,adapter_folder,gguf,hub_protocol}
  copy_seeds() {
    find tests/data -name "$1" -size -64k -print0 | while IFS= read -r -d '' file; do
      cp "$file" "$dir/seeds/$2/$(sha1sum <"$file" | cut -c1-40)"
    done
  }
  copy_seeds '*.safetensors' safetensors
  copy_seeds '*.bin' zip
  copy_seeds '*.pkl' pickle
  copy_seeds 'adapter_config.json' config
  copy_seeds '*.gguf' gguf
fi

# Inputs bigger than this are cut: small inputs fuzz faster, the fixtures are small.
declare -A max_len=([safetensors]=8192 [zip]=8192 [pickle]=8192 [config]=8192
  [adapter_folder]=16384 [gguf]=8192 [hub_protocol]=4096)
status=0
for target in "${selected[@]}"; do
  mkdir -p "$dir/corpus/$target" "$dir/artifacts/$target" "$dir/logs"
  log="$dir/logs/$target-$(date +%Y%m%d-%H%M%S).log"
  set +e
  # shellcheck disable=SC2086  # FUZZ_EXTRA_ARGS is a list of flags
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    nice "$dir/fuzz/fuzz_$target" "$dir/corpus/$target" "$dir/seeds/$target" \
    -dict="fuzz/$target.dict" -max_total_time="$seconds" -max_len="${max_len[$target]}" \
    -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$dir/artifacts/$target/" ${FUZZ_EXTRA_ARGS:-} >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  cov=$(grep -Eo '(DONE|pulse|NEW|REDUCE|INITED) +cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 |
    sed -E 's/.*cov: ([0-9]+) ft: ([0-9]+)/\1\t\2/' || true)
  corpus=$(find "$dir/corpus/$target" -type f | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -Iseconds)" "$target" "$seconds" \
    "${execs:-?}" "${cov:-?	?}" "$corpus" "$rc" >>"$dir/fuzz-stats.tsv"
  echo "$target: ${seconds}s, ${execs:-?} executions, cov/ft ${cov//	//}, corpus $corpus," \
    "exit $rc (log $log)"
  if [ $rc -ne 0 ]; then
    status=1
    grep -E 'ERROR|SUMMARY|fuzz finding|Test unit written' "$log" | head -5 >&2 || true
  fi
done
exit $status
