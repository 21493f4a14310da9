#!/usr/bin/env bash
# Installs a built peftcpp into a temporary prefix and builds and runs its consumers against
# it, as a user would (docs/library.md):
#   - examples/consumer-cmake: find_package(peftcpp) + target_link_libraries(peftcpp::peftcpp);
#   - examples/consumer-c: cc app.c $(pkg-config [--static] --cflags --libs peftcpp);
#   - examples/python/peftcpp_ctypes.py: the C API through ctypes, its tensor list compared
#     with `peftcpp inspect --json --tensors` of the installed CLI.
# With a shared build it also checks the SONAME and that libpeftcpp.so exports only peft::
# and peftcpp_ symbols. ctest runs it on build/ (static); CI runs it with --shared.
#
#   scripts/test-install.sh [--shared] [BUILD_DIR]   (BUILD_DIR default: build, or
#                                                     build-shared with --shared)
# --shared configures and builds BUILD_DIR with -DBUILD_SHARED_LIBS=ON first (library and CLI
# only; ccache-friendly: the objects are those of the static build).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
shared=0
if [ "${1:-}" = --shared ]; then shared=1; shift; fi
build="${1:-}"
[ -n "$build" ] || build="$root/build$([ $shared = 1 ] && echo -shared)"
build="$(cd "$root" && mkdir -p "$build" && cd "$build" && pwd)"
example="$root/examples/tf_llama_lora"

if [ $shared = 1 ]; then
  launcher=()
  if command -v ccache >/dev/null; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
    export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
  fi
  cmake -S "$root" -B "$build" -DBUILD_SHARED_LIBS=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPEFT_BUILD_TESTS="${PEFT_BUILD_TESTS:-OFF}" -DPEFT_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
  cmake --build "$build" -j "${JOBS:-$(nproc)}" --target peftcpp_lib peftcpp >/dev/null
fi
if grep -q '^BUILD_SHARED_LIBS:BOOL=ON' "$build/CMakeCache.txt"; then shared=1; fi

work="$(mktemp -d "${TMPDIR:-/tmp}/peftcpp-install.XXXXXX")"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
step() { echo "== $*"; }
fail() { echo "test-install: FAILED: $*" >&2; exit 1; }

step "install into $prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
for f in bin/peftcpp include/peftcpp.h include/peft/peft.hpp include/peft/version.hpp \
  include/peft/export.hpp lib/cmake/peftcpp/peftcppConfig.cmake \
  lib/cmake/peftcpp/peftcppConfigVersion.cmake lib/pkgconfig/peftcpp.pc \
  share/doc/peftcpp/README.md share/doc/peftcpp/docs/library.md; do
  [ -e "$prefix/$f" ] || fail "$f was not installed"
done
if [ $shared = 1 ]; then
  lib="$prefix/lib/libpeftcpp.so.$(sed -n 's/^#define PEFTCPP_ABI_VERSION //p' "$prefix/include/peft/version.hpp")"
  [ -e "$lib" ] || fail "$lib was not installed"
  [ ! -e "$prefix/lib/libpeftcpp.a" ] || fail "a shared build installed libpeftcpp.a"
  soname="$(objdump -p "$lib" | awk '/SONAME/ {print $2}')"
  [ "$soname" = "$(basename "$lib")" ] || fail "SONAME is '$soname', expected $(basename "$lib")"
  step "exported symbols of $(basename "$lib") (SONAME $soname)"
  nm -D --defined-only "$lib" | awk '{print $3}' | c++filt >"$work/exports"
  grep -Ev '^(peft::|peftcpp_|typeinfo for peft::|typeinfo name for peft::|vtable for peft::|VTT for peft::|PEFTCPP_[0-9]|$)' \
    "$work/exports" >"$work/unexpected" || true
  [ ! -s "$work/unexpected" ] || { head -20 "$work/unexpected" >&2; fail "libpeftcpp.so exports symbols outside peft:: and peftcpp_"; }
  ! grep -Eq '^peft::(detail|internal)|fmt::|pcre2|deflate|cblas|LAPACKE|fftw' "$work/exports" ||
    fail "libpeftcpp.so exports internals: $(grep -E 'fmt::|pcre2|deflate|cblas|LAPACKE|fftw' "$work/exports" | head -3)"
  echo "$(wc -l <"$work/exports") symbols, $(grep -c '^peftcpp_' "$work/exports") of them the C API"
  pkg_static=()
else
  [ -e "$prefix/lib/libpeftcpp.a" ] || fail "lib/libpeftcpp.a was not installed"
  pkg_static=(--static)
fi

step "C++ consumer: find_package(peftcpp) (examples/consumer-cmake)"
cmake -S "$root/examples/consumer-cmake" -B "$work/consumer-cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 || { cat "$work/cmake.log" >&2; fail "configure"; }
cmake --build "$work/consumer-cmake" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "build"; }
"$work/consumer-cmake/peftcpp_consumer" "$example" | tee "$work/cpp.out" | head -3
grep -q "LORA, 8 tensors" "$work/cpp.out" || fail "the C++ consumer's output"

step "C consumer: cc app.c \$(pkg-config ${pkg_static[*]} --cflags --libs peftcpp) (examples/consumer-c)"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
flags="$(pkg-config "${pkg_static[@]}" --cflags --libs peftcpp)"
echo "   $flags"
# shellcheck disable=SC2086  # flags is a list
cc -std=c11 -Wall -Wextra -Werror -pedantic "$root/examples/consumer-c/app.c" $flags -o "$work/app_c"
LD_LIBRARY_PATH="$prefix/lib" "$work/app_c" "$example" | tee "$work/c.out" | head -3
grep -q ": 8 tensors" "$work/c.out" || fail "the C consumer's output"
if LD_LIBRARY_PATH="$prefix/lib" "$work/app_c" "$work/missing" 2>"$work/c.err"; then
  fail "the C consumer accepted a missing adapter"
fi
grep -q "error 102 (not_found)" "$work/c.err" || fail "the C consumer's error: $(cat "$work/c.err")"

step "Python ctypes (examples/python/peftcpp_ctypes.py) vs peftcpp inspect --json --tensors"
if [ $shared = 1 ]; then
  so="$lib"
else
  # A static libpeftcpp.a is position-independent: it links into a shared object, exporting
  # the C API (everything else has hidden visibility).
  so="$work/libpeftcpp_ctypes.so"
  # shellcheck disable=SC2046
  c++ -shared -o "$so" -Wl,--whole-archive "$prefix/lib/libpeftcpp.a" -Wl,--no-whole-archive \
    $(pkg-config --static --libs peftcpp)
fi
for adapter in "$example" "$example/adapter_model.bin"; do
  python3 "$root/examples/python/peftcpp_ctypes.py" --lib "$so" "$adapter" --json >"$work/ctypes.json"
  LD_LIBRARY_PATH="$prefix/lib" "$prefix/bin/peftcpp" inspect --json --tensors "$adapter" \
    >"$work/inspect.json"
  python3 - "$work/ctypes.json" "$work/inspect.json" <<'PY'
import json, sys
ctypes_list = json.load(open(sys.argv[1]))
inspect = json.load(open(sys.argv[2]))
summaries = inspect["adapters"] if "adapters" in inspect else [inspect]
cli = sorted((t["name"], t["dtype"], list(t["shape"])) for s in summaries for t in s["weights"]["tensors"])
ours = sorted((t["name"], t["dtype"], t["shape"]) for t in ctypes_list)
if cli != ours or not ours:
    sys.exit(f"ctypes and inspect differ:\n{ours}\n{cli}")
print(f"   {len(ours)} tensors, identical to peftcpp inspect")
PY
done
python3 "$root/examples/python/peftcpp_ctypes.py" --lib "$so" "$work/missing" 2>"$work/py.err" &&
  fail "ctypes accepted a missing adapter"
grep -q "not_found" "$work/py.err" || fail "the ctypes error: $(cat "$work/py.err")"
echo "test-install: all consumers work ($([ $shared = 1 ] && echo shared || echo static) build)"
