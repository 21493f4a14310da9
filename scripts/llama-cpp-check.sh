#!/usr/bin/env bash
# End-to-end check of `peftcpp export-gguf` against the real llama.cpp.
#
# llama.cpp comes from Debian's unstable distribution (llama.cpp-tools, -tools-extra and
# python3-gguf, with transformers/torch/sentencepiece for its converter); it needs a newer
# libc than Debian 12, so it runs in a debootstrap chroot cached outside the clone
# ($PEFTCPP_LLAMA_CHROOT, default /var/cache/peftcpp/sid-chroot) and built once per machine.
#
# For tiny random bases of each architecture family export-gguf knows (Llama, Qwen2,
# Qwen3, Gemma, Phi-3: scripts/llama_cpp/make_base.py) and LoRA adapters on their
# projections (plain, rsLoRA and rank/alpha-pattern scaling) and embeddings
# (make_lora.py): peftcpp merges each adapter into its base, llama.cpp's own converter
# (convert_hf_to_gguf.py --outtype f32) converts the bases and the merged models, peftcpp
# exports the adapter, and llama-perplexity of the base with `--lora` must equal that of
# the merged model (relative difference <= 1e-4, all-f32 path) and differ from the base's. A mismatch fails; an environment that cannot
# build the chroot (no network, archive unreachable) is reported as SKIPPED.
#
# usage: scripts/llama-cpp-check.sh [path/to/peftcpp]
set -euo pipefail
cd "$(dirname "$0")/.."
peftcpp=$(realpath "${1:-build/peftcpp}")
root=${PEFTCPP_LLAMA_CHROOT:-/var/cache/peftcpp/sid-chroot}
# The mirror's sid Release file may be past its Valid-Until on machines with a later clock.
apt_opts=(-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3)
packages=(llama.cpp-tools llama.cpp-tools-extra python3-gguf python3-transformers python3-torch
  python3-sentencepiece python3-safetensors python3-numpy)

skip() {
  echo "llama.cpp check SKIPPED: $*"
  exit 0
}
in_root() { timeout 600 chroot "$root" /bin/sh -c "$1"; }

mounted=0
cleanup() { if [ $mounted = 1 ]; then umount "$root/proc" 2>/dev/null || true; fi; }
trap cleanup EXIT

if [ ! -x "$root/usr/bin/llama-perplexity" ]; then
  echo "== building the Debian sid chroot in $root (once per machine)"
  command -v debootstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
    skip "debootstrap is not installable"
  if [ ! -x "$root/usr/bin/apt-get" ]; then
    mkdir -p "$(dirname "$root")"
    timeout 1800 debootstrap --variant=minbase --include=ca-certificates sid "$root" \
      http://deb.debian.org/debian >"$(dirname "$root")/debootstrap.log" 2>&1 ||
      skip "debootstrap of sid failed (see $(dirname "$root")/debootstrap.log)"
  fi
  mount -t proc proc "$root/proc" && mounted=1
  timeout 1800 chroot "$root" /bin/sh -c "apt-get ${apt_opts[*]} update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get ${apt_opts[*]} install -y -qq --no-install-recommends \
    ${packages[*]}" >"$(dirname "$root")/apt.log" 2>&1 ||
    skip "installing llama.cpp in the chroot failed (see $(dirname "$root")/apt.log)"
fi
if [ $mounted = 0 ]; then mount -t proc proc "$root/proc" && mounted=1; fi

echo "== llama.cpp under test:"
in_root "dpkg-query -W llama.cpp-tools libllama0 libggml0 python3-gguf python3-transformers"
converter=/usr/share/doc/llama.cpp-tools/scripts/convert_hf_to_gguf.py

work_in_root=/tmp/peftcpp-llama-check
work="$root$work_in_root"
rm -rf "$work"
mkdir -p "$work"
cp scripts/llama_cpp/make_base.py scripts/llama_cpp/make_lora.py "$work/"

# ARCH:MODE pairs: every family with every scaling mode (plain, rsLoRA, rank/alpha
# patterns) and with LoRA on its embeddings (token_embd + output where they are untied);
# the variants that share a family's tensor names (Mistral, Gemma 2 and 3) with fewer.
cases=()
for arch in llama qwen2 qwen3 gemma phi3; do
  for mode in plain rslora patterns embed; do
    [ "$arch:$mode" = gemma:embed ] || cases+=("$arch:$mode")
  done
done
cases+=(mistral:plain mistral:embed gemma2:plain gemma2:patterns gemma3:plain gemma3:patterns)
# Adapters export-gguf must refuse: llama.cpp aborts on an embedding LoRA of a tied model.
refused=(gemma:embed gemma3:embed)
archs=$(printf '%s\n' "${cases[@]}" "${refused[@]}" | cut -d: -f1 | sort -u)
for arch in $archs; do
  in_root "cd $work_in_root && python3 make_base.py $arch >>make_base.log 2>&1 &&
    python3 $converter base_$arch --outtype f32 --outfile base_$arch.gguf >>convert.log 2>&1"
done

# llama-perplexity of this llama.cpp sometimes dies before printing its final estimate
# (seen about once in ten runs, output cut at the last chunk): up to three tries.
ppl() {  # ppl MODEL [LORA]: llama-perplexity's final estimate, all in f32 (log kept)
  local lora="" log estimate=""
  [ -n "${2:-}" ] && lora="--lora $2"
  log="ppl-$1${2:+-with-$2}.log"
  for _ in 1 2 3; do
    in_root "cd $work_in_root && llama-perplexity -m $1 $lora -f eval.txt -c 64 -b 64 -t 1 \
      -ngl 0 -fa off -ctk f32 -ctv f32 >$log 2>&1" || true
    estimate=$(grep -o 'Final estimate: PPL = [0-9.]*' "$work/$log" | grep -o '[0-9.]*$' || true)
    [ -n "$estimate" ] && break
  done
  echo "$estimate"
}

status=0
declare -A base_ppl
for arch in $archs; do
  base_ppl[$arch]=$(ppl "base_$arch.gguf")
  [ -n "${base_ppl[$arch]}" ] || { echo "llama-perplexity gave no estimate for $arch" >&2; exit 1; }
  echo "$arch base: PPL ${base_ppl[$arch]}"
done
for case in "${cases[@]}"; do
  arch=${case%%:*} mode=${case#*:}
  name="${arch}_$mode"
  in_root "cd $work_in_root && python3 make_lora.py $arch $mode >>make_lora.log 2>&1"
  (
    cd "$work"
    "$peftcpp" merge --base "base_$arch" --adapter "lora_$name" --out "merged_$name" -q
    for f in tokenizer.model tokenizer_config.json; do
      [ -f "merged_$name/$f" ] || cp "base_$arch/$f" "merged_$name/"
    done
    "$peftcpp" export-gguf "lora_$name" --base "base_$arch" --out "lora_$name.gguf" --force -q
  )
  in_root "cd $work_in_root && python3 $converter merged_$name --outtype f32 \
    --outfile merged_$name.gguf >>convert.log 2>&1"
  dump=$(in_root "gguf-dump $work_in_root/lora_$name.gguf 2>&1")
  case "$dump" in
    *"adapter.type = 'lora'"*) ;;
    *) echo "$name: gguf-dump does not show adapter.type = 'lora'" >&2; status=1 ;;
  esac
  with_lora=$(ppl "base_$arch.gguf" "lora_$name.gguf")
  merged=$(ppl "merged_$name.gguf")
  verdict=$(awk -v a="$with_lora" -v m="$merged" -v b="${base_ppl[$arch]}" 'BEGIN {
    if (a == "" || m == "") { print "no estimate"; exit }
    d = (a - m) / m; if (d < 0) d = -d
    e = (a - b) / b; if (e < 0) e = -e
    if (d > 1e-4) print "MISMATCH"; else if (e < 1e-4) print "NO EFFECT"; else print "ok" }')
  echo "$name: base+lora PPL ${with_lora:-?}, merged PPL ${merged:-?}: $verdict"
  [ "$verdict" = ok ] || status=1
done
for case in "${refused[@]}"; do
  arch=${case%%:*} mode=${case#*:}
  name="${arch}_$mode"
  in_root "cd $work_in_root && python3 make_lora.py $arch $mode >>make_lora.log 2>&1"
  if (cd "$work" && "$peftcpp" export-gguf "lora_$name" --base "base_$arch" \
    --out "lora_$name.gguf" --force -q 2>"refused_$name.log"); then
    echo "$name: export-gguf wrote an adapter llama.cpp cannot apply" >&2
    status=1
  elif grep -q "tied to the output" "$work/refused_$name.log"; then
    echo "$name: refused: $(cat "$work/refused_$name.log")"
  else
    echo "$name: export-gguf failed for another reason: $(cat "$work/refused_$name.log")" >&2
    status=1
  fi
done
exit $status
