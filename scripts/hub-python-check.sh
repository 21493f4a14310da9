#!/usr/bin/env bash
# The cache `peftcpp download` writes, compared with the one the real Python client
# (huggingface_hub, from Debian's unstable distribution) writes against the same fake Hub.
#
# build/tests/hub_fake_server (tests/support/fake_hub.hpp) serves on 127.0.0.1 the repositories
# this script describes (small files, files in sub folders, large "lfs" files behind a redirect
# with a sha256 etag, a branch, a tag, files missing at some revisions). Each scenario below
# runs once through huggingface_hub (hf_hub_download / snapshot_download, inside a Debian sid
# chroot: $PEFTCPP_HUB_CHROOT, default /var/cache/peftcpp/sid-hub-chroot, built once per
# machine) and once through `peftcpp download`, each into its own empty cache; then the two
# trees are compared entry by entry: paths, entry types, symlink targets, permissions, sizes and
# sha256 of every file (blobs, refs, .no_exist markers, locks), the content of refs, whether the
# call succeeded and the path it returned. Any difference is printed as a diff and fails the
# check. What huggingface_hub writes and peftcpp deliberately does not is listed in
# `not_compared` below, with the reason. Then each client reads, offline (HF_HUB_OFFLINE=1), a
# copy of the other's caches: it must find and refuse exactly what it finds and refuses in its
# own. An environment that cannot build the chroot (no network, archive unreachable, not root)
# is reported as SKIPPED. Takes about 30 s once the chroot exists (it is built in a few minutes).
#
# usage: scripts/hub-python-check.sh [path/to/build]
set -euo pipefail
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
peftcpp=$build/peftcpp
server=$build/tests/hub_fake_server
root=${PEFTCPP_HUB_CHROOT:-/var/cache/peftcpp/sid-hub-chroot}
apt_opts=(-o Acquire::Check-Valid-Until=false -o Acquire::Retries=3)
started=$(date +%s)

for tool in "$peftcpp" "$server"; do
  [ -x "$tool" ] || { echo "missing $tool: build the peftcpp and hub_fake_server targets" >&2; exit 2; }
done

skip() {
  echo "huggingface_hub check SKIPPED: $*"
  exit 0
}

mounted=0 server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
  if [ $mounted = 1 ]; then umount "$root/proc" 2>/dev/null || true; fi
}
trap cleanup EXIT

# --- the chroot with huggingface_hub --------------------------------------------------------
[ "$(id -u)" = 0 ] || skip "it needs root (debootstrap, chroot, mount)"
if [ ! -d "$root/usr/lib/python3/dist-packages/huggingface_hub" ]; then
  echo "== building the Debian sid chroot in $root (once per machine)"
  command -v debootstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
    skip "debootstrap is not installable"
  logs=$(dirname "$root")
  if [ ! -x "$root/usr/bin/apt-get" ]; then
    mkdir -p "$logs"
    timeout 1800 debootstrap --variant=minbase --include=ca-certificates sid "$root" \
      http://deb.debian.org/debian >"$logs/hub-debootstrap.log" 2>&1 ||
      skip "debootstrap of sid failed (see $logs/hub-debootstrap.log)"
  fi
  mount -t proc proc "$root/proc" && mounted=1
  timeout 1800 chroot "$root" /bin/sh -c "apt-get ${apt_opts[*]} update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get ${apt_opts[*]} install -y -qq --no-install-recommends \
    python3-huggingface-hub" >"$logs/hub-apt.log" 2>&1 ||
    skip "installing python3-huggingface-hub in the chroot failed (see $logs/hub-apt.log)"
fi
if [ $mounted = 0 ]; then mount -t proc proc "$root/proc" && mounted=1; fi
# The large files are redirected to "localhost"; a minbase chroot has no /etc/hosts.
grep -qs '^127\.0\.0\.1[[:space:]].*localhost' "$root/etc/hosts" ||
  echo "127.0.0.1 localhost" >>"$root/etc/hosts"
hf_version=$(chroot "$root" dpkg-query -W -f '${Version}' python3-huggingface-hub)
echo "== huggingface_hub under test: python3-huggingface-hub $hf_version" \
  "($(chroot "$root" dpkg-query -W -f '${Package} ${Version}, ' python3 python3-filelock python3-httpx |
    sed 's/, $//'))"

# --- the repositories -------------------------------------------------------------------------
work_in_root=/tmp/peftcpp-hub-check
work="$root$work_in_root"
rm -rf "$work"
mkdir -p "$work/py" "$work/cpp" "$work/home"
commit() { printf '%s' "$1" | sha1sum | cut -c1-40; }
a_main=$(commit alpha-main) a_dev=$(commit alpha-dev) a_tag=$(commit alpha-v1.0)
b_main=$(commit beta-main) b_old=$(commit beta-old)
cat >"$work/repos.json" <<EOF
{
  "org/alpha": {
    "refs": {"main": "$a_main", "dev": "$a_dev", "v1.0": "$a_tag"},
    "commits": {
      "$a_main": {
        "config.json": {"text": "{\"model_type\": \"llama\", \"rev\": \"main\"}"},
        "README.md": {"text": "# alpha\n"},
        "sub/dir/nested.txt": {"text": "nested at main\n"},
        "sub/weights.json": {"text": "{}"},
        "tokenizer/vocab.txt": {"text": "a\nb\nc\n"},
        "empty.txt": {"text": ""},
        "model.safetensors": {"size": 3000000, "lfs": true}
      },
      "$a_dev": {
        "config.json": {"text": "{\"model_type\": \"llama\", \"rev\": \"dev\"}"},
        "README.md": {"text": "# alpha\n"},
        "extra.txt": {"text": "only on dev\n"},
        "model.safetensors": {"size": 3000000, "lfs": true}
      },
      "$a_tag": {
        "config.json": {"text": "{\"model_type\": \"llama\", \"rev\": \"v1.0\"}"},
        "README.md": {"text": "# alpha v1\n"},
        "sub/dir/nested.txt": {"text": "nested at v1.0\n"},
        "model.safetensors": {"size": 1500000, "lfs": true}
      }
    }
  },
  "org/beta": {
    "refs": {"main": "$b_main"},
    "commits": {
      "$b_main": {
        "a.json": {"text": "{\"a\": 1}"},
        "b.bin": {"size": 2000000, "lfs": true},
        "c/d.txt": {"text": "d\n"},
        "c/e.md": {"text": "# e\n"},
        "c/deep/f.json": {"text": "{\"f\": true}"},
        "logs/run.log": {"text": "log line\n"},
        "notes.md": {"text": "notes\n"}
      },
      "$b_old": {
        "a.json": {"text": "{\"a\": 0}"},
        "c/d.txt": {"text": "d\n"}
      }
    }
  }
}
EOF

# --- the scenarios: NAME|OP ; OP ..., each into its own empty cache ---------------------------
#   file REPO REVISION PATH            hf_hub_download (Python: subfolder + file name)
#   snap REPO REVISION ALLOW IGNORE    snapshot_download (patterns comma-separated, - for none)
cat >"$work/scenarios" <<EOF
file_branch|file org/alpha main config.json
file_other_branch|file org/alpha dev config.json
file_tag|file org/alpha v1.0 config.json
file_sha|file org/alpha $a_main config.json
file_subfolder|file org/alpha main sub/dir/nested.txt
file_empty|file org/alpha main empty.txt
file_lfs|file org/alpha main model.safetensors
file_lfs_tag|file org/alpha v1.0 model.safetensors
file_missing|file org/alpha main missing.txt
file_missing_at_tag|file org/alpha v1.0 extra.txt
file_missing_in_subfolder|file org/alpha dev sub/dir/nested.txt
file_missing_at_sha|file org/alpha $a_tag tokenizer/vocab.txt
snap_branch|snap org/alpha main - -
snap_tag|snap org/alpha v1.0 - -
snap_sha|snap org/beta $b_old - -
snap_allow|snap org/beta main *.json,c/ -
snap_ignore|snap org/beta main - *.log,*.bin
snap_allow_ignore|snap org/beta main c/* *.md
snap_nothing|snap org/beta main nothing* -
sequence|file org/alpha main config.json ; file org/alpha main config.json ; snap org/alpha main - - ; file org/alpha v1.0 config.json ; snap org/alpha v1.0 *.json - ; file org/alpha dev model.safetensors ; file org/alpha main missing.txt ; file org/alpha $a_main config.json ; snap org/alpha dev - - ; file org/alpha v1.0 extra.txt
EOF

cat >"$work/driver.py" <<'EOF'
# Runs each scenario through huggingface_hub; prints "NAME: OP -> ok PATH" or "-> error TYPE".
import os
import sys

from huggingface_hub import hf_hub_download, snapshot_download

caches, scenarios = sys.argv[1], sys.argv[2]
for line in open(scenarios):
    name, ops = line.rstrip("\n").split("|", 1)
    cache = os.path.join(caches, name)
    os.makedirs(cache, exist_ok=True)
    for op in ops.split(" ; "):
        words = op.split()
        try:
            if words[0] == "file":
                _, repo, revision, path = words
                folder, _, filename = path.rpartition("/")
                got = hf_hub_download(repo, filename, subfolder=folder or None, revision=revision,
                                      cache_dir=cache)
            else:
                _, repo, revision, allow, ignore = words
                got = snapshot_download(repo, revision=revision, cache_dir=cache,
                                        allow_patterns=None if allow == "-" else allow.split(","),
                                        ignore_patterns=None if ignore == "-" else ignore.split(","))
            result = "ok " + os.path.relpath(got, cache)
        except Exception as e:  # the outcome is compared, not raised
            result = "error " + type(e).__name__
        print(f"{name}: {op} -> {result}", flush=True)
EOF

# --- the server ---------------------------------------------------------------------------------
"$server" "$work/repos.json" >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/^port //p' "$work/server.out")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "hub_fake_server did not start:" >&2; cat "$work/server.err" >&2; exit 1; }
endpoint=http://127.0.0.1:$port
echo "== fake Hub on $endpoint"

# Both clients: the same umask and no proxy, progress or telemetry.
umask 022
clean_env=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
  "HOME=$work_in_root/home" "HF_HOME=$work_in_root/home/hf" "HF_ENDPOINT=$endpoint"
  HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_PROGRESS_BARS=1 HF_HUB_DISABLE_XET=1
  HF_HUB_DISABLE_IMPLICIT_TOKEN=1)

# run_python CACHES OUT [VAR=VALUE...] / run_peftcpp CACHES OUT [VAR=VALUE...]: every scenario
# into CACHES/<name> (paths inside $work), one outcome line per operation into OUT.
run_python() {
  local caches=$1 out=$2
  shift 2
  timeout 600 chroot "$root" "${clean_env[@]}" "$@" /bin/sh -c \
    "umask 022 && python3 $work_in_root/driver.py $work_in_root/$caches $work_in_root/scenarios" \
    >"$out" 2>>"$work/py.err" || { cat "$work/py.err" >&2; exit 1; }
}
run_peftcpp() {
  local caches=$1 out=$2 name ops cache list op words args result p
  shift 2
  set -f  # patterns stay patterns
  while IFS='|' read -r name ops; do
    cache="$work/$caches/$name"
    mkdir -p "$cache"
    IFS=';' read -ra list <<<"$ops"
    for op in "${list[@]}"; do
      read -ra words <<<"$op"
      args=("${words[1]}" --revision "${words[2]}" --cache-dir "$cache" --quiet)
      if [ "${words[0]}" = file ]; then
        args+=("${words[3]}")
      else
        [ "${words[3]}" = - ] || for p in ${words[3]//,/ }; do args+=(--include "$p"); done
        [ "${words[4]}" = - ] || for p in ${words[4]//,/ }; do args+=(--exclude "$p"); done
      fi
      if out_line=$("${clean_env[@]}" HF_HOME="$work/home/hf" "$@" "$peftcpp" download \
        "${args[@]}" 2>>"$work/cpp.err"); then
        result="ok $(realpath -s --relative-to="$cache" "$(tail -n1 <<<"$out_line")")"
      else
        result="error"
      fi
      echo "$name: $(xargs <<<"$op") -> $result"
    done
  done <"$work/scenarios" >"$out"
  set +f
}

echo "== huggingface_hub"
run_python py "$work/py.outcomes"
echo "== peftcpp download"
run_peftcpp cpp "$work/cpp.outcomes"

# --- the comparison -----------------------------------------------------------------------------
# What huggingface_hub writes and peftcpp deliberately does not: pairs of an extended regex
# (matched against the manifest lines below) and the reason.
not_compared=(
  '^models--[^/]+/trees( |/)'
  "huggingface_hub >= 1.x lists a snapshot through the tree API and keeps that listing in
  trees/<commit>.json, only to skip HEAD requests for Xet files and to tell an incomplete snapshot
  offline (an absent listing means 'unknown', and the folder is used as it is); peftcpp lists
  the revision API's siblings and writes no listing"
)

# One line per entry: path, type, mode, size, sha256 (files), target (symlinks), content (refs).
manifest() {
  (
    cd "$1"
    find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort | while IFS= read -r p; do
      if [ -L "$p" ]; then
        [ -e "$p" ] && dangling="" || dangling=" (dangling)"
        echo "$p symlink -> $(readlink "$p")$dangling"
      elif [ -d "$p" ]; then
        echo "$p dir $(stat -c %a "$p")"
      elif [ "$p" = CACHEDIR.TAG ]; then
        # Its first line is the standard's signature; the comment after it is each client's own.
        echo "$p file $(stat -c %a "$p") first line: $(head -n1 "$p")"
      else
        line="$p file $(stat -c %a "$p") $(stat -c %s "$p") bytes sha256 $(sha256sum <"$p" | cut -c1-16)"
        case "$p" in */refs/*) line+=" content '$(cat "$p")'" ;; esac
        echo "$line"
      fi
    done
  )
}

filter_known() {  # filter_known FILE: drops the lines of not_compared
  local file=$1 i rc
  for ((i = 0; i < ${#not_compared[@]}; i += 2)); do
    rc=0
    grep -Ev "${not_compared[i]}" "$file" >"$file.tmp" || rc=$?
    [ $rc -le 1 ] || { echo "bad not_compared pattern ${not_compared[i]}" >&2; exit 2; }
    mv "$file.tmp" "$file"
  done
}

status=0
while IFS='|' read -r name _; do
  manifest "$work/py/$name" >"$work/py/$name.manifest"
  manifest "$work/cpp/$name" >"$work/cpp/$name.manifest"
done <"$work/scenarios"
for ((i = 0; i < ${#not_compared[@]}; i += 2)); do
  py=$(cat "$work"/py/*.manifest | grep -Ec "${not_compared[i]}" || true)
  cpp=$(cat "$work"/cpp/*.manifest | grep -Ec "${not_compared[i]}" || true)
  echo "not compared: entries matching '${not_compared[i]}' (huggingface_hub $py, peftcpp $cpp):"
  echo "  ${not_compared[i + 1]}"
done
while IFS='|' read -r name _; do
  filter_known "$work/py/$name.manifest"
  filter_known "$work/cpp/$name.manifest"
  # Python names its error types; peftcpp's exit status says only that it failed.
  grep "^$name: " "$work/py.outcomes" | sed 's/-> error .*/-> error/' >"$work/py/$name.outcomes"
  grep "^$name: " "$work/cpp.outcomes" >"$work/cpp/$name.outcomes"
  if diff -u --label "huggingface_hub/$name" --label "peftcpp/$name" \
    <(cat "$work/py/$name.outcomes" "$work/py/$name.manifest") \
    <(cat "$work/cpp/$name.outcomes" "$work/cpp/$name.manifest") >"$work/$name.diff"; then
    echo "same  $name ($(wc -l <"$work/py/$name.manifest") entries;" \
      "$(grep -c -- '-> ok' "$work/py/$name.outcomes" || true) ok," \
      "$(grep -c -- '-> error' "$work/py/$name.outcomes" || true) refused)"
  else
    echo "DIFF  $name"
    sed 's/^/      /' "$work/$name.diff"
    status=1
  fi
done <"$work/scenarios"

# --- each client reads the other's cache offline -----------------------------------------------
# On copies of the caches, with HF_HUB_OFFLINE=1: huggingface_hub must answer from peftcpp's cache
# exactly as from its own (same paths, same failures), and peftcpp from huggingface_hub's as from
# its own.
echo "== offline: each client on the other's cache"
mkdir -p "$work/off"
for pair in py-on-py:py py-on-cpp:cpp cpp-on-cpp:cpp cpp-on-py:py; do
  cp -a "$work/${pair#*:}" "$work/off/${pair%%:*}"
done
run_python off/py-on-py "$work/off/py-on-py.outcomes" HF_HUB_OFFLINE=1
run_python off/py-on-cpp "$work/off/py-on-cpp.outcomes" HF_HUB_OFFLINE=1
run_peftcpp off/cpp-on-cpp "$work/off/cpp-on-cpp.outcomes" HF_HUB_OFFLINE=1
run_peftcpp off/cpp-on-py "$work/off/cpp-on-py.outcomes" HF_HUB_OFFLINE=1
for check in "huggingface_hub:py-on-py:py-on-cpp" "peftcpp:cpp-on-cpp:cpp-on-py"; do
  IFS=: read -r client own other <<<"$check"
  if diff -u --label "$client offline on its own cache" --label "$client offline on the other's" \
    <(sed 's/-> error .*/-> error/' "$work/off/$own.outcomes") \
    <(sed 's/-> error .*/-> error/' "$work/off/$other.outcomes") >"$work/off/$client.diff"; then
    echo "same  $client offline: $(grep -c -- '-> ok' "$work/off/$own.outcomes" || true) found," \
      "$(grep -c -- '-> error' "$work/off/$own.outcomes" || true) not found, on either cache"
  else
    echo "DIFF  $client offline"
    sed 's/^/      /' "$work/off/$client.diff"
    status=1
  fi
done

elapsed=$(($(date +%s) - started))
if [ $status = 0 ]; then
  echo "huggingface_hub check PASSED: $(wc -l <"$work/scenarios") scenarios, caches identical" \
    "(huggingface_hub $hf_version, ${elapsed}s; trees in $work)"
else
  echo "huggingface_hub check FAILED: the caches differ (huggingface_hub $hf_version; trees in $work)"
fi
exit $status
