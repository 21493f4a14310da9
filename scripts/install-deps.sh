#!/usr/bin/env bash
# Installs the Debian 12 packages peftcpp needs, only those that are missing.
# --cli: only what the library and the command-line tool need (no test/benchmark libraries).
set -euo pipefail
packages=(build-essential cmake pkg-config
  nlohmann-json3-dev libcli11-dev libfmt-dev libpcre2-dev libdeflate-dev libopenblas-dev liblapacke-dev libfftw3-dev
  libcurl4-openssl-dev libssl-dev)
[ "${1:-}" = "--cli" ] || packages+=(git python3 ccache libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
