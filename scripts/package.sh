#!/usr/bin/env bash
# Builds the Debian package of a build tree and checks it:
#   scripts/package.sh [BUILD_DIR]     (default: build; scripts/build.sh makes it)
# cpack -G DEB writes BUILD_DIR/peftcpp_<version>_<arch>.deb (Depends computed by
# dpkg-shlibdeps, from dpkg-dev); the package is then unpacked with dpkg -x into a scratch
# root and the CLI it installs inspects the example it ships (usr/share/doc/peftcpp/examples).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "$root" && cd "${1:-build}" && pwd)"
command -v dpkg-shlibdeps >/dev/null || {
  echo "package.sh needs dpkg-shlibdeps: apt-get install dpkg-dev" >&2
  exit 2
}
cmake --build "$build" -j "${JOBS:-$(nproc)}" --target peftcpp_lib peftcpp >/dev/null
(cd "$build" && cpack -G DEB -B "$build" >"$build/cpack.log" 2>&1) || {
  cat "$build/cpack.log" >&2
  exit 1
}
version="$(sed -n 's/^#define PEFTCPP_VERSION "\(.*\)"/\1/p' "$build/include/peft/version.hpp")"
deb="$build/peftcpp_${version}_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || { echo "package.sh: $deb was not made (see $build/cpack.log)" >&2; exit 1; }
echo "== $deb"
dpkg-deb -f "$deb" Package Version Architecture Depends
depends="$(dpkg-deb -f "$deb" Depends)"
for lib in libc6 libstdc++6 libfmt9 libopenblas0; do
  [[ "$depends" == *"$lib"* ]] || { echo "package.sh: Depends lacks $lib" >&2; exit 1; }
done

scratch="$(mktemp -d "${TMPDIR:-/tmp}/peftcpp-deb.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
dpkg -x "$deb" "$scratch"
echo "== the packaged CLI on the packaged example"
LD_LIBRARY_PATH="$scratch/usr/lib" "$scratch/usr/bin/peftcpp" inspect \
  "$scratch/usr/share/doc/peftcpp/examples/tf_llama_lora" --tensors | tee "$scratch/inspect.out"
grep -q "tensors *8" "$scratch/inspect.out" || { echo "package.sh: unexpected output" >&2; exit 1; }
LD_LIBRARY_PATH="$scratch/usr/lib" "$scratch/usr/bin/peftcpp" validate \
  "$scratch/usr/share/doc/peftcpp/examples/tf_llama_lora"
echo "package.sh: $deb works"
